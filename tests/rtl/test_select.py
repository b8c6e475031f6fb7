"""select: items[index] for every index, out-of-range indices select items[0]."""

from __future__ import annotations

import pytest
from amaranth import Const, Module, Signal
from amaranth.sim import Simulator

from rtl.select import select


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
