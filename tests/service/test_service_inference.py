"""Inference routes: encode, generate, reconstruct, sample, log-likelihood, evaluate; encodings."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import TypeAdapter

from core.data import MultimodalDataset, save_npz
from workers.specs import JobSpec

GEN = "/v1/models/tiny/generate"


def _png(size: int = 8, value: int = 255) -> str:
    buffer = io.BytesIO()
    Image.new("L", (size, size), value).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_generate_image_from_label(client) -> None:
    r = client.post(GEN, json={"inputs": {"label": [3]}, "targets": ["image"], "n_samples": 2})
    assert r.status_code == 200
    out = r.json()["outputs"]
    assert list(out) == ["image"] and out["image"]["shape"] == [2, 1, 1, 8, 8]
    assert len(out["image"]["data"]) == 2 * 64


def test_generate_default_targets_and_classes(client) -> None:
    r = client.post(GEN, json={"inputs": {"image": [_png(), _png(value=0)]}})
    out = r.json()["outputs"]
    assert set(out) == {"image", "label", "vec"}
    assert out["label"]["shape"] == [1, 2, 10] and len(out["label"]["classes"][0]) == 2


def test_seed_reproducible(client) -> None:
    body = {"inputs": {"label": [3, 5]}, "targets": ["vec"], "n_samples": 3, "seed": 7}
    a, b = (client.post(GEN, json=body).json() for _ in range(2))
    assert a["outputs"] == b["outputs"]
    c = client.post(GEN, json={**body, "seed": 8}).json()
    assert c["outputs"] != a["outputs"]


def test_mean_latent_is_deterministic(client) -> None:
    body = {"inputs": {"label": [3]}, "targets": ["vec"], "mean_latent": True}
    assert client.post(GEN, json=body).json() == client.post(GEN, json=body).json()


def test_input_encodings_agree(client) -> None:
    """Class index, probabilities, a {shape, data} tensor and nested lists give the same input."""
    onehot = [0.0] * 10
    onehot[3] = 1.0
    forms = [
        {"label": [3]},
        {"label": [onehot]},
        {"label": {"shape": [1, 10], "data": onehot}},
    ]
    outs = [
        client.post(GEN, json={"inputs": f, "targets": ["vec"], "mean_latent": True}).json()
        for f in forms
    ]
    assert outs[0]["outputs"] == outs[1]["outputs"] == outs[2]["outputs"]


def test_png_in_png_out(client) -> None:
    r = client.post(GEN, json={"inputs": {"label": [3]}, "targets": ["image"], "encoding": "png"})
    png = r.json()["outputs"]["image"]["png"][0][0]
    image = Image.open(io.BytesIO(base64.b64decode(png)))
    assert image.format == "PNG" and image.size == (8, 8)
    assert r.json()["outputs"]["image"]["data"] is None
    r = client.post(GEN, json={"inputs": {"image": [png]}, "targets": ["label"]})
    assert r.status_code == 200 and 0 <= r.json()["outputs"]["label"]["classes"][0][0] < 10


def test_png_grid_accept(client) -> None:
    r = client.post(
        GEN,
        json={"inputs": {"label": [1, 2]}, "targets": ["image"], "n_samples": 3, "png_scale": 2},
        headers={"Accept": "image/png"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    assert image.size == ((3 * 9 + 1) * 2, (2 * 9 + 1) * 2)
    r = client.post(
        GEN, json={"inputs": {"label": [1]}, "targets": ["vec"]}, headers={"Accept": "image/png"}
    )
    assert r.status_code == 406 and r.json()["error"]["field"] == "Accept"


def test_npz_download(client) -> None:
    r = client.post(
        GEN,
        json={"inputs": {"label": [1, 2]}, "n_samples": 2},
        headers={"Accept": "application/x-npz"},
    )
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    arrays = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert arrays["image"].shape == (2, 2, 1, 8, 8) and arrays["label"].shape == (2, 2, 10)


def test_nested_encoding(client) -> None:
    r = client.post(GEN, json={"inputs": {"label": [1]}, "targets": ["vec"], "encoding": "nested"})
    data = r.json()["outputs"]["vec"]["data"]
    assert np.asarray(data).shape == (1, 1, 3)


def test_encode(client) -> None:
    r = client.post("/v1/models/tiny/encode", json={"inputs": {"label": [3, 4]}, "n_samples": 5})
    body = r.json()
    assert body["mean"]["shape"] == [2, 4] and body["scale"]["shape"] == [2, 4]
    assert body["samples"]["shape"] == [5, 2, 4] and all(s > 0 for s in body["scale"]["data"])
    r = client.post("/v1/models/tiny/encode", json={"inputs": {"label": [3]}})
    assert r.json()["samples"] is None


def test_reconstruct_self_and_cross(client) -> None:
    body = {
        "inputs": {"label": [3, None, 1], "vec": [[0, 1, 2], [1, 1, 1], None]},
        "targets": ["label", "vec"],
    }
    r = client.post("/v1/models/tiny/reconstruct", json=body)
    assert r.status_code == 200
    out = r.json()
    assert out["reconstructions"]["label"]["shape"] == [1, 3, 10]
    assert out["cross"]["label"]["rows"] == [0, 2] and out["cross"]["vec"]["rows"] == [0, 1]
    assert out["cross"]["label"]["outputs"]["vec"]["shape"] == [1, 2, 3]
    assert "image" not in out["cross"]
    r = client.post("/v1/models/tiny/reconstruct", json={**body, "cross": False})
    assert r.json()["cross"] == {}


def test_sample(client) -> None:
    r = client.post("/v1/models/tiny/sample", json={"n": 4, "modalities": ["label"], "seed": 3})
    out = r.json()
    assert out["sampler"] == "prior" and out["outputs"]["label"]["shape"] == [4, 10]
    again = client.post("/v1/models/tiny/sample", json={"n": 4, "modalities": ["label"], "seed": 3})
    assert again.json() == out


def test_log_likelihood_joint_and_conditional(client) -> None:
    inputs = {"label": [3, 1], "vec": [[1, 2, 3], [0, 0, 1]]}
    url = "/v1/models/tiny/log-likelihood"
    joint = client.post(url, json={"inputs": inputs, "k": 20, "seed": 0}).json()
    assert len(joint["log_likelihood"]) == 2 and joint["given"] is None
    cond = client.post(url, json={"inputs": inputs, "k": 20, "given": ["label"], "seed": 0}).json()
    assert cond["given"] == ["label"] and cond["targets"] == ["vec"]
    assert all(c > j for c, j in zip(cond["log_likelihood"], joint["log_likelihood"], strict=True))
    r = client.post(url, json={"inputs": {"label": [3]}, "given": ["label"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "given"
    r = client.post(
        url,
        json={"inputs": {"label": [3, None], "vec": [[1, 2, 3], [1, 1, 1]]}, "given": ["label"]},
    )
    assert r.status_code == 422


def _npz_b64(n: int) -> str:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(10, (n,), generator=g)
    ds = MultimodalDataset(
        {
            "image": (torch.rand(n, 1, 8, 8, generator=g) > 0.5).float(),
            "label": torch.nn.functional.one_hot(labels, 10).float(),
        },
        labels=labels,
    )
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = save_npz(ds, Path(tmp) / "d.npz")
        return base64.b64encode(path.read_bytes()).decode()


def test_evaluate_uploaded_dataset(client) -> None:
    body = {
        "dataset": {"kind": "npz", "data_base64": _npz_b64(16)},
        "metrics": ["likelihood", "coherence"],
    }
    r = client.post("/v1/models/tiny/evaluate", json=body)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["n_samples"] == 16 and "likelihood" in report["metrics"]["metrics"]


@pytest.mark.parametrize(
    ("dataset", "field"),
    [
        ({"kind": "npz", "data_base64": "!!!"}, "dataset.data_base64"),
        (
            {"kind": "npz", "data_base64": base64.b64encode(b"not a zip").decode()},
            "dataset.data_base64",
        ),
        ({"kind": "builtin", "name": "nope"}, "dataset.name"),
    ],
)
def test_evaluate_bad_dataset(client, dataset: dict, field: str) -> None:
    r = client.post("/v1/models/tiny/evaluate", json={"dataset": dataset})
    assert r.status_code == 422 and r.json()["error"]["field"] == field


def test_evaluate_unknown_metric(client) -> None:
    body = {"dataset": {"kind": "builtin"}, "metrics": ["likelihood", "bogus"]}
    r = client.post("/v1/models/tiny/evaluate", json=body)
    assert r.status_code == 422 and r.json()["error"]["field"] == "metrics[1]"


def test_evaluate_too_large_points_to_jobs(make_client) -> None:
    with make_client(max_eval_samples=10) as client:
        body = {"dataset": {"kind": "npz", "data_base64": _npz_b64(16)}}
        r = client.post("/v1/models/tiny/evaluate", json=body)
        message = r.json()["error"]["message"]
        assert r.status_code == 413 and "POST /v1/jobs" in message
    # The job the hint shows is one the jobs API accepts, placeholders filled in.
    hint = json.loads(message[message.index("{") :])
    spec = {**hint, "model": "tiny", "dataset": "digits"}
    assert TypeAdapter(JobSpec).validate_python(spec).type == "evaluate"


def test_inputs_are_decoded_and_outputs_encoded_off_the_event_loop(client, monkeypatch) -> None:
    """Torch calls on the event loop thread would wait for the inference thread's GIL."""
    import threading

    import service.routes.inference as routes

    threads: list[str] = []
    decode, encode = routes.decode_inputs, routes.encode_tensor

    def recording(real):
        def wrapper(*args, **kwargs):
            threads.append(threading.current_thread().name)
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(routes, "decode_inputs", recording(decode))
    monkeypatch.setattr(routes, "encode_tensor", recording(encode))
    r = client.post(GEN, json={"inputs": {"label": [3]}, "targets": ["image", "vec"]})
    assert r.status_code == 200
    assert len(threads) == 3 and all(t.startswith("inference") for t in threads), threads
