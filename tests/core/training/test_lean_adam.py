"""LeanAdam and LeanAdamW: bit for bit torch's fused Adam and AdamW, step after step, through
learning-rate changes, missing gradients, state dicts and hooks, with one fused call a step."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn

from core.training.config import OPTIMIZERS
from core.training.lean_adam import LeanAdam, LeanAdamW


def network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3), nn.Linear(3, 2))


def gradients(model: nn.Module, step: int, skip_last: bool = False) -> None:
    """The same pseudo-gradients for a given step, whichever optimizer reads them."""
    g = torch.Generator().manual_seed(100 + step)
    params = list(model.parameters())
    for i, p in enumerate(params):
        missing = skip_last and i == len(params) - 1
        p.grad = None if missing else torch.randn(p.shape, generator=g) * 10.0 ** (i % 3 - 2)


def assert_same(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    pa = [p for g in a.param_groups for p in g["params"]]
    pb = [p for g in b.param_groups for p in g["params"]]
    for x, y in zip(pa, pb, strict=True):
        assert torch.equal(x, y)
        for key, value in a.state[x].items():
            assert torch.equal(value, b.state[y][key]), key


Build = Callable[..., torch.optim.Optimizer]
PAIRS = [
    (LeanAdam, torch.optim.Adam, {}),
    (LeanAdam, torch.optim.Adam, {"weight_decay": 0.1, "betas": (0.8, 0.99), "eps": 1e-6}),
    (LeanAdamW, torch.optim.AdamW, {"weight_decay": 0.05}),
    (LeanAdam, torch.optim.Adam, {"maximize": True}),
]


@pytest.mark.parametrize(("lean", "stock", "options"), PAIRS)
def test_every_step_equals_torchs_fused_update(lean: Build, stock: Build, options: dict) -> None:
    ours, theirs = network(), network()
    a = lean(ours.parameters(), lr=1e-2, fused=True, **options)
    b = stock(theirs.parameters(), lr=1e-2, fused=True, **options)
    schedules = [torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5) for o in (a, b)]
    for step in range(12):
        skip = step in (4, 5)  # a parameter without a gradient: torch's own step, then lean again
        for model in (ours, theirs):
            gradients(model, step, skip_last=skip)
        a.step()
        b.step()
        for schedule in schedules:
            schedule.step()
        assert_same(a, b)
    assert a.param_groups[0]["lr"] == b.param_groups[0]["lr"] == 1e-2 * 0.5**4


def test_a_lean_step_is_one_fused_call_on_step_counts_that_share_a_tensor() -> None:
    model = network()
    opt = LeanAdam(model.parameters(), lr=1e-3, fused=True)
    gradients(model, 0)
    opt.step()  # torch's step sets the state up
    counts = {opt.state[p]["step"].untyped_storage().data_ptr() for p in model.parameters()}
    assert len(counts) == 1
    gradients(model, 1)
    with torch.profiler.profile() as profile:
        opt.step()
    calls = {e.key: e.count for e in profile.key_averages()}
    assert calls.get("aten::_fused_adam_") == 1
    assert "aten::_foreach_add_" not in calls
    assert all(opt.state[p]["step"].item() == 2 for p in model.parameters())


def test_a_state_dict_round_trip_continues_as_an_uninterrupted_run() -> None:
    ours, theirs = network(), network()
    a = LeanAdam(ours.parameters(), lr=1e-2, fused=True)
    b = torch.optim.Adam(theirs.parameters(), lr=1e-2, fused=True)
    for step in range(3):
        for model in (ours, theirs):
            gradients(model, step)
        a.step()
        b.step()
    saved = copy.deepcopy(a.state_dict())
    a = LeanAdam(ours.parameters(), lr=1e-2, fused=True)
    a.load_state_dict(saved)
    for step in range(3, 6):
        for model in (ours, theirs):
            gradients(model, step)
        a.step()
        b.step()
        assert_same(a, b)


def test_hooks_run_once_a_step_on_either_path_and_other_cases_fall_back() -> None:
    model = network()
    opt = LeanAdam(model.parameters(), lr=1e-3, fused=True)
    calls: list[str] = []
    opt.register_step_pre_hook(lambda *_: calls.append("pre"))
    opt.register_step_post_hook(lambda *_: calls.append("post"))
    for step in range(4):
        gradients(model, step, skip_last=step == 2)
        opt.step()
    assert calls == ["pre", "post"] * 4
    ours, theirs = network(), network()  # amsgrad: torch's step every time, the same update
    a = LeanAdam(ours.parameters(), lr=1e-2, fused=True, amsgrad=True)
    b = torch.optim.Adam(theirs.parameters(), lr=1e-2, fused=True, amsgrad=True)
    for step in range(3):
        for m in (ours, theirs):
            gradients(m, step)
        assert a.step(lambda: torch.tensor(1.0)) == 1.0  # a closure: torch's step returns it
        b.step()
    assert_same(a, b)


def test_the_trainer_builds_the_lean_optimizers() -> None:
    assert OPTIMIZERS["adam"] is LeanAdam and OPTIMIZERS["adamw"] is LeanAdamW
    assert issubclass(LeanAdam, torch.optim.Adam) and issubclass(LeanAdamW, torch.optim.AdamW)
