"""The server's garbage-collector settings: on while an app runs, Python's defaults after."""

from __future__ import annotations

import gc
import os

from service import gc_tuning
from service.logging import _ids, new_request_id


def test_running_app_tunes_the_collector_and_restores_it(make_client) -> None:
    default = gc.get_threshold()
    with make_client() as client:
        assert gc.get_threshold()[0] == gc_tuning.GEN0_THRESHOLD
        assert gc.get_freeze_count() > 0  # startup and the preloaded model are frozen
        assert client.delete("/v1/models/tiny").status_code == 204  # an unload re-settles
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == default and gc.get_freeze_count() == 0


def test_tuning_off_leaves_the_collector_alone(make_client) -> None:
    default = gc.get_threshold()
    with make_client(gc_tuning=False):
        assert gc.get_threshold() == default and gc.get_freeze_count() == 0


def test_generated_request_ids_differ_across_forks() -> None:
    first = new_request_id(None)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child writes one id and exits at once
        os.write(write, new_request_id(None).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert len(child) == len(first) == 32
    assert child[:16] != first[:16] and new_request_id(None)[:16] == _ids.prefix == first[:16]
