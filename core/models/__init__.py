"""Multimodal VAE models. Importing this package registers every built-in `model_type`."""

from core.models.base import MODEL_REGISTRY, Latent, LossOutput, MultimodalVAE, Stage
from core.models.config import ModalitySpec, ModelConfig
from core.models.mvae import MVAE, MVAEConfig
from core.models.registry import available_models, build_model, get_model_class

__all__ = [
    "MODEL_REGISTRY",
    "MVAE",
    "Latent",
    "LossOutput",
    "MVAEConfig",
    "ModalitySpec",
    "ModelConfig",
    "MultimodalVAE",
    "Stage",
    "available_models",
    "build_model",
    "get_model_class",
]
