"""CelebA (Liu et al., ICCV 2015) as MultiVae uses it: a face image and its binary attributes.

Files, as published (http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html; torchvision's layout
`root/celeba/...` or directly in `root`): `img_align_celeba/` (202,599 JPEGs of 178x218),
`list_attr_celeba.txt` (a count line, a line of the 40 attribute names, then `<file> ±1 x 40`),
`list_eval_partition.txt` (`<file> 0|1|2`: train, valid, test). Modalities: `image` [3, 64, 64]
(shorter side resized to 64, centre crop; decoded batch by batch, never loaded whole) and
`attributes` [18] (MultiVae's default selection, `ATTRIBUTES_18`) or [40], in {0, 1} with a
Bernoulli likelihood. Labels: the attribute named `label_attribute` (0/1), none by default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.data.dataset import DatasetError
from core.data.images import ImageFiles
from core.data.published.files import find_file
from core.data.rows import ArrayRows

ATTRIBUTES_18 = ["Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Bushy_Eyebrows",
                 "Eyeglasses", "Gray_Hair", "Heavy_Makeup", "Male", "Mouth_Slightly_Open",
                 "Mustache", "Pale_Skin", "Receding_Hairline", "Smiling", "Straight_Hair",
                 "Wavy_Hair", "Wearing_Hat"]  # fmt: skip
SPLITS = {"train": 0, "valid": 1, "test": 2}
FOLDERS = ("", "celeba")


def specs(count: int) -> list[dict]:
    return [
        {"name": "image", "shape": [3, 64, 64], "kind": "image", "value_range": [0, 1],
         "likelihood": {"kind": "laplace", "scale": 0.1}},
        {"name": "attributes", "shape": [count], "kind": "vector",
         "likelihood": {"kind": "bernoulli"}},
    ]  # fmt: skip


SPECS = specs(18)


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(file names, attribute names, values in {0, 1} [N, 40]) of list_attr_celeba.txt."""
    lines = path.read_text().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DatasetError(f"{path.name}: expected a count line, then the attribute names")
    names = lines[1].split()
    files, values = [], []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1 or any(v not in ("1", "-1") for v in parts[1:]):
            raise DatasetError(
                f"{path.name}: line {number} is not '<file>' and {len(names)} ±1 values"
            )
        files.append(parts[0])
        values.append([v == "1" for v in parts[1:]])
    if len(files) != int(lines[0]):
        raise DatasetError(
            f"{path.name}: {len(files)} rows where its first line says {lines[0].strip()}"
        )
    return files, names, np.array(values, dtype=np.uint8).reshape(len(files), len(names))


def load_celeba(
    root: str | Path, split: str = "train", attributes: int = 18, label_attribute: str | None = None
) -> ArrayRows:
    """CelebA's `split` ("train", "valid", "test" or "all") from the files under `root`."""
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split: {split!r} is not one of {[*SPLITS, 'all']}")
    if attributes not in (18, 40):
        raise ValueError(f"attributes: {attributes} is not 18 or 40")
    root = Path(root)
    files, names, values = read_attributes(find_file(root, ["list_attr_celeba.txt"], FOLDERS))
    partition = {}
    for line in find_file(root, ["list_eval_partition.txt"], FOLDERS).read_text().splitlines():
        if line.strip():
            name, part = line.split()
            partition[name] = int(part)
    missing = [f for f in files if f not in partition]
    if missing:
        raise DatasetError(f"list_eval_partition.txt: no split for {missing[0]}")
    rows = np.array(
        [i for i, f in enumerate(files) if split == "all" or partition[f] == SPLITS[split]]
    )
    kept = ATTRIBUTES_18 if attributes == 18 else names
    unknown = sorted(set(kept) - set(names))
    if unknown:
        raise DatasetError(f"list_attr_celeba.txt: no attribute {unknown[0]!r}")
    columns = [names.index(a) for a in kept]
    images = _image_folder(root)
    labels = None
    if label_attribute is not None:
        if label_attribute not in names:
            raise ValueError(f"label_attribute: {label_attribute!r} is not one of the attributes")
        labels = values[rows, names.index(label_attribute)].astype(np.int64)
    return ArrayRows(
        {"image": ImageFiles([images / files[i] for i in rows], (3, 64, 64)),
         "attributes": values[rows][:, columns]},
        labels=labels,
        transforms={"image": [{"kind": "scale", "factor": 1 / 255}]},
        specs=specs(len(kept)),
        metadata={"dataset": "celeba", "split": split, "attributes": kept},
    )  # fmt: skip


def _image_folder(root: Path) -> Path:
    for folder in FOLDERS:
        path = root / folder / "img_align_celeba"
        if path.is_dir():
            return path
    raise DatasetError(f"img_align_celeba: no such folder in {root} or {root / 'celeba'}")
