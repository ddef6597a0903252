"""Each benchmark part in its tiniest mode, checking the JSON it writes, so bench/ doesn't rot.
The figures themselves are not checked (a shared CI machine is no place to time things)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import inference, memory, serving, training


def _load(out: Path, name: str) -> dict:
    assert (out / f"{name}.md").read_text().startswith("# ")
    data = json.loads((out / f"{name}.json").read_text())
    assert {"cpu", "cores", "torch", "loadavg_start", "loadavg_end"} <= set(data["machine"])
    return data


def test_training(tmp_path: Path) -> None:
    args = [
        "--models",
        "mopoe",
        "--datasets",
        "synthetic",
        "--batch-sizes",
        "32",
        "--m-values",
        "",
        "--size",
        "256",
        "--warmup",
        "1",
        "--steps",
        "2",
        "--repeats",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert training.main(args) == 0
    (run,) = _load(tmp_path, "training")["runs"]
    assert (run["part"], run["model"], run["batch_size"]) == ("models", "mopoe", 32)
    assert run["samples_per_s"] > 0 and run["peak_rss_mib"] > 0
    assert len(run["samples_per_s_runs"]) == 2 and "trainer_overhead" in run


def test_inference(tmp_path: Path) -> None:
    assert (
        inference.main(["--budget", "0.01", "--models", "digits-demo", "--out", str(tmp_path)]) == 0
    )
    runs = _load(tmp_path, "inference")["runs"]
    assert {(r["op"], r["batch"]) for r in runs} == {
        (op, b) for op in inference.OPS for b in inference.BATCHES
    }
    assert all(r["median_ms"] > 0 for r in runs)


def test_decode_rows_times_every_size_and_one_pass(tmp_path: Path) -> None:
    from bench import decode_rows

    args = ["--models", "mvae", "--rows", "64,256", "--rounds", "1", "--k", "4"]
    assert decode_rows.main([*args, "--out", str(tmp_path)]) == 0
    data = _load(tmp_path, "decode_rows")
    assert set(data["seconds"]["mvae"]) == {"64", "256", str(decode_rows.ONE_PASS)}
    assert all(v > 0 for v in data["seconds"]["mvae"].values())
    assert "| mvae |" in (tmp_path / "decode_rows.md").read_text()


@pytest.mark.slow
def test_serving(tmp_path: Path) -> None:
    args = ["--duration", "0.3", "--clients", "2", "--modes", "on", "--repeat", "2"]
    assert serving.main([*args, "--out", str(tmp_path)]) == 0
    stacks = _load(tmp_path, "serving")["stacks"]
    assert all(len(stack["rounds"]) == 2 for stack in stacks.values())
    assert set(stacks) == {"auto", "pure"} and stacks["pure"]["server"] == "h11 + asyncio"
    for stack in stacks.values():
        (point,) = stack["modes"]["on"]["points"]
        assert point["generate"]["requests"] > 0 and point["generate"]["errors"] == 0
        assert point["healthz"]["rps"] > 0 and point["generate"]["fraction_of_floor"] > 0
        assert point["uvicorn"]["errors"] == 0 and point["generate"]["fraction_of_uvicorn"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("models", ["mopoe,mvae"])
def test_memory(tmp_path: Path, models: str) -> None:
    assert memory.main(["--models", models, "--out", str(tmp_path)]) == 0
    points = _load(tmp_path, "memory")["points"]
    assert [p["models_loaded"] for p in points] == [0, 1, 2]
    assert all(p["rss_mib"] > 0 for p in points)


@pytest.mark.slow
def test_before_after_alternates_two_trees(tmp_path: Path) -> None:
    from bench import before_after

    tiny = "--models mopoe --batch-sizes 32 --size 256 --warmup 1 --steps 2 --repeats 1"
    args = ["--before", str(before_after.ROOT), "--rounds", "2", "--parts", "training"]
    assert before_after.main([*args, "--training-args", tiny, "--out", str(tmp_path)]) == 0
    data = _load(tmp_path, "before_after")
    (key,) = data["ratios"]["training"]
    assert key == "mopoe bs 32 samples/s" and len(data["ratios"]["training"][key]) == 2
    assert all(r > 0 for r in data["ratios"]["training"][key])
    assert len(data["figures"]["training"]["before"][key]) == 2


@pytest.mark.slow
def test_hardening_replays_the_hostile_cases_on_two_trees(tmp_path: Path) -> None:
    from bench import hardening

    args = ["--before", str(hardening.ROOT), "--rounds", "1", "--duration", "0.5"]
    args += ["--uploads", "1", "--connections", "4", "--out", str(tmp_path)]
    assert hardening.main(args) == 0
    data = _load(tmp_path, "hardening")
    after = data["runs"]["after"][0]
    for name in hardening.HOSTILE:
        case = after[f"hostile: {name}"]
        assert case["status"] in (200, 422) and case["seconds"] > 0
    assert after["upload 1 MiB raw body"]["status"] == 422  # random bytes are not an .npz
    assert after["seeded generate, 4 connections"]["rps"] > 0


@pytest.mark.slow
def test_model_quality_reports_nll_and_both_coherences_per_seed(tmp_path: Path) -> None:
    from bench import model_quality

    args = ["--models", "mvtcae", "--seeds", "0", "--k", "10", "--out", str(tmp_path)]
    assert model_quality.main(args) == 0
    (run,) = _load(tmp_path, "model_quality")["runs"]["mvtcae"]
    assert math.isfinite(run["joint_nll"]) and 0 <= run["image_to_label"] <= 1
    assert 0 <= run["label_to_image"] <= 1
    more = ["--models", "crmvae", "--seeds", "0", "--k", "10", "--out", str(tmp_path)]
    assert model_quality.main([*more, "--append"]) == 0
    assert set(_load(tmp_path, "model_quality")["runs"]) == {"mvtcae", "crmvae"}


def _paper_data(shapes: dict[str, list[int]], folder, seed: int = 0) -> list[str]:
    """Random train/test .npz files of the experiment's shapes, labels 0..9; the CLI arguments."""
    import torch

    from core.data import MultimodalDataset, save_npz

    g = torch.Generator().manual_seed(seed)
    for split, n in (("train", 12), ("test", 6)):
        data = {m: torch.rand(n, *s, generator=g) for m, s in shapes.items()}
        save_npz(MultimodalDataset(data, labels=torch.arange(n) % 10), folder / f"{split}.npz")
    return ["--train", str(folder / "train.npz"), "--test", str(folder / "test.npz")]


PAPER_SHAPES = {
    "polymnist": {f"m{i}": [3, 28, 28] for i in range(5)},
    "mnist_svhn": {"mnist": [1, 28, 28], "svhn": [3, 32, 32]},
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, data, settings",
    [
        ("mmvae_plus_polymnist", "polymnist", {"K": 1, "beta": 2.5, "latent_dim": 32}),
        ("cmvae_polymnist", "polymnist", {"number_of_clusters": 40, "beta": 2.5}),
        ("crmvae_translated_polymnist", "polymnist", {"latent_dim": 512, "beta": 0.1}),
        ("dmvae_mnist_svhn", "mnist_svhn", {"modalities_specific_dim": {"mnist": 1, "svhn": 4}}),
    ],
)
def test_each_paper_experiment_runs_end_to_end_on_data_of_its_benchmark_shape(
    tmp_path, name, data, settings
):
    """A few random samples in the benchmark's shapes, one epoch, the paper's settings kept."""
    from bench.paper.__main__ import main

    out = tmp_path / "run"
    args = [name, *_paper_data(PAPER_SHAPES[data], tmp_path), "--output", str(out)]
    assert main([*args, "--epochs", "1", "--k", "2"]) == 0
    report = json.loads((out / "paper_report.json").read_text())
    assert math.isfinite(report["metrics"]["likelihood"]["joint_nll"])
    assert report["experiment"]["name"] == name
    config = json.loads((out / "model" / "config.json").read_text())["config"]
    assert {key: config[key] for key in settings} == settings
    if name == "cmvae_polymnist":  # clusters selected after training, scored on the test labels
        selection = report["metrics"][name]
        assert 2 <= selection["clusters_kept"] <= 40 and 0 <= selection["nmi"] <= 1


def test_a_paper_experiment_refuses_data_of_another_shape(tmp_path):
    from bench.paper.__main__ import main

    args = ["dmvae_mnist_svhn", *_paper_data({"mnist": [1, 28, 28]}, tmp_path)]
    with pytest.raises(ValueError, match=r"MNIST-SVHN has mnist \[1, 28, 28\] and svhn"):
        main([*args, "--output", str(tmp_path / "run")])


def test_the_paper_experiments_are_listed_with_their_anchors(capsys):
    from bench.paper.__main__ import main

    assert main(["--list"]) == 0
    listing = capsys.readouterr().out
    assert "cmvae_polymnist" in listing and "Anchor: PolyMNIST 89.7 / 78.1" in listing


@pytest.mark.parametrize("setting", ["keep_freed_cpu_memory", "flush_denormals"])
def test_a_trainer_setting_is_timed_both_ways_in_fresh_processes(tmp_path: Path, setting) -> None:
    from bench import trainer_setting

    args = ["--setting", setting, "--models", "mvae", "--batch-sizes", "32", "--rounds", "1"]
    args += ["--size", "96", "--epochs", "1", "--warm-steps", "4", "--out", str(tmp_path)]
    assert trainer_setting.main(args) == 0
    results = _load(tmp_path, setting)
    assert results["params"]["setting"] == setting
    (run,) = results["runs"]
    assert (run["model"], run["batch_size"]) == ("mvae", 32)
    assert run["off_samples_per_s"] > 0 and run["on_samples_per_s"] > 0
    assert run["speedup"] == pytest.approx(run["on_samples_per_s"] / run["off_samples_per_s"])
    assert 0 <= run["off_denormal_share"] <= 1 and run["on_denormal_share"] == 0
    assert "| mvae | 32 |" in (tmp_path / f"{setting}.md").read_text()


def test_stage_gradients_times_a_later_stage_both_ways_with_identical_gradients(tmp_path: Path):
    from bench import stage_gradients

    args = ["--models", "telbo:unimodal", "--batch-sizes", "16", "--rounds", "2", "--steps", "2"]
    assert stage_gradients.main([*args, "--out", str(tmp_path)]) == 0
    (run,) = _load(tmp_path, "stage_gradients")["runs"]
    assert (run["model"], run["stage"], run["batch_size"]) == ("telbo", "unimodal", 16)
    assert run["gradients_identical"] is True
    assert len(run["speedup_runs"]) == 2 and run["stage_only_samples_per_s"] > 0
    assert "| telbo unimodal | 16 |" in (tmp_path / "stage_gradients.md").read_text()


def test_batch_indexing_times_indexed_batches_against_a_dataloader(tmp_path: Path):
    from bench import batch_indexing

    args = ["--models", "mvae", "--batch-sizes", "32", "--rounds", "2", "--size", "96"]
    assert batch_indexing.main([*args, "--out", str(tmp_path)]) == 0
    (run,) = _load(tmp_path, "batch_indexing")["runs"]
    assert (run["model"], run["batch_size"], run["steps"]) == ("mvae", 32, 3)
    for part in ("batches", "training"):
        assert len(run[part]["speedup_runs"]) == 2
        assert run[part]["indexed_seconds"] > 0 and run[part]["loader_seconds"] > 0
    assert "| mvae | 32 |" in (tmp_path / "batch_indexing.md").read_text()


def test_step_variants_times_torchs_adam_against_the_lean_one_in_turns(tmp_path: Path):
    from bench import step_variants

    args = ["--variants", "adam", "--models", "mvae", "--batch-sizes", "16", "--rounds", "2"]
    assert step_variants.main([*args, "--steps", "2", "--no-compile", "--out", str(tmp_path)]) == 0
    (run,) = _load(tmp_path, "step_variants")["runs"]
    assert (run["variant"], run["model"], run["batch_size"]) == ("adam", "mvae", 16)
    assert len(run["speedup_runs"]) == 2 and run["first_ms_per_step"] > 0
    assert run["speedup"] == pytest.approx(sum(run["speedup_runs"]) / 2)  # the median of two
    assert (
        "| adam | torch.optim.Adam(fused=True) | LeanAdam | mvae | 16 |"
        in (tmp_path / "step_variants.md").read_text()
    )


def test_step_variants_compile_ways_differ_in_one_option_only():
    """`bias` leaves out the bias pass, `wrapper` the C++ wrapper; the second way of each is
    the CPU compile as the Trainer runs it."""
    from bench import step_variants
    from core.training.compiled import cpu_options

    default = cpu_options()
    for variant, left_out in (("bias", "post_grad_custom_post_pass"), ("wrapper", "cpp_wrapper")):
        first, second = step_variants.compile_options(variant)
        assert second is None  # CompiledForward's default: cpu_options()
        assert first is not None and first.get(left_out, False) is False
        assert {k for k in default if k != left_out} <= set(first)


@pytest.mark.slow  # two compiles each
@pytest.mark.parametrize("variant", ["bias", "wrapper", "fused"])
def test_step_variants_times_the_compile_without_and_with_an_option(tmp_path: Path, variant):
    from bench import step_variants

    args = ["--variants", variant, "--models", "mvae", "--batch-sizes", "16", "--rounds", "2"]
    out = ["--out", str(tmp_path), "--name", f"step_{variant}"]
    assert step_variants.main([*args, "--steps", "2", *out]) == 0
    (run,) = _load(tmp_path, f"step_{variant}")["runs"]
    assert run["variant"] == variant and len(run["speedup_runs"]) == 2
    with pytest.raises(SystemExit):  # the option is the compile's
        step_variants.main([*args, "--no-compile", "--out", str(tmp_path)])
