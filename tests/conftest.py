"""The default run's order: its longest tests first.

pytest-xdist (`pytest -n auto`) hands tests out in collection order, the first quarter
round-robin across its workers, the rest as workers free up. A test of half a minute
collected last keeps one worker busy while the other has nothing left: on the CI's two
cores that tail was a minute of the run. The tests below (each over 15 s on a 2-core
machine, `pytest --durations=80`, December 2026) go first, in this order, so that they
start on both workers at once; every other test keeps its place, and a module's tests
keep their order (its module-scoped fixtures are set up once a worker either way).
"""

from __future__ import annotations

import pytest

#: Node-id prefixes of the longest tests, longest first.
LONGEST_FIRST = (
    "tests/sim/test_hostlink_cocotb.py::test_the_host_library_drives_the_host_link_verilog",
    "tests/flows/test_hardware_flows.py::test_demo_trains_quantizes_and_simulates",
    "tests/flows/test_synth.py::test_smoke_synthesis_of_a_small_core",
    "tests/flows/test_synth.py::test_the_icebreaker_default_core_fits_the_up5k_after_packing",
    "tests/sim/test_hostlink_cocotb.py",
    "tests/rtl/test_memory_collisions.py::test_a_training_host_link_uses_no_collided_read",
    "tests/sim/test_netlist.py",
)


def _rank(nodeid: str) -> int:
    """The place of ``nodeid``'s prefix in :data:`LONGEST_FIRST` (after them all if none)."""
    for i, prefix in enumerate(LONGEST_FIRST):
        if nodeid.startswith(prefix):
            return i
    return len(LONGEST_FIRST)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Move the tests of :data:`LONGEST_FIRST` to the front (a stable sort: the rest keep
    their order)."""
    items.sort(key=lambda item: _rank(item.nodeid))
