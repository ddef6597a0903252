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
from core.data.ondisk import ArrayFolder, write_array_folder
from core.data.open import open_dataset
from core.data.rows import ArrayRows, RowDataset

__all__ = [
    "BUILTIN_DATASETS",
    "ArrayFolder",
    "ArrayRows",
    "Batch",
    "DatasetError",
    "MultimodalDataset",
    "RowDataset",
    "builtin_modalities",
    "collate",
    "infer_modalities",
    "load_builtin",
    "load_npz",
    "mcar",
    "mnar",
    "open_dataset",
    "resolve_dataset",
    "save_npz",
    "write_array_folder",
]
