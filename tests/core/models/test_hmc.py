"""Hamiltonian Monte Carlo: its draws follow the target, and it never moves to a point whose
energy is not finite."""

from __future__ import annotations

import torch

from core.models.hmc import generator_noise, hamiltonian_monte_carlo


def test_chains_reach_a_correlated_gaussian_target():
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]])
    mean = torch.tensor([2.0, -1.0])
    precision = torch.linalg.inv(cov)

    def log_target(z: torch.Tensor) -> torch.Tensor:
        d = z - mean
        return -0.5 * (d @ precision * d).sum(-1)

    g = torch.Generator().manual_seed(0)
    start = torch.randn(4000, 2, generator=g) * 3  # far from the target's shape
    draws = hamiltonian_monte_carlo(log_target, start, generator_noise(start.shape, start, g),
                                    steps=30, n_lf=8, eps=0.2)  # fmt: skip
    torch.testing.assert_close(draws.mean(0), mean, atol=0.06, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), cov, atol=0.08, rtol=0)
    assert not draws.requires_grad


def test_a_move_to_a_non_finite_energy_is_rejected():
    def log_target(z: torch.Tensor) -> torch.Tensor:  # −inf to the right of 0
        return torch.where(z[..., 0] > 0, float("-inf"), -0.5 * z.pow(2).sum(-1))

    start = torch.full((16, 1), -0.05)
    push = lambda step: (torch.full((16, 1), 5.0), torch.full((16,), 0.5))  # noqa: E731
    assert torch.equal(hamiltonian_monte_carlo(log_target, start, push, 1, 1, 0.1), start)
