"""MAC lane array: P parallel multiply-accumulate lanes sharing one input element."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.params import check_positive_int

__all__ = ["MacLanes"]


class MacLanes(wiring.Component):
    """P lanes computing acc[p] += w[p] * x, one input element per cycle.

    Each lane is a registered multiplier followed by an accumulator, the shape that maps
    onto an iCE40 SB_MAC16 or an ECP5 MULT18X18D with the adder beside it.

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
    shared_lanes : int, optional
        How many lanes (the first ones) lend their multiplier to other units while no
        element is given (``en`` low): the product of ``a[p]`` and ``b[p]`` appears in
        ``side[p]`` ``side_latency`` cycles later, and the accumulator is untouched. On
        iCE40 this is what lets the scaler and the squares run without DSPs of their own.
        Default 0.
    side_bits : int, optional
        Width of the signed side operands (default 16, an SB_MAC16 input). A shared lane
        multiplies ``side_bits`` by ``side_bits``, so ``weight_bits`` must be at most
        ``side_bits`` and ``input_bits`` below it.

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
    a, b : In(ArrayLayout(signed(side_bits), shared_lanes))
        Only with shared lanes: the side operands, used in cycles without ``en``.
    side : Out(ArrayLayout(signed(2 * side_bits), shared_lanes))
        Only with shared lanes: ``a[p] * b[p]`` from ``side_latency`` cycles before.
    """

    def __init__(self, *, lanes: int, weight_bits: int, input_bits: int, acc_bits: int,
                 shared_lanes: int = 0, side_bits: int = 16) -> None:
        self.lanes = check_positive_int("Lane count", lanes)
        self.weight_bits = check_positive_int("Weight width", weight_bits, minimum=2)
        self.input_bits = check_positive_int("Input width", input_bits)
        self.acc_bits = check_positive_int("Accumulator width", acc_bits, minimum=2)
        self.shared_lanes = check_positive_int("Shared lane count", shared_lanes, minimum=0)
        self.side_bits = check_positive_int("Side operand width", side_bits, minimum=2)
        if shared_lanes > lanes:
            raise ValueError(f"Shared lane count must be at most the lane count {lanes}, "
                             f"not {shared_lanes}")
        if shared_lanes and (weight_bits > side_bits or input_bits >= side_bits):
            raise ValueError(f"Shared lanes multiply {side_bits}-bit signed operands: "
                             f"weights of {weight_bits} bits and inputs of {input_bits} "
                             f"bits do not fit (at most {side_bits} and {side_bits - 1})")
        members = {
            "en": In(1),
            "first": In(1),
            "x": In(unsigned(input_bits)),
            "w": In(data.ArrayLayout(signed(weight_bits), lanes)),
            "acc": Out(data.ArrayLayout(signed(acc_bits), lanes)),
        }
        if shared_lanes:
            operands = data.ArrayLayout(signed(side_bits), shared_lanes)
            members.update({
                "a": In(operands), "b": In(operands),
                "side": Out(data.ArrayLayout(signed(2 * side_bits), shared_lanes)),
            })
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Cycles from an element at the inputs to its product in ``acc``."""
        return 2

    @property
    def side_latency(self) -> int:
        """Cycles from side operands at ``a``/``b`` to their product in ``side``."""
        return 1

    def elaborate(self, platform) -> Module:
        m = Module()
        valid = Signal()
        restart = Signal()
        m.d.sync += [valid.eq(self.en), restart.eq(self.en & self.first)]
        for p in range(self.lanes):
            # Registering the product keeps the multiplier and the adder in separate
            # cycles: the DSP's own pipeline register.
            if p < self.shared_lanes:
                # One multiplier, two users: the MAC element when there is one, else the
                # side operands. The multiplexers sit in front of the DSP's inputs.
                product = Signal(signed(2 * self.side_bits), name=f"product_{p}")
                m.d.sync += product.eq(Mux(self.en, self.w[p], self.a[p])
                                       * Mux(self.en, self.x, self.b[p]))
                m.d.comb += self.side[p].eq(product)
            else:
                product = Signal(signed(self.weight_bits + self.input_bits + 1),
                                 name=f"product_{p}")
                # Amaranth widens the unsigned x by a zero bit before a signed product.
                m.d.sync += product.eq(self.w[p] * self.x)
            with m.If(valid & restart):
                m.d.sync += self.acc[p].eq(product)
            with m.Elif(valid):
                m.d.sync += self.acc[p].eq(self.acc[p] + product)
        return m
