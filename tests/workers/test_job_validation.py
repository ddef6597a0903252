"""Invalid job specs are refused at submission with 422 naming the field, and never queued."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workers.conftest import AUTH, TINY_MODEL, train_spec

BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unknown model", train_spec(model={"model_type": "nope"}), "model.model_type"),
    ("bad config field", train_spec(model={**TINY_MODEL, "latent_dimm": 3}), "model.latent_dimm"),
    (
        "missing modality",
        train_spec(
            model={
                **TINY_MODEL,
                "modalities": [
                    {"name": "image", "shape": [1, 8, 8]},
                    {"name": "text", "shape": [12]},
                ],
            }
        ),
        "model.modalities[1]",
    ),
    (
        "shape mismatch",
        train_spec(model={**TINY_MODEL, "modalities": [{"name": "image", "shape": [1, 28, 28]}]}),
        "model.modalities[0].shape",
    ),
    ("epochs over limit", train_spec(epochs=10_000), "trainer.epochs"),
    (
        "10^12 parameters",
        train_spec(model={**TINY_MODEL, "encoder": {"kind": "mlp", "hidden": [10**6, 10**6]}}),
        "model (parameters)",
    ),
    ("batch size over limit", train_spec(batch_size=1_000_000), "trainer.batch_size"),
    (
        "absent device",
        train_spec(trainer={"epochs": 1, "device": "cuda:99"}),
        "trainer.device",
    ),
    (
        "hub target is a path",
        train_spec(push_to_hub={"repo_id": "../../etc"}),
        "push_to_hub.repo_id",
    ),
    ("bad trainer field", train_spec(trainer={"epochs": 1, "lr": 0.1}), "trainer.lr"),
    ("more GPUs than the workers have", train_spec(resources={"gpus": 2}), "resources.gpus"),
    ("too many processes", train_spec(resources={"processes": 64}), "resources.processes"),
    ("gpus and processes", train_spec(resources={"gpus": 1, "processes": 2}), "resources"),
    (
        "tracker folder",
        train_spec(trainer={"epochs": 1, "trackers": [{"kind": "tensorboard", "log_dir": "/etc"}]}),
        "trainer.trackers[0].log_dir",
    ),
    (
        "tracker server",
        train_spec(
            trainer={"epochs": 1, "trackers": [{"kind": "mlflow", "tracking_uri": "http://x"}]}
        ),
        "trainer.trackers[0].tracking_uri",
    ),
    ("unknown dataset", train_spec(dataset="mnist-not-here"), "dataset"),
    ("unknown upload", train_spec(dataset="dataset:" + "0" * 64), "dataset"),
    ("output_dir", train_spec(trainer={"output_dir": "/etc"}), "trainer.output_dir"),
    ("unknown type", {"type": "bake"}, "type"),
    ("unknown spec key", {**train_spec(), "colour": 1}, "colour"),
    ("augment unknown model", {"type": "augment", "model": "ghost", "n": 5}, "model"),
    ("evaluate bad metric", {"type": "evaluate", "model": "m", "metrics": ["vibes"]}, "metrics"),
]


@pytest.mark.parametrize(("name", "spec", "field"), BAD, ids=[b[0] for b in BAD])
def test_invalid_spec_is_422_and_not_queued(make_env, name: str, spec: dict, field: str) -> None:
    env = make_env()
    with env.client() as client:
        r = client.post("/v1/jobs", json=spec, headers=AUTH)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field, r.json()
        assert client.get("/v1/jobs", headers=AUTH).json()["jobs"] == []
    queue = env.data / "broker" / "queue"
    assert not queue.exists() or not any(queue.iterdir())


def test_an_idempotency_key_reused_with_another_spec_is_a_409(make_env) -> None:
    env = make_env()
    with env.client() as client:
        headers = {**AUTH, "Idempotency-Key": "same"}
        first = client.post("/v1/jobs", json=train_spec(epochs=2), headers=headers)
        assert first.status_code == 202
        again = client.post("/v1/jobs", json=train_spec(epochs=2), headers=headers)
        assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
        other = client.post("/v1/jobs", json=train_spec(epochs=3), headers=headers)
        assert other.status_code == 409, other.text
        error = other.json()["error"]
        assert error["field"] == "Idempotency-Key" and first.json()["id"] in error["message"]
