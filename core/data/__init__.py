"""Partially observed multimodal data: datasets, batches, missingness, .npz format, built-ins."""

from core.data.batch import Batch, collate
from core.data.builtin import (
    BUILTIN_DATASETS,
    builtin_modalities,
    infer_modalities,
    load_builtin,
    resolve_dataset,
)
from core.data.dataset import DatasetError, MultimodalDataset
from core.data.missingness import mcar, mnar
from core.data.npz import load_npz, save_npz

__all__ = [
    "BUILTIN_DATASETS",
    "Batch",
    "DatasetError",
    "MultimodalDataset",
    "builtin_modalities",
    "collate",
    "infer_modalities",
    "load_builtin",
    "load_npz",
    "mcar",
    "mnar",
    "resolve_dataset",
    "save_npz",
]
