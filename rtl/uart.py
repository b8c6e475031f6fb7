"""Asynchronous serial (UART) receiver and transmitter, 8N1, as byte streams.

A frame on the line is one start bit (0), eight data bits, least significant first, and
one stop bit (1); the idle line is high. Both directions run at ``divisor`` clock cycles
per bit, so a 12 MHz clock and ``divisor=104`` give 115200 baud (within 0.2 %).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.select import is_zero

__all__ = ["UartRx", "UartTx", "check_divisor"]


class _RxState(enum.Enum, shape=3):
    # No state is encoded as 0: Amaranth lowers a test for 0 to a multi-bit logical NOT,
    # which Verilator's -Wall reports (see rtl.select); sim.lint waives that only for an
    # Amaranth FSM's own state register.
    IDLE = 1
    START = 2
    DATA = 3
    STOP = 4


def check_divisor(divisor: object) -> int:
    """Validate a clock-cycles-per-bit divisor (at least 4: mid-bit sampling needs room)."""
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 4:
        raise ValueError(f"Divisor must be an integer of at least 4, not {divisor!r}")
    return divisor


class UartRx(wiring.Component):
    """UART receiver: serial line in, byte stream out.

    The line passes a two-flop synchroniser; a falling edge starts a frame, which is
    sampled in the middle of every bit (``divisor // 2`` cycles after the edge, then every
    ``divisor`` cycles). A start bit that is high again at its middle is a glitch and
    ignored. A stop bit that is low is a framing error: the byte is dropped and ``error``
    pulses for one cycle. The output holds one byte; a byte completed while the previous
    one is still unaccepted is dropped the same way (an overrun: the offered byte stays
    as it is until taken, as the stream contract requires).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Members
    -------
    rx : In(1)
        The serial line (idle high; asynchronous to the clock).
    data : Out(stream.Signature(8))
        Received bytes.
    error : Out(1)
        One-cycle pulse per framing error or overrun (a byte lost).
    busy : Out(1)
        A frame is being received (from the synchronised start edge to the middle of the
        stop bit); a link's idle timeout counts only while this is low.
    """

    def __init__(self, *, divisor: int) -> None:
        self.divisor = check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "error": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        divisor = self.divisor
        # Two flops against metastability; both start high so reset is not a start bit.
        meta = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [meta.eq(self.rx), line.eq(meta)]

        timer = Signal(range(divisor))
        bit = Signal(range(8))
        shift = Signal(8)
        # The received byte waits in its own register: the next frame shifts in meanwhile.
        byte = Signal(8)
        valid = Signal()
        m.d.comb += [self.data.valid.eq(valid), self.data.payload.eq(byte)]
        with m.If(self.data.ready):
            m.d.sync += valid.eq(0)

        state = Signal(_RxState, init=_RxState.IDLE)
        m.d.comb += self.busy.eq(state != _RxState.IDLE)
        with m.Switch(state):
            with m.Case(_RxState.IDLE):
                with m.If(~line):
                    # The falling edge of the start bit: its middle is half a bit away.
                    m.d.sync += [timer.eq(divisor // 2 - 1), state.eq(_RxState.START)]
            with m.Case(_RxState.START):
                m.d.sync += timer.eq(timer - 1)
                with m.If(is_zero(timer)):
                    m.d.sync += [timer.eq(divisor - 1), bit.eq(0)]
                    # High at the middle of the start bit: a glitch, not a frame.
                    m.d.sync += state.eq(Mux(line, _RxState.IDLE, _RxState.DATA))
            with m.Case(_RxState.DATA):
                m.d.sync += timer.eq(timer - 1)
                with m.If(is_zero(timer)):
                    # Least significant bit first: shift in from the top.
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), timer.eq(divisor - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.d.sync += state.eq(_RxState.STOP)
            with m.Case(_RxState.STOP):
                m.d.sync += timer.eq(timer - 1)
                with m.If(is_zero(timer)):
                    # Back to IDLE at the middle of the stop bit: the line is high until
                    # the next start bit, so no edge is missed.
                    with m.If(line & (~valid | self.data.ready)):
                        m.d.sync += [byte.eq(shift), valid.eq(1)]
                    with m.Else():
                        # A framing error, or an overrun: the byte before is still
                        # offered, and a stream's payload must not change while it is
                        # (sim.properties proves it); the new byte is dropped instead.
                        m.d.comb += self.error.eq(1)
                    m.d.sync += state.eq(_RxState.IDLE)
        return m


class UartTx(wiring.Component):
    """UART transmitter: byte stream in, serial line out.

    A byte is accepted only while the line is idle (the previous stop bit has been sent),
    so ``data.ready`` is low for the 10 bit times of each frame.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Members
    -------
    data : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1)
        The serial line (idle high), driven straight from a register.
    """

    def __init__(self, *, divisor: int) -> None:
        self.divisor = check_divisor(divisor)
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        divisor = self.divisor
        # The frame shifts out of bit 0; ones shift in, so the line rests high between
        # frames without a separate idle state.
        frame = Signal(10, init=(1 << 10) - 1)
        bits_left = Signal(range(11))
        timer = Signal(range(divisor))
        idle = is_zero(bits_left)
        m.d.comb += [self.tx.eq(frame[0]), self.data.ready.eq(idle)]

        with m.If(idle):
            with m.If(self.data.valid):
                m.d.sync += [frame.eq(Cat(Const(0, 1), self.data.payload, Const(1, 1))),
                             bits_left.eq(10), timer.eq(divisor - 1)]
        with m.Elif(is_zero(timer)):
            m.d.sync += [frame.eq(Cat(frame[1:], Const(1, 1))), bits_left.eq(bits_left - 1),
                         timer.eq(divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m
