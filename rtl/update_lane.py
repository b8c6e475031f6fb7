# amaranth: UnusedElaboratable=no
"""The update of one stored entry: step 9 of docs/integer-training.md in a pipelined lane.

    c' = clamp(c + step(-d v, R, k), low, high),  R = (rho + kappa) mod 2^k
    step(p, R, k) = (p + R) >> k for k > 0 (``nearest``: R = 2^(k-1)), p 2^-k for k <= 0

(:func:`golden.inttrain.update_step` and :func:`golden.inttrain.stored_limits` are the
reference). The step is saturated to the stored width + 1 bits before the add, which the
spec shows changes nothing (beyond that, c + step lies past the range anyway), so a left
shift never needs more than ``stored width + 1`` positions and the adder stays narrow.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import C, Cat, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from golden.intformat import signed_bits
from golden.intmodel import IntModel
from golden.inttrain import DELTA_BITS, NORM_FRAC_BITS, IntTrainer, TrainRule
from golden.lfsr import LFSR_WIDTH
from rtl.collisions import COLLISIONS_UNUSED
from rtl.params import check_choice, check_positive_int
from rtl.resources import Product
from rtl.select import window

__all__ = ["ROUNDINGS", "STORED_KINDS", "UpdateLane"]

#: The rounding modes of the rule (``TrainRule.rounding``).
ROUNDINGS = ("stochastic", "nearest")
#: The order of :meth:`UpdateLane.for_model`'s limits: ``select`` 0 for W, U and V, 1 for b.
STORED_KINDS = ("W", "b")


class UpdateLane(wiring.Component):
    """c' = clamp(c + step(-d v, (rho + kappa) mod 2^k, k), limits[select]), pipelined.

    One entry per cycle; its new value leaves ``latency`` cycles later with ``valid``.
    The pipeline: the input registers and the product -d v (own multiplier), or the
    product borrowed through ``a``/``b``/``product``, or -d itself for a unit input
    (v = 1, no multiplier: b and U); R beside it; p + R; the shift; the saturation to
    the stored width + 1; the add and the clamp.

    Parameters
    ----------
    limits : sequence of (int, int)
        The stored ranges (low, high) ``select`` chooses from; the stored width is the
        signed width that holds them all.
    input_bits : int
        Width of the unsigned v (pixels for layer 1, normalised inputs above; 1 for b, U).
    unit_input : bool, optional
        v = 1 always (b and U): no ``v`` port and no multiplier; -d is carried through
        as many registers as the own multiplier's input and product registers, so the
        latency is the same. Default False.
    error_bits : int, optional
        Width of the signed d (default DELTA_BITS + 2 = 16); |d| <= 2^(error_bits - 2),
        so -d fits too.
    rounding : {"stochastic", "nearest"}, optional
        Default "stochastic".
    min_shift, max_shift : int, optional
        The range of k (default -32..32, the spec's bounds; R has at most 32 bits).
    product_latency : int, optional
        Borrow the multiplier: ``a`` (= -d) and ``b`` (= v) go out with the entry and
        their product comes back on ``product`` this many cycles later (at least 2).
        Default: a multiplier of its own (input registers, product register).
    operand_bits : int, optional
        Width of a borrowed multiplier's signed inputs (default 16, SB_MAC16).
    compact : bool, optional
        The small-part form (the iCE40 UP5K), the same results in the same cycles:
        R formed from the entry's words as it comes in and carried alone (not rho and
        kappa, two words of ``max_shift`` bits, through the product's registers), and
        the shift not a full-width barrel shifter but a selection of the stored width +
        1 bits the saturation keeps, beside a test that nothing above them is lost.
        Default False: R formed in the cycle before the product, the full shift (R's
        adder off the input registers' cycle, for the ECP5 builds' clock).
    late_rounding : bool, optional
        Only with ``compact``: ``rho`` and ``kappa`` are given a cycle after their
        entry (its other members), and R is formed from them then, into one register
        before the add instead of two (the second fed by the first: a logic cell a bit
        of its own on iCE40, for a part as small as the UP5K). The same results in the
        same cycles. Default False.
    c_memory : bool, optional
        Another small-part option: the stored value's way to the add (``latency`` - 1
        cycles) through a block RAM written every cycle and read that many cycles later
        (one more block RAM, :attr:`C_MEMORY_BITS` wide), instead of a line of registers
        as wide as the widest stored value, each of which takes an iCE40 logic cell of
        its own (fed by a flip-flop). The same results in the same cycles. Default
        False.

    Members
    -------
    en : In(1)
        An entry is given this cycle.
    c : In(signed(stored_bits))
        Its stored value.
    d : In(signed(error_bits))
    v : In(unsigned(input_bits))
        Not with ``unit_input``.
    rho, kappa : In(unsigned(32))
        The generator words of the entry's row and column (with ``late_rounding`` a
        cycle after the entry).
    k : In(signed(shift_bits))
        In ``min_shift``..``max_shift`` (outside it the result is undefined).
    select : In(range(len(limits)))
        Which stored range the entry saturates to.
    valid : Out(1)
        ``out`` holds a new value (``latency`` cycles after ``en``).
    out : Out(signed(stored_bits))
    a, b : Out(signed(operand_bits))
        Only with ``product_latency``: the multiplier's operands.
    product : In(signed(2 * operand_bits))
        Only with ``product_latency``: ``a * b``, ``product_latency`` cycles later.
    """

    def __init__(self, *, limits: Sequence[tuple[int, int]], input_bits: int,
                 error_bits: int = DELTA_BITS + 2, rounding: str = "stochastic",
                 min_shift: int = -LFSR_WIDTH, max_shift: int = LFSR_WIDTH,
                 product_latency: int | None = None, operand_bits: int = 16,
                 unit_input: bool = False, compact: bool = False,
                 c_memory: bool = False, late_rounding: bool = False) -> None:
        limits = tuple(tuple(pair) for pair in limits)
        if not limits or any(len(pair) != 2 or not all(isinstance(x, int) for x in pair)
                             or pair[0] > pair[1] for pair in limits):
            raise ValueError(f"Limits must be a non-empty sequence of (low, high) integer "
                             f"pairs with low <= high, not {limits!r}")
        self.limits = limits
        self.input_bits = check_positive_int("Input width", input_bits)
        self.error_bits = check_positive_int("Error width", error_bits, minimum=2)
        check_choice("Rounding", rounding, ROUNDINGS)
        self.rounding = rounding
        if (not isinstance(max_shift, int) or isinstance(max_shift, bool)
                or not 1 <= max_shift <= LFSR_WIDTH):
            raise TypeError(f"Largest shift must be an integer in 1..{LFSR_WIDTH}, "
                            f"not {max_shift!r}")
        if (not isinstance(min_shift, int) or isinstance(min_shift, bool)
                or not -64 <= min_shift <= 0):
            raise TypeError(f"Smallest shift must be an integer in -64..0, not {min_shift!r}")
        self.min_shift, self.max_shift = min_shift, max_shift
        self.stored_bits = max(_width(x) for pair in limits for x in pair)
        self.shift_bits = max(signed_bits(max_shift), signed_bits(-min_shift))
        if product_latency is not None:
            check_positive_int("Product latency", product_latency, minimum=2)
            check_positive_int("Operand width", operand_bits, minimum=2)
            if error_bits > operand_bits or input_bits >= operand_bits:
                raise ValueError(f"A borrowed multiplier takes {operand_bits}-bit signed "
                                 f"operands: errors of {error_bits} bits and inputs of "
                                 f"{input_bits} bits do not fit (at most {operand_bits} and "
                                 f"{operand_bits - 1})")
        if not isinstance(unit_input, bool):
            raise TypeError(f"Unit input must be True or False, not {unit_input!r}")
        if unit_input and product_latency is not None:
            raise ValueError("A unit input multiplies nothing: product_latency must be None "
                             "with unit_input=True")
        self.unit_input = unit_input
        if not isinstance(compact, bool):
            raise TypeError(f"Compact must be True or False, not {compact!r}")
        self.compact = compact
        if not isinstance(c_memory, bool):
            raise TypeError(f"C memory must be True or False, not {c_memory!r}")
        self.c_memory = c_memory
        if not isinstance(late_rounding, bool):
            raise TypeError(f"Late rounding must be True or False, not {late_rounding!r}")
        if late_rounding and not compact:
            raise ValueError("Late rounding is a compact lane's: it needs compact=True")
        self.late_rounding = late_rounding
        self.product_latency = product_latency
        self.operand_bits = operand_bits
        #: The product -d v: signed, the error's width plus the input's.
        self.product_bits = error_bits + input_bits
        members = {
            "en": In(1),
            "c": In(signed(self.stored_bits)),
            "d": In(signed(error_bits)),
            "rho": In(unsigned(LFSR_WIDTH)),
            "kappa": In(unsigned(LFSR_WIDTH)),
            "k": In(signed(self.shift_bits)),
            "select": In(range(max(2, len(limits)))),
            "valid": Out(1),
            "out": Out(signed(self.stored_bits)),
        }
        if not unit_input:
            members["v"] = In(unsigned(input_bits))
        if product_latency is not None:
            members.update({"a": Out(signed(operand_bits)), "b": Out(signed(operand_bits)),
                            "product": In(signed(2 * operand_bits))})
        super().__init__(members)

    @classmethod
    def for_model(cls, model: IntModel, rule: TrainRule, *,
                  product_latency: int | None = None, unit_input: bool = False,
                  compact: bool = False, c_memory: bool = False,
                  late_rounding: bool = False) -> UpdateLane:
        """A lane for every array of ``model`` trained with ``rule``: W/U/V's range
        (``select`` 0) and b's (``select`` 1, see :data:`STORED_KINDS`), inputs as wide
        as a pixel or a normalised input (15 bits), and shifts only over the range the
        rule's k takes in this run (every layer and array, lambda of the first and the
        last epoch, z from 0 to its largest), so the shifters are no wider than needed.
        With ``unit_input`` (b and U) the input is 1 bit and there is no multiplier;
        ``compact``, ``c_memory`` and ``late_rounding`` as the constructor's."""
        trainer = IntTrainer(model, rule)
        bases = [k for epoch in (0, rule.epochs - 1)
                 for layer in range(len(model.layers))
                 for k in trainer.base_shifts(layer, rule.lr_shift_at(epoch)).values()]
        limits = trainer.limits
        return cls(limits=[limits[kind] for kind in STORED_KINDS],
                   input_bits=1 if unit_input else max(model.fmt.input_bits,
                                                        NORM_FRAC_BITS + 1),
                   rounding=rule.rounding, product_latency=product_latency,
                   unit_input=unit_input, compact=compact, c_memory=c_memory,
                   late_rounding=late_rounding,
                   min_shift=min(0, min(bases) - trainer.max_block_shift),
                   max_shift=max(1, max(bases)))

    #: Stages after the product: p + R, the shift, the saturation, the add and clamp.
    STAGES = 4

    @classmethod
    def latency_for(cls, product_latency: int | None = None) -> int:
        """Cycles from an entry to its new value with a product ``product_latency`` cycles
        away (None: the lane's own multiplier, 2: input and product registers)."""
        return (product_latency or 2) + cls.STAGES

    def products(self) -> list[Product]:
        """The lane's own multiplier, -d v (signed error times the unsigned input widened
        by a sign bit); none with a borrowed one or a unit input."""
        if self.product_latency is not None or self.unit_input:
            return []
        return [Product("update_lane", self.error_bits, self.input_bits + 1)]

    @property
    def latency(self) -> int:
        """Cycles from an entry at the inputs to its new value in ``out``."""
        return self.latency_for(self.product_latency)

    @property
    def guest_signature(self) -> wiring.Signature:
        """This lane as a unit that borrows it sees it (a b and U pass on a W pass's
        lane: ``rtl.weight_pass.WeightPass(lend_lane=True)``'s ``guest`` port): ``run``,
        the guest has the lane this cycle (its entries go in, with v = 1); the entry's
        members but ``en`` and ``v`` out; ``out`` in. ``en`` and ``valid`` stay the
        owner's: the guest knows when its entries leave (it carries what each one is
        beside the lane), and the owner, which gives no entry of its own then, sees no
        ``valid``."""
        return wiring.Signature({
            "run": Out(1), "c": Out(signed(self.stored_bits)),
            "d": Out(signed(self.error_bits)), "rho": Out(unsigned(LFSR_WIDTH)),
            "kappa": Out(unsigned(LFSR_WIDTH)), "k": Out(signed(self.shift_bits)),
            "select": Out(range(max(2, len(self.limits)))),
            "out": In(signed(self.stored_bits))})

    def _rounding(self, rho, kappa, k):
        """R of an entry: (rho + kappa) mod 2^k, or 2^(k-1) for ``nearest``, as a value
        of ``max_shift`` bits (0 for k <= 0)."""
        ones = C((1 << self.max_shift) - 1, self.max_shift)
        right = Mux(k > 0, k, 0).as_unsigned()[:Shape.cast(range(self.max_shift + 1)).width]
        if self.rounding == "stochastic":
            # Bit i is kept while i < k: a mask shifted in, which maps to a decoder (a
            # comparison of k with each position maps to a carry chain each).
            return (rho + kappa)[:self.max_shift] & ~(ones << right)[:self.max_shift]
        return Cat(*(k == i + 1 for i in range(self.max_shift)))

    def _kept_bits(self, m: Module, total, k, left_limit: int, step_bits: int):
        """The compact shift: (the low ``step_bits`` bits of ``total`` shifted right by
        k, or left by min(-k, ``left_limit``); whether any bit above them differs from
        the sign, so that the shifted sum does not fit ``step_bits`` signed bits).

        Below ``total`` go ``left_limit`` zeros and above it copies of its sign: bit j of
        the shifted sum is then bit o + j of that vector, o = k + left_limit (0 for a k
        below -left_limit), so a shifter that keeps only ``step_bits`` bits
        (:func:`rtl.select.window`) replaces one as wide as the sum, and one bit chosen
        the same way among the suffix ORs of (bit xor sign) replaces the two comparisons
        of the whole shifted sum with the saturation bounds.
        """
        sign = total[-1]
        offset_bits = Shape.cast(range(left_limit + self.max_shift + 1)).width
        offset = Mux(k < -left_limit, 0, k + left_limit).as_unsigned()[:offset_bits]
        # Sign copies up to the last bit any offset's window reaches.
        reach = (1 << offset_bits) - 1
        above = max(step_bits, reach + step_bits - left_limit - len(total))
        extended = Cat(C(0, left_limit), total, sign.replicate(above))
        # rtl.select.window, not bit_select: a variable part-select is a wide shift in
        # Verilog, which Verilator's -Wall reports (WIDTHTRUNC).
        kept = window(m, extended, offset, step_bits)
        # differs_from[i]: a bit at i or above differs from the sign (0 past the sum).
        differs = Signal(left_limit + len(total))
        m.d.comb += differs.eq(extended[:len(differs)] ^ sign.replicate(len(differs)))
        differs_from = [C(0, 1)] * (max(len(differs), reach + step_bits) + 1)
        for i in reversed(range(len(differs))):
            # A signal each: as nested expressions the simulator would evaluate the
            # chain once per bit.
            differs_from[i] = Signal(name=f"differs_from_{i}")
            m.d.comb += differs_from[i].eq(differs[i] | differs_from[i + 1])
        lost = window(m, Cat(*differs_from[step_bits - 1:]), offset, 1)
        return kept, lost

    #: The widest value ``c_memory`` keeps in its block RAM: an iCE40 block RAM's widest
    #: port (256 x 16). The bits of a wider stored value (b's at B_m = 16, 24 bits)
    #: above them go through registers, so the option costs one block RAM, not two.
    C_MEMORY_BITS = 16

    def _c_memory(self, m: Module, delay: int) -> Value:
        """``c_memory``: the entry's stored value ``delay`` cycles after it came in, from
        a block RAM (its low :attr:`C_MEMORY_BITS` bits; the rest through a line of
        registers). It is written every cycle at a running address and read ``delay``
        - 1 cycles later (its read port's register is the last cycle), so a value read
        is never the one written in that cycle (the depth is at least ``delay``). Its
        contents after a reset do not matter: ``valid`` says which results are new.
        Block RAM, though a few words: in flip-flops it would be the line again."""
        depth = 1 << max(1, (delay - 1).bit_length())
        kept = min(len(self.c), self.C_MEMORY_BITS)
        whole = kept == len(self.c)
        m.submodules.c_mem = c_mem = memory.Memory(
            shape=self.c.shape() if whole else unsigned(kept), depth=depth, init=[],
            attrs={**COLLISIONS_UNUSED, "ram_style": "block"})
        write, read = c_mem.write_port(), c_mem.read_port()
        address = Signal(range(depth), name="c_address")
        m.d.sync += address.eq(address + 1)
        m.d.comb += [write.en.eq(1), write.addr.eq(address),
                     write.data.eq(self.c if whole else self.c[:kept]),
                     read.addr.eq(address - (delay - 1))]
        if whole:
            return read.data
        high = self.c[kept:]
        for i in range(delay):
            reg = Signal(len(high), name=f"c_high_{i}")
            m.d.sync += reg.eq(high)
            high = reg
        return Cat(read.data, high).as_signed()

    def elaborate(self, platform) -> Module:
        m = Module()
        product_latency = self.product_latency or 2
        product = self._product(m)
        # Everything else travels beside the product; R is formed in the cycle before
        # the product arrives (compact: as the entry comes in) from a k-bit mask or one
        # bit, and a max_shift-bit add: R never has more bits than the largest k, so the
        # words' upper bits are not carried.
        en = _delayed(m, self.en, product_latency, "en")
        # c_memory: the stored value waits in a block RAM instead (_c_memory), so the
        # line of c's registers below is not built.
        c = self.c if self.c_memory else _delayed(m, self.c, product_latency, "c")
        select = _delayed(m, self.select, product_latency, "select")
        k, rounding_bits = self._rounding_line(m, product_latency)

        # Stage 1: q = p + R.
        total = Signal(signed(max(self.product_bits, self.max_shift + 1) + 1))
        k1, c1, select1, en1 = Signal.like(k), Signal.like(c), Signal.like(select), Signal()
        m.d.sync += [total.eq(product + rounding_bits), k1.eq(k), *self._carry(c1, c),
                     select1.eq(select), en1.eq(en)]
        left_limit = min(-self.min_shift, self.stored_bits + 1)
        step_bits = self.stored_bits + 1
        stage1 = (total, k1, c1, select1, en1)
        if self.compact:
            step, c3, select3, en3 = self._compact_step(m, stage1, left_limit, step_bits)
        else:
            step, c3, select3, en3 = self._shifted_step(m, stage1, left_limit, step_bits)
        self._add_and_clamp(m, (step, c3, select3, en3), product_latency)
        return m

    def _carry(self, reg, value) -> list:
        """The statement that carries c one stage on (none with ``c_memory``)."""
        return [] if self.c_memory else [reg.eq(value)]

    def _product(self, m: Module) -> Signal:
        """The product p = -d v, ``product_latency`` (own multiplier: 2) cycles after
        its entry: from the lane's own registers and multiplier, the borrowed
        multiplier's ports, or (``unit_input``) -d itself."""
        # -d: |d| <= 2^(error_bits - 2), so the negation fits the error's width.
        negated = Signal(signed(self.error_bits))
        m.d.comb += negated.eq(-self.d)
        product = Signal(signed(self.product_bits))
        if self.unit_input:
            # p = -d: the registers the multiplier's input and product would take, and
            # nothing that multiplies (a constant v = 1 behind a register with a reset is
            # still a multiplier to Yosys).
            a = Signal.like(negated)
            m.d.sync += [a.eq(negated), product.eq(a)]
        elif self.product_latency is None:
            a, b = Signal.like(negated), Signal.like(self.v)
            m.d.sync += [a.eq(negated), b.eq(self.v)]
            m.d.sync += product.eq(a * b)
        else:
            m.d.comb += [self.a.eq(negated), self.b.eq(self.v), product.eq(self.product)]
        return product

    def _rounding_line(self, m: Module, product_latency: int) -> tuple:
        """(k, R) as the product arrives: k carried beside it, R formed from rho, kappa
        and k in the cycle before (compact: as the entry comes in; ``late_rounding``: a
        cycle after it)."""
        if self.late_rounding:
            # rho and kappa come a cycle after their entry, beside its k's first
            # register: R from them into the one register before the add.
            k_first = _delayed(m, self.k, 1, "k_first")
            k = _delayed(m, k_first, product_latency - 1, "k")
            rounding_bits = _delayed(m, self._rounding(self.rho[:self.max_shift],
                                                       self.kappa[:self.max_shift], k_first),
                                     product_latency - 1, "r")
        elif self.compact:
            # R from the words as they come in: one register of max_shift bits a stage
            # instead of two (rho and kappa), on a part with time for the add.
            k = _delayed(m, self.k, product_latency, "k")
            rounding_bits = _delayed(m, self._rounding(self.rho[:self.max_shift],
                                                       self.kappa[:self.max_shift], self.k),
                                     product_latency, "r")
        else:
            k_early = _delayed(m, self.k, product_latency - 1, "k")
            rho = _delayed(m, self.rho[:self.max_shift], product_latency - 1, "rho")
            kappa = _delayed(m, self.kappa[:self.max_shift], product_latency - 1, "kappa")
            k = Signal.like(self.k)
            rounding_bits = Signal(self.max_shift)
            m.d.sync += k.eq(k_early)
            positions = range(self.max_shift)
            if self.rounding == "stochastic":
                word = Signal(self.max_shift)
                m.d.comb += word.eq(rho + kappa)
                # Bit i is kept while i < k (no bit for k <= 0).
                m.d.sync += rounding_bits.eq(
                    Cat(*(word[i] & (k_early > i) for i in positions)))
            else:
                m.d.sync += rounding_bits.eq(Cat(*(k_early == i + 1 for i in positions)))
        return k, rounding_bits

    def _compact_step(self, m: Module, stage1: tuple, left_limit: int,
                      step_bits: int) -> tuple:
        """Stages 2 and 3 of a compact lane, from stage 1's (q, k, c, select, en): the
        step (the shifted q saturated to ``step_bits`` bits) and c, select and en
        beside it."""
        total, k1, c1, select1, en1 = stage1
        step_low, step_high = -(1 << (step_bits - 1)), (1 << (step_bits - 1)) - 1
        # Stage 2: the step_bits bits of the shifted sum the saturation keeps, and
        # whether any bit above them differs from the sign (the step saturates).
        selected, lost = self._kept_bits(m, total, k1, left_limit, step_bits)
        kept, saturates, negative = Signal(signed(step_bits)), Signal(), Signal()
        c2, select2, en2 = Signal.like(c1), Signal.like(select1), Signal()
        step = Signal(signed(step_bits))
        c3, select3, en3 = Signal.like(c1), Signal.like(select1), Signal()
        m.d.sync += [kept.eq(selected), saturates.eq(lost), negative.eq(total[-1]),
                     *self._carry(c2, c1), select2.eq(select1), en2.eq(en1)]
        # Stage 3: the step, saturated to stored width + 1 bits.
        m.d.sync += [step.eq(Mux(saturates, Mux(negative, step_low, step_high), kept)),
                     *self._carry(c3, c2), select3.eq(select2), en3.eq(en2)]
        return step, c3, select3, en3

    def _shifted_step(self, m: Module, stage1: tuple, left_limit: int,
                      step_bits: int) -> tuple:
        """Stages 2 and 3 of a lane with a barrel shifter, from stage 1's (q, k, c,
        select, en): the step (q shifted, then saturated to ``step_bits`` bits) and c,
        select and en beside it."""
        total, k1, c1, select1, en1 = stage1
        step_low, step_high = -(1 << (step_bits - 1)), (1 << (step_bits - 1)) - 1
        # Stage 2: the shift: right by k, or left by -k but never beyond stored width + 1
        # positions (any non-zero p is then past the saturation bound already).
        shifted = Signal(signed(len(total) + left_limit))
        k2, c2, select2, en2 = Signal.like(k1), Signal.like(c1), Signal.like(select1), Signal()
        right = Signal(range(self.max_shift + 1))
        m.d.comb += right.eq(Mux(k1 > 0, k1, 0))
        if left_limit:
            left = Signal(range(left_limit + 1))
            m.d.comb += left.eq(Mux(k1 < 0, Mux(-k1 > left_limit, left_limit, -k1), 0))
            not_right = total << left
        else:
            # No k below 0: no left shift (its amount would be a zero-width signal, which
            # Verilog can only write as [-1:0]: ASCRANGE under Verilator's -Wall).
            not_right = total
        m.d.sync += [shifted.eq(Mux(k1 > 0, total >> right, not_right)),
                     k2.eq(k1), *self._carry(c2, c1), select2.eq(select1), en2.eq(en1)]
        # Stage 3: saturate the step to stored width + 1 bits.
        step = Signal(signed(step_bits))
        c3, select3, en3 = Signal.like(c1), Signal.like(select1), Signal()
        m.d.sync += [step.eq(Mux(shifted < step_low, step_low,
                                 Mux(shifted > step_high, step_high, shifted))),
                     *self._carry(c3, c2), select3.eq(select2), en3.eq(en2)]
        return step, c3, select3, en3

    def _add_and_clamp(self, m: Module, stage3: tuple, product_latency: int) -> None:
        """Stage 4, from stage 3's (step, c, select, en): c + step clamped to the
        entry's range into ``out``, ``valid`` beside it."""
        step, c3, select3, en3 = stage3
        # Stage 4: the add and the clamp to the entry's range.
        new = Signal(signed(step.shape().width + 1))
        if self.c_memory:
            c3 = self._c_memory(m, product_latency + 3)
        m.d.comb += new.eq(c3 + step)
        clamped = Signal.like(self.out)
        m.d.comb += clamped.eq(new)
        for index, (low, high) in enumerate(self.limits):
            with m.If(select3 == index):
                m.d.comb += clamped.eq(Mux(new < low, low, Mux(new > high, high, new)))
        m.d.sync += [self.out.eq(clamped), self.valid.eq(en3)]


def _delayed(m: Module, value, cycles: int, name: str):
    """``value`` through ``cycles`` registers named ``name``_0, ``name``_1, ..."""
    for i in range(cycles):
        reg = Signal.like(value, name=f"{name}_{i}")
        m.d.sync += reg.eq(value)
        value = reg
    return value

def _width(value: int) -> int:
    """The signed width that holds ``value``."""
    return (value if value >= 0 else -value - 1).bit_length() + 1
