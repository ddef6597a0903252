"""Hamiltonian Monte Carlo over latent codes, vectorised over every chain at once.

Used where a posterior is known only up to a constant (JNF's product of flow posteriors). Each
step draws a momentum ρ ~ N(0, I), makes `n_lf` leapfrog steps of size `eps` on
H(z, ρ) = −log π(z) + |ρ|²/2 and accepts the end point with probability min(1, exp(H₀ − H)),
per chain. The randomness comes from a `HMCNoise` callable, so a caller decides whether chains
share a stream (fixed-seed moments), draw from one generator, or each follow their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

LogDensity = Callable[[Tensor], Tensor]  # z [..., D] -> log π(z) [...], up to a constant


class HMCNoise(Protocol):
    def __call__(self, step: int) -> tuple[Tensor, Tensor]:
        """(momentum [..., D], uniform [...]) for MCMC step `step`, broadcastable to the chains."""
        ...


def generator_noise(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> HMCNoise:
    """Momenta and uniforms for chains of `shape` [..., D] drawn from one generator."""

    def draw(step: int) -> tuple[Tensor, Tensor]:
        kw = {"dtype": like.dtype, "device": like.device, "generator": generator}
        return torch.randn(shape, **kw), torch.rand(shape[:-1], **kw)

    return draw


def _value_and_grad(log_target: LogDensity, z: Tensor) -> tuple[Tensor, Tensor]:
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        value = log_target(z)
        (grad,) = torch.autograd.grad(value.sum(), z)
    return value.detach(), grad


def hamiltonian_monte_carlo(
    log_target: LogDensity, z: Tensor, noise: HMCNoise, steps: int, n_lf: int, eps: float
) -> Tensor:
    """`steps` HMC transitions from the chains' starting points `z` [..., D]; the final states
    (detached: these draws carry no gradient to the target's parameters)."""
    value, grad = _value_and_grad(log_target, z)
    for step in range(steps):
        momentum, uniform = noise(step)
        rho = momentum.expand_as(z)
        start_h = -value + 0.5 * rho.pow(2).sum(-1)
        z_new, rho_new, value_new, grad_new = z, rho, value, grad
        for _ in range(n_lf):
            rho_new = rho_new + 0.5 * eps * grad_new
            z_new = z_new + eps * rho_new
            value_new, grad_new = _value_and_grad(log_target, z_new)
            rho_new = rho_new + 0.5 * eps * grad_new
        end_h = -value_new + 0.5 * rho_new.pow(2).sum(-1)
        accept = uniform.expand_as(value).log() < (start_h - end_h)  # NaN energies never accept
        z = torch.where(accept.unsqueeze(-1), z_new, z)
        value = torch.where(accept, value_new, value)
        grad = torch.where(accept.unsqueeze(-1), grad_new, grad)
    return z.detach()
