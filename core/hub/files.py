"""Files of a Hub repo named by a pinned reference, `hf://<repo_id>@<commit sha>/<path>`: the
Inception weights of FID, a coherence classifier's folder. Only safetensors and JSON travel; the
revision must be a full commit sha, so what is loaded can never change under a name."""

from __future__ import annotations

import os
from pathlib import Path

from core.hub.errors import HubError, hub_errors
from core.hub.ids import InvalidModelIdError, is_commit_sha, validate_repo_id

PREFIX = "hf://"
SAFE_SUFFIXES = (".safetensors", ".json")


def parse(reference: str) -> tuple[str, str, str]:
    """(repo_id, sha, path in the repo) of `hf://org/name@sha/path`."""
    body = reference[len(PREFIX) :] if reference.startswith(PREFIX) else ""
    head, sep, rest = body.partition("@")
    sha, _, path = rest.partition("/")
    if not body or not sep or not is_commit_sha(sha) or not path or ".." in path.split("/"):
        raise InvalidModelIdError(
            f"{reference!r}: expected hf://<namespace>/<name>@<40-hex commit sha>/<path>"
        )
    return validate_repo_id(head), sha, path.strip("/")


def hub_files(
    reference: str,
    names: list[str] | None = None,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Download the file a reference names (or, with `names`, those files of the folder it
    names) at its pinned commit; the local path of that file or folder."""
    from huggingface_hub import snapshot_download

    repo_id, sha, path = parse(reference)
    wanted = [f"{path}/{n}" for n in names] if names else [path]
    if not all(w.endswith(SAFE_SUFFIXES) for w in wanted):
        raise HubError(f"{reference}: only {SAFE_SUFFIXES} files are downloaded (never pickles)")
    with hub_errors(repo_id, sha):
        root = snapshot_download(
            repo_id, revision=sha, allow_patterns=wanted, endpoint=endpoint, cache_dir=cache_dir
        )
    local = Path(root) / path
    missing = [w for w in wanted if not (Path(root) / w).is_file()]
    if missing:
        raise HubError(f"{reference}: {missing[0]} is not in {repo_id} at {sha}")
    return local
