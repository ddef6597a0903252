"""Push a saved model folder to the Hugging Face Hub as one commit.

Only the files of a model folder travel (config.json, model.safetensors, README.md card,
training.json, sampler/), never pickles. Checking that the folder loads is the model side's job
(`core.models.pretrained.push`, which calls this).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.hub.errors import HubError, hub_errors
from core.hub.ids import is_commit_sha, validate_repo_id, validate_revision
from core.hub.pull import ALLOW_PATTERNS, IGNORE_PATTERNS
from core.persistence import LIBRARY_NAME, read_config


@dataclass(frozen=True)
class PushResult:
    """The commit a push made: pin `sha` to load exactly this model later."""

    repo_id: str
    revision: str
    sha: str
    url: str


def check_target(repo_id: str, revision: str | None) -> None:
    """A valid repo id and a branch name (not a commit sha) to push to, or an error."""
    validate_repo_id(repo_id)
    validate_revision(revision)
    if is_commit_sha(revision):
        raise HubError(f"revision {revision!r}: push to a branch name, not a commit sha")


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    private: bool = False,
    commit_message: str | None = None,
    endpoint: str | None = None,
    create_repo: bool = True,
) -> PushResult:
    """Upload a model folder to `repo_id` on branch `revision` (default main; created if
    missing): create_repo (optional) + create_branch (when not main) + one upload_folder commit."""
    from huggingface_hub import HfApi

    check_target(repo_id, revision)
    folder = Path(folder).expanduser()
    model_type = read_config(folder)["model_type"]
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
