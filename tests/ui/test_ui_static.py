"""Serving the UI's files (no browser): `/ui` redirects relatively, the files come with strict
security headers, `MMVAE_UI=false` turns them off, the page has no inline code (the CSP forbids
it), every API URL is relative (the path-prefix rule) and the files ship in the wheel."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from setuptools import find_namespace_packages

from service.app import create_app
from service.settings import Settings
from service.ui import CONTENT_SECURITY_POLICY, STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(p.name for p in STATIC_DIR.iterdir())


def _app(tmp_path: Path, **overrides: object):
    return create_app(
        Settings(preload=[], data_dir=tmp_path, jobs_enabled=False, log_json=False, **overrides)
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(_app(tmp_path)) as test_client:
        yield test_client


def test_the_page_is_all_there() -> None:
    assert {"index.html", "app.css", "app.js", "api.js", "jobs.js", "latent.js"} <= set(FILES)


def test_ui_redirects_relatively_and_serves_the_page(client: TestClient) -> None:
    r = client.get("/ui", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "ui/"  # keeps any proxy prefix
    r = client.get("/ui")
    assert r.status_code == 200 and str(r.url).endswith("/ui/")
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js"></script>' in r.text


@pytest.mark.parametrize("name", FILES)
def test_every_file_is_served_with_security_headers(client: TestClient, name: str) -> None:
    r = client.get(f"/ui/{name}")
    assert r.status_code == 200 and r.content == (STATIC_DIR / name).read_bytes()
    kind = {"html": "text/html", "js": "javascript", "css": "text/css"}[name.rsplit(".", 1)[1]]
    assert kind in r.headers["content-type"]
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"


def test_api_answers_keep_their_own_headers(client: TestClient) -> None:
    assert "content-security-policy" not in client.get("/healthz").headers


def test_unknown_file_is_a_json_404(client: TestClient) -> None:
    r = client.get("/ui/missing.js")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_ui_can_be_turned_off(tmp_path: Path) -> None:
    with TestClient(_app(tmp_path, ui=False)) as client:
        assert client.get("/ui/").status_code == 404
        assert client.get("/ui", follow_redirects=False).status_code == 404
        assert client.get("/healthz").status_code == 200


def test_served_under_a_root_path(tmp_path: Path) -> None:
    """Behind a proxy that passes the prefix on (uvicorn --root-path), the redirect stays
    relative and the page is served."""
    with TestClient(_app(tmp_path), root_path="/mmvae") as client:
        r = client.get("/mmvae/ui", follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == "ui/"
        assert client.get("/mmvae/ui/app.js").status_code == 200


def test_no_inline_code_in_the_page() -> None:
    """The CSP allows no inline script or style: all of it lives in the files."""
    html = (STATIC_DIR / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S)
    assert scripts == [""], "inline <script> content"
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"


def test_every_url_is_relative_to_the_page() -> None:
    """No absolute path or origin anywhere: the page must work under a path prefix."""
    for name in FILES:
        text = (STATIC_DIR / name).read_text()
        assert not re.search(r"""["'`]/(v1|ui|healthz|readyz)""", text), name
        assert "http://" not in text and "https://" not in text, name
        for target in re.findall(r"""\b(?:src|href)=["']([^"']+)""", text):
            assert not target.startswith(("/", "//")), (name, target)
    for name in FILES:
        if name.endswith(".js"):
            imports = re.findall(r"""from\s+["']([^"']+)["']""", (STATIC_DIR / name).read_text())
            assert all(i.startswith("./") for i in imports), (name, imports)


def test_the_files_ship_in_the_wheel() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()  # (no tomllib on Python 3.10)
    section = pyproject.split("[tool.setuptools.package-data]", 1)[1]
    patterns = ast.literal_eval(re.search(r'^"\*" = (\[.*\])$', section, re.M).group(1))
    assert {"*.html", "*.js", "*.css"} <= set(patterns)
    include = ast.literal_eval(re.search(r"^include = (\[.*\])$", pyproject, re.M).group(1))
    found = find_namespace_packages(str(ROOT), include=include)
    assert "service.ui" in found and "service.ui.static" in found
    suffixes = {p.suffix for p in STATIC_DIR.iterdir()}
    assert suffixes <= {".html", ".js", ".css"}, suffixes
