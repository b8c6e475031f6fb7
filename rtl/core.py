"""The accelerator core: image stream in, result record out.

The core holds the weights (memory initial contents from the integer model), the MAC
lanes, the normaliser, the loop-feedback buffers, the goodness datapath and the argmax,
and a state machine that executes the program of :mod:`rtl.sequencer`:

    IDLE/LOAD -> (FETCH -> DECODE -> op)* -> ARGMAX -> RESULT -> IDLE

A ``LAYER`` op walks the tiles of P neurons. Per tile: the feed-forward pass (MAC over the
input, or the cached layer-1 products), its sweep, and for a layer that hears the loop the
feedback pass and its sweep. A sweep scales one accumulator per cycle; its pipeline
(scaler, bias, saturation, buffer writes, sum of squares) drains while the next pass
already runs. A ``SCAN`` op streams (pre, U row) pairs into the goodness datapath.

The cycle counter starts when the last pixel is accepted and stops when the result is
offered; its closed form is :meth:`rtl.sequencer.Program.cycles`.
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
from rtl.normaliser import Rsqrt, Scaler
from rtl.select import is_zero, one_hot, select
from rtl.sequencer import (
    LAYER,
    LAYER_PREP,
    SCAN,
    SRC_CACHE,
    SRC_IMAGE,
    Program,
    build_program,
    op_layout,
)
from rtl.weight_store import WeightStore

__all__ = ["LOAD_TARGETS", "WEIGHT_MEMORIES", "Core", "load_layout", "load_words",
           "memory_images", "result_layout"]

CYCLE_BITS = 32

#: Where the weights live: "rom" (block RAM initialised from the model), "loadable"
#: (the same block RAM, initialised, and writable through the ``load`` port while idle) or
#: "spram" (iCE40 UP5K SPRAM: uninitialised, loaded through ``load``; rtl.weight_store).
WEIGHT_MEMORIES = ("rom", "loadable", "spram")
#: Codes of the memories the ``load`` port writes (nonzero: see rtl.select).
LOAD_TARGETS = {"ops": 1, "weights": 2, "bias": 3, "labels": 4}


def result_layout(labels: int, score_bits: int) -> data.StructLayout:
    """The result record: predicted label, every label's score, cycles of the inference."""
    return data.StructLayout({
        "label": range(labels),
        "scores": data.ArrayLayout(unsigned(score_bits), labels),
        "cycles": unsigned(CYCLE_BITS),
    })


def memory_images(program: Program) -> dict[str, list[int]]:
    """The words of every model-dependent memory, as the core stores them."""
    w = program.widths
    layout = op_layout(program)
    return {
        "ops": [int(layout.const(vars(op)).as_value().value) for op in program.ops],
        "weights": [_pack(word, w["weight"]) for word in program.weight_words],
        "bias": [v & ((1 << w["state"]) - 1) for v in program.bias],
        "labels": [_pack(word, w["weight"]) for word in program.label_words],
    }


def load_layout(program: Program) -> data.StructLayout:
    """One write of the ``load`` port: which memory, which word, the word."""
    images = memory_images(program)
    widths = [op_layout(program).size, program.lanes * program.widths["weight"],
              program.widths["state"], program.label_lanes * program.widths["weight"]]
    depth = max(2, *(len(words) for words in images.values()))
    return data.StructLayout({"target": 3, "addr": range(depth), "data": max(widths)})


def load_words(program: Program) -> list[tuple[int, int, int]]:
    """(target, address, word) writes that load a whole model through ``load``."""
    return [(LOAD_TARGETS[name], addr, word)
            for name, words in memory_images(program).items()
            for addr, word in enumerate(words)]


def _pack(values: list[int], bits: int) -> int:
    """Little-endian concatenation of two's complement fields."""
    word = 0
    for i, v in enumerate(values):
        word |= (v & ((1 << bits) - 1)) << (i * bits)
    return word


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

    Members
    -------
    image : In(stream.Signature(unsigned(input_bits)))
        D pixels per image, row-major.
    result : Out(stream.Signature(result_layout(K, score_bits)))
        One record per image.
    busy : Out(1)
        An inference is being computed.
    load : In(stream.Signature(load_layout(program)))
        Only with ``weights="loadable"`` or ``"spram"``: memory writes
        (:func:`load_words`), accepted while no inference runs.
    """

    def __init__(self, model: IntModel, *, lanes: int, label_lanes: int | None = None,
                 weights: str = "rom") -> None:
        if not isinstance(model, IntModel):
            raise TypeError(f"Model must be a golden.intmodel.IntModel, not {model!r}")
        if weights not in WEIGHT_MEMORIES:
            raise ValueError(f"Weight memory must be one of {', '.join(WEIGHT_MEMORIES)}, "
                             f"not {weights!r}")
        self.program: Program = build_program(model, lanes=lanes, label_lanes=label_lanes)
        self.model = model
        self.weights = weights
        w = self.program.widths
        K = model.config.num_classes
        members = {
            "image": In(stream.Signature(unsigned(w["input"]))),
            "result": Out(stream.Signature(result_layout(K, w["score"]))),
            "busy": Out(1),
        }
        if weights != "rom":
            members["load"] = In(stream.Signature(load_layout(self.program)))
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
                              label_lanes=self.program.label_lanes)
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
        m.submodules.lanes = lanes = MacLanes(lanes=P, weight_bits=w["weight"],
                                              input_bits=w["mac_input"], acc_bits=w["acc"])
        m.submodules.rsqrt_ff = rsqrt_ff = Rsqrt(
            sq_bits=w["sq"], index_bits=fmt.rsqrt_index_bits, frac_bits=fmt.rsqrt_frac_bits)
        m.submodules.rsqrt_fb = rsqrt_fb = Rsqrt(
            sq_bits=w["sq"], index_bits=fmt.rsqrt_index_bits, frac_bits=fmt.rsqrt_frac_bits)
        # PREP, PASS and CACHE_LOAD hide the reciprocal's pipeline (rtl.sequencer).
        if rsqrt_ff.latency > LAYER_PREP + 2:
            raise AssertionError(f"Rsqrt latency {rsqrt_ff.latency} exceeds the "
                                 f"{LAYER_PREP + 2} cycles before the first sweep")
        m.submodules.scaler = scaler = Scaler(acc_bits=w["acc"], r_bits=w["r"],
                                              shift_bits=w["shift"])
        m.submodules.buffer = buffer = FeedbackBuffer(depth=total, width=w["act"])
        m.submodules.goodness = goodness = GoodnessDatapath(
            labels=K, lanes=G, state_bits=w["state"], weight_bits=w["weight"],
            score_bits=w["score"])
        m.submodules.argmax = argmax = Argmax(labels=K, score_bits=w["score"])

        # -- memories -----------------------------------------------------------------
        # Every depth is at least 2: a one-entry memory has a zero-width address, which
        # Verilog spells [-1:0].
        images = memory_images(prog)
        m.submodules.op_rom = op_rom = memory.Memory(
            shape=unsigned(layout.size), depth=max(2, len(prog.ops)), init=images["ops"])
        op_port = op_rom.read_port()
        m.submodules.image_mem = image_mem = memory.Memory(
            shape=unsigned(w["input"]), depth=max(2, D), init=[])
        image_read, image_write = image_mem.read_port(), image_mem.write_port()
        weight_layout = data.ArrayLayout(signed(w["weight"]), P)
        spram = self.weights == "spram"
        m.submodules.weight_store = weight_store = WeightStore(
            width=P * w["weight"], depth=max(2, len(prog.weight_words)),
            kind="spram" if spram else "bram", init=[] if spram else images["weights"],
            writable=self.weights != "rom")
        weight_port = weight_store.read
        m.submodules.bias_rom = bias_rom = memory.Memory(
            shape=unsigned(w["state"]), depth=max(2, total), init=images["bias"])
        bias_port = bias_rom.read_port()
        label_layout = data.ArrayLayout(signed(w["weight"]), G)
        m.submodules.label_rom = label_rom = memory.Memory(
            shape=unsigned(G * w["weight"]), depth=max(2, len(prog.label_words)),
            init=images["labels"])
        label_port = label_rom.read_port()
        m.submodules.pre_mem = pre_mem = memory.Memory(
            shape=signed(w["state"]), depth=max(2, *config.hidden), init=[])
        pre_read, pre_write = pre_mem.read_port(), pre_mem.write_port()
        acc_layout = data.ArrayLayout(signed(w["acc"]), P)
        m.submodules.cache_mem = cache_mem = memory.Memory(
            shape=acc_layout, depth=max(2, prog.cache_tiles), init=[])
        cache_read, cache_write = cache_mem.read_port(), cache_mem.write_port()

        # -- run-time loading of the model (weights="loadable" or "spram") -------------
        load_ready = Signal()
        if self.weights != "rom":
            load = self.load
            m.d.comb += load.ready.eq(load_ready)
            fire = load.valid & load_ready
            writable = [("weights", weight_store), ("bias", bias_rom), ("labels", label_rom)]
            # An SPRAM core (iCE40) keeps its few-word program in a ROM: written at run
            # time it would become flip-flops, iCE40 having no distributed RAM.
            if self.weights != "spram":
                writable.append(("ops", op_rom))
            for name, mem in writable:
                port = mem.write if mem is weight_store else mem.write_port()
                m.d.comb += [
                    port.addr.eq(load.payload.addr[:len(port.addr)]),
                    port.data.eq(load.payload.data[:len(port.data)]),
                    port.en.eq(fire & (load.payload.target == LOAD_TARGETS[name])),
                ]

        # -- sequencer state ----------------------------------------------------------
        op = Signal(layout)
        op_index = Signal(range(len(prog.ops) + 1))
        cycles = Signal(CYCLE_BITS)
        pixel = Signal(range(D + 1))
        column = Signal(range(max(D + K, max(config.hidden)) + 1))
        tile_out = Signal(range(total + P + 1))       # first neuron of the tile (in layer)
        remaining = Signal(range(max(config.hidden) + 1))
        lane = Signal(range(P + 1))
        ff_tile_base = Signal(range(len(prog.weight_words) + max(D + K, total) + 1))
        fb_tile_base = Signal.like(ff_tile_base)
        weight_addr = Signal.like(ff_tile_base)
        tile_index = Signal(range(prog.cache_tiles + 1))
        feedback_pass = Signal()
        sq_acc = Signal(unsigned(w["sq"]))
        sq_regs = [[Signal(unsigned(w["sq"]), name=f"sq_b{b}_l{i}") for i in range(L)]
                   for b in range(2)]
        partial = Signal(data.ArrayLayout(signed(w["acc"] + w["r"] + 1), P))
        valid_lanes = Signal(range(P + 1))
        m.d.comb += valid_lanes.eq(Mux(remaining < P, remaining, P))

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

        # -- MAC issue -> lanes (one cycle of memory latency) --------------------------
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
        m.d.comb += [
            lanes.en.eq(stage_valid),
            lanes.first.eq(stage_first),
            lanes.x.eq(Mux(stage_from_image, pixel_value, buffer.read_data)),
            lanes.w.eq(weight_layout(weight_port.data)),
            weight_port.addr.eq(weight_addr),
        ]

        # -- sweep pipeline: issue (p) -> scaler (2) -> add/saturate (1) -> write (1) --
        sweep = Signal()
        sweep_final = Signal()
        sweep_fb = Signal()
        sweep_lane = Signal(range(max(2, P)))
        sweep_neuron = Signal(range(max(config.hidden) + P))
        sel_acc = Signal(signed(w["acc"]))
        m.d.comb += sel_acc.eq(select([lanes.acc[p] for p in range(P)], lane))
        m.d.comb += [
            scaler.acc.eq(sel_acc),
            scaler.r.eq(Mux(feedback_pass, rsqrt_fb.r, ff_r)),
            scaler.shift.eq(Mux(feedback_pass, fb_shift, ff_shift)),
            bias_port.addr.eq(op.out_off + sweep_neuron),
        ]
        pipe = [dict(valid=Signal(name=f"sw_valid_{i}"), final=Signal(name=f"sw_final_{i}"),
                     fb=Signal(name=f"sw_fb_{i}"),
                     lane=Signal(range(max(2, P)), name=f"sw_lane_{i}"),
                     neuron=Signal(range(max(config.hidden) + P), name=f"sw_neuron_{i}"))
                for i in range(4)]
        m.d.sync += [pipe[0][k].eq(v) for k, v in (("valid", sweep), ("final", sweep_final),
                                                    ("fb", sweep_fb), ("lane", sweep_lane),
                                                    ("neuron", sweep_neuron))]
        for i in range(1, 4):
            m.d.sync += [pipe[i][k].eq(pipe[i - 1][k]) for k in pipe[i]]
        bias_delayed = Signal(signed(w["state"]))
        m.d.sync += bias_delayed.eq(bias_port.data)
        # Stage 2 (pipe[1]): scaler output valid.
        scaled = scaler.out
        lane_partial = Signal.like(scaled)
        m.d.comb += lane_partial.eq(select([partial[p] for p in range(P)], pipe[1]["lane"]))
        state_bits = w["state"]
        s_max, s_min = (1 << (state_bits - 1)) - 1, -(1 << (state_bits - 1))
        total_sum = Signal(signed(len(scaled) + 2))
        m.d.comb += total_sum.eq(Mux(pipe[1]["fb"], lane_partial, 0) + scaled + bias_delayed)
        s_value = Signal(signed(state_bits))
        with m.If(pipe[1]["valid"] & ~pipe[1]["final"]):
            target = one_hot(pipe[1]["lane"], P)
            for p in range(P):
                with m.If(target[p]):
                    m.d.sync += partial[p].eq(scaled)
        m.d.sync += s_value.eq(Mux(total_sum > s_max, s_max,
                                   Mux(total_sum < s_min, s_min, total_sum)))
        # Stage 3 (pipe[2]): write pre-activation and activation, square.
        activation = Signal(unsigned(w["act"]))
        m.d.comb += activation.eq(Mux(s_value[-1], 0, s_value))
        write_now = pipe[2]["valid"] & pipe[2]["final"]
        m.d.comb += [
            pre_write.en.eq(write_now),
            pre_write.addr.eq(pipe[2]["neuron"]),
            pre_write.data.eq(s_value),
            buffer.write_en.eq(write_now),
            buffer.write_bank.eq(op.bank),
            buffer.write_addr.eq(op.out_off + pipe[2]["neuron"]),
            buffer.write_data.eq(activation),
        ]
        square = Signal(unsigned(2 * w["act"]))
        square_valid = Signal()
        m.d.sync += [square.eq(activation * activation), square_valid.eq(write_now)]
        clear_sq = Signal()
        with m.If(clear_sq):
            m.d.sync += sq_acc.eq(0)
        with m.Elif(square_valid):
            m.d.sync += sq_acc.eq(sq_acc + square)

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

        def issue_element(feedback) -> None:
            """Drive one MAC element's memory addresses and its pipeline tags."""
            from_image = (op.ff_src == SRC_IMAGE) & ~feedback
            m.d.comb += [
                issue.eq(1),
                issue_first.eq(is_zero(column)),
                issue_from_image.eq(from_image),
                issue_label.eq(from_image & op.label_block & (column >= D)),
                issue_hit.eq(column - D == op.label),
                image_read.addr.eq(column),
                buffer.read_bank.eq(Mux(feedback, ~op.bank, op.bank)),
                buffer.read_addr.eq(Mux(feedback, op.fb_off, op.in_off) + column),
            ]

        def advance_column(n_in) -> None:
            """Next element; after the last one, let the products reach the lanes."""
            m.d.sync += [column.eq(column + 1), weight_addr.eq(weight_addr + 1)]
            with m.If(column == n_in - 1):
                m.d.sync += column.eq(0)
                m.next = "MAC_DRAIN"

        def wait_then(state: str, cycles: int) -> None:
            """Stay ``cycles`` cycles (counted in ``column`` from 0), then go to ``state``."""
            m.d.sync += column.eq(column + 1)
            with m.If(column == cycles - 1):
                m.d.sync += column.eq(0)
                m.next = state

        def start_tile_pass(feedback: bool):
            """Point the weight address at this tile's rows for the pass."""
            m.d.sync += [weight_addr.eq(fb_tile_base if feedback else ff_tile_base),
                         column.eq(0), feedback_pass.eq(int(feedback))]

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
                m.d.comb += self.busy.eq(1)
                m.d.comb += op_port.addr.eq(op_index)
                m.next = "DECODE"

            with m.State("DECODE"):
                m.d.comb += self.busy.eq(1)
                # The ROM's word for op_index is out: latch it and dispatch.
                m.d.sync += [op.eq(op_port.data), op_index.eq(op_index + 1)]
                opd = layout(op_port.data)
                m.d.comb += clear_sq.eq(1)
                m.d.sync += [tile_out.eq(0), remaining.eq(opd.n_out), tile_index.eq(0),
                             ff_tile_base.eq(opd.ff_wbase), fb_tile_base.eq(opd.fb_wbase),
                             scan_neuron.eq(0), scan_group.eq(0), label_addr.eq(opd.u_base)]
                with m.If(opd.kind == LAYER):
                    m.next = "PREP"
                with m.Elif(opd.kind == SCAN):
                    m.next = "SCAN"
                with m.Else():
                    m.d.comb += argmax.start.eq(1)
                    m.next = "ARGMAX"

            with m.State("PREP"):
                m.d.comb += self.busy.eq(1)
                # One cycle for the reciprocal square roots of the op's inputs.
                start_tile_pass(False)
                m.next = "PASS"

            with m.State("PASS"):
                m.d.comb += self.busy.eq(1)
                # Choose how this tile's feed-forward products arrive.
                with m.If(op.ff_src == SRC_CACHE):
                    m.d.comb += cache_read.addr.eq(tile_index)
                    m.next = "CACHE_LOAD"
                with m.Else():
                    m.next = "MAC"
                    issue_element(feedback=False)
                    advance_column(op.ff_n_in)

            with m.State("MAC"):
                m.d.comb += self.busy.eq(1)
                n_in = Mux(feedback_pass, op.fb_n_in, op.ff_n_in)
                issue_element(feedback=feedback_pass)
                advance_column(n_in)

            with m.State("MAC_DRAIN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += lane.eq(0)
                wait_then("SWEEP", 2)

            with m.State("CACHE_LOAD"):
                m.d.comb += self.busy.eq(1)
                m.d.comb += [lanes.load.eq(1), lanes.load_value.eq(cache_read.data)]
                m.d.sync += lane.eq(0)
                m.next = "SWEEP"

            with m.State("SWEEP"):
                m.d.comb += self.busy.eq(1)
                final = feedback_pass | ~op.fb_en
                m.d.comb += [sweep.eq(1), sweep_final.eq(final), sweep_fb.eq(feedback_pass),
                             sweep_lane.eq(lane), sweep_neuron.eq(tile_out + lane)]
                with m.If(is_zero(lane) & ~feedback_pass & op.cache_write):
                    m.d.comb += [cache_write.en.eq(1), cache_write.addr.eq(tile_index),
                                 cache_write.data.eq(lanes.acc)]
                m.d.sync += lane.eq(lane + 1)
                with m.If(lane == valid_lanes - 1):
                    with m.If(~final):
                        start_tile_pass(True)
                        m.next = "MAC"
                    with m.Elif(remaining > P):
                        m.d.sync += [tile_out.eq(tile_out + P), remaining.eq(remaining - P),
                                     tile_index.eq(tile_index + 1),
                                     ff_tile_base.eq(ff_tile_base + op.ff_n_in),
                                     fb_tile_base.eq(fb_tile_base + op.fb_n_in),
                                     weight_addr.eq(ff_tile_base + op.ff_n_in),
                                     column.eq(0), feedback_pass.eq(0)]
                        m.next = "PASS"
                    with m.Else():
                        m.d.sync += column.eq(0)
                        m.next = "SWEEP_DRAIN"

            with m.State("SWEEP_DRAIN"):
                m.d.comb += self.busy.eq(1)
                wait_then("FINISH", 4)

            with m.State("FINISH"):
                m.d.comb += self.busy.eq(1)
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
                m.d.comb += self.busy.eq(1)
                m.d.comb += [scan_issue.eq(1), pre_read.addr.eq(scan_neuron)]
                m.d.sync += label_addr.eq(label_addr + 1)
                with m.If(scan_group == prog.groups - 1 if prog.groups > 1 else 1):
                    m.d.sync += [scan_group.eq(0), scan_neuron.eq(scan_neuron + 1)]
                    with m.If(scan_neuron == op.n_out - 1):
                        m.d.sync += column.eq(0)
                        m.next = "SCAN_DRAIN"
                with m.Else():
                    m.d.sync += scan_group.eq(scan_group + 1)

            with m.State("SCAN_DRAIN"):
                m.d.comb += self.busy.eq(1)
                wait_then("FETCH", 3)

            with m.State("ARGMAX"):
                m.d.comb += self.busy.eq(1)
                with m.If(argmax.done):
                    m.next = "RESULT"

            with m.State("RESULT"):
                m.d.comb += self.result.valid.eq(1)
                with m.If(self.result.ready):
                    m.next = "IDLE"

        # Counting happens in every state but IDLE and RESULT (each says so itself: asking
        # the FSM whether it is in IDLE, state 0, lowers to a lint-unclean NOT).
        with m.If(self.busy):
            m.d.sync += cycles.eq(cycles + 1)
        return m
