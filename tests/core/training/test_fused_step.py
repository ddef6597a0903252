"""TrainerConfig.fused_step: the whole compiled step trains as the eager step does; its Adam
maths is torch's; the steps it cannot reproduce run the ordinary way."""

from __future__ import annotations

import logging

import pytest
import torch
import torch._dynamo
from torch import nn
from torch._dynamo.utils import counters

from core.models import MVAE, build_model
from core.training import Callback, Trainer, TrainerConfig, TrainerState
from core.training.config import OPTIMIZERS
from core.training.fused_step import (
    FusedStep,
    _incrementer,
    adam_scalars,
    adam_update,
    clipped,
    unsupported,
)
from core.training.optimizers import StageOptimizers
from tests.core.training.conftest import MODALITIES, TINY, TwoStageMVAE, synthetic, tiny_mvae


class Record(Callback):
    """Every step's metrics, and whether it left gradients on `model`'s parameters."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.steps: list[dict[str, float]] = []
        self.gradients: list[bool] = []

    def on_step_end(self, state: TrainerState) -> None:
        self.steps.append(state.step_metrics)
        self.gradients.append(any(p.grad is not None for p in self.model.parameters()))


@pytest.mark.parametrize("kind", ["adam", "adamw"])
@pytest.mark.parametrize("options", [{}, {"weight_decay": 0.1, "maximize": True}])
def test_the_fused_update_is_torchs_adam(kind, options):
    """Five steps of `adam_update` on copies of the parameters give torch's fused Adam (AdamW)
    weights and moments to float rounding, with weight decay and maximize too."""
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(shape)) for shape in ((5, 3), (3,), (2, 2, 2))]
    ours = [p.detach().clone() for p in params]
    opt = OPTIMIZERS[kind](params, lr=0.01, betas=(0.8, 0.95), fused=True, **options)
    group = opt.param_groups[0]  # AdamW's default weight decay is 0.01
    hyper = {"beta1": 0.8, "beta2": 0.95, "eps": 1e-8, "weight_decay": group["weight_decay"],
             "maximize": group["maximize"], "decoupled": kind == "adamw"}  # fmt: skip
    moments = [torch.zeros_like(p) for p in ours], [torch.zeros_like(p) for p in ours]
    for count in range(1, 6):
        grads = [torch.randn_like(p) for p in params]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        scalars = torch.tensor(adam_scalars(0.01, 0.8, 0.95, count), dtype=torch.float64)
        adam_update(ours, grads, *moments, scalars, hyper)
    state = [opt.state[p] for p in params]
    theirs = (params, [s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state])
    for mine, expected in zip((ours, *moments), theirs, strict=True):
        for a, b in zip(mine, expected, strict=True):
            torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-7)


def test_clipping_scales_the_gradients_as_torch_does():
    torch.manual_seed(0)
    grads = [torch.randn(4, 3) * 3, torch.randn(5)]
    params = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_(params, 1.5)
    ours, our_norm = clipped(grads, 1.5)
    torch.testing.assert_close(our_norm, norm)
    for mine, p in zip(ours, params, strict=True):
        torch.testing.assert_close(mine, p.grad)
    small, _ = clipped(grads, 1e6)  # under the bound: unchanged
    torch.testing.assert_close(small[0], grads[0])


def stage_optimizers(model, **config) -> StageOptimizers:
    cfg = TrainerConfig(compile=True, **config)
    return StageOptimizers(model, model.stages[0], cfg, 1)


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"optimizer": "sgd"}, "the optimizer is SGD, not Adam or AdamW"),
        ({"optimizer_kwargs": {"amsgrad": True}}, "the optimizer uses amsgrad"),
        ({"mixed_precision": "bf16"}, "mixed_precision is 'bf16'"),
    ],
)
def test_steps_it_does_not_reproduce_say_why(config, reason):
    model = tiny_mvae()
    found = unsupported(model, stage_optimizers(model, **config), TrainerConfig(**config))
    assert found is not None and reason in found


def test_the_default_step_with_adam_is_fused_and_an_adversarial_models_is_not():
    model = tiny_mvae()
    assert unsupported(model, stage_optimizers(model), TrainerConfig()) is None
    torch.manual_seed(0)
    adversarial = build_model({"model_type": "maae", "modalities": MODALITIES, **TINY})
    reason = unsupported(adversarial, stage_optimizers(adversarial), TrainerConfig())
    assert reason == "the model has its own training_step"


def train(model, data, compile, **config):
    """The record of every step (each logged), and the trainer, of a run."""
    cfg = TrainerConfig(batch_size=20, seed=3, compile=compile, log_every_steps=1, **config)
    record = Record(model)
    trainer = Trainer(model, data, None, cfg, [record])
    trainer.fit()
    return record, trainer


def assert_same_run(fused, eager, fused_model, eager_model):
    fused, eager = fused.steps, eager.steps
    assert len(fused) == len(eager)
    for key in eager[0]:
        got = torch.tensor([s[key] for s in fused])
        torch.testing.assert_close(got, torch.tensor([s[key] for s in eager]), rtol=1e-4, atol=1e-5)
    for key, value in eager_model.state_dict().items():
        torch.testing.assert_close(fused_model.state_dict()[key], value, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # a first torch.compile takes ~10-30 s on 2 cores
def test_fused_training_matches_eager_and_never_recompiles(data):
    """MVAE with per-step KL annealing (its clock changes every step), a learning rate that a
    scheduler lowers every epoch and gradient clipping: losses, metrics (the clipped gradient
    norm among them) and weights agree with eager training, from one graph. 96 samples at
    batch 20: the last batch of 16 runs eagerly, as does each stage's first step."""
    torch._dynamo.reset()
    counters.clear()
    config = {"epochs": 3, "grad_clip_norm": 0.5,
              "scheduler": {"kind": "exponential", "gamma": 0.5}}  # fmt: skip
    eager_model, fused_model = (tiny_mvae(0, annealing="per_step") for _ in range(2))
    eager, _ = train(eager_model, data, False, **config)
    with torch._dynamo.config.patch(error_on_recompile=True):
        fused, trainer = train(fused_model, data, True, **config)
    assert trainer._fused is not None and trainer._fused.ran and not trainer._fused.broken
    assert counters["stats"]["unique_graphs"] == 1
    assert fused.steps[1]["grad_norm"] > 0.5  # clipped steps
    assert eager.steps[1]["loss"] != eager.steps[2]["loss"]
    assert_same_run(fused, eager, fused_model, eager_model)
    # gradients on the parameters only after ordinary steps: the first, and each last batch
    ordinary = [True, False, False, False, True] + [False, False, False, False, True] * 2
    assert fused.gradients == ordinary


@pytest.mark.slow
def test_a_fused_stage_change_trains_only_the_stages_parameters_as_eager(data):
    """Two stages: the second trains the encoders only; the decoders stay as eager training
    left them, and both stages' steps match eager ones."""
    torch._dynamo.reset()
    runs = []
    for compile in (False, True):
        torch.manual_seed(0)
        model = TwoStageMVAE({"modalities": MODALITIES, **TINY, "k": 1, "warmup": 2})
        steps, _ = train(model, data, compile, epochs=4)
        runs.append((steps, model))
    (eager, eager_model), (fused, fused_model) = runs
    assert_same_run(fused, eager, fused_model, eager_model)


class WithUnusedParameter(MVAE):
    """MVAE with a parameter the loss never reaches."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.unused = nn.Parameter(torch.ones(3))


@pytest.mark.slow
def test_a_parameter_the_loss_does_not_reach_is_left_as_torch_leaves_it(data):
    """torch's Adam skips a parameter without a gradient: no state, no change. The fused step
    updates only what the stage's first (ordinary) step gave a gradient."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = WithUnusedParameter({"modalities": MODALITIES, **TINY, "k": 1, "warmup": 2})
    _, trainer = train(model, data, True, epochs=2)
    assert trainer._fused is not None and trainer._fused.ran
    assert torch.equal(model.unused.detach(), torch.ones(3))
    assert model.unused not in trainer.optimizers.optimizers["main"].state  # type: ignore[union-attr]


class GraphBreak(MVAE):
    """MVAE whose forward the compiler cannot take as one graph."""

    def objective(self, batch, observed, experts):
        torch._dynamo.graph_break()
        return super().objective(batch, observed, experts)


@pytest.mark.slow
def test_a_model_the_compiler_cannot_take_whole_trains_with_the_compiled_forward(data, caplog):
    torch._dynamo.reset()
    runs = []
    for compile in (False, True):
        torch.manual_seed(0)
        model = GraphBreak({"modalities": MODALITIES, **TINY, "k": 1, "warmup": 2})
        with caplog.at_level(logging.WARNING):
            steps, trainer = train(model, data, compile, epochs=2)
        runs.append((steps, model))
    assert trainer._fused is not None and trainer._fused.broken and not trainer._fused.ran
    assert "the fused training step failed" in caplog.text
    (eager, eager_model), (fused, fused_model) = runs
    assert_same_run(fused, eager, fused_model, eager_model)


@pytest.mark.slow
def test_a_run_resumed_between_fused_steps_ends_as_the_straight_run(data, tmp_path):
    """The optimizer's state the fused steps update is torch's: a checkpoint after epoch 2
    resumes into the straight run's weights (to float rounding: the resumed stage's first step
    is an ordinary one)."""
    torch._dynamo.reset()
    straight = tiny_mvae(0)
    train(straight, data, True, epochs=3)
    out = tmp_path / "run"
    train(tiny_mvae(0), data, True, epochs=2, output_dir=str(out))
    resumed = tiny_mvae(5)
    cfg = TrainerConfig(epochs=3, batch_size=20, seed=3, compile=True, output_dir=str(out))
    Trainer(resumed, data, None, cfg).fit(resume=True)
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_buffer_the_model_updates_in_its_loss_moves_as_in_eager_training(data):
    """Nexus folds each batch's residual scale into a moving average (a buffer it writes in
    its forward): the fused step passes buffers through the transform, so it moves as eager."""
    torch._dynamo.reset()
    config = {"model_type": "nexus", "modalities": MODALITIES, **TINY}
    runs = []
    for compile in (False, True):
        torch.manual_seed(0)
        model = build_model(config)
        start = model.bottom_scales.clone()
        steps, trainer = train(model, data, compile, epochs=2)
        runs.append((steps, model))
    assert trainer._fused is not None and trainer._fused.ran and not trainer._fused.broken
    (eager, eager_model), (fused, fused_model) = runs
    assert not torch.allclose(eager_model.bottom_scales, start)
    assert_same_run(fused, eager, fused_model, eager_model)


@pytest.mark.slow
@pytest.mark.parametrize("fused_step", [False, True])
def test_each_training_in_a_process_gets_its_own_compiled_graphs(data, fused_step):
    """torch.compile keeps at most `recompile_limit` guard sets per code object and then runs
    eagerly (or fails, with fullgraph): each training compiles its own copy of the code, so a
    process training many models (a worker's jobs) compiles every one of them."""
    torch._dynamo.reset()
    counters.clear()
    with torch._dynamo.config.patch(recompile_limit=1):
        for run in range(3):
            _, trainer = train(tiny_mvae(run), data, True, epochs=1, fused_step=fused_step)
            assert counters["stats"]["unique_graphs"] == run + 1
            assert (trainer._fused is not None and trainer._fused.ran) is fused_step


def ordinary_step(model, optimizers, fused) -> None:
    """A step the Trainer's way when it does not fuse, then `observe`."""
    batch = synthetic(20).batch(torch.arange(20))
    optimizers.start_step()
    optimizers.step(model(batch).loss)
    fused.observe()


def test_the_step_counts_the_fused_step_keeps_are_torchs():
    """After an ordinary step the fused step reads torch's state: one count for the group, and
    its increment adds one to every parameter's step tensor (LeanAdam's one tensor of them in
    one op). Counts that differ within a group (no common bias correction) stop the fusing:
    the compiled forward takes the steps."""
    model = tiny_mvae()
    optimizers = stage_optimizers(model)
    fused = FusedStep(model, optimizers, None, None)
    assert fused.fusing and fused.groups is None  # before the stage's first step
    ordinary_step(model, optimizers, fused)
    (group,) = fused.groups  # type: ignore[misc]
    state = optimizers.optimizers["main"].state
    steps = [state[p]["step"] for p in group.params]
    assert group.count == 1 and len(group.params) == len(list(model.parameters()))
    group.increment()
    assert [int(s) for s in steps] == [2] * len(steps)
    steps[0].add_(5)  # one parameter counted apart
    ordinary_step(model, optimizers, fused)
    assert fused.groups is None and not fused.fusing


def test_step_tensors_of_their_own_are_incremented_one_by_one():
    steps = [torch.tensor(3.0), torch.tensor(3.0)]
    _incrementer(steps)()
    assert [float(s) for s in steps] == [4.0, 4.0]
    counts = torch.tensor([1.0, 1.0, 1.0])
    _incrementer(list(counts.unbind()))()
    assert counts.tolist() == [2.0, 2.0, 2.0]
