"""Validation of Hub repo ids and local store names, done before any network or disk access.

The Hub's rules: `[namespace/]name`, each part at most 96 characters of letters, digits, `-`, `_`
and `.`, not starting or ending with `-` or `.`, without `--` or `..`, the name not ending in
`.git`. A store name follows the same rules without a namespace, so it is always one safe path
component: it can never escape the store directory.
"""

from __future__ import annotations

import re

MAX_PART_LENGTH = 96
_ALLOWED = re.compile(r"[A-Za-z0-9._-]+")
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


class InvalidModelIdError(ValueError):
    """A repo id or store name breaks a naming rule; the message names the rule."""


def _check_part(value: str, what: str, label: str) -> None:
    """Raise `InvalidModelIdError` if one path component breaks a rule (`label` names the input)."""
    if not value:
        raise InvalidModelIdError(f"{label}: the {what} is empty")
    if len(value) > MAX_PART_LENGTH:
        raise InvalidModelIdError(
            f"{label}: the {what} has {len(value)} characters (at most {MAX_PART_LENGTH})"
        )
    if not _ALLOWED.fullmatch(value):
        bad = sorted({c for c in value if not _ALLOWED.fullmatch(c)})
        raise InvalidModelIdError(
            f"{label}: the {what} may only hold letters, digits, '-', '_' and '.' "
            f"(found {''.join(bad)!r})"
        )
    if value[0] in "-." or value[-1] in "-.":
        raise InvalidModelIdError(f"{label}: the {what} may not start or end with '-' or '.'")
    if "--" in value or ".." in value:
        raise InvalidModelIdError(f"{label}: the {what} may not contain '--' or '..'")


def validate_repo_id(repo_id: str) -> str:
    """Return `repo_id` if it is a valid Hub model id (`name` or `namespace/name`), else raise."""
    if not isinstance(repo_id, str):
        raise InvalidModelIdError(f"repo id: expected a string, got {type(repo_id).__name__}")
    label = f"repo id {repo_id!r}"
    if not repo_id:
        raise InvalidModelIdError("repo id: is empty")
    parts = repo_id.split("/")
    if len(parts) > 2:
        raise InvalidModelIdError(f"{label}: at most one '/' (namespace/name)")
    if len(parts) == 2:
        _check_part(parts[0], "namespace", label)
    _check_part(parts[-1], "name", label)
    if parts[-1].lower().endswith(".git"):
        raise InvalidModelIdError(f"{label}: the name may not end with '.git'")
    return repo_id


def validate_store_name(name: str, what: str = "name") -> str:
    """Return `name` if it is a valid store name or version (one safe path component)."""
    if not isinstance(name, str):
        raise InvalidModelIdError(f"store {what}: expected a string, got {type(name).__name__}")
    label = f"store {what} {name!r}"
    if "/" in name or "\\" in name:
        raise InvalidModelIdError(f"{label}: may not contain '/' or '\\' (no namespace or path)")
    _check_part(name, what, label)
    if name.lower().endswith(".git"):
        raise InvalidModelIdError(f"{label}: may not end with '.git'")
    return name


def is_commit_sha(revision: str | None) -> bool:
    """True for a full 40-hex commit sha: a pinned revision that can never move."""
    return revision is not None and bool(_COMMIT_SHA.fullmatch(revision))


def validate_revision(revision: str | None) -> str | None:
    """Return `revision` (a branch, tag or commit sha; None = the default branch) if well-formed."""
    if revision is None:
        return None
    if not isinstance(revision, str) or not revision:
        raise InvalidModelIdError("revision: must be a non-empty branch, tag or commit sha")
    if len(revision) > 255:
        raise InvalidModelIdError("revision: longer than 255 characters")
    if any(c.isspace() or not c.isprintable() for c in revision) or ".." in revision:
        raise InvalidModelIdError(
            f"revision {revision!r}: may not contain whitespace, control characters or '..'"
        )
    return revision
