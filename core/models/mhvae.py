"""MHVAE (Dorent et al., MICCAI 2023): a multimodal hierarchical VAE with `n_latent` levels.

Levels `level/0` (the top, z_L) to `level/{L−1}` (the bottom, z_1, which every decoder reads).
Each modality's bottom-up pass gives features d_1..d_{L−1} (skips) and an expert over the top.
Top: q(z_L | X_S) = PoE of the prior N(0, I) and the experts of S. Going down, with
h = top_down(z_{l+1}): p(z_l | z_{l+1}) = prior_block(h), and q(z_l | X_S, z_{l+1}) = PoE of that
prior and, for each m in S, posterior_block([h, d_l^m]). Loss for a subset S:
    −Σ_m λ_m log p(x_m | z_1) + β a(t) Σ_l KL(q(z_l | ·) ‖ p(z_l | ·)),
averaged over every non-empty subset S of the modalities, all subsets in one batched pass (the
subsets are an extra batch dimension at every level). Every modality is reconstructed from each
subset's bottom code, as upstream. a(t) = min(1, epoch / `warmup`) is this project's option
(upstream has none, a(t) = 1): without it the model collapses on small data (every KL ~0).

Networks (upstream makes the user write every block): per modality an encoder to `feature_dim`
features (the model's `encoder` spec: `conv` for 28/32/64-pixel images, `mlp` for vectors), then
`block_network` blocks for the bottom-up pass, the top-down pass, the priors and the posteriors;
decoders from the bottom code with the `decoder` spec.

Incomplete data: a sample averages over the non-empty subsets of its observed modalities and
reconstructs the modalities it has.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from core.data.batch import Batch
from core.models.base import Draw, Experts, MultimodalVAE
from core.models.config import ModelConfig, NetworkSpec
from core.models.distributions import Diagonal, kl_divergence
from core.models.fusion import product_of_experts, subsets_matrix
from core.models.latents import Latent, LatentSpace, level_space
from core.models.optimization import LossOutput
from core.nn.networks import build_network, on_rows, validate_network_spec

MAX_MODALITIES = 10  # the loss covers all 2^M − 1 subsets in one pass


def _default_block() -> NetworkSpec:
    return {"kind": "mlp", "hidden": [128]}


class MHVAEConfig(ModelConfig):
    model_type: str = "mhvae"
    n_latent: int = Field(3, ge=2, le=8, description="number of latent levels L")
    level_dims: list[int] | None = Field(
        None,
        description="sizes of the levels below the top, top-down (n_latent − 1 values; default "
        "latent_dim each); the top level has latent_dim",
    )
    feature_dim: int = Field(128, gt=0, le=4096, description="size of the skips and of h")
    warmup: int = Field(
        0, ge=0, description="epochs over which the KL weight rises to β (0: none, as upstream)"
    )
    block_network: NetworkSpec = Field(
        default_factory=_default_block,
        description="architecture of the bottom-up, top-down, prior and posterior blocks",
    )

    @model_validator(mode="after")
    def _levels(self) -> MHVAEConfig:
        below = self.n_latent - 1
        if self.level_dims is not None and (
            len(self.level_dims) != below or any(d <= 0 for d in self.level_dims)
        ):
            raise ValueError(f"level_dims: {below} positive sizes (the levels below the top)")
        if len(self.modalities) > MAX_MODALITIES:
            raise ValueError(
                f"modalities: at most {MAX_MODALITIES} (the loss averages over 2^M − 1 subsets)"
            )
        validate_network_spec(self.block_network)
        return self


class MHVAE(MultimodalVAE):
    model_type = "mhvae"
    config_class = MHVAEConfig
    config: MHVAEConfig

    def __init__(self, config: ModelConfig | dict[str, Any]) -> None:
        super().__init__(config)
        cfg, f, block = self.config, self.config.feature_dim, self.config.block_network
        dims = self.level_dims
        levels = cfg.n_latent
        self.bottom_up = nn.ModuleDict(
            {
                m: nn.ModuleList(
                    [build_network(block, (f,), (f,)) for _ in range(levels - 2)]
                    + [build_network(block, (f,), (2 * dims[0],))]
                )
                for m in self.names
            }
        )
        # block j serves level j + 1 (from level j's code)
        self.top_down = nn.ModuleList(
            [build_network(block, (dims[j],), (f,)) for j in range(levels - 1)]
        )
        self.prior_blocks = nn.ModuleList(
            [build_network(block, (f,), (2 * dims[j + 1],)) for j in range(levels - 1)]
        )
        self.posterior_blocks = nn.ModuleList(
            [build_network(block, (2 * f,), (2 * dims[j + 1],)) for j in range(levels - 1)]
        )
        self.register_buffer("subsets", subsets_matrix(len(self.names)), persistent=False)

    def encoder_output_size(self, modality: str) -> int:
        """The encoder gives the first skip d_1."""
        return self.config.feature_dim

    # ---- spaces -------------------------------------------------------------------------------
    @property
    def level_dims(self) -> list[int]:
        below = self.config.level_dims or [self.latent_dim] * (self.config.n_latent - 1)
        return [self.latent_dim, *below]

    def declare_latent_spaces(self) -> list[LatentSpace]:
        return [
            LatentSpace(level_space(j), d, self.posterior_family, conditional=j > 0)
            for j, d in enumerate(self.level_dims)
        ]

    @property
    def bottom(self) -> str:
        return level_space(self.config.n_latent - 1)

    primary_space = level_space(0)  # the top: the representation a sampler models

    def decoder_inputs(self, modality: str) -> tuple[str, ...]:
        return (level_space(self.config.n_latent - 1),)

    def prior(self, space: str = level_space(0), latent: Latent | None = None) -> Diagonal:
        j = int(space.removeprefix(level_space("")))
        if j == 0:
            return super().prior(space)
        if latent is None:
            raise ValueError(f"{space}: its prior depends on the codes of {level_space(j - 1)}")
        h = on_rows(self.top_down[j - 1], latent.codes[level_space(j - 1)])
        return self.gaussian(on_rows(self.prior_blocks[j - 1], h))

    # ---- encoding -----------------------------------------------------------------------------
    def unimodal_experts(self, batch: Batch) -> Experts:
        """Each modality's skips d_1..d_{L−1} (bottom first) and its expert over the top."""
        features, tops = {}, []
        for m in self.names:
            d = [self.encoders[m](batch.data[m])]
            for block in self.bottom_up[m][:-1]:
                d.append(block(d[-1]))
            tops.append(self.gaussian(self.bottom_up[m][-1](d[-1])))
            features[m] = d
        top = Diagonal(
            torch.stack([q.loc for q in tops]), torch.stack([q.scale for q in tops]),
            self.posterior_family,
        )  # fmt: skip
        return Experts(top, {}, features)

    def _level_posterior(
        self, j: int, parent: Tensor, experts: Experts, mask: Tensor
    ) -> tuple[Diagonal, Diagonal]:
        """(q, p) at level j ≥ 1 for parent codes [T, B, D]: p(z_j | parent) and the PoE of it
        and the given modalities' posterior blocks; `mask` [M, B] or [T, M, B]."""
        h = on_rows(self.top_down[j - 1], parent)  # [T, B, F]
        prior = self.gaussian(on_rows(self.prior_blocks[j - 1], h))
        skip = self.config.n_latent - 1 - j  # level j reads skip d_{L−j}, stored bottom first
        outs = [
            on_rows(
                self.posterior_blocks[j - 1],
                torch.cat([h, experts.features[m][skip].expand(*h.shape[:-1], -1)], -1),
            )
            for m in self.names
        ]
        given = [self.gaussian(o) for o in outs]  # each [T, B, D_j]
        loc = torch.stack([prior.loc, *[q.loc for q in given]], -3)  # [T, 1 + M, B, D]
        scale = torch.stack([prior.scale, *[q.scale for q in given]], -3)
        mask = mask.expand(loc.shape[0], *mask.shape[-2:])
        with_prior = torch.cat([torch.ones_like(mask[:, :1]), mask], 1)  # [T, 1 + M, B]
        q = product_of_experts(loc, scale, with_prior, prior_expert=False)
        return Diagonal(q.loc, q.scale, self.posterior_family), prior

    def infer(self, batch: Batch, mask: Tensor, experts: Experts, draw: Draw) -> Latent:
        top = experts.shared
        q = product_of_experts(top.loc, top.scale, mask, prior_expert=True)
        q = Diagonal(q.loc, q.scale, self.posterior_family)
        latent = Latent({}, {}, {}, self.primary_space)
        space = level_space(0)
        latent.codes[space], latent.posteriors[space] = draw(space, q), q
        for j in range(1, self.config.n_latent):
            parent = latent.codes[level_space(j - 1)]
            q, _ = self._level_posterior(j, parent, experts, mask.unsqueeze(0))
            space = level_space(j)
            latent.codes[space], latent.posteriors[space] = draw(space, q), q
        return latent

    # ---- training -----------------------------------------------------------------------------
    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        subsets = self.subsets  # [K, M]
        given = subsets.unsqueeze(-1) & observed.unsqueeze(0)  # [K, M, B]
        valid = (subsets.unsqueeze(-1) <= observed.unsqueeze(0)).all(1)  # subset ⊆ observed
        top = experts.shared
        q = product_of_experts(top.loc, top.scale, given, prior_expert=True)  # [K, B, D]
        q = Diagonal(q.loc, q.scale, self.posterior_family)
        z = q.rsample(1)[0]
        kls = [kl_divergence(q, super().prior(level_space(0)))]  # [K, B]
        for j in range(1, self.config.n_latent):
            q, prior = self._level_posterior(j, z, experts, given)
            z = q.rsample(1)[0]
            kls.append(kl_divergence(q, prior))
        outs = self.decoder_outputs(Latent({self.bottom: z}, primary=self.primary_space))
        rec = sum(self.log_likelihoods(outs, batch).values())  # [K, B]
        kl = torch.stack(kls).sum(0)
        per_subset = -rec + self.config.beta * self.annealing(self.config.warmup) * kl
        weight = valid.to(per_subset.dtype)
        loss = ((per_subset * weight).sum(0) / weight.sum(0).clamp_min(1.0)).mean()
        metrics = {f"kl_level_{j}": k.mean().detach() for j, k in enumerate(kls)}
        return LossOutput(loss, metrics)
