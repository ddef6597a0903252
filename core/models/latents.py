"""Named latent spaces and the codes a model draws in them.

A model declares its spaces (`shared`, `private/<m>`, `level/<i>`, ...), each with a size and a
prior family; `Latent` carries one code tensor [S, B, D] per space, with the posterior each was
drawn from. Samplers, augmentation, the service and saved configs all work by these names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from core.models.distributions import FAMILIES, Family, Posterior

SHARED = "shared"
SPACE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(/[A-Za-z0-9_]+)?$")


def private_space(modality: str) -> str:
    """The space of a modality's own (private, modality-specific) latent."""
    return f"private/{modality}"


def level_space(level: int) -> str:
    """Level `level` of a hierarchy (0 = the top, nearest the prior)."""
    return f"level/{level}"


@dataclass(frozen=True)
class LatentSpace:
    """One latent space: `dim` dimensions, a prior of `family`. `conditional`: its prior depends
    on other spaces' codes (a hierarchy), so the model draws it, never a fitted sampler."""

    name: str
    dim: int
    family: Family = "normal"
    conditional: bool = False

    def __post_init__(self) -> None:
        if not SPACE_PATTERN.match(self.name):
            raise ValueError(f"latent space: invalid name {self.name!r} (e.g. shared, level/0)")
        if self.dim <= 0:
            raise ValueError(f"latent space {self.name!r}: dim must be positive, got {self.dim}")
        if self.family not in FAMILIES:
            raise ValueError(f"latent space {self.name!r}: family must be one of {FAMILIES}")

    def describe(self) -> dict[str, Any]:
        """JSON form, as saved in config.json and shown by the service."""
        return {"dim": self.dim, "family": self.family, "conditional": self.conditional}


@dataclass
class Latent:
    """Codes by space name, each [S, B, D_space], with the explicit sample dimension S.

    `posteriors[space]`: the distribution `codes[space]` was drawn from (None for draws from a
    prior or sampler). `observed[space]`: bool [B], which samples' codes come from their data
    (False where a modality-specific space was drawn from its prior because the modality is
    missing); absent = every sample. `primary`: the space `z` names, the model's representation.
    `context`: what the decoders read besides codes, [S, B, F] (a conditional model's features of
    its conditioning modalities); not a latent space.
    """

    codes: dict[str, Tensor]
    posteriors: dict[str, Posterior] = field(default_factory=dict)
    observed: dict[str, Tensor] = field(default_factory=dict)
    primary: str = SHARED
    context: dict[str, Tensor] = field(default_factory=dict)

    @property
    def z(self) -> Tensor:
        """The codes of the primary space [S, B, D]."""
        return self.codes[self.primary]

    @property
    def posterior(self) -> Posterior | None:
        """The posterior of the primary space."""
        return self.posteriors.get(self.primary)

    @property
    def n_samples(self) -> int:
        return next(iter(self.codes.values())).shape[0]

    @property
    def batch_size(self) -> int:
        return next(iter(self.codes.values())).shape[1]

    def draws(self, rows: slice) -> Latent:
        """The draws `rows` of the sample dimension: codes and context only (what decoders
        read), for decoding many draws a slice at a time."""
        return Latent(
            {s: c[rows] for s, c in self.codes.items()},
            primary=self.primary,
            context={k: v[rows] for k, v in self.context.items()},
        )
