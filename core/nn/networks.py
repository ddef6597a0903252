"""Encoder/decoder networks declared in configs and built from a registry.

A spec is a dict such as `{"kind": "mlp", "hidden": [512, 512]}`. `build_network(spec, in_shape,
out_shape)` returns a module mapping [N, *in_shape] to [N, *out_shape]; encoders and decoders are
the same builders used in opposite directions, so any registered kind serves both roles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from core.nn import plugins
from core.nn.layers import ACTIVATIONS, Activation, NetworkError, Reshape
from core.nn.resnet import ResNetParams
from core.nn.resnet import network as resnet_network
from core.nn.sequence import Conv1dParams
from core.nn.sequence import network as sequence_network
from core.nn.text import TextCNNParams
from core.nn.text import network as text_network


class MLPParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["mlp"] = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)
    layer_norm: bool = False


class ConvParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["conv"] = "conv"
    channels: list[int] | None = Field(
        None, description="one stride-2 layer per entry; default: as many as keep maps >= 4x4"
    )
    hidden: int = Field(
        256, ge=0, description="width of the dense layer next to the latent (0: none)"
    )
    kernel_size: Literal[3, 4] = Field(
        4,
        description="4: exact halvings (padding 1); 3: ceil halvings, any size (28 -> 14 -> 7 "
        "-> 4, as MoPoE's and MultiVae's PolyMNIST networks)",
    )
    activation: Activation = "relu"


def _mlp(params: MLPParams, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(in_shape)
    for h in params.hidden:
        layers.append(nn.Linear(width, h))
        if params.layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(ACTIVATIONS[params.activation]())
        if params.dropout:
            layers.append(nn.Dropout(params.dropout))
        width = h
    layers += [nn.Linear(width, math.prod(out_shape)), Reshape(out_shape)]
    return nn.Sequential(*layers)


def _default_channels(h: int, w: int) -> list[int]:
    n = 0
    while n < 4 and h % 2 ** (n + 1) == 0 and w % 2 ** (n + 1) == 0 and h // 2 ** (n + 1) >= 4:
        n += 1
    return [32, 64, 128, 256][: max(n, 1)]


def _conv_sizes(params: ConvParams, image: tuple[int, ...]) -> list[tuple[int, int]]:
    """(H, W) of the image and after each stride-2 layer."""
    if len(image) != 3:
        raise NetworkError(f"conv: needs an image shape [C, H, W], got {list(image)}")
    _, h, w = image
    if params.channels is None:
        params.channels = _default_channels(h, w)
    if params.kernel_size == 4:
        factor = 2 ** len(params.channels)
        if h % factor or w % factor:
            raise NetworkError(
                f"conv: image {h}x{w} must be divisible by 2^{len(params.channels)} "
                f"(one halving per channel entry); use fewer channels or kernel_size 3"
            )
    sizes = [(h, w)]
    for _ in params.channels:
        sizes.append((-(-sizes[-1][0] // 2), -(-sizes[-1][1] // 2)))
    return sizes


def _dense(
    params: ConvParams, width: int, out: int, act: Callable[[], nn.Module]
) -> list[nn.Module]:
    """width -> out, through a hidden layer of `params.hidden` unless it is 0."""
    if not params.hidden:
        return [nn.Linear(width, out)]
    return [nn.Linear(width, params.hidden), act(), nn.Linear(params.hidden, out)]


def _conv(params: ConvParams, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> nn.Module:
    act = ACTIVATIONS[params.activation]
    k = params.kernel_size
    if len(in_shape) == 3:  # image -> vector (encoder)
        fh, fw = _conv_sizes(params, in_shape)[-1]
        layers: list[nn.Module] = []
        c = in_shape[0]
        for ch in params.channels:
            layers += [nn.Conv2d(c, ch, k, stride=2, padding=1), act()]
            c = ch
        layers += [nn.Flatten(), *_dense(params, c * fh * fw, math.prod(out_shape), act)]
        return nn.Sequential(*layers, Reshape(out_shape))
    if len(out_shape) == 3:  # vector -> image (decoder)
        sizes = _conv_sizes(params, out_shape)[::-1]
        chans = list(reversed(params.channels))
        (fh, fw), width = sizes[0], chans[0] * sizes[0][0] * sizes[0][1]
        layers = [nn.Flatten(), *_dense(params, math.prod(in_shape), width, act), act()]
        layers.append(Reshape((chans[0], fh, fw)))
        steps = zip(chans, [*chans[1:], out_shape[0]], sizes[:-1], sizes[1:], strict=True)
        for c_in, c_out, (h, w), (th, tw) in steps:
            extra = (th - (2 * h - 1), tw - (2 * w - 1)) if k == 3 else 0  # kernel 3: odd sizes
            layers.append(
                nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=1, output_padding=extra)
            )
            if c_out != out_shape[0]:
                layers.append(act())
        return nn.Sequential(*layers)
    raise NetworkError(
        f"conv: one side must be an image [C, H, W]; got {list(in_shape)} -> {list(out_shape)}"
    )


NETWORKS: dict[str, tuple[type[BaseModel], Callable[..., nn.Module]]] = {
    "mlp": (MLPParams, _mlp),
    "conv": (ConvParams, _conv),
    "resnet": (ResNetParams, resnet_network),
    "conv1d": (Conv1dParams, sequence_network),
    "text_cnn": (TextCNNParams, text_network),
}


def register_network(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make an `nn.Module` taking `(in_shape, out_shape, **arguments)` a network
    kind that configs name (core/nn/plugins.py says how its arguments and package are kept)."""

    def register(cls: type[nn.Module]) -> type[nn.Module]:
        plugins.check_name(name, NETWORKS, cls)
        NETWORKS[name] = plugins.plugin_entry(name, cls, plugins.package_of(cls.__module__))
        return cls

    return register


def _resolve(spec: dict[str, Any]) -> tuple[type[BaseModel], Callable[..., nn.Module]]:
    """The registry entry of a spec's kind, loading an installed package's entry point for a
    kind nobody registered yet."""
    kind = spec["kind"]
    if kind not in NETWORKS and isinstance(kind, str):
        ep = plugins.entry_point(kind)
        if ep is not None:
            cls = ep.load()
            package = ep.dist.name if ep.dist is not None else plugins.package_of(cls.__module__)
            plugins.check_name(kind, NETWORKS, cls)
            NETWORKS[kind] = plugins.plugin_entry(kind, cls, package)
    if kind not in NETWORKS:
        raise NetworkError(plugins.missing_error(kind, spec, sorted(NETWORKS)))
    return NETWORKS[kind]


def on_rows(net: nn.Module, x: Tensor) -> Tensor:
    """A vector network applied to codes [..., F]: every leading dimension as rows."""
    out = net(x.reshape(-1, x.shape[-1]))
    return out.reshape(*x.shape[:-1], out.shape[-1])


def validate_network_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Check a spec against its kind's parameters; returns it with defaults filled in (and, for
    a user network, the package that provides it)."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise NetworkError(f"network spec needs a 'kind' among {sorted(NETWORKS)}, got {spec!r}")
    return _validated(spec).model_dump()


def _validated(spec: dict[str, Any]) -> BaseModel:
    """The spec as its kind's parameters (a user network's providing package recorded)."""
    params_cls, builder = _resolve(spec)
    package = getattr(builder, "package", None)
    return params_cls.model_validate({**spec, **({"package": package} if package else {})})


def build_network(
    spec: dict[str, Any], in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> nn.Module:
    if not isinstance(spec, dict) or "kind" not in spec:
        validate_network_spec(spec)  # raises, naming the known kinds
    return _resolve(spec)[1](_validated(spec), tuple(in_shape), tuple(out_shape))
