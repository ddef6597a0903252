"""Importance-sampled likelihoods: the joint NLL and conditional log p(x_targets | x_given).

Both are vectorised over samples and the K importance draws and chunked over K to bound memory;
the log-sum-exp over K is always taken per sample, never across chunks of different samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from core.data.batch import Batch
from core.data.dataset import MultimodalDataset
from core.metrics.common import batches, device_of, observed_all
from core.models.base import MultimodalVAE

Estimator = Literal["ratio", "posterior"]


def _summary(values: Tensor, prefix: str) -> dict[str, float]:
    """Mean and standard error of the mean of a per-sample figure."""
    n = values.numel()
    sem = float(values.std() / math.sqrt(n)) if n > 1 else 0.0
    return {prefix: float(values.mean()), f"{prefix}_sem": sem}


@torch.no_grad()
def joint_nll(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    k: int = 1000,
    batch_size: int = 64,
    max_batch: int = 65536,
    generator: torch.Generator | None = None,
) -> dict[str, float | int]:
    """-log p(x_observed) averaged over the dataset, by `model.log_likelihood` with K draws.

    The proposal is the model's joint posterior; for a mixture posterior each draw picks its
    component from its own sample's weights and is weighted by the mixture density (unbiased).
    Partially observed samples contribute the marginal likelihood of what they observe.
    """
    model.eval()
    device = device_of(model)
    lls = [
        model.log_likelihood(b, k=k, max_batch=max_batch, generator=generator).cpu()
        for b in batches(dataset, batch_size, device)
    ]
    ll = torch.cat(lls).double()
    return {**_summary(-ll, "joint_nll"), "k": k, "n": ll.numel()}


def _restrict(batch: Batch, keep: set[str]) -> Batch:
    """The batch with every modality outside `keep` marked missing."""
    masks = {m: k & (m in keep) for m, k in batch.masks.items()}
    return Batch(batch.data, masks, batch.labels)


@torch.no_grad()
def conditional_log_prob(
    model: MultimodalVAE,
    batch: Batch,
    given: Sequence[str],
    targets: Sequence[str],
    k: int = 1000,
    estimator: Estimator = "ratio",
    max_batch: int = 65536,
    generator: torch.Generator | None = None,
) -> Tensor:
    """log p(x_targets | x_given) [B] for samples that observe every given and target modality.

    - "ratio" (default, consistent for any proposal): log p̂(x_t, x_g) - log p̂(x_g), two
      importance-sampled estimates with the model's posterior of each modality set as proposal.
    - "posterior" (MultiVae's estimator): logmeanexp_k log p(x_t | z_k), z_k ~ q(z | x_g); it
      equals log p(x_t | x_g) only insofar as q(z | x_g) is the true posterior p(z | x_g).
    """
    if model.likelihood_error is not None:
        raise ValueError(f"log-likelihood: {model.likelihood_error}")
    given, targets = list(given), list(targets)
    if set(given) & set(targets):
        raise ValueError(f"targets: {sorted(set(given) & set(targets))} are also given")
    if estimator == "ratio":
        both = model.log_likelihood(
            _restrict(batch, set(given) | set(targets)), k, max_batch, generator
        )
        cond = model.log_likelihood(_restrict(batch, set(given)), k, max_batch, generator)
        return both - cond
    if estimator != "posterior":
        raise ValueError(f"estimator: expected 'ratio' or 'posterior', got {estimator!r}")
    batch = model.clean(batch)
    chunk = max(1, max_batch // batch.size)
    log_w = []
    for start in range(0, k, chunk):
        kc = min(chunk, k - start)
        latent = model.encode(batch, given, n_samples=kc, generator=generator)
        log_w.append(model.log_likelihood_of_draws(latent, batch, targets, generator))
    return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)


@torch.no_grad()
def conditional_log_likelihood(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    given: Sequence[str],
    targets: Sequence[str],
    k: int = 1000,
    estimator: Estimator = "ratio",
    batch_size: int = 64,
    max_batch: int = 65536,
    generator: torch.Generator | None = None,
) -> dict[str, float | int | str | list[str]]:
    """Mean log p(x_targets | x_given) over the samples observing all of `given` and `targets`."""
    model.eval()
    select = observed_all(dataset, [*given, *targets])
    out: dict = {"given": list(given), "targets": list(targets), "estimator": estimator, "k": k}
    if not len(select):
        return {**out, "n": 0, "skipped": "no sample observes every given and target modality"}
    device = device_of(model)
    lls = [
        conditional_log_prob(model, b, given, targets, k, estimator, max_batch, generator).cpu()
        for b in batches(dataset, batch_size, device, select)
    ]
    ll = torch.cat(lls).double()
    return {**out, **_summary(ll, "log_likelihood"), "nll": float(-ll.mean()), "n": ll.numel()}
