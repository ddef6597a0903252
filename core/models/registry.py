"""`model_type` -> model class. Every `MultimodalVAE` subclass that sets `model_type` registers
itself here; importing `core.models` (which any import of this module does first) registers the
built-in models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.models.base import MultimodalVAE

MODEL_REGISTRY: dict[str, type[MultimodalVAE]] = {}


class UnknownModelError(ValueError):
    pass


def register(cls: type[MultimodalVAE]) -> None:
    """Make `cls` buildable by its `model_type` (called by `MultimodalVAE.__init_subclass__`)."""
    MODEL_REGISTRY[cls.model_type] = cls


def get_model_class(model_type: str) -> type[MultimodalVAE]:
    try:
        return MODEL_REGISTRY[model_type]
    except KeyError:
        raise UnknownModelError(
            f"model_type: unknown model {model_type!r}; known: {sorted(MODEL_REGISTRY)}"
        ) from None


def available_models() -> list[str]:
    return sorted(MODEL_REGISTRY)


def build_model(config: dict[str, Any]) -> MultimodalVAE:
    """Build a model from a config dict that names its `model_type`."""
    if "model_type" not in config:
        raise UnknownModelError("model_type: required")
    cls = get_model_class(config["model_type"])
    return cls(cls.config_class.model_validate(config))


def parameter_count(config: dict[str, Any], at_most: int | None = None) -> int:
    """The parameters a config's model would have, counted without building it for real: on
    the "meta" device (shapes only, no memory), so a config asking for 10^12 parameters is safe
    to check (job admission). A model whose constructor runs an op that has no meta kernel
    (e.g. zuko's flows) is built in a child process whose memory is capped for `at_most`
    parameters; a model that does not fit counts as more than `at_most`."""
    import torch

    try:
        with torch.device("meta"):
            model = build_model(config)
    except NotImplementedError:
        return _count_in_child(config, at_most)
    return sum(p.numel() for p in model.parameters())


_CHILD = """
import importlib, json, sys
from core.models import build_model
job = json.load(sys.stdin)
importlib.import_module(job["module"])  # registers the model type, wherever it is defined
model = build_model(job["config"])
print(sum(p.numel() for p in model.parameters()))
"""
_BASE_BYTES = 3 * 1024**3  # the child's own address space: Python, torch, the model's code


def _count_in_child(config: dict[str, Any], at_most: int | None) -> int:
    import json
    import resource
    import subprocess
    import sys
    from pathlib import Path

    cap = None if at_most is None else _BASE_BYTES + 3 * 4 * at_most  # float32, + init copies

    def limit() -> None:
        if cap is not None:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(
            {"module": get_model_class(config["model_type"]).__module__, "config": config}
        ),
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        preexec_fn=limit,
        timeout=300,
        check=False,
    )
    if done.returncode == 0:
        return int(done.stdout.split()[-1])
    if at_most is not None and "memory" in done.stderr.lower():
        return at_most + 1
    raise ValueError(f"model: cannot be built ({done.stderr.strip().splitlines()[-1]})")
