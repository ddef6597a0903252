"""Data-parallel training under torchrun (gloo on this CPU): 2 processes give the weights of 1
process with the same global batch; a stop one process saw ends every process with its reason; a
killed process fails the run, which resumes exactly from its last checkpoint; a checkpoint is
never resumed by a different number of processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from core.training import Callback, Trainer, TrainerConfig, TrainerState, distributed
from core.training.distributed import World
from tests.core.hub_server import free_port
from tests.core.training.conftest import synthetic, tiny_mvae

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def command(output: Path, nproc: int, spec: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "core.cli.main", "train", "--spec", str(spec), "--output",
            str(output), "--nproc", str(nproc), "--no-progress", *extra]  # fmt: skip


def write_spec(tmp_path: Path, model: str, epochs: int, **trainer: object) -> Path:
    spec = {
        "model": {"model_type": model, "latent_dim": 4,
                  "encoder": {"kind": "mlp", "hidden": [32]},
                  "decoder": {"kind": "mlp", "hidden": [32]}},
        "trainer": {"epochs": epochs, "batch_size": 64, "device": "cpu", **trainer},
        "dataset": "digits",
    }  # fmt: skip
    path = tmp_path / f"{model}-{epochs}.json"
    path.write_text(json.dumps(spec))
    return path


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**clean, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def train(output: Path, nproc: int, spec: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(output, nproc, spec, *extra), cwd=ROOT, env=env(), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip


def weights(output: Path) -> dict[str, torch.Tensor]:
    return load_file(output / "model" / "model.safetensors")


def test_shards_cover_each_global_batch_once_in_order() -> None:
    batch = list(range(7))
    shards = [World(rank, 3).shard(batch) for rank in range(3)]
    assert shards == [[0, 1], [2, 3], [4, 5, 6]]
    assert World().shard(batch) == batch


def test_two_processes_train_the_weights_of_one(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "ae", epochs=2)  # deterministic: no per-rank noise streams
    one, two = train(tmp_path / "one", 1, spec), train(tmp_path / "two", 2, spec)
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key
    summary = json.loads(two.stdout)  # rank 0 alone prints the summary
    assert summary["epochs_run"] == 2 and summary["global_step"] == 2 * 23
    first = [
        json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    ]
    single = [
        json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()
    ]
    assert len(first) == 2  # one writer: rank 0, with metrics reduced over both shards
    assert first[-1]["train_loss"] == pytest.approx(single[-1]["train_loss"], rel=1e-4)
    assert first[-1]["eval_loss"] == pytest.approx(single[-1]["eval_loss"], rel=1e-4)


class StopOnRankOne(Callback):
    """Stops rank 1 alone — at step 3, at the start of epoch 2 or at the end of epoch 1 — as a
    cancel file seen by one rank before the other."""

    def __init__(self, where: str) -> None:
        self.where = where

    def _stop(self, where: str, state: TrainerState) -> None:
        if os.environ["RANK"] == "1" and where == self.where:
            state.request_stop("seen by rank 1 alone")

    def on_step_end(self, state: TrainerState) -> None:
        if state.global_step == 3:
            self._stop("step", state)

    def on_epoch_start(self, state: TrainerState) -> None:
        if state.epoch == 2:
            self._stop("epoch start", state)

    def on_epoch_end(self, state: TrainerState) -> None:
        if state.epoch == 1:
            self._stop("epoch end", state)


def train_rank(rank: int, port: int, folder: str, where: str) -> None:
    """One of two spawned processes: trains with `StopOnRankOne`, writes its result's stop."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    config = TrainerConfig(epochs=5, batch_size=16, output_dir=f"{folder}/out")
    result = Trainer(tiny_mvae(), synthetic(), None, config, [StopOnRankOne(where)]).fit()
    stop = {"reason": result.stop_reason, "step": result.global_step}
    Path(folder, f"rank{rank}.json").write_text(json.dumps(stop))
    distributed.leave()
    distributed.exit_process(0)  # as the CLI's ranks end (see exit_process)


@pytest.mark.parametrize("where", ["step", "epoch start", "epoch end"])
def test_a_stop_one_process_saw_ends_every_process_with_its_reason(
    tmp_path: Path, where: str
) -> None:
    port = free_port()  # for the rendezvous
    args = (port, str(tmp_path), where)
    mp.start_processes(train_rank, args=args, nprocs=2, start_method="spawn")
    stops = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    step = 3 if where == "step" else 6  # an epoch's stop: after epoch 1, 96 samples / 16
    assert stops == [{"reason": "seen by rank 1 alone", "step": step}] * 2


def children(parent: int) -> dict[int, dict[bytes, bytes]]:
    """pid -> environment of each process whose parent is `parent` (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            ppid = int(next(x for x in status.splitlines() if x.startswith("PPid:")).split()[1])
            pairs = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, StopIteration):
            continue
        if ppid == parent:
            found[int(entry.name)] = dict(p.partition(b"=")[::2] for p in pairs if p)
    return found


def rank_pids(cli: int) -> dict[int, int]:
    """Rank -> pid of the workers torchrun started under the `mmvae train --nproc` process."""
    ranks = {}
    for launcher in children(cli):
        for pid, environ in children(launcher).items():
            if b"RANK" in environ:
                ranks[int(environ[b"RANK"])] = pid
    return ranks


def test_a_killed_process_fails_the_run_which_resumes_exactly(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "ae", epochs=6, checkpoint_every_steps=5)
    out = tmp_path / "run"
    proc = subprocess.Popen(command(out, 2, spec), cwd=ROOT, env=env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list((out / "checkpoints").glob("step-*")):
            ranks = rank_pids(proc.pid)
            if 1 in ranks:
                os.kill(ranks[1], signal.SIGKILL)
                break
        time.sleep(0.02)
    proc.communicate(timeout=120)
    assert proc.returncode != 0, "the run went on without its killed process"
    assert not (out / "model").exists()  # nothing published by a failed run
    resumed = train(out, 2, spec, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = train(tmp_path / "straight", 2, spec)
    assert straight.returncode == 0, straight.stderr[-3000:]
    a, b = weights(out), weights(tmp_path / "straight")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    logs = [(d / "metrics.jsonl").read_text().splitlines() for d in (out, tmp_path / "straight")]
    assert [json.loads(line)["epoch"] for line in logs[0]] == list(range(1, 7))
    for resumed_line, straight_line in zip(*logs, strict=True):  # the epoch cut by the kill too
        r, s = json.loads(resumed_line), json.loads(straight_line)
        assert r["train_loss"] == pytest.approx(s["train_loss"], rel=1e-5)
    alone = train(out, 1, spec, "--resume")
    assert alone.returncode != 0 and "written by 2 process(es), this run has 1" in alone.stderr
