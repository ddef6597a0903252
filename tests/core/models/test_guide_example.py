"""The worked example of docs/adding-a-model.md runs as written: the model it defines builds,
trains, encodes, generates, samples, estimates likelihoods and round-trips through a folder."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from core.data import builtin_modalities, load_builtin
from core.models import MODEL_REGISTRY, MultimodalVAE, build_model
from core.training import Trainer, TrainerConfig

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "adding-a-model.md"


def example_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    (block,) = [b for b in blocks if "class WeightedPoE(MultimodalVAE)" in b]
    return block


def test_the_worked_example_is_a_complete_model(tmp_path) -> None:
    namespace: dict = {"__name__": "guide_example"}
    exec(compile(example_source(), str(GUIDE), "exec"), namespace)
    try:
        check(tmp_path)
    finally:
        del MODEL_REGISTRY["weighted_poe"]  # registered by the example; the suite's own list


def check(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = {"model_type": "weighted_poe", "modalities": builtin_modalities("digits")}
    model = build_model({**config, "latent_dim": 4, "encoder": {"kind": "mlp", "hidden": [32]}})
    assert type(model).__name__ == "WeightedPoE"
    train = load_builtin("digits", "train").subset(range(256))
    trainer = Trainer(model, train, None, TrainerConfig(epochs=3, batch_size=64, seed=0))
    before = trainer.evaluate(train)["loss"]
    trainer.fit()
    assert trainer.evaluate(train)["loss"] < before
    batch = load_builtin("digits", "test").batch(slice(0, 5))
    assert model.generate(batch, ["image"], ["label"], n_samples=2)["label"].shape == (2, 5, 10)
    assert model.sample(3)["image"].shape == (3, 1, 8, 8)
    assert torch.isfinite(model.log_likelihood(batch, k=8)).all()
    loaded = MultimodalVAE.from_pretrained(model.save_pretrained(tmp_path / "m"))
    g = [torch.Generator().manual_seed(1) for _ in range(2)]
    a, b = model.sample(4, generator=g[0]), loaded.sample(4, generator=g[1])
    assert all(torch.equal(a[m], b[m]) for m in a)
