"""Speed runs of several libraries alternated epoch by epoch: each runner is its own interpreter,
started at once, and trains one epoch only when the driver lets it (protocol.EpochGate), so one
library trains at a time and adjacent epochs of the libraries share the machine's load, which on
a shared machine drifts within seconds."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from bench.compare.protocol import EPOCH, WAITING


class Runner:
    """One speed task in its own interpreter, trained epoch by epoch on the driver's word."""

    def __init__(self, argv: list[str], env: dict[str, str] | None, epochs: int) -> None:
        # its stderr, read when it fails (a pipe nobody reads could fill and block it);
        # closed by `alternate` when the runner is done
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
        )
        self.left = epochs
        self.lines: list[str] = []
        self.result: dict[str, Any] | None = None

    def _read_until(self, marker: str) -> bool:
        """Read its output up to a line starting with `marker`; False when it ended first."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(marker):
                return True
            self.lines.append(line)
        return False

    def ready(self) -> None:
        """Wait until it has set up and waits for its first epoch."""
        if not self._read_until(WAITING):
            self._finish()

    def epoch(self) -> None:
        """Let it train one epoch, and wait until it is idle again (waiting, or done)."""
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        self.left -= 1
        if not (self._read_until(EPOCH) and self.left and self._read_until(WAITING)):
            self._finish()

    def _finish(self) -> None:
        """Its output to the end, its exit, and the JSON object of its last line."""
        assert self.process.stdout is not None
        self.lines += self.process.stdout.readlines()
        self.left = 0
        if self.process.wait() != 0 or not self.lines:
            self.stderr.seek(0)
            raise RuntimeError(f"{self.process.args[:2]} failed:\n{self.stderr.read()[-4000:]}")
        self.result = json.loads(self.lines[-1])


def alternate(
    runners: dict[str, Runner], order: Callable[[list[str], int], Sequence[str]]
) -> dict[str, dict[str, Any]]:
    """Every runner's result, its epochs alternated: round e lets each runner with epochs left
    train one, in `order(names, e)`; no runner starts before all have set up."""
    names = list(runners)
    try:
        for runner in runners.values():
            runner.ready()
        e = 0
        while any(r.left for r in runners.values()):
            for name in order(names, e):
                if runners[name].left:
                    runners[name].epoch()
            e += 1
    finally:
        for runner in runners.values():
            if runner.process.poll() is None:
                runner.process.kill()
                runner.process.wait()
            runner.stderr.close()
    return {name: r.result for name, r in runners.items() if r.result is not None}
