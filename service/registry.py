"""The models being served: name → model + where it came from. Thread-safe; a reload builds the
new model completely (loaded and warmed) before swapping it in, so a failed reload leaves the old
model serving."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from core.models.base import MultimodalVAE
from core.models.config import ModalitySpec
from service.errors import ApiError, not_found


@dataclass
class LoadedModel:
    """A served model and its provenance (`source`: kind, store name/version, Hub repo/sha)."""

    name: str
    model: MultimodalVAE
    source: dict[str, Any]
    loaded_at: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    warmed: bool = False

    @cached_property
    def specs(self) -> dict[str, ModalitySpec]:
        """The model's modalities by name (built once: looked up on every request)."""
        return {m.name: m for m in self.model.config.modalities}

    @cached_property
    def parameters(self) -> int:
        """The model's parameter count: the size factor of a request's work (service/costs.py)."""
        return sum(p.numel() for p in self.model.parameters())

    @property
    def samplers(self) -> list[str]:
        """Where unconditional samples can come from: the prior, unless the model has none (an
        autoencoder) or it needs inputs (a conditional VAE); and the fitted sampler."""
        model, fitted = self.model, self.model.sampler
        names = ["prior"] if model.sampling_error(None) is None else []
        if fitted is not None and fitted.name != "prior" and model.sampling_error(fitted) is None:
            names.append(fitted.name)
        return names


class ModelRegistry:
    """Loaded models by serving name, at most `max_models`."""

    def __init__(self, max_models: int) -> None:
        self.max_models = max_models
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> LoadedModel:
        with self._lock:
            entry = self._models.get(name)
        if entry is None:
            raise not_found("model", name, "name")
        return entry

    def list(self) -> list[LoadedModel]:
        with self._lock:
            return [self._models[n] for n in sorted(self._models)]

    def put(self, entry: LoadedModel) -> LoadedModel | None:
        """Serve `entry` under its name; returns the model it replaced, if any."""
        with self._lock:
            if entry.name not in self._models and len(self._models) >= self.max_models:
                raise ApiError(
                    409,
                    "too_many_models",
                    f"{len(self._models)} models are loaded, the limit (setting "
                    "MMVAE_MAX_MODELS); unload one first",
                    "name",
                )
            old = self._models.get(entry.name)
            self._models[entry.name] = entry
            return old

    def remove(self, name: str) -> LoadedModel:
        with self._lock:
            entry = self._models.pop(name, None)
        if entry is None:
            raise not_found("model", name, "name")
        return entry
