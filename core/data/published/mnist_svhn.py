"""MNIST-SVHN (Shi et al., NeurIPS 2019): MNIST digits paired with SVHN house numbers of the
same class.

Files, as published (put them in `root`, or torchvision's `root/MNIST/raw` and `root/svhn`):
- MNIST (http://yann.lecun.com/exdb/mnist/, mirror https://ossci-datasets.s3.amazonaws.com/mnist/):
  `train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`,
  `t10k-labels-idx1-ubyte.gz` (IDX; gzip or unpacked);
- SVHN cropped digits (http://ufldl.stanford.edu/housenumbers/): `train_32x32.mat`,
  `test_32x32.mat` (MATLAB v5; `X` uint8 [32, 32, 3, N], `y` [N, 1] with 10 meaning the digit 0).

Pairing (the MMVAE authors' rule, as MultiVae): per class c, the first n_c = min(#MNIST_c,
#SVHN_c, `max_per_class`) images of each (in file order) are kept, and `data_multiplication`
independent random permutations of each list are paired position by position: every kept image
appears `data_multiplication` times. With the published files that is 56,068 (train) and 10,000
(test) pairs per multiplication (MultiVae's default 5: 280,340 / 50,000; the MMVAE code 30, its
README and MoPoE 20). Unlike the originals, the permutations come from `seed`, so a pairing is
reproducible. Modalities: `mnist` [1, 28, 28] and `svhn` [3, 32, 32], kept as bytes and scaled to
[0, 1] as batches are read; labels the digit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data.dataset import DatasetError
from core.data.published.files import find_file
from core.data.published.idx import read_idx
from core.data.rows import ArrayRows

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}  # fmt: skip
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
BYTES_TO_UNIT = [{"kind": "scale", "factor": 1 / 255}]
SPECS = [
    {"name": "mnist", "shape": [1, 28, 28], "kind": "image", "value_range": [0, 1],
     "likelihood": {"kind": "laplace", "scale": 0.75}},
    {"name": "svhn", "shape": [3, 32, 32], "kind": "image", "value_range": [0, 1],
     "likelihood": {"kind": "laplace", "scale": 0.75}},
]  # fmt: skip


def read_mnist(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images uint8 [N, 1, 28, 28] and labels [N] of `split`."""
    folders = ("", "MNIST/raw", "mnist")
    images_name, labels_name = MNIST_FILES[split]
    images = read_idx(find_file(root, [images_name + ".gz", images_name], folders))
    labels = read_idx(find_file(root, [labels_name + ".gz", labels_name], folders))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (len(images),):
        raise DatasetError(f"MNIST {split}: images {images.shape} and labels {labels.shape} differ")
    return images[:, None], labels.astype(np.int64)


def read_svhn(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """SVHN images uint8 [N, 3, 32, 32] and digits [N] (the file's 10 read as 0)."""
    from scipy.io import loadmat  # reads MATLAB arrays, never unpickles

    path = find_file(root, [SVHN_FILES[split]], ("", "svhn", "SVHN"))
    try:
        content = loadmat(path)
    except (ValueError, TypeError, OSError) as error:
        raise DatasetError(f"{path.name}: not a readable MATLAB file ({error})") from None
    x, y = content.get("X"), content.get("y")
    if x is None or y is None or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DatasetError(f"{path.name}: expected X [32, 32, 3, N] and y [N, 1]")
    labels = y.reshape(-1).astype(np.int64) % 10
    if len(labels) != x.shape[3]:
        raise DatasetError(f"{path.name}: {x.shape[3]} images but {len(labels)} labels")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels


def pair_by_class(
    labels_a: np.ndarray, labels_b: np.ndarray, multiplication: int, max_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (a, b) of the same class: per class the first n_c rows of each side, paired
    through `multiplication` independent permutations of each (class blocks in class order)."""
    rng = np.random.default_rng(seed)
    rows_a, rows_b = [], []
    for c in np.unique(labels_a):
        a, b = np.flatnonzero(labels_a == c), np.flatnonzero(labels_b == c)
        n = min(len(a), len(b), max_per_class)
        for _ in range(multiplication):
            rows_a.append(a[:n][rng.permutation(n)])
            rows_b.append(b[:n][rng.permutation(n)])
    return np.concatenate(rows_a), np.concatenate(rows_b)


def load_mnist_svhn(
    root: str | Path,
    split: str = "train",
    data_multiplication: int = 5,
    max_per_class: int = 10_000,
    seed: int = 0,
) -> ArrayRows:
    """The MNIST-SVHN pairs of `split` ("train" or "test") from the files under `root`."""
    if split not in MNIST_FILES:
        raise ValueError(f"split: {split!r} is not one of {sorted(MNIST_FILES)}")
    if not 1 <= data_multiplication <= 100:
        raise ValueError(f"data_multiplication: {data_multiplication} is not in [1, 100]")
    root = Path(root)
    mnist, mnist_labels = read_mnist(root, split)
    svhn, svhn_labels = read_svhn(root, split)
    rows_m, rows_s = pair_by_class(
        mnist_labels, svhn_labels, data_multiplication, max_per_class, seed
    )
    return ArrayRows(
        {"mnist": mnist, "svhn": svhn},
        index={"mnist": rows_m, "svhn": rows_s},
        labels=mnist_labels[rows_m],
        transforms={"mnist": BYTES_TO_UNIT, "svhn": BYTES_TO_UNIT},
        specs=SPECS,
        metadata={
            "dataset": "mnist_svhn",
            "split": split,
            "data_multiplication": data_multiplication,
            "seed": seed,
        },
    )
