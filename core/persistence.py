"""Save and load models as folders: config.json + model.safetensors + README.md model card.

Never unpickles: weights are safetensors only, the architecture is rebuilt from the config.
A folder written here is what travels to and from the Hugging Face Hub (see `core.hub`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

if TYPE_CHECKING:
    from core.models.base import MultimodalVAE

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


def save_model(
    model: MultimodalVAE, directory: str | os.PathLike, training_info: dict[str, Any] | None = None
) -> Path:
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    from core import __version__

    config = {
        "model_type": model.model_type,
        "format_version": FORMAT_VERSION,
        "library_name": LIBRARY_NAME,
        "library_version": __version__,
        "config": model.config.model_dump(mode="json"),
    }
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().clone().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(
        state, directory / WEIGHTS_FILE, metadata={"format": "pt", "model_type": model.model_type}
    )
    sampler = getattr(model, "sampler", None)
    if sampler is not None:
        from core.samplers.persistence import save_sampler

        save_sampler(sampler, directory)
    if training_info is not None:
        (directory / TRAINING_FILE).write_text(
            json.dumps(training_info, indent=2, default=str) + "\n"
        )
    elif (directory / TRAINING_FILE).exists():
        training_info = json.loads((directory / TRAINING_FILE).read_text())
    (directory / CARD_FILE).write_text(model_card(model, training_info))
    return directory


def model_card(model: MultimodalVAE, training_info: dict[str, Any] | None) -> str:
    """README.md with Hub metadata (library_name, tags, datasets, metrics) in YAML front matter."""
    info = training_info or {}
    meta: dict[str, Any] = {
        "library_name": LIBRARY_NAME,
        "tags": ["multimodal-vae", model.model_type, "pytorch", "safetensors"],
    }
    if info.get("dataset"):
        meta["datasets"] = [str(info["dataset"])]
    metrics = info.get("final_metrics") or {}
    if metrics:
        meta["metrics"] = sorted(metrics)
    mods = "\n".join(
        f"| {m.name} | {m.kind} | {list(m.shape)} | {m.likelihood.kind} |"
        for m in model.config.modalities
    )
    results = "\n".join(
        f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items()) if isinstance(v, int | float)
    )
    body = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).strip(),
        "---",
        "",
        f"# {model.model_type} multimodal VAE",
        "",
        f"A `{model.model_type}` model (latent dimension {model.latent_dim}), "
        f"saved by {LIBRARY_NAME}.",
        "",
        "| modality | kind | shape | likelihood |",
        "|---|---|---|---|",
        mods,
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


def read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    if not path.is_file():
        pickles = sorted(p.name for p in directory.glob("*") if p.suffix in PICKLE_SUFFIXES)
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


def load_local(directory: str | os.PathLike) -> MultimodalVAE:
    """Rebuild the model from its config and load its weights strictly."""
    from pydantic import ValidationError

    from core.models.registry import get_model_class

    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise ModelFormatError(f"{directory}: no such model folder")
    config = read_config(directory)
    cls = get_model_class(config["model_type"])
    try:
        model = cls(cls.config_class.model_validate(config["config"]))
    except ValidationError as err:
        raise ModelFormatError(f"{directory / CONFIG_FILE}: invalid config: {err}") from err
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        pickles = sorted(p.name for p in directory.glob("*") if p.suffix in PICKLE_SUFFIXES)
        hint = f"; found pickle files {pickles}, which are never loaded" if pickles else ""
        raise ModelFormatError(f"{directory}: no {WEIGHTS_FILE}{hint}")
    try:
        state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFormatError(f"{weights}: corrupted safetensors file ({err})") from err
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ModelFormatError(
            f"{weights}: missing weights {missing[:5]}, unexpected weights {extra[:5]}"
        )
    wrong = [k for k in expected if expected[k].shape != state[k].shape]
    if wrong:
        raise ModelFormatError(
            f"{weights}: shape mismatch for {wrong[0]}: {list(state[wrong[0]].shape)} in the file, "
            f"{list(expected[wrong[0]].shape)} in the model"
        )
    model.load_state_dict(state, strict=True)
    model.eval()
    if (directory / "sampler").is_dir():
        from core.samplers.persistence import SamplerFormatError, load_sampler

        try:
            model.sampler = load_sampler(directory, model)
        except SamplerFormatError as err:
            raise ModelFormatError(str(err)) from err
    return model


def load_model(source: str | os.PathLike, revision: str | None = None) -> MultimodalVAE:
    """A local folder (a `Path` or an explicit path string) or a Hub repo id at `revision`."""
    if is_local_reference(source):
        if revision is not None:
            raise ValueError("revision: only applies to Hub repo ids, not local folders")
        return load_local(source)
    from core.hub import load_from_hub

    return load_from_hub(str(source), revision=revision)
