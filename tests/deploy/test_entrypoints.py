"""The commands the images run exist, parse, and start (run here from the project's venv)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import COMPOSE_FILE, DOCKERFILE, clean_env, find_tool
from tests.deploy.test_dockerfile import args_of, final_stage

KEY = "deploy-test-key-0123456789"
# The machine's Redis (started before every session and CI run); a database of its own.
REDIS_URL = "redis://127.0.0.1:6379/13"


def mmvae() -> str:
    tool = find_tool("mmvae")
    assert tool, "the `mmvae` console script is not installed (pip install -e .)"
    return tool


def run(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=clean_env(MMVAE_DATA_DIR=str(tmp_path / "data"), HF_HOME=str(tmp_path / "hf"), **env),
    )


def _defaults(value: str) -> str:
    """`${VAR:-default}` → default, as compose resolves it with the example env file."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def image_commands() -> dict[str, list[str]]:
    """Every argv the images run: the Dockerfile's CMD and each compose service's command."""
    commands = {"Dockerfile CMD": json.loads(args_of(final_stage(), "CMD")[-1])}
    for name, service in yaml.safe_load(COMPOSE_FILE.read_text())["services"].items():
        if "command" in service and service.get("image", "").startswith("${MMVAE_IMAGE"):
            commands[name] = [_defaults(str(part)) for part in service["command"]]
    return commands


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["worker", "--help"]])
def test_help_commands_exit_zero(argv: list[str], tmp_path: Path) -> None:
    out = run([mmvae(), *argv], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "usage: mmvae" in out.stdout


def test_worker_help_lists_the_options_compose_uses(tmp_path: Path) -> None:
    out = run([mmvae(), "worker", "--help"], tmp_path)
    for option in ("--queues", "--concurrency", "--pool", "--loglevel"):
        assert option in out.stdout


@pytest.mark.parametrize("name", list(image_commands()))
def test_image_commands_parse(name: str) -> None:
    from core.cli.main import build_parser

    argv = image_commands()[name]
    args = build_parser().parse_args(argv)  # exits (SystemExit) on an unknown command/option
    assert args.command == argv[0]


def test_compose_runs_the_api_and_workers() -> None:
    commands = image_commands()
    assert commands["api"][0] == "serve"
    assert commands["worker"][0] == "worker" and commands["worker-cpu"][0] == "worker"


def test_serve_on_all_interfaces_without_keys_is_refused(tmp_path: Path) -> None:
    out = run([mmvae(), "serve", "--host", "0.0.0.0", "--port", "8000"], tmp_path)
    assert out.returncode != 0
    assert "refusing to listen on 0.0.0.0 without API keys" in out.stderr
    assert "MMVAE_API_KEYS" in out.stderr


@contextmanager
def _running(argv: list[str], tmp_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`mmvae *argv` in the background for the block, then terminated (killed if it hangs)."""
    proc = subprocess.Popen(
        [mmvae(), *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _until_healthy(proc: subprocess.Popen, check: list[str], env: dict[str, str], pause: float):
    """Run the healthcheck `check` until it passes (120 s at most) while `proc` stays up."""
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, f"{proc.args[1]} exited: {proc.stderr.read()}"
        result = subprocess.run(check, capture_output=True, timeout=60, env=env)
        if result.returncode == 0:
            return
        assert time.monotonic() < deadline, f"healthcheck never passed: {result.stderr!r}"
        time.sleep(pause)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_served_api_passes_the_image_healthcheck(tmp_path: Path) -> None:
    """The image's CMD with keys, on loopback, and the Dockerfile's own HEALTHCHECK command."""
    port = _free_port()
    (check,) = args_of(final_stage(), "HEALTHCHECK")
    probe = json.loads(check[check.index("CMD") + 3 :].strip())
    probe = [part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in probe]
    assert probe[0] == "python"
    probe[0] = sys.executable
    env = clean_env(
        MMVAE_DATA_DIR=str(tmp_path / "data"),
        HF_HOME=str(tmp_path / "hf"),
        MMVAE_API_KEYS=KEY,
        MMVAE_EMBEDDED_WORKER="false",
    )
    argv = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    with _running(argv, tmp_path, env) as server:
        _until_healthy(server, probe, env, pause=0.5)
    assert DOCKERFILE.exists()


@pytest.mark.slow
def test_started_worker_passes_the_compose_healthcheck(tmp_path: Path) -> None:
    """A worker as compose runs it, on this machine's Redis, answers compose's healthcheck."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    kind, check = compose["services"]["worker"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    check = check.replace("$$", "$")  # compose's escape for a literal $
    argv = [_defaults(str(part)) for part in compose["services"]["worker"]["command"]]
    argv[argv.index("--queues") + 1] = "deploy-test"  # consume nothing real
    env = clean_env(
        MMVAE_DATA_DIR=str(tmp_path / "data"),
        MMVAE_REDIS_URL=REDIS_URL,
        HOSTNAME=socket.gethostname(),
        PATH=f"{Path(mmvae()).parent}:{clean_env()['PATH']}",
    )
    with _running(argv, tmp_path, env) as worker:
        _until_healthy(worker, ["sh", "-c", check], env, pause=1)
        # a worker under another name must not satisfy it
        other = {**env, "HOSTNAME": "not-this-worker"}
        assert subprocess.run(["sh", "-c", check], timeout=60, env=other).returncode != 0
