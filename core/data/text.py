"""Text as token sequences: one tokeniser and one vocabulary convention for datasets (CUB) and
the service, so a served model reads and writes text the way it was trained.

Words are lower-cased and split into runs of letters/digits and single punctuation marks. A
vocabulary starts with `<exc>` (unknown words) = 0, `<pad>` = 1, `<eos>` = 2 (MultiVae's ids); a
sequence of length L holds the first L − 1 words, `<eos>`, then `<pad>`.
"""

from __future__ import annotations

import re

import numpy as np

SPECIALS = ["<exc>", "<pad>", "<eos>"]
UNKNOWN, PAD, EOS = 0, 1, 2
WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    return WORD.findall(text.lower())


def encode_texts(texts: list[str], vocabulary: list[str], length: int) -> np.ndarray:
    """Token ids [N, length]; words outside the vocabulary become `<exc>`."""
    ids = {w: i for i, w in enumerate(vocabulary)}
    out = np.full((len(texts), length), PAD, dtype=np.int32)
    for row, text in enumerate(texts):
        words = [ids.get(w, UNKNOWN) for w in tokenize(text)][: length - 1]
        tokens = [*words, EOS]
        out[row, : len(tokens)] = tokens
    return out


def decode_ids(ids: list[int], vocabulary: list[str]) -> str:
    """The words up to the first `<eos>`, without padding, joined by spaces."""
    words = []
    for i in ids:
        if i == EOS:
            break
        if i != PAD:
            words.append(vocabulary[i])
    return " ".join(words)
