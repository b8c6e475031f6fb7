"""The sweep: a MAC pass's finished sums, one per cycle, made into the layer's outputs.

When a pass's last element has been issued, its tag (which neurons, feed-forward or
feedback, final or not) travels beside the element to the lanes (``last``) and then to
the lanes' shift-out, which gives one finished sum per cycle. The sweep pipeline takes
each one through

    scaler (S) -> offset (kept feed-forward part + bias), sum, saturation (3) -> write

into the pre-activation memory and the loop-feedback buffer, and the activation's square
into the layer's sum of squares. It writes only the op's output layer, which no pass of
the same op reads, so the lanes accumulate the next pass meanwhile; a pass whose products
would arrive before the sweep has taken the previous pass's is held (``free``). With
shared multipliers the scaler and the square borrow lanes 0-2 (``a``, ``b``,
``product``).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from rtl.collisions import COLLISIONS_UNUSED
from rtl.normaliser import Scaler, SplitScaler
from rtl.program import (
    SIDE_BITS,
    SUM_STAGES,
    SWEEP_SPACING,
    Program,
    op_layout,
)

__all__ = ["SHARED_OPERANDS", "Sweep", "tag_layout"]

#: Lanes the sweep borrows with shared multipliers: 0 and 1 scale, 2 squares.
SHARED_OPERANDS = 3


def tag_layout(program: Program) -> data.StructLayout:
    """The tag of a pass's last element: the neurons its sums are for."""
    P = program.lanes
    return data.StructLayout({
        "valid": 1, "fb": 1, "final": 1,
        "neuron": range(max(program.model.config.hidden) + P), "count": range(P + 1)})


class Sweep(wiring.Component):
    """Scale, offset, saturate and store a pass's sums; sum the activations' squares.

    Parameters
    ----------
    program : Program
        Widths, lanes, layer sizes and whether multipliers are shared.
    product_latency : int, optional
        Only with shared multipliers: cycles from ``a``, ``b`` to ``product``.
    lean : bool, optional
        The small-part form (default False): the bias, and a feedback sweep's kept
        feed-forward part, are read in the cycle before the scaled sum comes out of the
        scaler (instead of with the sweep, the bias then carried beside the scaler) and
        added to it at once, and a feed-forward sweep keeps its biased sum; the
        saturated sum waits a cycle before the write, the ReLU after it. On iCE40 a
        flip-flop fed by a flip-flop or a memory takes a logic cell of its own: the
        bias's delay line, the offset and the scaled sum's copy were 123 of the digits
        training build's cells, the saturated sum's wait is 16. The same values in the
        same cycles.
    tag_memory : bool, optional
        Another small-part option (default False): the tags' way to the lanes and the
        shift-out (``1 + mac_drain`` cycles) in a block RAM written and read in turn,
        only ``valid`` in flip-flops, instead of a line of whole tags in flip-flops, each
        of which takes a logic cell of its own on iCE40 (fed by a flip-flop). The same
        values in the same cycles, for one block RAM.
    spaced_passes : bool, optional
        Only with ``lean``: another small-part option (default False). The caller gives
        a pass's tag at least :meth:`pass_spacing` cycles after the previous pass's (the
        core's GAP with shared multipliers leaves more), so one pass at a time is in the
        pipeline: instead of a line of neuron indices, ``final`` and ``fb`` beside the
        scaler and the sum stages (flip-flops fed by flip-flops, a logic cell each on
        iCE40), the stages that use a neuron index count it from the tag's, and ``final``
        and ``fb`` are the pass's, kept from its tag; only ``valid`` travels. The same
        values in the same cycles.

    Members
    -------
    tag : In(tag_layout(program))
        With ``valid``: the last element of a pass is issued this cycle; ``count`` sums
        for neurons ``neuron``... of the op's output layer, feedback pass ``fb``, the
        tile's last pass ``final`` (only a final sweep writes).
    last : Out(1)
        To the lanes: the element given to them this cycle ends a pass.
    free : Out(1)
        A pass may issue its last element now: its products will find the sweep free.
    acc : In(signed(acc_bits))
        The lanes' shift-out.
    ff_r, fb_r : In(unsigned(r_bits))
        The reciprocal square root of the op's feed-forward and feedback input.
    ff_shift, fb_shift : In(unsigned(shift_bits))
        Their right shifts (constant and normalising).
    out_off : In(op_layout(program)["out_off"].shape)
        First neuron of the op's output layer in the buffers.
    bank : In(1)
        The loop-feedback buffer bank the op writes.
    bias : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(state_bits)))
        The bias memory (read one cycle after the address).
    pre : In(memory.WritePort.Signature(addr_width=..., shape=signed(state_bits)))
        The layer's pre-activations, for the label scan.
    buffer : Out(wiring.Signature({"en", "bank", "addr", "data": Out}))
        The activations, into the loop-feedback buffer.
    clear_sq : In(1)
        Restart the sum of squares (an op starts).
    sq : Out(unsigned(sq_bits))
        The sum of the squared activations written since ``clear_sq``.
    a, b : Out(ArrayLayout(signed(16), 3))
        Only with shared multipliers: operands for lanes 0-2 (lane 2 squares).
    product : In(ArrayLayout(signed(32), 3))
        Only with shared multipliers: ``a[p] * b[p]``, ``product_latency`` cycles later.
    """

    def __init__(self, program: Program, *, product_latency: int | None = None,
                 lean: bool = False, tag_memory: bool = False,
                 spaced_passes: bool = False) -> None:
        if not isinstance(program, Program):
            raise TypeError(f"Program must be an rtl.program.Program, not {program!r}")
        if program.shared != (product_latency is not None):
            raise ValueError(f"A product latency is needed exactly with shared multipliers "
                             f"(shared={program.shared}), not {product_latency!r}")
        if not isinstance(lean, bool):
            raise TypeError(f"Lean must be True or False, not {lean!r}")
        if not isinstance(tag_memory, bool):
            raise TypeError(f"Tag memory must be True or False, not {tag_memory!r}")
        self.program, self.product_latency, self.lean = program, product_latency, lean
        self.tag_memory = tag_memory
        if not isinstance(spaced_passes, bool):
            raise TypeError(f"Spaced passes must be True or False, not {spaced_passes!r}")
        if spaced_passes and not lean:
            raise ValueError("Spaced passes are a form of the lean sweep: they need "
                             "lean=True")
        self.spaced_passes = spaced_passes
        w, config = program.widths, program.model.config
        total = sum(config.hidden)
        members = {
            "tag": In(tag_layout(program)),
            "last": Out(1),
            "free": Out(1),
            "acc": In(signed(w.acc)),
            "ff_r": In(unsigned(w.r)), "fb_r": In(unsigned(w.r)),
            "ff_shift": In(unsigned(w.shift)), "fb_shift": In(unsigned(w.shift)),
            "out_off": In(op_layout(program)["out_off"].shape),
            "bank": In(1),
            "bias": In(memory.ReadPort.Signature(
                addr_width=Shape.cast(range(max(2, total))).width,
                shape=unsigned(w.state))),
            "pre": In(memory.WritePort.Signature(
                addr_width=Shape.cast(range(max(2, *config.hidden))).width,
                shape=signed(w.state))),
            "buffer": Out(wiring.Signature({
                "en": Out(1), "bank": Out(1), "addr": Out(range(total)),
                "data": Out(unsigned(w.act))})),
            "clear_sq": In(1),
            "sq": Out(unsigned(w.sq)),
        }
        if program.shared:
            operands = data.ArrayLayout(signed(SIDE_BITS), SHARED_OPERANDS)
            members.update({
                "a": Out(operands), "b": Out(operands),
                "product": In(data.ArrayLayout(signed(2 * SIDE_BITS), SHARED_OPERANDS))})
        super().__init__(members)

    @property
    def scale_latency(self) -> int:
        """Cycles from a swept sum to its scaled value (the scaler's)."""
        if self.program.shared:
            return SplitScaler.latency_for(self.product_latency)
        return Scaler.LATENCY

    @property
    def square_latency(self) -> int:
        """Cycles from an activation to its square (a register, or the borrowed lane)."""
        return self.product_latency if self.program.shared else 1

    @property
    def latency(self) -> int:
        """Cycles from the last swept sum until its square is in ``sq``: the scaler,
        offset, sum, saturation, the square."""
        return self.scale_latency + SUM_STAGES + self.square_latency

    def pass_spacing(self, count: int) -> int:
        """With ``spaced_passes``: the fewest cycles from the tag of a pass of ``count``
        sums to the next pass's tag (its last sum then leaves the last stage no later
        than the next pass's tag reaches the sweep)."""
        return count + self.scale_latency + SUM_STAGES - 1

    def _hand_over(self, m: Module) -> data.View:
        """The tags' way to the lanes and the shift-out; ``free``. Returns the tag that
        reaches the sweep with its pass's first sum."""
        P, drain = self.program.lanes, self.program.mac_drain
        # The last element issued in cycle c is in the accumulators in cycle
        # c + 1 + mac_drain (memory read, operand stages, the lanes); the next pass's first
        # element, issued from c + 1 on, restarts them only at the end of that cycle.
        if self.tag_memory:
            valids, rest = self._tag_memory(m, drain)
            # The tag that reaches the sweep: its valid bit from the line, the rest from
            # the memory, in the same cycle.
            captured = tag_layout(self.program)(Cat(valids[-1], rest))
        else:
            tags = [Signal(tag_layout(self.program), name=f"tag_{i}")
                    for i in range(1 + drain)]
            m.d.sync += tags[0].eq(self.tag)
            m.d.sync += [tags[i].eq(tags[i - 1]) for i in range(1, len(tags))]
            valids = [tag.valid for tag in tags]
            captured = tags[-1]
        # The tag of a pass's last element reaches the lanes with the element (the memory
        # read and the operand stage), and the sweep with its sums, when the lanes'
        # shift-out gives lane 0's.
        m.d.comb += self.last.eq(valids[self.program.operand_stages])
        # Cycles until the sweep has taken its last accumulator, counting handed-over
        # passes still on their way: a pass may issue its last element only if the sweep
        # is free when that element's products arrive.
        sweep_busy = Signal(range(max(P, SWEEP_SPACING) + drain + 1))
        with m.If(self.tag.valid):
            m.d.sync += sweep_busy.eq(Mux(self.tag.count < SWEEP_SPACING, SWEEP_SPACING,
                                          self.tag.count) + drain)
        with m.Elif(sweep_busy.any()):
            m.d.sync += sweep_busy.eq(sweep_busy - 1)
        m.d.comb += self.free.eq(sweep_busy <= drain + 1)
        return captured

    def _tag_memory(self, m: Module, drain: int) -> tuple[list[Signal], Value]:
        """``tag_memory``: the tags but ``valid`` through a block RAM, 1 + ``drain``
        cycles; returns the line of ``valid`` bits and the rest of the last one."""
        layout = tag_layout(self.program)
        valids = [Signal(name=f"tag_valid_{i}") for i in range(1 + drain)]
        m.d.sync += valids[0].eq(self.tag.valid)
        m.d.sync += [valids[i].eq(valids[i - 1]) for i in range(1, len(valids))]
        # The rest of the tag is written every cycle at a running address and read
        # drain cycles later, so it leaves the port's register with valids[-1]: a tag
        # read is never the one written in the same cycle (the depth is above drain).
        # The memory's contents after a reset do not matter: only a valid tag is read.
        # Block RAM, though a few words: in flip-flops it would be the line again.
        depth = 1 << max(1, drain.bit_length())
        m.submodules.tag_mem = tag_mem = memory.Memory(
            shape=unsigned(layout.size - 1), depth=depth, init=[],
            attrs={**COLLISIONS_UNUSED, "ram_style": "block"})
        write, read = tag_mem.write_port(), tag_mem.read_port()
        address = Signal(range(depth))
        m.d.sync += address.eq(address + 1)
        m.d.comb += [write.en.eq(1), write.addr.eq(address),
                     write.data.eq(self.tag.as_value()[1:]),
                     read.addr.eq(address - drain)]
        return valids, read.data

    def elaborate(self, platform) -> Module:
        m = Module()
        prog, w = self.program, self.program.widths
        config, P = prog.model.config, prog.lanes
        shared = prog.shared
        if shared:
            m.submodules.scaler = scaler = SplitScaler(
                acc_bits=w.acc, r_bits=w.r, shift_bits=w.shift,
                operand_bits=SIDE_BITS, product_latency=self.product_latency)
        else:
            m.submodules.scaler = scaler = Scaler(acc_bits=w.acc, r_bits=w.r,
                                                  shift_bits=w.shift)
        capture = self._hand_over(m)

        # -- the sweep: the lanes' shift-out gives one finished sum per cycle ----------
        sweep_left = Signal(range(P))
        sweep_next = Signal(range(max(config.hidden) + P))
        sweep_fb_r = Signal()
        sweep_final_r = Signal()
        sweep_valid = Signal()
        sweep_final = Signal()
        sweep_fb = Signal()
        sweep_neuron = Signal(range(max(config.hidden) + P))
        sweep_acc = Signal(signed(w.acc))
        m.d.comb += sweep_acc.eq(self.acc)
        spaced = self.spaced_passes
        with m.If(capture.valid):
            m.d.comb += [sweep_valid.eq(1), sweep_fb.eq(capture.fb), sweep_final.eq(capture.final),
                         sweep_neuron.eq(capture.neuron)]
            # Spaced passes: the pass's fb and final, kept for every stage.
            if spaced:
                m.d.sync += [sweep_fb_r.eq(capture.fb), sweep_final_r.eq(capture.final)]
            if P > 1:
                m.d.sync += [sweep_left.eq(capture.count - 1),
                             sweep_next.eq(capture.neuron + 1),
                             sweep_fb_r.eq(capture.fb), sweep_final_r.eq(capture.final)]
        if P > 1:
            # The tile's other lanes, a sum a cycle. (On one lane a tile is one sum: no
            # counter, which would be zero bits wide, and Verilog can only write that as
            # [-1:0]: ASCRANGE under Verilator's -Wall.)
            with m.Elif(sweep_left.any()):
                m.d.comb += [sweep_valid.eq(1), sweep_fb.eq(sweep_fb_r),
                             sweep_final.eq(sweep_final_r), sweep_neuron.eq(sweep_next)]
                m.d.sync += [sweep_left.eq(sweep_left - 1), sweep_next.eq(sweep_next + 1)]

        # -- sweep pipeline: issue (p) -> scaler (S) -> offset, sum, saturate (3) -> write
        S = scaler.latency
        m.d.comb += [
            scaler.acc.eq(sweep_acc),
            scaler.r.eq(Mux(sweep_fb, self.fb_r, self.ff_r)),
            scaler.shift.eq(Mux(sweep_fb, self.fb_shift, self.ff_shift)),
        ]
        if not self.lean:
            m.d.comb += self.bias.addr.eq(self.out_off + sweep_neuron)
        pipe = [dict(valid=Signal(name=f"sw_valid_{i}"), final=Signal(name=f"sw_final_{i}"),
                     fb=Signal(name=f"sw_fb_{i}"),
                     neuron=Signal(range(max(config.hidden) + P), name=f"sw_neuron_{i}"))
                if not spaced else dict(valid=Signal(name=f"sw_valid_{i}"))
                for i in range(S + SUM_STAGES)]
        m.d.sync += [pipe[0][k].eq(v) for k, v in (("valid", sweep_valid), ("final", sweep_final),
                                                    ("fb", sweep_fb), ("neuron", sweep_neuron))
                     if k in pipe[0]]
        for i in range(1, len(pipe)):
            m.d.sync += [pipe[i][k].eq(pipe[i - 1][k]) for k in pipe[i]]
        if spaced:
            self._counted_neurons(m, pipe, capture, sweep_fb_r, sweep_final_r)
        if self.lean:
            s_value, activation = self._lean_sum(m, scaler, pipe)
        else:
            s_value, activation = self._sum(m, scaler, pipe)
        # Stage S + 3 (pipe[-1]): write pre-activation and activation, square.
        write_now = pipe[-1]["valid"] & pipe[-1]["final"]
        m.d.comb += [
            self.pre.en.eq(write_now),
            self.pre.addr.eq(pipe[-1]["neuron"]),
            self.pre.data.eq(s_value),
            self.buffer.en.eq(write_now),
            self.buffer.bank.eq(self.bank),
            self.buffer.addr.eq(self.out_off + pipe[-1]["neuron"]),
            self.buffer.data.eq(activation),
        ]
        self._square(m, scaler, activation, write_now)
        return m

    def _counted_neurons(self, m: Module, pipe: list[dict], capture, fb, final) -> None:
        """``spaced_passes``: fill in ``pipe``'s ``fb`` and ``final`` (the pass's, kept
        from its tag) and, at the stages :meth:`_lean_sum` and the write read it, its
        ``neuron``: a counter loaded with the tag's first neuron and stepped by each sum
        the stage takes (the pass's previous sums have left every stage by then)."""
        prog, S = self.program, self.scale_latency
        stages = {S - 2, len(pipe) - 1} | ({S} if prog.partial_entries else set())
        for i, stage in enumerate(pipe):
            stage.update(fb=fb, final=final)
            if i in stages:
                neuron = Signal(range(max(prog.model.config.hidden) + prog.lanes),
                                name=f"sw_count_{i}")
                with m.If(capture.valid):
                    m.d.sync += neuron.eq(capture.neuron)
                with m.Elif(stage["valid"]):
                    m.d.sync += neuron.eq(neuron + 1)
                stage["neuron"] = neuron

    def _sum(self, m: Module, scaler, pipe: list[dict]) -> tuple[Signal, Signal]:
        """Stages S + 1 to S + 3: the scaled sum plus the bias (and a feedback sweep's kept
        part), saturated; returns the pre-activation and the activation of pipe[-1]."""
        prog, w = self.program, self.program.widths
        S = scaler.latency
        # The bias is read with the sweep and waits for the scaler.
        bias_delayed = [Signal(signed(w.state), name=f"bias_{i}") for i in range(S - 1)]
        m.d.sync += bias_delayed[0].eq(self.bias.data)
        m.d.sync += [bias_delayed[i].eq(bias_delayed[i - 1]) for i in range(1, S - 1)]
        # Stage S (pipe[S - 1]): scaler output valid.
        scaled = scaler.out
        scaled_stage = pipe[S - 1]
        # A feed-forward sweep keeps each neuron's scaled products for the feedback sweep
        # of the same tile; layer 1's stay from the first iteration for the later ones.
        lane_partial = Signal.like(scaled, reset_less=True)
        if prog.partial_entries:
            m.submodules.partial_mem = partial_mem = memory.Memory(
                shape=signed(len(scaled)), depth=max(2, prog.partial_entries), init=[])
            partial_write = partial_mem.write_port()
            # Transparent: the feedback sweep may read a neuron in the cycle its
            # feed-forward value is written (SWEEP_SPACING). The read is registered: a
            # block RAM read into the add below was the slowest path of the ECP5 builds.
            partial_read = partial_mem.read_port(transparent_for=(partial_write,))
            m.d.comb += [
                partial_read.addr.eq(self.out_off + pipe[S - 3]["neuron"]),
                partial_write.en.eq(scaled_stage["valid"] & ~scaled_stage["fb"]),
                partial_write.addr.eq(self.out_off + scaled_stage["neuron"]),
                partial_write.data.eq(scaled),
            ]
            m.d.sync += lane_partial.eq(partial_read.data)
        # Stage S + 1: the kept feed-forward part (a block RAM read) and the bias are
        # added beside the scaled value; stage S + 2: their sum; stage S + 3: saturation.
        # In one cycle, the read, the three-way add and the saturation were the
        # ULX3S-25F build's slowest path once the scaler was pipelined.
        state_bits = w.state
        s_max, s_min = (1 << (state_bits - 1)) - 1, -(1 << (state_bits - 1))
        offset = Signal(signed(max(len(scaled), state_bits) + 1))
        scaled_d = Signal.like(scaled)
        m.d.sync += [offset.eq(Mux(scaled_stage["fb"], lane_partial, 0) + bias_delayed[-1]),
                     scaled_d.eq(scaled)]
        total_sum = Signal(signed(len(offset) + 1))
        m.d.sync += total_sum.eq(offset + scaled_d)
        s_value = Signal(signed(state_bits))
        m.d.sync += s_value.eq(Mux(total_sum > s_max, s_max,
                                   Mux(total_sum < s_min, s_min, total_sum)))
        # The ReLU beside the saturation, so the square's multiplier reads a register
        # (the ReLU's multiplexer in front of it was the next slowest path on ECP5).
        activation = Signal(unsigned(w.act))
        m.d.sync += activation.eq(Mux(total_sum[-1], 0, Mux(total_sum > s_max, s_max,
                                                             total_sum)))
        return s_value, activation

    def _lean_sum(self, m: Module, scaler, pipe: list[dict]) -> tuple[Signal, Value]:
        """:meth:`_sum` in the small-part form (``lean``): the same values in the same
        stages, without the bias's delay line, the offset or the scaled sum's copy."""
        prog, w = self.program, self.program.widths
        S = scaler.latency
        scaled, scaled_stage = scaler.out, pipe[S - 1]
        # The bias (the top bits of a stored word, signed) is read in the cycle before
        # the scaled sum arrives, so the memory's output meets it.
        m.d.comb += self.bias.addr.eq(self.out_off + pipe[S - 2]["neuron"])
        addend = self.bias.data.as_signed()
        # Stage S + 1: the scaled sum plus the bias or, in a feedback sweep, plus what the
        # feed-forward sweep of its tile kept: that sweep's scaled sum plus the bias (the
        # bias then added once), one bit wider than the scaled sum.
        total_sum = Signal(signed(len(scaled) + 2))
        if prog.partial_entries:
            m.submodules.partial_mem = partial_mem = memory.Memory(
                shape=signed(len(scaled) + 1), depth=max(2, prog.partial_entries), init=[])
            partial_write = partial_mem.write_port()
            # Read and written a cycle later than in :meth:`_sum`, both: the feedback
            # sweep (SWEEP_SPACING or more after the feed-forward one) may read a neuron
            # in the cycle its kept part is written, so the read stays transparent. The
            # read goes into the add unregistered, as the bias's does: on ECP5 such a
            # path was the slowest (see :meth:`_sum`); the small part's 30 MHz on iCE40
            # is not timed yet (its training build does not place).
            partial_read = partial_mem.read_port(transparent_for=(partial_write,))
            m.d.comb += [
                partial_read.addr.eq(self.out_off + pipe[S - 2]["neuron"]),
                partial_write.en.eq(pipe[S]["valid"] & ~pipe[S]["fb"]),
                partial_write.addr.eq(self.out_off + pipe[S]["neuron"]),
                partial_write.data.eq(total_sum),
            ]
            addend = Mux(scaled_stage["fb"], partial_read.data, addend)
        m.d.sync += total_sum.eq(scaled + addend)
        # Stage S + 2: saturation; stage S + 3 (pipe[-1]): the saturated sum waits a cycle,
        # and the ReLU of it feeds the write and the square.
        s_max, s_min = (1 << (w.state - 1)) - 1, -(1 << (w.state - 1))
        saturated = Signal(signed(w.state))
        m.d.sync += saturated.eq(Mux(total_sum > s_max, s_max,
                                     Mux(total_sum < s_min, s_min, total_sum)))
        s_value = Signal(signed(w.state))
        m.d.sync += s_value.eq(saturated)
        return s_value, Mux(s_value[-1], 0, s_value)[:w.act]

    def _square(self, m: Module, scaler, activation: Signal, write_now) -> None:
        """The activation's square into ``sq``; with shared multipliers the borrowed
        lanes' operands (scaler and square) and products."""
        square = Signal(unsigned(2 * self.program.widths.act))
        square_valid = Signal()
        if self.program.shared:
            # The sweep's products: lanes 0 and 1 scale, lane 2 squares.
            for p, (a, b) in enumerate([(scaler.lo, scaler.factor), (scaler.hi, scaler.factor),
                                        (activation, activation)]):
                m.d.comb += [self.a[p].eq(a), self.b[p].eq(b)]
            m.d.comb += [scaler.lo_product.eq(self.product[0]),
                         scaler.hi_product.eq(self.product[1]),
                         square.eq(self.product[2])]
            # The square's valid bit travels beside the borrowed multiplier.
            valid = write_now
            for i in range(self.product_latency):
                delayed = Signal(name=f"square_valid_{i}")
                m.d.sync += delayed.eq(valid)
                valid = delayed
            m.d.comb += square_valid.eq(valid)
        else:
            m.d.sync += [square.eq(activation * activation), square_valid.eq(write_now)]
        with m.If(self.clear_sq):
            m.d.sync += self.sq.eq(0)
        with m.Elif(square_valid):
            m.d.sync += self.sq.eq(self.sq + square)
