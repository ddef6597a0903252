"""Decoder likelihoods p(x_m | z): normal, laplace, bernoulli, categorical, built from a spec.

A decoder network outputs one tensor of the modality's shape (mean, location or logits); the
likelihood turns it into a distribution. Learned scales live here as parameters.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.distributions import (
    Bernoulli,
    Distribution,
    Independent,
    Laplace,
    Normal,
    OneHotCategorical,
)


class LikelihoodSpec(BaseModel):
    """`{"kind": "normal", "scale": 1.0, "learn_scale": false}`; discrete kinds ignore scale."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["normal", "laplace", "bernoulli", "categorical"] = "normal"
    scale: float = Field(1.0, gt=0, description="fixed (or initial, if learned) scale")
    learn_scale: bool = Field(False, description="learn one scale per dimension")


class Likelihood(nn.Module):
    """Base class: `log_prob(out, x)` sums over the modality's event dimensions."""

    kind: ClassVar[str]
    registry: ClassVar[dict[str, type[Likelihood]]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Likelihood.registry[cls.kind] = cls

    def __init__(self, shape: tuple[int, ...], spec: LikelihoodSpec) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.event_dims = len(self.shape)

    def _sum_event(self, t: Tensor) -> Tensor:
        return t.flatten(-self.event_dims).sum(-1)

    def log_prob(self, out: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError

    def distribution(self, out: Tensor) -> Distribution:
        raise NotImplementedError

    def mean(self, out: Tensor) -> Tensor:
        return self.distribution(out).mean


class _LocationScale(Likelihood):
    """Normal or Laplace with a fixed scale or a learned per-dimension scale."""

    def __init__(self, shape: tuple[int, ...], spec: LikelihoodSpec) -> None:
        super().__init__(shape, spec)
        log_scale = torch.full(self.shape, math.log(spec.scale))
        if spec.learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def mean(self, out: Tensor) -> Tensor:
        return out


class NormalLikelihood(_LocationScale):
    kind = "normal"

    def log_prob(self, out: Tensor, x: Tensor) -> Tensor:
        lp = -0.5 * ((x - out) * torch.exp(-self.log_scale)) ** 2 - self.log_scale
        return self._sum_event(lp - 0.5 * math.log(2 * math.pi))

    def distribution(self, out: Tensor) -> Distribution:
        scale = self.log_scale.exp().expand_as(out)
        return Independent(Normal(out, scale, validate_args=False), self.event_dims)


class LaplaceLikelihood(_LocationScale):
    kind = "laplace"

    def log_prob(self, out: Tensor, x: Tensor) -> Tensor:
        lp = -(x - out).abs() * torch.exp(-self.log_scale) - self.log_scale - math.log(2)
        return self._sum_event(lp)

    def distribution(self, out: Tensor) -> Distribution:
        scale = self.log_scale.exp().expand_as(out)
        return Independent(Laplace(out, scale, validate_args=False), self.event_dims)


class BernoulliLikelihood(Likelihood):
    """Logits out; accepts x in [0, 1] (continuous targets give the usual cross-entropy)."""

    kind = "bernoulli"

    def log_prob(self, out: Tensor, x: Tensor) -> Tensor:
        x = x.expand_as(out)
        return -self._sum_event(F.binary_cross_entropy_with_logits(out, x, reduction="none"))

    def distribution(self, out: Tensor) -> Distribution:
        return Independent(Bernoulli(logits=out, validate_args=False), self.event_dims)

    def mean(self, out: Tensor) -> Tensor:
        return torch.sigmoid(out)


class CategoricalLikelihood(Likelihood):
    """Logits over the last dimension; x is one-hot (or class probabilities)."""

    kind = "categorical"

    def log_prob(self, out: Tensor, x: Tensor) -> Tensor:
        lp = (x * F.log_softmax(out, dim=-1)).sum(-1)
        return lp.flatten(-(self.event_dims - 1)).sum(-1) if self.event_dims > 1 else lp

    def distribution(self, out: Tensor) -> Distribution:
        return Independent(OneHotCategorical(logits=out, validate_args=False), self.event_dims - 1)

    def mean(self, out: Tensor) -> Tensor:
        return torch.softmax(out, dim=-1)


def build_likelihood(spec: LikelihoodSpec, shape: tuple[int, ...]) -> Likelihood:
    return Likelihood.registry[spec.kind](shape, spec)
