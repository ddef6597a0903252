"""The `Sampler` contract: densities over a model's latent spaces, fitted on posterior latents.

A sampler holds one fitted `Density` per latent space the model samples independently
(`model.sampled_spaces`: "shared", "private/<m>", the top level of a hierarchy, ...), keyed by the
space's name; the model draws every other space itself (`MultimodalVAE.draw_prior`). It is a
plain object, not an `nn.Module`, so composing it with a model (`model.sampler`, saved in the
model's `sampler/` folder) never changes the model's weights. This package knows models only
by that interface (`sampled_spaces`, `encode`), so it imports nothing from `core.models`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

if TYPE_CHECKING:
    from core.data.dataset import MultimodalDataset
    from core.models.base import MultimodalVAE

SAMPLER_REGISTRY: dict[str, type[Sampler]] = {}


class SamplerOptions(BaseModel):
    """Options of a sampler kind; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class Density(nn.Module):
    """A density over one latent space of dimension `dim`: fit, sample, log_prob."""

    def __init__(self, dim: int, options: SamplerOptions) -> None:
        super().__init__()
        self.dim = dim
        self.options = options

    def fit(self, z: Tensor, generator: torch.Generator | None = None) -> None:
        """Fit on latents z [N, dim] (no-op for densities without parameters to learn)."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def log_prob(self, z: Tensor) -> Tensor:
        raise NotImplementedError


def seed_from(generator: torch.Generator | None) -> int:
    """A 31-bit seed drawn from `generator` (or the global RNG), for libraries that want ints."""
    return int(torch.randint(2**31 - 1, (1,), generator=generator).item())


class Sampler:
    """Base class: subclasses set `name`, `options_class` and build densities in `density()`."""

    name: ClassVar[str]
    options_class: ClassVar[type[SamplerOptions]] = SamplerOptions
    needs_data: ClassVar[bool] = True  # False: covers no space (the model's own priors)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            SAMPLER_REGISTRY[cls.name] = cls

    def __init__(self, **options: Any) -> None:
        self.options = self.options_class.model_validate(options)
        self.spaces: dict[str, Density] = {}
        self.fitted = not self.needs_data

    def __repr__(self) -> str:
        dims = {s: d.dim for s, d in self.spaces.items()}
        return f"{type(self).__name__}({self.options.model_dump()}, spaces={dims})"

    # ---- hooks ----------------------------------------------------------------------------
    def density(self, dim: int) -> Density:
        """A new, unfitted density for a latent space of dimension `dim`."""
        raise NotImplementedError

    # ---- API ------------------------------------------------------------------------------
    def fit(
        self,
        model: MultimodalVAE,
        dataset: MultimodalDataset | None = None,
        batch_size: int = 256,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Sampler:
        """Fit one density per space in `model.sampled_spaces` on the posterior means
        (`model.encode(batch, mean=True)`) of the samples of `dataset` observing that space.

        `options` override the sampler's options for this and later fits.
        """
        from core.samplers.latents import collect_latents

        if options:
            merged = {**self.options.model_dump(), **options}
            self.options = self.options_class.model_validate(merged)
        if not self.needs_data:
            self.fitted = True
            return self
        if dataset is None:
            raise ValueError(f"dataset: the {self.name!r} sampler is fitted on data")
        dims = dict(model.sampled_spaces)
        if not dims:
            raise ValueError(
                f"model: this {model.model_type} model has no latent space with an independent "
                "prior (its prior needs inputs), so there is nothing to sample unconditionally"
            )
        latents = collect_latents(model, dataset, list(dims), batch_size, generator)
        spaces = {}
        for space, dim in dims.items():
            z = latents[space]
            if len(z) == 0:
                raise ValueError(f"dataset: no sample observes the modality of space {space!r}")
            density = self.density(dim)
            density.fit(z, generator)
            spaces[space] = density.eval()
        self.spaces, self.fitted = spaces, True
        return self

    @torch.no_grad()
    def sample_space(self, space: str, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n codes [n, D] of `space` from its fitted density."""
        if not self.fitted:
            raise RuntimeError(f"{self.name} sampler: call fit(model, dataset) first")
        if space not in self.spaces:
            raise KeyError(f"space: {space!r} not among {sorted(self.spaces)}")
        return self.spaces[space].sample(n, generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """n codes [n, D] of every covered space, in the model's space order."""
        if not self.fitted:
            raise RuntimeError(f"{self.name} sampler: call fit(model, dataset) first")
        return {space: self.sample_space(space, n, generator) for space in self.spaces}

    @torch.no_grad()
    def log_prob(self, z: Tensor, space: str = "shared") -> Tensor:
        """log density of codes z [..., D] in `space`."""
        if space not in self.spaces:
            raise KeyError(f"space: {space!r} not among {sorted(self.spaces)}")
        return self.spaces[space].log_prob(z)

    def covering(self, spaces: Mapping[str, int]) -> dict[str, Density]:
        """The densities to draw the model's `spaces` (name -> dim) from: none (the prior) or
        one per space; an unfitted sampler or one fitted for other spaces is an error."""
        if not self.fitted:
            raise RuntimeError(f"{self.name} sampler: call fit(model, dataset) first")
        self.check_spaces(spaces)
        return self.spaces

    def check_spaces(self, spaces: Mapping[str, int]) -> None:
        """ValueError unless the sampler covers no space or exactly `spaces` (name -> dim)."""
        own = {s: d.dim for s, d in self.spaces.items()}
        if own and own != dict(spaces):
            raise ValueError(
                f"sampler spaces {own} do not match the model's latent spaces {dict(spaces)}"
            )

    def to(self, device: torch.device | str) -> Sampler:
        for density in self.spaces.values():
            density.to(device)
        return self

    # ---- persistence ----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-able description; with `state()` it rebuilds the sampler (`from_state`)."""
        return {
            "name": self.name,
            "options": self.options.model_dump(mode="json"),
            "spaces": {s: d.dim for s, d in self.spaces.items()},
        }

    def state(self) -> dict[str, Tensor]:
        """Every density's tensors, keyed "<space>/<name>", contiguous on the CPU."""
        return {
            f"{s}/{k}": v.detach().cpu().contiguous()
            for s, d in self.spaces.items()
            for k, v in d.state_dict().items()
        }

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Tensor]) -> Sampler:
        """Rebuild from `config()` and `state()`; loading is strict (no missing or extra tensor)."""
        if cls is Sampler:
            return get_sampler_class(config["name"]).from_state(config, tensors)
        sampler = cls(**config.get("options", {}))
        sampler.fitted = True
        if not cls.needs_data:  # the prior: nothing stored (older files listed its spaces)
            return sampler
        known = set()
        for space, dim in config.get("spaces", {}).items():
            density = sampler.density(int(dim))
            prefix = f"{space}/"
            own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            known |= {prefix + k for k in own}
            density.load_state_dict(own, strict=True)
            sampler.spaces[space] = density.eval()
        extra = sorted(set(tensors) - known)
        if extra:
            raise ValueError(f"sampler tensors: unexpected {extra[:5]}")
        return sampler


def get_sampler_class(name: str) -> type[Sampler]:
    import core.samplers  # noqa: F401  (registers the built-in samplers)

    if name not in SAMPLER_REGISTRY:
        raise KeyError(f"sampler: unknown {name!r}; available: {sorted(SAMPLER_REGISTRY)}")
    return SAMPLER_REGISTRY[name]


def build_sampler(name: str, **options: Any) -> Sampler:
    """An unfitted sampler by registry name, e.g. `build_sampler("gmm", n_components=10)`."""
    return get_sampler_class(name)(**options)


def available_samplers() -> list[str]:
    import core.samplers  # noqa: F401

    return sorted(SAMPLER_REGISTRY)
