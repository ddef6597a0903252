"""POST /v1/models/{name}/latent-map and /decode: a 2-D map of a dataset's posterior means, and the
decoders' means for codes the caller gives; checked against the model's own encode and decode."""

from __future__ import annotations

import base64
import importlib.machinery
import importlib.util
import io
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from core.data import MultimodalDataset, load_builtin, save_npz
from core.models import build_model
from core.models.latents import Latent
from service.app import create_app
from service.costs import map_cost
from service.projection import missing_package, project
from service.registry import LoadedModel
from service.routes import latent as latent_routes
from service.settings import Settings
from tests.service.conftest import KEY, TINY, ClientFactory, auth, make_settings, wait_ready

DEMO = "/v1/models/digits-demo"
DIGITS = {"kind": "builtin", "name": "digits", "split": "test"}


@pytest.fixture(scope="module")
def client(store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The demo model (MoPoE on digits) and `tiny`; a conditional model added by hand."""
    settings = make_settings(
        store_dir, tmp_path_factory.mktemp("latent"), preload=["digits-demo", "store:tiny"]
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        wait_ready(c)
        cvae = build_model({**TINY, "model_type": "cvae", "main_modality": "image"}).eval()
        c.app.state.registry.put(LoadedModel("cvae", cvae, {"kind": "store"}, warmed=True))
        yield c


def demo_model(client: TestClient):
    return client.app.state.registry.get("digits-demo").model


def rows_of(dataset: MultimodalDataset, rows: list[int]) -> MultimodalDataset:
    return dataset.subset(torch.tensor(rows))


def error(r) -> dict:
    assert r.status_code == 422, r.text
    return r.json()["error"]


# ---- latent-map -----------------------------------------------------------------------------
def test_pca_map_of_the_digits_test_split(client: TestClient) -> None:
    r = client.post(f"{DEMO}/latent-map", json={"dataset": DIGITS, "n": 90})
    assert r.status_code == 200, r.text
    out = r.json()
    test = load_builtin("digits", "test")
    assert [out[k] for k in ("model", "method", "space")] == ["digits-demo", "pca", "shared"]
    assert out["n"] == 90
    assert out["rows"] == [i * len(test) // 90 for i in range(90)]  # spread evenly
    picked = rows_of(test, out["rows"])
    assert out["labels"] == picked.labels.tolist()
    with torch.no_grad():
        codes = demo_model(client).encode(picked.batch(), mean=True).codes["shared"][0]
    assert out["means"]["shape"] == [90, 8]
    means = torch.tensor(out["means"]["data"]).view(90, 8)
    torch.testing.assert_close(means, codes, atol=1e-5, rtol=1e-5)
    # the centred means on their top two principal directions (eigenvectors of X^T X), by hand
    x = means.double().numpy()
    centred = x - x.mean(0)
    eigenvalues, vectors = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(eigenvalues)[::-1][:2]
    expected = centred @ vectors[:, order]
    points = np.array(out["points"])
    assert points.shape == (90, 2)
    for axis in range(2):
        sign = np.sign(points[:, axis] @ expected[:, axis])
        np.testing.assert_allclose(points[:, axis], sign * expected[:, axis], atol=1e-4)
    shares = out["explained_variance"]
    np.testing.assert_allclose(shares, eigenvalues[order] / eigenvalues.sum(), rtol=1e-4)
    assert shares[0] >= shares[1] > 0 and sum(shares) <= 1


def test_map_defaults_cover_a_smaller_dataset_and_given_picks_the_encoders(client) -> None:
    r = client.post(f"{DEMO}/latent-map", json={"dataset": DIGITS, "given": ["image"]})
    assert r.status_code == 200, r.text
    out = r.json()
    test = load_builtin("digits", "test")
    assert out["n"] == len(test) == len(out["points"]) and out["rows"] == list(range(len(test)))
    with torch.no_grad():
        latent = demo_model(client).encode(test.batch(), given=["image"], mean=True)
    means = torch.tensor(out["means"]["data"]).view(len(test), 8)
    torch.testing.assert_close(means, latent.codes["shared"][0], atol=1e-5, rtol=1e-5)


def test_maps_are_deterministic_for_a_seed_and_tsne_works(client: TestClient) -> None:
    body = {"dataset": DIGITS, "n": 40, "method": "tsne", "seed": 3}
    first = client.post(f"{DEMO}/latent-map", json=body)
    assert first.status_code == 200, first.text
    out = first.json()
    assert out["method"] == "tsne" and out["explained_variance"] is None
    points = np.array(out["points"])
    assert points.shape == (40, 2) and np.isfinite(points).all() and points.std(0).min() > 0
    assert client.post(f"{DEMO}/latent-map", json=body).json() == out
    pca = {"dataset": DIGITS, "n": 40, "seed": 3}
    assert client.post(f"{DEMO}/latent-map", json=pca).json() == (
        client.post(f"{DEMO}/latent-map", json=pca).json()
    )


def test_umap_without_umap_learn_is_a_422_naming_method_and_the_package(
    client, monkeypatch: pytest.MonkeyPatch
) -> None:
    find_spec = importlib.util.find_spec  # umap-learn absent, whether or not it is installed
    absent = lambda name, *a: None if name == "umap" else find_spec(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", absent)
    err = error(client.post(f"{DEMO}/latent-map", json={"dataset": DIGITS, "method": "umap"}))
    assert err["field"] == "method" and "pip install umap-learn" in err["message"]


def test_umap_runs_the_umap_package_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stand-in `umap` module: its UMAP is asked for 2 components with the seed."""
    calls = []

    class UMAP:
        def __init__(self, **options) -> None:
            calls.append(options)

        def fit_transform(self, x: np.ndarray) -> np.ndarray:
            return x[:, :2] * 2

    fake = types.ModuleType("umap")
    fake.__spec__ = importlib.machinery.ModuleSpec("umap", None)
    fake.UMAP = UMAP
    monkeypatch.setitem(sys.modules, "umap", fake)
    assert missing_package("umap") is None
    codes = torch.arange(30.0).view(10, 3)
    points, shares = project(codes, "umap", seed=5)
    torch.testing.assert_close(points, codes[:, :2] * 2)
    assert shares is None
    assert calls == [{"n_components": 2, "n_neighbors": 9, "random_state": 5}]


def test_projections_of_a_few_points_or_one_dimension() -> None:
    one = torch.tensor([[1.0, 2.0]])
    assert project(one, "pca", 0)[0].tolist() == [[0.0, 0.0]]
    assert project(one, "tsne", 0)[0].tolist() == [[0.0, 0.0]]
    line = torch.tensor([[0.0], [1.0], [3.0]])
    points, shares = project(line, "pca", 0)
    assert points[:, 1].tolist() == [0.0, 0.0, 0.0] and shares.tolist() == [1.0, 0.0]
    assert project(torch.randn(3, 4), "tsne", 0)[0].shape == (3, 2)


def test_map_limits_are_422s_naming_the_field_and_setting(make_client: ClientFactory) -> None:
    with make_client(preload=["digits-demo"], max_map_points=50, max_request_work=10**8) as c:
        err = error(c.post(f"{DEMO}/latent-map", json={"dataset": DIGITS, "n": 51}))
        assert err["field"] == "n" and "MMVAE_MAX_MAP_POINTS" in err["message"]
        assert "51 exceeds the limit of 50" in err["message"]
        # t-SNE's cost counts its layout work; checked before the (unknown) dataset is read
        body = {"dataset": {"kind": "builtin", "name": "nope"}, "n": 50, "method": "tsne"}
        err = error(c.post(f"{DEMO}/latent-map", json=body))
        assert err["field"] == "n (output work)" and "MMVAE_MAX_REQUEST_WORK" in err["message"]
        err = error(c.post(f"{DEMO}/latent-map", json={**body, "method": "pca"}))
        assert err["field"] == "dataset.name"


def test_map_cost_puts_neighbour_layouts_in_the_heavy_lane() -> None:
    settings = Settings()
    pca, tsne = (map_cost(300, 8, 1, 20_000, method) for method in ("pca", "tsne"))
    assert pca.values == tsne.values == 300 * 11 and pca.field == "n"
    assert pca.work == 300 * 20_000 + 300 * 64 and not pca.heavy(settings)
    assert tsne.heavy(settings) and tsne.check(settings) is tsne


def test_maps_run_off_the_event_loop_in_their_cost_lane(client, monkeypatch) -> None:
    """A t-SNE map costs more than MMVAE_HEAVY_REQUEST_WORK: it runs apart from cheap requests."""
    threads: list[str] = []

    def recording(*args, **options):
        threads.append(threading.current_thread().name)
        return project(*args, **options)

    monkeypatch.setattr(latent_routes, "project", recording)
    for method in ("tsne", "pca"):
        body = {"dataset": DIGITS, "n": 100, "method": method}
        assert client.post(f"{DEMO}/latent-map", json=body).status_code == 200
    assert threads[0].startswith("inference-heavy") and threads[1].startswith("inference-light")


def test_a_map_past_the_request_timeout_is_a_504(make_client: ClientFactory) -> None:
    with make_client(preload=["digits-demo"], request_timeout_s=0.001) as c:
        r = c.post(f"{DEMO}/latent-map", json={"dataset": DIGITS, "n": 200, "method": "tsne"})
        assert r.status_code == 504 and "MMVAE_REQUEST_TIMEOUT_S" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"space": "private/image"}, "space"),
        ({"given": ["nope"]}, "given[0]"),
        ({"dataset": {"kind": "builtin", "name": "nope"}}, "dataset.name"),
        ({"dataset": {"kind": "npz", "data_base64": "%%%"}}, "dataset.data_base64"),
        ({"dataset": {"kind": "npz", "id": "0" * 64}}, "dataset.id"),
        ({"dataset": {"kind": "npz", "id": "../etc"}}, "dataset.id"),
        ({"dataset": {"kind": "npz"}}, "dataset.npz"),
    ],
)
def test_map_bad_requests_name_the_field(client: TestClient, change: dict, field: str) -> None:
    err = error(client.post(f"{DEMO}/latent-map", json={"dataset": DIGITS, "n": 5, **change}))
    assert err["field"] == field, err


def _npz(dataset: MultimodalDataset, tmp_path: Path) -> bytes:
    return save_npz(dataset, tmp_path / "upload.npz").read_bytes()


def test_map_of_a_dataset_the_model_does_not_fit_names_the_modality(client, tmp_path) -> None:
    vectors = MultimodalDataset({"vec": torch.zeros(5, 4)})
    inline = {"kind": "npz", "data_base64": base64.b64encode(_npz(vectors, tmp_path)).decode()}
    err = error(client.post("/v1/models/tiny/latent-map", json={"dataset": inline}))
    assert err["field"] == "dataset.vec" and "expects [3]" in err["message"]
    err = error(client.post(f"{DEMO}/latent-map", json={"dataset": inline}))
    assert err["field"] == "dataset.vec" and "unknown modality" in err["message"]


def test_uploaded_npz_datasets_inline_and_by_id(client: TestClient, tmp_path: Path) -> None:
    test = load_builtin("digits", "test")
    unlabelled = MultimodalDataset({"image": test.data["image"][:30]})  # no labels, no label
    content = _npz(unlabelled, tmp_path)
    inline = {"kind": "npz", "data_base64": base64.b64encode(content).decode()}
    r = client.post(f"{DEMO}/latent-map", json={"dataset": inline, "n": 30})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["n"] == 30 and out["labels"] == [None] * 30
    with torch.no_grad():
        codes = demo_model(client).encode(test.batch(slice(0, 30)), given=["image"], mean=True)
    means = torch.tensor(out["means"]["data"]).view(30, 8)
    torch.testing.assert_close(means, codes.codes["shared"][0], atol=1e-5, rtol=1e-5)
    upload = client.post(
        "/v1/datasets", content=content, headers={"Content-Type": "application/octet-stream"}
    )
    assert upload.status_code == 201, upload.text
    for reference in (upload.json()["id"], upload.json()["reference"]):
        by_id = {"kind": "npz", "id": reference}
        r = client.post(f"{DEMO}/latent-map", json={"dataset": by_id, "n": 30})
        assert r.status_code == 200, r.text
        assert r.json() == out


def test_rows_without_the_given_modalities_are_a_422_naming_given(client, tmp_path) -> None:
    test = load_builtin("digits", "test")
    masks = {"image": torch.tensor([True, False, True]), "label": torch.ones(3, dtype=torch.bool)}
    partial = MultimodalDataset({m: x[:3] for m, x in test.data.items()}, masks)
    inline = {"kind": "npz", "data_base64": base64.b64encode(_npz(partial, tmp_path)).decode()}
    err = error(client.post(f"{DEMO}/latent-map", json={"dataset": inline, "given": ["image"]}))
    assert err["field"] == "given" and "sample 1" in err["message"]
    r = client.post(f"{DEMO}/latent-map", json={"dataset": inline})  # each from what it has
    assert r.status_code == 200 and r.json()["n"] == 3


# ---- decode ---------------------------------------------------------------------------------
def test_decoding_the_means_gives_the_models_own_decoder_means(client: TestClient) -> None:
    out = client.post(f"{DEMO}/latent-map", json={"dataset": DIGITS, "n": 6}).json()
    latent = out["means"]
    r = client.post(f"{DEMO}/decode", json={"latent": latent, "seed": 4})
    assert r.status_code == 200, r.text
    decoded = r.json()
    assert decoded["model"] == "digits-demo" and decoded["seed"] == 4
    assert set(decoded["outputs"]) == {"image", "label"}
    codes = torch.tensor(latent["data"]).view(1, 6, 8)
    with torch.no_grad():
        expected = demo_model(client).decode_mean(Latent({"shared": codes}))
    image = decoded["outputs"]["image"]
    assert image["shape"] == [6, 1, 8, 8]
    torch.testing.assert_close(torch.tensor(image["data"]).view(6, 1, 8, 8), expected["image"][0])
    label = decoded["outputs"]["label"]
    probabilities = torch.tensor(label["data"]).view(6, 10)
    torch.testing.assert_close(probabilities, expected["label"][0])
    assert label["classes"] == probabilities.argmax(-1).tolist()
    assert label["classes"] == out["labels"]  # the demo decodes its means to their digits


def test_decode_png_targets_and_nested(client: TestClient) -> None:
    body = {"latent": {"shape": [2, 8], "data": [0.1] * 16}, "targets": ["image"]}
    r = client.post(f"{DEMO}/decode", json={**body, "encoding": "png", "png_scale": 2})
    assert r.status_code == 200, r.text
    image = r.json()["outputs"]["image"]
    assert set(r.json()["outputs"]) == {"image"} and image["data"] is None
    assert len(image["png"]) == 2
    raw = base64.b64decode(image["png"][0])
    assert raw.startswith(b"\x89PNG") and Image.open(io.BytesIO(raw)).size == (16, 16)
    nested = client.post(f"{DEMO}/decode", json={**body, "encoding": "nested"}).json()
    assert np.array(nested["outputs"]["image"]["data"]).shape == (2, 1, 8, 8)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"latent": {"shape": [2, 7], "data": [0.0] * 14}}, "latent.shape"),
        ({"latent": {"shape": [1, 2, 8], "data": [0.0] * 16}}, "latent.shape"),
        ({"latent": {"shape": [0, 8], "data": []}}, "latent.shape"),
        ({"latent": {"shape": [2, 8], "data": [0.0] * 15}}, "latent.data"),
        ({"latent": {"shape": [1, 8], "data": [1e39] + [0.0] * 7}}, "latent.data"),
        ({"space": "level/0"}, "space"),
        ({"targets": ["image", "nope"]}, "targets[1]"),
        ({"targets": []}, "targets"),
        ({"encoding": "jpeg"}, "encoding"),
    ],
)
def test_decode_bad_requests_name_the_field(client: TestClient, change: dict, field: str) -> None:
    body = {"latent": {"shape": [2, 8], "data": [0.0] * 16}, **change}
    err = error(client.post(f"{DEMO}/decode", json=body))
    assert err["field"] == field, err
    if field == "latent.shape" and change["latent"]["shape"] == [2, 7]:
        assert "[B, 8]" in err["message"]


def test_decode_limits(make_client: ClientFactory) -> None:
    with make_client(preload=["digits-demo"], max_batch_size=4, max_output_values=100) as c:
        five = {"latent": {"shape": [5, 8], "data": [0.0] * 40}}
        err = error(c.post(f"{DEMO}/decode", json=five))
        assert err["field"] == "latent.shape" and "MMVAE_MAX_BATCH_SIZE" in err["message"]
        body = {"latent": {"shape": [2, 8], "data": [0.0] * 16}}
        err = error(c.post(f"{DEMO}/decode", json=body))  # 2 × (64 + 10) values > 100
        assert err["field"] == "latent.shape (output values)"
        assert "MMVAE_MAX_OUTPUT_VALUES" in err["message"]
        assert c.post(f"{DEMO}/decode", json={**body, "targets": ["label"]}).status_code == 200


def test_decode_refuses_what_codes_alone_cannot_give(client: TestClient) -> None:
    """A conditional model's decoder also reads its conditions: no decoding from codes alone."""
    body = {"latent": {"shape": [1, 4], "data": [0.0] * 4}}
    err = error(client.post("/v1/models/cvae/decode", json=body))
    assert err["field"] == "space" and "needs the" in err["message"]
    err = error(client.post("/v1/models/cvae/decode", json={**body, "targets": ["label"]}))
    assert err["field"] == "targets" and "not generated" in err["message"]


# ---- auth -----------------------------------------------------------------------------------
def test_keys_are_checked_as_on_the_other_inference_routes(make_client: ClientFactory) -> None:
    bodies = {
        "latent-map": {"dataset": DIGITS, "n": 5},
        "decode": {"latent": {"shape": [1, 8], "data": [0.0] * 8}},
    }
    with make_client(preload=["digits-demo"], api_keys=[KEY], require_key_for_inference=True) as c:
        for route, body in bodies.items():
            assert c.post(f"{DEMO}/{route}", json=body).status_code == 401
            assert c.post(f"{DEMO}/{route}", json={"bad": 1}).status_code == 401  # key first
            wrong = auth("wrong-key-0123456789")
            assert c.post(f"{DEMO}/{route}", json=body, headers=wrong).status_code == 403
            assert c.post(f"{DEMO}/{route}", json=body, headers=auth()).status_code == 200
    with make_client(preload=["digits-demo"], api_keys=[KEY]) as c:  # inference stays open
        for route, body in bodies.items():
            assert c.post(f"{DEMO}/{route}", json=body).status_code == 200
        assert c.post("/v1/models/nope/decode", json=bodies["decode"]).status_code == 404
