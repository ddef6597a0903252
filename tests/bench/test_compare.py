"""bench.compare without MultiVae: the common NLL estimator on cases with a known answer, our
runner's tasks in their tiniest form, the result cache (quality only), and the quality bar."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from torch import Tensor

from bench.compare import __main__ as compare
from bench.compare import interleave, ours, protocol

IMAGE_LOGITS = torch.linspace(-2, 2, 64).reshape(1, 8, 8)
LABEL_LOGITS = torch.linspace(0, 1, 10)


class Normal:
    """A proposal: independent N(0, scale²) over 3 dimensions for every sample."""

    def __init__(self, batch: int, scale: float) -> None:
        self.q = torch.distributions.Normal(torch.zeros(batch, 3), scale)

    def sample(self, k: int) -> Tensor:
        return self.q.sample((k,))

    def log_prob(self, z: Tensor) -> Tensor:
        return self.q.log_prob(z).sum(-1)


class ConstantDecoder:
    """Decoders that ignore z: log p(x) is exactly log p(x | any z)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def proposal(self, data: dict[str, Tensor]) -> Normal:
        return Normal(len(data["y"]), self.scale)

    def log_prior(self, z: Tensor) -> Tensor:
        return torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        k, b = z.shape[:2]
        return {
            "image": IMAGE_LOGITS.expand(k, b, 1, 8, 8),
            "label": LABEL_LOGITS.expand(k, b, 10),
        }


def exact(data: dict[str, Tensor]) -> Tensor:
    return protocol.log_likelihood(ConstantDecoder(1.0).decode(torch.zeros(1, 5, 3)), data)[0]


def test_the_estimator_is_exact_when_the_proposal_is_the_prior():
    data = {m: x[:5] for m, x in protocol.synthetic(5).items()}
    got = protocol.joint_log_likelihood(ConstantDecoder(1.0), data, k=7, batch=2, chunk=3)
    torch.testing.assert_close(got, exact(data), rtol=0, atol=1e-5)


def test_the_estimator_weighs_another_proposal_back_to_the_truth():
    """q = N(0, 1.3²) instead of the prior: the weights p(z)/q(z) average to 1."""
    torch.manual_seed(0)
    data = {m: x[:5] for m, x in protocol.synthetic(5).items()}
    got = protocol.joint_log_likelihood(ConstantDecoder(1.3), data, k=20_000, chunk=5_000)
    torch.testing.assert_close(got, exact(data), rtol=0, atol=0.03)
    assert not torch.allclose(got, exact(data), rtol=0, atol=1e-6)  # it is an estimate


def test_the_protocol_scores_our_models_as_the_project_does():
    """The common estimator through our adapter and the project's own joint_nll estimate the
    same log p(x) (MoPoE: a mixture proposal)."""
    from core.metrics.likelihood import joint_nll

    torch.manual_seed(0)
    model = ours.build("mopoe", {}).eval()
    test = {m: x[:40] for m, x in protocol.digits("test").items()}
    torch.manual_seed(1)
    common = -protocol.joint_log_likelihood(ours.Adapter(model), test, k=2000).mean()
    own = joint_nll(model, ours.dataset(test), k=2000, generator=torch.Generator().manual_seed(2))
    assert float(common) == pytest.approx(own["joint_nll"], abs=0.05)
    assert 30 < float(common) < 80  # an untrained model: far from the trained 25 nats


def test_our_runner_tasks_and_the_result_cache(tmp_path, monkeypatch):
    spec = {"task": "quality", "model": "mvtcae", "seed": 0, "epochs": 1, "batch_size": 64}
    spec["k"] = 4
    result = compare.run("ours", spec, tmp_path)
    assert {"nll", "test_loss", "image_to_label", "label_to_image", "parameters"} <= set(result)
    assert 0 <= result["image_to_label"] <= 1 and math.isfinite(result["nll"])
    speed_spec = {"task": "speed", "model": "mvae", "batch_size": 32, "size": 96, "epochs": 2}
    speed_spec["matrix_products"] = True  # a third epoch, profiled, not timed
    speed = compare.run("ours", speed_spec, tmp_path)
    assert len(speed["epoch_seconds"]) == 2 and speed["samples_per_s"] > 0
    # the products are part of the profiled step (the timed epochs are others: load may differ)
    assert 0 < speed["matrix_product_seconds_per_step"] < speed["profiled_step_seconds"]
    evaluation = compare.run(
        "ours", {"task": "evaluation", "model": "jmvae", "batch_size": 16, "k": 3, "n_test": 20}
    )
    assert evaluation["nll_seconds"] > 0 and evaluation["coherence_seconds"] > 0

    def no_subprocess(*args, **kwargs):
        raise AssertionError("a cached task ran again")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    assert compare.run("ours", spec, tmp_path) == result  # quality: reused
    with pytest.raises(AssertionError, match="ran again"):
        compare.run("ours", {**spec, "seed": 1}, tmp_path)  # another spec: run
    with pytest.raises(AssertionError, match="ran again"):  # timings: never reused
        compare.run("ours", speed_spec, tmp_path)


def test_the_references_run_with_the_environment_asked_for(tmp_path, monkeypatch):
    """--reference-env reaches the reference's interpreter (not ours), and a cached result
    of one environment is not reused for another."""
    probe = tmp_path / "probe.py"
    probe.write_text('import json, os\nprint(json.dumps({"seen": os.environ.get("PROBE")}))\n')

    class Here:
        @staticmethod
        def python() -> str:
            return sys.executable

    monkeypatch.setitem(compare.RUNNERS_BY_LIBRARY, "probe", (str(probe), Here))
    spec = {"task": "quality", "model": "mvae"}
    assert compare.run("probe", spec, tmp_path)["seen"] is None
    monkeypatch.setitem(compare.REFERENCE_ENV, "PROBE", "kept")
    assert compare.run("probe", spec, tmp_path)["seen"] == "kept"  # not the cached None


def test_the_quality_bar_is_the_reference_mean_within_two_std():
    ref = {"nll": [25.0, 25.2, 25.4], "image_to_label": [0.7, 0.72, 0.74]}
    ref["label_to_image"] = [0.8, 0.8, 0.8]
    ref["test_loss"] = [1.0, 1.0, 1.0]
    good = {**ref, "nll": [25.5, 25.6, 25.6]}  # mean 25.57 <= 25.2 + 2 * 0.2
    assert compare.verdict(ref, good) == {
        "nll": True,
        "image_to_label": True,
        "label_to_image": True,
    }
    worse = {**ref, "nll": [25.7, 25.6, 25.65], "label_to_image": [0.79, 0.8, 0.8]}
    assert compare.verdict(ref, worse) == {
        "nll": False,
        "image_to_label": True,
        "label_to_image": False,
    }


def test_every_model_is_compared_or_said_why_not():
    from tests.core.models.cases import built_in_models

    assert set(compare.MODELS).isdisjoint(compare.NOT_COMPARED)
    assert set(compare.MODELS) | set(compare.NOT_COMPARED) == built_in_models()
    assert set(compare.MODELS) >= compare.MULTIVIEW


def test_the_matrix_product_clock_counts_the_layers_products_only():
    layer = torch.nn.Linear(256, 256)
    x = torch.randn(64, 256)
    with torch.profiler.profile() as elementwise:
        for _ in range(5):
            torch.exp(x).sum()
    assert ours.matrix_product_seconds(elementwise) == 0
    with torch.profiler.profile() as layers:
        for _ in range(5):
            layer(x).relu().sum().backward()  # addmm forward, mm for both gradients
    names = {e.key for e in layers.key_averages()}
    assert {"aten::addmm", "aten::mm"} <= names
    total = sum(e.self_cpu_time_total for e in layers.key_averages()) / 1e6
    assert 0 < ours.matrix_product_seconds(layers) < total


def test_a_speed_run_times_the_epochs_after_the_untimed_ones():
    assert protocol.steady_samples_per_s([10.0, 4.0, 2.0, 3.0], 600) == 200  # median of 4, 2, 3
    assert protocol.steady_samples_per_s([10.0, 4.0, 2.0, 3.0], 600, untimed=2) == 200  # upper
    assert protocol.steady_samples_per_s([10.0, 4.0, 2.0], 600, untimed=2) == 300
    assert protocol.steady_samples_per_s([5.0], 600) == 120  # one epoch: itself


def test_a_staged_model_is_also_timed_in_its_later_stage(monkeypatch):
    """TELBO's row 'stage 2': both libraries get warmup 1 and one epoch more, and its first two
    epochs (stage 1, and stage 2's first with its compile) are not timed."""
    specs: list[tuple[str, dict]] = []

    def fake_run(library, spec, cache=None):
        specs.append((library, spec))
        seconds = [9.0, 7.0, 1.0] if spec.get("untimed") == 2 else [9.0, 1.0]
        return {"samples_per_s": 6400.0, "epoch_seconds": seconds,
                "matrix_product_seconds_per_step": 0.004}  # fmt: skip

    monkeypatch.setattr(compare, "run", fake_run)
    out = compare.speed(["telbo", "mvae"], [64], 1, 6400, 2, {}, interleaved=False)
    assert list(out) == ["telbo bs 64", "mvae bs 64", "telbo stage 2 bs 64"]
    later = [(lib, s) for lib, s in specs if s.get("untimed") == 2]
    assert {lib for lib, _ in later} == {"multivae", "ours"} and len(later) == 3
    for _, spec in later:
        assert spec["model"] == "telbo" and spec["epochs"] == 3
        assert spec["options"]["warmup"] == 1
    assert next(s for lib, s in later if lib == "ours")["options"]["rescale_likelihoods"]
    assert out["telbo stage 2 bs 64"]["compile_seconds"] == pytest.approx(9 + 7 - 2 * 1)
    assert out["telbo bs 64"]["compile_seconds"] == pytest.approx(9 - 1)
    assert all("warmup" not in s["options"] for _, s in specs if "untimed" not in s)


def test_warm_steps_leave_more_epochs_untimed_in_both_kinds_of_rows(monkeypatch):
    """With 100 steps an epoch, 1250 warm steps leave the first 13 epochs untimed (14 in a
    'stage 2' row: the stage's steps count), the first stage of a first-stage row lasts through
    its timed epochs and the epoch profiled after them, and compile seconds still come from the
    warm-up epochs."""
    specs: list[dict] = []

    def fake_run(library, spec, cache=None):
        specs.append(spec)
        seconds = [9.0] + [1.0] * (spec["epochs"] - 1)
        return {"samples_per_s": 6400.0, "epoch_seconds": seconds,
                "matrix_product_seconds_per_step": 0.004}  # fmt: skip

    monkeypatch.setattr(compare, "run", fake_run)
    out = compare.speed(["telbo"], [64], 1, 6400, 2, {}, interleaved=False, warm_steps=1250)
    first = [s for s in specs if s["options"].get("warmup") != 1]
    later = [s for s in specs if s["options"].get("warmup") == 1]
    assert {s["untimed"] for s in first} == {13} and {s["untimed"] for s in later} == {14}
    assert all(s["epochs"] == 1 + s["untimed"] for s in specs)  # one timed epoch, as without
    assert {s["options"]["warmup"] for s in first} == {15}  # stage 1 through epoch 14 + 1
    assert out["telbo bs 64"]["compile_seconds"] == pytest.approx(9 - 1)
    assert out["telbo stage 2 bs 64"]["compile_seconds"] == pytest.approx(9 + 1 - 2 * 1)


def test_a_reference_flushes_denormals_when_its_environment_asks(monkeypatch):
    from core.training.denormals import denormals_flushed, set_flush_denormals

    protocol.flush_denormals_if_asked()
    assert not denormals_flushed()
    monkeypatch.setenv(protocol.FLUSH_DENORMALS, "1")
    try:
        protocol.flush_denormals_if_asked()
        assert denormals_flushed()
    finally:
        set_flush_denormals(False)


def test_the_speed_table_gives_each_model_its_matrix_product_ceiling(monkeypatch):
    """Ratios and ceilings are taken run by run: ceiling = the reference's step seconds (batch
    over its samples/s) over our step's matrix-product seconds."""
    reference = iter([3200.0, 6400.0])  # samples/s of runs 1 and 2: steps of 20 and 10 ms
    products = iter([0.004, 0.005])

    reference_epochs = iter([[9.0, 4.0], [9.0, 2.0]])  # timed: 4 s, then 2 s

    def fake_run(library, spec, cache=None):
        if library != "ours":
            return {"samples_per_s": next(reference), "epoch_seconds": next(reference_epochs)}
        if spec.get("compile"):
            return {"samples_per_s": 9600.0, "epoch_seconds": [30.0, 1.0]}
        return {"samples_per_s": 8000.0, "matrix_product_seconds_per_step": next(products)}

    monkeypatch.setattr(compare, "run", fake_run)
    out = compare.speed(["mvae"], [64], 2, 12_800, 2, {}, interleaved=False)["mvae bs 64"]
    assert out["ceiling"] == pytest.approx((0.020 / 0.004 + 0.010 / 0.005) / 2)  # 5 and 2
    assert out["matrix_product_seconds_per_step"] == pytest.approx(0.0045)
    assert out["ratios"]["ours"] == pytest.approx([2.5, 1.25])
    assert out["epoch_seconds"]["reference"] == [4.0, 2.0]  # the untimed first epochs left out
    assert out["fastest_ratio"] == {"ours": None, "ours compiled": 2.0}  # 2 s over 1 s
    results = {"speed": {"mvae bs 64": out}, "params": {"speed_size": 12_800, "speed_runs": 2}}
    results["machine"] = compare.finish(compare.machine())
    results["reference"] = {"multivae": {"multivae": "1.0.3"}}
    row = next(line for line in compare.markdown(results).splitlines() if "mvae bs 64" in line)
    assert "| 4.50 | 3.50x |" in row and row.endswith("| 2.00x |")


GATED = """
import json, sys, time
sys.path.insert(0, {root!r})
from bench.compare.protocol import EpochGate
spec = json.loads(sys.argv[1])
if spec.get("fail"):
    sys.exit("cannot train " + spec["name"])
gate, spans = EpochGate(spec), []
for epoch in range(spec["epochs"] + bool(spec.get("matrix_products")) - spec.get("short", 0)):
    gate.wait()
    start = time.time()
    time.sleep(0.02)
    spans.append([start, time.time()])
    gate.report(spans[-1][1] - start)
print("a library's own log line")
print(json.dumps({{"name": spec["name"], "spans": spans, "samples_per_s": 1.0}}))
"""


@pytest.fixture
def gated(tmp_path):
    """A runner script that trains its epochs through the protocol's gate, noting when."""
    script = tmp_path / "gated.py"
    script.write_text(GATED.format(root=str(compare.HERE.parents[1])))
    return script


def test_interleaved_runners_train_one_epoch_at_a_time_in_the_rounds_order(gated):
    def runner(name: str, epochs: int, **extra) -> interleave.Runner:
        spec = {"name": name, "epochs": epochs, "interleaved": True, **extra}
        return interleave.Runner([sys.executable, str(gated), json.dumps(spec)], None, epochs)

    runners = {"a": runner("a", 3), "b": runner("b", 3), "c": runner("c", 3, short=1)}
    results = interleave.alternate(runners, lambda names, e: compare.rotated(names, e))
    spans = sorted((s, e, name) for name, r in results.items() for s, e in r["spans"])
    assert [name for _, _, name in spans] == list("abc" + "bca" + "ab")  # c ended after two
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))  # never at once
    failing = {"a": runner("a", 2), "b": runner("b", 2, fail=True)}
    with pytest.raises(RuntimeError, match="cannot train b"):
        interleave.alternate(failing, lambda names, e: names)
    assert all(r.process.poll() is not None for r in failing.values())  # none left running


def test_an_interleaved_speed_run_gives_each_runner_its_epochs(gated, monkeypatch):
    class Here:
        @staticmethod
        def python() -> str:
            return sys.executable

    monkeypatch.setitem(compare.RUNNERS_BY_LIBRARY, "gated", (str(gated), Here))
    spec = {"epochs": 2, "interleaved": True}
    tasks = {
        "reference": ("gated", {"name": "reference", **spec}),
        "ours": ("gated", {"name": "ours", "matrix_products": True, **spec}),
    }
    results = compare.run_speed_tasks(tasks, 1, interleaved=True)
    assert [len(results[n]["spans"]) for n in ("reference", "ours")] == [2, 3]  # + profiled
    first = min((s, n) for n, r in results.items() for s, _ in r["spans"])
    assert first[1] == "ours"  # run 1: the order rotated by one
