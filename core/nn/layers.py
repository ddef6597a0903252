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
