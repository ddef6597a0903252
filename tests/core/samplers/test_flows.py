"""MAF / IAF samplers: fitted on posterior latents, they beat N(0, I) on held-out latents."""

from __future__ import annotations

import pytest
import torch

from core.samplers import build_sampler, collect_latents
from tests.core.samplers.helpers import FAST_FLOW


@pytest.mark.parametrize("name", ["maf", "iaf"])
def test_flow_log_density_beats_standard_normal(name, mvae, digits_train, digits_test) -> None:
    sampler = build_sampler(name, **FAST_FLOW).fit(
        mvae, digits_train, generator=torch.Generator().manual_seed(0)
    )
    held_out = collect_latents(mvae, digits_test)["shared"]
    flow = sampler.log_prob(held_out).mean()
    normal = torch.distributions.Normal(0.0, 1.0).log_prob(held_out).sum(-1).mean()
    print(f"{name}: held-out log-density {flow:.2f} vs N(0, I) {normal:.2f}")
    assert flow > normal + 1.0
    z = sampler.sample(2000, generator=torch.Generator().manual_seed(0))["shared"]
    assert torch.isfinite(z).all()
    # samples land where the latents are: moments close to the fitted data's
    torch.testing.assert_close(z.mean(0), held_out.mean(0), atol=0.15, rtol=0)


def test_flow_fit_is_seeded(mvae, digits_train) -> None:
    options = {**FAST_FLOW, "epochs": 2}
    a = build_sampler("maf", **options).fit(
        mvae, digits_train, generator=torch.Generator().manual_seed(4)
    )
    b = build_sampler("maf", **options).fit(
        mvae, digits_train, generator=torch.Generator().manual_seed(4)
    )
    for k, v in a.state().items():
        assert torch.equal(v, b.state()[k]), k


def test_iaf_and_maf_are_inverse_directions() -> None:
    from core.samplers.flows import FlowDensity, FlowOptions, IAFDensity

    options = FlowOptions(n_blocks=2, hidden=[16])
    maf, iaf = FlowDensity(3, options), IAFDensity(3, options)
    iaf.load_state_dict(maf.state_dict())
    u = torch.randn(5, 3)
    # IAF's noise-to-latent map is MAF's latent-to-noise map
    torch.testing.assert_close(iaf.transform().inv(u), maf.transform()(u))
