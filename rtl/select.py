"""Small selection helpers that lower to lint-clean Verilog.

Amaranth lowers ``x == 0`` to a logical NOT of a multi-bit value and ``array[index]`` to a
wide shift, both of which Verilator's -Wall reports (WIDTHTRUNC). These helpers say the
same thing with a reduction and a one-hot multiplexer instead.
"""

from __future__ import annotations

from amaranth import Const, Mux, Value

__all__ = ["is_zero", "one_hot", "select"]


def is_zero(value: Value) -> Value:
    """``value == 0`` as a NOR reduction."""
    return ~value.any()


def one_hot(index: Value, count: int) -> Value:
    """A ``count``-bit vector with bit ``index`` set (zero when index >= count)."""
    return (Const(1, count) << index)[:count]


def select(items: list, index: Value) -> Value:
    """``items[index]`` as a chain of multiplexers on a one-hot decode of ``index``.

    An index beyond the list selects ``items[0]``.
    """
    hot = one_hot(index, len(items))
    result = items[0]
    for i in range(1, len(items)):
        result = Mux(hot[i], items[i], result)
    return result
