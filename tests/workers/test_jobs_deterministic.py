"""Jobs for the part-3 model families, through a real embedded worker: an adversarial model
(three named optimizers) and an autoencoder without a prior (augmentation from a sampler fitted
on its codes; evaluation reporting that it has no likelihood)."""

from __future__ import annotations

import pytest

from tests.workers.conftest import TINY_MODEL, submit, train_spec, wait_job


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["maae", "ae"])
def test_train_augment_and_evaluate_jobs(make_env, model_type) -> None:
    env = make_env()
    env.start_worker()
    model = {**TINY_MODEL, "model_type": model_type}
    with env.client() as client:
        job = submit(client, {**train_spec(epochs=1, name=model_type), "model": model})
        job = wait_job(client, job["id"], env=env)
        assert job["state"] == "succeeded", env.logs()
        augment = {"type": "augment", "model": model_type, "n": 20, "seed": 1}
        if model_type == "ae":  # no prior: refused with the advice, then from a fitted sampler
            refused = wait_job(client, submit(client, augment)["id"], env=env)
            assert refused["state"] == "failed" and "fit a latent sampler" in str(refused)
            augment = {**augment, "sampler": "gmm", "fit_dataset": "digits"}
        done = wait_job(client, submit(client, augment)["id"], env=env)
        assert done["state"] == "succeeded", done
        spec = {"type": "evaluate", "model": f"{model_type}@1", "dataset": "digits",
                "metrics": ["likelihood", "reconstruction"], "k": 5}  # fmt: skip
        ev = wait_job(client, submit(client, spec)["id"], env=env)
        assert ev["state"] == "succeeded", ev
        report = ev["result"]["report"]["metrics"]
        assert "deterministic" in report["likelihood"]["skipped"]
        assert report["reconstruction"]
