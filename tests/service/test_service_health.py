"""Liveness, readiness, metrics and request ids."""

from __future__ import annotations

from tests.service.conftest import ClientFactory


def test_healthz(client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_ready_lists_checks(client) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"preload:store:tiny": "ok", "store": "ok", "broker": "ok"}


def test_readyz_503_while_a_preload_fails(make_client: ClientFactory) -> None:
    with make_client(ready=False, preload=["store:tiny", "store:missing"]) as client:
        import time

        for _ in range(500):
            r = client.get("/readyz")
            if r.json()["checks"].get("preload:store:missing", "pending") != "pending":
                break
            time.sleep(0.02)
        assert r.status_code == 503
        assert r.json()["checks"]["preload:store:missing"].startswith("failed")
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/models/tiny").status_code == 200  # the others still serve


def test_readyz_extra_check_blocks(make_client: ClientFactory) -> None:
    with make_client() as client:
        client.app.state.readiness_checks["broker"] = lambda: "unreachable"
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["broker"] == "unreachable"


def test_metrics_exposes_requests_and_models(client) -> None:
    client.post("/v1/models/tiny/generate", json={"inputs": {"label": [1]}})
    text = client.get("/metrics").text
    assert (
        'mmvae_http_requests_total{method="POST",route="/v1/models/{name}/generate",status="200"}'
        in text
    )
    assert "mmvae_batch_rows_bucket" in text
    assert "mmvae_models_loaded 1.0" in text
    assert "mmvae_queue_depth" in text


def test_request_id_echoed_or_generated(client) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    generated = [
        client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers[
            "x-request-id"
        ]
        for _ in range(3)
    ]
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in generated)
    assert len(set(generated)) == 3


def test_openapi_and_docs(client) -> None:
    schema = client.get("/openapi.json").json()
    assert "/v1/models/{name}/generate" in schema["paths"]
    assert client.get("/docs").status_code == 200


def test_unknown_route_is_json_404(client) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_json_log_lines_carry_the_request_id() -> None:
    import json
    import logging

    from service.logging import JsonFormatter, request_id

    token = request_id.set("rid-1")
    try:
        record = logging.makeLogRecord({"msg": "hello %s", "args": ("x",), "levelname": "INFO"})
        record.status = 200
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["message"] == "hello x" and line["request_id"] == "rid-1" and line["status"] == 200
