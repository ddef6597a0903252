"""The prepared GPU measurement (bench/gpu): the busy share's arithmetic, the steps it trains and
times, the wheels it carries, and the device script end to end, on the CPU (no GPU here)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from bench.gpu import busy, wheels

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("intervals", "share"),
    [
        ([(0, 1), (2, 3)], 2 / 3),  # a gap of 1 in a span of 3
        ([(0, 2), (1, 3)], 1.0),  # overlapping kernels count once
        ([(5, 6), (0, 4), (1, 2)], 5 / 6),  # unordered, one inside another
        ([(0, 1), (1, 2), (3, 4)], 3 / 4),  # touching intervals join
        ([(0, 2), (1, 1)], 1.0),  # an empty interval adds nothing
    ],
)
def test_the_busy_share_is_the_union_of_intervals_over_their_span(intervals, share):
    assert busy.busy_fraction(intervals) == pytest.approx(share)


def test_no_device_interval_gives_no_busy_share():
    assert busy.busy_fraction([]) is None
    assert busy.busy_fraction([(2, 2)]) is None


def test_only_operations_on_an_accelerator_are_device_intervals():
    def event(kind: torch.autograd.DeviceType, start: float, end: float) -> SimpleNamespace:
        return SimpleNamespace(device_type=kind, time_range=SimpleNamespace(start=start, end=end))

    kinds = torch.autograd.DeviceType
    profile = SimpleNamespace(
        events=lambda: [event(kinds.CPU, 0, 9), event(kinds.CUDA, 1, 2), event(kinds.CUDA, 4, 5)]
    )
    assert busy.device_intervals(profile) == [(1, 2), (4, 5)]


def test_a_cpu_run_trains_the_steps_asked_for_and_reports_no_busy_share():
    got = busy.train("mvae", 16, "eager", "cpu", warm=3, steps=4, profiled=2)
    assert got["steps_trained"] == 3 + 4 + 2
    assert got["busy"] is None and got["device_ops_per_step"] == 0
    assert got["samples_per_s"] > 0
    assert got["step_ms"] == pytest.approx(1e3 * 16 / got["samples_per_s"])


def test_an_unknown_way_is_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        busy.main(["--device", "cpu", "--ways", "eager,cudagraphs"])
    error = capsys.readouterr().err
    assert "--ways: cudagraphs unknown; choose from eager, compile, loader" in error


def test_the_wheels_are_pinned_to_this_environment_for_the_gpu_machines_python(tmp_path):
    pins = wheels.pins()
    assert f"pydantic=={importlib.metadata.version('pydantic')}" in pins
    assert f"zuko=={importlib.metadata.version('zuko')}" in pins
    command = wheels.download_command(tmp_path)
    assert command[command.index("--python-version") + 1] == "3.12"
    assert "--no-deps" in command and "--only-binary=:all:" in command
    assert command[-len(pins) :] == pins


def test_the_device_script_runs_end_to_end_on_the_cpu(tmp_path):
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "DEVICE": "cpu",
        "PYTHON": sys.executable,
        "WHEELS": str(tmp_path / "no-wheels"),  # this environment has what they carry
        "BUSY_ARGS": "--models mvae --batch-sizes 16 --ways eager,eager --rounds 2 --warm-steps 2 "
        "--steps 3 --profiled-steps 1",
    }
    script = ROOT / "bench" / "gpu" / "run.sh"
    done = subprocess.run(["bash", str(script)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    smoke = json.loads((tmp_path / "smoke.json").read_text())
    assert smoke["runs"][0]["ways"]["eager"]["runs"][0]["steps_trained"] == 2 + 3 + 2
    results = json.loads((tmp_path / "gpu_busy.json").read_text())
    (run,) = results["runs"]
    assert (run["model"], run["batch_size"], results["device_name"]) == ("mvae", 16, "the CPU")
    assert len(run["ways"]["eager"]["runs"]) == 2  # a way named twice runs once a round
    assert run["ways"]["eager"]["speedup"] == 1.0
    assert "| mvae | 16 | eager |" in (tmp_path / "gpu_busy.md").read_text()
    assert "| mvae | 16 | eager |" in (tmp_path / "busy.log").read_text()


@pytest.mark.parametrize("option", ["--rounds", "--warm-steps", "--steps", "--profiled-steps"])
def test_a_count_under_one_is_refused_by_name(option, capsys):
    with pytest.raises(SystemExit):
        busy.main(["--device", "cpu", option, "0"])
    assert f"argument {option}: must be at least 1, got 0" in capsys.readouterr().err
