"""The SPRAM weight store's iCE40 instances (``SB_SPRAM256KA``) on Yosys's own cell model,
against the contract its simulation model keeps in every RTL test (sim/spram_store_testbench.py)."""

from __future__ import annotations

import json

import pytest
from amaranth.back import verilog
from amaranth_boards.icebreaker import ICEBreakerPlatform

from rtl.weight_store import WeightStore
from sim.netlist import build_probe, cell_sources
from sim.runner import run_tests
from sim.tools import icarus_available

pytestmark = pytest.mark.skipif(not icarus_available(), reason="Icarus Verilog not installed")

SEED = 11


def _run(store: WeightStore, root, *, text: str | None = None):
    """Build ``store`` as elaborated for the iCEBreaker (or ``text``, its Verilog edited)
    with Yosys's iCE40 cell library, and run the bench."""
    if text is None:
        text = verilog.convert(store, platform=ICEBreakerPlatform(), name="spram_store",
                               emit_src=False)
    root.mkdir(parents=True, exist_ok=True)
    library, *_ = cell_sources("ice40", root)
    built = build_probe(text, "spram_store", library, root, family="ice40")
    env = {"FFCL_SEED": str(SEED),
           "FFCL_SPRAM": json.dumps({"width": store.width, "depth": store.depth,
                                     "banks": store.banks})}
    return run_tests(built, "sim.spram_store_testbench", env=env)


@pytest.mark.parametrize(("width", "banks"), [(32, 2), (48, 1)])
def test_the_spram_instances_keep_the_simulated_stores_contract(width, banks, build_root):
    # Two banks: a read beside a write of the other bank gets its word, one meeting a
    # write of its own bank gets x; one bank: every write loses the read.
    store = WeightStore(width=width, depth=64, kind="spram")
    assert store.banks == banks
    run = _run(store, build_root / "spram" / f"w{width}")
    assert (run.tests, run.failed) == (1, 0), f"see {run.log}"


def test_two_banks_on_one_address_fail_the_bench(tmp_path):
    # A plausible wiring bug: both banks take the write's address whenever anything is
    # written (the bank's own write enable left out of its address select), so a read
    # beside a write of the other bank reads the wrong row.
    store = WeightStore(width=32, depth=64, kind="spram")
    text = verilog.convert(store, platform=ICEBreakerPlatform(), name="spram_store",
                           emit_src=False)
    # Bank 1's address select (the SPRAMs' ADDRESS is {9'h000, \$6}).
    line = "assign \\$6  = \\$5  ? write__addr[5:1] : q[5:1];"
    assert line in text and ".ADDRESS({ 9'h000, \\$6  })" in text
    mutant = text.replace(line, "assign \\$6  = write__en ? write__addr[5:1] : q[5:1];")
    run = _run(store, tmp_path, text=mutant)
    assert run.failed == 1, f"see {run.log}"
