"""Error answers tell the caller what is wrong and nothing about the server: every allowed
method, the body (not a character offset) as the field of broken JSON, the key check before any
body parsing, no server folders in messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import DECODING_ERRORS
from tests.service.conftest import KEY, ClientFactory, auth
from workers.redaction import redact, redact_tree


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/models", "GET, POST"),
        ("PATCH", "/v1/models/tiny", "DELETE, GET"),
        ("DELETE", "/v1/jobs", "GET, POST"),
        ("GET", "/v1/models/tiny/generate", "POST"),
    ],
)
def test_405_allows_every_method_the_path_serves(
    client, method: str, path: str, allowed: str
) -> None:
    r = client.request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allowed
    assert r.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/v1/models/tiny/generate", "/v1/models", "/v1/jobs"])
def test_broken_json_is_a_body_error_with_its_position(client, path: str) -> None:
    r = client.post(
        path, content=b'{"inputs": {"label": [3]},,}', headers={"Content-Type": "application/json"}
    )
    error = r.json()["error"]
    assert r.status_code == 422 and error["field"] == "body"
    assert error["message"].startswith("body: invalid JSON at character 26")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/models"), ("POST", "/v1/jobs"), ("POST", "/v1/models/tiny/evaluate")],
)
def test_the_key_is_checked_before_the_body_is_parsed(
    make_client: ClientFactory, method: str, path: str
) -> None:
    body, json_type = b"{not json", {"Content-Type": "application/json"}
    with make_client(api_keys=[KEY], require_key_for_inference=True) as client:
        assert client.request(method, path, content=body, headers=json_type).status_code == 401
        wrong = {**json_type, **auth("nope")}
        assert client.request(method, path, content=body, headers=wrong).status_code == 403
        r = client.request(method, path, content=body, headers={**json_type, **auth()})
        assert r.status_code == 422 and r.json()["error"]["field"] == "body"


def test_redaction_names_server_folders_by_role() -> None:
    data = Path("/srv/mmvae/data")
    store = data / "models"
    message = f"no such model folder: {store}/x/3 (under {data}/jobs); caller path /srv/x"
    assert redact(message, data, store) == (
        "no such model folder: <store>/x/3 (under <data>/jobs); caller path /srv/x"
    )
    assert redact(f"{data}backup", data, store) == f"{data}backup"  # a prefix, not the folder
    record = {"error": f"FileNotFoundError: '{data}/datasets/a.npz'", "n": [1, f"{store}"]}
    assert redact_tree(record, data, store) == {
        "error": "FileNotFoundError: '<data>/datasets/a.npz'",
        "n": [1, "<store>"],
    }


def test_admin_errors_name_no_server_folder(client) -> None:
    settings = client.app.state.settings
    load = {"name": "x", "source": {"kind": "store", "name": "no-such-model"}}
    r = client.post("/v1/models", json=load)
    message = r.json()["error"]["message"]
    assert r.status_code == 404, message
    assert str(settings.resolved_store_dir) not in message
    assert message.endswith("not in the store <store>")


def test_decoding_errors_do_not_hide_server_bugs() -> None:
    assert not any(issubclass(e, (KeyError, TypeError, AttributeError)) for e in DECODING_ERRORS)
