"""Every limit and malformed input answers a 4xx naming the field (and the limit), never a 500."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.service.conftest import ClientFactory

GEN = "/v1/models/tiny/generate"


def _png(size: int = 8, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    Image.new("L", (size, size), 128).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def _error(r, status: int, field: str | None = None) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    if field is not None:
        assert error["field"] == field, error
    assert error["message"]
    return error


@pytest.mark.parametrize(
    ("inputs", "field", "words"),
    [
        ({"colour": [1]}, "inputs.colour", "unknown modality"),
        ({}, "inputs", "at least one"),
        ({"label": []}, "inputs", "no samples"),
        ({"label": [10]}, "inputs.label[0]", "[0, 9]"),
        ({"label": [1.5]}, "inputs.label[0]", "integer"),
        ({"label": [[0.5] * 10]}, "inputs.label[0]", "sum to 1"),
        ({"vec": [[1, 2]]}, "inputs.vec[0]", "wrong shape"),
        ({"vec": [[1, 2, [3]]]}, "inputs.vec[0]", "nested list"),
        ({"vec": [["a", "b", "c"]]}, "inputs.vec[0]", "numbers"),
        ({"vec": [7]}, "inputs.vec[0]", "shape"),
        ({"vec": ["abc"]}, "inputs.vec[0]", "image"),
        ({"vec": {"shape": [1, 2], "data": [1, 2]}}, "inputs.vec.shape", "wrong shape"),
        ({"vec": {"shape": [2, 3], "data": [1, 2]}}, "inputs.vec.data", "values"),
        ({"label": [1, 2], "vec": [[1, 2, 3]]}, "inputs", "same number"),
        ({"label": [None]}, "inputs", "no observed modality"),
        ({"image": ["not base64!"]}, "inputs.image[0]", "base64"),
        ({"image": [base64.b64encode(b"GIF89a....").decode()]}, "inputs.image[0]", "PNG"),
        ({"image": [_png(fmt="JPEG")]}, "inputs.image[0]", "PNG"),
        ({"image": [_png(size=9)]}, "inputs.image[0]", "9x9"),
        (
            {"image": [base64.b64encode(b"\x89PNG\r\n\x1a\nbroken").decode()]},
            "inputs.image[0]",
            "PNG",
        ),
    ],
)
def test_bad_inputs(client, inputs: dict, field: str, words: str) -> None:
    error = _error(client.post(GEN, json={"inputs": inputs}), 422, field)
    assert words in error["message"]


def test_nan_and_inf_rejected(client) -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = '{"inputs": {"vec": [[1, 2, ' + literal + "]]}}"
        r = client.post(GEN, content=body, headers={"Content-Type": "application/json"})
        error = _error(r, 422, "inputs.vec[0]")
        assert "NaN or infinite" in error["message"]
    body = '{"inputs": {"vec": {"shape": [1, 3], "data": [1, NaN, 2]}}}'
    r = client.post(GEN, content=body, headers={"Content-Type": "application/json"})
    _error(r, 422, "inputs.vec.data")


def test_unknown_target(client) -> None:
    r = client.post(GEN, json={"inputs": {"label": [1]}, "targets": ["label", "colour"]})
    _error(r, 422, "targets[1]")


def test_schema_errors_name_the_field(client) -> None:
    _error(client.post(GEN, json={"inputs": {"label": [1]}, "n_samples": 0}), 422, "n_samples")
    _error(client.post(GEN, json={"inputs": {"label": [1]}, "bogus": 1}), 422, "bogus")
    _error(client.post(GEN, json={"inputs": {"label": [1]}, "encoding": "gif"}), 422, "encoding")
    r = client.post(GEN, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("settings", "body", "field", "setting"),
    [
        (
            {"max_n_samples": 4},
            {"inputs": {"label": [1]}, "n_samples": 5},
            "n_samples",
            "MMVAE_MAX_N_SAMPLES",
        ),
        (
            {"max_batch_size": 3},
            {"inputs": {"label": [1, 2, 3, 4]}},
            "inputs.label",
            "MMVAE_MAX_BATCH_SIZE",
        ),
        (
            {"max_total_outputs": 10},
            {"inputs": {"label": [1, 2, 3]}, "n_samples": 4},
            "n_samples × batch size",
            "MMVAE_MAX_TOTAL_OUTPUTS",
        ),
    ],
)
def test_configured_limits(make_client: ClientFactory, settings, body, field, setting) -> None:
    with make_client(**settings) as client:
        error = _error(client.post(GEN, json=body), 422, field)
        assert setting in error["message"] and error["code"] == "limit_exceeded"


def test_k_limit(make_client: ClientFactory) -> None:
    with make_client(max_k=50) as client:
        r = client.post("/v1/models/tiny/log-likelihood", json={"inputs": {"label": [1]}, "k": 51})
        assert "MMVAE_MAX_K" in _error(r, 422, "k")["message"]


def test_sample_n_limit(make_client: ClientFactory) -> None:
    with make_client(max_batch_size=5) as client:
        _error(client.post("/v1/models/tiny/sample", json={"n": 6}), 422, "n")


def test_image_pixel_limit(make_client: ClientFactory) -> None:
    with make_client(max_image_pixels=63) as client:
        r = client.post(GEN, json={"inputs": {"image": [_png()]}})
        assert "MMVAE_MAX_IMAGE_PIXELS" in _error(r, 422, "inputs.image[0] pixels")["message"]


def test_body_limit_by_content_length(make_client: ClientFactory) -> None:
    with make_client(max_body_bytes=1000) as client:
        body = {"inputs": {"vec": [[1.0, 2.0, 3.0]] * 200}}
        error = _error(client.post(GEN, json=body), 413, "body")
        assert "MMVAE_MAX_BODY_BYTES" in error["message"]
        assert client.post(GEN, json={"inputs": {"label": [1]}}).status_code == 200


def test_body_limit_chunked(make_client: ClientFactory) -> None:
    with make_client(max_body_bytes=1000) as client:

        def chunks():
            yield b'{"inputs": {"vec": ['
            for _ in range(200):
                yield b"[1.0, 2.0, 3.0],"
            yield b"[1, 2, 3]]}}"

        r = client.post(GEN, content=chunks(), headers={"Content-Type": "application/json"})
        _error(r, 413, "body")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputs": {"label": [True]}}, "inputs.label"),
        ({"inputs": {"label": [1]}, "seed": False}, "seed"),
        ({"inputs": {"label": [1]}, "n_samples": True}, "n_samples"),
        ({"inputs": {"vec": {"shape": [1, 3], "data": [1.0, True, 0.0]}}}, "inputs.vec"),
    ],
)
def test_json_booleans_are_not_numbers(client, body: dict, field: str) -> None:
    error = _error(client.post(GEN, json=body), 422)
    assert error["field"].startswith(field), error


@pytest.mark.parametrize("name", ["targets", "given", "modalities"])
def test_the_schema_refuses_the_empty_lists_the_server_refuses(client, name: str) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    requests = [s for k, s in schema.items() if k.endswith("Request")]
    owners = [s for s in requests if name in s.get("properties", {})]
    assert owners
    for owner in owners:
        variants = owner["properties"][name].get("anyOf", [owner["properties"][name]])
        arrays = [v for v in variants if v.get("type") == "array"]
        assert arrays and all(v.get("minItems") == 1 for v in arrays), owner["title"]
