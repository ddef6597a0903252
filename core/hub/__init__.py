"""Hugging Face Hub transport: validated ids, pinned pulls of model folders that never bring a
pickle, one-commit pushes. Building or saving a model is the model side's job
(`MultimodalVAE.from_pretrained` / `push_to_hub`, in `core.models.pretrained`)."""

from __future__ import annotations

from core.hub.errors import HubError, HubNotFoundError, UnsafeModelError
from core.hub.ids import (
    InvalidModelIdError,
    is_commit_sha,
    validate_repo_id,
    validate_revision,
    validate_store_name,
)
from core.hub.pull import (
    ALLOW_PATTERNS,
    IGNORE_PATTERNS,
    Snapshot,
    download_snapshot,
    resolve_revision,
)
from core.hub.push import PushResult, push_folder

__all__ = [
    "ALLOW_PATTERNS",
    "IGNORE_PATTERNS",
    "HubError",
    "HubNotFoundError",
    "InvalidModelIdError",
    "PushResult",
    "Snapshot",
    "UnsafeModelError",
    "download_snapshot",
    "is_commit_sha",
    "push_folder",
    "resolve_revision",
    "validate_repo_id",
    "validate_revision",
    "validate_store_name",
]
