"""docker/Dockerfile, read as text (no engine here to build it) and linted with hadolint."""

from __future__ import annotations

import json
import re
import subprocess
from fnmatch import fnmatch

import pytest

from tests.deploy.conftest import DOCKERFILE, ROOT


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    buffer = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not buffer and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buffer and line.lstrip().startswith("#"):
            continue
        buffer += line.rstrip()
        if buffer.endswith("\\"):
            buffer = buffer[:-1] + " "
            continue
        logical.append(buffer.strip())
        buffer = ""
    out = []
    for text in logical:
        word, _, rest = text.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for word, rest in instructions():
        if word == "FROM":
            name = rest.split(" AS ")[-1].strip() if " AS " in rest else f"stage{len(result)}"
            current = result.setdefault(name, [])
        if current is not None:
            current.append((word, rest))
    return result


def final_stage() -> list[tuple[str, str]]:
    return list(stages().values())[-1]


def args_of(stage: list[tuple[str, str]], word: str) -> list[str]:
    return [rest for w, rest in stage if w == word]


def test_multi_stage_with_slim_python_bases() -> None:
    found = stages()
    assert list(found) == ["builder", "runtime"]
    for stage in found.values():
        assert re.match(r"python:\$\{PYTHON_VERSION\}-slim AS ", stage[0][1])
    assert "COPY --from=builder /opt/venv /opt/venv" in [
        f"COPY {r}" for r in args_of(found["runtime"], "COPY")
    ]


def test_torch_variant_is_a_build_argument() -> None:
    builder = stages()["builder"]
    assert "TORCH_VARIANT=cpu" in args_of(builder, "ARG")
    assert any(a.startswith("TORCH_VERSION=") for a in args_of(builder, "ARG"))
    run = " ".join(args_of(builder, "RUN"))
    assert "torch==${TORCH_VERSION}" in run
    assert "https://download.pytorch.org/whl/${TORCH_VARIANT}" in run


def test_project_installed_non_editable() -> None:
    run = " ".join(args_of(stages()["builder"], "RUN"))
    assert re.search(r"pip install \"?\.(\[[\w,]+\])?\"?(\s|$)", run)
    assert " -e " not in run and "--editable" not in run


def test_final_stage_runs_as_non_root_with_data_volume() -> None:
    final = final_stage()
    users = args_of(final, "USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert args_of(final, "VOLUME") == ['["/data"]']
    env = " ".join(args_of(final, "ENV"))
    assert "MMVAE_DATA_DIR=/data" in env
    assert "HF_HOME=/data/hf" in env
    assert "8000" in args_of(final, "EXPOSE")
    # the data directory exists and belongs to that user, so a fresh named volume is writable
    run = " ".join(args_of(final, "RUN"))
    assert "--uid 10001" in run and "chown -R mmvae:mmvae /data" in run
    assert users[-1] == "10001:10001"


def test_entrypoint_is_mmvae_serving_on_all_interfaces() -> None:
    final = final_stage()
    assert json.loads(args_of(final, "ENTRYPOINT")[-1]) == ["mmvae"]
    assert json.loads(args_of(final, "CMD")[-1]) == ["serve", "--host", "0.0.0.0", "--port", "8000"]


def test_healthcheck_probes_healthz_with_python() -> None:
    (check,) = args_of(final_stage(), "HEALTHCHECK")
    assert "CMD" in check and "python" in check and "/healthz" in check
    assert "curl" not in check and "wget" not in check  # not in slim images


def test_no_build_tools_in_the_final_stage() -> None:
    text = " ".join(rest for _, rest in final_stage())
    for tool in ("build-essential", "gcc", "g++", "apt-get install", "git "):
        assert tool not in text, tool


def test_copied_sources_exist_and_are_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    for rest in args_of(stages()["builder"], "COPY"):
        if rest.startswith("--from"):
            continue
        for source in rest.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not any(fnmatch(source, pattern) for pattern in ignored), source


def test_hadolint_finds_nothing(hadolint: str) -> None:
    out = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("path", ["docker-compose.yml", ".env.example", ".dockerignore"])
def test_deployment_files_exist(path: str) -> None:
    assert (ROOT / path).is_file()
