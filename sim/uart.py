"""cocotb UART driver and monitor at a design's bit time, and a pyserial-like port on them.

8N1 framing (one start bit, eight data bits LSB first, one stop bit), one bit every
``divisor`` clock cycles: the bit time of :class:`rtl.uart` with the same divisor.
:class:`UartSource` drives a design's receive pin, :class:`UartSink` reads its transmit pin
(checking each start bit at its middle and each stop bit, so that a malformed byte from
the design is caught), and :class:`SimulatedSerial` gives them pyserial's blocking
``write``/``read`` for host code running in a :func:`cocotb.task.bridge` thread.

Given the clock's ``period_ns``, they wait a bit time with one timer instead of counting
``divisor`` clock edges: each edge woke a Python coroutine, and those wake-ups, not the
simulator, were most of a host-link test's time. The source then changes the line on a
falling clock edge and the sink reads it half a cycle after a rising one, so that neither
shares a time step with the edge the design samples on; ``SimulatedSerial.idle``'s gap is
one timer too. ``UartSink.sample_times`` records where the sink read the last frame;
:mod:`sim.uart_testbench` checks those instants and the idle gap to the picosecond.
"""

from __future__ import annotations

from collections import deque
from itertools import groupby
from typing import Any

import cocotb
from cocotb.queue import Queue
from cocotb.task import resume
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_time

__all__ = ["SimulatedSerial", "UartSink", "UartSource"]


#: The bits of a frame, by their index in it (for messages).
_BIT_NAMES = ("the start bit", *(f"data bit {i}" for i in range(8)), "the stop bit")


def _check_divisor(divisor: int) -> None:
    if not isinstance(divisor, int) or divisor < 2:
        raise ValueError(f"UART divisor must be an integer of at least 2, not {divisor!r}")


class UartSource:
    """Drives bytes onto ``pin`` (the design's ``rx``); the line idles high.

    Members
    -------
    divisor : int
        Clock cycles per bit.
    clock : cocotb handle
    """

    def __init__(self, pin: Any, clock: Any, *, divisor: int,
                 period_ns: float | None = None) -> None:
        _check_divisor(divisor)
        self.pin = pin
        self.clock = clock
        self.divisor = divisor
        self.period_ns = period_ns
        self._queue: Queue[tuple[int, float, bool]] = Queue()
        #: Whether the line's last change was on a falling clock edge (timed bits keep it).
        self._aligned = False
        self._idle = Event()
        self._idle.set()
        self.pin.value = 1
        self._task = cocotb.start_soon(self._run())

    def write_nowait(self, data: bytes, *, skew: float = 0.0,
                     framing_error_at: int | None = None) -> None:
        """Queue ``data``; it goes out byte after byte, without gaps.

        ``skew``: each bit lasts ``1 + skew`` bit times (a sender that fast or slow;
        needs ``period_ns``). ``framing_error_at``: that byte's stop bit is low, and two
        idle bits follow it so that a receiver finds the next start bit.
        """
        if skew and self.period_ns is None:
            raise ValueError("a skewed UART source needs the clock's period_ns")
        for i, byte in enumerate(data):
            self._queue.put_nowait((byte, skew, i == framing_error_at))
        if data:
            self._idle.clear()

    async def write(self, data: bytes) -> None:
        """Queue ``data`` and wait until its last stop bit has ended."""
        self.write_nowait(data)
        await self._idle.wait()

    def idle(self) -> bool:
        """Whether everything queued has gone out."""
        return self._idle.is_set()

    async def wait(self) -> None:
        await self._idle.wait()

    def idle_trigger(self) -> Any:
        """A trigger that fires once everything queued has gone out (for ``First``)."""
        return self._idle.wait()

    async def _run(self) -> None:
        while True:
            if self._queue.empty():
                self._aligned = False
            byte, skew, bad = await self._queue.get()
            if skew:
                self._aligned = False
            elif self.period_ns is not None and not self._aligned:
                await FallingEdge(self.clock)
                self._aligned = True
            # A framing error's low stop bit is followed by two idle bits.
            bits = [0, *((byte >> i) & 1 for i in range(8)), *((0, 1, 1) if bad else (1,))]
            # One wait per run of equal bits: the line changes only between runs.
            for bit, run in groupby(bits):
                self.pin.value = bit
                await self._bits(len(list(run)), skew)
            if self._queue.empty():
                self._idle.set()

    def bit_ps(self, skew: float = 0.0) -> int:
        """One bit time in picoseconds, rounded (needs ``period_ns``): runs of bits and
        ``SimulatedSerial.idle``'s gaps are whole multiples of it."""
        return round(self.divisor * self.period_ns * 1000 * (1 + skew))

    async def _bits(self, count: int, skew: float) -> None:
        """``count`` bit times (each rounded to a picosecond as one bit's alone); a skew
        needs ``period_ns``, which ``write_nowait`` checks."""
        if self.period_ns is not None:
            await Timer(count * self.bit_ps(skew), unit="ps")
        else:
            await ClockCycles(self.clock, count * self.divisor)


class UartSink:
    """Reads the bytes the design sends on ``pin`` (its ``tx``).

    Each start bit is checked at its middle and each stop bit; a frame that fails, or in
    which the line is X or Z where a bit is read (four-state simulators), is dropped and
    recorded in ``errors`` and, if ``strict``, fails the test at once.

    Members
    -------
    divisor : int
    received : deque of int
        Bytes read and not yet taken, oldest first.
    errors : list of str
        Malformed frames, in order.
    sample_times : list of int
        The simulation times (ps) at which the last frame's bits were read: the start
        bit's middle, then the eight data bits' and the stop bit's (one entry if the
        start bit was high again at its middle). Unskewed, with ``period_ns`` = T, bit
        ``i`` is read at ``t + (i * divisor + divisor // 2) * T + T / 2``, ``t`` the
        line's falling edge: ``divisor // 2`` whole cycles into the start bit and half a
        cycle more, then every ``divisor`` cycles. Without ``period_ns`` the half cycle
        is not added: ``divisor // 2`` rising clock edges after the falling edge, then
        every ``divisor`` edges.
    """

    def __init__(self, pin: Any, clock: Any, *, divisor: int, strict: bool = True,
                 period_ns: float | None = None) -> None:
        _check_divisor(divisor)
        self.pin = pin
        self.clock = clock
        self.divisor = divisor
        self.strict = strict
        self.period_ns = period_ns
        #: The receiver's bit time is ``1 + skew`` of the divisor's (reading a
        #: transmitter that is that much fast or slow; needs ``period_ns``).
        self.skew = 0.0
        self.received: deque[int] = deque()
        #: Set with every byte received (a reader clears it before it waits).
        self.arrived = Event()
        self.errors: list[str] = []
        self.sample_times: list[int] = []
        self._task = cocotb.start_soon(self._run())

    def _error(self, message: str) -> None:
        self.errors.append(message)
        self.pin._log.error(message)
        if self.strict:
            raise AssertionError(message)

    def count(self) -> int:
        return len(self.received)

    def read_nowait(self, size: int) -> bytes:
        """Up to ``size`` of the bytes received, oldest first."""
        return bytes(self.received.popleft() for _ in range(min(size, len(self.received))))

    async def _wait(self, bits: float, skew: float, *, off_edge: bool = False) -> None:
        """``bits`` of this receiver's bit times (whole clock cycles when not skewed);
        ``off_edge``: half a cycle more with ``period_ns``, so that this and the frame's
        later reads fall between clock edges (see the module)."""
        if not skew and self.period_ns is not None:
            cycles = int(self.divisor * bits) + (0.5 if off_edge else 0)
            await Timer(round(cycles * self.period_ns * 1000), unit="ps")
            return
        if not skew:
            await ClockCycles(self.clock, int(self.divisor * bits))
            return
        if self.period_ns is None:
            raise ValueError("a skewed UART sink needs the clock's period_ns")
        await Timer(round(self.divisor * self.period_ns * 1000 * (1 + skew) * bits), unit="ps")

    async def _run(self) -> None:
        pin = self.pin
        while True:
            await FallingEdge(pin)
            skew = self.skew
            # The middle of the start bit, then the middle of each following bit.
            await self._wait(0.5, skew, off_edge=True)
            levels = [pin.value]
            self.sample_times = times = [round(get_sim_time("ps"))]
            if levels[0] == 1:
                self._error(f"{pin._name}: start bit shorter than half a bit")
                continue
            for _ in range(9):
                await self._wait(1, skew)
                levels.append(pin.value)
                times.append(round(get_sim_time("ps")))
            # A four-state simulator can put X or Z on the line (an undriven or
            # uninitialised output): named where it was read, not taken for a bit.
            unknown = next((i for i, level in enumerate(levels) if not level.is_resolvable),
                           None)
            if unknown is not None:
                self._error(f"{pin._name}: the line is {levels[unknown]} in the middle of "
                            f"{_BIT_NAMES[unknown]} at {times[unknown] / 1000:g} ns, not 0 or 1")
                await self._until_idle()
                continue
            value = sum(int(level) << i for i, level in enumerate(levels[1:9]))
            if levels[9] != 1:
                self._error(f"{pin._name}: framing error, stop bit low after {value:#04x}")
                # Resynchronise on the next falling edge once the line is idle again.
                await RisingEdge(pin)
                continue
            self.received.append(value)
            self.arrived.set()

    async def _until_idle(self) -> None:
        """Wait until the line is high (idle or a stop bit): the next falling edge may
        start a frame."""
        while not (self.pin.value.is_resolvable and self.pin.value == 1):
            await self.pin.value_change


class SimulatedSerial:
    """pyserial's ``write``/``read`` over a UART source and sink, for code in a
    :func:`cocotb.task.bridge` thread.

    ``write`` queues the bytes and returns, as an OS serial driver does. ``read(n)`` lets
    the simulation run until ``n`` bytes have arrived or, once everything written has gone
    out, ``timeout_cycles`` have passed; then it returns what it has, as a port whose
    timeout expired does. The source needs the clock's ``period_ns``: a read waits for a
    byte, the last byte sent or the timeout, not clock edges.

    Members
    -------
    source : UartSource
    sink : UartSink
    timeout_cycles : int
    """

    def __init__(self, source: UartSource, sink: UartSink, *, timeout_cycles: int) -> None:
        if source.divisor != sink.divisor:
            raise ValueError(f"UART source and sink must share a divisor, not "
                             f"{source.divisor} and {sink.divisor}")
        if source.period_ns is None:
            raise ValueError("a simulated serial port needs a UART source with the clock's "
                             "period_ns (its reads wait with timers)")
        self.source = source
        self.sink = sink
        self.timeout_cycles = timeout_cycles

    def write(self, data: bytes) -> int:
        return resume(self._write)(bytes(data))

    def read(self, size: int = 1) -> bytes:
        return resume(self._read)(size)

    def idle(self, bits: int) -> None:
        """Leave the line quiet for ``bits`` bit times (after what is queued): the next
        frame written starts exactly ``bits`` bit times after the last stop bit queued
        ends (one timer; the source's frames start on a falling clock edge and last whole
        cycles, so the gap ends on one too)."""
        resume(self._idle)(bits)

    async def _write(self, data: bytes) -> int:
        self.source.write_nowait(data)
        return len(data)

    async def _read(self, size: int) -> bytes:
        source, sink = self.source, self.sink
        # Woken by a byte, the last byte sent or the timeout, not polled every bit time
        # (those wake-ups were a host-link test's largest cost).
        limit = round(self.timeout_cycles * source.period_ns * 1000)
        waited = 0
        while sink.count() < size:
            sink.arrived.clear()
            if not source.idle():
                await First(sink.arrived.wait(), source.idle_trigger())
                continue
            if waited >= limit:
                break
            start = get_sim_time("ps")
            await First(sink.arrived.wait(), Timer(limit - waited, unit="ps"))
            waited += get_sim_time("ps") - start
        return sink.read_nowait(size)

    async def _idle(self, bits: int) -> None:
        source = self.source
        await source.wait()
        # Whole bit times of the source's: the line is quiet from the end of the last stop
        # bit queued (a falling clock edge) until the next start bit, which the source
        # begins on a falling edge. The timer ends half a cycle before that edge, not in
        # its time step, so the gap does not depend on which of the two a simulator wakes
        # first (sim.uart_testbench checks it to the ps).
        await Timer(bits * source.bit_ps() - round(source.period_ns * 1000 / 2), unit="ps")
