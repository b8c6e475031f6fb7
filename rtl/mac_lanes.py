"""MAC lane array: P parallel multiply-accumulate lanes sharing one input element, and
the shift-out bank that hands their finished sums to the sweep one per cycle."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.params import check_positive_int
from rtl.replica import REPLICA_PREFIX

__all__ = ["MacLanes"]


class MacLanes(wiring.Component):
    """P lanes computing acc[p] += w[p] * x, one input element per cycle.

    Each lane is a multiplier with registered inputs and output followed by an
    accumulator, the shape that maps onto an iCE40 SB_MAC16 or an ECP5 MULT18X18D with the
    adder beside it. The input registers take the block RAM reads and the multiplexer
    that chooses ``x`` off the multiplier's path: on the ULX3S-85F with 86 lanes, a block
    RAM read broadcast through that multiplexer into the multipliers in one cycle was the
    slowest path (30 ns). ``x``, and the enables that follow it, are registered once per
    group of :attr:`GROUP` lanes, so no single register drives every multiplier.

    Finished sums leave through ``out``: an element given with ``last`` ends every lane's
    dot product, and ``latency`` cycles later ``out`` is lane 0's sum while the other
    lanes' sums enter the shift-out bank, which moves them down one lane per cycle (lane p
    in ``out`` p cycles later). The accumulators are free for the next dot products at
    once. The bank shifts in every cycle it does not load, and its load is the group's own
    copy of ``last``: no signal reaches every one of its registers (on the ULX3S-85F,
    a load and a shift enable each driving 2,600 registers were the most congested nets).

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
    clear_ahead : bool, optional
        The caller leaves at least one cycle without a product before every element given
        with ``first``: the other lanes' accumulators then clear in the cycle before the
        first product instead of choosing between restart and sum, the pattern Yosys
        folds into an iCE40 SB_MAC16's own accumulator (about 30 logic cells a lane).
        Default False.
    held_sums : bool, optional
        A small-part option (default False): the caller leaves at least two cycles
        without an element between a pass's last element and the next pass's first (the
        core's GAP with shared multipliers leaves many more), so every accumulator keeps
        its finished sum for one cycle after ``out`` gives lane 0's. The shift-out bank
        then has no top entry: the entry below it takes the last lane's sum straight from
        its accumulator, a cycle after it takes its own lane's. On iCE40 that entry was a
        flip-flop fed by a flip-flop (the accumulator, or a constant-zero reset), a logic
        cell each (29 in the digits training build). The same ``out`` in the same cycles.

    Members
    -------
    en : In(1)
        ``x`` and ``w`` hold a valid element this cycle.
    first : In(1)
        With ``en``: this element starts a new dot product (the accumulator restarts).
    last : In(1)
        With ``en``: this element ends the dot products; their sums come out of ``out``.
    x : In(unsigned(input_bits))
        The input element, broadcast to every lane.
    w : In(ArrayLayout(signed(weight_bits), lanes))
        One weight per lane.
    acc : Out(ArrayLayout(signed(acc_bits), lanes))
        The accumulators; an element given at cycle c is included from cycle c + latency.
    out : Out(signed(acc_bits))
        The shift-out: lane p's finished sum ``latency + p`` cycles after the element
        given with ``last`` (lane 0's is ``acc[0]`` of that cycle).
    a, b : In(ArrayLayout(signed(side_bits), shared_lanes))
        Only with shared lanes: the side operands, used in cycles without ``en``.
    side : Out(ArrayLayout(signed(2 * side_bits), shared_lanes))
        Only with shared lanes: ``a[p] * b[p]`` from ``side_latency`` cycles before.
    """

    def __init__(self, *, lanes: int, weight_bits: int, input_bits: int, acc_bits: int,
                 shared_lanes: int = 0, side_bits: int = 16,
                 clear_ahead: bool = False, held_sums: bool = False) -> None:
        self.lanes = check_positive_int("Lane count", lanes)
        self.weight_bits = check_positive_int("Weight width", weight_bits, minimum=2)
        self.input_bits = check_positive_int("Input width", input_bits)
        self.acc_bits = check_positive_int("Accumulator width", acc_bits, minimum=2)
        self.shared_lanes = check_positive_int("Shared lane count", shared_lanes, minimum=0)
        self.side_bits = check_positive_int("Side operand width", side_bits, minimum=2)
        if not isinstance(clear_ahead, bool):
            raise TypeError(f"Clear ahead must be True or False, not {clear_ahead!r}")
        self.clear_ahead = clear_ahead
        if not isinstance(held_sums, bool):
            raise TypeError(f"Held sums must be True or False, not {held_sums!r}")
        self.held_sums = held_sums
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
            "last": In(1),
            "x": In(unsigned(input_bits)),
            "w": In(data.ArrayLayout(signed(weight_bits), lanes)),
            "acc": Out(data.ArrayLayout(signed(acc_bits), lanes)),
            "out": Out(signed(acc_bits)),
        }
        if shared_lanes:
            operands = data.ArrayLayout(signed(side_bits), shared_lanes)
            members.update({
                "a": In(operands), "b": In(operands),
                "side": Out(data.ArrayLayout(signed(2 * side_bits), shared_lanes)),
            })
        super().__init__(members)

    #: Cycles from an element at the inputs to its product in ``acc``: the input
    #: registers, the product register, the accumulator.
    LATENCY = 3
    #: Cycles from side operands to their product: the input registers, the product.
    SIDE_LATENCY = LATENCY - 1
    #: Lanes sharing one copy of the ``x`` register (one register driving all 86 lanes
    #: of the ULX3S-85F build took 15 ns to route).
    GROUP = 4

    @property
    def latency(self) -> int:
        """Cycles from an element at the inputs to its product in ``acc`` (:attr:`LATENCY`)."""
        return self.LATENCY

    @property
    def side_latency(self) -> int:
        """Cycles from side operands at ``a``/``b`` to their product in ``side``
        (:attr:`SIDE_LATENCY`)."""
        return self.SIDE_LATENCY

    def elaborate(self, platform) -> Module:
        m = Module()
        # The unsigned x becomes a signed operand one bit wider, and the product register
        # is exactly as wide as the product of the two: Yosys moves the register and the
        # accumulator into an SB_MAC16 only when no bit is repeated or dropped.
        product_bits = self.weight_bits + self.input_bits + 1
        groups = []
        for g in range(-(-self.lanes // self.GROUP)):
            m.submodules[f"{REPLICA_PREFIX}{g}"] = group = _Broadcast(input_bits=self.input_bits)
            m.d.comb += [group.x_in.eq(self.x), group.en.eq(self.en),
                         group.first.eq(self.first), group.last.eq(self.last)]
            groups.append(group)
        # The datapath registers have no reset (what they hold before the first element
        # is never used): a register with a reset cannot move into an SB_MAC16.
        accs = [Signal(signed(self.acc_bits), name=f"acc_{p}", reset_less=True)
                for p in range(self.lanes)]
        m.d.comb += [self.acc[p].eq(accs[p]) for p in range(self.lanes)]
        for p in range(self.lanes):
            acc = accs[p]
            group = groups[p // self.GROUP]
            valid, restart, first = group.valid, group.restart, group.first_now
            # Registering the product keeps the multiplier and the adder in separate
            # cycles: the DSP's own pipeline register.
            if p < self.shared_lanes:
                # One multiplier, two users: the MAC element when there is one, else the
                # side operands. The multiplexers sit in front of the input registers.
                w = Signal(signed(self.side_bits), name=f"w_{p}", reset_less=True)
                x = Signal(signed(self.side_bits), name=f"x_lane_{p}", reset_less=True)
                m.d.sync += [w.eq(Mux(self.en, self.w[p], self.a[p])),
                             x.eq(Mux(self.en, self.x, self.b[p]))]
                product = Signal(signed(2 * self.side_bits), name=f"product_{p}",
                                 reset_less=True)
                m.d.comb += self.side[p].eq(product)
            else:
                w = Signal(signed(self.weight_bits), name=f"w_{p}", reset_less=True)
                m.d.sync += w.eq(self.w[p])
                x = Cat(group.x, 0).as_signed()
                product = Signal(signed(product_bits), name=f"product_{p}", reset_less=True)
            m.d.sync += product.eq(w * x)
            if self.clear_ahead and p >= self.shared_lanes:
                # Cleared while the first product is in the product register (no other
                # product lands then), then always a sum.
                # The sum at the accumulator's width: a wider one, sliced after the
                # multiplexer, keeps Yosys from folding the adder into the DSP.
                total = Signal.like(acc, name=f"sum_{p}")
                m.d.comb += total.eq(acc + product)
                with m.If(valid | first):
                    m.d.sync += acc.eq(Mux(first, 0, total))
            else:
                with m.If(valid & restart):
                    m.d.sync += acc.eq(product)
                with m.Elif(valid):
                    m.d.sync += acc.eq(acc + product)
        # The shift-out bank: entry p takes lane p + 1's sum when that lane's group sees
        # the sums finished, and otherwise its upper neighbour's entry. Its registers
        # need no reset: entries are only read after a load. Held sums: the last lane's
        # accumulator is the top entry (it holds a cycle after the load, unshifted).
        entries = self.lanes - 2 if self.held_sums else self.lanes - 1
        bank = [Signal(signed(self.acc_bits), name=f"shift_{p}", reset_less=True)
                for p in range(max(0, entries))]
        top = accs[-1] if self.held_sums else 0
        for p, entry in enumerate(bank):
            above = bank[p + 1] if p + 1 < len(bank) else top
            m.d.sync += entry.eq(Mux(groups[(p + 1) // self.GROUP].done, accs[p + 1], above))
        below = bank[0] if bank else top if self.lanes > 1 else 0
        m.d.comb += self.out.eq(Mux(groups[0].done, accs[0], below))
        return m


class _Broadcast(wiring.Component):
    """One group's copy of what every lane hears: ``x`` registered once (beside the
    weights' registers) with ``first_now`` (an element with ``first`` is in the input
    registers), ``en`` and ``first`` registered twice (beside the product), and ``last``
    three times: ``done`` is high in the cycle the group's accumulators hold the finished
    sums."""

    def __init__(self, *, input_bits: int) -> None:
        super().__init__({
            "x_in": In(unsigned(input_bits)),
            "en": In(1),
            "first": In(1),
            "last": In(1),
            "x": Out(unsigned(input_bits)),
            "first_now": Out(1),
            "valid": Out(1),
            "restart": Out(1),
            "done": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        en = Signal()
        # x needs no reset: products of elements without en are never accumulated.
        x = Signal.like(self.x, reset_less=True)
        m.d.sync += [x.eq(self.x_in), en.eq(self.en), self.first_now.eq(self.en & self.first),
                     self.valid.eq(en), self.restart.eq(self.first_now)]
        m.d.comb += self.x.eq(x)
        # The last element in the input registers, its product, its sum.
        last_now, last_product = Signal(), Signal()
        m.d.sync += [last_now.eq(self.en & self.last), last_product.eq(last_now),
                     self.done.eq(last_product)]
        return m
