"""Placeholder `torchvision.transforms` (see torchvision._missing)."""

from torchvision._missing import placeholder

__version__ = "0.0.0+placeholder"


def __getattr__(name: str) -> type:
    if name.startswith("__"):
        raise AttributeError(name)
    return placeholder("torchvision.transforms", name)
