"""Redis mode (broker, results and job records in Redis): all three job types end to end."""

from __future__ import annotations

import pytest

from tests.workers.e2e import train_augment_evaluate


@pytest.mark.slow
def test_train_augment_evaluate_redis(make_env, redis_server) -> None:
    train_augment_evaluate(make_env(redis_server.url))
