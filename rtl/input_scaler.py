# amaranth: UnusedElaboratable=no
"""The normalised inputs v of an update: v_j = round_shift(a_j r, sh/2 + Q - 14).

Above layer 1 the update multiplies the errors by n(a), the input activations scaled to
unit norm with NORM_FRAC_BITS fractional bits (``IntTrainer._normalised``): the sum of
squares of the activations, its reciprocal square root (:class:`rtl.normaliser.Rsqrt`,
the forward pass's table) and one scaled value per activation
(:class:`rtl.normaliser.Scaler`) into the v buffer, which the update passes read.

Built with ``reciprocal="given"`` it scales only: (r, sh) come in on its ``r`` and ``sh``
ports (the training core keeps them from the forward pass, which computed the same
reciprocal square root of the same activations: ``TrainingCore(input_norm="forward")``),
and the square, the sum and the table are not built.
"""

from __future__ import annotations

from amaranth import Module, Mux, Shape, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from golden.intformat import IntFormat
from golden.inttrain import NORM_FRAC_BITS
from rtl.normaliser import Rsqrt, Scaler
from rtl.params import check_choice, check_positive_int
from rtl.resources import MemoryShape, Product

__all__ = ["RECIPROCALS", "InputScaler"]

#: Width of a normalised input: v <= 2^14 (1 + 0.98 %) fits 15 bits unsigned.
V_BITS = 15
#: Registers between an activation read and its square's sum: the activation and the
#: product (InputScaler.elaborate).
SQUARE_STAGES = 2
#: Where (r, sh) come from: the scaler's own sum of squares and Rsqrt, or its ports.
RECIPROCALS = ("own", "given")


class InputScaler(wiring.Component):
    """Reads ``count`` activations twice: their squares summed, then each one scaled
    (once, only scaled, with ``reciprocal="given"``).

    Parameters
    ----------
    fmt : IntFormat
        The model's formats (activation width, the reciprocal square root's table).
    sq_bits : int
        Width of the sum of squares (the forward program's ``widths.sq``).
    activations : int
        Depth of the activation buffer (sum of N).
    max_inputs : int
        The most activations of one step (depth of the v buffer).
    reciprocal : {"own", "given"}, optional
        ``"own"`` (default): (r, sh) from the step's own sum of squares and
        :class:`rtl.normaliser.Rsqrt`. ``"given"``: from the ``r`` and ``sh`` ports; the
        step is SCALE alone, with no square multiplier, sum or table.
    lean : bool, optional
        Only with ``reciprocal="given"``: the small-part form (default False). The v
        buffer's write address counts the writes (they come in order, from the step's
        first) instead of an index carried beside the scaler (a line of flip-flops fed by
        flip-flops, a logic cell each on iCE40); ``zero`` gives v = 0 at the write
        instead of a zero activation at the read (``zero`` holds for the step, as
        ``dest`` does); and the scaler is ``Scaler(no_reset=True, held_r=True)`` (``r``
        holds while ``run``). The same v in the same cycles.
    Members
    -------
    run : In(1)
        Held high while the step runs: SQUARES (count + 4), RSQRT (Rsqrt latency + 1)
        and SCALE (count + Scaler latency + 2) cycles; SCALE alone with
        ``reciprocal="given"`` (:meth:`cycles`).
    done : Out(1)
        The step's last cycle (every v is written).
    count : In(range(max_inputs + 1))
        The activations to normalise, stable while ``run``.
    source : In(range(activations))
        The first of them in the activation buffer.
    dest : In(range(max_inputs))
        Where v of the first goes in the v buffer.
    zero : In(1)
        The activations are taken as 0 (v = n(0) = 0: the feedback of iteration 1).
    act : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(act_bits)))
        The activation buffer (read one cycle after the address).
    v : In(memory.WritePort.Signature(addr_width=..., shape=unsigned(15)))
        The v buffer.
    r : In(unsigned(rsqrt_frac_bits + 1))
        Only with ``reciprocal="given"``: r of the activations, stable while ``run``.
    sh : In(range(sq_bits + 2))
        Only with ``reciprocal="given"``: their (even) sh, as :class:`Rsqrt` gives it.
    """

    def __init__(self, fmt: IntFormat, *, sq_bits: int, activations: int,
                 max_inputs: int, reciprocal: str = "own", lean: bool = False) -> None:
        if not isinstance(fmt, IntFormat):
            raise TypeError(f"Format must be a golden.intformat.IntFormat, not {fmt!r}")
        if fmt.rsqrt_frac_bits > NORM_FRAC_BITS + 30:
            raise ValueError(f"rsqrt_frac_bits ({fmt.rsqrt_frac_bits}) must be at most "
                             f"{NORM_FRAC_BITS + 30} for the v scaler")
        self.fmt = fmt
        self.sq_bits = check_positive_int("Sum of squares width", sq_bits)
        self.activations = check_positive_int("Activation count", activations)
        self.max_inputs = check_positive_int("Input count", max_inputs)
        check_choice("Reciprocal", reciprocal, RECIPROCALS)
        self.reciprocal = reciprocal
        if not isinstance(lean, bool):
            raise TypeError(f"Lean must be True or False, not {lean!r}")
        if lean and reciprocal != "given":
            raise ValueError("The lean input scaler scales only: it needs "
                             "reciprocal='given'")
        self.lean = lean
        members = {
            "run": In(1), "done": Out(1),
            "count": In(range(max_inputs + 1)),
            "source": In(range(max(2, activations))),
            "dest": In(range(max(2, max_inputs))),
            "zero": In(1),
            "act": In(memory.ReadPort.Signature(
                addr_width=Shape.cast(range(max(2, activations))).width,
                shape=unsigned(fmt.act_bits))),
            "v": In(memory.WritePort.Signature(
                addr_width=Shape.cast(range(max(2, max_inputs))).width,
                shape=unsigned(V_BITS))),
        }
        if reciprocal == "given":
            members["r"] = In(unsigned(fmt.rsqrt_frac_bits + 1))
            members["sh"] = In(range(sq_bits + 2))
        super().__init__(members)
        # Made here, not in elaborate, so the fit check can ask them what they need.
        self.rsqrt = (Rsqrt(sq_bits=sq_bits, index_bits=fmt.rsqrt_index_bits,
                            frac_bits=fmt.rsqrt_frac_bits) if reciprocal == "own" else None)
        # A shift below zero is a left shift: pre-shift a by e and add e to the shift.
        self._pre_shift = e = max(0, NORM_FRAC_BITS - fmt.rsqrt_frac_bits)
        self.scaler = Scaler(acc_bits=fmt.act_bits + e + 1, r_bits=fmt.rsqrt_frac_bits + 1,
                             shift_bits=7,
                             **({"no_reset": True, "held_r": True} if lean else {}))

    def cycles(self, count: int) -> int:
        """Cycles of one step over ``count`` activations: SQUARES, RSQRT and SCALE, or
        SCALE alone with ``reciprocal="given"``."""
        scale = count + Scaler.LATENCY + 2
        if self.reciprocal == "given":
            return scale
        return (count + 2 + SQUARE_STAGES) + (Rsqrt.LATENCY + 1) + scale

    def products(self) -> list[Product]:
        """The square a * a of the sum of squares (not with ``reciprocal="given"``), and
        the scaler's product."""
        if self.reciprocal == "given":
            return self.scaler.products()
        act = self.fmt.act_bits
        return [Product("square", act, act), *self.scaler.products()]

    def memories(self) -> list[MemoryShape]:
        """The reciprocal square root's table (none with ``reciprocal="given"``)."""
        return [] if self.rsqrt is None else self.rsqrt.memories()

    def elaborate(self, platform) -> Module:
        if self.reciprocal == "given":
            return self._elaborate_given()
        m = Module()
        fmt = self.fmt
        m.submodules.rsqrt = rsqrt = self.rsqrt
        e = self._pre_shift
        m.submodules.scaler = scaler = self.scaler
        count = Signal(range(self.max_inputs + max(Rsqrt.LATENCY, Scaler.LATENCY,
                                                       SQUARE_STAGES) + 3))
        n = self.count
        sq = Signal(self.sq_bits)
        a = Mux(self.zero, 0, self.act.data)
        m.d.comb += [rsqrt.sq.eq(sq), scaler.r.eq(rsqrt.r),
                     scaler.shift.eq((rsqrt.sh >> 1) + fmt.rsqrt_frac_bits - NORM_FRAC_BITS + e),
                     scaler.acc.eq(a << e),
                     self.act.addr.eq(self.source + count)]
        # act_valid: the activation read last cycle is in act.data now.
        act_valid = Signal()
        # The square goes through two registers before the sum: the activation (a block
        # RAM output is slow: 5.8 ns clock-to-out on ECP5 without its output register)
        # and the product, so neither the RAM nor the multiplier shares a cycle with the
        # adder (this path limited the training build to 50.7 MHz on the ULX3S-85F).
        a_reg, a_valid = Signal.like(self.act.data), Signal()
        square = Signal(2 * len(self.act.data))
        square_valid = Signal()
        m.d.sync += [a_reg.eq(a), a_valid.eq(act_valid), square.eq(a_reg * a_reg),
                     square_valid.eq(a_valid)]
        v_index = Signal.like(count)
        m.d.sync += act_valid.eq(0)
        v_valid, v_addr = self._beside_scaler(m, act_valid, v_index)
        scaling = Signal()
        m.d.comb += [self.v.en.eq(v_valid & scaling), self.v.addr.eq(self.dest + v_addr),
                     self.v.data.eq(scaler.out)]
        with m.FSM():
            with m.State("SQUARES"):
                # Read a_j (count), square it a cycle later.
                with m.If(self.run):
                    m.d.sync += [act_valid.eq(count < n), count.eq(count + 1)]
                    with m.If(square_valid):
                        m.d.sync += sq.eq(sq + square)
                    with m.If(count == n + 1 + SQUARE_STAGES):
                        m.d.sync += count.eq(0)
                        m.next = "RSQRT"
            with m.State("RSQRT"):
                m.d.sync += count.eq(count + 1)
                with m.If(count == Rsqrt.LATENCY):
                    m.d.sync += count.eq(0)
                    m.next = "SCALE"
            with m.State("SCALE"):
                m.d.comb += scaling.eq(1)
                m.d.sync += [act_valid.eq(count < n), v_index.eq(count), count.eq(count + 1)]
                with m.If(count == n + Scaler.LATENCY + 1):
                    # Every v is written; the next step sums afresh.
                    m.d.sync += [count.eq(0), sq.eq(0)]
                    m.d.comb += self.done.eq(1)
                    m.next = "SQUARES"
        return m

    @staticmethod
    def _beside_scaler(m: Module, act_valid: Signal, v_index: Signal):
        """An activation's valid bit and index carried through the scaler's latency, so
        that they reach the v buffer's write with its scaled value."""
        v_valid, v_addr = act_valid, v_index
        for i in range(Scaler.LATENCY):
            rv, ra = Signal(name=f"v_valid_{i}"), Signal.like(v_index, name=f"v_addr_{i}")
            m.d.sync += [rv.eq(v_valid), ra.eq(v_addr)]
            v_valid, v_addr = rv, ra
        return v_valid, v_addr

    def _counted_writes(self, m: Module, act_valid: Signal):
        """``lean``: the activation's valid bit carried through the scaler's latency, and
        the write's index counted: the step writes v of its activations in order, so the
        index is the writes so far (back to 0 at the step's end, ``done``)."""
        v_valid = act_valid
        for i in range(Scaler.LATENCY):
            delayed = Signal(name=f"v_valid_{i}")
            m.d.sync += delayed.eq(v_valid)
            v_valid = delayed
        written = Signal(range(self.max_inputs + 1), name="v_written")
        with m.If(self.done):
            m.d.sync += written.eq(0)
        with m.Elif(v_valid):
            m.d.sync += written.eq(written + 1)
        return v_valid, written

    def _elaborate_given(self) -> Module:
        """SCALE alone: each activation read once and scaled by the given (r, sh)."""
        m = Module()
        fmt, e = self.fmt, self._pre_shift
        m.submodules.scaler = scaler = self.scaler
        count = Signal(range(self.max_inputs + Scaler.LATENCY + 3))
        n = self.count
        # Lean: zero at the write (zero holds for the step, as dest does), so the
        # activation read goes into the scaler's (DSP) input register as it is.
        a = self.act.data if self.lean else Mux(self.zero, 0, self.act.data)
        m.d.comb += [scaler.r.eq(self.r),
                     scaler.shift.eq((self.sh >> 1) + fmt.rsqrt_frac_bits - NORM_FRAC_BITS + e),
                     scaler.acc.eq(a << e),
                     self.act.addr.eq(self.source + count)]
        # act_valid: the activation read last cycle is in act.data now; it and its index
        # go through the scaler's latency beside it to the v buffer's write.
        act_valid, v_index = Signal(), Signal.like(count)
        # The step's last write comes a cycle before ``done``: nothing is in flight when
        # the next step (other source, other dest) starts.
        if self.lean:
            v_valid, v_addr = self._counted_writes(m, act_valid)
        else:
            v_valid, v_addr = self._beside_scaler(m, act_valid, v_index)
        m.d.comb += [self.v.en.eq(v_valid), self.v.addr.eq(self.dest + v_addr),
                     self.v.data.eq(Mux(self.zero, 0, scaler.out) if self.lean
                                    else scaler.out)]
        m.d.sync += act_valid.eq(0)
        with m.If(self.run):
            # (Lean: no index line, the write counts.)
            m.d.sync += [act_valid.eq(count < n),
                         *([] if self.lean else [v_index.eq(count)]), count.eq(count + 1)]
            with m.If(count == n + Scaler.LATENCY + 1):
                # Every v is written; the next step starts from its first activation.
                m.d.sync += count.eq(0)
                m.d.comb += self.done.eq(1)
        return m
