"""A Hub-compatible server on loopback for tests: olah, offline, serving local git repositories.

`HubServer.create_repo("org/name")` makes a git repository where olah looks for mirrors
(`<mirrors>/models/<org>/<name>`); commits, branches and tags made there are real, so the real
huggingface_hub client resolves them to real shas. Also `closed_port()`: a listening socket that
tells whether anything connected to it (to prove a request never left the process).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx2

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": os.devnull,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class GitRepo:
    """A git repository laid out like a Hub model repo (files at the root)."""

    path: Path

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", *args],
            cwd=self.path,
            env={**os.environ, **_GIT_ENV},
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def commit(self, files: Path | dict[str, bytes], message: str = "update") -> str:
        """Replace the tree with `files` (a folder, or name -> bytes) and commit; the new sha."""
        for entry in self.path.iterdir():
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        if isinstance(files, Path):
            shutil.copytree(files, self.path, dirs_exist_ok=True)
        else:
            for name, data in files.items():
                (self.path / name).parent.mkdir(parents=True, exist_ok=True)
                (self.path / name).write_bytes(data)
        # Forget the index's stat cache first: copytree keeps mtimes, and two same-size files
        # copied within one second onto a reused inode look unchanged to `git add`.
        self.git("rm", "-r", "-q", "--cached", "--ignore-unmatch", ".")
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")

    def branch(self, name: str, at: str = "HEAD") -> None:
        self.git("branch", "-f", name, at)

    def tag(self, name: str, at: str = "HEAD") -> None:
        self.git("tag", "-f", name, at)


class HubServer:
    """olah in offline mode on 127.0.0.1, serving the git repositories under `mirrors`."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.mirrors = base / "mirrors"
        self.mirrors.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        config = base / "olah.toml"
        config.write_text(
            "[basic]\n"
            'host = "127.0.0.1"\n'
            f"port = {self.port}\n"
            f'repos-path = "{base / "cache"}"\n'
            f'mirrors-path = ["{self.mirrors}"]\n'
            "metadata-cache-ttl = 0\n"
            "[accessibility]\n"
            "offline = true\n"
        )
        self.log = open(base / "server.log", "wb")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "olah.server", "-c", str(config), "--log-path", str(base)],
            cwd=base,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait()

    def _wait(self, timeout: float = 30.0) -> None:
        """Until the server answers for a repository only this instance has (not another
        process that happens to hold the port)."""
        probe = f"probe/p{uuid.uuid4().hex[:12]}"
        self.create_repo(probe).commit({"README.md": b"probe"})
        url = f"{self.endpoint}/api/models/{probe}/revision/main"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"olah exited: {(self.base / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"olah did not start in {timeout}s")

    def create_repo(self, repo_id: str) -> GitRepo:
        org, name = repo_id.split("/")
        path = self.mirrors / "models" / org / name
        path.mkdir(parents=True)
        repo = GitRepo(path)
        repo.git("init", "-q", "-b", "main")
        return repo

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class Listener:
    """A listening socket on loopback that never answers: `connected()` says if anyone tried."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def connected(self) -> bool:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    def close(self) -> None:
        self.sock.close()


class RecordedHub:
    """Answers the requests `upload_folder` makes, as the Hub does, and records them."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self.commit_sha = "c0ffee" + "0" * 34

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        self.requests.append(request)
        path = request.url.path
        if path == "/api/repos/create":
            return httpx2.Response(200, json={"url": "http://hub.test/org/shared"})
        if path == "/api/validate-yaml":
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if "/branch/" in path:
            return httpx2.Response(200, json={})
        if "/preupload/" in path:
            files = json.loads(request.content)["files"]
            modes = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
            ]
            return httpx2.Response(200, json={"files": modes})
        if "/commit/" in path:
            url = f"http://hub.test/org/shared/commit/{self.commit_sha}"
            return httpx2.Response(200, json={"commitUrl": url, "commitOid": self.commit_sha})
        return httpx2.Response(404, json={"error": f"unexpected {request.method} {path}"})

    def to(self, host: str) -> list[httpx2.Request]:
        return [r for r in self.requests if r.url.host == host]

    def commit(self) -> tuple[dict, dict[str, bytes]]:
        """The commit request's header and the files it carried (path -> bytes)."""
        (request,) = [r for r in self.requests if "/commit/" in r.url.path]
        return commit_payload(request.content)


def commit_payload(body: bytes) -> tuple[dict, dict[str, bytes]]:
    """A Hub commit's NDJSON body: its header and the files it carries (path -> bytes)."""
    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    header = next(line["value"] for line in lines if line["key"] == "header")
    files = {
        line["value"]["path"]: base64.b64decode(line["value"]["content"])
        for line in lines
        if line["key"] == "file"
    }
    return header, files
