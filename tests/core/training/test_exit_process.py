"""`distributed.exit_process`: a finished rank's process ends with its status and its output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import logging, sys
from core.training.distributed import exit_process
logging.basicConfig(filename=sys.argv[1], level=logging.INFO)
logging.info("logged before the exit")
print("printed before the exit")
import atexit
atexit.register(print, "an atexit handler ran")
exit_process(3)
print("not reached")
"""


def test_the_process_ends_with_the_status_its_output_and_log_flushed(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(log)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stdout == "printed before the exit\n"  # a pipe: buffered until the flush
    assert "logged before the exit" in log.read_text()
