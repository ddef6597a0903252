"""Model construction and sharing in one place, as huggingface_hub's `ModelHubMixin` does:
config -> class -> strict weights, with the fitted sampler composed beside the model.

The folder format is `core.persistence`, the Hub transport `core.hub`, the sampler folder
`core.samplers.persistence`; none of them knows a model class. `MultimodalVAE.save_pretrained`,
`from_pretrained` and `push_to_hub` call the functions here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from core.hub import HubError, PushResult, download_snapshot, push_folder
from core.hub.errors import where
from core.hub.push import check_target
from core.models.registry import get_model_class
from core.persistence import (
    CONFIG_FILE,
    ModelFormatError,
    check_weights,
    config_document,
    is_local_reference,
    read_config,
    read_weights,
    write_folder,
)
from core.samplers.persistence import SamplerFormatError, has_sampler, load_sampler, save_sampler

if TYPE_CHECKING:
    from core.models.base import MultimodalVAE

__all__ = ["PushResult", "build", "load", "load_folder", "load_from_hub", "push", "save_folder"]


def save_folder(
    model: MultimodalVAE, directory: str | os.PathLike, training_info: dict[str, Any] | None = None
) -> Path:
    """The model's folder: config (with its latent spaces), weights, card, and its sampler."""
    document = config_document(
        model.model_type, model.config.model_dump(mode="json"), model.describe_latent_spaces()
    )
    folder = write_folder(directory, document, model.state_dict(), training_info)
    if model.sampler is not None:
        save_sampler(model.sampler, folder)
    return folder


def check_known(document: dict[str, Any]) -> None:
    """Refuse (ValueError) a config naming a model type this installation does not have."""
    get_model_class(document["model_type"])


def build(document: dict[str, Any], origin: str = CONFIG_FILE) -> MultimodalVAE:
    """An untrained model from a config.json document; its latent spaces must be the saved ones."""
    cls = get_model_class(document["model_type"])
    try:
        model = cls(cls.config_class.model_validate(document["config"]))
    except ValidationError as err:
        raise ModelFormatError(f"{origin}: invalid config: {err}") from err
    saved = document.get("latent_spaces")  # absent in folders written before it was recorded
    if saved is not None and saved != model.describe_latent_spaces():
        raise ModelFormatError(
            f"{origin}: latent_spaces {saved} differ from the model's "
            f"{model.describe_latent_spaces()}"
        )
    return model


def load_folder(directory: str | os.PathLike) -> MultimodalVAE:
    """Rebuild the model of a saved folder, load its weights strictly, attach its sampler."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise ModelFormatError(f"{directory}: no such model folder")
    model = build(read_config(directory), str(directory / CONFIG_FILE))
    weights = read_weights(directory)
    check_weights(directory, model.state_dict(), weights)
    model.load_state_dict(weights, strict=True)
    model.eval()
    if has_sampler(directory):
        try:
            model.sampler = load_sampler(directory, model.sampled_spaces)
        except SamplerFormatError as err:
            raise ModelFormatError(str(err)) from err
    return model


def load(
    source: str | os.PathLike,
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
) -> MultimodalVAE:
    """A local folder (a `Path` or an explicit path string) or a Hub repo id at `revision`."""
    if is_local_reference(source):
        if revision is not None:
            raise ValueError("revision: only applies to Hub repo ids, not local folders")
        return load_folder(source)
    hub = {"endpoint": endpoint, "token": token, "cache_dir": cache_dir, "offline": offline}
    return load_from_hub(str(source), revision, **hub)


def load_from_hub(
    repo_id: str,
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
) -> MultimodalVAE:
    """Pull `repo_id` at `revision` and load it; `model.source` records `{"repo_id",
    "revision", "sha"}`. Unknown model types are refused before the weights download."""
    snapshot = download_snapshot(
        repo_id,
        revision,
        endpoint=endpoint,
        token=token,
        cache_dir=cache_dir,
        offline=offline,
        check_config=check_known,
    )
    try:
        model = load_folder(snapshot.path)
    except ValueError as err:
        raise HubError(f"{where(repo_id, revision)} (commit {snapshot.sha}): {err}") from err
    model.source = snapshot.source()
    return model


def push(
    model_or_dir: MultimodalVAE | str | os.PathLike,
    repo_id: str,
    *,
    training_info: dict[str, Any] | None = None,
    **options: Any,
) -> PushResult:
    """Upload a model, or a saved folder (loaded strictly first, so nothing broken is shared),
    as one commit; `options` are `core.hub.push_folder`'s (revision, token, private, ...)."""
    check_target(repo_id, options.get("revision"))
    if isinstance(model_or_dir, str | os.PathLike):
        folder = Path(model_or_dir).expanduser()
        load_folder(folder)  # strict: refuses missing, extra or corrupted weights
        return push_folder(folder, repo_id, **options)
    with tempfile.TemporaryDirectory(prefix="mmvae-push-") as tmp:
        model_or_dir.save_pretrained(tmp, training_info=training_info)
        return push_folder(tmp, repo_id, **options)
