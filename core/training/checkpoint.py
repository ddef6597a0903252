"""Training checkpoints without pickle: one safetensors file (every tensor) + one JSON file.

A checkpoint is a folder `<output_dir>/checkpoints/step-<global step>/` holding `state.json`
(the nested state with tensors replaced by `{"__tensor__": key}`) and `state.safetensors`. It is
written under a temporary name and renamed when complete, so a crash never leaves a half-written
checkpoint; older checkpoints are removed after the rename. Loading never unpickles.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

FORMAT_VERSION = 1
STATE_JSON = "state.json"
STATE_TENSORS = "state.safetensors"
_NAME = re.compile(r"^step-(\d{10})$")


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed or from an incompatible run."""


# ---- nested state <-> (JSON, flat tensors) -------------------------------------------------
def _join(prefix: str, name: object) -> str:
    return f"{prefix}/{name}" if prefix else str(name)


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """JSON-able copy of `obj` with each tensor moved into `tensors` under a path-like key.

    Dicts with non-string keys (optimizer state is keyed by int) and tuples are tagged so that
    `unflatten` gives back exactly the same types.
    """
    if isinstance(obj, torch.Tensor):
        key = prefix or "tensor"
        if key in tensors:
            raise ValueError(f"checkpoint: two tensors map to the key {key!r}")
        tensors[key] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: flatten(v, tensors, _join(prefix, k)) for k, v in obj.items()}
        return {
            "__items__": [
                [
                    flatten(k, tensors, _join(prefix, f"key{i}")),
                    flatten(v, tensors, _join(prefix, k)),
                ]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, tuple | list):
        items = [flatten(v, tensors, _join(prefix, i)) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"checkpoint: cannot store a {type(obj).__name__} at {prefix or '<root>'}")


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            try:
                return tensors[obj["__tensor__"]]
            except KeyError:
                raise CheckpointError(f"tensor {obj['__tensor__']!r} missing") from None
        if "__items__" in obj:
            return {unflatten(k, tensors): unflatten(v, tensors) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(unflatten(v, tensors) for v in obj["__tuple__"])
        return {k: unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


# ---- random number generators ----------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Every generator a training step may draw from: torch CPU and CUDA, numpy, random."""
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": [version, list(words), gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- files --------------------------------------------------------------------------------
def checkpoint_name(global_step: int) -> str:
    return f"step-{global_step:010d}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(directory: str | os.PathLike, global_step: int, state: dict[str, Any]) -> Path:
    """Write `state` atomically as `<directory>/step-N/` and remove older checkpoints."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    structure = {"format_version": FORMAT_VERSION, "state": flatten(state, tensors)}
    final = directory / checkpoint_name(global_step)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory))
    try:
        save_file(tensors, tmp / STATE_TENSORS)
        with open(tmp / STATE_JSON, "w") as f:
            json.dump(structure, f)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp / STATE_TENSORS, "rb") as f:
            os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in directory.iterdir():
        if old != final and (_NAME.match(old.name) or old.name.startswith(".tmp-")):
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The complete checkpoint with the highest step in `directory` (None when there is none)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = [
        p
        for p in directory.iterdir()
        if _NAME.match(p.name) and (p / STATE_JSON).is_file() and (p / STATE_TENSORS).is_file()
    ]
    return max(found, key=lambda p: p.name) if found else None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint folder (or the latest one in a `checkpoints/` folder)."""
    path = Path(path)
    if not (path / STATE_JSON).is_file():
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"{path}: no checkpoint ({STATE_JSON} + {STATE_TENSORS})")
        path = latest
    try:
        structure = json.loads((path / STATE_JSON).read_text())
        tensors = load_file(path / STATE_TENSORS)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint ({err})") from err
    if structure.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format_version {structure.get('format_version')!r} is not supported"
        )
    return unflatten(structure["state"], tensors)


def optimizer_states(data: dict[str, Any]) -> dict[str, Any]:
    """The optimizer, scheduler and scaler states of a checkpoint, by optimizer name (a
    checkpoint written before models could have several holds one, the "main" optimizer)."""
    if "optimizers" in data:
        return {k: data[k] for k in ("optimizers", "schedulers", "scalers")}
    return {
        "optimizers": {"main": data["optimizer"]},
        "schedulers": {"main": data["scheduler"]},
        "scalers": {"main": data["scaler"]},
    }


def save_pretrained_atomic(model: Any, target: Path, training_info: dict[str, Any]) -> Path:
    """`model.save_pretrained` into a temporary folder, then swapped in for `target`."""
    tmp, old = target.with_name(f".{target.name}.tmp"), target.with_name(f".{target.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, training_info)
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target
