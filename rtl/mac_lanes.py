"""MAC lane array: P parallel multiply-accumulate lanes sharing one input element."""

from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.params import check_positive_int

__all__ = ["REPLICA_PREFIX", "MacLanes"]

#: Name prefix of the submodules that hold one group's copy of the broadcast registers.
#: Yosys merges identical registers, which would leave one copy driving every lane; the
#: synthesis flow keeps the hierarchy of modules with this prefix (``keep_hierarchy``),
#: and registers in different modules are never merged.
REPLICA_PREFIX = "replica_"


class MacLanes(wiring.Component):
    """P lanes computing acc[p] += w[p] * x, one input element per cycle.

    Each lane is a multiplier with registered inputs and output followed by an
    accumulator, the shape that maps onto an iCE40 SB_MAC16 or an ECP5 MULT18X18D with the
    adder beside it. The input registers take the block RAM reads and the multiplexer
    that chooses ``x`` off the multiplier's path: on the ULX3S-85F with 86 lanes, a block
    RAM read broadcast through that multiplexer into the multipliers in one cycle was the
    slowest path (30 ns). ``x``, and the enables that follow it, are registered once per
    group of :attr:`GROUP` lanes, so no single register drives every multiplier.

    Parameters
    ----------
    lanes : int
        P, the number of lanes.
    weight_bits : int
        Width of a signed weight.
    input_bits : int
        Width of the unsigned input element (pixel or activation).
    acc_bits : int
        Width of each signed accumulator; the caller derives it so it cannot overflow.

    Members
    -------
    en : In(1)
        ``x`` and ``w`` hold a valid element this cycle.
    first : In(1)
        With ``en``: this element starts a new dot product (the accumulator restarts).
    x : In(unsigned(input_bits))
        The input element, broadcast to every lane.
    w : In(ArrayLayout(signed(weight_bits), lanes))
        One weight per lane.
    acc : Out(ArrayLayout(signed(acc_bits), lanes))
        The accumulators; an element given at cycle c is included from cycle c + latency.
    """

    def __init__(self, *, lanes: int, weight_bits: int, input_bits: int, acc_bits: int) -> None:
        self.lanes = check_positive_int("Lane count", lanes)
        self.weight_bits = check_positive_int("Weight width", weight_bits, minimum=2)
        self.input_bits = check_positive_int("Input width", input_bits)
        self.acc_bits = check_positive_int("Accumulator width", acc_bits, minimum=2)
        super().__init__({
            "en": In(1),
            "first": In(1),
            "x": In(unsigned(input_bits)),
            "w": In(data.ArrayLayout(signed(weight_bits), lanes)),
            "acc": Out(data.ArrayLayout(signed(acc_bits), lanes)),
        })

    #: Cycles from an element at the inputs to its product in ``acc``: the input
    #: registers, the product register, the accumulator.
    LATENCY = 3
    #: Lanes sharing one copy of the ``x`` register (one register driving all 86 lanes
    #: of the ULX3S-85F build took 15 ns to route).
    GROUP = 4

    @property
    def latency(self) -> int:
        """Cycles from an element at the inputs to its product in ``acc`` (:attr:`LATENCY`)."""
        return self.LATENCY

    def elaborate(self, platform) -> Module:
        m = Module()
        product_bits = self.weight_bits + self.input_bits + 1
        groups = []
        for g in range(-(-self.lanes // self.GROUP)):
            m.submodules[f"{REPLICA_PREFIX}{g}"] = group = _Broadcast(input_bits=self.input_bits)
            m.d.comb += [group.x_in.eq(self.x), group.en.eq(self.en),
                         group.first.eq(self.first)]
            groups.append(group)
        for p in range(self.lanes):
            group = groups[p // self.GROUP]
            w = Signal(signed(self.weight_bits), name=f"w_{p}")
            m.d.sync += w.eq(self.w[p])
            # Registering the product keeps the multiplier and the adder in separate
            # cycles: the DSP's own pipeline register.
            product = Signal(signed(product_bits), name=f"product_{p}")
            # Amaranth widens the unsigned x by a zero bit before a signed product.
            m.d.sync += product.eq(w * group.x)
            with m.If(group.valid & group.restart):
                m.d.sync += self.acc[p].eq(product)
            with m.Elif(group.valid):
                m.d.sync += self.acc[p].eq(self.acc[p] + product)
        return m


class _Broadcast(wiring.Component):
    """One group's copy of what every lane hears: ``x`` registered once (beside the
    weights' registers), ``en`` and ``first`` registered twice (beside the product)."""

    def __init__(self, *, input_bits: int) -> None:
        super().__init__({
            "x_in": In(unsigned(input_bits)),
            "en": In(1),
            "first": In(1),
            "x": Out(unsigned(input_bits)),
            "valid": Out(1),
            "restart": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        en = Signal()
        first = Signal()
        # x needs no reset: products of elements without en are never accumulated.
        x = Signal.like(self.x, reset_less=True)
        m.d.sync += [x.eq(self.x_in), en.eq(self.en), first.eq(self.en & self.first),
                     self.valid.eq(en), self.restart.eq(first)]
        m.d.comb += self.x.eq(x)
        return m
