"""TrainerConfig validation: unknown fields, schedulers, optimizer arguments, devices."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from core.models import Stage
from core.training import Trainer, TrainerConfig
from core.training.optim import plan_stages
from tests.core.training.conftest import tiny_mvae


def test_every_field_is_described():
    assert all(f.description for f in TrainerConfig.model_fields.values())


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"epoch": 3}, "epoch"),
        ({"scheduler": {"kind": "linear"}}, "linear"),
        ({"scheduler": {"kind": "step", "step_size": 2, "gama": 0.5}}, "gama"),
        ({"scheduler": {"kind": "step"}}, "step_size"),
        ({"optimizer": "lbfgs", "mixed_precision": "fp16"}, "optimizer"),
        ({"optimizer": "lbfgs", "optimizer_kwargs": {"max_iter": 10**6}}, "max_iter"),
        ({"optimizer_kwargs": {"momentun": 0.9}, "optimizer": "sgd"}, "momentun"),
        ({"optimizer_kwargs": {"lr": 0.1}}, "learning_rate"),
        ({"grad_clip_norm": 0}, "grad_clip_norm"),
        ({"epochs": 100_001}, "epochs"),
        ({"device": "gpu"}, "device"),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
    ],
)
def test_invalid_configs_name_the_field(kwargs, needle):
    with pytest.raises(ValidationError, match=needle):
        TrainerConfig(**kwargs)


def test_valid_schedulers_and_optimizers_run(data):
    for scheduler in [
        {"kind": "step", "step_size": 1},
        {"kind": "cosine"},
        {"kind": "plateau", "patience": 0},
        {"kind": "exponential", "gamma": 0.5},
    ]:
        cfg = TrainerConfig(epochs=2, batch_size=48, scheduler=scheduler, optimizer="adamw")
        Trainer(tiny_mvae(), data, data, cfg).fit()
    cfg = TrainerConfig(
        epochs=1, batch_size=48, optimizer="sgd", optimizer_kwargs={"momentum": 0.9}
    )
    Trainer(tiny_mvae(), data, None, cfg).fit()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only errors")
def test_cuda_options_on_a_cpu_machine(data):
    with pytest.raises(ValueError, match="fp16"):
        Trainer(tiny_mvae(), data, None, TrainerConfig(mixed_precision="fp16", device="cpu"))
    with pytest.raises(ValueError, match="CUDA is not available"):
        Trainer(tiny_mvae(), data, None, TrainerConfig(device="cuda"))
    assert Trainer(tiny_mvae(), data, None, TrainerConfig()).device.type == "cpu"


def test_bf16_autocast_on_cpu(data):
    cfg = TrainerConfig(epochs=1, batch_size=48, mixed_precision="bf16", device="cpu")
    result = Trainer(tiny_mvae(), data, None, cfg).fit()
    assert result.train_metrics["loss"] == result.train_metrics["loss"]  # finite, not NaN


def test_stage_plan():
    spans = plan_stages([Stage("a", 2), Stage("b", None)], 5)
    assert [(s.first, s.last) for s in spans] == [(1, 2), (3, 5)]
    assert len(plan_stages([Stage("a", 2), Stage("b", None)], 1)) == 1
    with pytest.raises(ValueError, match="cover only 3"):
        plan_stages([Stage("a", 2), Stage("b", 1)], 5)
    with pytest.raises(ValueError, match="only the last"):
        plan_stages([Stage("a", None), Stage("b", 1)], 5)
