"""TrainerConfig.compile: a compiled forward trains as the eager one does, compiled once."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from core.models import build_model
from core.training import Callback, Trainer, TrainerConfig, TrainerState
from tests.core.training.conftest import MODALITIES, TINY, tiny_mvae

pytestmark = pytest.mark.slow  # a first torch.compile takes ~10-30 s on 2 cores


class Record(Callback):
    """Every step's loss."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_step_end(self, state: TrainerState) -> None:
        self.losses.append(state.step_metrics["loss"])


def test_compiled_training_matches_eager_and_never_recompiles(data):
    """MVAE's per-step KL annealing changes every step; read from the model's `clock` tensor it
    does not recompile the graph. 96 samples at batch 20: the last batch of 16 runs eagerly.
    Losses agree to float rounding (the compiled graph draws from torch's eager RNG)."""
    torch._dynamo.reset()
    runs = []
    for compile in (False, True):
        model = tiny_mvae(0, annealing="per_step")
        cfg = TrainerConfig(epochs=2, batch_size=20, seed=3, compile=compile, log_every_steps=1)
        record = Record()
        with torch._dynamo.config.patch(error_on_recompile=True):
            result = Trainer(model, data, data, cfg, [record]).fit()
        losses = record.losses
        runs.append((losses, result.final_metrics["eval_loss"], model.state_dict()))
    (eager, eager_eval, eager_w), (compiled, compiled_eval, compiled_w) = runs
    assert len(eager) == len(compiled) == 10
    assert eager[0] != eager[1]  # the annealed weight moved between steps
    torch.testing.assert_close(torch.tensor(compiled), torch.tensor(eager), rtol=1e-4, atol=1e-5)
    assert compiled_eval == pytest.approx(eager_eval, rel=1e-4)
    for key, value in eager_w.items():
        torch.testing.assert_close(compiled_w[key], value, rtol=1e-4, atol=1e-5)
    assert "forward" not in vars(model)  # the eager forward is back after training


def test_a_compiled_flow_stage_is_one_graph_and_matches_eager(data):
    """JNF's flow stage (zuko MAFs) compiles without a graph break, and across its stage change
    (other parameters frozen: one recompile) trains as the eager model does."""
    torch._dynamo.reset()
    counters.clear()
    config = {"model_type": "jnf", "modalities": MODALITIES, **TINY, "warmup": 1,
              "flow_hidden": [16]}  # fmt: skip
    runs = []
    for compile in (False, True):
        torch.manual_seed(0)
        model = build_model(config)
        cfg = TrainerConfig(epochs=2, batch_size=20, seed=3, compile=compile, log_every_steps=1)
        record = Record()
        Trainer(model, data, None, cfg, [record]).fit()
        runs.append(record.losses)
    assert dict(counters["graph_break"]) == {}
    assert counters["stats"]["unique_graphs"] == 2  # one per stage
    torch.testing.assert_close(torch.tensor(runs[1]), torch.tensor(runs[0]), rtol=1e-4, atol=1e-5)


def test_compile_without_a_compiler_is_a_clear_error(data, monkeypatch):
    monkeypatch.setenv("PATH", "")
    trainer = Trainer(tiny_mvae(0), data, None, TrainerConfig(epochs=1, compile=True))
    with pytest.raises(ValueError, match=r"compile: .* needs a C/C\+\+ compiler"):
        trainer.fit()
