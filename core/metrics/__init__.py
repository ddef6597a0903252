"""Evaluation metrics for multimodal VAEs: likelihoods, coherence, FID, reconstruction,
clustering and figures, each usable alone; `evaluate()` runs a named list of them."""

from core.metrics.clustering import clustering, hungarian_accuracy, nmi, posterior_means
from core.metrics.coherence import (
    accuracy,
    balanced_accuracy,
    cross_coherence,
    joint_coherence,
    resolve_classifiers,
)
from core.metrics.evaluate import DEFAULT_METRICS, METRICS, EvalContext, evaluate, register_metric
from core.metrics.fid import (
    CallableFeatures,
    FeatureExtractor,
    InceptionV3Features,
    MissingWeightsError,
    PixelFeatures,
    feature_statistics,
    fid,
    fid_scores,
    frechet_distance,
)
from core.metrics.likelihood import conditional_log_likelihood, conditional_log_prob, joint_nll
from core.metrics.reconstruction import mse, reconstruct, reconstruction, ssim
from core.metrics.visualization import (
    conditional_grid,
    make_grid,
    reconstruction_grid,
    sample_grid,
    training_curves,
)

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "CallableFeatures",
    "EvalContext",
    "FeatureExtractor",
    "InceptionV3Features",
    "MissingWeightsError",
    "PixelFeatures",
    "accuracy",
    "balanced_accuracy",
    "clustering",
    "conditional_grid",
    "conditional_log_likelihood",
    "conditional_log_prob",
    "cross_coherence",
    "evaluate",
    "feature_statistics",
    "fid",
    "fid_scores",
    "frechet_distance",
    "hungarian_accuracy",
    "joint_coherence",
    "joint_nll",
    "make_grid",
    "mse",
    "nmi",
    "posterior_means",
    "reconstruct",
    "reconstruction",
    "reconstruction_grid",
    "register_metric",
    "resolve_classifiers",
    "sample_grid",
    "ssim",
    "training_curves",
]
