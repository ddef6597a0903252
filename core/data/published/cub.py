"""CUB image-caption (Wah et al. 2011; captions of Reed et al. 2016, as packed for MMVAE by Shi et
al. 2019): bird photographs, each with 10 captions; one sample per caption.

Files, as published (http://www.robots.ox.ac.uk/~yshi/mmdgm/datasets/cub.zip, unpacked; `root`
or `root/cub`): `text_trainvalclasses.txt` and `text_testclasses.txt` (one caption per line, 10
consecutive lines per image) and `train/<class>/*.jpg`, `test/<class>/*.jpg` (classes and files in
sorted order, the order of the captions). Modalities: `image` [3, 64, 64] (shorter side resized,
centre crop; decoded batch by batch) and `text`, a caption as one-hot tokens [32, V]: the first 31
words, `<eos>`, then `<pad>` (core/data/text.py, whose tokeniser is simpler than MultiVae's NLTK
one); the vocabulary is built from the train captions alone — `<exc>` (any word seen fewer than
`min_occurrences` times) = 0, `<pad>` = 1, `<eos>` = 2, then words by first occurrence (MultiVae's
ids) — and travels in the text modality's spec, so a trained model reads and writes text.
Labels: the bird class (train and test classes are disjoint).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from core.data.dataset import DatasetError
from core.data.images import ImageFiles
from core.data.published.files import find_file
from core.data.rows import ArrayRows
from core.data.text import SPECIALS, encode_texts, tokenize

CAPTIONS = {"train": "text_trainvalclasses.txt", "test": "text_testclasses.txt"}
LENGTH = 32
CAPTIONS_PER_IMAGE = 10


def build_vocabulary(captions: list[str], min_occurrences: int = 4) -> list[str]:
    """Specials, then the words seen at least `min_occurrences` times, by first occurrence."""
    words = [w for c in captions for w in tokenize(c)]
    counts = Counter(words)  # dict order: first occurrence
    return SPECIALS + [w for w, n in counts.items() if n >= min_occurrences]


def specs(vocabulary: list[str]) -> list[dict]:
    return [
        {"name": "image", "shape": [3, 64, 64], "kind": "image", "value_range": [0, 1],
         "likelihood": {"kind": "laplace", "scale": 0.1}},
        {"name": "text", "shape": [LENGTH, len(vocabulary)], "kind": "categorical",
         "likelihood": {"kind": "categorical"}, "vocabulary": vocabulary},
    ]  # fmt: skip


def _captions(root: Path, split: str) -> list[str]:
    path = find_file(root, [CAPTIONS[split]], ("", "cub"))
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _images(root: Path, split: str) -> tuple[list[Path], list[int]]:
    for folder in (root / split, root / "cub" / split):
        if folder.is_dir():
            classes = sorted(p for p in folder.iterdir() if p.is_dir())
            files = [(f, c) for c, d in enumerate(classes) for f in sorted(d.glob("*.jpg"))]
            return [f for f, _ in files], [c for _, c in files]
    raise DatasetError(f"{split}: no image folder in {root} or {root / 'cub'}")


def load_cub(root: str | Path, split: str = "train", min_occurrences: int = 4) -> ArrayRows:
    """CUB's `split` ("train" or "test") captions with their images, from `root`."""
    if split not in CAPTIONS:
        raise ValueError(f"split: {split!r} is not one of {sorted(CAPTIONS)}")
    root = Path(root)
    vocabulary = build_vocabulary(_captions(root, "train"), min_occurrences)
    captions = _captions(root, split)
    images, classes = _images(root, split)
    if len(captions) != CAPTIONS_PER_IMAGE * len(images):
        raise DatasetError(
            f"{CAPTIONS[split]}: {len(captions)} captions for {len(images)} images "
            f"(expected {CAPTIONS_PER_IMAGE} per image)"
        )
    image_of = np.arange(len(captions)) // CAPTIONS_PER_IMAGE
    return ArrayRows(
        {"image": ImageFiles(images, (3, 64, 64)),
         "text": encode_texts(captions, vocabulary, LENGTH)},
        index={"image": image_of},
        labels=np.array(classes)[image_of],
        transforms={"image": [{"kind": "scale", "factor": 1 / 255}],
                    "text": [{"kind": "one_hot", "classes": len(vocabulary)}]},
        specs=specs(vocabulary),
        metadata={"dataset": "cub", "split": split, "vocabulary": vocabulary},
    )  # fmt: skip
