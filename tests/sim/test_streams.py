"""The stream source, sink and monitor of sim/streams.py on a small exported stream design.

The cocotb side is :mod:`sim.stream_testbench`; the design is :class:`Pipe`: a stream in,
a FIFO (or, with depth 0, a wire) and a stream out, built once per (simulator, depth)
under build/cocotb/<xdist worker>.
"""

from __future__ import annotations

import json
import os

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from sim.runner import available_simulators, build_design, run_tests

SEED = int(os.environ.get("FFCL_SEED", "0"))
SIMULATORS = available_simulators()
WIDTH = 8
#: Cocotb tests in sim/stream_testbench.py, parametrisations counted.
SCENARIOS = 8


class Pipe(wiring.Component):
    """``i`` -> a FIFO of ``depth`` entries (0: a wire) -> ``o``; ``transfers`` counts
    the transfers on ``o``.

    Members
    -------
    i : In(stream.Signature(width))
    o : Out(stream.Signature(width))
    transfers : Out(16)
    """

    def __init__(self, *, width: int, depth: int) -> None:
        self.width, self.depth = width, depth
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width)),
                          "transfers": Out(16)})

    def elaborate(self, platform) -> Module:
        m = Module()
        if self.depth:
            m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.width, depth=self.depth)
            wiring.connect(m, wiring.flipped(self.i), fifo.w_stream)
            wiring.connect(m, fifo.r_stream, wiring.flipped(self.o))
        else:
            wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.transfers.eq(self.transfers + 1)
        return m


pytestmark = pytest.mark.skipif(not SIMULATORS, reason="no cocotb simulator installed")


# The wire (depth 0) under Verilator is opt-in: [0-icarus] runs the same design and
# scenarios, and [4-verilator] the classes in Verilator (with the FIFO's back-pressure).
@pytest.mark.parametrize(("depth", "simulator"), [
    pytest.param(depth, simulator, marks=pytest.mark.slow)
    if (depth, simulator) == (0, "verilator") else (depth, simulator)
    for depth in (0, 4) for simulator in SIMULATORS])
def test_stream_classes_keep_and_check_the_stream_rules(simulator, depth, build_root):
    built = build_design(Pipe(width=WIDTH, depth=depth), simulator,
                         build_root / f"streams-depth{depth}", toplevel="stream_pipe")
    env = {"FFCL_STREAM": json.dumps({"width": WIDTH, "depth": depth}),
           "FFCL_SEED": str(SEED)}
    run = run_tests(built, "sim.stream_testbench", name=f"seed{SEED}", env=env)
    assert run.tests == SCENARIOS, f"{run.tests} scenarios ran; see {run.log}"
    assert run.failed == 0, (f"{run.failed} of {run.tests} scenarios failed "
                             f"(FFCL_SEED={SEED}); see {run.log}")
