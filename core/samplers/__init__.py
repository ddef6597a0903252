"""Latent samplers: the prior, a Gaussian mixture, and MAF / IAF flows fitted on posterior latents.

`sampler = build_sampler("gmm", n_components=10).fit(model, dataset)`, then
`model.sample(n, sampler=sampler, generator=g)`. Set `model.sampler = sampler` to compose it
with the model: `save_pretrained` writes it in `<model_dir>/sampler/` and `from_pretrained` loads
it back (`save_sampler` / `load_sampler` do that folder alone).
"""

from core.samplers.base import (
    SAMPLER_REGISTRY,
    Density,
    Sampler,
    SamplerOptions,
    available_samplers,
    build_sampler,
    get_sampler_class,
)
from core.samplers.flows import FlowOptions, IAFSampler, MAFSampler
from core.samplers.gmm import GaussianMixtureSampler, GMMOptions
from core.samplers.latents import collect_latents
from core.samplers.persistence import (
    SamplerFormatError,
    has_sampler,
    load_sampler,
    save_sampler,
)
from core.samplers.prior import PriorSampler

__all__ = [
    "SAMPLER_REGISTRY",
    "Density",
    "FlowOptions",
    "GMMOptions",
    "GaussianMixtureSampler",
    "IAFSampler",
    "MAFSampler",
    "PriorSampler",
    "Sampler",
    "SamplerFormatError",
    "SamplerOptions",
    "available_samplers",
    "build_sampler",
    "collect_latents",
    "get_sampler_class",
    "has_sampler",
    "load_sampler",
    "save_sampler",
]
