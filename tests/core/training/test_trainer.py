"""Trainer: exact resume, stages, keep_best, clipping, evaluation and metric averaging."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_pre_hook

from core.training import Callback, Trainer, TrainerConfig, TrainerState, TrainingError
from core.training.batches import shuffled_batches
from core.training.freezing import StageFreezer
from core.training.optimizers import StageOptimizers
from tests.core.training.conftest import (
    MeanModel,
    TwoStageMVAE,
    WreckDecoders,
    assert_same_weights,
    synthetic,
    tiny_mvae,
    weights,
)

BASE = {"batch_size": 16, "learning_rate": 3e-3, "seed": 3}


class StopAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, state: TrainerState) -> bool:
        return state.global_step >= self.step


def config(tmp_path, name: str, **kw) -> TrainerConfig:
    return TrainerConfig(**{**BASE, "output_dir": str(tmp_path / name), **kw})


@pytest.mark.parametrize("model_cls", [None, TwoStageMVAE], ids=["mvae", "two-stage"])
def test_resume_is_bit_exact(tmp_path, data, eval_data, model_cls):
    def make(seed):
        return tiny_mvae(seed) if model_cls is None else TwoStageMVAE(tiny_mvae(seed).config)

    sched = {"kind": "exponential", "gamma": 0.9}
    straight = make(0)
    full = Trainer(straight, data, eval_data, config(tmp_path, "a", epochs=4, scheduler=sched))
    expected = full.fit()

    first = make(0)
    Trainer(first, data, eval_data, config(tmp_path, "b", epochs=2, scheduler=sched)).fit()
    resumed = make(seed=123)  # different init: the weights must come from the checkpoint
    again = Trainer(resumed, data, eval_data, config(tmp_path, "b", epochs=4, scheduler=sched))
    result = again.fit(resume=True)

    assert_same_weights(weights(straight), weights(resumed))
    assert result.train_metrics == expected.train_metrics
    assert result.eval_metrics == expected.eval_metrics
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_mid_epoch_resume_is_bit_exact(tmp_path, data):
    straight = tiny_mvae(0)
    expected = Trainer(straight, data, None, config(tmp_path, "a", epochs=3)).fit()

    cfg = config(tmp_path, "b", epochs=3, checkpoint_every_steps=4)
    stopped = Trainer(tiny_mvae(0), data, None, cfg, [StopAtStep(9)]).fit()
    assert stopped.stopped_early and stopped.global_step == 9  # 6 steps per epoch: mid-epoch
    assert stopped.checkpoint.endswith("step-0000000009")

    resumed = tiny_mvae(seed=7)
    result = Trainer(resumed, data, None, cfg).fit(resume=True)
    assert result.global_step == expected.global_step == 18
    assert_same_weights(weights(straight), weights(resumed))
    assert result.train_metrics == expected.train_metrics


def test_resume_without_checkpoint_starts_fresh_and_fresh_start_refuses_old_run(tmp_path, data):
    cfg = config(tmp_path, "a", epochs=1)
    assert Trainer(tiny_mvae(), data, None, cfg).fit(resume=True).epochs_run == 1
    with pytest.raises(ValueError, match="already holds checkpoints"):
        Trainer(tiny_mvae(), data, None, cfg).fit()
    assert Trainer(tiny_mvae(), data, None, cfg).fit(overwrite=True).epochs_run == 1


def test_second_stage_trains_only_encoders(tmp_path, data):
    model = TwoStageMVAE(tiny_mvae().config)
    snapshots: dict[int, dict] = {0: weights(model)}

    class Snapshot(Callback):
        def on_epoch_end(self, state: TrainerState) -> None:
            snapshots[state.epoch] = weights(model)

    Trainer(model, data, None, config(tmp_path, "a", epochs=4), [Snapshot()]).fit()
    before, after = snapshots[2], snapshots[4]
    decoders = [k for k in before if k.startswith("decoders.")]
    encoders = [k for k in before if k.startswith("encoders.")]
    assert decoders and encoders
    assert any(not torch.equal(snapshots[0][k], before[k]) for k in decoders)  # stage 1 moved them
    assert all(torch.equal(before[k], after[k]) for k in decoders)
    assert all(not torch.equal(before[k], after[k]) for k in encoders)
    lines = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["stage"] for line in lines] == ["joint"] * 2 + ["encoders"] * 2


class GradientsSeen(Callback):
    """After each epoch's first step: which top-level parts hold gradients, and which are
    frozen (requires_grad False)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.seen = model, {}

    def on_step_end(self, state: TrainerState) -> None:
        if state.step_in_epoch == 1:
            named = list(self.model.named_parameters())
            graded = {n.split(".")[0] for n, p in named if p.grad is not None}
            frozen = {n.split(".")[0] for n, p in named if not p.requires_grad}
            self.seen[state.epoch] = (graded, frozen)


def test_a_stage_computes_gradients_only_for_what_it_trains(tmp_path, data):
    model = TwoStageMVAE(tiny_mvae().config)
    model.decoders["c"][1].bias.requires_grad_(False)  # frozen by the user: stays frozen
    seen = GradientsSeen(model)
    Trainer(model, data, None, config(tmp_path, "a", epochs=3), [seen]).fit()
    assert seen.seen[1] == ({"encoders", "decoders"}, {"decoders"})  # only the user's bias
    assert seen.seen[3] == ({"encoders"}, {"decoders"})  # stage 2 steps only the encoders
    assert not model.decoders["c"][1].bias.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if "c.1.bias" not in n)


def test_a_step_starts_with_no_gradient_on_any_parameter_of_the_model():
    """start_step clears the gradients of the whole model, the parameters its stage leaves
    alone included (a user's own backward may have filled them)."""
    model = TwoStageMVAE(tiny_mvae().config)
    optimizers = StageOptimizers(model, model.stages[1], TrainerConfig(), stage_epochs=1)
    assert {id(p) for p in optimizers.parameters()} < {id(p) for p in model.parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizers.start_step()
    assert all(p.grad is None for p in model.parameters())


def test_freezing_outside_the_stage_leaves_results_bit_exact(tmp_path, data, monkeypatch):
    frozen = TwoStageMVAE(tiny_mvae().config)
    Trainer(frozen, data, None, config(tmp_path, "a", epochs=4)).fit()
    monkeypatch.setattr(StageFreezer, "freeze_all_but", lambda self, stepped: None)
    unfrozen = TwoStageMVAE(tiny_mvae().config)
    Trainer(unfrozen, data, None, config(tmp_path, "b", epochs=4)).fit()
    assert_same_weights(weights(frozen), weights(unfrozen))


def test_parameters_are_unfrozen_when_fit_raises(tmp_path, data):
    model = TwoStageMVAE(tiny_mvae().config)

    class Fail(Callback):
        def on_epoch_start(self, state: TrainerState) -> None:
            if state.epoch == 3:
                assert not any(p.requires_grad for p in model.decoders.parameters())
                raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        Trainer(model, data, None, config(tmp_path, "a", epochs=4), [Fail()]).fit()
    assert all(p.requires_grad for p in model.parameters())


def test_loss_decreases(data):
    model = tiny_mvae(warmup=0)
    history = []

    class Record(Callback):
        def on_epoch_end(self, state: TrainerState) -> None:
            history.append(state.train_metrics["loss"])

    Trainer(model, data, None, TrainerConfig(**BASE, epochs=8), [Record()]).fit()
    assert history[-1] < 0.9 * history[0]


def test_keep_best_restores_the_best_epoch(tmp_path, data, eval_data):
    model = tiny_mvae()
    wreck = WreckDecoders(model, epoch=3)  # epoch 2 is the best
    saved = wreck.saved
    cfg = config(tmp_path, "a", epochs=4, keep_best=True, learning_rate=1e-4)
    result = Trainer(model, data, eval_data, cfg, [wreck]).fit()
    assert result.best_epoch == 2
    assert_same_weights(weights(model), saved[2])
    assert_same_weights(load_file(tmp_path / "a" / "model" / "model.safetensors"), saved[2])
    assert_same_weights(load_file(tmp_path / "a" / "best" / "model.safetensors"), saved[2])
    info = json.loads((tmp_path / "a" / "model" / "training.json").read_text())
    assert info["best_epoch"] == 2
    assert info["final_metrics"]["eval_loss"] == result.best_eval_loss
    assert all(isinstance(v, float) for v in info["final_metrics"].values())


def test_keep_best_without_eval_data_is_an_error(data):
    with pytest.raises(ValueError, match="keep_best"):
        Trainer(tiny_mvae(), data, None, TrainerConfig(keep_best=True))


def test_grad_clipping_bounds_the_norm_seen_by_the_optimizer(data):
    norms: list[float] = []

    def hook(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    handle = register_optimizer_step_pre_hook(hook)
    try:
        cfg = TrainerConfig(**BASE, epochs=1, grad_clip_norm=0.5)
        result = Trainer(tiny_mvae(), data, None, cfg).fit()
    finally:
        handle.remove()
    assert len(norms) == 6
    assert max(norms) <= 0.5 + 1e-4
    assert result.train_metrics["grad_norm"] > 0.5  # clipping was actually needed


def test_eval_metrics_come_from_eval_data_in_order_and_in_eval_mode(data):
    eval_data = synthetic(30, seed=5)
    requested: list[list[int]] = []
    original = type(eval_data).batch

    def spy(self, indices):
        requested.append(indices.tolist())
        return original(self, indices)

    eval_data.__class__ = type("Spy", (type(eval_data),), {"batch": spy})
    modes: list[bool] = []
    model = tiny_mvae()
    model.register_forward_pre_hook(lambda m, args: modes.append(m.training))
    cfg = TrainerConfig(**BASE, epochs=1, eval_batch_size=8)
    trainer = Trainer(model, data, eval_data, cfg)
    result = trainer.fit()
    assert [i for chunk in requested for i in chunk] == list(range(30))
    assert modes[-4:] == [False] * 4 and modes[:6] == [True] * 6
    assert result.eval_metrics != result.train_metrics
    rng = torch.get_rng_state()
    assert trainer.evaluate() == result.eval_metrics  # same noise every time
    assert torch.equal(rng, torch.get_rng_state())  # evaluation leaves training RNG alone


def test_epoch_metrics_are_weighted_by_batch_size(data):
    model = MeanModel()
    cfg = TrainerConfig(epochs=1, batch_size=40, eval_batch_size=37, learning_rate=1e-9)
    result = Trainer(model, data, data, cfg).fit()  # batches 40, 40, 16 and 37, 37, 22
    assert result.eval_metrics["first"] == pytest.approx(float(data.data["a"][:, 0].mean()))
    assert result.train_metrics["first"] == pytest.approx(float(data.data["a"][:, 0].mean()))
    exact = float((data.data["a"] - model.w.detach()).pow(2).sum(-1).mean())
    assert result.eval_metrics["loss"] == pytest.approx(exact, rel=1e-6)


def test_nan_loss_is_a_clear_error(data):
    with pytest.raises(TrainingError, match="learning_rate"):
        Trainer(MeanModel(nan=True), data, None, TrainerConfig(epochs=1)).fit()


def test_final_model_and_training_info(tmp_path, data):
    cfg = config(tmp_path, "a", epochs=2)
    result = Trainer(tiny_mvae(), data, None, cfg, dataset_name="synthetic").fit()
    folder = tmp_path / "a" / "model"
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    info = json.loads((folder / "training.json").read_text())
    assert info["dataset"] == "synthetic" and info["epochs"] == 2 and info["best_epoch"] is None
    assert info["trainer"]["epochs"] == 2 and info["library_version"]
    assert info["final_metrics"]["train_loss"] == result.train_metrics["loss"]
    assert result.model_dir == str(folder) and not result.stopped_early


@pytest.mark.parametrize(
    "loader", [{"num_workers": 2}, {"data_on_device": "never"}], ids=["workers", "no-workers"]
)
def test_batches_through_a_dataloader_give_the_same_training(data, loader):
    """By default the batches are indexed straight from the in-memory dataset."""
    models = []
    for options in ({}, loader):
        model = tiny_mvae()
        Trainer(model, data, data, TrainerConfig(**BASE, epochs=1, **options)).fit()
        models.append(weights(model))
    assert_same_weights(*models)


def test_the_model_is_told_its_progress_before_every_step_also_after_a_resume(tmp_path, data):
    """progress = epochs done, counting the current epoch's steps (0 at the first step)."""

    def recording(seed: int) -> tuple[torch.nn.Module, list[float]]:
        model, seen = tiny_mvae(seed), []
        tell = model.set_progress
        model.set_progress = lambda epochs: (seen.append(epochs), tell(epochs))
        return model, seen

    expected = [e + i / 6 for e in range(3) for i in range(6)]  # 96 samples, batch 16
    straight, seen = recording(0)
    Trainer(straight, data, None, TrainerConfig(epochs=3, batch_size=16)).fit()
    assert seen == pytest.approx(expected)

    cfg = config(tmp_path, "a", epochs=3, batch_size=16, checkpoint_every_steps=1)
    Trainer(tiny_mvae(0), data, None, cfg, [StopAtStep(8)]).fit()
    resumed, seen = recording(1)
    Trainer(resumed, data, None, cfg).fit(resume=True)
    assert seen == pytest.approx(expected[8:])


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "rmsprop"])
def test_the_fused_or_foreach_update_is_the_loop_update_to_float_rounding(data, optimizer):
    """The Trainer picks torch's fused (or foreach) optimizer step; one epoch of it gives the
    weights of torch's per-parameter loop up to float rounding."""
    trained = []
    for kwargs in ({}, {"foreach": False}):
        model = tiny_mvae(0)
        cfg = TrainerConfig(**BASE, epochs=1, optimizer=optimizer, optimizer_kwargs=kwargs)
        trainer = Trainer(model, data, None, cfg)
        trainer.fit()
        trained.append(weights(model))
        flags = trainer.optimizers.optimizers["main"].defaults
        assert bool(flags.get("fused")) or bool(flags.get("foreach")) or kwargs
    for key in trained[0]:
        torch.testing.assert_close(trained[0][key], trained[1][key], rtol=1e-4, atol=1e-5)


def test_the_trainer_adds_nothing_to_the_maths_of_a_plain_loop(data):
    """Two epochs of the Trainer give bit for bit the weights of a hand-written loop (zero_grad,
    loss, backward, Adam step) over the same batches with the same random stream: its clock,
    metric sums and callbacks change nothing (bench/RESULTS.md, the JMVAE investigation)."""
    trainer_model, loop_model = tiny_mvae(0), tiny_mvae(0)
    Trainer(trainer_model, data, None, TrainerConfig(**BASE, epochs=2)).fit()
    torch.manual_seed(BASE["seed"])
    opt = torch.optim.Adam(loop_model.parameters(), lr=BASE["learning_rate"], fused=True)
    loop_model.train()
    for epoch in (1, 2):
        loop_model.set_epoch(epoch)
        for step, idx in enumerate(shuffled_batches(len(data), 16, BASE["seed"], epoch)):
            loop_model.set_progress(epoch - 1 + step / 6)
            opt.zero_grad()
            loop_model(data.__getitems__(idx)).loss.backward()
            opt.step()
    assert_same_weights(weights(trainer_model), weights(loop_model))
