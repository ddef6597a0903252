"""Checkpoints: safetensors + JSON only, exact round trip, atomic writes."""

from __future__ import annotations

import json
import math

import pytest
import torch

from core.training import Trainer, TrainerConfig, checkpoint
from tests.core.training.conftest import tiny_mvae


def test_flatten_round_trip():
    state = {"w": torch.arange(3.0), 0: {"step": torch.tensor(2.0)}, "t": (1, 0.5), "x": [None]}
    state["inf"] = math.inf
    tensors: dict = {}
    rebuilt = checkpoint.unflatten(checkpoint.flatten(state, tensors), tensors)
    assert set(tensors) == {"w", "0/step"}
    assert torch.equal(rebuilt["w"], state["w"]) and torch.equal(
        rebuilt[0]["step"], torch.tensor(2.0)
    )
    assert rebuilt["t"] == (1, 0.5) and rebuilt["x"] == [None] and rebuilt["inf"] == math.inf


def test_checkpoint_files_are_safetensors_and_json_only(tmp_path, data, monkeypatch):
    cfg = TrainerConfig(epochs=2, batch_size=16, output_dir=str(tmp_path), keep_best=True)
    Trainer(tiny_mvae(), data, data, cfg).fit()
    files = sorted(p.name for p in (tmp_path / "checkpoints").rglob("*") if p.is_file())
    assert files == ["state.json", "state.safetensors"]
    suffixes = {p.suffix for p in tmp_path.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".safetensors", ".jsonl", ".md"}

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load must never be used")

    monkeypatch.setattr(torch, "load", refuse)
    cfg3 = cfg.model_copy(update={"epochs": 3})
    assert Trainer(tiny_mvae(), data, data, cfg3).fit(resume=True).epochs_run == 3


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, data, monkeypatch):
    cfg = TrainerConfig(epochs=1, batch_size=16, output_dir=str(tmp_path))
    Trainer(tiny_mvae(), data, None, cfg).fit()
    folder = tmp_path / "checkpoints"
    before = checkpoint.latest_checkpoint(folder)
    expected = checkpoint.load_checkpoint(before)

    def crash(tensors, path, *args, **kwargs):
        path.write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint(folder, 99, {"model": torch.ones(3)})
    assert checkpoint.latest_checkpoint(folder) == before
    assert [p.name for p in folder.iterdir()] == [before.name]
    again = checkpoint.load_checkpoint(folder)
    assert torch.equal(
        again["model"]["encoders.a.1.weight"], expected["model"]["encoders.a.1.weight"]
    )

    (folder / ".tmp-leftover").mkdir()  # a crash that killed the process mid-write
    (folder / ".tmp-leftover" / "state.json").write_text("{")
    assert checkpoint.latest_checkpoint(folder) == before


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.load_checkpoint(tmp_path)


def test_checkpoint_of_another_model_is_refused(tmp_path, data):
    cfg = TrainerConfig(epochs=1, batch_size=16, output_dir=str(tmp_path))
    Trainer(tiny_mvae(), data, None, cfg).fit()
    other = tiny_mvae(latent_dim=5)
    with pytest.raises(checkpoint.CheckpointError, match="do not fit"):
        Trainer(other, data, None, cfg.model_copy(update={"epochs": 2})).fit(resume=True)


def test_a_checkpoint_from_before_named_optimizers_resumes_exactly(tmp_path, data):
    """Checkpoints written when the Trainer had one optimizer hold `optimizer`, `scheduler` and
    `scaler`; they resume as the "main" optimizer, to the same weights as a straight run."""
    cfg = {"batch_size": 16, "seed": 2, "scheduler": {"kind": "exponential", "gamma": 0.8}}
    straight = tiny_mvae(0)
    Trainer(straight, data, None, TrainerConfig(epochs=3, **cfg)).fit()

    out = tmp_path / "run"
    Trainer(tiny_mvae(0), data, None, TrainerConfig(epochs=2, output_dir=str(out), **cfg)).fit()
    (folder,) = (out / "checkpoints").iterdir()
    state = checkpoint.load_checkpoint(folder)
    for new, old in (
        ("optimizers", "optimizer"),
        ("schedulers", "scheduler"),
        ("scalers", "scaler"),
    ):
        state[old] = state.pop(new)["main"]
    checkpoint.save_checkpoint(out / "checkpoints", int(folder.name.split("-")[1]), state)
    assert "optimizer" in json.loads((folder / "state.json").read_text())["state"]

    resumed = tiny_mvae(5)
    cfg3 = TrainerConfig(epochs=3, output_dir=str(out), **cfg)
    assert Trainer(resumed, data, None, cfg3).fit(resume=True).epochs_run == 3
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
