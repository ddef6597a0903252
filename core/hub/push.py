"""Push a model (or a saved model folder) to the Hugging Face Hub as one commit.

Only the files of a model folder travel (config.json, model.safetensors, README.md card,
training.json, sampler/); a folder is loaded strictly first, so nothing broken or pickled is shared.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.hub.errors import HubError, hub_errors
from core.hub.ids import is_commit_sha, validate_repo_id, validate_revision
from core.hub.pull import ALLOW_PATTERNS, IGNORE_PATTERNS
from core.persistence import LIBRARY_NAME, load_local

if TYPE_CHECKING:
    from core.models.base import MultimodalVAE


@dataclass(frozen=True)
class PushResult:
    """The commit a push made: pin `sha` to load exactly this model later."""

    repo_id: str
    revision: str
    sha: str
    url: str


def push_to_hub(
    model_or_dir: MultimodalVAE | str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    private: bool = False,
    commit_message: str | None = None,
    endpoint: str | None = None,
    create_repo: bool = True,
    training_info: dict[str, Any] | None = None,
) -> PushResult:
    """Upload a model to `repo_id` on branch `revision` (default main; created if missing)."""
    validate_repo_id(repo_id)
    validate_revision(revision)
    if is_commit_sha(revision):
        raise HubError(f"revision {revision!r}: push to a branch name, not a commit sha")
    opts: dict[str, Any] = {
        "revision": revision,
        "token": token,
        "private": private,
        "commit_message": commit_message,
        "endpoint": endpoint,
        "create_repo": create_repo,
    }
    if isinstance(model_or_dir, str | os.PathLike):
        folder = Path(model_or_dir).expanduser()
        model = load_local(folder)  # strict: refuses missing, extra or corrupted weights
        return _upload(folder, model.model_type, repo_id, **opts)
    with tempfile.TemporaryDirectory(prefix="mmvae-push-") as tmp:
        model_or_dir.save_pretrained(tmp, training_info=training_info)
        return _upload(Path(tmp), model_or_dir.model_type, repo_id, **opts)


def _upload(
    folder: Path,
    model_type: str,
    repo_id: str,
    *,
    revision: str | None,
    token: str | bool | None,
    private: bool,
    commit_message: str | None,
    endpoint: str | None,
    create_repo: bool,
) -> PushResult:
    """create_repo (optional) + create_branch (when not main) + one upload_folder commit."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token, library_name=LIBRARY_NAME)
    branch = revision or "main"
    with hub_errors(repo_id, revision):
        if create_repo:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=branch,
            commit_message=commit_message or f"Upload {model_type} model ({LIBRARY_NAME})",
            allow_patterns=ALLOW_PATTERNS,
            ignore_patterns=IGNORE_PATTERNS,
            repo_type="model",
        )
    return PushResult(repo_id=repo_id, revision=branch, sha=info.oid, url=info.commit_url)
