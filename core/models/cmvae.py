"""CMVAE (Palumbo, Manduchi, Laguna, Chopard & Vogt, ICLR 2024): MMVAE+ whose shared latent has a
mixture-of-Gaussians prior, for clustering.

Prior: p(c) = softmax(learnable logits) over `number_of_clusters`, p(u|c) with learnable means
(initialised uniformly in [-1, 1]) and unit scales (the original code fixes them), in the
posterior family; private codes regularised by a fixed standard p(w_m), beside MMVAE+'s learnable
auxiliary priors r_m for cross-modal reconstruction. The importance weight's prior term is the
explicit expectation over the clusters' posterior q(c|u) = p(c) p(u|c) / Σ_c' p(c') p(u|c'):
    Σ_c q(c|u) [log p(c) + log p(u|c) − log q(c|u)] + log p(w_m),
which equals log p(u) + log p(w_m) (the same value and gradients); the rest of the bound, its
DReG and IWAE estimators and the incomplete-data rule are MMVAE+'s (core/models/mmvae_plus.py).
`predict_clusters` assigns samples to clusters from any subset of their modalities;
`prune_clusters` selects the number of clusters after training as the paper does.

MultiVae 1.0.3's CMVAE computes the same bound (side by side in bench/compare, bench/RESULTS.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from core.data.batch import Batch
from core.models.distributions import Diagonal, Mixture
from core.models.latents import SHARED, Latent
from core.models.mmvae_plus import MMVAEPlus, MMVAEPlusConfig


class CMVAEConfig(MMVAEPlusConfig):
    model_type: str = "cmvae"
    number_of_clusters: int = Field(10, ge=1, le=1000, description="clusters of the prior")

    @model_validator(mode="after")
    def _fixed_shared_prior(self) -> CMVAEConfig:
        if self.learn_shared_prior:
            raise ValueError(
                "learn_shared_prior: CMVAE learns its shared prior as cluster weights and means"
            )
        return self


class CMVAE(MMVAEPlus):
    model_type = "cmvae"
    config_class = CMVAEConfig
    config: CMVAEConfig

    def __init__(self, config: CMVAEConfig | dict) -> None:
        super().__init__(config)
        c, d = self.config.number_of_clusters, self.latent_dim
        self.cluster_logits = nn.Parameter(torch.zeros(c))
        self.cluster_means = nn.Parameter(2 * torch.rand(c, d) - 1)

    def clusters(self) -> Diagonal:
        """p(u|c) for every cluster: parameters [C, 1, D] (unit scales)."""
        means = self.cluster_means.unsqueeze(1)
        return Diagonal(means, torch.ones_like(means), self.posterior_family)

    def prior(self, space: str = SHARED, latent: Latent | None = None) -> Diagonal | Mixture:
        if space == SHARED:
            log_pc = torch.log_softmax(self.cluster_logits, -1).unsqueeze(0)  # [1, C]
            return Mixture(self.clusters(), log_pc)
        return self._private_prior()

    def _private_prior(self) -> Diagonal:
        """p(w_m): fixed, standard, in the posterior family."""
        ones = torch.ones(self.config.modalities_specific_dim, device=self.cluster_means.device)
        return Diagonal(torch.zeros_like(ones), ones, self.posterior_family)

    def log_cluster_joint(self, u: Tensor, logits: Tensor | None = None) -> Tensor:
        """log p(c) + log p(u|c) [C, S, B] for codes u [S, B, D]; p(c) from `logits` when given
        (default: the model's)."""
        logits = self.cluster_logits if logits is None else logits
        log_pc = torch.log_softmax(logits, -1).view(-1, 1, 1)
        return log_pc + self.clusters().log_prob(u.unsqueeze(-3)).movedim(-2, 0)

    def cluster_posterior(self, u: Tensor) -> Tensor:
        """log q(c|u) [C, S, B] for codes u [S, B, D]."""
        log_joint = self.log_cluster_joint(u)
        return log_joint - torch.logsumexp(log_joint, 0, keepdim=True)

    def log_code_prior(self, u: Tensor, w: Tensor) -> Tensor:
        log_joint = self.log_cluster_joint(u)  # [C, K, B]
        log_q = log_joint - torch.logsumexp(log_joint, 0, keepdim=True)
        # a pruned cluster has q = 0 and log_joint = log_q = −inf: it contributes nothing
        terms = log_q.exp() * (log_joint - log_q)
        expectation = torch.where(torch.isfinite(log_q), terms, 0.0).sum(0)
        return expectation + self._private_prior().log_prob(w)

    def cluster_probabilities(self, latent: Latent) -> Tensor:
        return self.cluster_posterior(latent.codes[SHARED]).exp().mean(1).transpose(0, 1)

    @torch.no_grad()
    def predict_clusters(
        self,
        batch: Batch,
        given: list[str] | None = None,
        n_samples: int = 100,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(cluster [B], probabilities [B, C]): q(c|u) averaged over `n_samples` draws of u from
        the posterior of the `given` modalities (default: all a sample has)."""
        latent = self.encode(batch, given=given, n_samples=n_samples, generator=generator)
        probs = self.cluster_probabilities(latent)
        return probs.argmax(-1), probs

    @torch.no_grad()
    def prune_clusters(
        self, data: Batch | Iterable[Batch], generator: torch.Generator | None = None
    ) -> dict:
        """The paper's post-hoc selection of the number of clusters, on a dataset given as one
        batch or as batches.

        One code u ~ q(u|x_m) per sample and modality it has. Starting from every cluster, score
        the current set, then drop the cluster the fewest samples are assigned to (each sample's
        cluster a vote over its modalities' argmax q(c|u)), down to two clusters; keep the set
        with the lowest score. The score, averaged over a sample's modalities and then over
        samples, is β·H(q(c|u))/log(n clusters) − log p(u)/D: assignments that are confident,
        under a prior that still explains the codes. Dropped clusters get p(c) = 0 (logits −inf),
        so they neither generate nor receive assignments. Returns {"kept": cluster indices,
        "scores": {n clusters: score}}. MultiVae redraws u for every count; one draw for all
        counts compares them on the same codes."""
        codes, offset = [], 0
        for batch in [data] if isinstance(data, Batch) else data:
            for m in self.names:
                rows = batch.masks[m].nonzero().squeeze(-1)
                if len(rows):
                    latent = self.encode(batch.index(rows), given=[m], generator=generator)
                    codes.append((rows + offset, latent.codes[SHARED][0].cpu()))
            offset += batch.size
        return self.select_clusters(codes, offset)

    @torch.no_grad()
    def select_clusters(self, codes: list[tuple[Tensor, Tensor]], n: int) -> dict:
        """`prune_clusters` on given codes: (sample rows, u [rows, D]) per modality."""
        alive = torch.isfinite(self.cluster_logits)
        scores: dict[int, float] = {}
        sets: dict[int, Tensor] = {}
        while int(alive.sum()) >= 2:
            count = int(alive.sum())
            score, votes = torch.zeros(n), torch.zeros(n, len(alive))
            seen = torch.zeros(n)
            for rows, u in codes:
                logits = self.cluster_logits.masked_fill(~alive, float("-inf"))
                log_joint = self.log_cluster_joint(u.unsqueeze(0), logits)[:, 0]  # [C, rows]
                log_p = torch.logsumexp(log_joint, 0)
                log_q = log_joint - log_p
                entropy = -torch.where(alive.unsqueeze(-1), log_q.exp() * log_q, 0.0).sum(0)
                beta = self.config.beta
                score[rows] += beta * entropy / math.log(count) - log_p / self.latent_dim
                seen[rows] += 1
                votes[rows, log_q.argmax(0)] += 1
            scores[count] = (score[seen > 0] / seen[seen > 0]).mean().item()
            sets[count] = alive.clone()
            mass = torch.bincount(votes.argmax(-1)[seen > 0], minlength=len(alive)).float()
            alive[mass.masked_fill(~alive, float("inf")).argmin()] = False
        if scores:
            best = min(scores, key=scores.__getitem__)
            self.cluster_logits[~sets[best]] = float("-inf")
        kept = torch.isfinite(self.cluster_logits).nonzero().squeeze(-1)
        return {"kept": kept.tolist(), "scores": scores}
