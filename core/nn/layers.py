"""Pieces every network builder shares: activations by name, the spec error, a reshape layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import Tensor, nn

Activation = Literal["relu", "gelu", "silu", "tanh", "leaky_relu", "elu"]
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
}


class NetworkError(ValueError):
    """A network spec is invalid or does not fit the shapes it is asked to connect."""


class Reshape(nn.Module):
    """[N, ...] -> [N, *shape]."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)


def by_direction(
    kind: str,
    rank: int,
    side: str,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    encoder: Callable[[], nn.Module],
    decoder: Callable[[], nn.Module],
) -> nn.Module:
    """The encoder when the input has the data side's `rank`, the decoder when the output has
    it; a NetworkError naming `kind` and what the data side must be (`side`) otherwise."""
    if len(in_shape) == rank:
        return encoder()
    if len(out_shape) == rank:
        return decoder()
    raise NetworkError(
        f"{kind}: one side must be {side}; got {list(in_shape)} -> {list(out_shape)}"
    )

