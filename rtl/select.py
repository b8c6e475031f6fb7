"""Small selection helpers that lower to lint-clean Verilog.

Amaranth lowers ``x == 0`` to a logical NOT of a multi-bit value and ``array[index]`` to a
wide shift, both of which Verilator's -Wall reports (WIDTHTRUNC). These helpers say the
same thing with a reduction and a one-hot multiplexer instead.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, Value

__all__ = ["equals", "is_zero", "one_hot", "select", "window"]


def is_zero(value: Value) -> Value:
    """``value == 0`` as a NOR reduction."""
    return ~value.any()


def equals(value: Value, constant: int) -> Value:
    """``value == constant``, lint-clean for 0."""
    return is_zero(value) if constant == 0 else value == constant


def one_hot(index: Value, count: int) -> Value:
    """A ``count``-bit vector with bit ``index`` set (zero when index >= count)."""
    return (Const(1, count) << index)[:count]


def select(items: list, index: Value) -> Value:
    """``items[index]`` as a balanced tree of 2:1 multiplexers on the bits of ``index``.

    An index beyond the list selects ``items[0]``. The tree is ceil(log2(len(items)))
    multiplexers deep; a chain of one multiplexer per item was the slowest path of the
    iCE40 builds (55 levels for a RESULT reply's bytes).
    """
    bits = max(1, (len(items) - 1).bit_length())
    level = list(items) + [items[0]] * ((1 << bits) - len(items))
    for b in range(bits):
        if b < len(index):
            level = [Mux(index[b], level[i + 1], level[i]) for i in range(0, len(level), 2)]
        else:
            # The index has no such bit: it is 0.
            level = level[0::2]
    result = level[0]
    if len(index) > bits and len(items) < (1 << len(index)):
        # Indices from 2^bits up select items[0], as the padding below 2^bits does.
        result = Mux(index[bits:].any(), items[0], result)
    return result


def window(m: Module, value: Value, offset: Value, width: int) -> Value:
    """``value.bit_select(offset, width)`` as a logarithmic shifter of 2:1 multiplexers
    on the bits of ``offset``, narrowed after each stage to the bits a larger offset can
    still reach (what Yosys makes of the part-select, without the wide shift Verilog
    writes for it). Each stage is a signal of ``m`` (as one expression each stage would
    hold the last one twice, and the simulator would evaluate 2^stages copies).
    ``value`` must have ``width`` bits past the largest offset."""
    value = Value.cast(value)
    reach = (1 << len(offset)) - 1
    if len(value) < reach + width:
        raise ValueError(f"A window of {width} bits at offsets up to {reach} needs "
                         f"{reach + width} bits, not {len(value)}")
    for b in range(len(offset)):
        step = 1 << b
        # Offsets left to apply after this stage: a multiple of 2 step, at most this.
        kept = ((reach >> (b + 1)) << (b + 1)) + width
        stage = Signal(kept, name=f"window_{b}")
        m.d.comb += stage.eq(Mux(offset[b], value[step:step + kept], value[:kept]))
        value = stage
    return value[:width]
