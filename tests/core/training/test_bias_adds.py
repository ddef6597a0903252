"""`bias_adds_into_pointwise`, the CPU compile's rewrite of a dense layer's `addmm` whose uses
are element-wise: the same values as `mm(a, b) + bias`, with the bias add left to the fused
kernel that follows; any other `addmm` is left alone."""

from __future__ import annotations

import torch
from torch.fx.experimental.proxy_tensor import make_fx

from core.training.compiled import bias_adds_into_pointwise

aten = torch.ops.aten


def targets(module: torch.fx.GraphModule) -> list[object]:
    return [n.target for n in module.graph.nodes if n.op == "call_function"]


def inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(64, 32, generator=g),
        torch.randn(32, 48, generator=g),
        torch.randn(48, generator=g),
    )


def test_a_layer_followed_by_its_activation_adds_its_bias_after_the_product() -> None:
    def layer(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.relu(aten.addmm(b, x, w)) * 2  # a view-free chain of pointwise uses

    module = make_fx(layer, tracing_mode="fake")(*inputs(0))
    assert aten.addmm.default in targets(module)
    bias_adds_into_pointwise(module.graph)
    module.recompile()
    assert aten.addmm.default not in targets(module)
    assert [t for t in targets(module) if t in (aten.mm.default, aten.add.Tensor)] == [
        aten.mm.default,
        aten.add.Tensor,
    ]
    x, w, b = inputs(1)
    torch.testing.assert_close(module(x, w, b), layer(x, w, b), rtol=1e-6, atol=1e-6)


def test_uses_through_a_view_count_as_element_wise() -> None:
    def layer(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(aten.addmm(b, x, w).view(64, 6, 8))

    module = make_fx(layer, tracing_mode="fake")(*inputs(0))
    bias_adds_into_pointwise(module.graph)
    module.recompile()
    assert aten.addmm.default not in targets(module)
    x, w, b = inputs(2)
    torch.testing.assert_close(module(x, w, b), layer(x, w, b), rtol=1e-6, atol=1e-6)


def test_a_product_read_by_another_product_or_scaled_keeps_its_addmm() -> None:
    def into_a_product(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return aten.addmm(b, x, w) @ w.T  # the next layer reads it whole: nothing to fuse into

    def scaled(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.relu(aten.addmm(b, x, w, beta=0.5))

    for function in (into_a_product, scaled):
        module = make_fx(function, tracing_mode="fake")(*inputs(0))
        before = targets(module)
        bias_adds_into_pointwise(module.graph)
        assert targets(module) == before, function.__name__
