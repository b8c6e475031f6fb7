# amaranth: UnusedElaboratable=no
"""The learning signal of a layer's update: steps 1-5 of docs/integer-training.md.

From the pre-activations of a layer, streamed by neuron with the two label columns
U[i, y] and U[i, y'], the unit computes h+ and h-, the goodness g+ and g-, the sigmoid
weights sigma+ and sigma- (the 256-entry table of :func:`golden.inttrain.sigmoid_table`
as a ROM, or the piecewise form as a shift, an add and a clamp), the block exponent z
from the running maxima, and per neuron the errors dp, dn and d that the rank-1 update
multiplies (:func:`golden.inttrain.learning_signal` is the reference).

The errors need two passes over the neurons: sigma and z depend on every neuron's h
(through g and the maxima), and every error depends on sigma and z. The first pass
(the scan) writes h+ and h- of each neuron into a buffer of ``depth`` entries of
2 x ``h_bits`` (one block RAM for the widths of the digits and MNIST models); the second
pass reads them back in neuron order.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.intformat import unsigned_bits
from golden.intmodel import IntModel
from golden.inttrain import (
    DELTA_BITS,
    SIGMOID_FRAC_BITS,
    SIGMOID_INDEX_BITS,
    SIGMOID_INPUT_FRAC_BITS,
    sigmoid_table,
    threshold,
)
from rtl.collisions import COLLISIONS_UNUSED
from rtl.params import check_choice, check_positive_int
from rtl.resources import MemoryShape, Product

__all__ = ["SIGMOIDS", "LearningSignalUnit", "error_layout", "neuron_layout"]

#: The sigmoid forms of the rule (``TrainRule.sigmoid``).
SIGMOIDS = ("table", "piecewise")


def neuron_layout(state_bits: int, weight_bits: int) -> data.StructLayout:
    """One neuron of the scan: its pre-activation, U[i, y], U[i, y'], and the end mark."""
    return data.StructLayout({"pre": signed(state_bits), "u_pos": signed(weight_bits),
                              "u_neg": signed(weight_bits), "last": 1})


def error_layout() -> data.StructLayout:
    """One neuron's errors (each at most 2^DELTA_BITS in magnitude) and the end mark."""
    error = signed(DELTA_BITS + 2)
    return data.StructLayout({"dp": error, "dn": error, "d": error, "last": 1})


class _Phase(enum.Enum, shape=3):
    # No phase is 0: a test for 0 lowers to a lint-unclean multi-bit NOT (rtl.select).
    SCAN = 1       # taking neurons
    DRAIN = 2      # the last neuron's square on its way into g
    MARGIN = 3     # the table indices of Theta - g+ and g- - Theta
    LOOKUP = 4     # the table read
    PRODUCT = 5    # sigma times the maxima (compact: times every h, OR-ed)
    EXPONENT = 6   # z from the larger product
    ERRORS = 7     # the second pass


class LearningSignalUnit(wiring.Component):
    """Steps 1-5 of a layer's update, bit-exact with :func:`golden.inttrain.learning_signal`.

    One update: the neurons of the layer arrive on ``neurons`` in order (``last`` on the
    final one), then the errors of the same neurons leave on ``errors`` in the same order;
    ``neurons`` takes nothing in between. ``theta`` (the layer's Theta) must hold from the
    last neuron until the first error is offered. ``z``, ``g_pos``, ``g_neg``,
    ``sigma_pos`` and ``sigma_neg`` hold the update's values from the first error until
    the next update's last neuron.

    Cycles of an update of N neurons without stalls: N to take the neurons (one per
    cycle), :attr:`gap` from the last neuron taken to the first error offered, N errors
    (compact: :meth:`gap_of`, then an error every other cycle, :meth:`error_cycles`).

    With ``product_latency`` the unit has no multiplier of its own (iCE40: the MAC lanes'
    SB_MAC16 lend theirs, idle while the unit works): two multipliers receive ``a[q]`` and
    ``b[q]`` and return their product ``product_latency`` cycles later, for the squares
    of h+ and h- in the scan, sigma times the maxima, then sigma+ h+ and sigma- h- in the
    second pass. h can exceed a signed 16-bit input (amax + wmax = 2^15 + 126), so the
    unit multiplies f = h >> 1 and adds the odd part: h^2 = 4 f^2 + e (4 f + 1),
    sigma h = 2 sigma f + e sigma, e = h & 1 (the goodness datapath's form); the lean
    unit multiplies s = h - 2^15 instead: h^2 = s^2 + 2^16 (h - 2^14), sigma h =
    sigma s + 2^15 sigma. The errors
    then leave without back-pressure (``errors`` is always ready: the engine writes them
    into a memory), since borrowed multipliers cannot be stalled.

    Parameters
    ----------
    state_bits : int
        Width of a signed pre-activation (B_s).
    weight_bits : int
        Width of a signed forward label weight (B_w); U lies in -wmax..wmax.
    frac_bits : int
        S, the fractional bits of a state; the margin's table index drops 2S - 4 bits, so
        S >= 2.
    theta_bits : int
        Width of the unsigned threshold input.
    depth : int
        The most neurons of a layer (the buffer's entries).
    sigmoid : {"table", "piecewise"}, optional
        The rule's sigmoid (default "table").
    product_latency : int, optional
        Borrow two multipliers with this latency (default: the unit's own).
    operand_bits : int, optional
        Width of a borrowed multiplier's signed inputs (default 16, SB_MAC16).
    lean : bool, optional
        The small-part form (default False), without the registers a 30 MHz part does not
        need; the same errors in the same cycles (:attr:`gap`). With
        ``product_latency``, h enters the multipliers centred (s = h -
        2^(B-1), :meth:`_centred`) instead of as h >> 1, so its products need an addition
        only above their low B - 1 bits and no odd bit, the squares go into g as they
        arrive (the scan's end signalled a cycle later, as before), and with a latency of
        2 or more h comes back for the squares from the buffer instead of through delay
        lines; the errors leave from the dp and dn registers, d summed after them (z's
        cycle taken twice for the stage saved); sigma is the table's read register.
    compact : bool, optional
        The smaller small-part form (default False; needs ``lean`` and
        ``product_latency``): the errors one every other cycle through one datapath
        (:meth:`_compact_errors`), a neuron's dp then its dn, so one sum, one rounding
        shifter and no 25-bit negation (the borrowed multiplier takes -sigma+ for dp); z
        from a pass over the h buffer through the same datapath (the OR of every sigma
        h) instead of the maxima of h; g kept and the margins only as wide as Theta
        (:meth:`_compact_index`). The same errors, g up to 2^W (:attr:`g_kept`), sigma
        and z; the first error 2 N + 1 cycles later (:meth:`gap_of`), the errors of N
        neurons over 2 N - 1 cycles (:meth:`error_cycles`).

    Members
    -------
    neurons : In(stream.Signature(neuron_layout(state_bits, weight_bits)))
    theta : In(unsigned(theta_bits))
    errors : Out(stream.Signature(error_layout()))
        Always ready with ``product_latency``.
    z : Out(range(z_max + 1))
        The block exponent.
    g_pos, g_neg : Out(unsigned(g_bits))
        Compact: min(g, 2^W) (:attr:`g_kept`), all the margins need.
    sigma_pos, sigma_neg : Out(unsigned(SIGMOID_FRAC_BITS + 1))
    a, b : Out(ArrayLayout(signed(operand_bits), 2))
        Only with ``product_latency``: the operands of the two borrowed multipliers
        (compact: ``a[0]`` is -sigma+ in the second pass).
    product : In(ArrayLayout(signed(2 * operand_bits), 2))
        Only with ``product_latency``: ``a[q] * b[q]``, ``product_latency`` cycles later.
    """

    #: Cycles from the last neuron's transfer to the first error's ``valid`` with the
    #: unit's own multipliers: the neuron's h, its square, its sum (the drain), the table
    #: index, the table read, sigma held, sigma times the maxima, z, then the buffer
    #: read, h held, sigma h, the rounding shift, d. The two held values
    #: (:data:`OWN_HOLDS`) keep a block RAM's output (the table, the buffer: 5.8 ns
    #: clock-to-out on ECP5 without their output register) out of a multiplier's cycle:
    #: these paths held the training build to 65 MHz. Borrowed multipliers register
    #: their operands themselves and add their latency to each of the three products
    #: instead (:meth:`gap_for`).
    GAP = 3 + 5 + 5
    #: The cycles of :data:`GAP` only the unit's own multipliers take (sigma and h held).
    OWN_HOLDS = 2

    def __init__(self, *, state_bits: int, weight_bits: int, frac_bits: int,
                 theta_bits: int, depth: int, sigmoid: str = "table",
                 product_latency: int | None = None, operand_bits: int = 16,
                 lean: bool = False, compact: bool = False) -> None:
        self.state_bits = check_positive_int("State width", state_bits, minimum=2)
        self.weight_bits = check_positive_int("Weight width", weight_bits, minimum=2)
        self.frac_bits = check_positive_int("Fractional bits", frac_bits, minimum=2)
        self.theta_bits = check_positive_int("Threshold width", theta_bits)
        self.depth = check_positive_int("Neuron count", depth)
        check_choice("Sigmoid", sigmoid, SIGMOIDS)
        self.sigmoid = sigmoid
        amax = (1 << (state_bits - 1)) - 1
        wmax = (1 << (weight_bits - 1)) - 1
        #: The largest h (H = amax + wmax) and the widths that follow from it.
        self.h_max = amax + wmax
        self.h_bits = unsigned_bits(self.h_max)
        self.g_bits = unsigned_bits(depth * self.h_max ** 2)
        self.largest_bits = unsigned_bits((1 << SIGMOID_FRAC_BITS) * self.h_max)
        self.z_max = max(0, self.largest_bits - DELTA_BITS)
        if product_latency is not None:
            check_positive_int("Product latency", product_latency)
            check_positive_int("Operand width", operand_bits, minimum=2)
            if self.h_bits > operand_bits or SIGMOID_FRAC_BITS + 1 >= operand_bits:
                raise ValueError(f"Borrowed multipliers take {operand_bits}-bit signed "
                                 f"operands: h of {self.h_bits} bits does not fit as h >> 1 "
                                 f"(at most {operand_bits} bits)")
        self.product_latency = product_latency
        self.operand_bits = operand_bits
        if not isinstance(lean, bool):
            raise TypeError(f"Lean must be a bool, not {lean!r}")
        self.lean = lean
        if not isinstance(compact, bool):
            raise TypeError(f"Compact must be a bool, not {compact!r}")
        if compact and not (lean and product_latency is not None):
            raise ValueError("Compact needs the lean form with borrowed multipliers "
                             "(lean=True and a product latency)")
        self.compact = compact
        #: The bits of g the unit keeps: all of them, or compact W = max(theta_bits, 2S +
        #: 3) + 1, enough for the margins (:meth:`_compact_index`), and a mark of a g of
        #: 2^W or more.
        self.g_kept = self.g_bits
        if compact:
            shift = 2 * frac_bits - SIGMOID_INPUT_FRAC_BITS
            self.g_kept = min(max(theta_bits, shift + SIGMOID_INDEX_BITS - 1) + 1, self.g_bits)
        members = {
            "neurons": In(stream.Signature(neuron_layout(state_bits, weight_bits))),
            "theta": In(unsigned(theta_bits)),
            "errors": Out(stream.Signature(error_layout(),
                                           always_ready=product_latency is not None)),
            "z": Out(range(self.z_max + 1)),
            "g_pos": Out(unsigned(self.g_bits)),
            "g_neg": Out(unsigned(self.g_bits)),
            "sigma_pos": Out(unsigned(SIGMOID_FRAC_BITS + 1)),
            "sigma_neg": Out(unsigned(SIGMOID_FRAC_BITS + 1)),
        }
        if product_latency is not None:
            operands = data.ArrayLayout(signed(operand_bits), 2)
            members.update({"a": Out(operands), "b": Out(operands),
                            "product": In(data.ArrayLayout(signed(2 * operand_bits), 2))})
        super().__init__(members)

    @classmethod
    def for_model(cls, model: IntModel, *, sigmoid: str = "table",
                  product_latency: int | None = None, lean: bool = False,
                  compact: bool = False) -> LearningSignalUnit:
        """The unit for every layer of ``model``: widths from its formats (the spec's width
        table), Theta wide enough for every layer, a buffer for the widest layer."""
        fmt, config = model.fmt, model.config
        theta_bits = max(unsigned_bits(threshold(config, fmt, i))
                         for i in range(config.num_layers))
        return cls(state_bits=fmt.state_bits, weight_bits=fmt.weight_bits,
                   frac_bits=fmt.frac_bits, theta_bits=theta_bits,
                   depth=max(config.hidden), sigmoid=sigmoid,
                   product_latency=product_latency, lean=lean, compact=compact)

    @classmethod
    def gap_for(cls, product_latency: int | None = None) -> int:
        """Cycles from the last neuron taken to the first error offered, with own
        multipliers (None) or borrowed ones of ``product_latency``."""
        if product_latency is None:
            return cls.GAP
        return cls.GAP - cls.OWN_HOLDS + 3 * product_latency

    def products(self) -> list[Product]:
        """The unit's own multipliers (none with borrowed ones): the squares of h+ and
        h-, sigma times the largest h (for z) and sigma times h, each twice."""
        if self.product_latency is not None:
            return []
        sigma_bits = SIGMOID_FRAC_BITS + 1
        return 2 * [Product("square", self.h_bits, self.h_bits),
                    Product("sigma_largest", sigma_bits, self.h_bits),
                    Product("sigma_h", sigma_bits, self.h_bits)]

    def memories(self) -> list[MemoryShape]:
        """The h buffer (h+ and h- of every neuron) and, with the table sigmoid, its table
        (read for sigma+ and sigma- at once)."""
        shapes = [MemoryShape("h_buffer", self.depth, 2 * self.h_bits)]
        if self.sigmoid == "table":
            shapes.append(MemoryShape("sigmoid_table", 1 << SIGMOID_INDEX_BITS,
                                      SIGMOID_FRAC_BITS + 1, rom=True, read_ports=2))
        return shapes

    @property
    def gap(self) -> int:
        """Cycles from the last neuron taken to the first error offered (:meth:`gap_for`)."""
        return self.gap_for(self.product_latency)

    def gap_of(self, neurons: int) -> int:
        """Cycles from the last of ``neurons`` taken to the first error offered: :attr:`gap`,
        or compact 2 ``neurons`` + 1 more (the maxima pass, :meth:`_compact_errors`)."""
        return self.gap + (2 * neurons + 1 if self.compact else 0)

    def error_cycles(self, neurons: int) -> int:
        """Cycles from the first error offered to the last, that one included, without
        stalls: ``neurons``, or 2 ``neurons`` - 1 compact (an error every other cycle)."""
        return 2 * neurons - 1 if self.compact else neurons

    def elaborate(self, platform) -> Module:
        m = Module()
        h_shape = unsigned(self.h_bits)
        m.submodules.buffer = buffer = memory.Memory(
            shape=data.StructLayout({"pos": h_shape, "neg": h_shape}), depth=self.depth,
            init=[], attrs=COLLISIONS_UNUSED)
        write, read = buffer.write_port(), buffer.read_port()
        # What the three stages share: the phase, the neurons counted, the goodness, the
        # maxima and each neuron's h (scan), sigma and z (between the passes).
        phase = Signal(_Phase, init=_Phase.SCAN)
        count = Signal(range(self.depth + 1))      # neurons of this update so far
        g_pos, g_neg = Signal(self.g_kept), Signal(self.g_kept)
        top_pos, top_neg = Signal(h_shape), Signal(h_shape)
        # Compact: g reached 2^W (g_kept), its kept bits no longer g's.
        beyond_pos = Signal()
        beyond_neg = Signal()
        if self.g_kept < self.g_bits:
            m.d.comb += [self.g_pos.eq(Mux(beyond_pos, 1 << self.g_kept, g_pos)),
                         self.g_neg.eq(Mux(beyond_neg, 1 << self.g_kept, g_neg))]
        else:
            m.d.comb += [self.g_pos.eq(g_pos), self.g_neg.eq(g_neg)]
        shared = SimpleNamespace(phase=phase, count=count, g=(g_pos, g_neg),
                                 top=(top_pos, top_neg), beyond=(beyond_pos, beyond_neg))
        self._scan(m, shared, write, read)
        self._signal(m, shared)
        self._errors(m, shared, read)
        return m

    def _centred(self, h):
        """s = h - 2^(B-1) as a signed B-bit operand of a borrowed multiplier (B =
        ``operand_bits``; 0 <= h < 2^B): h with its bit B - 1 flipped. The lean unit
        multiplies s where the full one multiplies h >> 1, so that h^2 and sigma h need
        an addition only above their low B - 1 bits, and no odd bit."""
        return (h ^ (1 << (self.operand_bits - 1)))[:self.operand_bits].as_signed()

    def _scan(self, m: Module, shared: SimpleNamespace, write, read) -> None:
        """First pass: h, its square and the running maximum, the goodness; sets
        ``shared.take``, ``shared.h``, ``shared.sq_last`` and ``shared.again`` (the
        buffer's read address in the scan, or None)."""
        phase, count = shared.phase, shared.count
        (g_pos, g_neg), (top_pos, top_neg) = shared.g, shared.top
        h_shape = unsigned(self.h_bits)
        take = self.neurons.valid & self.neurons.ready
        m.d.comb += self.neurons.ready.eq(phase == _Phase.SCAN)
        given = self.neurons.payload
        h_pos, h_neg = Signal(h_shape), Signal(h_shape)
        h_valid, h_last = Signal(), Signal()
        address = Signal.like(count)
        sum_pos, sum_neg = given.pre + given.u_pos, given.pre + given.u_neg
        m.d.sync += [h_pos.eq(Mux(sum_pos[-1], 0, sum_pos)),
                     h_neg.eq(Mux(sum_neg[-1], 0, sum_neg)),
                     h_valid.eq(take), h_last.eq(take & given.last), address.eq(count)]
        with m.If(take):
            m.d.sync += count.eq(count + 1)
        m.d.comb += [write.addr.eq(address), write.data.pos.eq(h_pos),
                     write.data.neg.eq(h_neg), write.en.eq(h_valid)]
        sq_pos, sq_neg = Signal(2 * self.h_bits), Signal(2 * self.h_bits)
        sq_valid, sq_last = Signal(), Signal()
        latency = self.product_latency
        shared.again = None
        if latency is None:
            m.d.sync += [sq_pos.eq(h_pos * h_pos), sq_neg.eq(h_neg * h_neg),
                         sq_valid.eq(h_valid), sq_last.eq(h_last)]
        elif self.lean:
            # h^2 = s^2 + 2^B (h - 2^(B-2)): the borrowed multiplier squares s = h - 2^(B-1)
            # (_centred), and only the top B + 1 bits take an addition.
            if latency >= 2:
                # h comes back with its square from the buffer (idle in the scan), read
                # latency - 1 cycles after its write (never in its cycle): an address
                # delayed instead of h (16 bits a side) through ``latency`` registers.
                shared.again = _delayed(m, address, latency - 1)
                back_pos, back_neg = read.data.pos, read.data.neg
            else:
                back_pos, back_neg = _delayed(m, h_pos, latency), _delayed(m, h_neg, latency)
            quarter = 1 << (self.operand_bits - 2)
            if self.compact:
                # Only g's low W bits (g_kept) are kept, so only the square's: the sum
                # above its low B bits only as wide as W - B, and h >= c (the least c
                # with c^2 >= 2^W) marks a square beyond them.
                sq_pos, sq_neg = Signal(self.g_kept), Signal(self.g_kept)
                least = math.isqrt((1 << self.g_kept) - 1) + 1
                shared.big = (back_pos >= least, back_neg >= least)
            # Into g as the product arrives, without a register between (its low bits
            # would be flip-flops fed by the multiplier, a logic cell each on the UP5K);
            # ``sq_last`` a cycle later, so that the scan ends when it did.
            m.d.comb += [
                sq_pos.eq(self.product[0] + ((back_pos - quarter) << self.operand_bits)),
                sq_neg.eq(self.product[1] + ((back_neg - quarter) << self.operand_bits)),
                sq_valid.eq(_delayed(m, h_valid, latency)),
                sq_last.eq(_delayed(m, h_last, latency + 1))]
        else:
            # h^2 = 4 f^2 + e (4 f + 1): the borrowed multiplier squares f = h >> 1.
            odd_pos, odd_neg = _delayed(m, h_pos[0], latency), _delayed(m, h_neg[0], latency)
            half_pos = _delayed(m, h_pos >> 1, latency)
            half_neg = _delayed(m, h_neg >> 1, latency)
            m.d.sync += [
                sq_pos.eq((self.product[0] << 2) + Mux(odd_pos, (half_pos << 2) + 1, 0)),
                sq_neg.eq((self.product[1] << 2) + Mux(odd_neg, (half_neg << 2) + 1, 0)),
                sq_valid.eq(_delayed(m, h_valid, latency)),
                sq_last.eq(_delayed(m, h_last, latency))]
        if not self.compact:
            # (Compact: no maxima; z from a pass over the h buffer, _compact_errors.)
            with m.If(h_valid):
                m.d.sync += [top_pos.eq(Mux(h_pos > top_pos, h_pos, top_pos)),
                             top_neg.eq(Mux(h_neg > top_neg, h_neg, top_neg))]
        with m.If(sq_valid):
            if self.compact:
                # g + h^2 >= 2^W: a carry out of the kept bits or a square beyond them.
                for g, sq, big, beyond in zip(shared.g, (sq_pos, sq_neg), shared.big,
                                              shared.beyond, strict=True):
                    total = g + sq
                    m.d.sync += g.eq(total[:self.g_kept])
                    if self.g_kept < self.g_bits:
                        m.d.sync += beyond.eq(beyond | total[self.g_kept] | big)
            else:
                m.d.sync += [g_pos.eq(g_pos + sq_pos), g_neg.eq(g_neg + sq_neg)]
        shared.take, shared.h, shared.sq_last = take, (h_pos, h_neg), sq_last

    def _signal(self, m: Module, shared: SimpleNamespace) -> None:
        """Between the passes: the phases from the scan to the errors, sigma, the maxima's
        products and z; sets ``shared.sigma``, ``shared.table`` and ``shared.z``."""
        phase, take, sq_last = shared.phase, shared.take, shared.sq_last
        given = self.neurons.payload
        sigma_shape = unsigned(SIGMOID_FRAC_BITS + 1)
        index_pos, index_neg = Signal(SIGMOID_INDEX_BITS), Signal(SIGMOID_INDEX_BITS)
        next_pos, next_neg = self._next_indices(m, shared)
        sigma_pos, sigma_neg = Signal(sigma_shape), Signal(sigma_shape)
        if not self.lean:
            m.d.comb += [self.sigma_pos.eq(sigma_pos), self.sigma_neg.eq(sigma_neg)]
        largest_pos = Signal(self.largest_bits)
        largest_neg = Signal(self.largest_bits)
        z = Signal.like(self.z)
        m.d.comb += self.z.eq(z)
        held = Signal(range((self.product_latency or 1) + 1))
        table_pos, table_neg = self._sigmoid_table(m, index_pos, index_neg, sigma_shape)
        if self.lean:
            # The table's read register follows the index, which changes only in MARGIN:
            # it holds sigma until the next update's MARGIN, so it is sigma, with no
            # register of its own (18 flip-flops fed by block RAM, a logic cell each on
            # the UP5K).
            sigma_pos, sigma_neg = table_pos, table_neg
            m.d.comb += [self.sigma_pos.eq(sigma_pos), self.sigma_neg.eq(sigma_neg)]
        sig = SimpleNamespace(sigma=(sigma_pos, sigma_neg), table=(table_pos, table_neg),
                              largest=(largest_pos, largest_neg), top=shared.top, z=z,
                              held=held)
        with m.Switch(phase):
            with m.Case(_Phase.SCAN):
                with m.If(take & given.last):
                    m.d.sync += phase.eq(_Phase.DRAIN)
            with m.Case(_Phase.DRAIN):
                # The last square is added at the end of this cycle.
                with m.If(sq_last):
                    m.d.sync += phase.eq(_Phase.MARGIN)
            with m.Case(_Phase.MARGIN):
                m.d.sync += [index_pos.eq(next_pos), index_neg.eq(next_neg),
                             phase.eq(_Phase.LOOKUP)]
            with m.Case(_Phase.LOOKUP):
                # The ROM's read register (or the piecewise form's) fills in this cycle.
                m.d.sync += [phase.eq(_Phase.PRODUCT), held.eq(0)]
            with m.Case(_Phase.PRODUCT):
                # Compact: the maxima pass (_compact_errors) ends this phase.
                if not self.compact:
                    self._products(m, phase, sig)
            with m.Case(_Phase.EXPONENT):
                self._exponent(m, shared, phase, sig)
        shared.sigma, shared.table, shared.z = ((sigma_pos, sigma_neg),
                                                (table_pos, table_neg), z)

    def _next_indices(self, m: Module, shared: SimpleNamespace) -> tuple:
        """The table indices MARGIN takes: of Theta - g+ and g- - Theta (compact: from
        margins as wide as Theta, :meth:`_compact_index`, and ``shared.largest`` set)."""
        g_pos, g_neg = shared.g
        if self.compact:
            next_pos, next_neg = self._compact_index(m, shared)
            # The OR of sigma h over the neurons and both sides (_compact_errors).
            shared.largest = Signal(self.largest_bits, name="sigma_h_or")
        else:
            margin_bits = max(self.theta_bits, self.g_bits) + 1
            margin_pos, margin_neg = Signal(signed(margin_bits)), Signal(signed(margin_bits))
            m.d.comb += [margin_pos.eq(self.theta - g_pos), margin_neg.eq(g_neg - self.theta)]
            next_pos = _index(margin_pos, self.frac_bits)
            next_neg = _index(margin_neg, self.frac_bits)
        return next_pos, next_neg

    def _sigmoid_table(self, m: Module, index_pos: Signal, index_neg: Signal,
                       sigma_shape) -> tuple:
        """sigma of both indices a cycle after them: the table's read ports (``table``)
        or registers of the piecewise form."""
        if self.sigmoid == "table":
            m.submodules.table = table = memory.Memory(
                shape=sigma_shape, depth=1 << SIGMOID_INDEX_BITS,
                init=[int(v) for v in sigmoid_table("table")])
            look_pos, look_neg = table.read_port(), table.read_port()
            m.d.comb += [look_pos.addr.eq(index_pos), look_neg.addr.eq(index_neg)]
            table_pos, table_neg = look_pos.data, look_neg.data
        else:
            table_pos, table_neg = Signal(sigma_shape), Signal(sigma_shape)
            m.d.sync += [table_pos.eq(_piecewise(index_pos)),
                         table_neg.eq(_piecewise(index_neg))]
        return table_pos, table_neg

    def _products(self, m: Module, phase: Signal, sig: SimpleNamespace) -> None:
        """PRODUCT (not compact): sigma held and the maxima's products sigma h, by the
        unit's own multipliers (a cycle's hold first) or the borrowed ones (their
        latency's wait), then EXPONENT."""
        latency, held = self.product_latency, sig.held
        (sigma_pos, sigma_neg), (table_pos, table_neg) = sig.sigma, sig.table
        largest_pos, largest_neg = sig.largest
        top_pos, top_neg = sig.top
        if latency is None:
            # sigma is held a cycle before its products (GAP).
            if not self.lean:
                m.d.sync += [sigma_pos.eq(table_pos), sigma_neg.eq(table_neg)]
            m.d.sync += held.eq(held + 1)
            with m.If(held == 1):
                m.d.sync += [largest_pos.eq(sigma_pos * top_pos),
                             largest_neg.eq(sigma_neg * top_neg),
                             phase.eq(_Phase.EXPONENT)]
        else:
            # The operands wait in the borrowed multipliers for their products;
            # sigma h = 2 sigma f + e sigma.
            m.d.sync += held.eq(held + 1)
            with m.If(held == latency):
                if not self.lean:
                    m.d.sync += [sigma_pos.eq(table_pos), sigma_neg.eq(table_neg)]
                if self.lean:
                    # sigma h = sigma s + 2^(B-1) sigma (_centred).
                    centre = self.operand_bits - 1
                    m.d.sync += [
                        largest_pos.eq(self.product[0] + (table_pos << centre)),
                        largest_neg.eq(self.product[1] + (table_neg << centre)),
                        phase.eq(_Phase.EXPONENT)]
                else:
                    m.d.sync += [
                        largest_pos.eq((self.product[0] << 1)
                                       + Mux(top_pos[0], table_pos, 0)),
                        largest_neg.eq((self.product[1] << 1)
                                       + Mux(top_neg[0], table_neg, 0)),
                        phase.eq(_Phase.EXPONENT)]

    def _exponent(self, m: Module, shared: SimpleNamespace, phase: Signal,
                  sig: SimpleNamespace) -> None:
        """EXPONENT: z from the larger maximum (compact: from the OR of every sigma h),
        then ERRORS."""
        largest_pos, largest_neg = sig.largest
        z = sig.z
        if self.compact:
            # The OR of every sigma h (_compact_errors): max >= 2^k iff OR >= 2^k.
            largest = shared.largest
        else:
            largest = Mux(largest_pos > largest_neg, largest_pos, largest_neg)
        # z = max(0, bits(M) - 14) = the number of j < z_max with M >= 2^(14 + j):
        # a sum over a thermometer code instead of a priority chain.
        m.d.sync += z.eq(sum(largest[DELTA_BITS + j:].any() for j in range(self.z_max)))
        if self.lean and not self.compact:
            # Two cycles (z the same in both): the cycle the errors' output register no
            # longer takes (_errors), so the gap stays GAP. (The compact errors take that
            # cycle again: _compact_errors.)
            waited = Signal()
            m.d.sync += waited.eq(~waited)
            with m.If(waited):
                m.d.sync += phase.eq(_Phase.ERRORS)
        else:
            m.d.sync += phase.eq(_Phase.ERRORS)

    def _compact_index(self, m: Module, shared: SimpleNamespace) -> tuple:
        """The table indices of Theta - g+ and g- - Theta (compact) from margins as wide
        as Theta, not as g (37 bits for B_s = 16 and 64 neurons), with no adder in the
        clamp (:func:`_clamped_index`).

        With W = max(theta_bits, 2S - 4 + 7) + 1: a g of 2^W or more lies beyond Theta
        (below 2^(W-1)) by more than 2^(W-1) >= 128 2^(2S-4), where :func:`_index`
        clamps Theta - g+ to 0 and g- - Theta to 255; a g below 2^W leaves both margins
        within W + 1 signed bits (W: :attr:`g_kept`, the bits of g kept)."""
        shift = 2 * self.frac_bits - SIGMOID_INPUT_FRAC_BITS
        (g_pos, g_neg), (beyond_pos, beyond_neg) = shared.g, shared.beyond
        width = self.g_kept
        margin_pos = Signal(signed(width + 1))
        margin_neg = Signal(signed(width + 1))
        m.d.comb += [margin_pos.eq(self.theta - g_pos), margin_neg.eq(g_neg - self.theta)]
        top = (1 << SIGMOID_INDEX_BITS) - 1
        return (Mux(beyond_pos, 0, _clamped_index(margin_pos, shift)),
                Mux(beyond_neg, top, _clamped_index(margin_neg, shift)))

    def _compact_errors(self, m: Module, shared: SimpleNamespace, read) -> None:
        """The passes over the h buffer, compact: in PRODUCT the maxima pass, the OR of
        sigma+ h+ and sigma- h- of every neuron (max >= 2^k iff OR >= 2^k: z's
        thermometer code, with neither maxima nor comparators in the scan), then in
        ERRORS the errors; each a neuron every other cycle, a neuron's two products
        through one sum (and in ERRORS one rounding shifter, dp then dn); at the last
        error, clears what the next scan accumulates.

        Neuron k is issued (its h read) at cycle t and stays in the buffer's read
        register through t + 2 (no read at t + 1), so both borrowed multipliers see it at
        t + 1 and t + 2: multiplier 0's -sigma+ s+ (``a[0]`` = -sigma+: sigma h = sigma s
        + 2^(B-1) sigma, :meth:`_centred`, with sigma negated, so dp needs no negation of
        its 25-bit product) enters the one product register at t + 1 + L, multiplier 1's
        sigma- s- at t + 2 + L; dp is rounded from it at t + 2 + L, dn at t + 3 + L, and
        the error offered at t + 4 + L, a cycle later than lean (EXPONENT gives that
        cycle back). The maxima pass takes the same path with +sigma+ (its products are
        ORed at t + 2 + L and t + 3 + L) and ends with the last neuron's second: 2 N + 1
        cycles more than lean's PRODUCT (:meth:`gap_of`)."""
        phase, count, z = shared.phase, shared.count, shared.z
        g_pos, g_neg = shared.g
        (h_pos, h_neg), (sigma_pos, sigma_neg) = shared.h, shared.sigma
        beyond_pos, beyond_neg = shared.beyond
        latency = self.product_latency
        centre = self.operand_bits - 1
        issued = Signal.like(count)
        # The cycle after an issue: no read (the neuron's h stays for multiplier 1), no issue.
        holding = Signal()
        passes = (phase == _Phase.PRODUCT) | (phase == _Phase.ERRORS)
        issue = passes & (issued != count) & ~holding
        read_valid, read_last = Signal(), Signal()
        m.d.comb += read.en.eq(~holding)
        if shared.again is None:
            m.d.comb += read.addr.eq(issued)
        else:
            # Before the passes the scan reads h back (shared.again).
            m.d.comb += read.addr.eq(Mux(passes, issued, shared.again))
        with m.If(issue):
            m.d.sync += issued.eq(issued + 1)
        m.d.sync += [holding.eq(issue), read_valid.eq(issue),
                     read_last.eq(issue & (issued == count - 1))]
        # -sigma+ for dp in ERRORS, +sigma+ for the maxima in PRODUCT.
        minus_sigma = Signal(signed(SIGMOID_FRAC_BITS + 2))
        m.d.comb += minus_sigma.eq(Mux(phase == _Phase.ERRORS, -sigma_pos, sigma_pos))
        # first: multiplier 0's product of a neuron is here; second: multiplier 1's, a
        # cycle later (and the product register holds the first's); third: the second's.
        first = _delayed(m, read_valid, latency)
        second = Signal()
        third = Signal()
        m.d.sync += [second.eq(first), third.eq(second)]
        last = _delayed(m, read_last, latency + 2)
        scaled = Signal(signed(self.largest_bits + 1))
        m.d.sync += scaled.eq(Mux(second, self.product[1], self.product[0])
                              + (Mux(second, sigma_neg, minus_sigma) << centre))
        rounded = _round_shift(scaled, z)
        dp = Signal(signed(DELTA_BITS + 2))
        dn = Signal(signed(DELTA_BITS + 2))
        error_last = Signal()
        with m.If(second):
            m.d.sync += dp.eq(rounded)
        with m.If(third):
            m.d.sync += dn.eq(rounded)
        m.d.sync += [self.errors.valid.eq(third & (phase == _Phase.ERRORS)),
                     error_last.eq(last)]
        largest = shared.largest
        with m.If(phase == _Phase.PRODUCT):
            with m.If(second | third):
                # Only the bits z's thermometer code reads (the rest is left to Yosys).
                m.d.sync += largest.eq(largest | scaled)
            with m.If(third & last):
                # The last neuron's sigma- h- is ORed in this cycle: z next (EXPONENT).
                m.d.sync += [phase.eq(_Phase.EXPONENT), issued.eq(0)]
        out = self.errors.payload
        m.d.comb += [out.dp.eq(dp), out.dn.eq(dn), out.d.eq(dp + dn), out.last.eq(error_last)]
        # The borrowed multipliers' operands, by phase: the squares in the scan, then
        # (-)sigma times each neuron's h in both passes.
        for q, (h_now, sigma, stored) in enumerate((
                (h_pos, minus_sigma, read.data.pos), (h_neg, sigma_neg, read.data.neg))):
            with m.Switch(phase):
                with m.Case(_Phase.PRODUCT, _Phase.ERRORS):
                    m.d.comb += [self.a[q].eq(sigma), self.b[q].eq(self._centred(stored))]
                with m.Default():
                    m.d.comb += [self.a[q].eq(self._centred(h_now)),
                                 self.b[q].eq(self._centred(h_now))]
        with m.If(self.errors.valid & out.last):
            # The update is over: clear what the next scan accumulates.
            m.d.sync += [phase.eq(_Phase.SCAN), count.eq(0), issued.eq(0),
                         g_pos.eq(0), g_neg.eq(0), largest.eq(0),
                         beyond_pos.eq(0), beyond_neg.eq(0)]

    def _errors(self, m: Module, shared: SimpleNamespace, read) -> None:
        """Second pass: the errors, through a pipeline that stalls as a whole; at the
        last error taken, clears what the next scan accumulates."""
        if self.compact:
            self._compact_errors(m, shared, read)
            return
        phase, count, z = shared.phase, shared.count, shared.z
        (g_pos, g_neg), (top_pos, top_neg) = shared.g, shared.top
        (h_pos, h_neg), (sigma_pos, sigma_neg) = shared.h, shared.sigma
        table_pos, table_neg = shared.table
        latency = self.product_latency
        # Every stage moves when the output register is empty or taken, so valid never
        # depends on ready and the buffer's read port holds its data while stalled.
        advance = 1 if latency is not None else ~self.errors.valid | self.errors.ready
        issued = Signal.like(count)
        issue = (phase == _Phase.ERRORS) & (issued != count)
        read_valid, read_last = Signal(), Signal()
        if shared.again is None:
            m.d.comb += [read.addr.eq(issued), read.en.eq(advance)]
        else:
            # Before the second pass the scan reads h back (shared.again).
            m.d.comb += [read.addr.eq(Mux(phase == _Phase.ERRORS, issued, shared.again)),
                         read.en.eq(advance)]
        product_pos = Signal(signed(self.largest_bits + 1))
        product_neg = Signal(signed(self.largest_bits + 1))
        product_valid, product_last = Signal(), Signal()
        error_shape = signed(DELTA_BITS + 2)
        dp, dn = Signal(error_shape), Signal(error_shape)
        error_valid, error_last = Signal(), Signal()
        out = self.errors.payload
        if latency is None:
            # h is held a cycle before its product (GAP).
            h_held = Signal.like(read.data)
            h_held_valid, h_held_last = Signal(), Signal()
            with m.If(advance):
                m.d.sync += [h_held.eq(read.data), h_held_valid.eq(read_valid),
                             h_held_last.eq(read_last)]
            scaled_pos = sigma_pos * h_held.pos
            scaled_neg = sigma_neg * h_held.neg
            scaled_valid, scaled_last = h_held_valid, h_held_last
        else:
            # Without stalls (errors always ready) the borrowed products and what travels
            # beside them are plain delay lines.
            if self.lean:
                # sigma h = sigma s + 2^(B-1) sigma (_centred): no odd bit to carry along.
                centre = self.operand_bits - 1
                scaled_pos = self.product[0] + (sigma_pos << centre)
                scaled_neg = self.product[1] + (sigma_neg << centre)
            else:
                scaled_pos = (self.product[0] << 1) + Mux(
                    _delayed(m, read.data.pos[0], latency), sigma_pos, 0)
                scaled_neg = (self.product[1] << 1) + Mux(
                    _delayed(m, read.data.neg[0], latency), sigma_neg, 0)
            scaled_valid = _delayed(m, read_valid, latency)
            scaled_last = _delayed(m, read_last, latency)
            # The borrowed multipliers' operands, by phase: the squares in the scan,
            # sigma times the maxima, then sigma times each neuron's h.
            for q, (h_now, top, table, sigma, stored) in enumerate((
                    (h_pos, top_pos, table_pos, sigma_pos, read.data.pos),
                    (h_neg, top_neg, table_neg, sigma_neg, read.data.neg))):
                # Lean: h enters as s = h - 2^(B-1) (_centred), not as h >> 1.
                operand = self._centred if self.lean else (lambda h: h >> 1)
                with m.Switch(phase):
                    with m.Case(_Phase.PRODUCT):
                        m.d.comb += [self.a[q].eq(table), self.b[q].eq(operand(top))]
                    with m.Case(_Phase.ERRORS):
                        m.d.comb += [self.a[q].eq(sigma), self.b[q].eq(operand(stored))]
                    with m.Default():
                        m.d.comb += [self.a[q].eq(operand(h_now)), self.b[q].eq(operand(h_now))]
        with m.If(advance):
            with m.If(issue):
                m.d.sync += issued.eq(issued + 1)
            m.d.sync += [
                read_valid.eq(issue), read_last.eq(issue & (issued == count - 1)),
                # dp is round_shift(-(sigma+ h+), z): the negation comes before the
                # rounding (half up is not symmetric).
                product_pos.eq(-scaled_pos), product_neg.eq(scaled_neg),
                product_valid.eq(scaled_valid), product_last.eq(scaled_last)]
            if self.lean:
                # dp and dn are the output registers, d their sum after them: no register
                # that only copies dp and dn (32 flip-flops fed by flip-flops, a logic
                # cell each on the UP5K), and each rounding LUT feeds one flip-flop.
                m.d.sync += [dp.eq(_round_shift(product_pos, z)),
                             dn.eq(_round_shift(product_neg, z)),
                             error_last.eq(product_last), self.errors.valid.eq(product_valid)]
            else:
                m.d.sync += [
                    dp.eq(_round_shift(product_pos, z)), dn.eq(_round_shift(product_neg, z)),
                    error_valid.eq(product_valid), error_last.eq(product_last),
                    out.dp.eq(dp), out.dn.eq(dn), out.d.eq(dp + dn), out.last.eq(error_last),
                    self.errors.valid.eq(error_valid),
                ]
        if self.lean:
            m.d.comb += [out.dp.eq(dp), out.dn.eq(dn), out.d.eq(dp + dn),
                         out.last.eq(error_last)]
        taken = self.errors.valid if latency is not None else \
            self.errors.valid & self.errors.ready
        with m.If(taken & out.last):
            # The update is over: clear what the next scan accumulates.
            m.d.sync += [phase.eq(_Phase.SCAN), count.eq(0), issued.eq(0),
                         g_pos.eq(0), g_neg.eq(0), top_pos.eq(0), top_neg.eq(0)]


def _index(margin, frac_bits: int):
    """clamp((m >> (2S - 4)) + 128, 0, 255), m with 2S fractional bits."""
    half = 1 << (SIGMOID_INDEX_BITS - 1)
    top = (1 << SIGMOID_INDEX_BITS) - 1
    shifted = (margin >> (2 * frac_bits - SIGMOID_INPUT_FRAC_BITS)) + half
    return Mux(shifted < 0, 0, Mux(shifted > top, top, shifted))[:SIGMOID_INDEX_BITS]


def _clamped_index(margin, shift: int):
    """:func:`_index` without an adder: (m >> shift) + 128 lies in 0..255 iff m >> shift
    lies in -128..127 (its bits from bit 7 up all equal), and is then its low 8 bits with
    the top one flipped; else 0 for a negative m, 255 for a positive one."""
    shifted = margin[shift:]
    upper = shifted[SIGMOID_INDEX_BITS - 1:]
    inside = upper.all() | ~upper.any()
    half, top = 1 << (SIGMOID_INDEX_BITS - 1), (1 << SIGMOID_INDEX_BITS) - 1
    return Mux(inside, shifted[:SIGMOID_INDEX_BITS] ^ half, Mux(margin[-1], 0, top))


def _piecewise(index):
    """The hard sigmoid at the bin middles: clip(one/2 + step (i - 128) + step/2, 0, one)
    with step = one / 64 (:func:`golden.inttrain.sigmoid_table`'s "piecewise")."""
    one = 1 << SIGMOID_FRAC_BITS
    step = one // (4 << SIGMOID_INPUT_FRAC_BITS)
    offset = step * (1 << (SIGMOID_INDEX_BITS - 1)) - one // 2 - step // 2
    value = step * index - offset       # signed: Amaranth's difference is
    return Mux(value < 0, 0, Mux(value > one, one, value))


def _round_shift(value, shift):
    """round_shift(value, shift) = ((2 value >> shift) + 1) >> 1 for every shift >= 0
    (the Scaler's form: no choice between a rounded and an unshifted value)."""
    return (((value << 1) >> shift) + 1) >> 1


def _delayed(m: Module, value, cycles: int):
    """``value`` through ``cycles`` registers."""
    for _ in range(cycles):
        register = Signal.like(value) if isinstance(value, Signal) else Signal(len(value))
        m.d.sync += register.eq(value)
        value = register
    return value
