"""A training job on several processes: the worker launches them with torchrun and follows them.

`launch` (in the worker) writes `<job>/train/launch.json`, starts `torchrun --standalone
--nproc-per-node N -m workers.train_ranks <job folder>` (one process per GPU for `resources.gpus`,
CPU processes with gloo for `resources.processes`), and while it runs copies the state rank 0
writes (`state.json`) into the job's progress; a cancel creates `STOP`, which every rank sees at
its next step. `main` (in each rank) trains with `fit(resume=True)`, so a redelivered job
continues from its last checkpoint; rank 0 writes `result.json` once every rank has finished.
The ranks die with the worker (a parent-death signal): a lost worker never leaves training
behind.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from workers.context import JobContext
from workers.specs import TrainSpec

LAUNCH, STATE, RESULT, STOP, LOG = "launch.json", "state.json", "result.json", "STOP", "ranks.log"
log = logging.getLogger("workers.train_ranks")


class RanksFailed(RuntimeError):
    """The torchrun processes exited with an error (its log's tail is in the message)."""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the worker that started it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def launch(ctx: JobContext, spec: TrainSpec, out: Path, progress: Any, budget_s: float) -> dict:
    """Train the job on `spec.resources.world_size` processes; the run's summary (as
    `jobs_train.outcome` gives it)."""
    from core.training.callbacks import read_state

    out.mkdir(parents=True, exist_ok=True)
    for name in (STOP, RESULT, STATE):
        (out / name).unlink(missing_ok=True)
    (out / LAUNCH).write_text(json.dumps({"spec": spec.model_dump(), "budget_s": budget_s}))
    n = spec.resources.world_size
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={n}", "-m", "workers.train_ranks", str(ctx.folder)]  # fmt: skip
    threads = max(1, (os.cpu_count() or 1) // n)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with (out / LOG).open("w") as log:
        proc = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        while proc.poll() is None:
            time.sleep(min(ctx.settings.progress_interval_s, 1.0))
            state = read_state(out / STATE)
            if state is not None:
                progress.follow(state)
            if ctx.cancel.is_set():
                (out / STOP).touch()
    return finished(out, proc.returncode)


def finished(out: Path, returncode: int) -> dict:
    """The run's summary once torchrun has exited with `returncode`. Rank 0 writes it only
    after every rank has left the process group, so a summary means the whole run finished: a
    nonzero status after that (a crash at interpreter exit) is logged, not a failed job."""
    tail = (out / LOG).read_text(errors="replace")[-2000:]
    if not (out / RESULT).is_file():
        raise RanksFailed(f"training processes exited with status {returncode}: {tail}")
    if returncode != 0:
        log.warning("training processes exited with status %s after the run finished: %s",
                    returncode, tail)  # fmt: skip
    return json.loads((out / RESULT).read_text())


def main(folder: str) -> NoReturn:
    """One rank of a job's training (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK)."""
    from core.training import StopOnEvent, TimeLimit, Trainer, distributed
    from core.training.callbacks import StateFile, writing_process
    from workers.settings import WorkerSettings
    from workers.train_setup import outcome, prepare

    out = Path(folder) / "train"
    launched = json.loads((out / LAUNCH).read_text())
    spec = TrainSpec.model_validate(launched["spec"])
    model, train, test, config = prepare(WorkerSettings(), spec, out)
    state = StateFile(out / STATE)
    callbacks = [
        state,
        StopOnEvent(lambda: (out / STOP).exists(), "cancelled"),
        TimeLimit(launched["budget_s"]),
    ]
    trainer = Trainer(model, train, test, config, callbacks, dataset_name=spec.dataset)
    result = trainer.fit(resume=True)
    distributed.leave()  # every rank is done: a result file means the whole run finished
    if writing_process():
        summary = outcome(result, state.resumed_from_epoch, spec.resources.world_size)
        (out / f".{RESULT}.tmp").write_text(json.dumps(summary))
        os.replace(out / f".{RESULT}.tmp", out / RESULT)  # whole or absent
    distributed.exit_process(0)


if __name__ == "__main__":
    main(sys.argv[1])
