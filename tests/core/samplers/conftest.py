"""Module fixtures: tiny trained models and the digits splits."""

from __future__ import annotations

import pytest

from core.data.dataset import MultimodalDataset
from core.models import MultimodalVAE
from tests.core.samplers.helpers import digits, train, train_mopoe


@pytest.fixture(scope="session")
def mvae() -> MultimodalVAE:
    return train()


@pytest.fixture(scope="session")
def mopoe() -> MultimodalVAE:
    return train_mopoe()


@pytest.fixture(scope="session")
def digits_train() -> MultimodalDataset:
    return digits("train")


@pytest.fixture(scope="session")
def digits_test() -> MultimodalDataset:
    return digits("test")
