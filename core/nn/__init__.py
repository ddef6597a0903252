"""Neural building blocks: likelihoods and the declarative network registry."""

from core.nn.likelihoods import Likelihood, LikelihoodSpec, build_likelihood
from core.nn.networks import (
    NETWORKS,
    NetworkError,
    build_network,
    register_network,
    validate_network_spec,
)

__all__ = [
    "NETWORKS",
    "Likelihood",
    "LikelihoodSpec",
    "NetworkError",
    "build_likelihood",
    "build_network",
    "register_network",
    "validate_network_spec",
]
