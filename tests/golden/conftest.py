"""Fixtures of the golden-model tests."""

from __future__ import annotations

import pytest

from tests.golden.variants import VARIANTS


@pytest.fixture(params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    """Each variant name in turn."""
    return request.param
