"""`torch.compile` for training steps: the model's forward, compiled once for the full batch size.

Only full training batches run the compiled forward; the epoch's last, smaller batch and every
evaluation run eagerly, so one graph is compiled (no recompilation for a new batch size or for
eval mode). Every graph compiled here uses torch's eager random number generator
(`fallback_random`, an option of each compile: torch's global configuration, which other
compiles in the process read, is left as it is), so a compiled run draws the same noise as an
eager one and their losses agree to float rounding on a fixed seed. It is also the faster
choice on the CPU: inductor's own draws compute each number alone (DMVAE's fused step at batch
256 took 1.18x as long with them, bench/RESULTS.md).

On the CPU, ReLU's gradient mask is a float tensor (`relu_masks_in_floats`): with torch's own
formula, `where(output <= 0, 0, grad)`, a ReLU whose weights need no gradient (a frozen decoder
the loss still back-propagates through, as in TELBO's second stage) saves a bool mask for the
backward, and inductor's C++ kernels store and load bool vectors about 12x slower than eager
computes them. And a dense layer followed by element-wise work (its activation) runs as a
matrix product whose bias is added in that work's fused kernel (`bias_adds_into_pointwise`),
where `addmm` would first copy the broadcast bias into its output: a few per cent of a step.
The CPU graphs also get a C++ wrapper (`cpp_wrapper`): the code that allocates buffers and
calls each kernel of a graph is compiled too, instead of running as Python line by line, which
at small batches is a few per cent of a step (bench/step_variants.py, variant `wrapper`), for
a few more seconds of compile. A graph it cannot build (an op it cannot call, such as
`randperm` given a generator argument, even None) is compiled again with the Python wrapper
(`Compiled`), whose steps are slower (MoPoE's fused step, before its draw left the argument
out: 7-8 % at batch 64, 2 % at 256).

With `fused_step` (the default) the Trainer compiles the whole step instead where it can
(fused_step.py), with the same options; this forward is then the fallback.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import fx, nn

log = logging.getLogger(__name__)
MASK_PASS_VERSION = "relu-masks-in-floats-1"  # in inductor's cache keys; change with the pass
BIAS_PASS_VERSION = "bias-adds-into-pointwise-1"


def relu_masks_in_floats(graph: fx.Graph) -> None:
    """Rewrite each `where(x <= 0, 0, g)` of a joint forward-backward graph (ReLU's gradient)
    as `g * ceil(clamp(x, 0, 1))`: the same values (but for NaN x or infinite g, and −0.0 for
    0.0), with no bool tensor for the partitioner to save."""
    aten = torch.ops.aten
    for where in list(graph.find_nodes(op="call_function", target=aten.where.self)):
        condition, zero, grad = where.args
        if not (_is_call(condition, aten.le.Scalar) and condition.args[1] == 0):
            continue
        if not (_is_call(zero, aten.scalar_tensor.default) and zero.args[0] == 0):
            continue
        x = condition.args[0]
        if not _same_tensor_type(x, grad, where):
            continue
        with graph.inserting_before(where):
            low = graph.call_function(aten.clamp_min.default, (x, 0))  # ops inductor lowers
            clamped = graph.call_function(aten.clamp_max.default, (low, 1))
            mask = graph.call_function(aten.ceil.default, (clamped,))
            product = graph.call_function(aten.mul.Tensor, (grad, mask))
        for node in (low, clamped, mask):
            node.meta["val"] = x.meta["val"]
        product.meta["val"] = where.meta["val"]
        where.replace_all_uses_with(product)
        graph.erase_node(where)
        for node in (condition, zero):
            if not node.users:
                graph.erase_node(node)


def _is_call(node: Any, target: Any) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and node.target is target


def _same_tensor_type(*nodes: Any) -> bool:
    """Every node a tensor of one shape and dtype (so the rewrite neither broadcasts nor
    promotes where the `where` did not)."""
    values = [n.meta.get("val") if isinstance(n, fx.Node) else None for n in nodes]
    if not all(isinstance(v, torch.Tensor) for v in values):
        return False
    return len({(tuple(v.shape), v.dtype) for v in values}) == 1


def bias_adds_into_pointwise(graph: fx.Graph) -> None:
    """Rewrite each `addmm(bias, a, b)` whose every use is element-wise (a dense layer's
    activation, a likelihood) as `mm(a, b) + bias`, so the bias is added in the fused kernel
    that reads the product anyway: `addmm` first copies the broadcast bias into its output for
    the product to accumulate onto (inductor does the same on GPUs)."""
    aten = torch.ops.aten
    for addmm in list(graph.find_nodes(op="call_function", target=aten.addmm.default)):
        if addmm.kwargs or len(addmm.args) != 3:
            continue  # alpha or beta given: not a dense layer's
        bias, a, b = addmm.args
        dtypes = {getattr(n.meta.get("val"), "dtype", None) for n in (bias, a, b, addmm)}
        if len(dtypes) != 1 or not all(map(_pointwise_use, addmm.users)):
            continue
        with graph.inserting_before(addmm):
            product = graph.call_function(aten.mm.default, (a, b))
            total = graph.call_function(aten.add.Tensor, (product, bias))
        product.meta["val"] = total.meta["val"] = addmm.meta["val"]
        addmm.replace_all_uses_with(total)
        graph.erase_node(addmm)


def _pointwise_use(node: fx.Node) -> bool:
    """Whether `node` uses its input element-wise (through views)."""
    target = node.target
    if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
        return False
    if any(a.alias_info is not None for a in target._schema.arguments):  # a view: its uses
        return all(map(_pointwise_use, node.users))
    return torch.Tag.pointwise in target.tags


def _graph_pass(rewrite: Any, version: str) -> Any:
    """`rewrite` as an inductor graph pass, with a `uuid` for its caches."""
    from torch._inductor.custom_graph_pass import CustomGraphPass

    class Pass(CustomGraphPass):
        def __call__(self, graph: fx.Graph) -> None:
            rewrite(graph)

        def uuid(self) -> str:
            return version

    return Pass()


def cpu_options() -> dict[str, Any]:
    """The compile options of a CPU training graph: ReLU masks in floats on the joint graph,
    bias adds fused after partitioning (where the forward and backward graphs are final), the
    graphs' wrappers in C++."""
    return {
        "joint_custom_pre_pass": _graph_pass(relu_masks_in_floats, MASK_PASS_VERSION),
        "post_grad_custom_post_pass": _graph_pass(bias_adds_into_pointwise, BIAS_PASS_VERSION),
        "cpp_wrapper": True,
    }


def summary(err: BaseException) -> str:
    """An exception in one line for the log: its type and its message's first line (torch's
    compile errors run to pages)."""
    return f"{type(err).__name__}: {next(iter(str(err).strip().splitlines()), '')}"


def with_own_code(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` (a function or bound method) running a copy of its code object. torch.compile keeps
    the graphs of a code object in one cache of at most 8 guard sets (`recompile_limit`) and
    runs it eagerly after that, fails with `fullgraph`: every model trained with compile in one
    process (a worker's jobs) adds a set, and their graphs outlive the models. A copy per
    compile has a cache of its own, freed with it."""
    method = isinstance(fn, types.MethodType)
    func = fn.__func__ if method else fn
    code = func.__code__.replace()  # an equal, distinct code object
    copy = types.FunctionType(code, func.__globals__, func.__name__, func.__defaults__,
                              func.__closure__)  # fmt: skip
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__qualname__ = func.__qualname__
    return types.MethodType(copy, fn.__self__) if method else copy


class Compiled:
    """`torch.compile(fn, options=options)` (static shapes, `fullgraph` as given; `fn` with a
    code object of its own, `with_own_code`; eager random draws unless `options` say
    otherwise); where the C++ wrapper of `options` cannot build a graph, every later call runs
    `fn` compiled with the Python wrapper (the failure is a compile's: nothing of the call had
    run)."""

    def __init__(
        self, fn: Callable[..., Any], options: dict[str, Any] | None, fullgraph: bool = False
    ) -> None:
        self.fn, self.options, self.fullgraph = with_own_code(fn), options, fullgraph
        self.compiled = self._compile()

    def _compile(self) -> Callable[..., Any]:
        options = {"fallback_random": True, **(self.options or {})}  # compiled == eager draws
        return torch.compile(self.fn, dynamic=False, fullgraph=self.fullgraph, options=options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.compiled(*args, **kwargs)
        except Exception as err:
            from torch._inductor.exc import InductorError

            if not (isinstance(err, InductorError) and (self.options or {}).get("cpp_wrapper")):
                raise
            log.info(
                "compile: the C++ wrapper failed (%s); the Python wrapper instead", summary(err)
            )
            self.options = {**self.options, "cpp_wrapper": False}  # type: ignore[dict-item]
            self.compiled = self._compile()
            return self.compiled(*args, **kwargs)


class CompiledForward:
    """The compiled forward of `model`, switched on around the steps that use it; on a CPU
    `device`, with the options of `cpu_options` (unless `options` says otherwise)."""

    def __init__(
        self, model: nn.Module, device: torch.device, options: dict[str, Any] | None = None
    ) -> None:
        if not any(shutil.which(cc) for cc in ("c++", "g++", "clang++", "cc", "gcc")):
            raise ValueError(
                "compile: torch.compile builds C++ (or Triton) kernels and needs a C/C++ "
                "compiler on the PATH, and none was found; install one (e.g. g++) or set "
                "compile=False"
            )
        self.model = model
        if options is None:  # `options` replace these (bench/step_variants.py leaves one out)
            options = cpu_options() if device.type == "cpu" else None
        self.options = options  # also the fused step's (fused_step.py)
        self.forward = Compiled(model.forward, options)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """`model(batch)` runs the compiled forward inside this block (an instance attribute
        shadows the class's `forward`; removing it restores the eager one)."""
        self.model.forward = self.forward
        try:
            yield
        finally:
            del self.model.forward
