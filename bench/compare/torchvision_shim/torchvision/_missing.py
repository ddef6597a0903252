"""Placeholders for the torchvision names MultiVae imports at import time.

MultiVae's models import its dataset, metric and trainer modules, which import torchvision;
PyPI's torchvision for torch 2.13 is linked to CUDA libraries and does not import next to the
CPU torch of this project's machines. A training benchmark uses none of these names, so the
reference environment of `bench.compare` installs this package instead: importing any name
works, and so does building one (MultiVae builds `ToTensor()` as a default argument); calling
one or reading its attributes raises an error that says why.
"""

from __future__ import annotations

from typing import Any


class _Placeholder(type):
    """Metaclass: attributes of placeholders are placeholders too (`models.inception.X`)."""

    def __getattr__(cls, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return placeholder(f"{cls.__module__}.{cls.__name__}", name)


def placeholder(module: str, name: str) -> type:
    """A class standing for `module.name`: it can be built and subclassed, not used."""

    def accept(self: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"{module}.{name} is a placeholder in bench.compare's reference environment "
            "(the real torchvision does not import with a CPU torch 2.13); benchmarks never use it"
        )

    methods = {"__init__": accept, "__call__": refuse, "__getattr__": refuse, "__module__": module}
    return _Placeholder(name, (), methods)
