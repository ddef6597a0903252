"""The "serve and call it" walk-through, against a real `mmvae serve` (with its job worker)
started as the page says: the Python client script, and every `bash` block of the page run in
order by bash, with the server's address in place of the page's."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.adversarial.conftest import Server, serve
from tests.examples.conftest import EXAMPLES, example_env, fenced_blocks, run_python

PAGE = (EXAMPLES / "serve_and_call.md").read_text()
SCRIPT = EXAMPLES / "serve_and_call.py"
PAGE_URL = "URL=http://127.0.0.1:8000"


def page_server_env() -> dict[str, str]:
    """The environment the page starts `mmvae serve` with (its `bash server` block)."""
    (block,) = fenced_blocks(PAGE, "bash server")
    words = shlex.split(block)
    env = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))
    command = [word for word in words if not re.match(r"^[A-Z_]+=", word)]
    assert command[0].endswith("mmvae") and command[1] == "serve", block
    return env


def page_key() -> str:
    match = re.search(r"^KEY=(\S+)$", PAGE, flags=re.MULTILINE)
    assert match, "the page sets KEY in its shell set-up block"
    return match.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = page_server_env()
    with serve(tmp_path_factory.mktemp("serve"), worker=True, OMP_NUM_THREADS="1", **env) as srv:
        yield srv


def test_the_page_is_consistent() -> None:
    """One key for the server and the calls; every call either fails on an error answer
    (`curl -fsS`) or prints the status it shows."""
    assert page_server_env() == {"MMVAE_API_KEYS": page_key()}
    blocks = fenced_blocks(PAGE, "bash")
    assert PAGE_URL in blocks[0]
    calls = [line for block in blocks for line in block.splitlines() if "curl " in line]
    assert len(calls) >= 15
    for line in calls:
        assert "curl -fsS" in line or "-w '%{http_code}" in line, line


@pytest.mark.slow
def test_python_client_walkthrough(server: Server, tmp_path: Path) -> None:
    png = tmp_path / "digits.png"
    argv = [str(SCRIPT), "--url", server.url, "--key", page_key(), "--epochs", "2"]
    out = run_python([*argv, "--png", str(png)], cwd=tmp_path)
    assert "ready: True" in out
    assert "digits-demo mopoe {'image': [1, 8, 8], 'label': [10]}" in out
    assert "label -> image: [1, 10, 1, 8, 8]" in out
    assert re.search(r"image -> label: \[(\d, ){9}\d\] \((\d+)/10 digits back\)", out), out
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "encode: space shared, mean [3, 8], draws [2, 3, 8]" in out
    assert "sample: {'image': [4, 1, 8, 8], 'label': [4, 10]}" in out
    assert re.search(r"log p\(image, label\): -?\d+\.\d\d; log p\(image \| label\): -?\d", out)
    assert "job succeeded: published walkthrough-python@" in out
    assert "walkthrough-python: label 7 -> image [1, 1, 1, 8, 8]" in out
    with server.client() as client:
        names = [m["name"] for m in client.get("/v1/models").json()["models"]]
    assert "walkthrough-python" in names


@pytest.mark.slow
def test_curl_walkthrough(server: Server, tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + "\n".join(fenced_blocks(PAGE, "bash"))
    script = script.replace(PAGE_URL, f"URL={server.url}")
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=example_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n{out[-3000:]}"
    assert '"ready":true' in out
    assert '"name":"digits-demo"' in out
    assert (tmp_path / "digits.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert '"classes":[[0]]' in out  # the real 0 of the test split, sent as numbers
    assert re.search(r'"log_likelihood":\[-?[\d.]+,-?[\d.]+\]', out)  # joint, two samples
    assert '"given":["label"],"targets":["image"]' in out
    # a job without the key (after the previous answer, which ends without a newline)
    assert re.search(r"(^|\})401$", out, flags=re.MULTILINE)
    assert re.search(r"^event: succeeded$", out, flags=re.MULTILINE)
    assert '"model":{"name":"walkthrough-curl","version":"1"' in out
    assert '"model":"walkthrough-curl","outputs":{"image":{"shape":[1,1,1,8,8]' in out
    with httpx.Client(base_url=server.url, timeout=30) as client:
        jobs = client.get("/v1/jobs", headers={"Authorization": f"Bearer {page_key()}"}).json()
    records = jobs["jobs"] if isinstance(jobs, dict) else jobs
    curl_jobs = [j for j in records if j["spec"].get("name") == "walkthrough-curl"]
    assert [j["state"] for j in curl_jobs] == ["succeeded"]
