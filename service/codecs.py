"""Wire formats ↔ tensors: `{"shape", "data"}` tensors, nested lists, base64 PNG images, class
indices or probabilities for categorical modalities; and back to JSON, PNG grids and .npz.

Every decoding error is an `ApiError` naming the field (`inputs.image[2]`) and the rule broken.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from core.data.batch import Batch
from core.models.config import ModalitySpec
from service.errors import decoding, invalid, over_limit
from service.schemas import OutputEncoding, TensorOut, TensorPayload

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PROB_TOLERANCE = 1e-3


# ---- inputs ---------------------------------------------------------------------------------
MAX_TEXT_CHARACTERS_PER_TOKEN = 64  # a text input's length bound, per token slot


def decode_png(text: str, spec: ModalitySpec, field: str, max_pixels: int) -> Tensor:
    """A base64 PNG (optionally a `data:image/png;base64,` URL) → float [C, H, W] in [0, 1]."""
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(field, "not valid base64 (expected a base64-encoded PNG)") from None
    if not raw.startswith(PNG_MAGIC):
        raise invalid(field, "not a PNG image (only PNG is accepted)")
    with decoding(field, "PNG image"):
        try:
            image = Image.open(io.BytesIO(raw), formats=["PNG"])
        except Image.DecompressionBombError:  # declares over twice Pillow's own pixel limit
            raise invalid(
                f"{field} pixels",
                f"the image declares more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels; the "
                f"limit is {max_pixels} (setting MMVAE_MAX_IMAGE_PIXELS)",
            ) from None
        width, height = image.size
        if width * height > max_pixels:
            raise over_limit(
                f"{field} pixels", width * height, max_pixels, "MMVAE_MAX_IMAGE_PIXELS"
            )
        channels, want_h, want_w = spec.shape
        if (height, width) != (want_h, want_w):
            raise invalid(
                field, f"image is {width}x{height} pixels; the model expects {want_w}x{want_h}"
            )
        image = image.convert("L" if channels == 1 else "RGB")
        array = np.asarray(image, dtype=np.float32) / 255.0
    x = torch.from_numpy(array.copy())
    return x.unsqueeze(0) if channels == 1 else x.permute(2, 0, 1)


def decode_text(text: str, spec: ModalitySpec, field: str) -> Tensor:
    """A string → one-hot tokens [L, V] over the modality's vocabulary (core/data/text.py)."""
    from core.data.text import encode_texts

    length, words = spec.shape
    if len(text) > MAX_TEXT_CHARACTERS_PER_TOKEN * length:
        raise invalid(
            field,
            f"text of {len(text)} characters; at most {MAX_TEXT_CHARACTERS_PER_TOKEN * length}",
        )
    ids = torch.from_numpy(encode_texts([text], spec.vocabulary, length)[0]).long()
    return torch.nn.functional.one_hot(ids, words).float()


def _numbers(value: Any, field: str) -> Tensor:
    try:
        x = torch.tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        raise invalid(field, "expected numbers in a regular nested list") from None
    return x


def _check_finite(x: Tensor, field: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise invalid(field, "contains NaN or infinite values")


def _check_probabilities(x: Tensor, field: str) -> None:
    """Categorical rows must be probabilities: non-negative, summing to 1."""
    if bool((x < 0).any()) or not bool(
        torch.allclose(x.sum(-1), torch.ones(()), atol=_PROB_TOLERANCE)
    ):
        raise invalid(field, "class probabilities must be non-negative and sum to 1")


def decode_sample(value: Any, spec: ModalitySpec, field: str, max_pixels: int) -> Tensor | None:
    """One sample of one modality (None = missing) → float tensor of the modality's shape."""
    if value is None:
        return None
    shape = tuple(spec.shape)
    if isinstance(value, str):
        if spec.vocabulary is not None:
            return decode_text(value, spec, field)
        if spec.kind != "image":
            raise invalid(
                field, f"strings are only accepted for image and text modalities, not {spec.kind}"
            )
        return decode_png(value, spec, field, max_pixels)
    if isinstance(value, bool):
        raise invalid(field, "expected a number or a list, got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise invalid(field, "contains NaN or infinite values")
        if spec.kind == "categorical":
            classes = shape[-1]
            if float(value) != int(value) or not 0 <= int(value) < classes:
                raise invalid(field, f"class index must be an integer in [0, {classes - 1}]")
            return torch.nn.functional.one_hot(torch.tensor(int(value)), classes).float()
        if shape != (1,):
            raise invalid(field, f"a single number fits shape [1]; the modality has {list(shape)}")
        return torch.tensor([float(value)])
    x = _numbers(value, field)
    if tuple(x.shape) != shape:
        raise invalid(field, f"wrong shape {list(x.shape)}; expected {list(shape)}")
    _check_finite(x, field)
    if spec.kind == "categorical":
        _check_probabilities(x, field)
    return x


def decode_modality(
    value: TensorPayload | list[Any], spec: ModalitySpec, field: str, max_pixels: int
) -> tuple[Tensor, Tensor]:
    """One modality's input for B samples → (data [B, *shape], mask bool [B])."""
    shape = list(spec.shape)
    if isinstance(value, TensorPayload):
        if value.shape[1:] != shape or len(value.shape) != len(shape) + 1:
            raise invalid(f"{field}.shape", f"wrong shape {value.shape}; expected [B, *{shape}]")
        if math.prod(value.shape) != len(value.data):
            raise invalid(
                f"{field}.data",
                f"has {len(value.data)} values; shape {value.shape} needs {math.prod(value.shape)}",
            )
        x = torch.tensor(value.data, dtype=torch.float32).view(value.shape)
        _check_finite(x, f"{field}.data")
        if spec.kind == "categorical":
            _check_probabilities(x, f"{field}.data")
        return x, torch.ones(x.shape[0], dtype=torch.bool)
    fast = _class_indices(value, spec)
    if fast is not None:
        return fast
    rows: list[Tensor | None] = []
    with decoding(lambda: f"{field}[{len(rows)}]", f"{spec.kind} sample"):  # one guard, not B
        for i, v in enumerate(value):
            rows.append(decode_sample(v, spec, f"{field}[{i}]", max_pixels))
    zeros = torch.zeros(shape)
    data = torch.stack([zeros if r is None else r for r in rows]) if rows else zeros[None][:0]
    return data, torch.tensor([r is not None for r in rows], dtype=torch.bool)


def _class_indices(values: list[Any], spec: ModalitySpec) -> tuple[Tensor, Tensor] | None:
    """Fast path for the common categorical input, a list of valid class indices: one one-hot
    op instead of several tensor ops per sample (a measurable share of a small request's cost,
    bench/RESULTS.md). None when any entry needs the general path (and its error messages)."""
    if spec.kind != "categorical" or not values or not _valid_indices(values, spec.shape[-1]):
        return None
    data = _one_hot_table(spec.shape[-1])[values]
    return data.view(len(values), *spec.shape), torch.ones(len(values), dtype=torch.bool)


def _valid_indices(values: Any, classes: int) -> bool:
    return type(values) is list and all(type(v) is int and 0 <= v < classes for v in values)


@functools.cache
def _one_hot_table(classes: int) -> Tensor:
    """Row i < `classes`: the one-hot vector of class i; row `classes`: zeros, for a missing
    sample (indexed, never written to)."""
    return torch.cat([torch.eye(classes), torch.zeros(1, classes)])


def decode_merged(
    requests: Sequence[dict[str, Any]], rows: Sequence[int], specs: Sequence[ModalitySpec]
) -> Batch | None:
    """Several requests' inputs (`rows[i]` samples each, counted by `input_rows`) as one Batch in
    request order, with one tensor op per modality, when each modality a request gives is a
    list of valid class indices of a categorical modality (the common conditional-generation
    input). The same Batch as decoding each alone and concatenating; None for any other input,
    which the caller then decodes alone (where its errors are worded)."""
    names = {s.name for s in specs}
    if any(not inputs or not names.issuperset(inputs) for inputs in requests):
        return None
    total = sum(rows)
    data, masks = {}, {}
    for spec in specs:
        given = [inputs.get(spec.name) for inputs in requests]
        if all(v is None for v in given):
            data[spec.name] = torch.zeros(total, *spec.shape)
            masks[spec.name] = torch.zeros(total, dtype=torch.bool)
            continue
        if spec.kind != "categorical":
            return None
        classes = spec.shape[-1]
        indices: list[int] = []
        for values, n in zip(given, rows, strict=True):
            if values is None:
                indices += [classes] * n  # the zero row: missing in this request
            elif _valid_indices(values, classes) and len(values) == n:
                indices += values
            else:
                return None
        index = torch.tensor(indices)
        data[spec.name] = _one_hot_table(classes)[index].view(total, *spec.shape)
        masks[spec.name] = index != classes
    return Batch(data, masks)


def input_rows(
    inputs: dict[str, TensorPayload | list[Any]], specs: Sequence[ModalitySpec], max_batch: int
) -> int:
    """The number of samples in a request's `inputs`, checked without reading the data: known
    modalities, the same count for each, between 1 and `max_batch`."""
    names = [s.name for s in specs]
    if not inputs:
        raise invalid("inputs", f"give at least one modality; the model has {names}")
    sizes: dict[str, int] = {}
    for name, v in inputs.items():
        if name not in names:
            raise invalid(f"inputs.{name}", f"unknown modality; the model has {names}")
        sizes[name] = v.shape[0] if isinstance(v, TensorPayload) else len(v)
        if sizes[name] > max_batch:
            raise over_limit(f"inputs.{name}", sizes[name], max_batch, "MMVAE_MAX_BATCH_SIZE")
    if len(set(sizes.values())) > 1:
        raise invalid("inputs", f"every modality needs the same number of samples, got {sizes}")
    n = next(iter(sizes.values()))
    if n == 0:
        raise invalid("inputs", "no samples given")
    return n


def decode_inputs(
    inputs: dict[str, TensorPayload | list[Any]],
    specs: Sequence[ModalitySpec],
    max_batch: int,
    max_pixels: int,
    rows: int | None = None,
) -> Batch:
    """The request's `inputs` → a `Batch` over every model modality (missing: zeros, False).
    `rows`: what `input_rows` already returned for these inputs (not counted and checked again)."""
    n = input_rows(inputs, specs, max_batch) if rows is None else rows
    by_name = {s.name: s for s in specs}
    data, masks = {}, {}
    for name, spec in by_name.items():
        if name in inputs:
            data[name], masks[name] = decode_modality(
                inputs[name], spec, f"inputs.{name}", max_pixels
            )
            if spec.input_transforms:  # data units -> the model's inputs, as in training
                data[name] = to_model_units(data[name], masks[name], spec)
        else:
            data[name] = torch.zeros(n, *spec.shape)
            masks[name] = torch.zeros(n, dtype=torch.bool)
    if any(isinstance(inputs[m], TensorPayload) for m in inputs):
        return Batch(data, masks)  # a {shape, data} tensor observes every sample
    observed = torch.stack(list(masks.values())).any(0)
    if not bool(observed.all()):
        first = int((~observed).nonzero()[0])
        raise invalid("inputs", f"sample {first} has no observed modality")
    return Batch(data, masks)


def to_model_units(x: Tensor, mask: Tensor, spec: ModalitySpec) -> Tensor:
    """`spec.input_transforms` applied to the observed samples (missing ones stay zeros)."""
    from core.data import transforms

    moved = transforms.apply(spec.parsed_input_transforms, x)
    return torch.where(mask.view(-1, *([1] * (x.ndim - 1))), moved, 0.0)


# ---- outputs --------------------------------------------------------------------------------
def to_data_units(x: Tensor, spec: ModalitySpec | None) -> Tensor:
    """A modality's output [..., *shape] with its `input_transforms` undone (PNG pixels in
    [0, 1], numbers as the data had them); anything else unchanged."""
    if spec is None or not spec.input_transforms:
        return x
    from core.data import transforms

    undone = transforms.invert(spec.parsed_input_transforms, x.reshape(-1, *spec.shape))
    return undone.view(x.shape)


def encode_png(image: Tensor, scale: int = 1) -> bytes:
    """[C, H, W] in [0, 1] (values outside are clipped) → PNG bytes, upscaled `scale` times
    (nearest neighbour, on the 8-bit image: no float copy of the enlarged image)."""
    array = (image.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    pil = (
        Image.fromarray(array[0], "L")
        if array.shape[0] == 1
        else Image.fromarray(array.transpose(1, 2, 0), "RGB")
    )
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


def png_grid(images: Tensor, scale: int = 1, pad: int = 1) -> bytes:
    """[S, B, C, H, W] → one PNG: a row per input sample (B), a column per draw (S)."""
    s, b, c, h, w = images.shape
    grid = torch.ones(c, b * (h + pad) + pad, s * (w + pad) + pad)
    for j in range(b):
        for i in range(s):
            top, left = pad + j * (h + pad), pad + i * (w + pad)
            grid[:, top : top + h, left : left + w] = images[i, j].clamp(0, 1)
    return encode_png(grid, scale)


def encode_tensor(
    x: Tensor, spec: ModalitySpec | None, encoding: OutputEncoding, png_scale: int = 1
) -> TensorOut:
    """A [..., *shape] output → `TensorOut`: flat or nested values, PNGs for images on request,
    and the argmax class for categorical modalities."""
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.requires_grad:
        x = x.detach().float().cpu()
    x = to_data_units(x, spec)
    out = TensorOut(shape=list(x.shape))
    if spec is not None and spec.kind == "image" and encoding == "png":
        lead = x.shape[:-3]
        flat = x.reshape(-1, *x.shape[-3:])
        pngs = [base64.b64encode(encode_png(img, png_scale)).decode() for img in flat]
        out.png = np.array(pngs, dtype=object).reshape(lead).tolist()
    else:
        out.data = x.tolist() if encoding == "nested" else x.flatten().tolist()
    if spec is not None and spec.kind == "categorical":
        out.classes = x.argmax(-1).tolist()
    if spec is not None and spec.vocabulary is not None:
        from core.data.text import decode_ids

        ids = x.argmax(-1)
        texts = [
            decode_ids(row.tolist(), spec.vocabulary) for row in ids.reshape(-1, ids.shape[-1])
        ]
        out.text = np.array(texts, dtype=object).reshape(ids.shape[:-1]).tolist()
    return out


def to_npz(arrays: dict[str, Tensor]) -> bytes:
    """Named tensors → .npz bytes (float32; never pickled)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v.detach().float().cpu().numpy() for k, v in arrays.items()})
    return buffer.getvalue()
