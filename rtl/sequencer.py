"""The sequencer: the state machine that walks the program of :mod:`rtl.program`.

    IDLE/LOAD -> (FETCH -> DECODE -> op)* -> ARGMAX -> RESULT -> IDLE

IDLE takes the image (and, between inferences, model loads). FETCH and DECODE read and
latch an op. A ``LAYER`` op walks its tiles of P neurons: MAC issues the elements of a
pass (feed-forward, then feedback) to the operand stage and hands the pass's last element
to the sweep with its tag, holding it while the sweep is not ``free``; GAP (shared
multipliers) waits while the sweep borrows the lanes; TAIL waits for the last sweep to
drain; FINISH stores the layer's sum of squares. A ``SCAN`` op walks (neuron, label group)
pairs into the goodness datapath (SCAN, SCAN_DRAIN). ``DONE`` starts the argmax (ARGMAX),
and RESULT offers the cycle count until it is taken.

The sequencer owns the control state: the op, its tile and element counters, the weight
address, the cycle counter and the stored sums of squares of every layer in both loop
banks; the datapath around it (operand stage, lanes, sweep, goodness) is the core's.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.program import (
    LAYER,
    SCAN,
    SRC_CACHE,
    SRC_IMAGE,
    Program,
    op_layout,
)
from rtl.protocol import Phase
from rtl.select import is_zero, one_hot, select
from rtl.sweep import tag_layout

__all__ = ["CYCLE_BITS", "ELEMENT_LAYOUT", "Sequencer"]

#: Width of the cycle counter (and of the result record's ``cycles``).
CYCLE_BITS = 32

#: One MAC element as issued: its memory addresses are driven in the same cycle from
#: ``column``; the core's operand stage registers these tags beside the memory read.
ELEMENT_LAYOUT = data.StructLayout({
    "valid": 1,         # an element is issued
    "first": 1,         # it starts a pass (the accumulators restart)
    "from_image": 1,    # it is a pixel (or FFL's label block), not an activation
    "label": 1,         # FFL: it is in the label block after the pixels
    "hit": 1,           # FFL: it is the candidate label's position
})


def _addr_width(words: int) -> int:
    """Address bits of a memory of ``words`` words (at least 2, as the core's are)."""
    return Shape.cast(range(max(2, words))).width


@dataclass(frozen=True)
class _Registers:
    """The sequencer's control registers, made in one elaboration (not component state)."""

    op_index: Signal
    cycles: Signal
    pixel: Signal
    column: Signal
    tile_out: Signal
    remaining: Signal
    ff_tile_base: Signal
    fb_tile_base: Signal
    weight_addr: Signal
    feedback_pass: Signal
    gap: Signal
    sq_regs: list[list[Signal]]
    valid_lanes: Signal
    scan_group: Signal
    scan_neuron: Signal
    label_addr: Signal


class Sequencer(wiring.Component):
    """The core's control: executes the program, drives the datapath, counts cycles.

    Parameters
    ----------
    program : Program
        The ops, sizes and latencies (``prep``, ``sweep_drain``, ``scan_drain``,
        ``pass_gap``) the state machine follows.
    stored_norms : bool, optional
        The small-part form (default False): no stored sums of squares (nor ``ff_sq``
        and ``fb_sq``); ``finish`` says when the sweep's ``sq`` is the op's, for a core
        that keeps the reciprocal square roots of the layers' outputs instead
        (``Core(stored_norms=True)``). The same states in the same cycles.

    Members
    -------
    image : In(stream.Signature(unsigned(input_bits)))
        D pixels per image; taken in IDLE.
    image_write : In(memory.WritePort.Signature(...))
        Into the image memory, pixel by pixel.
    accept_load : Out(1)
        Idle or held: model loads may be written.
    hold : In(1)
        Stay in FETCH (before the op ``op_index``) while high: the training engine
        updates the weights between iterations. Loads are accepted meanwhile.
    fetch : Out(1)
        FETCH: op ``op_index`` is fetched this cycle (unless held).
    op_index : Out(range(len(ops) + 1))
        The next op to execute.
    ops : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(op_layout.size)))
        The program ROM (read in FETCH, latched in DECODE).
    op : Out(op_layout(program))
        The op being executed.
    phase : Out(Phase)
        What this cycle is for (:class:`rtl.protocol.Phase`); ``IDLE`` in the IDLE and
        RESULT states.
    busy : Out(1)
        ``phase`` is not 0: the cycle counter counts this cycle.
    done : Out(stream.Signature(unsigned(CYCLE_BITS)))
        The inference's cycle count, offered in RESULT until taken.
    column : Out(range(...))
        The element of the pass (or the cycles waited): the input element's address.
    feedback : Out(1)
        The pass is a feedback pass (reads the other loop bank).
    weight_addr : Out(range(...))
        The weight word of the element.
    element : Out(ELEMENT_LAYOUT)
        The element issued this cycle, if ``valid``.
    tag : Out(tag_layout(program))
        With ``valid``: the pass's last element is issued (to the sweep).
    free : In(1)
        The sweep can take a pass ending now (else MAC holds the last element).
    clear_sq : Out(1)
        An op starts: restart the sweep's sum of squares.
    sq : In(unsigned(sq_bits))
        The sweep's sum of squares, stored per layer and bank in FINISH.
    ff_sq, fb_sq : Out(unsigned(sq_bits))
        Without ``stored_norms``: the stored sums of squares of the op's feed-forward
        input (0 for the first layer) and of its feedback source.
    finish : Out(1)
        Only with ``stored_norms``: FINISH, ``sq`` is the sum of squares of layer
        ``op.layer``'s outputs in bank ``op.bank``; it holds in the next cycle too.
    clear_scores : Out(1)
        An inference starts.
    add_score : Out(StructLayout({"en": 1, "label": range(K), "value": unsigned(score)}))
        FFL: add a layer's sum of squares to a label's score.
    start_argmax : Out(1)
        The ``DONE`` op is decoded.
    argmax_done : In(1)
        The argmax has its label.
    scan_issue, scanning : Out(1)
        A (neuron, group) pair is issued; the scan (or its drain) is on.
    scan_group : Out(range(max(2, groups)))
        The label group of the pair issued.
    pre_addr : Out(range(max(2, max(hidden))))
        The neuron of the pair issued (pre-activation address).
    label_addr : Out(range(max(1, label words) + 1))
        The label weight word of the pair.
    """

    def __init__(self, program: Program, *, stored_norms: bool = False) -> None:
        if not isinstance(program, Program):
            raise TypeError(f"Program must be an rtl.program.Program, not {program!r}")
        if not isinstance(stored_norms, bool):
            raise TypeError(f"Stored norms must be True or False, not {stored_norms!r}")
        self.program = program
        self.stored_norms = stored_norms
        w, config = program.widths, program.model.config
        P, K, D = program.lanes, config.num_classes, config.input_size
        total = sum(config.hidden)
        layout = op_layout(program)
        self._column = range(max(D + K, max(config.hidden)) + program.mac_drain + P
                             + program.sweep_drain)
        self._weight_addr = range(len(program.weight_words) + max(D + K, total) + 1)
        members = {
            "image": In(stream.Signature(unsigned(w.input))),
            "image_write": In(memory.WritePort.Signature(addr_width=_addr_width(D),
                                                         shape=unsigned(w.input))),
            "accept_load": Out(1),
            "hold": In(1),
            "fetch": Out(1),
            "op_index": Out(range(len(program.ops) + 1)),
            "ops": In(memory.ReadPort.Signature(addr_width=_addr_width(len(program.ops)),
                                                shape=unsigned(layout.size))),
            "op": Out(layout),
            "phase": Out(Phase),
            "busy": Out(1),
            "done": Out(stream.Signature(unsigned(CYCLE_BITS))),
            "column": Out(self._column),
            "feedback": Out(1),
            "weight_addr": Out(self._weight_addr),
            "element": Out(ELEMENT_LAYOUT),
            "tag": Out(tag_layout(program)),
            "free": In(1),
            "clear_sq": Out(1),
            "sq": In(unsigned(w.sq)),
            "ff_sq": Out(unsigned(w.sq)),
            "fb_sq": Out(unsigned(w.sq)),
            "clear_scores": Out(1),
            "add_score": Out(data.StructLayout({"en": 1, "label": range(K),
                                                "value": unsigned(w.score)})),
            "start_argmax": Out(1),
            "argmax_done": In(1),
            "scan_issue": Out(1),
            "scanning": Out(1),
            "scan_group": Out(range(max(2, program.groups))),
            "pre_addr": Out(range(max(2, *config.hidden))),
            "label_addr": Out(range(max(1, len(program.label_words)) + 1)),
        }
        if stored_norms:
            del members["ff_sq"], members["fb_sq"]
            members["finish"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        prog = self.program
        config, w = prog.model.config, prog.widths
        P, D, L = prog.lanes, config.input_size, config.num_layers
        total = sum(config.hidden)
        op = self.op
        r = _Registers(
            op_index=self.op_index,
            cycles=self.done.payload,
            pixel=Signal(range(D + 1)),
            column=self.column,
            tile_out=Signal(range(total + P + 1)),     # first neuron of the tile (in layer)
            remaining=Signal(range(max(config.hidden) + 1)),
            ff_tile_base=Signal(self._weight_addr),
            fb_tile_base=Signal(self._weight_addr),
            weight_addr=self.weight_addr,
            feedback_pass=self.feedback,
            gap=Signal(range(prog.pass_gap(P) + 1)),
            sq_regs=[] if self.stored_norms else
                    [[Signal(unsigned(w.sq), name=f"sq_b{b}_l{i}") for i in range(L)]
                     for b in range(2)],
            valid_lanes=Signal(range(P + 1)),
            scan_group=self.scan_group,
            scan_neuron=Signal(range(max(config.hidden) + 1)),
            label_addr=self.label_addr,
        )
        m.d.comb += r.valid_lanes.eq(Mux(r.remaining < P, r.remaining, P))
        m.d.comb += self.busy.eq(self.phase.as_value().any())

        def sq_of(bank, layer):
            """The stored sum of squares of ``layer`` in ``bank``."""
            per_bank = [select(r.sq_regs[b], layer) for b in range(2)]
            return Mux(bank, per_bank[1], per_bank[0])

        if not self.stored_norms:
            # The reciprocals of the op's inputs: stable for the whole op (sq changes only
            # in FINISH), so the units' registered outputs are used directly.
            m.d.comb += [
                self.ff_sq.eq(Mux(is_zero(op.layer), 0,
                                  sq_of(op.bank, (op.layer - 1)[:len(op.layer)]))),
                self.fb_sq.eq(sq_of(~op.bank, op.fb_src)),
            ]
        m.d.comb += [self.image_write.addr.eq(r.pixel),
                     self.image_write.data.eq(self.image.payload)]

        with m.FSM(name="sequencer"):
            self._start(m, r)
            self._layer(m, r)
            self._scan_and_result(m, r)

        # Counting happens in every state but IDLE and RESULT, the ones without a phase
        # (asking the FSM whether it is in IDLE, state 0, lowers to a lint-unclean NOT).
        with m.If(self.busy):
            m.d.sync += r.cycles.eq(r.cycles + 1)
        return m

    def _set_phase(self, m: Module, phase: Phase) -> None:
        m.d.comb += self.phase.eq(phase)

    def _wait_then(self, m: Module, r: _Registers, state: str, cycles) -> None:
        """Stay ``cycles`` cycles (counted in ``column`` from 0), then go to ``state``."""
        m.d.sync += r.column.eq(r.column + 1)
        with m.If(r.column == cycles - 1):
            m.d.sync += r.column.eq(0)
            m.next = state

    def _start(self, m: Module, r: _Registers) -> None:
        """IDLE (the image, model loads), FETCH and DECODE."""
        prog, op, layout = self.program, self.op, op_layout(self.program)
        D = prog.model.config.input_size
        with m.State("IDLE"):
            # Model loads are accepted only between inferences.
            m.d.comb += [self.image.ready.eq(1), self.accept_load.eq(1)]
            with m.If(self.image.valid):
                m.d.comb += self.image_write.en.eq(1)
                m.d.sync += r.pixel.eq(r.pixel + 1)
                with m.If(r.pixel == D - 1):
                    # The whole image is in: the inference starts now.
                    m.d.sync += [r.pixel.eq(0), r.op_index.eq(0), r.cycles.eq(0)]
                    m.d.comb += self.clear_scores.eq(1)
                    m.next = "FETCH"

        with m.State("FETCH"):
            self._set_phase(m, Phase.CONTROL)
            m.d.comb += [self.ops.addr.eq(r.op_index), self.fetch.eq(1)]
            with m.If(self.hold):
                # Between two ops nothing is in flight: the weights may change.
                m.d.comb += self.accept_load.eq(1)
            with m.Else():
                m.next = "DECODE"

        with m.State("DECODE"):
            self._set_phase(m, Phase.CONTROL)
            # The ROM's word for op_index is out: latch it and dispatch.
            m.d.sync += [op.eq(self.ops.data), r.op_index.eq(r.op_index + 1)]
            opd = layout(self.ops.data)
            m.d.comb += self.clear_sq.eq(1)
            cached = opd.ff_src == SRC_CACHE
            m.d.sync += [r.tile_out.eq(0), r.remaining.eq(opd.n_out),
                         r.ff_tile_base.eq(opd.ff_wbase), r.fb_tile_base.eq(opd.fb_wbase),
                         r.scan_neuron.eq(0), r.scan_group.eq(0),
                         r.label_addr.eq(opd.u_base),
                         # The first pass: feed-forward, or feedback on cached products.
                         r.weight_addr.eq(Mux(cached, opd.fb_wbase, opd.ff_wbase)),
                         r.feedback_pass.eq(cached), r.column.eq(0)]
            with m.If(opd.kind == LAYER):
                m.next = "PREP" if prog.prep else "MAC"
            with m.Elif(opd.kind == SCAN):
                m.next = "SCAN"
            with m.Else():
                m.d.comb += self.start_argmax.eq(1)
                m.next = "ARGMAX"

    def _issue_element(self, m: Module, r: _Registers) -> None:
        """Give one MAC element its pipeline tags (its addresses follow ``column``)."""
        op, D = self.op, self.program.model.config.input_size
        from_image = (op.ff_src == SRC_IMAGE) & ~r.feedback_pass
        m.d.comb += [
            self.element.valid.eq(1),
            self.element.first.eq(is_zero(r.column)),
            self.element.from_image.eq(from_image),
            self.element.label.eq(from_image & op.label_block & (r.column >= D)),
            self.element.hit.eq(r.column - D == op.label),
        ]

    def _layer(self, m: Module, r: _Registers) -> None:
        """A LAYER op: PREP, MAC (with GAP), TAIL and FINISH."""
        prog, op = self.program, self.op
        if prog.prep:
            with m.State("PREP"):
                self._set_phase(m, Phase.NORMALISATION)
                # The reciprocal square roots of the op's inputs settle.
                self._wait_then(m, r, "MAC", prog.prep)

        with m.State("MAC"):
            n_in = Mux(r.feedback_pass, op.fb_n_in, op.ff_n_in)
            last = r.column == n_in - 1
            with m.If(last & ~self.free):
                # Hold the last element: its products would reach the accumulators
                # before the sweep has taken the previous pass's.
                self._set_phase(m, Phase.NORMALISATION)
            with m.Else():
                m.d.comb += self.phase.eq(Mux(r.feedback_pass, Phase.LOOP_FEEDBACK,
                                              Phase.MATRIX_VECTOR))
                self._issue_element(m, r)
                m.d.sync += [r.column.eq(r.column + 1), r.weight_addr.eq(r.weight_addr + 1)]
                with m.If(last):
                    self._end_pass(m, r)

        if prog.shared:
            with m.State("GAP"):
                self._set_phase(m, Phase.NORMALISATION)
                self._wait_then(m, r, "MAC", r.gap)

        with m.State("TAIL"):
            self._set_phase(m, Phase.NORMALISATION)
            # The last products reach the accumulators, the sweep scales the last tile
            # and its pipeline drains into the buffers and the sum of squares.
            self._wait_then(m, r, "FINISH", prog.mac_drain + r.valid_lanes + prog.sweep_drain)

        with m.State("FINISH"):
            self._set_phase(m, Phase.NORMALISATION)
            if self.stored_norms:
                # The core keeps the norm of the sum (the sweep's sq holds through FETCH).
                m.d.comb += self.finish.eq(1)
            else:
                layer_hot = one_hot(op.layer, prog.model.config.num_layers)
                for b in range(2):
                    for i in range(prog.model.config.num_layers):
                        with m.If((op.bank if b else ~op.bank) & layer_hot[i]):
                            m.d.sync += r.sq_regs[b][i].eq(self.sq)
            with m.If(op.ffl_add):
                m.d.comb += [self.add_score.en.eq(1), self.add_score.label.eq(op.label),
                             self.add_score.value.eq(self.sq)]
            m.next = "FETCH"

    def _end_pass(self, m: Module, r: _Registers) -> None:
        """MAC, the pass's last element: hand it to the sweep, go to the next pass."""
        prog, op, P = self.program, self.op, self.program.lanes
        final = r.feedback_pass | ~op.fb_en
        cached = op.ff_src == SRC_CACHE
        m.d.comb += [self.tag.valid.eq(1), self.tag.fb.eq(r.feedback_pass),
                     self.tag.final.eq(final),
                     self.tag.neuron.eq(r.tile_out),
                     self.tag.count.eq(r.valid_lanes)]
        m.d.sync += r.column.eq(0)
        if prog.shared:
            # The next pass waits while the sweep borrows the lanes.
            m.d.sync += r.gap.eq(prog.pass_gap(0) + r.valid_lanes)
            m.next = "GAP"
        with m.If(~final):
            # This tile's feedback pass follows its feed-forward pass.
            m.d.sync += [r.weight_addr.eq(r.fb_tile_base), r.feedback_pass.eq(1)]
        with m.Elif(r.remaining > P):
            next_ff = r.ff_tile_base + op.ff_n_in
            next_fb = r.fb_tile_base + op.fb_n_in
            m.d.sync += [r.tile_out.eq(r.tile_out + P), r.remaining.eq(r.remaining - P),
                         r.ff_tile_base.eq(next_ff), r.fb_tile_base.eq(next_fb),
                         r.weight_addr.eq(Mux(cached, next_fb, next_ff)),
                         r.feedback_pass.eq(cached)]
        with m.Else():
            m.next = "TAIL"

    def _scan_and_result(self, m: Module, r: _Registers) -> None:
        """A SCAN op (SCAN, SCAN_DRAIN), the DONE op's ARGMAX, and RESULT."""
        prog, op = self.program, self.op
        with m.State("SCAN"):
            self._set_phase(m, Phase.LABEL_SCAN)
            m.d.comb += [self.scan_issue.eq(1), self.scanning.eq(1),
                         self.pre_addr.eq(r.scan_neuron)]
            m.d.sync += r.label_addr.eq(r.label_addr + 1)
            with m.If(r.scan_group == prog.groups - 1 if prog.groups > 1 else 1):
                m.d.sync += [r.scan_group.eq(0), r.scan_neuron.eq(r.scan_neuron + 1)]
                with m.If(r.scan_neuron == op.n_out - 1):
                    m.d.sync += r.column.eq(0)
                    m.next = "SCAN_DRAIN"
            with m.Else():
                m.d.sync += r.scan_group.eq(r.scan_group + 1)

        with m.State("SCAN_DRAIN"):
            self._set_phase(m, Phase.LABEL_SCAN)
            m.d.comb += self.scanning.eq(1)
            self._wait_then(m, r, "FETCH", prog.scan_drain)

        with m.State("ARGMAX"):
            self._set_phase(m, Phase.CONTROL)
            with m.If(self.argmax_done):
                m.next = "RESULT"

        with m.State("RESULT"):
            m.d.comb += self.done.valid.eq(1)
            with m.If(self.done.ready):
                m.next = "IDLE"
