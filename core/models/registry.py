"""`model_type` -> model class. Importing `core.models` registers every built-in model."""

from __future__ import annotations

from typing import Any

from core.models.base import MODEL_REGISTRY, MultimodalVAE


class UnknownModelError(ValueError):
    pass


def get_model_class(model_type: str) -> type[MultimodalVAE]:
    import core.models  # noqa: F401  (registers the built-in models)

    try:
        return MODEL_REGISTRY[model_type]
    except KeyError:
        raise UnknownModelError(
            f"model_type: unknown model {model_type!r}; known: {sorted(MODEL_REGISTRY)}"
        ) from None


def available_models() -> list[str]:
    import core.models  # noqa: F401

    return sorted(MODEL_REGISTRY)


def build_model(config: dict[str, Any]) -> MultimodalVAE:
    """Build a model from a config dict that names its `model_type`."""
    if "model_type" not in config:
        raise UnknownModelError("model_type: required")
    cls = get_model_class(config["model_type"])
    return cls(cls.config_class.model_validate(config))
