"""Image files as a row source (core/data/rows.py): each batch decodes only its images, resized
on the shorter side and centre-cropped to the modality's size, so a folder of JPEG/PNG files
trains without being loaded whole (DataLoader workers decode in parallel)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from core.data.dataset import DatasetError

FORMATS = ["PNG", "JPEG"]


def fit_image(image: Image.Image, height: int, width: int) -> Image.Image:
    """Resize so the image covers height x width (shorter side to fit, aspect kept, bilinear),
    then crop the centre."""
    scale = max(height / image.height, width / image.width)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    image = image.resize(size, Image.BILINEAR)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


class ImageFiles:
    """Rows of a list of image files as uint8 [N, C, H, W] (C = 1: greyscale, 3: RGB); a None
    path (a missing modality) reads as zeros."""

    def __init__(self, paths: Sequence[Path | None], shape: tuple[int, int, int]) -> None:
        if shape[0] not in (1, 3):
            raise DatasetError(f"images: {shape[0]} channels; 1 (greyscale) or 3 (RGB) are read")
        self.paths = list(paths)
        self.shape = (len(self.paths), *shape)
        self.dtype = np.dtype(np.uint8)

    def read(self, rows: np.ndarray) -> np.ndarray:
        channels, height, width = self.shape[1:]
        out = np.empty((len(rows), channels, height, width), dtype=np.uint8)
        for i, row in enumerate(rows):
            path = self.paths[row]
            if path is None:  # a sample without this modality
                out[i] = 0
                continue
            try:
                with Image.open(path, formats=FORMATS) as image:
                    image = fit_image(image.convert("L" if channels == 1 else "RGB"), height, width)
                    pixels = np.asarray(image)
            except (OSError, SyntaxError, Image.DecompressionBombError) as error:
                raise DatasetError(f"{path.name}: not a readable image ({error})") from None
            out[i] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
        return out
