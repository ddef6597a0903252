"""Multimodal VAE models. Importing this package registers every built-in `model_type`."""

from core.models.ae import AE, AEConfig
from core.models.base import Draw, Experts, MultimodalVAE
from core.models.cmvae import CMVAE, CMVAEConfig
from core.models.config import ModalitySpec, ModelConfig
from core.models.crmvae import CRMVAE, CRMVAEConfig
from core.models.cvae import CVAE, CVAEConfig
from core.models.dccae import DCCAE, DCCAEConfig
from core.models.distributions import Noise, Posterior
from core.models.dmvae import DMVAE, DMVAEConfig
from core.models.dvcca import DVCCA, DVCCAConfig
from core.models.gpoe import GPoE, GPoEConfig
from core.models.jmvae import JMVAE, JMVAEConfig
from core.models.jnf import JNF, JNFConfig
from core.models.latents import SHARED, Latent, LatentSpace, level_space, private_space
from core.models.maae import MAAE, MAAEConfig
from core.models.mcvae import MCVAE, MCVAEConfig
from core.models.me_mvae import MeMVAE, MeMVAEConfig
from core.models.mhvae import MHVAE, MHVAEConfig
from core.models.mmjsd import MMJSD, MMJSDConfig
from core.models.mmvae import MMVAE, MMVAEConfig
from core.models.mmvae_plus import MMVAEPlus, MMVAEPlusConfig
from core.models.mopoe import MoPoE, MoPoEConfig
from core.models.mvae import MVAE, MVAEConfig
from core.models.mvtcae import MVTCAE, MVTCAEConfig
from core.models.mwae import MWAE, MWAEConfig
from core.models.nexus import Nexus, NexusConfig
from core.models.optimization import LossOutput, Optimizers, OptimizerSpec, Stage, Trainable
from core.models.registry import (
    MODEL_REGISTRY,
    available_models,
    build_model,
    get_model_class,
    parameter_count,
)
from core.models.telbo import TELBO, TELBOConfig
from core.models.weighted_dmvae import WeightedDMVAE, WeightedDMVAEConfig

__all__ = [
    "AE",
    "CMVAE",
    "CRMVAE",
    "CVAE",
    "DCCAE",
    "DMVAE",
    "DVCCA",
    "JMVAE",
    "JNF",
    "MAAE",
    "MCVAE",
    "MHVAE",
    "MMJSD",
    "MMVAE",
    "MODEL_REGISTRY",
    "MVAE",
    "MVTCAE",
    "MWAE",
    "SHARED",
    "TELBO",
    "AEConfig",
    "CMVAEConfig",
    "CRMVAEConfig",
    "CVAEConfig",
    "DCCAEConfig",
    "DMVAEConfig",
    "DVCCAConfig",
    "Draw",
    "Experts",
    "GPoE",
    "GPoEConfig",
    "JMVAEConfig",
    "JNFConfig",
    "Latent",
    "LatentSpace",
    "LossOutput",
    "MAAEConfig",
    "MCVAEConfig",
    "MHVAEConfig",
    "MMJSDConfig",
    "MMVAEConfig",
    "MMVAEPlus",
    "MMVAEPlusConfig",
    "MVAEConfig",
    "MVTCAEConfig",
    "MWAEConfig",
    "MeMVAE",
    "MeMVAEConfig",
    "MoPoE",
    "MoPoEConfig",
    "ModalitySpec",
    "ModelConfig",
    "MultimodalVAE",
    "Nexus",
    "NexusConfig",
    "Noise",
    "OptimizerSpec",
    "Optimizers",
    "Posterior",
    "Stage",
    "TELBOConfig",
    "Trainable",
    "WeightedDMVAE",
    "WeightedDMVAEConfig",
    "available_models",
    "build_model",
    "get_model_class",
    "level_space",
    "parameter_count",
    "private_space",
]
