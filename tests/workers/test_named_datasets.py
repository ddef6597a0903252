"""Datasets the operator names (MMVAE_NAMED_DATASETS): jobs train and evaluate on a folder of
.npy arrays by name, read row by row, and never give a path themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.data.builtin import load_builtin
from core.data.ondisk import write_array_folder
from tests.workers.conftest import AUTH, TINY_MODEL, submit, wait_job
from workers.settings import WorkerSettings


def digits_folder(root: Path) -> Path:
    digits = load_builtin("digits", "all")
    config = {"splits": {"train": [0, 1400], "test": [1400, len(digits)]}}
    return write_array_folder(root, [digits], len(digits), config)


def test_names_are_parsed_and_checked() -> None:
    settings = WorkerSettings(named_datasets="poly=polymnist:/data/poly, own = /data/own")
    assert settings.named_datasets == {"poly": "polymnist:/data/poly", "own": "/data/own"}
    assert WorkerSettings(named_datasets='{"own": "/data/own"}').named_datasets == {
        "own": "/data/own"
    }
    assert WorkerSettings(named_datasets="{}").named_datasets == {}
    with pytest.raises(ValidationError, match="'poly' is not name=source"):
        WorkerSettings(named_datasets="poly")
    with pytest.raises(ValidationError, match="'digits' must match"):
        WorkerSettings(named_datasets="digits=/data/x")
    with pytest.raises(ValidationError, match="'Bad/Name' must match"):
        WorkerSettings(named_datasets="Bad/Name=/data/x")


@pytest.mark.slow
def test_jobs_train_and_evaluate_on_a_named_folder(make_env, tmp_path: Path) -> None:
    folder = digits_folder(tmp_path / "digits-folder")
    env = make_env(MMVAE_NAMED_DATASETS=f"mydigits={folder}")
    env.start_worker()
    with env.client() as client:
        info = client.get("/v1/datasets/mydigits", headers=AUTH).json()
        assert [m["name"] for m in info["modalities"]] == ["image", "label"]
        spec = {"type": "train", "name": "named", "model": TINY_MODEL, "dataset": "mydigits",
                "trainer": {"epochs": 1, "batch_size": 128, "device": "cpu"}}  # fmt: skip
        done = wait_job(client, submit(client, spec)["id"], env=env)
        assert done["state"] == "succeeded", done
        assert done["result"]["final_metrics"]["eval_loss"] > 0  # the folder's test split
        evaluate = {"type": "evaluate", "model": "named", "dataset": "mydigits", "split": "test",
                    "metrics": ["reconstruction"]}  # fmt: skip
        done = wait_job(client, submit(client, evaluate)["id"], env=env)
        assert done["state"] == "succeeded", done
        r = client.post("/v1/jobs", json={**spec, "dataset": str(folder)}, headers=AUTH)
        assert r.status_code == 422 and "named dataset (mydigits)" in r.text
