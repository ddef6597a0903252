"""Pull model folders from the Hugging Face Hub: resolve the revision to a commit sha, download
only the safe files of a model folder, refuse pickles, and let the caller refuse a config (an
unknown model type) before the weights are downloaded. Building the model is the model side's
job (`core.models.pretrained`); this module moves folders.

Works offline from the cache (`HF_HUB_OFFLINE=1` or `offline=True`) when the sha, or a branch or
tag pulled before, is cached.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.hub.errors import HubError, UnsafeModelError, hub_errors, where
from core.hub.ids import is_commit_sha, validate_repo_id, validate_revision
from core.persistence import (
    CARD_FILE,
    CONFIG_FILE,
    LIBRARY_NAME,
    PICKLE_SUFFIXES,
    TRAINING_FILE,
    WEIGHTS_FILE,
    read_config,
)

ConfigCheck = Callable[[dict[str, Any]], None]

# What travels between a model folder and the Hub, both ways; pickles never do.
ALLOW_PATTERNS = [CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, TRAINING_FILE, "sampler/*"]
IGNORE_PATTERNS = [f"*{suffix}" for suffix in PICKLE_SUFFIXES]


@dataclass(frozen=True)
class Snapshot:
    """A downloaded model folder in the Hub cache, and the commit it came from."""

    path: Path
    repo_id: str
    revision: str | None
    sha: str

    def source(self) -> dict[str, Any]:
        """What is recorded with a pulled model: `{"repo_id", "revision", "sha"}`."""
        return {"repo_id": self.repo_id, "revision": self.revision, "sha": self.sha}


def _offline(offline: bool | None) -> bool:
    """`offline` if given, else huggingface_hub's flag (HF_HUB_OFFLINE, read at its import)."""
    if offline is not None:
        return offline
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _cache(cache_dir: str | os.PathLike | None) -> str:
    from core.paths import hub_cache_dir

    return str(cache_dir if cache_dir is not None else hub_cache_dir())


def _check_files(repo_id: str, revision: str | None, files: set[str]) -> None:
    """Refuse a repo that is not a safetensors model folder before downloading anything big."""
    at = where(repo_id, revision)
    if WEIGHTS_FILE not in files:
        pickles = sorted(f for f in files if f.endswith(PICKLE_SUFFIXES))
        if pickles:
            raise UnsafeModelError(
                f"{at}: has no {WEIGHTS_FILE}, only pickle files {pickles}; pickles are never "
                "loaded (unpickling can run arbitrary code). Re-save the model with "
                "save_pretrained, which writes safetensors."
            )
        raise HubError(f"{at}: has no {WEIGHTS_FILE}; not an {LIBRARY_NAME} model repository")
    if CONFIG_FILE not in files:
        raise HubError(f"{at}: has no {CONFIG_FILE}; not an {LIBRARY_NAME} model repository")


def _check_config(
    repo_id: str, revision: str | None, directory: Path, check: ConfigCheck | None
) -> None:
    """Refuse a malformed config.json, or one `check` refuses (ValueError), naming the repo."""
    try:
        config = read_config(directory)
        if check is not None:
            check(config)
    except ValueError as err:
        raise UnsafeModelError(f"{where(repo_id, revision)}: refused: {err}") from err


def resolve_revision(
    repo_id: str,
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> str:
    """The 40-hex commit sha a branch, tag or sha points at now (one API call)."""
    from huggingface_hub import HfApi

    validate_repo_id(repo_id)
    validate_revision(revision)
    api = HfApi(endpoint=endpoint, token=token, library_name=LIBRARY_NAME)
    with hub_errors(repo_id, revision):
        return _model_info(api, repo_id, revision).sha


def _model_info(api: Any, repo_id: str, revision: str | None) -> Any:
    """`model_info`, telling a missing revision from a missing repo (some servers answer both
    with a repository error)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    from core.hub.errors import HubNotFoundError

    try:
        return api.model_info(repo_id, revision=revision or "main")
    except RepositoryNotFoundError:
        if revision is None or revision == "main":
            raise
        try:
            api.model_info(repo_id, revision="main")
        except RepositoryNotFoundError:
            raise
        raise HubNotFoundError(
            f"{where(repo_id, revision)}: revision {revision!r} does not exist"
        ) from None


def download_snapshot(
    repo_id: str,
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    check_config: ConfigCheck | None = None,
) -> Snapshot:
    """Download the safe files of a model repo at `revision` into the Hub cache.

    Online: look up the commit and its files, refuse pickle-only repos and configs that
    `check_config` refuses (config.json alone is fetched for that), then fetch the allowed
    files. Offline: the cache only.
    """
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    validate_repo_id(repo_id)
    validate_revision(revision)
    offline = _offline(offline)
    cache = _cache(cache_dir)
    common: dict[str, Any] = {"endpoint": endpoint, "token": token, "cache_dir": cache}
    with hub_errors(repo_id, revision, offline=offline):
        if not offline:
            api = HfApi(endpoint=endpoint, token=token, library_name=LIBRARY_NAME)
            info = _model_info(api, repo_id, revision)
            if info.siblings is not None:
                _check_files(repo_id, revision, {s.rfilename for s in info.siblings})
            config = hf_hub_download(repo_id, CONFIG_FILE, revision=info.sha, **common)
            _check_config(repo_id, revision, Path(config).parent, check_config)
        path = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=ALLOW_PATTERNS,
                ignore_patterns=IGNORE_PATTERNS,
                local_files_only=offline,
                library_name=LIBRARY_NAME,
                **common,
            )
        )
    if not is_commit_sha(path.name):
        raise HubError(f"{where(repo_id, revision)}: the cache folder {path} is not a snapshot")
    if not (path / WEIGHTS_FILE).is_file():
        _check_files(repo_id, revision, {p.name for p in path.iterdir()})
    return Snapshot(path=path, repo_id=repo_id, revision=revision, sha=path.name)
