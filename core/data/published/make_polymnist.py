"""Making PolyMNIST (Sutter et al. 2021) or Translated PolyMNIST (Daunhawer et al. 2022) from MNIST
and background pictures, in the layout `load_polymnist` reads: `out/<split>/m<k>/<i>.<digit>.png`.

For each digit and each modality k, the MNIST images of that digit are taken in an order of
their own (so the views of a sample share only the digit); each is binarised (> 128), optionally
shrunk by `scale` (bilinear) and placed at a random offset of the 28x28 canvas (`translate`), and
drawn over a random 28x28 crop of background k by inverting the crop's colours where the digit is.
The original scripts draw from unseeded generators; here everything comes from `seed`, so a
dataset is reproducible. The reference settings: PolyMNIST scale 1, no translation; Translated
PolyMNIST scale 0.75 with translation. Backgrounds: the five pictures of the PolyMNIST release
(sorted by file name, one per modality).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.data.dataset import DatasetError
from core.data.published.mnist_svhn import read_mnist


def place_digit(digit: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 uint8 digit shrunk by `scale` at a random offset (scale 1: as it is)."""
    if scale >= 1:
        return digit
    size = int(28 * scale)
    small = (
        torch.nn.functional.interpolate(
            torch.from_numpy(digit).float()[None, None], size=(size, size), mode="bilinear"
        )[0, 0]
        .to(torch.uint8)
        .numpy()
    )
    canvas = np.zeros((28, 28), dtype=np.uint8)
    top, left = rng.integers(0, 28 - size + 1, size=2)
    canvas[top : top + size, left : left + size] = small
    return canvas


def compose(digit: np.ndarray, background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The binarised digit drawn over a random 28x28 crop of `background` [H, W, 3] by inverting
    the crop's colours where the digit is."""
    height, width = background.shape[:2]
    top, left = rng.integers(0, height - 28 + 1), rng.integers(0, width - 28 + 1)
    crop = background[top : top + 28, left : left + 28].copy()
    mask = digit > 128
    crop[mask] = 255 - crop[mask]
    return crop


def make_polymnist(
    mnist_root: str | Path,
    backgrounds: str | Path,
    out: str | Path,
    split: str = "train",
    modalities: int = 5,
    scale: float = 1.0,
    translate: bool = False,
    seed: int = 0,
) -> Path:
    """Write PolyMNIST's `split` under `out` from MNIST's files and the background pictures."""
    if not 0 < scale <= 1 or translate != (scale < 1):
        raise ValueError(f"scale: {scale} must be in (0, 1], below 1 exactly when translating")
    pictures = sorted(
        p for p in Path(backgrounds).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    if len(pictures) < modalities:
        raise DatasetError(
            f"{backgrounds}: {len(pictures)} background pictures for {modalities} modalities"
        )
    images, labels = read_mnist(Path(mnist_root), split)
    rng = np.random.default_rng(seed)
    for k, picture in enumerate(pictures[:modalities]):
        with Image.open(picture) as opened:
            background = np.asarray(opened.convert("RGB"))
        if background.shape[0] < 28 or background.shape[1] < 28:
            raise DatasetError(f"{picture.name}: smaller than 28x28")
        folder = Path(out) / split / f"m{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for digit in range(10):
            rows = rng.permutation(np.flatnonzero(labels == digit))
            for i, row in enumerate(rows):
                shape = place_digit(images[row, 0], scale, rng)
                Image.fromarray(compose(shape, background, rng), "RGB").save(
                    folder / f"{i}.{digit}.png"
                )
    return Path(out)
