"""A model trained on normalised data serves data units: its `input_transforms` are applied to
HTTP inputs and undone on outputs (JSON, PNG and npz alike)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError

from core.data.batch import Batch
from core.models import build_model
from core.models.config import ModalitySpec
from core.store import ModelStore
from service.app import create_app
from tests.service.conftest import make_settings, wait_ready

NORMALIZE = [{"kind": "normalize", "mean": [0.5], "std": [0.25]}]
MODALITIES = [
    {"name": "image", "shape": [1, 4, 4], "kind": "image", "input_transforms": NORMALIZE},
    {"name": "label", "shape": [3], "likelihood": {"kind": "categorical"}},
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, object]]:
    root = tmp_path_factory.mktemp("transforms")
    torch.manual_seed(0)
    mlp = {"kind": "mlp", "hidden": [8]}
    config = {"model_type": "mvae", "latent_dim": 2, "modalities": MODALITIES}
    model = build_model({**config, "encoder": mlp, "decoder": mlp}).eval()
    ModelStore(root / "models").save(model, "normalised", "1")
    settings = make_settings(
        root / "models", Path(root), preload=["store:normalised"], jobs_enabled=False
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client, model


def png(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_inputs_are_normalised_as_in_training(served) -> None:
    client, model = served
    pixels = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    r = client.post("/v1/models/normalised/encode", json={"inputs": {"image": [png(pixels)]}})
    assert r.status_code == 200, r.text
    image = torch.from_numpy(pixels / 255.0).float().view(1, 1, 4, 4)
    batch = Batch({"image": (image - 0.5) / 0.25, "label": torch.zeros(1, 3)},
                  {"image": torch.tensor([True]), "label": torch.tensor([False])})  # fmt: skip
    with torch.no_grad():
        expected = model.encode(batch, mean=True).z[0]
    assert torch.allclose(torch.tensor(r.json()["mean"]["data"]).view(1, 2), expected, atol=1e-6)


def test_outputs_come_back_in_data_units(served) -> None:
    client, model = served
    body = {"inputs": {"label": [1]}, "targets": ["image"], "mean_latent": True}
    data = client.post("/v1/models/normalised/generate", json=body).json()["outputs"]["image"][
        "data"
    ]
    batch = Batch({"image": torch.zeros(1, 1, 4, 4), "label": torch.eye(3)[[1]]},
                  {"image": torch.tensor([False]), "label": torch.tensor([True])})  # fmt: skip
    with torch.no_grad():
        means = model.generate(batch, ["label"], ["image"], mean_latent=True)["image"]
    assert torch.allclose(torch.tensor(data).view(means.shape), means * 0.25 + 0.5, atol=1e-6)
    npz = client.post(
        "/v1/models/normalised/generate", json=body, headers={"Accept": "application/x-npz"}
    )
    assert np.allclose(
        np.load(io.BytesIO(npz.content))["image"], (means * 0.25 + 0.5).numpy(), atol=1e-6
    )


def test_only_invertible_shape_keeping_transforms_are_accepted() -> None:
    with pytest.raises(ValidationError, match="input_transforms may only"):
        ModalitySpec(
            name="image", shape=[1, 4, 4], input_transforms=[{"kind": "resize", "size": [2, 2]}]
        )
    with pytest.raises(ValidationError, match="input_transforms may only"):
        ModalitySpec(name="label", shape=[3], likelihood={"kind": "categorical"},
                     input_transforms=[{"kind": "scale", "factor": 2}])  # fmt: skip
    with pytest.raises(ValidationError, match="normalize: 2 values for 1 channels"):
        two = [{"kind": "normalize", "mean": [0, 0], "std": [1, 1]}]
        ModalitySpec(name="image", shape=[1, 4, 4], input_transforms=two)
