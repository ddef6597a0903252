"""API keys on mutating routes (and optionally inference), constant-time comparison, CORS,
protected mode."""

from __future__ import annotations

import logging

import pytest

from service.security import ExposureError, check_exposure, is_loopback, key_matches
from service.settings import Settings
from tests.service.conftest import KEY, ClientFactory, auth

LOAD = {"name": "x", "source": {"kind": "store", "name": "tiny"}}


def test_keys_required_for_load_and_unload(make_client: ClientFactory) -> None:
    with make_client(api_keys=[KEY, "second-key"]) as client:
        r = client.post("/v1/models", json=LOAD)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert client.post("/v1/models", json=LOAD, headers=auth("wrong")).status_code == 403
        assert client.post("/v1/models", json=LOAD, headers=auth()).status_code == 201
        assert client.delete("/v1/models/x").status_code == 401
        assert client.delete("/v1/models/x", headers=auth("second-key")).status_code == 204
        # inference stays open by default
        r = client.post("/v1/models/tiny/generate", json={"inputs": {"label": [1]}})
        assert r.status_code == 200


def test_key_required_for_inference_when_set(make_client: ClientFactory) -> None:
    with make_client(api_keys=[KEY], require_key_for_inference=True) as client:
        body = {"inputs": {"label": [1]}}
        assert client.post("/v1/models/tiny/generate", json=body).status_code == 401
        r = client.post("/v1/models/tiny/generate", json=body, headers=auth())
        assert r.status_code == 200
        assert client.get("/healthz").status_code == 200  # health stays open


def test_open_without_keys(client) -> None:
    assert client.post("/v1/models", json=LOAD).status_code == 201


def test_key_matches() -> None:
    assert key_matches("a", ["b", "a"])
    assert not key_matches("a", ["b"]) and not key_matches("", ["b"]) and not key_matches("a", [])


def test_settings_parse_comma_separated_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMVAE_API_KEYS", "k1, k2")
    monkeypatch.setenv("MMVAE_HUB_ORG_ALLOWLIST", "org")
    settings = Settings()
    assert settings.keys == ["k1", "k2"] and settings.hub_org_allowlist == ["org"]
    assert "k1" not in repr(settings)


def test_cors(make_client: ClientFactory) -> None:
    with make_client(cors_origins=["https://ok.example"]) as client:
        r = client.get("/healthz", headers={"Origin": "https://ok.example"})
        assert r.headers["access-control-allow-origin"] == "https://ok.example"
        r = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_no_cors_by_default(client) -> None:
    r = client.get("/healthz", headers={"Origin": "https://ok.example"})
    assert "access-control-allow-origin" not in r.headers


def test_loopback_detection() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.com"))


def test_protected_mode(caplog: pytest.LogCaptureFixture) -> None:
    open_settings = Settings(api_keys=[], preload=[])
    with caplog.at_level(logging.WARNING, logger="service.security"):
        check_exposure("127.0.0.1", open_settings)
    assert "running open" in caplog.text
    with pytest.raises(ExposureError, match="--allow-open"):
        check_exposure("0.0.0.0", open_settings)
    check_exposure("0.0.0.0", Settings(api_keys=["k" * 16], preload=[]))
    check_exposure("0.0.0.0", Settings(api_keys=[], allow_open=True, preload=[]))


def test_a_public_bind_refuses_short_keys_and_names_them() -> None:
    keys = Settings(api_keys=["long-enough-key-0123", "k", "zq9"], preload=[])
    check_exposure("127.0.0.1", keys)  # loopback: any key
    with pytest.raises(ExposureError) as err:
        check_exposure("0.0.0.0", keys)
    message = str(err.value)
    assert "MMVAE_API_KEYS" in message and "number 2, 3 are shorter than 16" in message
    assert "zq9" not in message and "long-enough" not in message  # keys are not echoed


def test_serve_refuses_public_address_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from service.cli import register

    monkeypatch.delenv("MMVAE_API_KEYS", raising=False)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--host", "0.0.0.0", "--preload", ""])
    assert args.func(args) == 2


def test_serve_hands_the_connection_limit_and_grace_to_uvicorn(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    import argparse

    import uvicorn

    from service.cli import register

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("MMVAE_MAX_CONNECTIONS", "300")
    monkeypatch.setenv("MMVAE_SHUTDOWN_GRACE_S", "7")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    argv = ["serve", "--preload", "", "--no-worker", "--data-dir", str(tmp_path)]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    assert seen["limit_concurrency"] == 300 and seen["timeout_graceful_shutdown"] == 7
