"""Encoder/decoder networks built from declarative specs: MLPs and the conv networks for
28x28, 32x32 and 64x64 images, in both directions, and the errors of bad specs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core.nn.networks import NetworkError, build_network, validate_network_spec


def conv_layers(net: nn.Module, kind: type[nn.Module]) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, kind)]


@pytest.mark.parametrize(
    ("in_shape", "out_shape"), [((6,), (4,)), ((1, 8, 8), (10,)), ((12,), (2, 3, 4)), ((3,), (3,))]
)
def test_mlp_maps_any_shape_to_any_shape(in_shape, out_shape):
    net = build_network({"kind": "mlp", "hidden": [16, 8]}, in_shape, out_shape)
    x = torch.randn(5, *in_shape)
    assert net(x).shape == (5, *out_shape)
    linears = conv_layers(net, nn.Linear)
    assert [(lin.in_features, lin.out_features) for lin in linears] == [
        (torch.Size(in_shape).numel(), 16),
        (16, 8),
        (8, torch.Size(out_shape).numel()),
    ]


def test_mlp_options_add_their_layers():
    spec = {"kind": "mlp", "hidden": [8], "activation": "tanh", "dropout": 0.5, "layer_norm": True}
    net = build_network(spec, (4,), (2,))
    kinds = [type(m) for m in net]
    assert kinds[1:5] == [nn.Linear, nn.LayerNorm, nn.Tanh, nn.Dropout]
    net.eval()
    x = torch.randn(3, 4)
    assert torch.equal(net(x), net(x))  # dropout off in eval mode
    assert (
        len(conv_layers(build_network({"kind": "mlp", "hidden": []}, (4,), (2,)), nn.Linear)) == 1
    )


@pytest.mark.parametrize(
    ("image", "channels", "feature_map"),
    [
        ((1, 28, 28), [32, 64], 7),
        ((3, 32, 32), [32, 64, 128], 4),
        ((3, 64, 64), [32, 64, 128, 256], 4),
    ],
)
def test_conv_encoder_and_decoder_for_28_32_and_64_pixel_images(image, channels, feature_map):
    """One stride-2 layer per channel entry, as many as keep the maps at least 4x4 (at most 4);
    the decoder mirrors the encoder."""
    encoder = build_network({"kind": "conv"}, image, (2 * 16,))
    decoder = build_network({"kind": "conv"}, (16,), image)
    x = torch.rand(2, *image)
    assert encoder(x).shape == (2, 32)
    assert decoder(torch.randn(2, 16)).shape == (2, *image)
    convs = conv_layers(encoder, nn.Conv2d)
    assert [c.out_channels for c in convs] == channels
    assert all(c.stride == (2, 2) for c in convs)
    dense = conv_layers(encoder, nn.Linear)[0]
    assert dense.in_features == channels[-1] * feature_map * feature_map
    deconvs = conv_layers(decoder, nn.ConvTranspose2d)
    assert [d.out_channels for d in deconvs] == [*reversed(channels[:-1]), image[0]]


def test_conv_networks_learn():
    """A conv autoencoder on 28x28 images lowers its reconstruction error in a few steps."""
    torch.manual_seed(0)
    enc = build_network({"kind": "conv", "hidden": 32}, (1, 28, 28), (8,))
    dec = build_network({"kind": "conv", "hidden": 32}, (8,), (1, 28, 28))
    x = (torch.rand(4, 1, 28, 28) > 0.7).float()
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)
    losses = []
    for _ in range(40):
        loss = nn.functional.binary_cross_entropy_with_logits(dec(enc(x)), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_conv_explicit_channels_and_their_limits():
    net = build_network({"kind": "conv", "channels": [8]}, (3, 32, 32), (4,))
    assert net(torch.rand(1, 3, 32, 32)).shape == (1, 4)
    with pytest.raises(NetworkError, match="divisible by 2\\^3"):
        build_network({"kind": "conv", "channels": [8, 8, 8]}, (1, 28, 28), (4,))
    with pytest.raises(NetworkError, match="one side must be an image"):
        build_network({"kind": "conv"}, (4,), (5,))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"hidden": [4]}, "needs a 'kind'"),
        ({"kind": "transformer"}, "unknown network kind 'transformer'"),
        ({"kind": "mlp", "hiden": [4]}, "hiden"),
        ({"kind": "mlp", "activation": "swish"}, "activation"),
        ({"kind": "mlp", "dropout": 1.0}, "dropout"),
        ({"kind": "conv", "hidden": -1}, "hidden"),
    ],
)
def test_invalid_specs_are_errors_naming_the_field(spec, message):
    with pytest.raises(ValueError, match=message):
        validate_network_spec(spec)


def test_validation_fills_in_defaults():
    assert validate_network_spec({"kind": "mlp"}) == {
        "kind": "mlp",
        "hidden": [256, 256],
        "activation": "relu",
        "dropout": 0.0,
        "layer_norm": False,
    }


def test_kernel_3_convolutions_halve_any_size_as_the_polymnist_networks():
    """MultiVae's EncoderConvMMNIST/DecoderConvMMNIST (latent 10): 3x3 stride-2 convolutions
    28 -> 14 -> 7 -> 4 and back; its encoder's two bias-free heads of 10 are our one head of 20
    with biases (20 parameters more); the decoders are the same network."""
    spec = {"kind": "conv", "channels": [32, 64, 128], "kernel_size": 3}
    encoder = build_network({**spec, "hidden": 10}, (3, 28, 28), (20,))
    decoder = build_network({**spec, "hidden": 0}, (10,), (3, 28, 28))
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert (
        count(encoder) == 113_938 + 20
    )  # MultiVae's counts (bench/compare/reference_architectures.py)
    assert count(decoder) == 115_651
    assert encoder(torch.rand(2, 3, 28, 28)).shape == (2, 20)
    assert decoder(torch.rand(2, 10)).shape == (2, 3, 28, 28)
    odd = build_network(
        {"kind": "conv", "channels": [4, 4], "kernel_size": 3, "hidden": 0}, (5,), (1, 30, 18)
    )
    assert odd(torch.rand(1, 5)).shape == (1, 1, 30, 18)
