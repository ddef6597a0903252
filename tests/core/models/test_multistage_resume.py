"""Models trained in stages (TELBO, JNF): a run stopped during stage 2 resumes in stage 2, with
the parts frozen after stage 1 unchanged and the stage-2 parts still learning."""

from __future__ import annotations

import pytest
import torch

from core.data.builtin import builtin_modalities, load_builtin
from core.models import build_model
from core.training import Trainer, TrainerConfig
from tests.core.models.test_telbo import JOINT

# model type, its options, the name of stage 2, the parameter prefixes stage 2 trains
MULTISTAGE = [
    ("telbo", {}, "unimodal", ("encoders.",)),
    ("jnf", {"flow_hidden": [8]}, "flows", ("encoders.", "flows.")),
]


@pytest.mark.parametrize("model_type, options, stage_two, trained", MULTISTAGE)
def test_a_run_stopped_in_stage_two_resumes_there_with_the_frozen_parts_unchanged(
    tmp_path, model_type, options, stage_two, trained
):
    def split(model) -> tuple[dict, dict]:
        params = {n: p.detach().clone() for n, p in model.named_parameters()}
        frozen = {n: p for n, p in params.items() if not n.startswith(trained)}
        return frozen, {n: p for n, p in params.items() if n.startswith(trained)}

    torch.manual_seed(0)
    net = {"kind": "mlp", "hidden": [16]}
    config = {"model_type": model_type, "modalities": builtin_modalities("digits"),
              "latent_dim": 4, "encoder": net, "decoder": net, "warmup": 1, **JOINT,
              **options}  # fmt: skip
    data = load_builtin("digits", "train").subset(torch.arange(128))
    cfg = TrainerConfig(epochs=2, batch_size=32, output_dir=str(tmp_path), seed=0)
    model = build_model(config)
    Trainer(model, data, None, cfg.model_copy(update={"epochs": 1})).fit()
    after_stage_one, learning_before = split(model)
    Trainer(model, data, None, cfg).fit(resume=True)  # one epoch of stage 2, then "killed"
    resumed = build_model(config)
    result = Trainer(resumed, data, None, cfg.model_copy(update={"epochs": 3})).fit(resume=True)
    assert result.epochs_run == 3 and resumed.stage == stage_two
    frozen, learning = split(resumed)
    for name, value in frozen.items():
        assert torch.equal(value, after_stage_one[name]), name
    assert any(not torch.equal(learning[n], learning_before[n]) for n in learning)
