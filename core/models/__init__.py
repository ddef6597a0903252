"""Multimodal VAE models. Importing this package registers every built-in `model_type`."""

from core.models.base import MODEL_REGISTRY, Latent, LossOutput, MultimodalVAE, Stage
from core.models.config import ModalitySpec, ModelConfig
from core.models.jmvae import JMVAE, JMVAEConfig
from core.models.mmvae import MMVAE, MMVAEConfig
from core.models.mopoe import MoPoE, MoPoEConfig
from core.models.mvae import MVAE, MVAEConfig
from core.models.mvtcae import MVTCAE, MVTCAEConfig
from core.models.registry import available_models, build_model, get_model_class

__all__ = [
    "JMVAE",
    "MMVAE",
    "MODEL_REGISTRY",
    "MVAE",
    "MVTCAE",
    "JMVAEConfig",
    "Latent",
    "LossOutput",
    "MMVAEConfig",
    "MVAEConfig",
    "MVTCAEConfig",
    "MoPoE",
    "MoPoEConfig",
    "ModalitySpec",
    "ModelConfig",
    "MultimodalVAE",
    "Stage",
    "available_models",
    "build_model",
    "get_model_class",
]
