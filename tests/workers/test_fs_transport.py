"""The embedded broker's transport: messages appear in the queue folder only whole."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from kombu import Connection

from workers import fs_transport
from workers.celery_app import FILESYSTEM_TRANSPORT, celery_config, make_celery
from workers.settings import WorkerSettings


def _connection(folder: Path) -> Connection:
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    return Connection("filesystem://", transport=fs_transport.Transport, transport_options=options)


def test_messages_round_trip(tmp_path: Path) -> None:
    with _connection(tmp_path) as conn:
        queue = conn.SimpleQueue("jobs")
        for i in range(3):
            queue.put({"job": i})
        received = []
        for _ in range(3):
            message = queue.get(timeout=2)
            received.append(message.payload["job"])
            message.ack()
        queue.close()
    assert sorted(received) == [0, 1, 2]  # ordered by millisecond, as kombu's
    assert not list(tmp_path.glob(f"*{fs_transport.PARTIAL_SUFFIX}"))


def test_a_message_is_written_whole_before_it_is_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], bytes]] = []
    replace = os.replace

    def checking(src: str, dst: str) -> None:
        visible = sorted(p.name for p in tmp_path.glob("*.jobs.msg"))
        seen.append((visible, Path(src).read_bytes()))
        replace(src, dst)

    monkeypatch.setattr(fs_transport.os, "replace", checking)
    with _connection(tmp_path) as conn:
        queue = conn.SimpleQueue("jobs")
        queue.put({"job": "whole"})
        message = queue.get(timeout=2)
        assert message.payload == {"job": "whole"}
        message.ack()
        queue.close()
    ((visible, written),) = seen
    body = json.loads(base64.b64decode(json.loads(written)["body"]))
    assert visible == [] and body == {"job": "whole"}  # complete, under a name no one takes


def test_embedded_mode_uses_it_and_redis_mode_does_not(tmp_path: Path) -> None:
    embedded = WorkerSettings(data_dir=tmp_path, redis_url=None)
    assert celery_config(embedded)["broker_transport"] == FILESYSTEM_TRANSPORT
    with make_celery(embedded).connection_for_write() as conn:
        assert isinstance(conn.transport, fs_transport.Transport)
    redis = WorkerSettings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/3")
    assert "broker_transport" not in celery_config(redis)
