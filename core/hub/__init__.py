"""Hugging Face Hub sharing: validated ids, pinned pulls that never unpickle, one-commit pushes.

`load_from_hub` / `from_pretrained` pull a model and record the resolved commit sha in
`model.source`; `push_to_hub` uploads the files of a model folder and returns the commit.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

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
    load_from_hub,
    resolve_revision,
)
from core.hub.push import PushResult, push_to_hub

if TYPE_CHECKING:
    from core.models.base import MultimodalVAE


def from_pretrained(source: str | os.PathLike, revision: str | None = None) -> MultimodalVAE:
    """A local folder (a Path or an explicit path string) or a Hub repo id at `revision`."""
    from core.persistence import load_model

    return load_model(source, revision=revision)


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
    "from_pretrained",
    "is_commit_sha",
    "load_from_hub",
    "push_to_hub",
    "resolve_revision",
    "validate_repo_id",
    "validate_revision",
    "validate_store_name",
]
