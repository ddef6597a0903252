"""The residual image networks of MMVAE+ and CMVAE (Palumbo et al. 2023, 2024; PolyMNIST 28x28,
CUB 64x64), for any [C, H, W] image.

Encoder: 3x3 conv to `filters` channels, a residual block, then per downsampling an average
pool (3x3, stride 2) and a block doubling the channels (at most `max_filters`), flattened into
a dense head. Decoder: the mirror (dense, blocks halving the channels each followed by a 2x
upsampling, a last block, a 3x3 conv to C channels). A block is x·W_s + 0.1·f(x), f two 3x3
convs with leaky ReLUs, W_s a 1x1 conv where the channels change. With `head_activation` a leaky
ReLU precedes the dense head and the output conv (the CUB networks); PolyMNIST's have none.
The parameter counts equal MultiVae's `EncoderResnetMMNIST`/`DecoderResnetMMNIST` (no private
branch) and `CUB_Resnet_Encoder`/`CUB_Resnet_Decoder` (tests/core/nn/test_resnet.py).
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from core.nn.layers import NetworkError, Reshape


class ResNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["resnet"] = "resnet"
    downsamplings: int = Field(2, ge=0, le=6, description="halvings of the image (2: 28 -> 7)")
    filters: int = Field(64, gt=0, description="channels of the first block")
    max_filters: int = Field(1024, gt=0, description="channels at most, as blocks double them")
    head_activation: bool = Field(
        False, description="a leaky ReLU before the dense head and the output conv (CUB's)"
    )


class ResidualBlock(nn.Module):
    """x·W_s + 0.1·f(x): f two 3x3 convs with leaky ReLUs, W_s a 1x1 conv or the identity."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        hidden = min(channels_in, channels_out)
        self.residual = nn.Sequential(
            nn.Conv2d(channels_in, hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, channels_out, 3, padding=1),
            nn.LeakyReLU(0.2),
        )
        self.shortcut = (
            nn.Identity()
            if channels_in == channels_out
            else nn.Conv2d(channels_in, channels_out, 1, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + 0.1 * self.residual(x)


def _geometry(params: ResNetParams, image: tuple[int, ...]) -> tuple[int, int, list[int]]:
    """(base height, base width, channels after each stage) of an image [C, H, W]."""
    if len(image) != 3:
        raise NetworkError(f"resnet: needs an image shape [C, H, W], got {list(image)}")
    _, h, w = image
    factor = 2**params.downsamplings
    if h % factor or w % factor:
        raise NetworkError(
            f"resnet: image {h}x{w} must be divisible by 2^{params.downsamplings} "
            "(one halving per downsampling); set fewer downsamplings"
        )
    stages = [
        min(params.filters * 2**i, params.max_filters) for i in range(params.downsamplings + 1)
    ]
    return h // factor, w // factor, stages


def _activation(on: bool) -> list[nn.Module]:
    return [nn.LeakyReLU(0.2)] if on else []


def network(
    params: ResNetParams, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> nn.Module:
    if len(in_shape) == 3:  # image -> vector (encoder)
        bh, bw, stages = _geometry(params, in_shape)
        layers: list[nn.Module] = [nn.Conv2d(in_shape[0], stages[0], 3, padding=1)]
        layers.append(ResidualBlock(stages[0], stages[0]))
        for c_in, c_out in pairwise(stages):
            layers += [nn.AvgPool2d(3, stride=2, padding=1), ResidualBlock(c_in, c_out)]
        layers += [nn.Flatten(), *_activation(params.head_activation)]
        layers += [nn.Linear(stages[-1] * bh * bw, math.prod(out_shape)), Reshape(out_shape)]
        return nn.Sequential(*layers)
    if len(out_shape) == 3:  # vector -> image (decoder)
        bh, bw, stages = _geometry(params, out_shape)
        layers = [nn.Flatten(), nn.Linear(math.prod(in_shape), stages[-1] * bh * bw)]
        layers.append(Reshape((stages[-1], bh, bw)))
        for c_in, c_out in pairwise(stages[::-1]):
            layers += [ResidualBlock(c_in, c_out), nn.Upsample(scale_factor=2)]
        layers += [ResidualBlock(stages[0], stages[0]), *_activation(params.head_activation)]
        layers.append(nn.Conv2d(stages[0], out_shape[0], 3, padding=1))
        return nn.Sequential(*layers)
    raise NetworkError(
        f"resnet: one side must be an image [C, H, W]; got {list(in_shape)} -> {list(out_shape)}"
    )
