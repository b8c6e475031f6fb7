"""What a component asks of the FPGA: its products and its memories.

A component that multiplies or keeps a memory declares it here, next to where its RTL
writes it (``products()`` and ``memories()`` methods), so the fit check
(:func:`ffcl_hw.flows.synth.check_fit`) counts hard multipliers and block RAMs from the
components instead of from a table of its own. The declarations give shapes only; how
many DSP or block-RAM cells a shape takes on a family is the fit check's business (it
follows what Yosys does with them).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MemoryShape", "Product"]


@dataclass(frozen=True)
class Product:
    """One ``a * b`` the RTL writes, with its operands' widths as Yosys sees them.

    An unsigned operand of a signed product counts with the sign bit Amaranth gives it.
    A constant operand counts too, with its bits (Yosys maps ``tile * 3`` to a DSP like
    any product), except a power of two, which is wiring, and a multiplexer of one
    value, which Yosys folds into a constant.

    Attributes
    ----------
    unit : str
        What the product is for (e.g. ``"update_lane"``).
    a_bits, b_bits : int
        The operands' widths.
    """

    unit: str
    a_bits: int
    b_bits: int


@dataclass(frozen=True)
class MemoryShape:
    """One memory of a component: ``depth`` words of ``width`` bits.

    Attributes
    ----------
    name : str
        The memory's name in its component.
    depth, width : int
        Words and bits per word.
    rom : bool
        No write port (a table initialised at configuration).
    read_ports : int
        Read ports (a table looked up twice per cycle has two).
    """

    name: str
    depth: int
    width: int
    rom: bool = False
    read_ports: int = 1
