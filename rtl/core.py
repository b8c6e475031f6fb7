"""The accelerator core: image stream in, result record out.

The core holds the weights (memory initial contents from the integer model), the MAC
lanes, the normaliser, the loop-feedback buffers, the goodness datapath and the argmax,
and a state machine that executes the program of :mod:`rtl.program`:

    IDLE/LOAD -> (FETCH -> DECODE -> op)* -> ARGMAX -> RESULT -> IDLE

A ``LAYER`` op walks the tiles of P neurons. Per tile: the feed-forward pass (MAC over the
input; skipped for FFCL's layer 1 after the first iteration, whose scaled W_1 x products
are kept) and, for a layer that hears the loop, the feedback pass. The passes run back to
back: an element reaches the lanes through the operand stage (a register beside the
memories, so the block RAM read and the route to every lane group are cycles of their
own), and when a pass's last product reaches the accumulators, the lanes' shift-out bank
takes the sums and the sweep scales them one per cycle while the lanes already
accumulate the next pass. Its pipeline (scaler, bias, saturation, buffer writes, sum of
squares) writes only the op's output layer, which no pass of the same op reads. A pass
whose products would arrive before the sweep of the previous pass is done holds its last
element. With shared multipliers (iCE40: no DSPs beyond the lanes) the scaler and the
activation square borrow lanes 0-2 instead, and the next pass waits until the sweep is
done with them; the label scan squares on lanes 0..G-1. A ``SCAN`` op streams (pre, U
row) pairs into the goodness datapath.

The cycle counter starts when the last pixel is accepted and stops when the result is
offered; its closed form is :meth:`rtl.program.Program.cycles`. The ``phase`` output
says what each counted cycle is for (:data:`rtl.program.PHASES`).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.intmodel import IntModel
from rtl.argmax import Argmax
from rtl.feedback_buffer import FeedbackBuffer
from rtl.goodness import GoodnessDatapath
from rtl.mac_lanes import MacLanes
from rtl.model_memory import (
    LOAD_TARGETS,
    WEIGHT_MEMORIES,
    ModelMemory,
    check_mapping,
    load_layout,
    load_words,
    memory_images,
    model_memory_depth,
)
from rtl.normaliser import Rsqrt
from rtl.program import (
    LAYER,
    MAC_DRAIN,
    OPERAND_STAGES,
    PHASE_BITS,
    PHASES,
    SCAN,
    SIDE_BITS,
    SIDE_LATENCY,
    SRC_CACHE,
    SRC_IMAGE,
    Program,
    build_program,
    op_layout,
)
from rtl.select import is_zero, one_hot, select
from rtl.sweep import SHARED_OPERANDS, Sweep, tag_layout
from rtl.weight_store import bram_slices

__all__ = ["LOAD_TARGETS", "WEIGHT_MEMORIES", "Core", "load_layout", "load_words",
           "memory_images", "result_layout"]

CYCLE_BITS = 32

def result_layout(labels: int, score_bits: int) -> data.StructLayout:
    """The result record: predicted label, every label's score, cycles of the inference."""
    return data.StructLayout({
        "label": range(labels),
        "scores": data.ArrayLayout(unsigned(score_bits), labels),
        "cycles": unsigned(CYCLE_BITS),
    })


class Core(wiring.Component):
    """The Forward-Forward inference core for one integer model.

    Parameters
    ----------
    model : IntModel
        The integer model; its weights become memory initial contents.
    lanes : int
        P, MAC lanes.
    label_lanes : int, optional
        G, labels the goodness datapath scans per cycle (default: all K).
    weights : {"rom", "loadable", "spram"}
        Memory mapping of the model: block RAM initialised from the model, or the same
        memories also writable at run time through ``load``, or ``"spram"``: loadable, with
        the weight words in iCE40 SPRAM (:class:`rtl.weight_store.WeightStore`), which is
        not initialised at configuration. A ``"spram"`` core classifies with whatever the
        SPRAM holds until the weights are loaded: the board must load them over its host
        link first; its program (ops) is a ROM, so it loads only models with the same
        program (``load_words_for`` checks; writes to the program are ignored). A loaded
        model must have the same configuration and formats as ``model``, which sets the
        widths.
    banks : {1, 2}
        Copies of every model memory (ops, weights, bias, labels). With 2 (loadable
        only) inferences read the bank ``bank`` selects and ``load`` writes the other, so
        a host link can load a whole model while the old one stays in use and switch on
        a good commit. Each memory is twice as deep; the bank is the address's lowest bit.
    shared : bool
        The scaler, the activation square and the label scan's squares borrow the MAC
        lanes' multipliers (:func:`rtl.program.build_program`), so the core needs no
        multiplier beyond its P lanes (what fits 8 lanes into the 8 SB_MAC16 of an iCE40
        UP5K); the sweep no longer overlaps the next pass. Default False.

    Members
    -------
    image : In(stream.Signature(unsigned(input_bits)))
        D pixels per image, row-major.
    result : Out(stream.Signature(result_layout(K, score_bits)))
        One record per image.
    busy : Out(1)
        An inference is being computed (the cycle counter counts this cycle).
    phase : Out(PHASE_BITS)
        What this cycle is for: a code of :data:`rtl.program.PHASES` while busy, else 0.
    load : In(stream.Signature(load_layout(program)))
        Only with ``weights="loadable"`` or ``"spram"``: memory writes
        (:func:`load_words`), accepted while no inference runs.
    bank : In(1)
        Only with ``banks=2``: the bank inferences read (``load`` writes the other).
    """

    def __init__(self, model: IntModel, *, lanes: int, label_lanes: int | None = None,
                 weights: str = "rom", banks: int = 1, shared: bool = False) -> None:
        if not isinstance(model, IntModel):
            raise TypeError(f"Model must be a golden.intmodel.IntModel, not {model!r}")
        check_mapping(weights, banks)
        self.program: Program = build_program(model, lanes=lanes, label_lanes=label_lanes,
                                              shared=shared)
        self.model = model
        self.weights = weights
        self.banks = banks
        w = self.program.widths
        K = model.config.num_classes
        members = {
            "image": In(stream.Signature(unsigned(w["input"]))),
            "result": Out(stream.Signature(result_layout(K, w["score"]))),
            "busy": Out(1),
            "phase": Out(PHASE_BITS),
        }
        if weights != "rom":
            members["load"] = In(stream.Signature(load_layout(self.program)))
        if banks == 2:
            members["bank"] = In(1)
        super().__init__(members)

    @property
    def lanes(self) -> int:
        """P, the number of MAC lanes."""
        return self.program.lanes

    def load_words_for(self, model: IntModel) -> list[tuple[int, int, int]]:
        """The ``load`` writes that replace this core's model with ``model``.

        Raises
        ------
        ValueError
            If ``model`` needs other widths or memory sizes than the core was built for;
            the message names the first difference.
        """
        other = build_program(model, lanes=self.program.lanes,
                              label_lanes=self.program.label_lanes, shared=self.program.shared)
        if model.config != self.model.config:
            raise ValueError("the model to load has another configuration than the core's")
        for name, width in self.program.widths.items():
            if other.widths[name] > width:
                raise ValueError(f"the model to load needs {other.widths[name]} {name} bits; "
                                 f"the core has {width}")
        if op_layout(other).size != op_layout(self.program).size:
            raise ValueError("the model to load needs a wider sequencer program")
        if self.weights == "spram":
            # The program stays in its ROM (see elaborate).
            if memory_images(other)["ops"] != memory_images(self.program)["ops"]:
                raise ValueError("the model to load needs another sequencer program, and "
                                 "an SPRAM core's program is fixed when it is built")
            return [w for w in load_words(other) if w[0] != LOAD_TARGETS["ops"]]
        return load_words(other)

    def weight_slices(self, family: str) -> list[int]:
        """Widths of the block RAM slices the weight store is cut into when elaborated
        for ``family`` (:func:`rtl.weight_store.bram_slices`); none for SPRAM weights."""
        if self.weights == "spram":
            return []
        depth = model_memory_depth(len(self.program.weight_words), self.banks)
        return bram_slices(family, depth=depth, width=self.lanes * self.program.widths["weight"])

    def cycles_per_inference(self) -> int:
        """The closed-form cycle count of one inference (what the counter reports)."""
        return self.program.cycles()

    def elaborate(self, platform) -> Module:
        m = Module()
        prog, model = self.program, self.model
        config, fmt, w = model.config, model.fmt, prog.widths
        P, G, K, D, L = prog.lanes, prog.label_lanes, config.num_classes, config.input_size, \
            config.num_layers
        total = sum(config.hidden)
        layout = op_layout(prog)

        # -- units --------------------------------------------------------------------
        shared = prog.shared
        # Shared: lanes 0 and 1 scale, lane 2 squares activations, lanes 0..G-1 scan.
        m.submodules.lanes = lanes = MacLanes(
            lanes=P, weight_bits=w["weight"], input_bits=w["mac_input"], acc_bits=w["acc"],
            shared_lanes=max(3, G) if shared else 0, side_bits=SIDE_BITS,
            # Shared: passes never follow back to back (GAP), so the other lanes may clear
            # ahead and keep their accumulators in the DSPs.
            clear_ahead=shared)
        m.submodules.rsqrt_ff = rsqrt_ff = Rsqrt(
            sq_bits=w["sq"], index_bits=fmt.rsqrt_index_bits, frac_bits=fmt.rsqrt_frac_bits)
        m.submodules.rsqrt_fb = rsqrt_fb = Rsqrt(
            sq_bits=w["sq"], index_bits=fmt.rsqrt_index_bits, frac_bits=fmt.rsqrt_frac_bits)
        m.submodules.sweep = sweep = Sweep(
            prog, product_latency=lanes.side_latency if shared else None)
        m.submodules.buffer = buffer = FeedbackBuffer(depth=total, width=w["act"])
        m.submodules.goodness = goodness = GoodnessDatapath(
            labels=K, lanes=G, state_bits=w["state"], weight_bits=w["weight"],
            score_bits=w["score"], product_latency=lanes.side_latency if shared else None,
            operand_bits=SIDE_BITS)
        m.submodules.argmax = argmax = Argmax(labels=K, score_bits=w["score"])

        # -- memories -----------------------------------------------------------------
        # Every depth is at least 2: a one-entry memory has a zero-width address, which
        # Verilog spells [-1:0].
        m.submodules.memories = memories = ModelMemory(prog, weights=self.weights,
                                                       banks=self.banks)
        if self.weights != "rom":
            wiring.connect(m, wiring.flipped(self.load), memories.load)
        if self.banks == 2:
            m.d.comb += memories.bank.eq(self.bank)
        op_port, weight_port = memories.ops, memories.weights
        label_port = memories.labels
        load_ready = memories.accept if self.weights != "rom" else Signal()
        m.submodules.image_mem = image_mem = memory.Memory(
            shape=unsigned(w["input"]), depth=max(2, D), init=[])
        image_read, image_write = image_mem.read_port(), image_mem.write_port()
        weight_layout = data.ArrayLayout(signed(w["weight"]), P)
        label_layout = data.ArrayLayout(signed(w["weight"]), G)
        m.submodules.pre_mem = pre_mem = memory.Memory(
            shape=signed(w["state"]), depth=max(2, *config.hidden), init=[])
        pre_read, pre_write = pre_mem.read_port(), pre_mem.write_port()

        # -- sequencer state ----------------------------------------------------------
        op = Signal(layout)
        op_index = Signal(range(len(prog.ops) + 1))
        cycles = Signal(CYCLE_BITS)
        pixel = Signal(range(D + 1))
        column = Signal(range(max(D + K, max(config.hidden)) + MAC_DRAIN + P
                              + prog.sweep_drain))
        tile_out = Signal(range(total + P + 1))       # first neuron of the tile (in layer)
        remaining = Signal(range(max(config.hidden) + 1))
        ff_tile_base = Signal(range(len(prog.weight_words) + max(D + K, total) + 1))
        fb_tile_base = Signal.like(ff_tile_base)
        weight_addr = Signal.like(ff_tile_base)
        feedback_pass = Signal()
        gap = Signal(range(prog.pass_gap(P) + 1))
        sq_acc = sweep.sq
        sq_regs = [[Signal(unsigned(w["sq"]), name=f"sq_b{b}_l{i}") for i in range(L)]
                   for b in range(2)]
        valid_lanes = Signal(range(P + 1))
        m.d.comb += valid_lanes.eq(Mux(remaining < P, remaining, P))
        phase = self.phase
        m.d.comb += self.busy.eq(phase.any())

        def sq_of(bank, layer):
            """The stored sum of squares of ``layer`` in ``bank``."""
            per_bank = [select(sq_regs[b], layer) for b in range(2)]
            return Mux(bank, per_bank[1], per_bank[0])

        first_layer = is_zero(op.layer)
        # The reciprocals of the op's inputs: stable for the whole op (sq changes only in
        # FINISH), so the units' registered outputs are used directly.
        m.d.comb += [
            rsqrt_ff.sq.eq(Mux(first_layer, 0, sq_of(op.bank, (op.layer - 1)[:len(op.layer)]))),
            rsqrt_fb.sq.eq(sq_of(~op.bank, op.fb_src)),
        ]
        unit_r = 1 << fmt.rsqrt_frac_bits
        ff_r = Mux(first_layer, unit_r, rsqrt_ff.r)
        ff_shift = op.ff_shift + Mux(first_layer, 0, rsqrt_ff.sh >> 1)
        fb_shift = op.fb_shift + (rsqrt_fb.sh >> 1)

        # -- MAC issue -> lanes (memory read, then the operand stage) ------------------
        issue = Signal()
        issue_first = Signal()
        issue_label = Signal()
        issue_hit = Signal()
        issue_from_image = Signal()
        stage_valid = Signal()
        stage_first = Signal()
        stage_label = Signal()
        stage_hit = Signal()
        stage_from_image = Signal()
        m.d.sync += [stage_valid.eq(issue), stage_first.eq(issue_first),
                     stage_label.eq(issue_label), stage_hit.eq(issue_hit),
                     stage_from_image.eq(issue_from_image)]
        pixel_value = Mux(stage_label, Mux(stage_hit, fmt.input_max, 0), image_read.data)
        # The operand stage: the chosen element registered beside the memories, so the
        # block RAM read and the choice are a cycle apart from the route to every lane
        # group. The weight store's address copies take the same cycle (its latency 2).
        operand_valid, operand_first = Signal(), Signal()
        operand = Signal(unsigned(w["mac_input"]), reset_less=True)
        m.d.sync += [operand_valid.eq(stage_valid), operand_first.eq(stage_first),
                     operand.eq(Mux(stage_from_image, pixel_value, buffer.read_data))]
        m.d.comb += [
            lanes.en.eq(operand_valid),
            lanes.first.eq(operand_first),
            lanes.x.eq(operand),
            lanes.w.eq(weight_layout(weight_port.data)),
            weight_port.addr.eq(weight_addr),
        ]

        # -- hand-over: a pass's last element -> its accumulators -> the sweep ----------
        # The closed form (rtl.program) encodes the units' latencies: keep them equal.
        if memories.weight_latency != 1 + OPERAND_STAGES:
            raise RuntimeError(f"rtl.program's OPERAND_STAGES is {OPERAND_STAGES}, but the "
                               f"weight store's latency is {memories.weight_latency}; it must "
                               f"be one memory read plus the operand stages")
        for what, closed, unit in (
                ("MAC_DRAIN", MAC_DRAIN, OPERAND_STAGES + lanes.latency),
                ("SIDE_LATENCY", SIDE_LATENCY, lanes.side_latency),
                ("Program.scale_latency", prog.scale_latency, sweep.scale_latency),
                ("Program.sweep_drain", prog.sweep_drain, sweep.latency),
                ("Program.scan_drain", prog.scan_drain, goodness.latency)):
            if closed != unit:
                raise RuntimeError(f"rtl.program's {what} is {closed}, but the unit's "
                                   f"latency is {unit}; the closed form must follow it")
        issue_tag = Signal(tag_layout(prog))
        m.d.comb += [sweep.tag.eq(issue_tag), lanes.last.eq(sweep.last),
                     sweep.acc.eq(lanes.out)]
        sweep_free = sweep.free

        # -- the sweep: scale, offset, saturate, write, square -------------------------
        m.d.comb += [
            sweep.ff_r.eq(ff_r), sweep.ff_shift.eq(ff_shift),
            sweep.fb_r.eq(rsqrt_fb.r), sweep.fb_shift.eq(fb_shift),
            sweep.out_off.eq(op.out_off), sweep.bank.eq(op.bank),
            buffer.write_en.eq(sweep.buffer.en),
            buffer.write_bank.eq(sweep.buffer.bank),
            buffer.write_addr.eq(sweep.buffer.addr),
            buffer.write_data.eq(sweep.buffer.data),
        ]
        wiring.connect(m, memories.bias, sweep.bias)
        wiring.connect(m, sweep.pre, pre_write)
        scanning = Signal()
        if shared:
            # The borrowed lanes: the sweep's operands (lanes 0-2); in a scan the goodness
            # datapath has lanes 0..G-1. Operands count only while no element is given
            # to the lanes, which the sequencer guarantees during both.
            for p in range(lanes.shared_lanes):
                a, b = (sweep.a[p], sweep.b[p]) if p < SHARED_OPERANDS else (0, 0)
                if p < G:
                    a = Mux(scanning, goodness.factor[p], a)
                    b = Mux(scanning, goodness.factor[p], b)
                m.d.comb += [lanes.a[p].eq(a), lanes.b[p].eq(b)]
            m.d.comb += [sweep.product[p].eq(lanes.side[p]) for p in range(SHARED_OPERANDS)]
            m.d.comb += [goodness.product[q].eq(lanes.side[q]) for q in range(G)]
        clear_sq = sweep.clear_sq

        # -- scan issue -> goodness datapath ------------------------------------------
        scan_issue = Signal()
        scan_group = Signal(range(max(2, prog.groups)))
        scan_neuron = Signal(range(max(config.hidden) + 1))
        label_addr = Signal(range(max(1, len(prog.label_words)) + 1))
        scan_valid = Signal()
        scan_group_d = Signal.like(scan_group)
        m.d.sync += [scan_valid.eq(scan_issue), scan_group_d.eq(scan_group)]
        m.d.comb += [
            goodness.en.eq(scan_valid),
            goodness.pre.eq(pre_read.data),
            goodness.u.eq(label_layout(label_port.data)),
            goodness.group.eq(scan_group_d),
            label_port.addr.eq(label_addr),
            argmax.scores.eq(goodness.scores),
        ]

        # -- results ------------------------------------------------------------------
        result = Signal(result_layout(K, w["score"]))
        m.d.comb += [self.result.payload.eq(result), result.scores.eq(goodness.scores),
                     result.label.eq(argmax.label), result.cycles.eq(cycles)]

        # -- the state machine --------------------------------------------------------
        m.d.comb += [image_write.addr.eq(pixel), image_write.data.eq(self.image.payload)]

        # The input element's addresses follow the column in every cycle, whether the
        # MAC state issues it or holds it (a held element is read again): the decision
        # to hold stays off the address path, which it was the slowest path of on the
        # ULX3S-85F build.
        m.d.comb += [
            image_read.addr.eq(column),
            buffer.read_bank.eq(Mux(feedback_pass, ~op.bank, op.bank)),
            buffer.read_addr.eq(Mux(feedback_pass, op.fb_off, op.in_off) + column),
        ]

        def issue_element(feedback) -> None:
            """Give one MAC element its pipeline tags (its addresses are driven above)."""
            from_image = (op.ff_src == SRC_IMAGE) & ~feedback
            m.d.comb += [
                issue.eq(1),
                issue_first.eq(is_zero(column)),
                issue_from_image.eq(from_image),
                issue_label.eq(from_image & op.label_block & (column >= D)),
                issue_hit.eq(column - D == op.label),
            ]

        def wait_then(state: str, cycles) -> None:
            """Stay ``cycles`` cycles (counted in ``column`` from 0), then go to ``state``."""
            m.d.sync += column.eq(column + 1)
            with m.If(column == cycles - 1):
                m.d.sync += column.eq(0)
                m.next = state

        def set_phase(name: str) -> None:
            m.d.comb += phase.eq(PHASES[name])

        with m.FSM(name="sequencer"):
            with m.State("IDLE"):
                # Model loads are accepted only between inferences.
                m.d.comb += [self.image.ready.eq(1), load_ready.eq(1)]
                with m.If(self.image.valid):
                    m.d.comb += image_write.en.eq(1)
                    m.d.sync += pixel.eq(pixel + 1)
                    with m.If(pixel == D - 1):
                        # The whole image is in: the inference starts now.
                        m.d.sync += [pixel.eq(0), op_index.eq(0), cycles.eq(0)]
                        m.d.comb += goodness.clear.eq(1)
                        m.next = "FETCH"

            with m.State("FETCH"):
                set_phase("control")
                m.d.comb += op_port.addr.eq(op_index)
                m.next = "DECODE"

            with m.State("DECODE"):
                set_phase("control")
                # The ROM's word for op_index is out: latch it and dispatch.
                m.d.sync += [op.eq(op_port.data), op_index.eq(op_index + 1)]
                opd = layout(op_port.data)
                m.d.comb += clear_sq.eq(1)
                cached = opd.ff_src == SRC_CACHE
                m.d.sync += [tile_out.eq(0), remaining.eq(opd.n_out),
                             ff_tile_base.eq(opd.ff_wbase), fb_tile_base.eq(opd.fb_wbase),
                             scan_neuron.eq(0), scan_group.eq(0), label_addr.eq(opd.u_base),
                             # The first pass: feed-forward, or feedback on cached products.
                             weight_addr.eq(Mux(cached, opd.fb_wbase, opd.ff_wbase)),
                             feedback_pass.eq(cached), column.eq(0)]
                with m.If(opd.kind == LAYER):
                    m.next = "PREP" if prog.prep else "MAC"
                with m.Elif(opd.kind == SCAN):
                    m.next = "SCAN"
                with m.Else():
                    m.d.comb += argmax.start.eq(1)
                    m.next = "ARGMAX"

            if prog.prep:
                with m.State("PREP"):
                    set_phase("normalisation")
                    # The reciprocal square roots of the op's inputs settle.
                    wait_then("MAC", prog.prep)

            with m.State("MAC"):
                n_in = Mux(feedback_pass, op.fb_n_in, op.ff_n_in)
                last = column == n_in - 1
                with m.If(last & ~sweep_free):
                    # Hold the last element: its products would reach the accumulators
                    # before the sweep has taken the previous pass's.
                    set_phase("normalisation")
                with m.Else():
                    m.d.comb += phase.eq(Mux(feedback_pass, PHASES["loop_feedback"],
                                             PHASES["matrix_vector"]))
                    issue_element(feedback=feedback_pass)
                    m.d.sync += [column.eq(column + 1), weight_addr.eq(weight_addr + 1)]
                    with m.If(last):
                        final = feedback_pass | ~op.fb_en
                        cached = op.ff_src == SRC_CACHE
                        m.d.comb += [issue_tag.valid.eq(1), issue_tag.fb.eq(feedback_pass),
                                     issue_tag.final.eq(final),
                                     issue_tag.neuron.eq(tile_out),
                                     issue_tag.count.eq(valid_lanes)]
                        m.d.sync += column.eq(0)
                        if shared:
                            # The next pass waits while the sweep borrows the lanes.
                            m.d.sync += gap.eq(prog.pass_gap(0) + valid_lanes)
                            m.next = "GAP"
                        with m.If(~final):
                            # This tile's feedback pass follows its feed-forward pass.
                            m.d.sync += [weight_addr.eq(fb_tile_base), feedback_pass.eq(1)]
                        with m.Elif(remaining > P):
                            next_ff = ff_tile_base + op.ff_n_in
                            next_fb = fb_tile_base + op.fb_n_in
                            m.d.sync += [tile_out.eq(tile_out + P), remaining.eq(remaining - P),
                                         ff_tile_base.eq(next_ff), fb_tile_base.eq(next_fb),
                                         weight_addr.eq(Mux(cached, next_fb, next_ff)),
                                         feedback_pass.eq(cached)]
                        with m.Else():
                            m.next = "TAIL"

            if shared:
                with m.State("GAP"):
                    set_phase("normalisation")
                    wait_then("MAC", gap)

            with m.State("TAIL"):
                set_phase("normalisation")
                # The last products reach the accumulators, the sweep scales the last tile
                # and its pipeline drains into the buffers and the sum of squares.
                wait_then("FINISH", MAC_DRAIN + valid_lanes + prog.sweep_drain)

            with m.State("FINISH"):
                set_phase("normalisation")
                layer_hot = one_hot(op.layer, L)
                for b in range(2):
                    for i in range(L):
                        with m.If((op.bank if b else ~op.bank) & layer_hot[i]):
                            m.d.sync += sq_regs[b][i].eq(sq_acc)
                with m.If(op.ffl_add):
                    m.d.comb += [goodness.add.eq(1), goodness.add_label.eq(op.label),
                                 goodness.add_value.eq(sq_acc)]
                m.next = "FETCH"

            with m.State("SCAN"):
                set_phase("label_scan")
                m.d.comb += [scan_issue.eq(1), scanning.eq(1), pre_read.addr.eq(scan_neuron)]
                m.d.sync += label_addr.eq(label_addr + 1)
                with m.If(scan_group == prog.groups - 1 if prog.groups > 1 else 1):
                    m.d.sync += [scan_group.eq(0), scan_neuron.eq(scan_neuron + 1)]
                    with m.If(scan_neuron == op.n_out - 1):
                        m.d.sync += column.eq(0)
                        m.next = "SCAN_DRAIN"
                with m.Else():
                    m.d.sync += scan_group.eq(scan_group + 1)

            with m.State("SCAN_DRAIN"):
                set_phase("label_scan")
                m.d.comb += scanning.eq(1)
                wait_then("FETCH", prog.scan_drain)

            with m.State("ARGMAX"):
                set_phase("control")
                with m.If(argmax.done):
                    m.next = "RESULT"

            with m.State("RESULT"):
                m.d.comb += self.result.valid.eq(1)
                with m.If(self.result.ready):
                    m.next = "IDLE"

        # Counting happens in every state but IDLE and RESULT, the ones without a phase
        # (asking the FSM whether it is in IDLE, state 0, lowers to a lint-unclean NOT).
        with m.If(self.busy):
            m.d.sync += cycles.eq(cycles + 1)
        return m
