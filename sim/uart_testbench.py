"""cocotb bench of :mod:`sim.uart` against the project's own UART gateware.

The design (built by tests/sim/test_uart.py) puts ``rtl.uart.UartRx`` between the ``rx``
pin and the ``received`` stream, and ``rtl.uart.UartTx`` between the ``send`` stream and
the ``tx`` pin; ``rx_error`` is the receiver's framing-error pulse. So the UART source's
bit timing is checked by the gateware receiver, the UART sink's by the gateware
transmitter, and a stream source is held back by a genuinely slow consumer (the
transmitter takes a byte only every ten bit times). The timing is pinned to the
picosecond against the lines' own edges, measured here: each bit the UART sink reads from
UartTx at the instant ``UartSink.sample_times`` documents, and ``SimulatedSerial.idle``'s
gap on ``rx`` (a sink one cycle early or late, or a gap a cycle short or long, fails).

The checks must be able to fail: a frame driven by hand with its stop bit low must be
reported by the UART sink (listening on ``rx``) and by the receiver's ``rx_error``, and
its byte must not arrive. On a four-state simulator (Icarus), frames with X or Z in one
bit must each be reported by the UART sink, naming that bit and its time.

Environment: FFCL_UART (JSON ``{"divisor": ...}``), FFCL_SEED (logged).
"""

from __future__ import annotations

import json
import os
import random
import re

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotb.types import Logic
from cocotb.utils import get_sim_time

from sim.streams import PAUSES, StreamMonitor, StreamSink, StreamSource
from sim.uart import SimulatedSerial, UartSink, UartSource

PERIOD_NS = 10
COUNT = 12


def _divisor() -> int:
    return json.loads(os.environ["FFCL_UART"])["divisor"]


def _data(dut) -> bytes:
    seed = int(os.environ.get("FFCL_SEED", "0"))
    dut._log.info("random bytes with seed %d (FFCL_SEED)", seed)
    rng = random.Random(seed)
    # The corner bytes ride along: all zero bits, all one bits, alternating.
    return bytes([0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(COUNT)])


async def _start(dut) -> None:
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    dut.rx.value = 1
    dut.send__valid.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)


def _frames(count: int) -> int:
    """Clock cycles of ``count`` frames and some slack."""
    return (count + 2) * 10 * _divisor()


class _ErrorCount:
    """Counts the cycles in which the receiver's ``rx_error`` pulses.

    Sampled at the clock, as the link reads it: under Icarus the combinational pulse
    glitches between edges, which an edge trigger would count.
    """

    def __init__(self, dut) -> None:
        self.count = 0
        self._dut = dut
        cocotb.start_soon(self._run())

    async def _run(self) -> None:
        while True:
            await RisingEdge(self._dut.clk)
            self.count += int(self._dut.rx_error.value)


#: How the UART classes wait a bit time: counting clock edges (no period given) or with
#: one timer a bit (``period_ns``, the host-link benches' way): both must keep the timing.
TIMINGS = {"edges": None, "timer": PERIOD_NS}


@cocotb.test()
@cocotb.parametrize(timing=list(TIMINGS))
async def uart_source_into_the_gateware_receiver(dut, timing: str) -> None:
    """Bytes from the UART source come out of UartRx unchanged, none lost, no error."""
    await _start(dut)
    data = _data(dut)
    errors = _ErrorCount(dut)
    sink = StreamSink(dut, "received", dut.clk, reset=dut.rst)
    source = UartSource(dut.rx, dut.clk, divisor=_divisor(), period_ns=TIMINGS[timing])
    if TIMINGS[timing] is None:
        # A serial port's reads wait with timers: a source without the period is refused.
        try:
            SimulatedSerial(source, UartSink(dut.tx, dut.clk, divisor=_divisor()),
                            timeout_cycles=1)
        except ValueError as error:
            assert "period_ns" in str(error), error
        else:
            raise AssertionError("SimulatedSerial took a UART source without period_ns")
    await with_timeout(source.write(data), _frames(len(data)) * PERIOD_NS, "ns")
    await ClockCycles(dut.clk, 2 * _divisor())
    got = bytes(sink.recv_nowait() for _ in range(sink.count()))
    assert got == data, f"UartRx received {got.hex()}, the source sent {data.hex()}"
    assert errors.count == 0, f"UartRx reported {errors.count} framing errors"
    assert not sink.violations, sink.violations


@cocotb.test()
@cocotb.parametrize(idle=["none", "idle"], timing=list(TIMINGS))
async def gateware_transmitter_into_the_uart_sink(dut, idle: str, timing: str) -> None:
    """A stream source held back by UartTx; the UART sink reads every byte in order."""
    await _start(dut)
    data = _data(dut)
    uart = UartSink(dut.tx, dut.clk, divisor=_divisor(), period_ns=TIMINGS[timing])
    source = StreamSource(dut, "send", dut.clk, reset=dut.rst, pause=PAUSES[idle])
    monitor = StreamMonitor(dut, "send", dut.clk, reset=dut.rst)
    await with_timeout(source.send(data), _frames(len(data)) * PERIOD_NS, "ns")
    await ClockCycles(dut.clk, 12 * _divisor())
    got = uart.read_nowait(len(data) + 1)
    assert got == data, f"the UART sink read {got.hex()}, the source sent {data.hex()}"
    assert not uart.errors, uart.errors
    assert not monitor.violations, monitor.violations
    assert monitor.received == source.sent == len(data)


@cocotb.test()
async def a_low_stop_bit_is_caught(dut) -> None:
    """A hand-driven frame with its stop bit low: the UART sink and UartRx both report
    it, the byte is dropped, and the next good frame gets through."""
    await _start(dut)
    divisor = _divisor()
    # The UART sink listens on rx, where the frames are driven; it must not stop the test.
    checker = UartSink(dut.rx, dut.clk, divisor=divisor, strict=False)
    sink = StreamSink(dut, "received", dut.clk, reset=dut.rst)
    errors = _ErrorCount(dut)
    # 0xA5, LSB first, then a stop bit that is low, then the line idle again.
    for bit in [0, *((0xA5 >> i) & 1 for i in range(8)), 0]:
        dut.rx.value = bit
        await ClockCycles(dut.clk, divisor)
    dut.rx.value = 1
    await ClockCycles(dut.clk, 3 * divisor)
    assert len(checker.errors) == 1 and "stop bit low" in checker.errors[0], checker.errors
    assert errors.count == 1, \
        f"UartRx reported {errors.count} framing errors for one bad frame"
    assert sink.count() == 0, "the byte of a frame with a low stop bit arrived"
    # A good frame afterwards is read by both.
    source = UartSource(dut.rx, dut.clk, divisor=divisor)
    await source.write(b"\x3c")
    await ClockCycles(dut.clk, 2 * divisor)
    assert checker.read_nowait(2) == b"\x3c"
    assert bytes(sink.recv_nowait() for _ in range(sink.count())) == b"\x3c"


#: Frames with an unknown level in one bit: (bit index in the frame, level, its name in
#: the message). Start, a data bit and the stop bit, where the sink reads differently.
UNKNOWN_BITS = ((0, "X", "the start bit"), (4, "X", "data bit 3"), (9, "Z", "the stop bit"))


@cocotb.skipif(cocotb.SIM_NAME.lower().startswith("verilator"),
               reason="a two-state simulator has no X or Z to put on the line")
@cocotb.test()
async def an_unknown_level_on_the_line_is_named(dut) -> None:
    """Hand-driven frames of 0x5A with X or Z in one bit: the UART sink reports each with
    the bit and the time it was read at (within that bit), drops the byte, and reads the
    next good frame."""
    await _start(dut)
    divisor = _divisor()
    checker = UartSink(dut.rx, dut.clk, divisor=divisor, strict=False)
    for index, level, name in UNKNOWN_BITS:
        bits = [0, *((0x5A >> i) & 1 for i in range(8)), 1]
        start = get_sim_time("ns")
        for i, bit in enumerate(bits):
            if i == index == 0:
                # The line falls (a frame starts only on a falling edge), then goes unknown.
                dut.rx.value = 0
                await ClockCycles(dut.clk, 1)
                dut.rx.value = Logic(level)
                await ClockCycles(dut.clk, divisor - 1)
                continue
            dut.rx.value = Logic(level) if i == index else bit
            await ClockCycles(dut.clk, divisor)
        dut.rx.value = 1
        await ClockCycles(dut.clk, 3 * divisor)
        assert len(checker.errors) == 1, checker.errors
        found = re.fullmatch(rf"rx: the line is {level} in the middle of {name} at "
                             r"([0-9.]+) ns, not 0 or 1", checker.errors[0])
        assert found, checker.errors[0]
        bit_ns = divisor * PERIOD_NS
        at = float(found.group(1)) - start
        assert index * bit_ns < at < (index + 1) * bit_ns, \
            f"{checker.errors[0]}: read {at:g} ns into the frame, not in bit {index}"
        assert checker.read_nowait(2) == b"", "the byte of a frame with an unknown bit arrived"
        checker.errors.clear()
    source = UartSource(dut.rx, dut.clk, divisor=divisor)
    await source.write(b"\x3c")
    await ClockCycles(dut.clk, 2 * divisor)
    assert checker.read_nowait(2) == b"\x3c"
    assert not checker.errors, checker.errors


class _Edges:
    """The times (ps) and new levels of every change of ``pin``, as the line shows them
    (measured here, not by the UART classes)."""

    def __init__(self, pin) -> None:
        self.changes: list[tuple[int, int]] = []
        self._pin = pin
        cocotb.start_soon(self._run())

    def falls(self) -> list[int]:
        return [time for time, level in self.changes if level == 0]

    def rises(self) -> list[int]:
        return [time for time, level in self.changes if level == 1]

    async def _run(self) -> None:
        while True:
            await self._pin.value_change
            self.changes.append((round(get_sim_time("ps")), int(self._pin.value)))


@cocotb.test()
@cocotb.parametrize(timing=list(TIMINGS))
async def the_uart_sink_reads_each_bit_at_its_documented_instant(dut, timing: str) -> None:
    """Frames from UartTx one at a time: the UART sink reads bit i (start, 8 data, stop)
    at exactly the instant ``UartSink.sample_times`` documents, from the line's own
    falling edge: ``(i * divisor + divisor // 2)`` cycles, and half a cycle more with a
    timer. A sink reading one cycle early or late (still inside the bit) fails here."""
    await _start(dut)
    divisor = _divisor()
    period_ps = PERIOD_NS * 1000
    uart = UartSink(dut.tx, dut.clk, divisor=divisor, period_ns=TIMINGS[timing])
    source = StreamSource(dut, "send", dut.clk, reset=dut.rst)
    edges = _Edges(dut.tx)
    half = period_ps // 2 if TIMINGS[timing] is not None else 0
    for byte in _data(dut):
        edges.changes.clear()
        uart.arrived.clear()
        await source.send([byte])
        await with_timeout(uart.arrived.wait(), _frames(1) * PERIOD_NS, "ns")
        fall = edges.falls()[0]
        expected = [fall + (i * divisor + divisor // 2) * period_ps + half for i in range(10)]
        assert uart.sample_times == expected, (
            f"byte {byte:#04x}, start bit falling at {fall} ps: the sink read at "
            f"{[t - fall for t in uart.sample_times]} ps after it, the rule says "
            f"{[t - fall for t in expected]}")
        assert uart.read_nowait(2) == bytes([byte])
    assert not uart.errors, uart.errors


#: The serial port's writes and the idle gaps (bit times) after each; 0x00 frames, so the
#: line falls at each start bit and rises at each stop bit.
IDLE_STEPS = ((b"\x00", 1), (b"\x00\x00", 4), (b"\x00", 2), (b"\x00", None))


@cocotb.test()
async def the_serial_port_idle_gap_is_exact(dut) -> None:
    """SimulatedSerial.idle(bits) after what is queued: the next frame's start bit falls
    exactly ``bits`` bit times after the previous stop bit ends (the stop bit rises 9 bit
    times after its start bit falls and lasts one); frames written together follow each
    other without a gap. A gap one cycle short or long fails here."""
    await _start(dut)
    divisor = _divisor()
    bit_ps = divisor * PERIOD_NS * 1000
    source = UartSource(dut.rx, dut.clk, divisor=divisor, period_ns=PERIOD_NS)
    port = SimulatedSerial(source, UartSink(dut.tx, dut.clk, divisor=divisor,
                                            period_ns=PERIOD_NS), timeout_cycles=divisor)
    edges = _Edges(dut.rx)

    def host() -> None:
        for data, gap in IDLE_STEPS:
            port.write(data)
            if gap is not None:
                port.idle(gap)

    frames = sum(len(data) for data, _ in IDLE_STEPS)
    quiet = sum(gap or 0 for _, gap in IDLE_STEPS)
    await with_timeout(bridge(host)(), (_frames(frames) + quiet * divisor) * PERIOD_NS, "ns")
    await source.wait()
    falls, rises = edges.falls(), edges.rises()
    assert len(falls) == len(rises) == frames, edges.changes
    gaps = [0 if i + 1 < len(data) else gap
            for data, gap in IDLE_STEPS[:-1] for i in range(len(data))]
    for k, (fall, rise) in enumerate(zip(falls, rises, strict=True)):
        assert rise - fall == 9 * bit_ps, f"frame {k}: stop bit {rise - fall} ps after start"
        if k + 1 < frames:
            quiet_ps = falls[k + 1] - (rise + bit_ps)
            assert quiet_ps == gaps[k] * bit_ps, (
                f"after frame {k}: the line was quiet {quiet_ps} ps, not {gaps[k]} bit "
                f"times ({gaps[k] * bit_ps} ps)")
