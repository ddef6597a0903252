"""Save a fitted sampler next to its model, `<model_dir>/sampler/` (config.json +
sampler.safetensors), and load it back. Never pickles; loading checks the spaces fit the model."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from core.samplers.base import Sampler

SAMPLER_DIR = "sampler"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "sampler.safetensors"
FORMAT_VERSION = 1
ALLOWED_SUFFIXES = (".json", ".safetensors")


class SamplerFormatError(ValueError):
    """A saved sampler is missing, malformed, unsafe or does not fit the model."""


def has_sampler(model_dir: str | os.PathLike) -> bool:
    return (Path(model_dir) / SAMPLER_DIR / CONFIG_FILE).is_file()


def save_sampler(sampler: Sampler, model_dir: str | os.PathLike) -> Path:
    """Write `<model_dir>/sampler/` (replacing any previous sampler there); returns the folder."""
    if not sampler.fitted:
        raise ValueError(f"{sampler.name} sampler: fit it before saving")
    folder = Path(model_dir).expanduser() / SAMPLER_DIR
    tmp = folder.with_name(f".{SAMPLER_DIR}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = {"format_version": FORMAT_VERSION, **sampler.config()}
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    save_file(sampler.state(), tmp / WEIGHTS_FILE, metadata={"sampler": sampler.name})
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def _legacy_names(config: dict[str, Any], tensors: dict[str, Tensor]) -> None:
    """Samplers saved before spaces had their model's names called "private/<m>" "private.<m>"."""
    spaces = config.get("spaces")
    if not isinstance(spaces, dict):
        return
    for old in [s for s in spaces if isinstance(s, str) and s.startswith("private.")]:
        new = "private/" + old[len("private.") :]
        spaces[new] = spaces.pop(old)
        for key in [k for k in tensors if k.startswith(old + "/")]:
            tensors[new + key[len(old) :]] = tensors.pop(key)


def load_sampler(model_dir: str | os.PathLike, spaces: Mapping[str, int] | None = None) -> Sampler:
    """Rebuild the sampler saved in `<model_dir>/sampler/`; with `spaces` (the model's
    `sampled_spaces`), check it covers exactly those, or none (the prior)."""
    folder = Path(model_dir).expanduser() / SAMPLER_DIR
    if not folder.is_dir():
        raise SamplerFormatError(f"{folder}: no such sampler folder")
    unsafe = sorted(p.name for p in folder.iterdir() if p.suffix not in ALLOWED_SUFFIXES)
    if unsafe:
        raise SamplerFormatError(
            f"{folder}: unexpected files {unsafe}; only .json and .safetensors are loaded"
        )
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SamplerFormatError(f"{folder / CONFIG_FILE}: unreadable ({err})") from err
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        raise SamplerFormatError(
            f"{folder / CONFIG_FILE}: format_version {config.get('format_version')!r} "
            f"is not supported (expected {FORMAT_VERSION})"
        )
    try:
        tensors = load_file(folder / WEIGHTS_FILE)
    except (SafetensorError, OSError, ValueError) as err:
        raise SamplerFormatError(f"{folder / WEIGHTS_FILE}: unreadable ({err})") from err
    _legacy_names(config, tensors)
    try:
        sampler = Sampler.from_state(config, tensors)
        if spaces is not None:
            sampler.check_spaces(spaces)
    except (KeyError, ValueError, RuntimeError) as err:
        raise SamplerFormatError(f"{folder}: {err}") from err
    return sampler
