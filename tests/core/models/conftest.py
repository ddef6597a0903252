"""Fixtures for model tests: `variant` runs a test once per model configuration."""

import pytest

from tests.core.models.cases import VARIANTS


@pytest.fixture(params=sorted(VARIANTS))
def variant(request) -> str:
    return request.param
