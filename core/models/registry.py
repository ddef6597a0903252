"""`model_type` -> model class. Every `MultimodalVAE` subclass that sets `model_type` registers
itself here; importing `core.models` (which any import of this module does first) registers the
built-in models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.models.base import MultimodalVAE

MODEL_REGISTRY: dict[str, type[MultimodalVAE]] = {}


class UnknownModelError(ValueError):
    pass


def register(cls: type[MultimodalVAE]) -> None:
    """Make `cls` buildable by its `model_type` (called by `MultimodalVAE.__init_subclass__`)."""
    MODEL_REGISTRY[cls.model_type] = cls


def get_model_class(model_type: str) -> type[MultimodalVAE]:
    try:
        return MODEL_REGISTRY[model_type]
    except KeyError:
        raise UnknownModelError(
            f"model_type: unknown model {model_type!r}; known: {sorted(MODEL_REGISTRY)}"
        ) from None


def available_models() -> list[str]:
    return sorted(MODEL_REGISTRY)


def build_model(config: dict[str, Any]) -> MultimodalVAE:
    """Build a model from a config dict that names its `model_type`."""
    if "model_type" not in config:
        raise UnknownModelError("model_type: required")
    cls = get_model_class(config["model_type"])
    return cls(cls.config_class.model_validate(config))
