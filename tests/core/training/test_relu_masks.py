"""`relu_masks_in_floats`, the CPU compile's rewrite of ReLU's gradient: the same gradient as
torch's `where(output <= 0, 0, grad)`, with no bool tensor left in the graph."""

from __future__ import annotations

import torch
from torch._decomp import get_decompositions
from torch.fx.experimental.proxy_tensor import make_fx

from core.training.compiled import relu_masks_in_floats

aten = torch.ops.aten


def traced(threshold: float) -> torch.fx.GraphModule:
    """threshold_backward as AOT autograd's joint graph has it (torch's decomposition)."""

    def backward(grad: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        return aten.threshold_backward(grad, output, threshold)

    table = get_decompositions([aten.threshold_backward])
    return make_fx(backward, decomposition_table=table, tracing_mode="fake")(
        torch.randn(4, 5), torch.randn(4, 5)
    )


def targets(module: torch.fx.GraphModule) -> set[object]:
    return {n.target for n in module.graph.nodes if n.op == "call_function"}


def test_the_rewritten_relu_gradient_equals_torchs_and_keeps_no_bool() -> None:
    module = traced(0.0)
    assert {aten.le.Scalar, aten.where.self} <= targets(module)  # what the pass looks for
    relu_masks_in_floats(module.graph)
    module.recompile()
    assert not {aten.le.Scalar, aten.where.self, aten.scalar_tensor.default} & targets(module)
    grad = torch.randn(64, 33, generator=torch.Generator().manual_seed(0))
    output = torch.relu(torch.randn(64, 33, generator=torch.Generator().manual_seed(1)))
    output[0, :5] = torch.tensor([0.0, 1e-30, 3.0, 1.0, 0.5])  # zero, tiny, above and at 1
    expected = aten.threshold_backward(grad, output, 0.0)
    got = module(grad, output)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert torch.equal(got, expected)
    assert (got[output == 0] == 0).all() and torch.equal(got[output > 0], grad[output > 0])


def test_other_thresholds_and_broadcasting_wheres_are_left_alone() -> None:
    module = traced(0.5)  # nn.Threshold's gradient: the mask is not output > 0
    before = [n.target for n in module.graph.nodes]
    relu_masks_in_floats(module.graph)
    assert [n.target for n in module.graph.nodes] == before

    def broadcasting(grad: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        return torch.where(output <= 0, torch.scalar_tensor(0.0), grad)  # output [5], grad [4, 5]

    module = make_fx(broadcasting, tracing_mode="fake")(torch.randn(4, 5), torch.randn(5))
    assert {aten.le.Scalar, aten.where.self} <= targets(module)
    before = [n.target for n in module.graph.nodes]
    relu_masks_in_floats(module.graph)
    assert [n.target for n in module.graph.nodes] == before
