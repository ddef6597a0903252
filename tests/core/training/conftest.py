"""Tiny synthetic data and models so every training test runs in a fraction of a second."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from core.data import MultimodalDataset
from core.models import MVAE, LossOutput, Stage, Trainable
from core.training import Callback, TrainerState

MODALITIES = [
    {"name": "a", "shape": [6], "likelihood": {"kind": "normal"}},
    {"name": "b", "shape": [4], "likelihood": {"kind": "categorical"}},
    {"name": "c", "shape": [5], "likelihood": {"kind": "normal"}},
]
TINY = {
    "latent_dim": 4,
    "encoder": {"kind": "mlp", "hidden": [32]},
    "decoder": {"kind": "mlp", "hidden": [32]},
}


def synthetic(n: int = 96, seed: int = 0, missing: float = 0.2) -> MultimodalDataset:
    """Three modalities driven by a class label, with some modalities missing at random."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(4, (n,), generator=g)
    a = torch.randn(4, 6, generator=g)[y] + 0.3 * torch.randn(n, 6, generator=g)
    c = torch.randn(4, 5, generator=g)[y] + 0.3 * torch.randn(n, 5, generator=g)
    masks = {m: torch.rand(n, generator=g) > missing for m in "ac"}
    masks["b"] = ~(masks["a"] | masks["c"]) | (torch.rand(n, generator=g) > missing)
    data = {"a": a, "b": torch.eye(4)[y], "c": c}
    return MultimodalDataset(data, masks, y)


def tiny_mvae(seed: int = 0, **overrides) -> MVAE:
    torch.manual_seed(seed)
    return MVAE({"modalities": MODALITIES, **TINY, "k": 1, "warmup": 2, **overrides})


class TwoStageMVAE(MVAE):
    """Stage 1 trains everything for 2 epochs; stage 2 trains only the encoders."""

    @property
    def stages(self) -> list[Stage]:
        return [
            Stage("joint", 2),
            Stage("encoders", None, parameters=lambda m: m.encoders.parameters()),
        ]


class MeanModel(Trainable):
    """Deterministic toy model: loss = mean over samples of ||x_a - w||²."""

    model_type = "mean"

    def __init__(self, dim: int = 6, nan: bool = False) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(dim))
        self.nan = nan

    def forward(self, batch) -> LossOutput:
        per_sample: Tensor = (batch.data["a"] - self.w).pow(2).sum(-1)
        loss = per_sample.mean() * (float("nan") if self.nan else 1.0)
        return LossOutput(loss, {"first": batch.data["a"][:, 0].mean().detach()})


def weights(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture
def data() -> MultimodalDataset:
    return synthetic()


@pytest.fixture
def eval_data() -> MultimodalDataset:
    return synthetic(40, seed=1)


class WreckDecoders(Callback):
    """Adds large noise to `model`'s decoders when epoch `epoch` starts (an epoch before it is
    then the best) and keeps each epoch's final weights in `saved`."""

    def __init__(self, model: MVAE, epoch: int) -> None:
        self.model, self.epoch = model, epoch
        self.saved: dict[int, dict[str, Tensor]] = {}

    def on_epoch_start(self, state: TrainerState) -> None:
        if state.epoch == self.epoch:
            with torch.no_grad():
                for p in self.model.decoders.parameters():
                    p.add_(torch.randn_like(p) * 5)

    def on_epoch_end(self, state: TrainerState) -> None:
        self.saved[state.epoch] = weights(self.model)

