"""A text modality over HTTP: strings in (tokenised with the model's vocabulary), strings out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from core.data.text import SPECIALS, encode_texts
from core.models import build_model
from core.store import ModelStore
from service.app import create_app
from tests.service.conftest import make_settings, wait_ready

VOCABULARY = [*SPECIALS, "a", "red", "bird", "blue", "wings", "."]
TEXT_NET = {
    "kind": "conv1d",
    "channels": [8],
    "hidden": 16,
    "layout": "channels_last",
    "embedding": 4,
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("text")
    text = {"name": "text", "shape": [8, len(VOCABULARY)], "kind": "categorical",
            "likelihood": {"kind": "categorical"}, "vocabulary": VOCABULARY,
            "encoder": TEXT_NET, "decoder": TEXT_NET}  # fmt: skip
    label = {"name": "label", "shape": [2], "likelihood": {"kind": "categorical"}}
    torch.manual_seed(0)
    model = build_model({"model_type": "mvae", "latent_dim": 2, "modalities": [text, label]})
    ModelStore(root / "models").save(model.eval(), "captions", "1")
    settings = make_settings(
        root / "models", Path(root), preload=["store:captions"], jobs_enabled=False
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        wait_ready(test_client)
        yield test_client


def test_text_is_described_read_and_written_as_strings(client: TestClient) -> None:
    info = client.get("/v1/models/captions").json()
    text = next(m for m in info["modalities"] if m["name"] == "text")
    assert "text" in text["accepts"] and "text" in text["outputs"]
    r = client.post("/v1/models/captions/encode", json={"inputs": {"text": ["A red bird.", None]}})
    assert r.status_code == 422  # a sample needs a modality: the second has none
    r = client.post("/v1/models/captions/encode", json={"inputs": {"text": ["A red bird."]}})
    assert r.status_code == 200, r.text
    body = {"inputs": {"label": [0, 1]}, "targets": ["text"], "seed": 0}
    out = client.post("/v1/models/captions/generate", json=body).json()["outputs"]["text"]
    assert out["shape"] == [1, 2, 8, len(VOCABULARY)] and len(out["text"][0]) == 2
    ids = torch.tensor(out["data"]).view(1, 2, 8, -1).argmax(-1)[0, 0].tolist()
    words = (
        [VOCABULARY[i] for i in ids[: ids.index(2)]] if 2 in ids else [VOCABULARY[i] for i in ids]
    )
    assert out["text"][0][0] == " ".join(w for w in words if w != "<pad>")


def test_text_inputs_are_tokenised_as_in_training_and_bounded(client: TestClient) -> None:
    one_hot = torch.nn.functional.one_hot(
        torch.from_numpy(encode_texts(["Blue wings, a bird!"], VOCABULARY, 8)[0]).long(),
        len(VOCABULARY),
    )
    as_tensor = {
        "inputs": {"text": {"shape": [1, 8, len(VOCABULARY)], "data": one_hot.flatten().tolist()}}
    }
    as_text = {"inputs": {"text": ["Blue wings, a bird!"]}}
    means = [
        client.post("/v1/models/captions/encode", json=b).json()["mean"]["data"]
        for b in (as_tensor, as_text)
    ]
    assert means[0] == means[1]
    r = client.post("/v1/models/captions/encode", json={"inputs": {"text": ["x" * 513]}})
    assert r.status_code == 422 and "at most 512" in r.text
    r = client.post("/v1/models/captions/encode", json={"inputs": {"label": ["zero"]}})
    assert r.status_code == 422 and "image and text modalities" in r.text


def test_a_vocabulary_must_fit_its_token_sequence() -> None:
    from pydantic import ValidationError

    from core.models.config import ModalitySpec

    with pytest.raises(ValidationError, match="V = its 9 words, got categorical \\[8, 5\\]"):
        ModalitySpec(name="text", shape=[8, 5], kind="categorical", vocabulary=VOCABULARY)
    with pytest.raises(ValidationError, match="belongs to a categorical"):
        ModalitySpec(name="text", shape=[9], kind="vector", vocabulary=VOCABULARY)
