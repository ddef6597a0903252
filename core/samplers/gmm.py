"""`GaussianMixtureSampler`: a Gaussian mixture fitted on posterior latents with scikit-learn.

Only the fitted parameters are kept (as tensors; every covariance type is stored as a full
Cholesky factor [K, D, D]); sampling and densities are torch, seeded by a `torch.Generator`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from core.samplers.base import Density, Sampler, SamplerOptions, seed_from


class GMMOptions(SamplerOptions):
    n_components: int = Field(10, ge=1, description="mixture components")
    covariance_type: Literal["full", "diag", "tied", "spherical"] = "full"
    reg_covar: float = Field(1e-6, gt=0, description="added to covariance diagonals")
    max_iter: int = Field(200, ge=1, description="EM iterations")
    n_init: int = Field(1, ge=1, description="EM restarts; the best is kept")


class GaussianMixtureDensity(Density):
    options: GMMOptions

    def __init__(self, dim: int, options: GMMOptions) -> None:
        super().__init__(dim, options)
        k = options.n_components
        self.register_buffer("weights", torch.full((k,), 1.0 / k))
        self.register_buffer("means", torch.zeros(k, dim))
        self.register_buffer("scale_tril", torch.eye(dim).expand(k, dim, dim).clone())

    def fit(self, z: Tensor, generator: torch.Generator | None = None) -> None:
        from sklearn.mixture import GaussianMixture  # 2 s to import: only when fitting

        o = self.options
        if len(z) < o.n_components:
            raise ValueError(
                f"n_components: {o.n_components} components need at least as many latents, "
                f"got {len(z)}"
            )
        gmm = GaussianMixture(
            n_components=o.n_components,
            covariance_type=o.covariance_type,
            reg_covar=o.reg_covar,
            max_iter=o.max_iter,
            n_init=o.n_init,
            random_state=seed_from(generator),
        ).fit(z.double().cpu().numpy())
        cov = _full_covariances(gmm.covariances_, o.covariance_type, o.n_components, self.dim)
        self.weights.copy_(torch.from_numpy(gmm.weights_))
        self.means.copy_(torch.from_numpy(gmm.means_))
        self.scale_tril.copy_(torch.linalg.cholesky(torch.from_numpy(cov)))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, device=self.means.device)
        return self.means[comp] + (self.scale_tril[comp] @ eps.unsqueeze(-1)).squeeze(-1)

    def log_prob(self, z: Tensor) -> Tensor:
        comps = torch.distributions.MultivariateNormal(self.means, scale_tril=self.scale_tril)
        per = comps.log_prob(z.unsqueeze(-2))  # [..., K]
        return torch.logsumexp(per + self.weights.log(), dim=-1)


def _full_covariances(cov: np.ndarray, kind: str, k: int, d: int) -> np.ndarray:
    """scikit-learn's covariances_ of any `covariance_type` as full matrices [K, D, D]."""
    if kind == "full":
        return cov
    if kind == "tied":
        return np.broadcast_to(cov, (k, d, d)).copy()
    if kind == "diag":
        return np.stack([np.diag(c) for c in cov])
    return cov[:, None, None] * np.eye(d)[None]  # spherical


class GaussianMixtureSampler(Sampler):
    """Mixture of `n_components` Gaussians per latent space (`covariance_type` as scikit-learn)."""

    name = "gmm"
    options_class = GMMOptions
    options: GMMOptions

    def density(self, dim: int) -> Density:
        return GaussianMixtureDensity(dim, self.options)
