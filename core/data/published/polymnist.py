"""PolyMNIST (Sutter, Daunhawer & Vogt, ICLR 2021) and Translated PolyMNIST (Daunhawer et al.,
ICLR 2022): five 28x28 RGB views of one digit, each on its own background.

Files, as published: https://zenodo.org/record/4899160/files/PolyMNIST.zip unpacked, i.e.
`root/{train,test}/m{0..4}/<i>.<digit>.png` (60,000 train and 10,000 test images per modality);
Translated PolyMNIST is generated in the same layout. `mmvae data fetch polymnist --to DIR --md5
PolyMNIST.zip=<hex>` downloads and unpacks the archive, checked against the MD5 on its Zenodo
page. The same file name in every `m<k>` folder is one sample (files are paired by name, not by
listing order); its digit is in the name. Modalities `m0`..`m4` [3, 28, 28] kept as bytes,
scaled to [0, 1] as batches are read.

Missing data (MultiVae's protocol): with `missing_ratio` r, modality m_k of each sample is
observed with probability 1 − r (a generator seeded with `seed + k`), and m0 always is. With
`keep_incomplete=False` only the samples that drew every modality remain (MultiVae instead keeps
the first ⌈(1 − r)^4 N⌉ samples, whatever they drew).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.data.dataset import DatasetError
from core.data.rows import ArrayRows

MODALITIES = 5
NAME = re.compile(r"^(\d+)\.(\d)\.png$")
SPEC = {"shape": [3, 28, 28], "kind": "image", "value_range": [0, 1],
        "likelihood": {"kind": "laplace", "scale": 0.75}}  # fmt: skip
SPECS = [{"name": f"m{k}", **SPEC} for k in range(MODALITIES)]


def read_view(folder: Path, names: list[str]) -> np.ndarray:
    """The images `names` of one modality folder as uint8 [N, 3, 28, 28]."""
    out = np.empty((len(names), 3, 28, 28), dtype=np.uint8)
    for i, name in enumerate(names):
        try:
            with Image.open(folder / name, formats=["PNG"]) as image:
                if image.size != (28, 28):
                    raise DatasetError(
                        f"{folder.name}/{name}: {image.size[0]}x{image.size[1]}, expected 28x28"
                    )
                out[i] = np.asarray(image.convert("RGB")).transpose(2, 0, 1)
        except (OSError, SyntaxError) as error:
            raise DatasetError(f"{folder.name}/{name}: not a readable PNG ({error})") from None
    return out


def sample_names(split_root: Path) -> list[str]:
    """The file names present in every modality folder (sorted); an error names any odd one."""
    folders = [split_root / f"m{k}" for k in range(MODALITIES)]
    for folder in folders:
        if not folder.is_dir():
            raise DatasetError(f"{folder}: missing (expected m0..m4 folders of <i>.<digit>.png)")
    listed = [{p.name for p in folder.iterdir() if p.is_file()} for folder in folders]
    for folder, names in zip(folders, listed, strict=True):
        odd = sorted(n for n in names if not NAME.match(n))
        if odd:
            raise DatasetError(f"{folder.name}/{odd[0]}: not named <index>.<digit>.png")
        if names != listed[0]:
            extra = sorted(names ^ listed[0])[0]
            raise DatasetError(f"{folder.name}: its files differ from m0's (e.g. {extra})")
    return sorted(
        listed[0], key=lambda n: (int(NAME.match(n).group(2)), int(NAME.match(n).group(1)))
    )


def missing_masks(n: int, ratio: float, seed: int) -> dict[str, torch.Tensor]:
    """Each m_k observed with probability 1 − ratio (seed + k); m0 always."""
    masks = {}
    for k in range(MODALITIES):
        generator = torch.Generator().manual_seed(seed + k)
        masks[f"m{k}"] = torch.rand(n, generator=generator) >= ratio
    masks["m0"][:] = True
    return masks


def load_polymnist(
    root: str | Path,
    split: str = "train",
    missing_ratio: float = 0.0,
    keep_incomplete: bool = True,
    seed: int = 0,
) -> ArrayRows:
    """PolyMNIST's `split` ("train" or "test") from `root/<split>/m0..m4`."""
    if split not in ("train", "test"):
        raise ValueError(f"split: {split!r} is not one of ['test', 'train']")
    if not 0 <= missing_ratio < 1:
        raise ValueError(f"missing_ratio: {missing_ratio} is not in [0, 1)")
    split_root = Path(root) / split
    names = sample_names(split_root)
    if not names:
        raise DatasetError(f"{split_root}: no images")
    views = {f"m{k}": read_view(split_root / f"m{k}", names) for k in range(MODALITIES)}
    labels = np.array([int(NAME.match(n).group(2)) for n in names])
    masks = missing_masks(len(names), missing_ratio, seed) if missing_ratio else None
    rows = None
    if masks is not None and not keep_incomplete:
        rows = torch.stack(list(masks.values())).all(0).nonzero().squeeze(1).numpy()
        views = {m: v[rows] for m, v in views.items()}
        labels, masks = labels[rows], None
    return ArrayRows(
        views,
        masks=masks,
        labels=labels,
        transforms={m: [{"kind": "scale", "factor": 1 / 255}] for m in views},
        specs=SPECS,
        metadata={
            "dataset": "polymnist",
            "split": split,
            "missing_ratio": missing_ratio,
            "keep_incomplete": keep_incomplete,
            "seed": seed,
        },
    )
