"""Model management: list, describe, load from the store, reload, unload, Hub rules."""

from __future__ import annotations

from tests.service.conftest import KEY, ClientFactory, auth

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_list_and_describe(client) -> None:
    models = client.get("/v1/models").json()["models"]
    assert [m["name"] for m in models] == ["tiny"]
    info = client.get("/v1/models/tiny").json()
    assert info["model_type"] == "mvae" and info["latent_dim"] == 4
    assert info["source"] == {
        "kind": "store", "name": "tiny", "version": "2",
        "repo_id": None, "revision": None, "sha": None,
    }  # fmt: skip
    kinds = {m["name"]: (m["kind"], m["shape"], m["accepts"]) for m in info["modalities"]}
    assert kinds["image"][0] == "image" and "png_base64" in kinds["image"][2]
    assert kinds["label"] == ("categorical", [10], ["class_index", "probabilities", "tensor"])
    assert info["samplers"] == ["prior"] and info["ready"] is True
    model = client.app.state.registry.get("tiny").model
    assert info["parameters"] == sum(p.numel() for p in model.parameters()) > 0


def test_unknown_model_404(client) -> None:
    r = client.get("/v1/models/nope")
    assert r.status_code == 404 and r.json()["error"]["field"] == "name"
    r = client.post("/v1/models/nope/generate", json={"inputs": {"label": [1]}})
    assert r.status_code == 404


def test_load_reload_and_unload(client) -> None:
    body = {"name": "other", "source": {"kind": "store", "name": "tiny", "version": "1"}}
    r = client.post("/v1/models", json=body)
    assert r.status_code == 201 and r.json()["source"]["version"] == "1"
    r = client.post("/v1/models", json={**body, "source": {**body["source"], "version": "2"}})
    assert r.status_code == 200 and r.json()["source"]["version"] == "2"
    assert client.delete("/v1/models/other").status_code == 204
    assert client.delete("/v1/models/other").status_code == 404
    assert client.get("/v1/models/other").status_code == 404


def test_failed_reload_keeps_the_old_model(client) -> None:
    r = client.post(
        "/v1/models",
        json={"name": "tiny", "source": {"kind": "store", "name": "tiny", "version": "9"}},
    )
    assert r.status_code == 404 and "9" in r.json()["error"]["message"]
    assert client.get("/v1/models/tiny").json()["source"]["version"] == "2"
    assert (
        client.post("/v1/models/tiny/generate", json={"inputs": {"label": [1]}}).status_code == 200
    )


def test_load_rejects_bad_names(client) -> None:
    r = client.post("/v1/models", json={"source": {"kind": "store", "name": "../etc"}})
    assert r.status_code in (404, 422)
    r = client.post("/v1/models", json={"name": "a/b", "source": {"kind": "store", "name": "tiny"}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "name"
    r = client.post("/v1/models", json={"source": {"kind": "path", "path": "/tmp"}})
    assert r.status_code == 422


def test_sampler_availability_and_use(client) -> None:
    r = client.post("/v1/models", json={"source": {"kind": "store", "name": "tiny-gmm"}})
    assert r.status_code == 201 and r.json()["samplers"] == ["prior", "gmm"]
    r = client.post("/v1/models/tiny-gmm/sample", json={"n": 3, "sampler": "gmm", "seed": 1})
    assert r.status_code == 200 and r.json()["outputs"]["label"]["shape"] == [3, 10]
    r = client.post("/v1/models/tiny/sample", json={"n": 3, "sampler": "gmm"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "sampler"


def test_hub_unpinned_refused(client) -> None:
    r = client.post(
        "/v1/models", json={"source": {"kind": "hub", "repo_id": "org/m", "revision": "main"}}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "source.revision"
    r = client.post("/v1/models", json={"source": {"kind": "hub", "repo_id": "org/m"}})
    assert r.status_code == 422


def test_hub_invalid_repo_id(client) -> None:
    r = client.post(
        "/v1/models", json={"source": {"kind": "hub", "repo_id": "a/../b", "revision": SHA}}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "source.repo_id"
    r = client.post(
        "/v1/models", json={"source": {"kind": "hub", "repo_id": "https://evil/x", "revision": SHA}}
    )
    assert r.status_code == 422


def test_hub_org_allowlist(make_client: ClientFactory) -> None:
    with make_client(hub_org_allowlist=["good"], api_keys=[KEY]) as client:
        body = {"source": {"kind": "hub", "repo_id": "evil/model", "revision": SHA}}
        r = client.post("/v1/models", json=body, headers=auth())
        assert r.status_code == 403 and r.json()["error"]["code"] == "org_not_allowed"
        body = {"source": {"kind": "hub", "repo_id": "model", "revision": SHA}}
        assert client.post("/v1/models", json=body, headers=auth()).status_code == 403


def test_too_many_models(make_client: ClientFactory) -> None:
    with make_client(max_models=1) as client:
        r = client.post(
            "/v1/models", json={"name": "x", "source": {"kind": "store", "name": "tiny"}}
        )
        assert r.status_code == 409


def test_hub_load_pinned(make_client: ClientFactory, hub_server, new_repo, store_dir) -> None:
    """A pinned Hub load goes through the store and reports the repo and resolved sha."""
    from core.store import ModelStore

    repo_id, repo = new_repo
    sha = repo.commit(ModelStore(store_dir).get("tiny", "1"))
    with make_client(hub_endpoint=hub_server.endpoint, hub_org_allowlist=["org"]) as client:
        body = {"name": "pulled", "source": {"kind": "hub", "repo_id": repo_id, "revision": sha}}
        r = client.post("/v1/models", json=body)
        assert r.status_code == 201, r.text
        source = r.json()["source"]
        assert (source["kind"], source["repo_id"], source["sha"]) == ("hub", repo_id, sha)
        r = client.post("/v1/models/pulled/generate", json={"inputs": {"label": [1]}})
        assert r.status_code == 200
        missing = {"source": {"kind": "hub", "repo_id": "org/absent", "revision": sha}}
        assert client.post("/v1/models", json=missing).status_code == 404
