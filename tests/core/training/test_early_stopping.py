"""Early stopping on any epoch metric, the automatic validation split, keep_best after a
warmup: what stops when, what is held out, and that a resume keeps the counters."""

from __future__ import annotations

import json

import pytest
import torch

from core.training import Callback, Trainer, TrainerConfig, TrainerState
from core.training.callbacks import TrainerState as State
from core.training.config import EarlyStopping
from core.training.early_stopping import EarlyStopper, split_off_validation
from tests.core.training.conftest import WreckDecoders, tiny_mvae

BASE = {"batch_size": 16, "learning_rate": 3e-3, "seed": 3}


def stopper_run(values: list[float], **spec) -> int | None:
    """The epoch at which a stopper fed `values` (as eval_loss) asks to stop."""
    stopper = EarlyStopper(EarlyStopping(**spec))
    for epoch, value in enumerate(values, start=1):
        state = State(epochs=len(values), total_steps=0, steps_per_epoch=0)
        state.eval_metrics = {"loss": value}
        if stopper.update(state, epoch):
            return epoch
    return None


def test_patience_min_delta_mode_and_start_epoch() -> None:
    assert stopper_run([5, 4, 4, 4, 4], patience=2) == 4  # best at 2, then 2 epochs without
    assert stopper_run([5, 4.95, 4.9, 4.85], patience=2, min_delta=0.1) == 3  # too small
    assert stopper_run([1, 2, 3, 3, 3], patience=2, mode="max") == 5
    assert stopper_run([5, 6, 7, 8], patience=2, start_epoch=3) is None  # epochs 1-2 ignored
    assert stopper_run([5, 6, 7, 8, 9], patience=2, start_epoch=3) == 5


def test_training_stops_when_the_validation_loss_stalls(tmp_path, data) -> None:
    class Freeze(Callback):
        """From epoch 3 on, nothing learns: the validation loss cannot improve."""

        def __init__(self, trainer_ref: list) -> None:
            self.ref = trainer_ref

        def on_epoch_start(self, state: TrainerState) -> None:
            if state.epoch == 3:
                for group in self.ref[0].optimizers.optimizers["main"].param_groups:
                    group["lr"] = 0.0

    ref: list = []
    cfg = TrainerConfig(**BASE, epochs=30, validation_split=0.25, output_dir=str(tmp_path / "a"),
                        early_stopping={"metric": "eval_loss", "patience": 2})  # fmt: skip
    trainer = Trainer(tiny_mvae(), data, None, cfg, [Freeze(ref)])
    ref.append(trainer)
    result = trainer.fit()
    assert result.epochs_run == 4  # epoch 2's loss is never beaten by 3 and 4 (weights frozen)
    assert result.stop_reason.startswith("early stopping: eval_loss")
    assert len(trainer.eval_data) == round(len(data) * 0.25)
    assert len(trainer.train_data) + len(trainer.eval_data) == len(data)
    state = json.loads(next((tmp_path / "a" / "checkpoints").glob("step-*/state.json")).read_text())
    assert state["state"]["early_stopping"]["bad_epochs"] == 2  # kept for an exact resume


def test_the_validation_split_is_drawn_from_the_seed(data) -> None:
    a_train, a_val = split_off_validation(data, 0.2, seed=1)
    _, b_val = split_off_validation(data, 0.2, seed=1)
    _, c_val = split_off_validation(data, 0.2, seed=2)
    assert torch.equal(a_val.data["a"], b_val.data["a"])
    assert not torch.equal(a_val.data["a"], c_val.data["a"])
    together = torch.cat([a_train.data["a"], a_val.data["a"]])
    assert torch.equal(together.sort(0).values, data.data["a"].sort(0).values)  # a partition


def test_an_unknown_metric_names_the_logged_ones(data) -> None:
    cfg = TrainerConfig(**BASE, epochs=2, early_stopping={"metric": "eval_elbo"})
    with pytest.raises(ValueError, match=r"'eval_elbo' is not logged by this run; it logs \["):
        Trainer(tiny_mvae(), data, data.subset(slice(0, 20)), cfg).fit()


def test_keep_best_waits_for_its_first_epoch(data, eval_data) -> None:
    model = tiny_mvae()
    for first, expected in ((1, {2}), (3, {3, 4})):  # without the warmup, epoch 2 is the best
        cfg = TrainerConfig(**{**BASE, "learning_rate": 1e-4}, epochs=4, keep_best=True,
                            keep_best_from_epoch=first)  # fmt: skip
        model.load_state_dict(tiny_mvae().state_dict())
        result = Trainer(model, data, eval_data, cfg, [WreckDecoders(model, epoch=3)]).fit()
        assert result.best_epoch in expected
