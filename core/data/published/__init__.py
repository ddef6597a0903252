"""Published multimodal benchmarks, read from the files their publishers distribute (nothing is
downloaded here): `load_published(name, root, split, **options)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.data.published import celeba, mnist_svhn, polymnist
from core.data.published.celeba import load_celeba
from core.data.published.cub import load_cub
from core.data.published.mhd import load_mhd
from core.data.published.mnist_svhn import load_mnist_svhn
from core.data.published.polymnist import load_polymnist
from core.data.rows import RowDataset

LOADERS: dict[str, Callable[..., RowDataset]] = {
    "celeba": load_celeba,
    "cub": load_cub,
    "mhd": load_mhd,
    "mnist_svhn": load_mnist_svhn,
    "polymnist": load_polymnist,
}


# the modalities of those datasets whose modalities are known without reading their files (CUB's
# text size is its vocabulary's)
SPECS: dict[str, list[dict]] = {
    "celeba": celeba.SPECS,
    "mnist_svhn": mnist_svhn.SPECS,
    "polymnist": polymnist.SPECS,
}


def load_published(name: str, root: str, split: str = "train", **options: Any) -> RowDataset:
    """Dataset `name` from the publisher's files under `root`."""
    if name not in LOADERS:
        raise ValueError(f"dataset: unknown published dataset {name!r}; known: {sorted(LOADERS)}")
    return LOADERS[name](root, split, **options)


__all__ = [
    "LOADERS",
    "SPECS",
    "load_celeba",
    "load_cub",
    "load_mhd",
    "load_mnist_svhn",
    "load_polymnist",
    "load_published",
]
