"""Embedded mode (filesystem broker, file records): a real worker runs all three job types."""

from __future__ import annotations

import pytest

from tests.workers.e2e import train_augment_evaluate


@pytest.mark.slow
def test_train_augment_evaluate_embedded(make_env) -> None:
    train_augment_evaluate(make_env())
