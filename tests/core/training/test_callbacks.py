"""Callbacks: cooperative stop within one step, time limit, metrics log, progress bar."""

from __future__ import annotations

import io
import json
import threading

from core.training import Callback, StopOnEvent, TimeLimit, Trainer, TrainerConfig, TrainerState
from core.training.callbacks import ProgressBar
from tests.core.training.conftest import tiny_mvae


def test_stop_on_event_stops_at_the_next_step_and_checkpoints(tmp_path, data):
    event = threading.Event()

    class Trip(Callback):
        def on_step_end(self, state: TrainerState) -> None:
            if state.global_step == 5:
                event.set()

    cfg = TrainerConfig(epochs=5, batch_size=16, output_dir=str(tmp_path))
    result = Trainer(tiny_mvae(), data, None, cfg, [Trip(), StopOnEvent(event)]).fit()
    assert result.stopped_early and result.stop_reason == "cancelled"
    assert result.global_step == 5 and result.epochs_run == 0
    assert result.checkpoint.endswith("step-0000000005")
    assert (tmp_path / "model" / "model.safetensors").is_file()
    info = json.loads((tmp_path / "model" / "training.json").read_text())
    assert info["stopped_early"] is True


def test_stop_with_a_callable_and_a_return_value(data):
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 8  # polled at epoch start and after each step

    result = Trainer(
        tiny_mvae(), data, None, TrainerConfig(epochs=3, batch_size=16), [StopOnEvent(cancelled)]
    ).fit()
    assert result.stopped_early and result.global_step == 7

    class Enough(Callback):
        def on_epoch_end(self, state: TrainerState) -> bool:
            return state.epoch == 2

    result = Trainer(
        tiny_mvae(), data, None, TrainerConfig(epochs=4, batch_size=16), [Enough()]
    ).fit()
    assert result.stopped_early and result.epochs_run == 2 and result.stop_reason == "Enough"


def test_time_limit(data):
    result = Trainer(
        tiny_mvae(), data, None, TrainerConfig(epochs=3, batch_size=16), [TimeLimit(1e-9)]
    ).fit()
    assert result.stopped_early and result.global_step == 0 and "time limit" in result.stop_reason


def test_metrics_log_has_one_line_per_epoch(tmp_path, data, eval_data):
    cfg = TrainerConfig(epochs=3, batch_size=16, output_dir=str(tmp_path))
    result = Trainer(tiny_mvae(), data, eval_data, cfg).fit()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    assert [r["step"] for r in lines] == [6, 12, 18]
    for r in lines:
        assert {
            "lr",
            "elapsed",
            "train_loss",
            "eval_loss",
            "train_kl_joint",
            "eval_kl_joint",
        } <= set(r)
        assert r["lr"] == cfg.learning_rate
    assert lines[-1]["train_loss"] == result.train_metrics["loss"]
    assert lines[-1]["eval_loss"] == result.eval_metrics["loss"]
    assert result.metrics_log == str(tmp_path / "metrics.jsonl")


def test_progress_bar_only_when_forced_or_on_a_terminal(data):
    stream = io.StringIO()
    Trainer(
        tiny_mvae(),
        data,
        None,
        TrainerConfig(epochs=1, batch_size=16),
        [ProgressBar(force=True, stream=stream)],
    ).fit()
    assert "epoch 1/1" in stream.getvalue()
    quiet = io.StringIO()
    Trainer(
        tiny_mvae(), data, None, TrainerConfig(epochs=1, batch_size=16), [ProgressBar(stream=quiet)]
    ).fit()
    assert quiet.getvalue() == ""
