"""cocotb bench of :mod:`sim.streams` itself, on a small exported stream design.

The design (built by tests/sim/test_streams.py) has a stream in, ``i``, and a stream out,
``o``: a FIFO of FFCL_STREAM's ``depth`` entries between them, or, with depth 0, a wire
(so that what a source does on ``i`` is what a sink sees on ``o``); ``transfers`` counts
the transfers on ``o``. A source drives ``i``, a monitor watches ``i`` and a sink takes
``o``; every scenario is crossed with the idle and back-pressure patterns.

The checks must be able to fail, so two scenarios break the rules on purpose: a source
that takes every offer as accepted (it ignores ``ready``) must be caught by the same
checks that pass a correct source, and a hand-driven ``valid`` that falls, or a payload
that changes, before ``ready`` must be reported by the monitor (and, through the wire, by
the sink).

Environment: FFCL_STREAM (JSON ``{"width": ..., "depth": ...}``), FFCL_SEED (logged).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, with_timeout

from sim.streams import PAUSES, Pause, RandomPause, StreamMonitor, StreamSink, StreamSource

PERIOD_NS = 10
#: Payloads per scenario: several times the FIFO, so back-pressure reaches the source.
COUNT = 40


def _design() -> dict[str, int]:
    return json.loads(os.environ["FFCL_STREAM"])


def _seed() -> int:
    return int(os.environ.get("FFCL_SEED", "0"))


class HeedlessSource(StreamSource):
    """A broken source for the checks to catch: it takes every offer as accepted."""

    def _accepted(self) -> bool:
        return True


@dataclass
class Bench:
    """Clock, reset, a source and a monitor on ``i``, a sink on ``o``."""

    dut: object
    source: StreamSource
    monitor: StreamMonitor
    sink: StreamSink


async def _start(dut, *, idle, sink, source_class: type[StreamSource] = StreamSource) -> Bench:
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    bench = Bench(dut=dut,
                  source=source_class(dut, "i", dut.clk, reset=dut.rst, pause=idle),
                  monitor=StreamMonitor(dut, "i", dut.clk, reset=dut.rst),
                  sink=StreamSink(dut, "o", dut.clk, reset=dut.rst, pause=sink))
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    return bench


async def _exchange(dut, *, idle, sink, source_class=StreamSource) -> list[str]:
    """Send COUNT seeded random payloads through the design; the faults found."""
    width = _design()["width"]
    rng = random.Random(_seed())
    data = [rng.randrange(1 << width) for _ in range(COUNT)]
    bench = await _start(dut, idle=idle, sink=sink, source_class=source_class)
    bench.source.send_nowait(data)
    await with_timeout(bench.source.wait(), COUNT * 50 * PERIOD_NS, "ns")
    # Long enough for everything accepted to come out under the slowest pattern.
    await ClockCycles(dut.clk, COUNT * 4 + 20)
    await ReadOnly()
    faults = list(bench.monitor.violations + bench.sink.violations)
    crossed = [bench.monitor.recv_nowait() for _ in range(bench.monitor.count())]
    taken = [bench.sink.recv_nowait() for _ in range(bench.sink.count())]
    if crossed != data:
        faults.append(f"{len(crossed)} payloads crossed i for {len(data)} sent"
                      if len(crossed) != len(data) else "the payloads on i are not the ones sent")
    if taken != data:
        faults.append(f"the sink took {len(taken)} payloads for {len(data)} sent"
                      if len(taken) != len(data) else "the sink took other payloads than sent")
    if bench.source.sent != len(crossed):
        faults.append(f"the source counted {bench.source.sent} transfers, the monitor "
                      f"{len(crossed)}")
    if int(dut.transfers.value) != len(taken):
        faults.append(f"the design counted {int(dut.transfers.value)} transfers on o, the "
                      f"sink {len(taken)}")
    return faults


@cocotb.test()
@cocotb.parametrize(idle=["none", "idle"], sink=["none", "backpressure"])
async def transfers_in_order(dut, idle: str, sink: str) -> None:
    """Every payload crosses once, in order, under each idle and back-pressure pattern."""
    faults = await _exchange(dut, idle=PAUSES[idle], sink=PAUSES[sink])
    assert not faults, faults


@cocotb.test()
async def random_pauses(dut) -> None:
    """Seeded random idle and back-pressure (the seed is logged; FFCL_SEED sets it)."""
    seed = _seed()
    dut._log.info("random pauses with seed %d (FFCL_SEED)", seed)
    faults = await _exchange(dut, idle=RandomPause(0.3, seed=seed),
                             sink=RandomPause(0.6, seed=seed + 1))
    assert not faults, faults


@cocotb.test()
async def a_source_that_ignores_ready_is_caught(dut) -> None:
    """The checks that pass a correct source fail one that does not wait for ready."""
    faults = await _exchange(dut, idle=PAUSES["none"], sink=PAUSES["backpressure"],
                             source_class=HeedlessSource)
    dut._log.info("faults found, as they should be: %s", faults)
    assert any("waiting for ready" in fault for fault in faults), faults
    assert any("the sink took" in fault for fault in faults), faults


@cocotb.test()
@cocotb.parametrize(fault=["drop_valid", "change_payload"])
async def a_broken_offer_is_caught(dut, fault: str) -> None:
    """valid falling, or the payload changing, before ready is reported where it is seen."""
    depth = _design()["depth"]
    # A sink that never accepts: once the FIFO is full, i's ready stays low.
    bench = await _start(dut, idle=PAUSES["none"], sink=Pause([True], name="stalled"))
    await with_timeout(bench.source.send(range(1, depth + 1)), 100 * PERIOD_NS, "ns")
    await ReadOnly()
    assert not dut.i__ready.value, "i is ready with the FIFO full and the sink stalled"
    await RisingEdge(dut.clk)
    # Offer 0xA5 for two cycles without ready, then break the offer.
    dut.i__payload.value = 0xA5
    dut.i__valid.value = 1
    await ClockCycles(dut.clk, 2)
    if fault == "drop_valid":
        dut.i__valid.value = 0
    else:
        dut.i__payload.value = 0x5A
    await ClockCycles(dut.clk, 2)
    dut.i__valid.value = 0
    await ClockCycles(dut.clk, 2)
    # Ending the changed offer without a transfer breaks the rule a second time.
    expected = ["valid fell"] if fault == "drop_valid" else ["payload changed", "valid fell"]
    assert _kinds(bench.monitor.violations, expected), bench.monitor.violations
    if depth == 0:
        # Through the wire the sink saw the same broken offer.
        assert _kinds(bench.sink.violations, expected), bench.sink.violations
    else:
        # The FIFO's own output kept the rules while the sink stalled.
        assert not bench.sink.violations, bench.sink.violations


def _kinds(violations: list[str], expected: list[str]) -> bool:
    return len(violations) == len(expected) and all(
        kind in violation for kind, violation in zip(expected, violations, strict=True))
