"""Datasets for jobs: built-in names (`digits`), uploads stored by content hash (an .npz, or a
manifest CSV naming files under MMVAE_MANIFEST_ROOT), or datasets the operator named
(MMVAE_NAMED_DATASETS: folders of .npy arrays, published benchmarks).

A reference is a built-in name, a named dataset, `dataset:<sha256>` or the bare hash. Uploads
live in `<data_dir>/datasets/<sha256>.npz` (or `.csv`) with a `<sha256>.json` summary
(modalities, shapes, n, missing rates) written at upload, so submissions are validated without
reading the data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from workers.settings import WorkerSettings

HASH_RE = re.compile(r"^[0-9a-f]{64}$")
PREFIX = "dataset:"


class DatasetRefError(ValueError):
    """A dataset reference that names nothing usable (the message starts with the field)."""


def parse_ref(reference: str, settings: WorkerSettings | None = None) -> tuple[str, str]:
    """("builtin", name), ("upload", sha256) or ("named", name) for a dataset the operator
    named in MMVAE_NAMED_DATASETS (jobs never give a path themselves)."""
    ref = reference.strip()
    digest = ref[len(PREFIX) :] if ref.startswith(PREFIX) else ref
    if HASH_RE.match(digest):
        return "upload", digest
    if ref.startswith(PREFIX):
        raise DatasetRefError(f"dataset: {reference!r} is not 'dataset:<sha256>'")
    if settings is not None and ref in settings.named_datasets:
        return "named", ref
    return "builtin", ref


UPLOAD_SUFFIXES = (".npz", ".csv")  # an .npz of arrays, a manifest CSV naming files


def upload_path(settings: WorkerSettings, digest: str, suffix: str = ".npz") -> Path:
    if not HASH_RE.match(digest):
        raise DatasetRefError(f"dataset: {digest!r} is not a sha256 hex digest")
    return settings.datasets_dir / f"{digest}{suffix}"


def stored_upload(settings: WorkerSettings, digest: str) -> Path:
    """The stored file of upload `digest`, whichever format it came in."""
    for suffix in UPLOAD_SUFFIXES:
        if (path := upload_path(settings, digest, suffix)).is_file():
            return path
    raise DatasetRefError(f"dataset: no uploaded dataset {digest!r}")


def manifest_root(settings: WorkerSettings) -> Path:
    """The folder uploaded manifests name files in (DatasetError when none is set)."""
    from core.data import DatasetError

    if settings.manifest_root is None:
        raise DatasetError(
            "file: this server takes no manifests (set MMVAE_MANIFEST_ROOT to the folder "
            "their files live in); upload an .npz instead"
        )
    return settings.manifest_root


def summarize(dataset: Any) -> dict[str, Any]:
    """Modalities with shapes and missing rates, n and labels, for GET /v1/datasets/{id}."""
    from core.data import infer_modalities

    return {
        "n": len(dataset),
        "modalities": infer_modalities(dataset),
        "missing_rate": dataset.missing_rate(),
        "has_labels": dataset.labels is not None,
    }


def summarize_manifest(settings: WorkerSettings, path: Path) -> dict[str, Any]:
    """What `summarize` says of a manifest, from its rows and first files (its splits too);
    raises DatasetError naming the line and column of a cell that names no readable file."""
    from core.data.manifest import load_manifest, splits_of
    from core.data.open import modality_specs

    dataset = load_manifest(path, root=manifest_root(settings))
    return {
        "n": len(dataset),
        "modalities": modality_specs(str(path), dataset),
        "missing_rate": dataset.missing_rate(),
        "has_labels": dataset.labels is not None,
        "splits": sorted(splits_of(path)),
    }


def store_upload(
    settings: WorkerSettings, source: Path, manifest: bool = False
) -> tuple[str, dict[str, Any], bool]:
    """Validate the .npz (or the manifest CSV) at `source` and store a copy by content hash;
    (sha256, summary, newly stored). `source` is left in place (the caller owns it)."""
    from core.data import load_npz

    digest = file_sha256(source)
    path = upload_path(settings, digest, ".csv" if manifest else ".npz")
    summary = {"id": digest, "reference": f"{PREFIX}{digest}", "bytes": source.stat().st_size}
    if manifest:
        summary.update(summarize_manifest(settings, source))
    else:
        summary.update(summarize(load_npz(source, max_bytes=settings.max_dataset_bytes)))
    if path.is_file() and path.with_suffix(".json").is_file():
        return digest, json.loads(path.with_suffix(".json").read_text()), False
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path.with_suffix(".json"), json.dumps(summary, indent=1).encode())
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    shutil.copyfile(source, tmp)
    os.replace(tmp, path)
    return digest, summary, True


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def stored_bytes(settings: WorkerSettings) -> int:
    """Bytes the stored uploads (and uploads in progress) take, counted against the quota."""
    folder = settings.datasets_dir
    if not folder.is_dir():
        return 0
    return sum(
        p.stat().st_size
        for p in folder.iterdir()
        if p.suffix in (*UPLOAD_SUFFIXES, "") and p.is_file()
    )


def store_file(settings: WorkerSettings, source: Path) -> str:
    """Register an .npz written by a job (augment) as a dataset; returns its sha256."""
    from core.data import load_npz

    content = source.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    path = upload_path(settings, digest)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        summary = {"id": digest, "reference": f"{PREFIX}{digest}", "bytes": len(content)}
        summary.update(summarize(load_npz(source)))
        _atomic_write(path.with_suffix(".json"), json.dumps(summary, indent=1).encode())
        _atomic_write(path, content)
    return digest


def _atomic_write(path: Path, content: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def describe(settings: WorkerSettings, reference: str) -> dict[str, Any]:
    """The summary of a dataset reference (modalities and shapes), without loading uploads or
    the data of named datasets (a folder's specs come from its dataset.json or first rows)."""
    kind, value = parse_ref(reference, settings)
    if kind == "named":
        from core.data.open import declared_specs, open_dataset

        source = settings.named_datasets[value]
        specs = declared_specs(source)
        if specs is None:
            from core.data.open import modality_specs

            specs = modality_specs(source, open_dataset(source))
        return {"id": value, "reference": value, "modalities": specs}
    if kind == "upload":
        meta = upload_path(settings, value).with_suffix(".json")
        if not meta.is_file():
            raise DatasetRefError(f"dataset: no uploaded dataset {value!r}")
        return json.loads(meta.read_text())
    from core.data import BUILTIN_DATASETS, builtin_modalities

    if value not in BUILTIN_DATASETS:
        known = ", ".join(sorted(BUILTIN_DATASETS))
        named = ", ".join(sorted(settings.named_datasets)) or "none set in MMVAE_NAMED_DATASETS"
        raise DatasetRefError(
            f"dataset: {reference!r} is neither a built-in ({known}), a named dataset "
            f"({named}) nor an uploaded dataset ('dataset:<sha256>')"
        )
    return {"id": value, "reference": value, "modalities": builtin_modalities(value)}


def has_split(settings: WorkerSettings, reference: str, split: str) -> bool:
    """Whether the dataset has a `split` of its own (an upload has one split: all of it)."""
    kind, value = parse_ref(reference, settings)
    if kind == "named":
        from core.data.open import has_split as source_has_split

        return source_has_split(settings.named_datasets[value], split)
    if kind == "upload":  # a manifest's split column; an .npz has one split: all of it
        meta = upload_path(settings, value, ".json")
        return meta.is_file() and split in json.loads(meta.read_text()).get("splits", [])
    return kind == "builtin"


def load(
    settings: WorkerSettings, reference: str, split: str = "train", in_memory: bool = False
) -> Any:
    """The dataset a reference names: a MultimodalDataset, or for a named one a dataset read
    row by row (core/data/rows.py) unless `in_memory` (what metrics and samplers need); an
    upload has one split: all of it."""
    kind, value = parse_ref(reference, settings)
    if kind == "named":
        from core.data.open import open_dataset

        dataset = open_dataset(settings.named_datasets[value], split)
        return dataset.head(len(dataset)) if in_memory else dataset
    if kind == "upload":
        path = stored_upload(settings, value)
        if path.suffix == ".npz":
            from core.data import load_npz

            return load_npz(path)
        from core.data.manifest import load_manifest

        chosen = split if has_split(settings, reference, split) else None
        dataset = load_manifest(path, chosen, root=manifest_root(settings))
        return dataset.head(len(dataset)) if in_memory else dataset
    from core.data import load_builtin

    return load_builtin(value, split)
