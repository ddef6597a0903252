"""How the worker reads the end of a multi-process training run (workers/train_ranks.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from workers.train_ranks import LOG, RESULT, RanksFailed, finished


def _run_folder(tmp_path: Path, log: str, result: dict | None) -> Path:
    (tmp_path / LOG).write_text(log)
    if result is not None:
        (tmp_path / RESULT).write_text(json.dumps(result))
    return tmp_path


def test_a_clean_exit_gives_rank_0s_summary(tmp_path: Path) -> None:
    out = _run_folder(tmp_path, "", {"epochs_run": 3})
    assert finished(out, 0) == {"epochs_run": 3}


def test_no_summary_fails_with_the_status_and_the_log_tail(tmp_path: Path) -> None:
    out = _run_folder(tmp_path, "x" * 3000 + "RuntimeError: gloo connect failed", None)
    with pytest.raises(RanksFailed, match=r"status 1: x+RuntimeError: gloo connect failed$") as e:
        finished(out, 1)
    assert len(str(e.value)) < 2100  # the tail, not the whole log


def test_a_crash_after_the_summary_keeps_the_run_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = _run_folder(tmp_path, "Segmentation fault at exit", {"epochs_run": 3})
    with caplog.at_level(logging.WARNING, logger="workers.train_ranks"):
        assert finished(out, -11) == {"epochs_run": 3}
    assert "status -11 after the run finished: Segmentation fault at exit" in caplog.text
