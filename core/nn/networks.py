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
    hidden: int = Field(256, gt=0, description="width of the dense layer next to the latent")
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


def _conv_geometry(params: ConvParams, image: tuple[int, ...]) -> tuple[int, int]:
    if len(image) != 3:
        raise NetworkError(f"conv: needs an image shape [C, H, W], got {list(image)}")
    _, h, w = image
    if params.channels is None:
        params.channels = _default_channels(h, w)
    factor = 2 ** len(params.channels)
    if h % factor or w % factor:
        raise NetworkError(
            f"conv: image {h}x{w} must be divisible by 2^{len(params.channels)} "
            f"(one halving per channel entry); use fewer channels"
        )
    return h // factor, w // factor


def _conv(params: ConvParams, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> nn.Module:
    act = ACTIVATIONS[params.activation]
    if len(in_shape) == 3:  # image -> vector (encoder)
        fh, fw = _conv_geometry(params, in_shape)
        layers: list[nn.Module] = []
        c = in_shape[0]
        for ch in params.channels:
            layers += [nn.Conv2d(c, ch, 4, stride=2, padding=1), act()]
            c = ch
        layers += [nn.Flatten(), nn.Linear(c * fh * fw, params.hidden), act()]
        layers += [nn.Linear(params.hidden, math.prod(out_shape)), Reshape(out_shape)]
        return nn.Sequential(*layers)
    if len(out_shape) == 3:  # vector -> image (decoder)
        fh, fw = _conv_geometry(params, out_shape)
        chans = list(reversed(params.channels))
        layers = [
            nn.Flatten(),
            nn.Linear(math.prod(in_shape), params.hidden),
            act(),
            nn.Linear(params.hidden, chans[0] * fh * fw),
            act(),
            Reshape((chans[0], fh, fw)),
        ]
        for c_in, c_out in zip(chans, [*chans[1:], out_shape[0]], strict=True):
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
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
    params_cls, builder = _resolve(spec)
    package = getattr(builder, "package", None)
    return params_cls.model_validate(
        {**spec, **({"package": package} if package else {})}
    ).model_dump()


def build_network(
    spec: dict[str, Any], in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> nn.Module:
    params_cls, builder = _resolve(spec)
    return builder(
        params_cls.model_validate(validate_network_spec(spec)), tuple(in_shape), tuple(out_shape)
    )
