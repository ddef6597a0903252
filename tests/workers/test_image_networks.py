"""Image networks beyond 8x8: a conv model on 28x28 RGB and a ResNet model on 64x64 RGB train
through the CLI and as a job, and serve PNG in and out over HTTP."""

from __future__ import annotations

import argparse
import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image

from core.cli import train
from core.models import MultimodalVAE
from core.store import ModelStore
from service.app import create_app
from tests.service.conftest import make_settings, wait_ready
from tests.workers.conftest import AUTH, submit, wait_job

CLASSES = 4
CASES = {  # name: (image shape, network spec)
    "conv28": ((3, 28, 28), {"kind": "conv", "channels": [8, 16], "hidden": 32}),
    "resnet64": ((3, 64, 64), {"kind": "resnet", "filters": 4, "max_filters": 8}),
}


def squares(shape: tuple[int, ...], n: int = 48) -> dict[str, np.ndarray]:
    """Images with a square whose corner and colour give the class, the one-hot class, labels."""
    rng = np.random.default_rng(0)
    y = rng.integers(CLASSES, size=n)
    c, h, w = shape
    images = np.zeros((n, c, h, w), dtype=np.float32)
    for i, k in enumerate(y):
        top, left = (k // 2) * h // 2, (k % 2) * w // 2
        images[i, k % c, top : top + h // 2, left : left + w // 2] = 1.0
    return {"image": images, "label": np.eye(CLASSES, dtype=np.float32)[y], "labels": y}


def png(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray((image.transpose(1, 2, 0) * 255).astype(np.uint8), "RGB").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def model_spec(shape: tuple[int, ...], network: dict) -> dict:
    """An MVAE whose image modality has `network` both ways (the label keeps the default MLP)."""
    image = {"name": "image", "shape": list(shape), "kind": "image", "encoder": network}
    image.update(decoder=network, likelihood={"kind": "laplace", "scale": 0.1}, value_range=[0, 1])
    label = {"name": "label", "shape": [CLASSES], "kind": "categorical"}
    label["likelihood"] = {"kind": "categorical"}
    return {"model_type": "mvae", "latent_dim": 4, "modalities": [image, label]}


def assert_serves_png(model: MultimodalVAE, shape: tuple[int, ...], tmp: Path) -> None:
    """The model behind HTTP: a PNG in (encode), a PNG of the model's size out (generate)."""
    store = ModelStore(tmp / "models")
    store.save(model, "images", "1")
    settings = make_settings(tmp / "models", tmp, preload=["store:images"], jobs_enabled=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_ready(client)
        image = squares(shape, 1)["image"][0]
        r = client.post("/v1/models/images/encode", json={"inputs": {"image": [png(image)]}})
        assert r.status_code == 200, r.text
        body = {"inputs": {"label": [2]}, "targets": ["image"], "seed": 0, "encoding": "png"}
        r = client.post("/v1/models/images/generate", json=body)
        assert r.status_code == 200, r.text
        out = r.json()["outputs"]["image"]["png"][0][0]
        decoded = Image.open(io.BytesIO(base64.b64decode(out)))
        assert (decoded.mode, decoded.size) == ("RGB", (shape[2], shape[1]))
        wrong = np.zeros((shape[0], shape[1] // 2, shape[2] // 2), dtype=np.float32)
        r = client.post("/v1/models/images/encode", json={"inputs": {"image": [png(wrong)]}})
        assert r.status_code == 422 and "the model expects" in r.text


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_cli_trains_and_the_service_serves_png(case: str, tmp_path: Path, capsys) -> None:
    shape, network = CASES[case]
    data = tmp_path / "squares.npz"
    np.savez(data, **squares(shape))
    spec = tmp_path / "spec.yaml"
    trainer = {"epochs": 2, "batch_size": 16, "output_dir": str(tmp_path / "run")}
    spec.write_text(
        yaml.safe_dump(
            {"dataset": str(data), "model": model_spec(shape, network), "trainer": trainer}
        )
    )
    parser = argparse.ArgumentParser(prog="mmvae")
    train.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--spec", str(spec), "--no-eval", "--no-progress"])
    assert args.func(args) == 0
    losses = [
        json.loads(line)["train_loss"] for line in (tmp_path / "run" / "metrics.jsonl").open()
    ]
    assert losses[-1] < losses[0]
    model = MultimodalVAE.from_pretrained(tmp_path / "run" / "model")
    assert model.config.modalities[0].shape == list(shape)
    assert_serves_png(model, shape, tmp_path)


@pytest.mark.slow
def test_a_job_trains_a_resnet_on_uploaded_64x64_images(make_env) -> None:
    shape, network = CASES["resnet64"]
    env = make_env(MMVAE_MAX_DATASET_BYTES=str(32 * 2**20))
    env.start_worker()
    buffer = io.BytesIO()
    np.savez(buffer, **squares(shape))
    with env.client() as client:
        headers = {**AUTH, "Content-Type": "application/octet-stream"}
        r = client.post("/v1/datasets", content=buffer.getvalue(), headers=headers)
        assert r.status_code == 201, r.text
        dataset = f"dataset:{r.json()['id']}"
        job = submit(
            client,
            {
                "type": "train",
                "name": "resnet64",
                "model": model_spec(shape, network),
                "dataset": dataset,
                "trainer": {"epochs": 1, "batch_size": 16, "device": "cpu"},
            },
        )
        done = wait_job(client, job["id"], timeout=300, env=env)
        assert done["state"] == "succeeded", done
        r = client.get(f"/v1/jobs/{job['id']}/artifacts/train/model/config.json", headers=AUTH)
        config = r.json()["config"]
        image = config["modalities"][0]
        assert image["encoder"]["kind"] == "resnet" and image["shape"] == [3, 64, 64]
