"""The `resnet` kind: MMVAE+/CMVAE's residual image networks, with MultiVae's parameter counts."""

from __future__ import annotations

import pytest
import torch

from core.nn import NetworkError, build_network
from core.nn.resnet import ResidualBlock


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# MultiVae 1.0.3's counts (bench/compare/reference_architectures.py): the encoders' two heads of
# D outputs are our one head of 2D, the same parameters
def test_polymnist_networks_have_multivae_s_parameter_counts() -> None:
    assert parameters(build_network({"kind": "resnet"}, (3, 28, 28), (20,))) == 921044
    assert parameters(build_network({"kind": "resnet"}, (10,), (3, 28, 28))) == 807875


def test_cub_networks_have_multivae_s_parameter_counts() -> None:
    spec = {"kind": "resnet", "head_activation": True}
    assert parameters(build_network(spec, (3, 64, 64), (128,))) == 9058880
    assert parameters(build_network(spec, (64,), (3, 64, 64))) == 4929731


@pytest.mark.parametrize("shape", [(3, 28, 28), (3, 64, 64), (1, 32, 16)])
def test_encoder_and_decoder_map_images_and_vectors_both_ways(shape: tuple[int, ...]) -> None:
    spec = {"kind": "resnet", "filters": 8, "max_filters": 16}
    encoder, decoder = build_network(spec, shape, (6,)), build_network(spec, (3,), shape)
    images = torch.rand(4, *shape, requires_grad=True)
    assert encoder(images).shape == (4, 6)
    assert decoder(torch.zeros(4, 3)).shape == (4, *shape)
    encoder(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_channels_double_per_stage_up_to_the_maximum() -> None:
    encoder = build_network(
        {"kind": "resnet", "filters": 8, "max_filters": 16, "downsamplings": 3}, (1, 16, 16), (2,)
    )
    blocks = [m for m in encoder if isinstance(m, ResidualBlock)]
    assert [b.residual[2].out_channels for b in blocks] == [8, 16, 16, 16]


def test_a_block_is_its_shortcut_plus_a_tenth_of_its_residual() -> None:
    torch.manual_seed(0)
    block, x = ResidualBlock(2, 3), torch.randn(1, 2, 5, 5)
    assert torch.allclose(block(x), block.shortcut(x) + 0.1 * block.residual(x))
    same = ResidualBlock(3, 3)
    y = torch.randn(1, 3, 5, 5)
    assert torch.allclose(same(y), y + 0.1 * same.residual(y))


def test_shapes_the_network_cannot_connect_are_refused() -> None:
    with pytest.raises(NetworkError, match="divisible by 2\\^2"):
        build_network({"kind": "resnet"}, (3, 30, 30), (4,))
    with pytest.raises(NetworkError, match="one side must be an image"):
        build_network({"kind": "resnet"}, (4,), (8,))
