# amaranth: UnusedElaboratable=no
"""select: items[index] for every index, out-of-range indices select items[0]; window:
value.bit_select(offset, width) for every offset."""

from __future__ import annotations

import pytest
from amaranth import Const, Module, Signal
from amaranth.sim import Simulator

from rtl.select import select, window


@pytest.mark.parametrize(("count", "index_bits"), [(1, 1), (2, 1), (3, 2), (5, 4), (10, 4),
                                                   (55, 6), (8, 3), (8, 2)])
def test_select_picks_the_indexed_item(count, index_bits):
    items = [Const((7 * i + 3) % 256, 8) for i in range(count)]
    index = Signal(index_bits)
    out = Signal(8)
    m = Module()
    m.d.comb += out.eq(select(items, index))
    sim = Simulator(m)

    async def bench(ctx):
        for i in range(1 << index_bits):
            ctx.set(index, i)
            expected = items[i].value if i < count else items[0].value
            assert ctx.get(out) == expected, i

    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize(("value_bits", "offset_bits", "width"),
                         [(4, 1, 3), (9, 3, 2), (13, 3, 6), (40, 5, 9), (12, 2, 1)])
def test_window_is_the_part_select_at_every_offset(value_bits, offset_bits, width):
    # Every offset of the index's range against Python's shift of the same bits: a stage
    # that narrows too far, or a multiplexer on the wrong bit of the offset, shows here.
    offset = Signal(offset_bits)
    out = Signal(width)
    values = [0, (1 << value_bits) - 1] + [(0x9E3779B97F4A7C15 * (i + 1)) % (1 << value_bits)
                                           for i in range(6)]
    value = Signal(value_bits)
    m = Module()
    m.d.comb += out.eq(window(m, value, offset, width))
    sim = Simulator(m)

    async def bench(ctx):
        for v in values:
            ctx.set(value, v)
            for o in range(1 << offset_bits):
                ctx.set(offset, o)
                assert ctx.get(out) == (v >> o) & ((1 << width) - 1), (v, o)

    sim.add_testbench(bench)
    sim.run()


def test_a_window_past_the_value_is_refused():
    with pytest.raises(ValueError, match=r"^A window of 3 bits at offsets up to 7 needs 10 "
                                         r"bits, not 9$"):
        window(Module(), Signal(9), Signal(3), 3)
