"""Generate the settings reference from the pydantic settings classes, so the docs can't drift.

    python docs/gen_settings.py           # rewrite docs/configuration.md's table and .env.example
    python docs/gen_settings.py --check   # exit 1 if either is out of date (tests/deploy run it)

Sources: `service.settings.Settings` (the HTTP service) and `workers.settings.WorkerSettings`
(jobs and workers). Groups come from the `# comment` lines between fields in those classes.
A variable read by both (e.g. MMVAE_DATA_DIR) is listed once.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path, PurePath

from pydantic import AliasChoices, SecretStr
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DOC = ROOT / "docs" / "configuration.md"
ENV_EXAMPLE = ROOT / ".env.example"
BEGIN = "<!-- BEGIN GENERATED SETTINGS (python docs/gen_settings.py) -->"
END = "<!-- END GENERATED SETTINGS -->"

# (module:class, component label)
SOURCES = [
    ("service.settings:Settings", "api"),
    ("workers.settings:WorkerSettings", "jobs"),
]

# Fields whose value docker-compose.yml sets itself; .env.example says so instead of a default.
SET_BY_COMPOSE = {
    "MMVAE_API_KEYS": "required by docker-compose.yml (the API listens on 0.0.0.0)",
    "MMVAE_REDIS_URL": "docker-compose.yml sets redis://redis:6379/0",
    "MMVAE_EMBEDDED_WORKER": "docker-compose.yml sets false for the API (workers are separate)",
    "MMVAE_DATA_DIR": "the image sets /data (the model-store volume)",
}

_FALLBACK_DESCRIPTIONS = [
    (
        re.compile(r"^(\w+?)_soft_time_limit_s$"),
        "soft time limit of {0} jobs, seconds (the task is told, checkpoints and fails cleanly)",
    ),
    (
        re.compile(r"^(\w+?)_time_limit_s$"),
        "hard time limit of {0} jobs, seconds (the process is killed)",
    ),
]


@dataclass
class Entry:
    env: str
    aliases: list[str]
    type: str
    default: str
    env_default: str
    description: str
    group: str
    components: list[str] = field(default_factory=list)


def _load(spec: str) -> type:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def _groups(cls: type) -> dict[str, str]:
    """Field name → the last `# group` comment above it in the class body."""
    groups: dict[str, str] = {}
    current = "general"
    for line in inspect.getsource(cls).splitlines():
        comment = re.match(r"^    # (.+?)\s*$", line)
        if comment:
            current = re.split(r"\s*[(:;]", comment.group(1), maxsplit=1)[0].strip()
            continue
        name = re.match(r"^    (\w+)\s*:", line)
        if name and name.group(1) in cls.model_fields:
            groups[name.group(1)] = current
    return groups


def _type_name(annotation: object) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    text = re.sub(r"typing\.|pathlib\.|pydantic\.types\.", "", text)
    text = re.sub(r"Annotated\[(.+?), .*\]$", r"\1", text)
    text = text.replace("SecretStr", "str").replace("NoneType", "None")
    text = text.replace("Optional[", "").rstrip("]") if text.startswith("Optional[") else text
    if text.startswith("list["):
        return "comma-separated list"
    return text.replace(" | None", "").replace("PosixPath", "Path")


def _value(value: object, *, env: bool) -> str:
    if value is None:
        return "" if env else "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, SecretStr):
        return "***"
    if isinstance(value, PurePath) and not value.is_absolute():
        return f"./{value}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "" if env else "(empty)"
        return ",".join(_value(v, env=True) for v in value)
    return str(value)


def collect() -> list[Entry]:
    entries: dict[str, Entry] = {}
    for spec, component in SOURCES:
        cls = _load(spec)
        prefix = cls.model_config.get("env_prefix", "")
        groups = _groups(cls)
        for name, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names = [str(a) for a in alias.choices if str(a).upper() == str(a)]
            elif isinstance(alias, str):
                names = [alias]
            else:
                names = [f"{prefix}{name}".upper()]
            env, aliases = names[0], names[1:]
            if env in entries:
                if component not in entries[env].components:
                    entries[env].components.append(component)
                continue
            if info.default_factory is not None:
                default = info.default_factory()
            elif info.default is PydanticUndefined:
                default = None
            else:
                default = info.default
            description = info.description or ""
            if not description:
                for pattern, template in _FALLBACK_DESCRIPTIONS:
                    m = pattern.match(name)
                    if m:
                        description = template.format(*m.groups())
                        break
            entries[env] = Entry(
                env=env,
                aliases=aliases,
                type=_type_name(info.annotation),
                default=_value(default, env=False),
                env_default=_value(default, env=True),
                description=description,
                group=groups.get(name, "general"),
                components=[component],
            )
    return list(entries.values())


def _grouped(entries: list[Entry]) -> dict[tuple[str, str], list[Entry]]:
    out: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        out.setdefault((e.components[0], e.group), []).append(e)
    return out


def render_table(entries: list[Entry]) -> str:
    lines = [BEGIN, ""]
    titles = {"api": "HTTP service", "jobs": "Jobs and workers"}
    for (component, group), items in _grouped(entries).items():
        lines += [f"#### {titles.get(component, component)}: {group}", ""]
        lines += ["| Variable | Type | Default | Read by | Description |", "|---|---|---|---|---|"]
        for e in items:
            var = f"`{e.env}`" + "".join(f" (or `{a}`)" for a in e.aliases)
            default = f"`{e.default}`" if not e.default.startswith("(") else e.default
            desc = e.description.replace("|", "\\|")
            lines.append(f"| {var} | {e.type} | {default} | {', '.join(e.components)} | {desc} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


ENV_HEADER = """\
# mmvae-service configuration for docker compose: copy to .env and edit.
#
#   cp .env.example .env
#
# docker compose reads this file twice: for ${...} substitution in docker-compose.yml (the
# "Compose" section) and as the env_file of the api and worker containers (everything else).
# A commented-out line shows the default; uncomment it to change the value.
# Generated by `python docs/gen_settings.py` from the settings classes: edit the classes (or the
# compose section in that script), not this file. docs/configuration.md explains every entry.

# ============================================================================================
# Required
# ============================================================================================

# Bearer keys the API accepts (comma-separated). The API listens on 0.0.0.0 in its container, so
# it refuses to start without one. Generate a key with:
#   python -c "import secrets; print(secrets.token_urlsafe(32))"
# Clients send it as `Authorization: Bearer <key>`.
MMVAE_API_KEYS=

# ============================================================================================
# Compose (image builds and ports; read by docker-compose.yml, not by the application)
# ============================================================================================

# GPU workers on this machine (each reserves one GPU). On a machine without a GPU set
# GPU_WORKERS=0, WORKER_TORCH_VARIANT=cpu and CPU_WORKER_QUEUES=gpu,cpu: the CPU worker then
# runs every job. Several GPUs: see docs/deployment.md (one worker per GPU).
# GPU_WORKERS=1
# Queues the CPU worker takes jobs from: cpu (evaluation), or gpu,cpu without a GPU worker.
# CPU_WORKER_QUEUES=cpu
# Jobs the CPU worker runs at once (each uses MMVAE_TORCH_THREADS threads).
# CPU_WORKER_CONCURRENCY=1
# torch build of the GPU worker image: pypi (PyPI's default Linux wheel, a CUDA build), cu126,
# cu128, cu130... (that CUDA build from download.pytorch.org, where published for
# TORCH_VERSION) or cpu. The host's NVIDIA driver must support the wheel's CUDA version.
# WORKER_TORCH_VARIANT=pypi
# torch build of the API and CPU-worker image (small VAEs serve well on CPU): cpu or as above.
# API_TORCH_VARIANT=cpu
# torch version installed in the images.
# TORCH_VERSION=2.13.0
# Image name; tags are the torch variants (mmvae-service:cpu, mmvae-service:pypi, ...).
# MMVAE_IMAGE=mmvae-service
# Host address and port the API is published on (127.0.0.1 behind a reverse proxy on the host).
# MMVAE_BIND=0.0.0.0
# MMVAE_PORT=8000
# Time a stopping worker gets to checkpoint its job before it is killed (Compose duration).
# WORKER_STOP_GRACE_PERIOD=2m
# Shared memory of the multi-GPU worker (profile multi-gpu: one worker with every GPU of the
# machine for jobs with resources.gpus > 1; docs/distributed.md). torchrun's processes use it.
# WORKER_SHM_SIZE=8g
# The env file the containers read (relative to docker-compose.yml).
# MMVAE_ENV_FILE=.env

# ============================================================================================
# Several machines (docker/compose.redis-public.example.yml; docs/deployment.md)
# ============================================================================================

# Password Redis requires once it is published to other machines. Generate one as for the
# API key, and put it in MMVAE_REDIS_URL too: redis://:<password>@redis:6379/0 here,
# redis://:<password>@<redis machine>:6379/0 on the worker machines.
# REDIS_PASSWORD=
# Host address and port Redis is published on (a private-network address, never a public one).
# REDIS_BIND=127.0.0.1
# REDIS_PORT=6379

# ============================================================================================
# Hugging Face Hub (read by huggingface_hub inside the containers)
# ============================================================================================

# Token for `mmvae push` and private repos (read-only token on servers that only pull).
# HF_TOKEN=
# Hub cache; the image sets /data/hf (on the model-store volume).
# HF_HOME=/data/hf
# Use only the cache, never the network.
# HF_HUB_OFFLINE=0
"""


def render_env(entries: list[Entry]) -> str:
    out = [ENV_HEADER]
    titles = {"api": "HTTP service", "jobs": "Jobs and workers"}
    for (component, group), items in _grouped(entries).items():
        items = [e for e in items if e.env != "MMVAE_API_KEYS"]
        if not items:
            continue
        bar = "# " + "=" * 92
        out += [bar, f"# {titles.get(component, component)}: {group}", bar, ""]
        for e in items:
            note = SET_BY_COMPOSE.get(e.env)
            comment = e.description + (f" [{note}]" if note else "")
            if e.aliases:
                comment += f" (also read as {', '.join(e.aliases)})"
            out.append(f"# {comment}")
            out.append(f"# {e.env}={e.env_default}")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def render_doc(current: str, entries: list[Entry]) -> str:
    start, end = current.index(BEGIN), current.index(END) + len(END)
    return current[:start] + render_table(entries) + current[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift (exit 1)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    entries = collect()
    targets = {
        CONFIG_DOC: render_doc(CONFIG_DOC.read_text(), entries),
        ENV_EXAMPLE: render_env(entries),
    }
    stale = [p for p, text in targets.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is out of date: run python docs/gen_settings.py")
        return 1 if stale else 0
    for p in stale:
        p.write_text(targets[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
