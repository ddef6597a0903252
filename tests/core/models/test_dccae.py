"""DCCAE (Wang et al. 2015; MODELS.md): the multi-set CCA loss against classical CCA, the
objective against a hand computation, and training with LBFGS (its upstream optimizer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data.batch import Batch
from core.data.builtin import builtin_modalities, load_builtin
from core.models import build_model
from core.models.cca import multiset_cca_loss
from core.training import Trainer, TrainerConfig
from tests.core.models.objective_helpers import batch, log_lik, tiny, weight


def canonical_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Classical CCA: singular values of Σxx^{-1/2} Σxy Σyy^{-1/2} (numpy, float64)."""
    x, y = x - x.mean(0), y - y.mean(0)
    n = len(x)
    sxx, syy, sxy = x.T @ x / (n - 1), y.T @ y / (n - 1), x.T @ y / (n - 1)

    def inv_sqrt(s):
        w, v = np.linalg.eigh(s)
        return v @ np.diag(w**-0.5) @ v.T

    return np.linalg.svd(inv_sqrt(sxx) @ sxy @ inv_sqrt(syy), compute_uv=False)


def test_two_view_loss_is_minus_the_sum_of_one_plus_the_canonical_correlations():
    """With M = 2 and no ridge the generalised eigenvalues are 1 ± ρ_i: the top k sum to
    Σ_{i≤k} (1 + ρ_i)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g, dtype=torch.float64)
    y = x @ torch.randn(3, 3, generator=g, dtype=torch.float64)
    y = y + 0.8 * torch.randn(200, 3, generator=g, dtype=torch.float64)
    rho = canonical_correlations(x.numpy(), y.numpy())
    for k in (1, 3):
        expected = -float(np.sum(1 + rho[:k]))
        assert float(multiset_cca_loss([x, y], ridge=0.0, k=k)) == pytest.approx(expected, 1e-8)


def test_loss_is_weighted_own_reconstruction_plus_the_cca_of_complete_samples():
    """loss = w · mean_b Σ_m −λ_m log p(x_m|z_m) + CCA over the samples observing every
    modality — in this batch only sample 0, so no CCA term; with a complete batch, the CCA of
    the codes."""
    model = tiny("dccae", reconstruction_weight=0.6, cca_ridge=0.1)
    b = batch()
    have = [["a", "b"], ["a"], ["b"]]

    def code(m, i):
        return model.encoders[m](b.data[m][i].unsqueeze(0))[0]

    rec = [sum(-weight(m) * log_lik(model, m, code(m, i), b.data[m][i]) for m in ms)
           for i, ms in enumerate(have)]  # fmt: skip
    torch.testing.assert_close(model(b).loss, 0.6 * torch.stack(rec).mean())
    a = b.data["a"].clone()
    a[2] = torch.tensor([0.2, 0.5, -0.3])  # values in place of the missing ones
    b = Batch(
        {"a": a, "b": torch.eye(4)[[2, 0, 3]]}, {m: torch.ones(3, dtype=torch.bool) for m in "ab"}
    )
    complete = b
    codes = [torch.stack([code(m, i) for i in range(3)]) for m in ("a", "b")]
    rec = [sum(-weight(m) * log_lik(model, m, code(m, i), b.data[m][i]) for m in ("a", "b"))
           for i in range(3)]  # fmt: skip
    expected = 0.6 * torch.stack(rec).mean() + multiset_cca_loss(codes, 0.1, 2)
    torch.testing.assert_close(model(complete).loss, expected, rtol=1e-5, atol=1e-5)


def test_lbfgs_trains_it():
    torch.manual_seed(0)
    net = {"kind": "mlp", "hidden": [16]}
    model = build_model({"model_type": "dccae", "modalities": builtin_modalities("digits"),
                         "latent_dim": 3, "encoder": net, "decoder": net})  # fmt: skip
    data = load_builtin("digits", "train").subset(torch.arange(256))
    cfg = TrainerConfig(epochs=3, batch_size=128, seed=0, optimizer="lbfgs", learning_rate=0.5,
                        optimizer_kwargs={"max_iter": 4})  # fmt: skip
    trainer = Trainer(model, data, data, cfg)
    before = trainer.evaluate()["loss"]
    trainer.fit()
    assert isinstance(trainer.optimizers.optimizers["main"], torch.optim.LBFGS)
    assert trainer.evaluate()["loss"] < before - 5
