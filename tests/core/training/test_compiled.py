"""TrainerConfig.compile: a compiled forward trains as the eager one does, compiled once. The
fused step (compile's default where it applies; tests/core/training/test_fused_step.py) is off
in the forward's tests; JNF and MoPoE are trained both ways."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch._dynamo
import torch._inductor.config
from torch._dynamo.utils import counters
from torch._inductor.utils import run_and_get_code

from core.models import build_model
from core.training import Callback, Trainer, TrainerConfig, TrainerState
from core.training.compiled import Compiled, CompiledForward, cpu_options
from tests.core.training.conftest import MODALITIES, TINY, TwoStageMVAE, tiny_mvae

pytestmark = pytest.mark.slow  # a first torch.compile takes ~10-30 s on 2 cores


class Record(Callback):
    """Every step's loss."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_step_end(self, state: TrainerState) -> None:
        self.losses.append(state.step_metrics["loss"])


def test_compiled_training_matches_eager_and_never_recompiles(data):
    """MVAE's per-step KL annealing changes every step; read from the model's `clock` tensor it
    does not recompile the graph. 96 samples at batch 20: the last batch of 16 runs eagerly.
    Losses agree to float rounding (the compiled graph draws from torch's eager RNG)."""
    torch._dynamo.reset()
    runs = []
    for compile in (False, True):
        model = tiny_mvae(0, annealing="per_step")
        cfg = TrainerConfig(epochs=2, batch_size=20, seed=3, compile=compile, log_every_steps=1,
                            fused_step=False)  # fmt: skip
        record = Record()
        with torch._dynamo.config.patch(error_on_recompile=True):
            result = Trainer(model, data, data, cfg, [record]).fit()
        losses = record.losses
        runs.append((losses, result.final_metrics["eval_loss"], model.state_dict()))
    (eager, eager_eval, eager_w), (compiled, compiled_eval, compiled_w) = runs
    assert len(eager) == len(compiled) == 10
    assert eager[0] != eager[1]  # the annealed weight moved between steps
    torch.testing.assert_close(torch.tensor(compiled), torch.tensor(eager), rtol=1e-4, atol=1e-5)
    assert compiled_eval == pytest.approx(eager_eval, rel=1e-4)
    for key, value in eager_w.items():
        torch.testing.assert_close(compiled_w[key], value, rtol=1e-4, atol=1e-5)
    assert "forward" not in vars(model)  # the eager forward is back after training


@pytest.mark.parametrize("fused_step", [False, True])
def test_a_compiled_flow_stage_is_one_graph_and_matches_eager(data, fused_step):
    """JNF's flow stage (zuko MAFs) compiles without a graph break, and across its stage change
    (other parameters frozen: one recompile) trains as the eager model does, its forward
    compiled or each step fused."""
    torch._dynamo.reset()
    counters.clear()
    config = {"model_type": "jnf", "modalities": MODALITIES, **TINY, "warmup": 1,
              "flow_hidden": [16]}  # fmt: skip
    runs = []
    for compile in (False, True):
        torch.manual_seed(0)
        model = build_model(config)
        cfg = TrainerConfig(epochs=2, batch_size=20, seed=3, compile=compile, log_every_steps=1,
                            fused_step=fused_step)  # fmt: skip
        record = Record()
        Trainer(model, data, None, cfg, [record]).fit()
        runs.append(record.losses)
    assert dict(counters["graph_break"]) == {}
    assert counters["stats"]["unique_graphs"] == 2  # one per stage
    torch.testing.assert_close(torch.tensor(runs[1]), torch.tensor(runs[0]), rtol=1e-4, atol=1e-5)


class FrozenLayers(torch.nn.Module):
    """Two layers with a ReLU between them whose weights need no gradient, the loss
    back-propagated through them to their input: a frozen decoder in a later stage."""

    def __init__(self) -> None:
        super().__init__()
        self.first = torch.nn.Parameter(torch.randn(32, 32) / 6, requires_grad=False)
        self.second = torch.nn.Parameter(torch.randn(32, 8) / 6, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((torch.relu(x @ self.first) @ self.second) ** 2).sum()


def test_on_the_cpu_a_frozen_relu_saves_no_bool_mask_and_gives_the_eager_gradient() -> None:
    """torch's inductor saves a bool mask for such a ReLU (its C++ bool stores are ~12x
    slower than eager's); the project's CPU compile saves floats, with the same gradient."""
    torch._dynamo.reset()
    layer, x = FrozenLayers(), torch.randn(16, 32, requires_grad=True)
    (eager,) = torch.autograd.grad(layer(x), x)
    stock = torch.compile(layer.forward, dynamic=False)
    _, stock_code = run_and_get_code(lambda: torch.autograd.grad(stock(x), x))
    ours = CompiledForward(layer, torch.device("cpu"))
    with ours.active():
        (grad,), code = run_and_get_code(lambda: torch.autograd.grad(layer(x), x))
    assert any("bool*" in c for c in stock_code)
    assert not any("bool*" in c for c in code)
    assert torch.equal(grad, eager)


def addmm_calls(code: str) -> int:
    """The `addmm`s a compiled graph's wrapper calls, in Python or (cpp_wrapper) in C++."""
    return code.count("extern_kernels.addmm(") + code.count("aoti_torch_cpu_addmm_out(")


def test_on_the_cpu_the_graphs_wrapper_is_cpp_and_calls_each_kernel_without_python() -> None:
    """The code that calls a CPU graph's kernels is C++ (no Python line per kernel call)."""
    torch._dynamo.reset()
    layers = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
    ours = CompiledForward(layers, torch.device("cpu"))
    with ours.active():
        _, code = run_and_get_code(lambda: layers(torch.randn(4, 8)).sum().backward())
    assert len(code) == 2  # the forward and backward graphs
    assert all("aoti_torch_cpu_mm_out(" in c and "extern_kernels.mm(" not in c for c in code)


def test_on_the_cpu_a_dense_layers_bias_is_added_in_its_activations_kernel() -> None:
    """Stock inductor runs a Linear as `addmm` (the broadcast bias copied into the output
    first); the project's CPU compile runs `mm` and adds the bias in the ReLU's fused kernel,
    with the eager values to float rounding."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    x = torch.randn(16, 32)

    def loss_and_grads(forward: object) -> list[torch.Tensor]:
        loss = forward(x).square().sum()  # type: ignore[operator]
        return [loss, *torch.autograd.grad(loss, list(layers.parameters()))]

    eager = loss_and_grads(layers)
    _, stock_code = run_and_get_code(lambda: loss_and_grads(torch.compile(layers, dynamic=False)))
    ours = CompiledForward(layers, torch.device("cpu"))
    with ours.active():
        got, code = run_and_get_code(lambda: loss_and_grads(layers))
    assert sum(map(addmm_calls, stock_code)) == 2
    assert sum(map(addmm_calls, code)) == 1  # the last: saved too
    for value, expected in zip(got, eager, strict=True):
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)


def test_a_compiled_stage_with_frozen_decoders_trains_as_the_eager_one(data):
    """TwoStageMVAE's second stage trains the encoders through frozen decoders (TELBO's
    second stage does the same), where the compiled ReLU gradients are rewritten."""
    torch._dynamo.reset()
    config = {"modalities": MODALITIES, **TINY, "k": 1, "warmup": 2}
    runs = eager_and_compiled(lambda: TwoStageMVAE(config), data, epochs=3, fused_step=False)
    eager = runs[0][0]
    assert len(eager) == 15 and eager[-1] < eager[10]  # stage 2 (steps 11-15) still learns
    assert_trained_alike(runs)


def eager_and_compiled(
    build: Callable[[], torch.nn.Module], data, epochs: int, **config
) -> list[tuple[list[float], dict[str, torch.Tensor]]]:
    """Each step's loss and the final weights of `build()`'s model trained eagerly, then
    compiled, from one seed."""
    runs = []
    for compile in (False, True):
        torch.manual_seed(0)
        model = build()
        cfg = TrainerConfig(epochs=epochs, batch_size=20, seed=3, compile=compile,
                            log_every_steps=1, **config)  # fmt: skip
        record = Record()
        Trainer(model, data, None, cfg, [record]).fit()
        runs.append((record.losses, model.state_dict()))
    return runs


def assert_trained_alike(runs: list[tuple[list[float], dict[str, torch.Tensor]]]) -> None:
    (eager, eager_w), (compiled, compiled_w) = runs
    torch.testing.assert_close(torch.tensor(compiled), torch.tensor(eager), rtol=1e-4, atol=1e-5)
    for key, value in eager_w.items():
        torch.testing.assert_close(compiled_w[key], value, rtol=1e-4, atol=1e-5)


def test_a_graph_the_cpp_wrapper_cannot_build_gets_the_python_wrapper() -> None:
    """inductor's C++ wrapper cannot call `randperm` given a generator argument (it cannot pass
    its dtype; the project's own draws leave a None generator out, `_permutation`); such a
    graph is compiled again with the Python wrapper and gives the eager values, draws
    included."""
    torch._dynamo.reset()

    def shuffled(x: torch.Tensor) -> torch.Tensor:
        order = torch.randperm(x.shape[0], generator=None, device=x.device)  # as MoPoE's
        return x * order.to(x.dtype).unsqueeze(-1)

    compiled = Compiled(shuffled, cpu_options())
    x = torch.arange(12.0).reshape(6, 2)
    torch.manual_seed(1)
    expected = shuffled(x)
    torch.manual_seed(1)
    torch.testing.assert_close(compiled(x), expected)
    plain = Compiled(lambda x: x * 2, cpu_options())
    plain(x)
    assert compiled.options is not None and compiled.options["cpp_wrapper"] is False
    assert plain.options is not None and plain.options["cpp_wrapper"] is True


def test_a_compiled_graph_draws_the_eager_noise_and_leaves_torchs_configuration_alone() -> None:
    """Each compile asks for torch's eager random stream itself (a fused step built alone
    draws what the eager step would), and torch's global inductor configuration, which other
    compiles in the user's process read, is not changed."""
    import torch._inductor.config as inductor

    torch._dynamo.reset()
    before = inductor.fallback_random

    def noisy(x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn(x.shape) * 2

    compiled = Compiled(noisy, cpu_options())
    x = torch.arange(8.0).reshape(4, 2)
    torch.manual_seed(3)
    expected = noisy(x)
    torch.manual_seed(3)
    torch.testing.assert_close(compiled(x), expected)
    assert before is False and inductor.fallback_random is False
    CompiledForward(tiny_mvae(0), torch.device("cpu"))
    assert inductor.fallback_random is False


@pytest.mark.parametrize("fused_step", [False, True])
def test_a_compiled_mopoe_trains_as_the_eager_one(data, fused_step, caplog):
    """MoPoE deals its mixture components out with `randperm`, called without a generator
    argument (its overload with one is the C++ wrapper's gap): its graphs keep the C++
    wrapper, and train as the eager model does."""
    torch._dynamo.reset()
    config = {"model_type": "mopoe", "modalities": MODALITIES, **TINY}
    with caplog.at_level("INFO", logger="core.training.compiled"):
        runs = eager_and_compiled(
            lambda: build_model(config), data, epochs=2, fused_step=fused_step
        )
    assert_trained_alike(runs)
    assert not [r for r in caplog.records if "C++ wrapper failed" in r.getMessage()]


def test_compile_without_a_compiler_is_a_clear_error(data, monkeypatch):
    monkeypatch.setenv("PATH", "")
    trainer = Trainer(tiny_mvae(0), data, None, TrainerConfig(epochs=1, compile=True))
    with pytest.raises(ValueError, match=r"compile: .* needs a C/C\+\+ compiler"):
        trainer.fit()
