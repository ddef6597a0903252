"""Fusion of unimodal experts into a joint posterior: PoE, per-sample MoE, all-subsets MoPoE.

Experts come stacked as loc/scale [M, B, D] with an availability mask [M, B] (True = this
sample has this modality). Every model uses these functions; none re-implements them.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from core.models.distributions import Diagonal, Family, Mixture

_MIN_PRECISION = 1e-8


def product_of_experts(
    loc: Tensor,
    scale: Tensor,
    mask: Tensor,
    prior_expert: bool = True,
    weights: Tensor | None = None,
) -> Diagonal:
    """Gaussian PoE of the available experts (and the N(0, I) prior expert when asked).

    precision = Σ_m w_m mask_m / σ_m² (+ 1), mean = Σ_m w_m mask_m μ_m / σ_m² / precision, with
    w = 1, or `weights` [M, D] (the generalised PoE of Cao & Fleet 2014: per-modality,
    per-dimension trust). `mask` is [M, B] or [T, M, B] (T products at once -> parameters
    [T, B, D]). A sample with no available expert and no prior expert is an error upstream;
    here its precision is floored.
    """
    precision = mask.unsqueeze(-1).to(loc.dtype) / scale.pow(2)  # [..., M, B, D]
    if weights is not None:
        precision = precision * weights.unsqueeze(-2)  # [M, 1, D]
    total = precision.sum(-3)
    if prior_expert:
        total = total + 1.0
    total = total.clamp_min(_MIN_PRECISION)
    joint_loc = (precision * loc).sum(-3) / total
    return Diagonal(joint_loc, total.rsqrt(), "normal")


def mean_of_experts(loc: Tensor, scale: Tensor, mask: Tensor) -> Diagonal:
    """The average of the available Gaussian experts' means and of their log-variances
    (multi-view-AE's `MeanRepresentation`), per sample; `mask` [M, B] or [T, M, B] (T averages
    at once -> parameters [T, B, D])."""
    weight = mask.unsqueeze(-1).to(loc.dtype)  # [..., M, B, 1]
    count = weight.sum(-3).clamp_min(1.0)
    mean = (weight * loc).sum(-3) / count
    log_var = (weight * 2 * scale.log()).sum(-3) / count
    return Diagonal(mean, torch.exp(0.5 * log_var), "normal")


def subsets_matrix(n_modalities: int, subsets: list[list[int]] | None = None) -> Tensor:
    """Bool [S, M]: row s marks the modalities of subset s (default: all 2^M - 1 non-empty ones,
    ordered by size then lexicographically)."""
    if subsets is None:
        subsets = [
            list(c)
            for k in range(1, n_modalities + 1)
            for c in itertools.combinations(range(n_modalities), k)
        ]
    out = torch.zeros(len(subsets), n_modalities, dtype=torch.bool)
    for s, members in enumerate(subsets):
        out[s, members] = True
    return out


def subset_products(
    loc: Tensor, scale: Tensor, mask: Tensor, subsets: Tensor, prior_on: Tensor | None = None
) -> tuple[Diagonal, Tensor]:
    """PoE of every subset at once (one batched contraction, no Python loop over subsets).

    Returns the subset posteriors with parameters [S, B, D] and `valid` [S, B]: a subset is valid
    for a sample when all its modalities are available there. `prior_on` [S] adds the prior expert
    to the marked subsets.
    """
    sub = subsets.to(loc.dtype)  # [S, M]
    precision = 1.0 / scale.pow(2)  # [M, B, D]
    total = torch.einsum("sm,mbd->sbd", sub, precision)
    weighted = torch.einsum("sm,mbd->sbd", sub, precision * loc)
    if prior_on is not None:
        total = total + prior_on.to(loc.dtype).view(-1, 1, 1)
    joint = Diagonal(weighted / total, total.rsqrt(), "normal")
    # valid[s, b] = no member of s is missing in b
    missing = (~mask).to(loc.dtype)  # [M, B]
    valid = (sub @ missing) == 0
    return joint, valid


def mixture_of_experts(
    loc: Tensor, scale: Tensor, mask: Tensor, family: Family, prior_expert: bool = False
) -> Mixture:
    """Uniform mixture over each sample's available experts (components [M, B, D]), and the
    prior (location 0, scale 1) as one more component of every sample's when asked."""
    if prior_expert:
        loc = torch.cat([loc, torch.zeros_like(loc[:1])])
        scale = torch.cat([scale, torch.ones_like(scale[:1])])
        mask = torch.cat([mask, torch.ones_like(mask[:1])])
    log_w = torch.where(mask.transpose(0, 1), 0.0, float("-inf")).to(loc.dtype)
    log_w = log_w - torch.logsumexp(log_w, dim=-1, keepdim=True)
    return Mixture(Diagonal(loc, scale, family), log_w)


def mixture_of_subsets(joint: Diagonal, valid: Tensor) -> Mixture:
    """Uniform mixture over each sample's valid subset posteriors (MoPoE)."""
    log_w = torch.where(valid.transpose(0, 1), 0.0, float("-inf")).to(joint.loc.dtype)
    log_w = log_w - torch.logsumexp(log_w, dim=-1, keepdim=True)
    return Mixture(joint, log_w)
