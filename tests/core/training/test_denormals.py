"""Denormal floats flushed to zero while training on the CPU (core/training/denormals.py)."""

from __future__ import annotations

import pytest
import torch

from core.training import Callback, Trainer, TrainerConfig, TrainerState
from core.training.denormals import (
    denormal,
    denormals_flushed,
    flushing_denormals,
    set_flush_denormals,
)
from tests.core.training.conftest import assert_same_weights, tiny_mvae, weights

pytestmark = pytest.mark.skipif(
    not torch.set_flush_denormal(False),  # every x86-64 and ARM64 CPU has the mode
    reason="this CPU has no flush-to-zero mode",
)


def denormals(n: int) -> torch.Tensor:
    """`n` copies of a denormal float32 (1.4e-42), made from its bits (no arithmetic)."""
    return torch.full((n,), 1000, dtype=torch.int32).view(torch.float32)


def flushed_share(x: torch.Tensor) -> float:
    """The share of `x * 1` that comes out zero: the elements computed by flushing threads."""
    return float((x * 1.0 == 0).float().mean())


def test_every_thread_flushes_inside_the_block_and_none_after() -> None:
    x = denormals(4_000_000)  # large enough that every intra-op thread computes a part
    assert flushed_share(x) == 0.0  # the thread pool is up, not flushing
    with flushing_denormals():
        assert denormals_flushed()
        assert flushed_share(x) == 1.0  # the worker threads too, not only this one
    assert not denormals_flushed()
    assert flushed_share(x) == 0.0


def test_the_mode_before_the_block_is_restored() -> None:
    set_flush_denormals(True)
    try:
        with flushing_denormals():
            pass
        assert denormals_flushed()
        with flushing_denormals(enabled=False):  # disabled: leaves the mode alone
            assert denormals_flushed()
    finally:
        set_flush_denormals(False)
    with flushing_denormals(enabled=False):
        assert not denormals_flushed()


@pytest.mark.parametrize("flush", [False, True])
def test_adams_moment_of_a_parameter_without_gradient_decays_to_zero_when_flushed(flush) -> None:
    """The mechanism: with a zero gradient Adam's first moment shrinks by β1 = 0.9 a step; from
    1e-37 it is denormal after 21 steps and would stay so for ~150 more unless flushed."""
    weight = torch.nn.Parameter(torch.ones(1000))
    opt = torch.optim.Adam([weight], lr=1e-3, fused=True)
    weight.grad = torch.full_like(weight, 1e-37)
    opt.step()
    weight.grad = torch.zeros_like(weight)
    with flushing_denormals(flush):
        for _ in range(40):
            opt.step()
    moment = opt.state[weight]["exp_avg"]
    assert bool(denormal(moment).all()) is not flush
    assert bool((moment == 0).all()) is flush


class ModeProbe(Callback):
    """Whether denormals were flushed at each step."""

    def __init__(self) -> None:
        self.modes: list[bool] = []

    def on_step_end(self, state: TrainerState) -> None:
        self.modes.append(denormals_flushed())


@pytest.mark.parametrize("flush", [True, False])
def test_the_trainer_flushes_while_it_trains_on_the_cpu(data, flush) -> None:
    probe = ModeProbe()
    config = TrainerConfig(epochs=2, batch_size=16, seed=3, flush_denormals=flush)
    Trainer(tiny_mvae(0), data, None, config, [probe]).fit()
    assert probe.modes and set(probe.modes) == {flush}
    assert not denormals_flushed()  # the process's mode is as before


def test_flushing_changes_no_weight_of_a_run_without_denormals(data) -> None:
    """The setting changes only values under 1.2e-38: a short run has none, and its weights are
    bit for bit those of a run without it."""
    runs = []
    for flush in (True, False):
        model = tiny_mvae(0)
        config = TrainerConfig(epochs=2, batch_size=16, seed=3, flush_denormals=flush)
        Trainer(model, data, None, config).fit()
        runs.append(weights(model))
    assert_same_weights(*runs)
