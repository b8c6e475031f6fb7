"""The UART source and sink of sim/uart.py against rtl/uart.py's receiver and transmitter.

The cocotb side is :mod:`sim.uart_testbench`; the design is :class:`UartLoop`, built once
per simulator under build/cocotb/<xdist worker>. An odd divisor, so that the half-bit
sampling points of both sides are rounded (the UART sink's exact instants and the serial
port's idle gap are asserted in picoseconds there).
"""

from __future__ import annotations

import json
import os

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.uart import UartRx, UartTx
from sim.runner import available_simulators, build_design, run_tests

SEED = int(os.environ.get("FFCL_SEED", "0"))
SIMULATORS = available_simulators()
DIVISOR = 7
#: Cocotb tests in sim/uart_testbench.py, parametrisations counted (and one skipped under
#: Verilator, which has no X or Z): the two streams of bytes each with both timings, the
#: sink's sampling instants with both, and the serial port's idle gap.
SCENARIOS = 11


class UartLoop(wiring.Component):
    """``rx`` -> UartRx -> ``received``; ``send`` -> UartTx -> ``tx``.

    Members
    -------
    rx : In(1)
    received : Out(stream.Signature(8))
    rx_error : Out(1)
        The receiver's framing-error pulse.
    send : In(stream.Signature(8))
    tx : Out(1)
    """

    def __init__(self, *, divisor: int) -> None:
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "received": Out(stream.Signature(8)),
                          "rx_error": Out(1), "send": In(stream.Signature(8)),
                          "tx": Out(1, init=1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.receiver = receiver = UartRx(divisor=self.divisor)
        m.submodules.transmitter = transmitter = UartTx(divisor=self.divisor)
        m.d.comb += [receiver.rx.eq(self.rx), self.rx_error.eq(receiver.error),
                     self.tx.eq(transmitter.tx)]
        wiring.connect(m, receiver.data, wiring.flipped(self.received))
        wiring.connect(m, wiring.flipped(self.send), transmitter.data)
        return m


pytestmark = pytest.mark.skipif(not SIMULATORS, reason="no cocotb simulator installed")


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_uart_classes_against_the_uart_gateware(simulator, build_root):
    built = build_design(UartLoop(divisor=DIVISOR), simulator, build_root / "uart-loop",
                         toplevel="uart_loop")
    env = {"FFCL_UART": json.dumps({"divisor": DIVISOR}), "FFCL_SEED": str(SEED)}
    run = run_tests(built, "sim.uart_testbench", name=f"seed{SEED}", env=env)
    assert run.tests == SCENARIOS, f"{run.tests} scenarios ran; see {run.log}"
    assert run.failed == 0, (f"{run.failed} of {run.tests} scenarios failed "
                             f"(FFCL_SEED={SEED}); see {run.log}")
