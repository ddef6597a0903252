"""Save a fitted sampler next to its model, `<model_dir>/sampler/` (config.json +
sampler.safetensors), and load it back. Never pickles; loading checks the spaces fit the model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core.samplers.base import Sampler
from core.samplers.latents import latent_dims

if TYPE_CHECKING:
    from core.models.base import MultimodalVAE

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


def load_sampler(model_dir: str | os.PathLike, model: MultimodalVAE | None = None) -> Sampler:
    """Rebuild the sampler saved in `<model_dir>/sampler/`; with `model`, check its spaces match."""
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
    if model is not None:
        expected = latent_dims(model)
        if {k: int(v) for k, v in config.get("spaces", {}).items()} != expected:
            raise SamplerFormatError(
                f"{folder / CONFIG_FILE}: spaces {config.get('spaces')} do not match the "
                f"model's latent spaces {expected}"
            )
    try:
        return Sampler.from_state(config, tensors)
    except (KeyError, ValueError, RuntimeError) as err:
        raise SamplerFormatError(f"{folder}: {err}") from err
