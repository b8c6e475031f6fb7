"""Collection rules and shared runs of the flow tests."""

import pytest

from ffcl_hw.cli import main

#: A tiny FFDL net on digits: its training core simulates a sample in a few hundred
#: cycles and synthesises in seconds.
TINY = ["--hidden", "6,5", "--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def tiny_int_run(tmp_path_factory):
    """TINY trained with the integer rule (``train --arith int``), one per test module."""
    run = tmp_path_factory.mktemp("tiny") / "ffdl-int"
    assert main(["train", "--arith", "int", "--algo", "ffdl", *TINY, "--out", str(run)]) == 0
    return run

#: `sim` through the command line on a compiled simulator is checked on every data path
#: for FFCL (its feedback makes it the widest program); FFL and FFDL on Verilator and
#: Icarus are opt-in, as tests/sim/test_cocotb.py and the regression slice
#: (tests/sim/test_regression.py) already run both under Verilator in the default run.
_OPT_IN_SIMS = {f"test_sim_is_bit_exact_and_writes_its_report[{algo}-{simulator}]"
                for algo in ("ffl", "ffdl") for simulator in ("verilator", "icarus")}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    # Runs before the `-m "not slow"` selection of pyproject's addopts.
    for item in items:
        if item.name in _OPT_IN_SIMS:
            item.add_marker(pytest.mark.slow)
