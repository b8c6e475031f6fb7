# amaranth: UnusedElaboratable=no
"""The UART pair in Amaranth's simulator: loopback, framing errors, parameters."""

from __future__ import annotations

import random

import pytest
from amaranth import Module
from amaranth.lib import wiring

from rtl.uart import UartRx, UartTx
from tests.rtl.helpers import simulate


class _Loopback(wiring.Component):
    """A transmitter wired to a receiver, the line observable in between."""

    def __init__(self, divisor: int) -> None:
        self.tx = UartTx(divisor=divisor)
        self.rx = UartRx(divisor=divisor)
        super().__init__({})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.tx, m.submodules.rx = self.tx, self.rx
        m.d.comb += self.rx.rx.eq(self.tx.tx)
        return m


@pytest.mark.parametrize("divisor", [4, 5, 8])
@pytest.mark.parametrize("sink_ready", ["always", "sometimes"])
def test_loopback_carries_random_bytes_back_to_back(divisor, sink_ready):
    seed = 100 * divisor + len(sink_ready)
    rng = random.Random(seed)
    sent = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(20)]
    dut = _Loopback(divisor)
    received: list[int] = []
    errors = 0

    async def testbench(ctx) -> None:
        nonlocal errors
        pending = list(sent)
        # Each byte takes 10 bit times; allow two more per byte before giving up.
        for _ in range(12 * divisor * len(sent) + 50):
            ctx.set(dut.tx.data.valid, bool(pending))
            if pending:
                ctx.set(dut.tx.data.payload, pending[0])
            # A sink that is ready only some cycles must still get every byte: the
            # receiver holds each byte for a whole frame time.
            ready = sink_ready == "always" or rng.random() < 0.3
            ctx.set(dut.rx.data.ready, ready)
            tx_fire = ctx.get(dut.tx.data.ready) and bool(pending)
            rx_fire = ctx.get(dut.rx.data.valid) and ready
            rx_byte = ctx.get(dut.rx.data.payload)
            errors += ctx.get(dut.rx.error)
            await ctx.tick()
            if tx_fire:
                pending.pop(0)
            if rx_fire:
                received.append(rx_byte)
            if len(received) == len(sent):
                break

    simulate(dut, testbench)
    assert received == sent, f"seed {seed}"
    assert errors == 0


def _line_bits(byte: int, stop: int) -> list[int]:
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


@pytest.mark.parametrize(("frames", "expected", "error_pulses"), [
    ([(0x3C, 1)], [0x3C], 0),
    ([(0x3C, 0)], [], 1),                        # bad stop bit: the byte is dropped
    ([(0x3C, 0), (0xC3, 1)], [0xC3], 1),         # and the next good byte still arrives
    ([(0x00, 0), (0x00, 0), (0x7E, 1)], [0x7E], 2),
])
def test_a_framing_error_drops_the_byte_and_pulses_error(frames, expected, error_pulses):
    divisor = 6
    dut = UartRx(divisor=divisor)
    received: list[int] = []
    errors = 0

    async def testbench(ctx) -> None:
        nonlocal errors
        ctx.set(dut.data.ready, 1)
        line = [1] * 3
        for byte, stop in frames:
            # After a bad (low) stop bit the line must go high again before the next
            # start bit can be seen: two bit times of idle.
            line += [b for b in _line_bits(byte, stop) for _ in range(divisor)]
            line += [1] * (2 * divisor)
        for level in line + [1] * 4 * divisor:
            ctx.set(dut.rx, level)
            errors += ctx.get(dut.error)
            if ctx.get(dut.data.valid):
                received.append(ctx.get(dut.data.payload))
            await ctx.tick()

    simulate(dut, testbench)
    assert received == expected
    assert errors == error_pulses


def test_an_overrun_keeps_the_offered_byte_and_drops_the_new_one():
    # The sink takes nothing while two frames arrive: the first byte must stay offered
    # unchanged (the stream contract), the second is lost with an error pulse.
    divisor = 6
    dut = UartRx(divisor=divisor)
    offered: list[int] = []
    errors = 0

    async def testbench(ctx) -> None:
        nonlocal errors
        line = [1] * 3
        for byte in (0x3C, 0xC3):
            line += [b for b in _line_bits(byte, 1) for _ in range(divisor)] + [1] * divisor
        for level in line + [1] * 2 * divisor:
            ctx.set(dut.rx, level)
            errors += ctx.get(dut.error)
            if ctx.get(dut.data.valid):
                offered.append(ctx.get(dut.data.payload))
            await ctx.tick()

    simulate(dut, testbench)
    assert offered and set(offered) == {0x3C}
    assert errors == 1


def test_a_glitch_shorter_than_half_a_bit_is_not_a_start_bit():
    divisor = 8
    dut = UartRx(divisor=divisor)
    seen = []

    async def testbench(ctx) -> None:
        ctx.set(dut.data.ready, 1)
        for level in [1] * 4 + [0] * 2 + [1] * 20 * divisor:
            ctx.set(dut.rx, level)
            seen.append((ctx.get(dut.data.valid), ctx.get(dut.error)))
            await ctx.tick()

    simulate(dut, testbench)
    assert not any(valid or error for valid, error in seen)


@pytest.mark.parametrize("component", [UartRx, UartTx])
@pytest.mark.parametrize(("divisor", "message"), [
    (2, "Divisor must be an integer of at least 4, not 2"),
    (3.5, "Divisor must be an integer of at least 4, not 3.5"),
    (True, "Divisor must be an integer of at least 4, not True"),
])
def test_divisor_is_validated(component, divisor, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        component(divisor=divisor)
