"""Loop-feedback buffers: every layer's activations, double-buffered across iterations.

Iteration t writes bank t mod 2 while the feedback products read layer activations of
iteration t - 1 from the other bank, so no iteration waits on a copy. Layer l occupies
entries offset_l .. offset_l + N_l - 1 of each bank. FFDL and FFL use bank 0 only.
"""

from __future__ import annotations

from amaranth import Module, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from rtl.collisions import COLLISIONS_UNUSED
from rtl.params import check_positive_int

__all__ = ["FeedbackBuffer"]


class FeedbackBuffer(wiring.Component):
    """Two banks of activation memory with one read and one write port.

    Parameters
    ----------
    depth : int
        Entries per bank (the sum of the layer widths).
    width : int
        Bits of an activation.

    Members
    -------
    read_bank : In(1)
    read_addr : In(range(depth))
    read_data : Out(unsigned(width))
        The entry addressed in the previous cycle (synchronous read).
    write_en : In(1)
    write_bank : In(1)
    write_addr : In(range(depth))
    write_data : In(unsigned(width))
    """

    def __init__(self, *, depth: int, width: int) -> None:
        self.depth = check_positive_int("Buffer depth", depth)
        self.width = check_positive_int("Activation width", width)
        super().__init__({
            "read_bank": In(1),
            "read_addr": In(range(depth)),
            "read_data": Out(unsigned(width)),
            "write_en": In(1),
            "write_bank": In(1),
            "write_addr": In(range(depth)),
            "write_data": In(unsigned(width)),
        })

    @property
    def latency(self) -> int:
        """Read latency in cycles."""
        return 1

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.banks = banks = memory.Memory(
            shape=unsigned(self.width), depth=2 * self.depth, init=[],
            attrs=COLLISIONS_UNUSED)
        read = banks.read_port()
        write = banks.write_port()
        # The bank is the address's top part: one memory, so both banks share block RAMs.
        m.d.comb += [
            read.addr.eq(self.read_bank * self.depth + self.read_addr),
            self.read_data.eq(read.data),
            write.en.eq(self.write_en),
            write.addr.eq(self.write_bank * self.depth + self.write_addr),
            write.data.eq(self.write_data),
        ]
        return m
