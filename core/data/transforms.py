"""Per-modality transforms declared in a dataset's config, applied to each batch as it is read.

A modality's transforms are a list of specs applied in order, e.g. for images stored as bytes
`[{"kind": "scale", "factor": 0.00392156862745098}, {"kind": "resize", "size": [28, 28]}]`;
`random_flip` and `random_crop` augment training splits only.
They are data, not code, so a dataset's JSON (and a model trained on it) can say exactly how raw
values became the model's inputs.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from torch import Tensor


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scale(_Spec):
    """x · factor + offset (e.g. bytes to [0, 1] with factor 1/255)."""

    kind: Literal["scale"] = "scale"
    factor: float = 1.0
    offset: float = 0.0

    def apply(self, x: Tensor) -> Tensor:
        return x * self.factor + self.offset

    def inverse(self, x: Tensor) -> Tensor:
        return (x - self.offset) / self.factor

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape


class Normalize(_Spec):
    """(x − mean_c) / std_c per channel c of [N, C, ...] samples (one value: every channel)."""

    kind: Literal["normalize"] = "normalize"
    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _positive(self) -> Normalize:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError("normalize: mean and std need the same, non-zero number of values")
        if min(self.std) <= 0:
            raise ValueError("normalize: every std must be positive")
        return self

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        view = (1, -1, *([1] * (x.ndim - 2)))
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(view)
        return mean, torch.tensor(self.std, dtype=x.dtype, device=x.device).view(view)

    def apply(self, x: Tensor) -> Tensor:
        mean, std = self._stats(x)
        return (x - mean) / std

    def inverse(self, x: Tensor) -> Tensor:
        mean, std = self._stats(x)
        return x * std + mean

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(self.mean) not in (1, shape[0]):
            raise ValueError(f"normalize: {len(self.mean)} values for {shape[0]} channels")
        return shape


class Resize(_Spec):
    """Images [N, C, H, W] to `size` [H', W'] (bilinear, antialiased when shrinking)."""

    kind: Literal["resize"] = "resize"
    size: tuple[Annotated[int, Field(gt=0, le=4096)], Annotated[int, Field(gt=0, le=4096)]]

    def apply(self, x: Tensor) -> Tensor:
        return torch.nn.functional.interpolate(
            x, size=self.size, mode="bilinear", antialias=True, align_corners=False
        )

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) != 3:
            raise ValueError(f"resize: needs images [C, H, W], got samples of shape {list(shape)}")
        return (shape[0], *self.size)


class OneHot(_Spec):
    """Integer tokens [N, L] to one-hot rows [N, L, classes] (e.g. a caption over a vocabulary)."""

    kind: Literal["one_hot"] = "one_hot"
    classes: int = Field(gt=1, le=1_000_000)

    def apply(self, x: Tensor) -> Tensor:
        return torch.nn.functional.one_hot(x.long(), self.classes).to(torch.float32)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*shape, self.classes)


class RandomFlip(_Spec):
    """Augmentation: each image [C, H, W] mirrored left-right with probability `p`."""

    kind: Literal["random_flip"] = "random_flip"
    p: float = Field(0.5, ge=0, le=1)
    augments: ClassVar[bool] = True

    def apply(self, x: Tensor) -> Tensor:
        flip = torch.rand(len(x), device=x.device) < self.p
        return torch.where(flip.view(-1, *([1] * (x.ndim - 1))), x.flip(-1), x)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) != 3:
            raise ValueError(f"random_flip: needs images [C, H, W], got {list(shape)}")
        return shape


class RandomCrop(_Spec):
    """Augmentation: each image zero-padded by `padding` and cropped back to its size at a
    random offset (a shift of up to `padding` pixels each way)."""

    kind: Literal["random_crop"] = "random_crop"
    padding: int = Field(4, ge=1, le=64)
    augments: ClassVar[bool] = True

    def apply(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        padded = torch.nn.functional.pad(x, [self.padding] * 4)
        offsets = torch.randint(0, 2 * self.padding + 1, (len(x), 2)).tolist()
        crops = [
            padded[i, :, top : top + h, left : left + w] for i, (top, left) in enumerate(offsets)
        ]
        return torch.stack(crops)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) != 3:
            raise ValueError(f"random_crop: needs images [C, H, W], got {list(shape)}")
        return shape


Transform = Annotated[
    Scale | Normalize | Resize | OneHot | RandomFlip | RandomCrop, Field(discriminator="kind")
]
_TRANSFORMS = TypeAdapter(list[Transform])


def parse_transforms(specs: list[dict] | None) -> list[Transform]:
    """Validated transforms from their JSON specs (None: none)."""
    return _TRANSFORMS.validate_python(specs or [])


def apply(transforms: list[Transform], x: Tensor, augment: bool = False) -> Tensor:
    """`x` [N, *shape] float through every transform in order; augmentations (random, drawn
    from torch's global generator) only when `augment` (a training split)."""
    for t in transforms:
        if augment or not getattr(t, "augments", False):
            x = t.apply(x)
    return x


INVERTIBLE = ("scale", "normalize")  # what a served model may apply to its inputs


def invert(transforms: list[Transform], x: Tensor) -> Tensor:
    """`x` [N, *shape] back through invertible transforms, last first."""
    for t in reversed(transforms):
        x = t.inverse(x)
    return x


def output_shape(transforms: list[Transform], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The per-sample shape after the transforms (raises ValueError where one does not fit)."""
    for t in transforms:
        shape = t.output_shape(shape)
    return shape


def dump(transforms: list[Transform]) -> list[dict]:
    return [t.model_dump() for t in transforms]


def serving_transforms(
    transforms: list[Transform], kind: str, stored_dtype: np.dtype | None
) -> list[dict] | None:
    """The `input_transforms` a model trained on a modality read through `transforms` needs:
    its scale/normalize steps, from data units (PNG pixels in [0, 1]; a vector's stored numbers)
    to the model's inputs. Resizes, flips and crops are left out: they commute with per-channel
    affine maps (their weights sum to one), so the value mapping is exact at any size. Images
    stored as bytes are 0-255 pixels (255 × a PNG's value); float images are taken to be stored
    in [0, 1]. None for categorical data or when nothing remains to apply."""
    if kind == "categorical" or any(t.kind == "one_hot" for t in transforms):
        return None
    values = [t for t in transforms if t.kind in INVERTIBLE]
    if kind == "image" and stored_dtype is not None and np.dtype(stored_dtype) == np.uint8:
        values = [Scale(factor=255.0), *values]
    merged: list[Transform] = []
    for t in values:  # consecutive scales fold into one: x·a + b, then ·c + d
        if merged and t.kind == "scale" and merged[-1].kind == "scale":
            last = merged.pop()
            t = Scale(factor=last.factor * t.factor, offset=last.offset * t.factor + t.offset)
        identity = t.kind == "scale" and math.isclose(t.factor, 1.0) and abs(t.offset) < 1e-12
        if not identity:
            merged.append(t)
    return dump(merged) or None
