"""1-D convolutional networks for sequences: sound and sensor signals [C, T] (one signal: [1, T]),
trajectories [2, T], and token sequences as one-hot [L, V] (text: `layout="channels_last"` with
an `embedding`).

Encoder: an optional linear embedding of the C input channels, then per entry of `channels` a
stride-2 convolution (kernel 4, padding 1: the length halves), flattened into a dense layer of
`hidden` and the output. Decoder: the mirror, transposed convolutions doubling the length, and a
last 1x1 projection to C channels (logits per position for tokens).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from core.nn.layers import ACTIVATIONS, Activation, NetworkError, Reshape, by_direction


class Conv1dParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["conv1d"] = "conv1d"
    channels: list[int] = Field(
        default_factory=lambda: [64, 128, 256], description="one stride-2 convolution each"
    )
    hidden: int = Field(256, gt=0, description="width of the dense layer next to the latent")
    embedding: int | None = Field(
        None, gt=0, description="linear embedding of the input channels first (e.g. a vocabulary)"
    )
    layout: Literal["channels_first", "channels_last"] = Field(
        "channels_first", description="[C, T] signals, or [T, C] such as one-hot tokens [L, V]"
    )
    activation: Activation = "relu"


class ToChannelsFirst(nn.Module):
    """[N, T, C] <-> [N, C, T] (its own inverse)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


def _geometry(params: Conv1dParams, shape: tuple[int, ...]) -> tuple[int, int]:
    """(channels C, length T) of a sequence shape, checked against the halvings."""
    channels, length = shape if params.layout == "channels_first" else shape[::-1]
    factor = 2 ** len(params.channels)
    if length % factor:
        raise NetworkError(
            f"conv1d: length {length} must be divisible by 2^{len(params.channels)} (one "
            "halving per channels entry); use fewer channels"
        )
    return channels, length


def _encoder(params: Conv1dParams, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> nn.Module:
    act = ACTIVATIONS[params.activation]
    channels, length = _geometry(params, shape)
    layers: list[nn.Module] = [ToChannelsFirst()] if params.layout == "channels_last" else []
    width = channels
    if params.embedding:  # a linear map of each position's channels: [N, C, T] -> [N, E, T]
        layers.append(nn.Conv1d(channels, params.embedding, 1, bias=False))
        width = params.embedding
    for c in params.channels:
        layers += [nn.Conv1d(width, c, 4, stride=2, padding=1), act()]
        width = c
    reduced = length // 2 ** len(params.channels)
    layers += [nn.Flatten(), nn.Linear(width * reduced, params.hidden), act()]
    layers += [nn.Linear(params.hidden, math.prod(out_shape)), Reshape(out_shape)]
    return nn.Sequential(*layers)


def _decoder(params: Conv1dParams, in_shape: tuple[int, ...], shape: tuple[int, ...]) -> nn.Module:
    act = ACTIVATIONS[params.activation]
    channels, length = _geometry(params, shape)
    stages = list(reversed(params.channels))
    reduced = length // 2 ** len(stages)
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(math.prod(in_shape), params.hidden), act()]
    layers += [nn.Linear(params.hidden, stages[0] * reduced), act(), Reshape((stages[0], reduced))]
    width = params.embedding or stages[-1]
    for c_in, c_out in zip(stages, [*stages[1:], width], strict=True):
        layers += [nn.ConvTranspose1d(c_in, c_out, 4, stride=2, padding=1), act()]
    layers.append(nn.Conv1d(width, channels, 1))  # per position: the C channels (token logits)
    if params.layout == "channels_last":
        layers.append(ToChannelsFirst())
    return nn.Sequential(*layers)


def network(
    params: Conv1dParams, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> nn.Module:
    return by_direction(
        "conv1d", 2, "a sequence [C, T] ([T, C] with layout channels_last; a single signal is "
        "[1, T])", in_shape, out_shape,
        lambda: _encoder(params, in_shape, out_shape),
        lambda: _decoder(params, in_shape, out_shape),
    )  # fmt: skip
