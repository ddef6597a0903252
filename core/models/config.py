"""Typed model configuration: modalities, networks, and the base `ModelConfig` (extra="forbid")."""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.data.kinds import modality_kind
from core.nn.likelihoods import LikelihoodSpec
from core.nn.networks import validate_network_spec

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
NetworkSpec = dict[str, Any]


def _default_network() -> NetworkSpec:
    return {"kind": "mlp", "hidden": [256, 256]}


class ModalitySpec(BaseModel):
    """One modality: its per-sample shape, likelihood, and optional per-modality networks.

    `kind` tells clients how to encode it: images accept PNG, categorical modalities accept
    class indices (stored one-hot), vectors accept numbers. Inferred when left out.
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    shape: list[int] = Field(min_length=1, max_length=3)
    likelihood: LikelihoodSpec = Field(default_factory=LikelihoodSpec)
    kind: Literal["vector", "image", "categorical"] | None = None
    encoder: NetworkSpec | None = None
    decoder: NetworkSpec | None = None
    weight: float = Field(1.0, gt=0, description="likelihood rescaling factor λ_m")
    value_range: tuple[float, float] | None = Field(
        None, description="[low, high] of the data; generated means are clamped to it"
    )
    input_transforms: list[dict[str, Any]] | None = Field(
        None,
        description="`scale`/`normalize` transforms (core/data/transforms.py) from data units "
        "(what the service decodes: PNG pixels in [0, 1], numbers as given) to the model's "
        "inputs, as the training data's were; the service applies them to inputs and undoes "
        "them on outputs",
    )
    vocabulary: list[str] | None = Field(
        None,
        description="words of a text modality (categorical [L, V] token sequences, V words, "
        "core/data/text.py): the service reads and writes it as strings",
    )

    @field_validator("value_range")
    @classmethod
    def _ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError(f"value_range: low must be below high, got {list(v)}")
        return v

    @field_validator("shape")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(d <= 0 for d in v):
            raise ValueError(f"every dimension must be positive, got {v}")
        return v

    @field_validator("encoder", "decoder")
    @classmethod
    def _network(cls, v: NetworkSpec | None) -> NetworkSpec | None:
        return None if v is None else validate_network_spec(v)

    @model_validator(mode="after")
    def _infer_kind(self) -> ModalitySpec:
        self.kind = modality_kind(self.shape, self.likelihood.kind, self.kind)
        if self.kind == "image" and (len(self.shape) != 3 or self.shape[0] not in (1, 3)):
            raise ValueError(f"{self.name}: an image needs shape [1 or 3, H, W], got {self.shape}")
        if self.input_transforms:
            from core.data import transforms

            parsed = transforms.parse_transforms(self.input_transforms)
            odd = [t.kind for t in parsed if t.kind not in transforms.INVERTIBLE]
            if odd or self.kind == "categorical":
                raise ValueError(
                    f"{self.name}: input_transforms may only {transforms.INVERTIBLE} a "
                    f"non-categorical modality, got {odd or self.kind}"
                )
            transforms.output_shape(parsed, tuple(self.shape))  # e.g. normalize's channels
            self.input_transforms = transforms.dump(parsed)
        if self.vocabulary is not None and (
            self.kind != "categorical"
            or len(self.shape) != 2
            or self.shape[1] != len(self.vocabulary)
        ):
            raise ValueError(
                f"{self.name}: a vocabulary belongs to a categorical [L, V] token sequence with V "
                f"= its {len(self.vocabulary)} words, got {self.kind} {self.shape}"
            )
        return self

    @functools.cached_property
    def parsed_input_transforms(self) -> list:
        """`input_transforms` as transform objects, parsed once per spec (the service applies
        them to every request's inputs and outputs)."""
        from core.data import transforms

        return transforms.parse_transforms(self.input_transforms)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class ModelConfig(BaseModel):
    """Options every model shares. Subclasses add their own; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model_type: str
    modalities: list[ModalitySpec] = Field(min_length=1)
    latent_dim: int = Field(16, gt=0, le=4096)
    encoder: NetworkSpec = Field(default_factory=_default_network)
    decoder: NetworkSpec = Field(default_factory=_default_network)
    rescale_likelihoods: bool = Field(
        False, description="multiply each modality's log-likelihood by max_dim / dim_m"
    )
    beta: float = Field(1.0, ge=0, description="weight of the KL / regularisation term")

    @field_validator("encoder", "decoder")
    @classmethod
    def _network(cls, v: NetworkSpec) -> NetworkSpec:
        return validate_network_spec(v)

    @field_validator("modalities")
    @classmethod
    def _unique(cls, v: list[ModalitySpec]) -> list[ModalitySpec]:
        names = [m.name for m in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate modality names: {sorted(dup)}")
        return v

    def check_modality_weights(self, *fields: str) -> None:
        """Each of `fields` is None or non-negative weights keyed by this config's modalities."""
        names = set(self.modality_names)
        for field in fields:
            given = getattr(self, field) or {}
            if not set(given) <= names or any(v < 0 for v in given.values()):
                raise ValueError(f"{field}: non-negative weights for modalities of {sorted(names)}")

    def check_modality_sizes(self, field: str) -> None:
        """`field` is one positive size, or a dict with one positive size per modality."""
        names, sizes = set(self.modality_names), getattr(self, field)
        if isinstance(sizes, dict) and set(sizes) != names:
            raise ValueError(f"{field}: one size for each of {sorted(names)}")
        if any(v <= 0 for v in (sizes.values() if isinstance(sizes, dict) else [sizes])):
            raise ValueError(f"{field}: sizes must be positive")

    def modality(self, name: str) -> ModalitySpec:
        for m in self.modalities:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def modality_names(self) -> list[str]:
        return [m.name for m in self.modalities]

    def rec_weights(self) -> list[float]:
        """λ_m: the per-modality weight, times max_dim / dim_m when rescaling is on."""
        biggest = max(m.size for m in self.modalities)
        return [
            m.weight * (biggest / m.size if self.rescale_likelihoods else 1.0)
            for m in self.modalities
        ]
