"""Datasets named in a request body (`evaluate`, `latent-map`): a built-in set, an `.npz` sent
inline as base64, or one uploaded with POST /v1/datasets (by its id); read, then fitted to a
model's modalities. Errors are 422s naming the field."""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path

import torch

from core.data import MultimodalDataset, load_builtin, load_npz
from service.errors import invalid
from service.registry import LoadedModel
from service.schemas import BuiltinDataset, StoredDataset, UploadedDataset
from workers import datasets
from workers.settings import WorkerSettings

DatasetSpec = BuiltinDataset | UploadedDataset | StoredDataset


def _upload(reference: str, jobs: WorkerSettings) -> Path:
    """The file of an `.npz` uploaded with POST /v1/datasets, by its id."""
    try:
        kind, digest = datasets.parse_ref(reference)
        path = datasets.stored_upload(jobs, digest) if kind == "upload" else None
    except datasets.DatasetRefError:
        path = None
    if path is None:
        raise invalid(
            "dataset.id", f"no uploaded dataset {reference!r} (upload one: POST /v1/datasets)"
        )
    if path.suffix != ".npz":
        raise invalid("dataset.id", "a manifest upload; only .npz uploads are read here")
    return path


def read_dataset(
    spec: DatasetSpec, max_bytes: int, jobs: WorkerSettings | None = None
) -> MultimodalDataset:
    """The dataset `spec` names (it reads files: call it off the event loop); `jobs` locates
    uploads, `max_bytes` bounds an inline `.npz`."""
    upload = getattr(spec, "id", None)
    if isinstance(spec, BuiltinDataset):
        field = "dataset.name"
    else:
        field = "dataset.id" if upload is not None else "dataset.data_base64"
    try:
        if isinstance(spec, BuiltinDataset):
            return load_builtin(spec.name, spec.split)
        if upload is not None:
            assert jobs is not None, "uploaded datasets need the job settings"
            return load_npz(_upload(upload, jobs), max_bytes=jobs.max_dataset_bytes)
        raw = base64.b64decode(spec.data_base64 or "", validate=True)
        return load_npz(io.BytesIO(raw), max_bytes=max_bytes)
    except (binascii.Error, ValueError) as err:
        message = "not valid base64" if isinstance(err, binascii.Error) else str(err)
        raise invalid(field, message) from None


def fit_to_model(dataset: MultimodalDataset, entry: LoadedModel) -> MultimodalDataset:
    """The dataset over the model's modalities: shapes checked, absent ones marked missing."""
    model = entry.model
    for m, shape in dataset.shapes.items():
        if m not in model.shapes:
            raise invalid(f"dataset.{m}", f"unknown modality; the model has {model.names}")
        if tuple(shape) != model.shapes[m]:
            raise invalid(
                f"dataset.{m}", f"shape {list(shape)}; the model expects {list(model.shapes[m])}"
            )
    n = len(dataset)
    data = {m: dataset.data.get(m, torch.zeros(n, *model.shapes[m])) for m in model.names}
    masks = {m: dataset.masks.get(m, torch.zeros(n, dtype=torch.bool)) for m in model.names}
    return MultimodalDataset(data, masks, dataset.labels, dataset.metadata)
