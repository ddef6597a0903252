"""Shared by the examples' tests: where the examples are, and how their processes are run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MODEL_SCRIPTS = sorted((EXAMPLES / "models").glob("[!_]*.py"))


def example_env(**extra: str) -> dict[str, str]:
    """This environment with one torch thread per process (the tests share two cores, and
    oversubscribed torch threads run ~10x slower) and the project importable from anywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMVAE_", "HF_"))}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT), **extra)
    return env


def python(
    argv: list[str], cwd: Path, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python argv...` with this interpreter, in `example_env`, its output captured."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        env=example_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_python(argv: list[str], cwd: Path, timeout: float = 300, **env: str) -> str:
    """`python argv...` that must succeed: its stdout (a failure shows its stderr)."""
    done = python(argv, cwd, timeout, **env)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done.stdout


def fenced_blocks(markdown: str, info: str) -> list[str]:
    """The bodies of the fenced code blocks whose info string is exactly `info`, in order."""
    pattern = rf"^```{re.escape(info)}[ \t]*\n(.*?)^```[ \t]*$"
    return re.findall(pattern, markdown, flags=re.DOTALL | re.MULTILINE)
