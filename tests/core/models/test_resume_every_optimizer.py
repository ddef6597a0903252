"""A run killed mid-epoch resumes to the weights of an uninterrupted run, bit for bit, for the
models whose training steps keep several optimizers (mAAE, mWAE), an LBFGS state (DCCAE) or
learnable dropout rates (sparse mcVAE), and the other coordinated and deterministic models."""

from __future__ import annotations

import pytest
import torch

from core.data.builtin import builtin_modalities, load_builtin
from core.models import build_model
from core.training import Callback, Trainer, TrainerConfig, TrainerState
from tests.core.training.conftest import assert_same_weights, weights

NET = {"kind": "mlp", "hidden": [16]}
RUNS = {
    "ae": ({"model_type": "ae"}, {}),
    "mcvae_sparse": ({"model_type": "mcvae", "sparse": True, "threshold": 0.9}, {}),
    "dvcca_private": ({"model_type": "dvcca", "modalities_specific_dim": 2}, {}),
    "dccae_lbfgs": ({"model_type": "dccae"}, {"optimizer": "lbfgs", "learning_rate": 0.1,
                                              "optimizer_kwargs": {"max_iter": 3}}),
    "maae": ({"model_type": "maae", "discriminator": NET}, {}),
    "mwae": ({"model_type": "mwae", "discriminator": NET}, {}),
    "mwae_mmd": ({"model_type": "mwae", "penalty": "mmd"}, {}),
}  # fmt: skip


class StopAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, state: TrainerState) -> bool:
        return state.global_step >= self.step


@pytest.mark.parametrize("run", list(RUNS))
def test_a_run_killed_mid_epoch_resumes_bit_exactly(run, tmp_path):
    options, training = RUNS[run]
    config = {**options, "modalities": builtin_modalities("digits"), "latent_dim": 3,
              "encoder": NET, "decoder": NET}  # fmt: skip
    data = load_builtin("digits", "train").subset(torch.arange(96))

    def model(seed: int):
        torch.manual_seed(seed)
        return build_model(config)

    def trainer_config(name: str, **extra) -> TrainerConfig:
        return TrainerConfig(epochs=2, batch_size=16, seed=3, output_dir=str(tmp_path / name),
                             **training, **extra)  # fmt: skip

    straight = model(0)
    Trainer(straight, data, None, trainer_config("a")).fit()
    cfg = trainer_config("b", checkpoint_every_steps=4)
    stopped = Trainer(model(0), data, None, cfg, [StopAtStep(8)]).fit()
    assert stopped.stopped_early and stopped.global_step == 8  # 6 steps per epoch: mid-epoch
    resumed = model(7)  # another initialisation: the weights must come from the checkpoint
    result = Trainer(resumed, data, None, cfg).fit(resume=True)
    assert result.global_step == 12
    assert_same_weights(weights(straight), weights(resumed))
