"""The model folder format: config.json + model.safetensors + README.md card (+ training.json).

This module reads and writes folders and config documents only; it knows nothing of model
classes (building a model from a folder is `core.models.pretrained`). Never unpickles: weights
are safetensors only. A folder written here is what travels to and from the Hub (`core.hub`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
TRAINING_FILE = "training.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
LIBRARY_NAME = "mmvae-service"


class ModelFormatError(ValueError):
    """A saved model is missing, malformed, unsafe or incompatible; the message says which."""


def is_local_reference(source: str | os.PathLike) -> bool:
    """A `Path`, or a string that is explicitly a path (absolute, ./, ../, ~). Anything else is a
    Hub repo id, never looked up on disk."""
    if isinstance(source, os.PathLike):
        return True
    return source.startswith(("/", "./", "../", "~")) or source in (".", "..")


def config_document(
    model_type: str, config: dict[str, Any], latent_spaces: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The content of config.json: what rebuilds the model, and its latent spaces by name."""
    from core import __version__

    return {
        "model_type": model_type,
        "format_version": FORMAT_VERSION,
        "library_name": LIBRARY_NAME,
        "library_version": __version__,
        "latent_spaces": latent_spaces,
        "config": config,
    }


def write_folder(
    directory: str | os.PathLike,
    document: dict[str, Any],
    weights: dict[str, Tensor],
    training_info: dict[str, Any] | None = None,
) -> Path:
    """Write config.json, model.safetensors, training.json (when given) and the card; a
    training.json already in the folder is kept and described by the card."""
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
    state = {k: v.detach().clone().contiguous().cpu() for k, v in weights.items()}
    save_file(
        state,
        directory / WEIGHTS_FILE,
        metadata={"format": "pt", "model_type": document["model_type"]},
    )
    if training_info is not None:
        (directory / TRAINING_FILE).write_text(
            json.dumps(training_info, indent=2, default=str) + "\n"
        )
    elif (directory / TRAINING_FILE).exists():
        training_info = json.loads((directory / TRAINING_FILE).read_text())
    (directory / CARD_FILE).write_text(model_card(document, training_info))
    return directory


def model_card(document: dict[str, Any], training_info: dict[str, Any] | None) -> str:
    """README.md with Hub metadata (library_name, tags, datasets, metrics) in YAML front matter."""
    info = training_info or {}
    model_type = document["model_type"]
    meta: dict[str, Any] = {
        "library_name": LIBRARY_NAME,
        "tags": ["multimodal-vae", model_type, "pytorch", "safetensors"],
    }
    if info.get("dataset"):
        meta["datasets"] = [str(info["dataset"])]
    metrics = info.get("final_metrics") or {}
    if metrics:
        meta["metrics"] = sorted(metrics)
    mods = "\n".join(
        f"| {m['name']} | {m.get('kind')} | {list(m['shape'])} | "
        f"{(m.get('likelihood') or {}).get('kind', 'normal')} |"
        for m in document["config"]["modalities"]
    )
    spaces = "\n".join(
        f"| {name} | {s['dim']} | {s['family']} | {'yes' if s['conditional'] else 'no'} |"
        for name, s in document.get("latent_spaces", {}).items()
    )
    results = "\n".join(
        f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items()) if isinstance(v, int | float)
    )
    body = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).strip(),
        "---",
        "",
        f"# {model_type} multimodal VAE",
        "",
        f"A `{model_type}` model (latent dimension {document['config'].get('latent_dim')}), "
        f"saved by {LIBRARY_NAME}.",
        "",
        "| modality | kind | shape | likelihood |",
        "|---|---|---|---|",
        mods,
        "",
        "| latent space | dim | prior family | conditional prior |",
        "|---|---|---|---|",
        spaces,
        "",
    ]
    if results:
        body += ["## Final metrics", "", "| metric | value |", "|---|---|", results, ""]
    body += [
        "## Usage",
        "",
        "```python",
        "from core.models import MultimodalVAE",
        'model = MultimodalVAE.from_pretrained("<org>/<name>", revision="<commit sha>")',
        "```",
        "",
    ]
    return "\n".join(body)


def _pickles(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*") if p.suffix in PICKLE_SUFFIXES)


def read_config(directory: Path) -> dict[str, Any]:
    """config.json of a model folder, checked for the keys and format version it must have."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        pickles = _pickles(directory)
        if pickles:
            raise ModelFormatError(
                f"{directory}: has no {CONFIG_FILE}, only pickle files {pickles}; refusing to "
                "unpickle (code execution on load); re-save the model with safetensors"
            )
        raise ModelFormatError(f"{directory}: no {CONFIG_FILE} (not a saved model folder)")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ModelFormatError(f"{path}: invalid JSON ({err})") from err
    if not isinstance(config, dict) or "model_type" not in config or "config" not in config:
        raise ModelFormatError(f"{path}: needs 'model_type' and 'config' keys")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION})"
        )
    return config


def read_weights(directory: Path) -> dict[str, Tensor]:
    """model.safetensors of a model folder (never a pickle)."""
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        pickles = _pickles(directory)
        hint = f"; found pickle files {pickles}, which are never loaded" if pickles else ""
        raise ModelFormatError(f"{directory}: no {WEIGHTS_FILE}{hint}")
    try:
        return load_file(weights)
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFormatError(f"{weights}: corrupted safetensors file ({err})") from err


def check_weights(directory: Path, expected: dict[str, Tensor], found: dict[str, Tensor]) -> None:
    """Strict loading: the file holds exactly the expected tensors, with the expected shapes."""
    weights = directory / WEIGHTS_FILE
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        raise ModelFormatError(
            f"{weights}: missing weights {missing[:5]}, unexpected weights {extra[:5]}"
        )
    wrong = [k for k in expected if expected[k].shape != found[k].shape]
    if wrong:
        raise ModelFormatError(
            f"{weights}: shape mismatch for {wrong[0]}: {list(found[wrong[0]].shape)} in the file, "
            f"{list(expected[wrong[0]].shape)} in the model"
        )
