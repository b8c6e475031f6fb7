"""Shared by the cocotb runners: one build folder per pytest-xdist worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def build_root() -> Path:
    """``build/cocotb/<worker>``: where this process builds its simulations.

    Builds are reused across runs (one folder per Verilog hash), but two processes must
    never compile or run in the same folder at once, so each pytest-xdist worker
    (PYTEST_XDIST_WORKER, ``gw0``...) has its own root, and a run without xdist uses
    ``main``.
    """
    return REPO / "build" / "cocotb" / os.environ.get("PYTEST_XDIST_WORKER", "main")
