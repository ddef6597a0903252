"""Every built-in model type is served by every inference route: the service knows no model
class, so a new model works over HTTP by being registered (checked here, not assumed)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from core.data import MultimodalDataset, save_npz
from core.models import MODEL_REGISTRY, available_models, build_model
from core.samplers import build_sampler
from core.store import ModelStore
from service.app import create_app
from tests.service.conftest import TINY, make_settings, wait_ready

BUILT_IN = [m for m in available_models() if MODEL_REGISTRY[m].__module__.startswith("core.")]
EXTRA = {
    "mmvae": {"K": 2},
    "jmvae": {"joint_features": 8},
    "jnf": {"flow_hidden": [16], "mcmc_steps": 5, "normaliser_draws": 100},
    "cvae": {"main_modality": "image"},
}
VEC = [0.1, 0.2, 0.3]


def request(client: TestClient, model_type: str, route: str) -> dict:
    """The route's request, with the inputs the model requires filled in for every row."""
    body = {**ROUTES[route]}
    info = client.get(f"/v1/models/{model_type}").json()
    if "inputs" in body and info["requires"]:
        rows = len(next(iter(body["inputs"].values())))
        fill = {"label": [1] * rows, "vec": [VEC] * rows, "image": [[[[0.0] * 8] * 8]] * rows}
        body["inputs"] = {**body["inputs"], **{m: fill[m] for m in info["requires"]}}
    return body


ROUTES = {
    "encode": {"inputs": {"label": [3, 4]}, "n_samples": 2},
    "generate": {"inputs": {"label": [3], "vec": [None]}, "n_samples": 2, "seed": 1},
    "reconstruct": {"inputs": {"label": [3], "vec": [[0.1, 0.2, 0.3]]}},
    "sample": {"n": 3, "seed": 2},
    "log-likelihood": {"inputs": {"label": [3], "vec": [[0.1, 0.2, 0.3]]}, "k": 5},
}


def autoencoder_with_sampler():
    """An AE whose GMM sampler is fitted on the codes of random inputs."""
    torch.manual_seed(0)
    model = build_model({**TINY, "model_type": "ae"}).eval()
    g = torch.Generator().manual_seed(0)
    data = {
        "image": torch.rand(40, 1, 8, 8, generator=g),
        "label": torch.eye(10)[torch.randint(10, (40,), generator=g)],
        "vec": torch.randn(40, 3, generator=g),
    }
    model.sampler = build_sampler("gmm", n_components=2).fit(model, MultimodalDataset(data))
    return model


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("every-model")
    store = ModelStore(root / "models")
    for model_type in BUILT_IN:
        torch.manual_seed(0)
        config = {**TINY, "model_type": model_type, **EXTRA.get(model_type, {})}
        store.save(build_model(config).eval(), model_type, "1")
    store.save(autoencoder_with_sampler(), "ae-gmm", "1")
    sparse = build_model({**TINY, "model_type": "mcvae", "sparse": True, "threshold": 0.5})
    with torch.no_grad():
        sparse.log_alpha.copy_(torch.tensor([-2.0, 1.0, -1.0, 3.0]))  # rates .12 .73 .27 .95
    store.save(sparse.eval(), "mcvae-sparse", "1")
    served = [*BUILT_IN, "ae-gmm", "mcvae-sparse"]
    settings = make_settings(
        root / "models",
        Path(root),
        preload=[f"store:{m}" for m in served],
        jobs_enabled=False,
        max_models=len(served),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        wait_ready(test_client, timeout=120)
        yield test_client


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("model_type", BUILT_IN)
def test_every_route_answers_for_every_model(client: TestClient, model_type: str, route: str):
    info = client.get(f"/v1/models/{model_type}").json()
    body = request(client, model_type, route)
    r = client.post(f"/v1/models/{model_type}/{route}", json=body)
    if r.status_code == 422 and route in ("generate", "reconstruct"):
        # a model generating each modality from itself only (DCCAE) refuses the others, says
        # why, and generates what it was given
        assert r.json()["error"]["field"] == "targets" and "not given" in r.text
        given = [m for m, rows in body["inputs"].items() if all(v is not None for v in rows)]
        r = client.post(f"/v1/models/{model_type}/{route}", json={**body, "targets": given})
    if route == "sample" and not info["samplers"]:  # a conditional model or an autoencoder
        assert r.status_code == 422 and r.json()["error"]["field"] == "sampler"
        assert "no unconditional prior" in r.text or "fit a latent sampler" in r.text
        return
    if route == "log-likelihood" and not info["likelihood"]:  # a deterministic model
        assert r.status_code == 422 and f"this {model_type} model is deterministic" in r.text
        return
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == model_type
    if route == "log-likelihood":
        assert all(torch.isfinite(torch.tensor(body["log_likelihood"])))


def test_an_autoencoder_samples_from_its_fitted_sampler_only(client: TestClient) -> None:
    assert client.get("/v1/models/ae").json()["samplers"] == []
    info = client.get("/v1/models/ae-gmm").json()
    assert info["samplers"] == ["gmm"] and info["likelihood"] is False
    ok = client.post("/v1/models/ae-gmm/sample", json={"n": 3, "seed": 0, "sampler": "gmm"})
    assert ok.status_code == 200 and ok.json()["outputs"]["vec"]["shape"] == [3, 3]
    prior = client.post("/v1/models/ae-gmm/sample", json={"n": 3, "sampler": "prior"})
    assert prior.status_code == 422 and "'prior' is not available" in prior.text


def test_a_sparse_model_reports_the_dimensions_it_keeps(client: TestClient) -> None:
    assert client.get("/v1/models/mcvae-sparse").json()["kept_dimensions"] == [0, 2]
    assert client.get("/v1/models/mcvae").json()["kept_dimensions"] is None
    body = {"inputs": {"label": [3]}, "n_samples": 2, "seed": 0}
    samples = client.post("/v1/models/mcvae-sparse/encode", json=body).json()["samples"]
    codes = torch.tensor(samples["data"]).view(samples["shape"])
    assert bool((codes[..., [1, 3]] == 0).all()) and bool((codes[..., [0, 2]] != 0).all())


def test_encode_returns_cluster_assignments_for_models_with_clusters(client: TestClient) -> None:
    body = {"inputs": {"label": [3, 4]}, "n_samples": 4, "seed": 0}
    clustered = client.post("/v1/models/cmvae/encode", json=body).json()["clusters"]
    assert clustered["shape"] == [2, 10] and len(clustered["classes"]) == 2
    rows = torch.tensor(clustered["data"]).view(2, 10)
    torch.testing.assert_close(rows.sum(-1), torch.ones(2))
    assert clustered["classes"] == rows.argmax(-1).tolist()
    assert client.post("/v1/models/mvae/encode", json=body).json()["clusters"] is None


def test_a_conditional_model_says_what_it_generates_and_refuses_the_rest(client: TestClient):
    info = client.get("/v1/models/cvae").json()
    assert info["generates"] == ["image"] and info["requires"] == ["label", "vec"]
    assert info["samplers"] == []
    url = "/v1/models/cvae/generate"
    both = {"label": [3], "vec": [VEC]}
    ok = client.post(url, json={"inputs": both, "n_samples": 2, "seed": 0})
    assert ok.status_code == 200 and list(ok.json()["outputs"]) == ["image"]
    not_generated = client.post(url, json={"inputs": both, "targets": ["label"]})
    assert not_generated.status_code == 422
    assert not_generated.json()["error"]["field"] == "targets"
    assert "not generated" in not_generated.json()["error"]["message"]
    missing = client.post(url, json={"inputs": {"label": [3]}})
    assert missing.status_code == 422 and "['vec'] not given" in missing.text
    partial = client.post(url, json={"inputs": {"label": [3, 4], "vec": [VEC, None]}})
    assert partial.status_code == 422 and "sample 1 is not given 'vec'" in partial.text


def test_every_model_maps_and_decodes_from_each_space(client: TestClient, tmp_path: Path) -> None:
    """No model class is known to the routes: each answers, or names what it cannot decode."""
    g = torch.Generator().manual_seed(0)
    data = MultimodalDataset(
        {
            "image": torch.rand(12, 1, 8, 8, generator=g),
            "label": torch.eye(10)[torch.randint(10, (12,), generator=g)],
            "vec": torch.randn(12, 3, generator=g),
        }
    )
    content = save_npz(data, tmp_path / "d.npz").read_bytes()
    inline = {"kind": "npz", "data_base64": base64.b64encode(content).decode()}
    for model_type in BUILT_IN:
        route = f"/v1/models/{model_type}"
        info = client.get(route).json()
        body = {"dataset": inline, "n": 12, "seed": 0}
        r = client.post(f"{route}/latent-map", json=body)
        assert r.status_code == 200, (model_type, r.text)
        primary = info["latent_spaces"][info["primary_space"]]
        assert r.json()["means"]["shape"] == [12, primary["dim"]]
        for space, described in info["latent_spaces"].items():
            codes = {"shape": [2, described["dim"]], "data": [0.1] * 2 * described["dim"]}
            r = client.post(f"{route}/decode", json={"latent": codes, "space": space})
            if r.status_code == 422:  # a conditional model: its decoder reads its conditions
                assert info["requires"] and "needs the" in r.json()["error"]["message"]
                continue
            assert r.status_code == 200, (model_type, space, r.text)
            for m, out in r.json()["outputs"].items():
                assert out["shape"][0] == 2 and m in info["generates"], (model_type, space)
