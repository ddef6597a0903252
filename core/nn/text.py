"""The sentence networks of MMVAE's CUB image–caption experiments (Shi et al. 2019), layer for
layer, for one-hot token sequences [L, V] (core/data/text.py).

Encoder: the tokens embedded into E dimensions (a bias-free map whose `padding_token` row is
held at zero, as `nn.Embedding(padding_idx=...)`), seen as a 1-channel L x E image; three 4x4
stride-2 convolutions (`filters`, 2·, 4· channels) and two (1, 4) stride-(1, 2) ones, each
bias-free with batch norm and ReLU, down to 4·filters x L/8 x E/32; one bias-free convolution
over that whole map to the outputs (MMVAE's two heads c1, c2 as one). Decoder: the mirror
(transposed convolutions from 1x1 up to a 1-channel L x E map, batch norm and ReLU, a last ReLU),
then a linear map from each position's E values to the V token logits. With L = 32, E = 128,
filters = 32 and V = 1590 the parameter counts equal MMVAE's `Enc`/`Dec` in
`src/models/vae_cub_sent.py` (tests/core/nn/test_text_cnn.py).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from core.nn.layers import NetworkError, Reshape, by_direction


class TextCNNParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["text_cnn"] = "text_cnn"
    embedding: int = Field(128, gt=0, description="E: each token's embedding (a multiple of 32)")
    filters: int = Field(32, gt=0, description="channels of the first convolution")
    padding_token: int | None = Field(
        1, ge=0, description="token id whose embedding stays zero (core/data/text.py's <pad>)"
    )


class TokenEmbedding(nn.Module):
    """One-hot tokens [N, L, V] -> [N, 1, L, E]: each row times a [V, E] table whose
    `padding` row is zero and never trained (zeros, a missing sample, embed to zeros)."""

    def __init__(self, vocabulary: int, dim: int, padding: int | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(vocabulary, dim))  # nn.Embedding's N(0, 1)
        keep = torch.ones(vocabulary, 1)
        if padding is not None:
            keep[padding] = 0.0
        self.register_buffer("keep", keep, persistent=False)

    def forward(self, tokens: Tensor) -> Tensor:
        return (tokens @ (self.weight * self.keep)).unsqueeze(1)


def _block(conv: nn.Module, channels: int) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(channels), nn.ReLU()]


def _geometry(params: TextCNNParams, tokens: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(L, V, L/8, E/32) of a token sequence, or a NetworkError saying what does not fit."""
    if len(tokens) != 2:
        raise NetworkError(f"text_cnn: needs one-hot tokens [L, V], got {list(tokens)}")
    length, vocabulary = tokens
    if length % 8 or params.embedding % 32:
        raise NetworkError(
            f"text_cnn: the length ({length}) must be a multiple of 8 and the embedding "
            f"({params.embedding}) of 32 (three halvings of both, two more of the embedding)"
        )
    if params.padding_token is not None and params.padding_token >= vocabulary:
        raise NetworkError(f"text_cnn: padding_token {params.padding_token} >= V = {vocabulary}")
    return length, vocabulary, length // 8, params.embedding // 32


def _encoder(params: TextCNNParams, tokens: tuple[int, ...], out: tuple[int, ...]) -> nn.Module:
    _, vocabulary, h, w = _geometry(params, tokens)
    f = params.filters
    layers: list[nn.Module] = [TokenEmbedding(vocabulary, params.embedding, params.padding_token)]
    for c_in, c_out in ((1, f), (f, 2 * f), (2 * f, 4 * f)):
        layers += _block(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), c_out)
    for _ in range(2):
        layers += _block(nn.Conv2d(4 * f, 4 * f, (1, 4), (1, 2), (0, 1), bias=False), 4 * f)
    layers += [nn.Conv2d(4 * f, math.prod(out), (h, w), bias=False), Reshape(out)]
    return nn.Sequential(*layers)


def _decoder(params: TextCNNParams, latent: tuple[int, ...], tokens: tuple[int, ...]) -> nn.Module:
    length, vocabulary, h, w = _geometry(params, tokens)
    f, embedding = params.filters, params.embedding
    layers: list[nn.Module] = [Reshape((math.prod(latent), 1, 1))]
    layers += _block(nn.ConvTranspose2d(math.prod(latent), 4 * f, (h, w), bias=False), 4 * f)
    for _ in range(2):
        conv = nn.ConvTranspose2d(4 * f, 4 * f, (1, 4), (1, 2), (0, 1), bias=False)
        layers += _block(conv, 4 * f)
    for c_in, c_out in ((4 * f, 2 * f), (2 * f, f)):
        layers += _block(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), c_out)
    layers += [nn.ConvTranspose2d(f, 1, 4, 2, 1, bias=False), nn.ReLU()]
    layers += [Reshape((length, embedding)), nn.Linear(embedding, vocabulary)]
    return nn.Sequential(*layers)


def network(
    params: TextCNNParams, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> nn.Module:
    return by_direction(
        "text_cnn", 2, "one-hot tokens [L, V]", in_shape, out_shape,
        lambda: _encoder(params, in_shape, out_shape),
        lambda: _decoder(params, in_shape, out_shape),
    )  # fmt: skip
