"""Networks of your own, without pickle: an `nn.Module` class registered under a name.

    @register_network("lab.unet")
    class UNet(nn.Module):
        def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], depth: int = 4):
            ...

A config then names it like a built-in kind, `{"kind": "lab.unet", "depth": 5}`, with its
arguments checked against the constructor's annotations (JSON values only). Validation records
the package that provides the class (`"package": "my-lab-nets"`), so a saved model — config as
JSON, weights as safetensors — says what to install where the class is missing. Installed
packages register without an import by the user through the entry-point group
`mmvae_service.networks` (`lab.unet = "my_lab_nets.unet:UNet"` in their pyproject); those are
looked up only when a config names a kind nobody registered yet.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from importlib import metadata
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model, field_validator
from torch import nn

ENTRY_POINT_GROUP = "mmvae_service.networks"
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_SHAPES = ("in_shape", "out_shape")


class PluginParams(BaseModel):
    """What every user network's spec holds besides the constructor's arguments."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    package: str | None = None

    @field_validator("*", mode="after")
    @classmethod
    def _json_only(cls, value: Any, info: Any) -> Any:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{info.field_name}: only JSON values are allowed ({error})") from None
        return value


def package_of(module: str) -> str | None:
    """The installed distribution that provides `module`, else its top-level package name (None
    for a script's own classes: there is nothing to install)."""
    top = module.split(".")[0]
    if top == "__main__":
        return None
    distributions = metadata.packages_distributions().get(top)
    return distributions[0] if distributions else top


def params_model(name: str, cls: type[nn.Module]) -> type[PluginParams]:
    """A pydantic model of `cls(in_shape, out_shape, **arguments)`'s arguments, from its
    signature: annotations are the types, defaults the defaults."""
    fields: dict[str, Any] = {}
    try:  # string annotations (`from __future__ import annotations`) made real types
        signature = inspect.signature(cls.__init__, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        signature = inspect.signature(cls.__init__)
    parameters = list(signature.parameters.values())[1:]  # drop self
    if [p.name for p in parameters[:2]] != list(_SHAPES):
        raise TypeError(
            f"register_network({name!r}): {cls.__name__}.__init__ must take "
            f"(in_shape, out_shape, ...) first, got {[p.name for p in parameters]}"
        )
    for p in parameters[2:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"register_network({name!r}): name every argument (no *args/**kwargs)")
        if p.name in PluginParams.model_fields:
            raise TypeError(f"register_network({name!r}): argument {p.name!r} is reserved")
        annotation = Any if p.annotation is p.empty else p.annotation
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (annotation, default)
    return create_model(f"{cls.__name__}Params", __base__=PluginParams, **fields)


Registry = dict[str, tuple[type[BaseModel], Callable[..., nn.Module]]]


def plugin_entry(
    name: str, cls: type[nn.Module], package: str | None
) -> tuple[type[BaseModel], Any]:
    """The (parameters, builder) registry entry of a user class."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register_network({name!r}): {cls!r} is not an nn.Module class")
    params = params_model(name, cls)

    def build(spec: BaseModel, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> nn.Module:
        arguments = spec.model_dump(exclude=set(PluginParams.model_fields))
        return cls(tuple(in_shape), tuple(out_shape), **arguments)

    build.package = package  # type: ignore[attr-defined]
    build.network_class = cls  # type: ignore[attr-defined]
    return params, build


def check_name(name: str, registry: Registry, cls: type) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 64:
        raise ValueError(
            f"register_network: name {name!r} must be lower-case words joined by '.' "
            "(letters, digits, '_'; at most 64 characters), e.g. 'lab.unet'"
        )
    if name in registry:
        owner = getattr(registry[name][1], "network_class", None)
        if owner is not cls and not _same_class(owner, cls):
            raise ValueError(
                f"register_network: {name!r} is already taken by {owner or 'a built-in'}"
            )


def _same_class(a: type | None, b: type) -> bool:
    """Re-running a module (a notebook cell, a reload) registers an equal class again."""
    return a is not None and (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def entry_point(name: str) -> metadata.EntryPoint | None:
    """The installed package's entry point registering `name`, if any."""
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep
    return None


def missing_error(name: str, spec: dict[str, Any], known: list[str]) -> str:
    """What to say when no one registers `name`: the package to install where known."""
    package = spec.get("package")
    if package:
        return (
            f"unknown network kind {name!r}: it comes from the package {package!r}, which is not "
            f"installed here (pip install {package}, or import the module that registers it)"
        )
    return (
        f"unknown network kind {name!r}; known: {known}. A network of your own is registered "
        f"with @core.nn.register_network or an entry point in group {ENTRY_POINT_GROUP!r}"
    )
