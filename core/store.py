"""The local model store: `<root>/<name>/<version>/` holding a saved model folder.

Writes are atomic: a model is written into a hidden temporary folder inside the root and renamed
into place, so a crash never leaves a half-written model visible; deletes rename away first.
Names and versions are validated as single path components, so nothing escapes the root.
A model imported from the Hub carries `source.json` with its repo id, revision and commit sha.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.hub.ids import validate_store_name
from core.models.pretrained import check_known, load_folder
from core.persistence import CONFIG_FILE, read_config

if TYPE_CHECKING:
    from core.models.base import MultimodalVAE

SOURCE_FILE = "source.json"
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"


class ModelNotFoundError(FileNotFoundError):
    """No such model name or version in the store."""


class ModelExistsError(FileExistsError):
    """The version already exists: stored versions are immutable."""


@dataclass(frozen=True)
class StoredModel:
    """One stored version: where it is, what it is, and where it came from."""

    name: str
    version: str
    model_type: str
    created: str  # ISO 8601, UTC
    path: Path
    source: dict[str, Any] | None = None  # {"repo_id", "revision", "sha"} for Hub imports

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def _version_key(version: str) -> tuple[int, int, str]:
    """Numeric versions sort numerically and after non-numeric ones ("v1" < "1" < "2" < "10")."""
    return (1, int(version), "") if version.isdigit() else (0, 0, version)


class ModelStore:
    """Models saved under `root` by name and version; see the module docstring."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        from core.paths import store_dir

        self.root = Path(root if root is not None else store_dir()).expanduser()

    # ---- reading ----------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Model names in the store (hidden temporary folders excluded)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _visible(p.name))

    def versions(self, name: str) -> list[str]:
        """Versions of `name`, oldest first (numeric order when numeric); [] if none."""
        folder = self.root / validate_store_name(name)
        if not folder.is_dir():
            return []
        found = [p.name for p in folder.iterdir() if p.is_dir() and _visible(p.name)]
        return sorted(found, key=_version_key)

    def get(self, name: str, version: str = "latest") -> Path:
        """The folder of `name` at `version` ("latest": the highest version)."""
        versions = self.versions(name)
        if not versions:
            raise ModelNotFoundError(f"model {name!r}: not in the store {self.root}")
        if version == "latest":
            return self.root / name / versions[-1]
        validate_store_name(version, "version")
        if version not in versions:
            raise ModelNotFoundError(f"model {name!r}: no version {version!r}; have {versions}")
        return self.root / name / version

    def info(self, name: str, version: str = "latest") -> StoredModel:
        path = self.get(name, version)
        config = read_config(path)
        source_file = path / SOURCE_FILE
        source = json.loads(source_file.read_text()) if source_file.is_file() else None
        created = datetime.fromtimestamp((path / CONFIG_FILE).stat().st_mtime, timezone.utc)
        return StoredModel(
            name=name,
            version=path.name,
            model_type=config["model_type"],
            created=created.isoformat(timespec="seconds"),
            path=path,
            source=source,
        )

    def list(self) -> list[StoredModel]:
        """Every stored version, by name then version."""
        return [self.info(n, v) for n in self.names() for v in self.versions(n)]

    def load(self, name: str, version: str = "latest") -> MultimodalVAE:
        """Load a stored model strictly; `model.source` is set for Hub imports."""
        info = self.info(name, version)
        model = load_folder(info.path)
        if info.source is not None:
            model.source = info.source
        return model

    def find_source(self, name: str, sha: str) -> StoredModel | None:
        """The version of `name` imported from commit `sha`, if any."""
        for version in self.versions(name):
            info = self.info(name, version)
            if info.source and info.source.get("sha") == sha:
                return info
        return None

    # ---- writing ----------------------------------------------------------------------------
    def save(
        self,
        model: MultimodalVAE,
        name: str,
        version: str | None = None,
        training_info: dict[str, Any] | None = None,
    ) -> StoredModel:
        """Save `model` as `name` at `version` (default: the next integer), atomically."""
        return self._commit(name, version, lambda d: model.save_pretrained(d, training_info))

    def add_folder(
        self,
        folder: str | os.PathLike,
        name: str,
        version: str | None = None,
        source: dict[str, Any] | None = None,
    ) -> StoredModel:
        """Copy a saved model folder (its model files only) into the store, atomically.

        The folder is loaded strictly first, so a broken or pickled model never enters the store.
        """
        from core.hub.pull import ALLOW_PATTERNS, IGNORE_PATTERNS

        folder = Path(folder)
        load_folder(folder)

        def write(target: Path) -> None:
            shutil.copytree(
                folder,
                target,
                dirs_exist_ok=True,
                ignore=_only(ALLOW_PATTERNS, IGNORE_PATTERNS, folder),
            )
            if source is not None:
                (target / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")

        return self._commit(name, version, write)

    def import_from_hub(
        self,
        repo_id: str,
        revision: str | None = None,
        name: str | None = None,
        **hub_options: Any,
    ) -> StoredModel:
        """Pull `repo_id` at `revision` into the store (name defaults to the repo's name).

        Idempotent: a commit already imported under `name` is returned, not copied again.
        `hub_options` go to `core.hub.download_snapshot` (endpoint, token, cache_dir, offline).
        """
        from core.hub import download_snapshot, validate_repo_id

        validate_repo_id(repo_id)
        name = validate_store_name(name if name is not None else repo_id.split("/")[-1])
        snapshot = download_snapshot(repo_id, revision, check_config=check_known, **hub_options)
        existing = self.find_source(name, snapshot.sha)
        if existing is not None:
            return existing
        return self.add_folder(snapshot.path, name, source=snapshot.source())

    def delete(self, name: str, version: str | None = None) -> list[str]:
        """Delete one version, or every version of `name` (version None); returns what went."""
        if version is None:
            gone = self.versions(name)
            if not gone:
                raise ModelNotFoundError(f"model {name!r}: not in the store {self.root}")
            _remove(self.root / name, self.root)
            return gone
        path = self.get(name, version)
        _remove(path, self.root)
        if not self.versions(name):
            with contextlib.suppress(OSError):  # only if empty: a writer may be adding one
                (self.root / name).rmdir()
        return [path.name]

    def _commit(self, name: str, version: str | None, write: Callable[[Path], Any]) -> StoredModel:
        """Write into a hidden temporary folder inside the root, then rename it into place."""
        validate_store_name(name)
        if version is not None:
            validate_store_name(version, "version")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            tmp.mkdir()
            write(tmp)
            (self.root / name).mkdir(exist_ok=True)
            for _ in range(100):  # a concurrent writer may take the next number first
                chosen = version or self._next_version(name)
                try:
                    os.rename(tmp, self.root / name / chosen)
                    return self.info(name, chosen)
                except OSError as err:
                    if not (self.root / name / chosen).exists():
                        raise
                    if version is not None:
                        raise ModelExistsError(
                            f"model {name!r}: version {version!r} already exists"
                        ) from err
            raise ModelExistsError(f"model {name!r}: could not pick a free version")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _next_version(self, name: str) -> str:
        numbers = [int(v) for v in self.versions(name) if v.isdigit()]
        return str(max(numbers, default=0) + 1)

    def clean_temporary(self) -> int:
        """Remove temporary folders left behind by crashed writes; returns how many."""
        if not self.root.is_dir():
            return 0
        stale = [p for p in self.root.iterdir() if p.name.startswith((_TMP_PREFIX, _TRASH_PREFIX))]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        return len(stale)


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _remove(path: Path, root: Path) -> None:
    """Rename out of sight first (atomic), then delete the files."""
    trash = root / f"{_TRASH_PREFIX}{uuid.uuid4().hex}"
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _only(allow: list[str], ignore: list[str], base: Path) -> Callable[[str, list[str]], set[str]]:
    """A `copytree` ignore function that keeps only files matching `allow` and not `ignore`."""
    from fnmatch import fnmatch

    def skip(directory: str, names: list[str]) -> set[str]:
        skipped = set()
        for entry in names:
            full = Path(directory) / entry
            rel = full.relative_to(base).as_posix()
            if full.is_dir():
                keep = any(p.startswith(f"{rel.split('/')[0]}/") for p in allow)
            else:
                keep = any(fnmatch(rel, p) for p in allow) and not any(
                    fnmatch(rel, p) for p in ignore
                )
            if not keep:
                skipped.add(entry)
        return skipped

    return skip
