"""Copies of one register, kept apart so that each drives only its share of a wide fanout.

Yosys merges identical registers, which would leave one copy driving every sink; the
synthesis flow keeps the hierarchy of modules whose name starts with
:data:`REPLICA_PREFIX` (``keep_hierarchy``), and registers in different modules are never
merged. Each copy is such a module: the placer then puts it beside the sinks it drives.
"""

from __future__ import annotations

from amaranth import Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.params import check_positive_int

__all__ = ["REPLICA_PREFIX", "RegisterCopy"]

#: Name prefix of the submodules that hold one copy of a replicated register.
REPLICA_PREFIX = "replica_"


class RegisterCopy(wiring.Component):
    """One copy of a register: ``q`` is ``d`` of the previous cycle.

    Parameters
    ----------
    width : int
        Bits of the register.

    Members
    -------
    d : In(unsigned(width))
    q : Out(unsigned(width))
    """

    def __init__(self, *, width: int) -> None:
        self.width = check_positive_int("Register width", width)
        super().__init__({"d": In(unsigned(width)), "q": Out(unsigned(width))})

    def elaborate(self, platform) -> Module:
        m = Module()
        # No reset: a copy only follows its input.
        q = Signal.like(self.q, reset_less=True)
        m.d.sync += q.eq(self.d)
        m.d.comb += self.q.eq(q)
        return m
