"""Fixtures for the web UI tests: a real `mmvae serve` (with its job worker and API keys), a
headless system Chromium driven by Selenium, a prefix-stripping reverse proxy, and a folder
for screenshots (`MMVAE_TEST_ARTIFACTS`, default `test-artifacts/ui/` at the repo root)."""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.adversarial.conftest import Server, serve

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("MMVAE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("MMVAE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
API_KEY = "ui-test-key-0123456789abcdef"
PREFIX = "/mmvae"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (kept after the run: CI uploads them)."""
    folder = Path(os.environ.get("MMVAE_TEST_ARTIFACTS") or ROOT / "test-artifacts" / "ui")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session: demo model, embedded worker, keys on every route."""
    with serve(
        tmp_path_factory.mktemp("ui-server"),
        worker=True,
        MMVAE_API_KEYS=API_KEY,
        MMVAE_REQUIRE_KEY_FOR_INFERENCE="true",
    ) as running:
        yield running


@pytest.fixture(scope="session")
def driver() -> Iterator[Any]:
    """Headless system Chromium; Selenium Manager never runs (explicit binary and driver)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"the browser tests need {' and '.join(missing)}: run `make browser` "
            "(apt-get install chromium chromium-driver)",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,1100")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_script_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


class _PrefixProxy(BaseHTTPRequestHandler):
    """Forwards `PREFIX/...` to the backend as `/...` (what nginx's `proxy_pass .../;` does)."""

    backend: tuple[str, int] = ("127.0.0.1", 0)

    def _forward(self) -> None:
        if not (self.path == PREFIX or self.path.startswith(PREFIX + "/")):
            self.send_error(404, "outside the proxy prefix")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        skip = {"host", "connection", "content-length"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        upstream = http.client.HTTPConnection(*self.backend, timeout=60)
        try:
            upstream.request(self.command, self.path[len(PREFIX) :] or "/", body, headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in {
                "transfer-encoding",
                "connection",
                "content-length",
                "date",
                "server",
            }:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _forward

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture(scope="session")
def proxy(server: Server) -> Iterator[str]:
    """The server behind `http://127.0.0.1:<port>/mmvae` (a path-prefix reverse proxy)."""
    host, port = server.url.removeprefix("http://").split(":")
    handler = type("Proxy", (_PrefixProxy,), {"backend": (host, int(port))})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}{PREFIX}"
    finally:
        httpd.shutdown()
        httpd.server_close()
