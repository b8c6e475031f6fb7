# amaranth: UnusedElaboratable=no
"""The accelerator core: image stream in, result record out.

The core is the composition of its units, connected where their ports meet:

- :class:`rtl.model_memory.ModelMemory`: the program, weights, biases and label weights
  (ROM, loadable or SPRAM, one or two banks), behind read ports and the ``load`` port;
- :class:`rtl.sequencer.Sequencer`: the state machine that executes the program of
  :mod:`rtl.program`, ``IDLE/LOAD -> (FETCH -> DECODE -> op)* -> ARGMAX -> RESULT``;
- the operand stage (here): the sequencer's element, read from the image memory or the
  loop-feedback buffer, registered on its way to the lanes;
- :class:`rtl.mac_lanes.MacLanes`, :class:`rtl.sweep.Sweep` (scaler, bias, saturation,
  buffer writes, sum of squares), the reciprocal square roots
  (:class:`rtl.normaliser.Rsqrt`), the loop-feedback buffer, the goodness datapath and
  the argmax.

Each unit states its latency; the core checks them against the closed form of
:mod:`rtl.program` where they meet (:meth:`Core._check_latencies`).

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

Built with ``store_bits`` (the training core, :mod:`rtl.training_core`), the weight, bias
and label memories hold the trainer's stored words, B_m bits a weight, and the forward
pass reads the top bits of each field (c >> f): a slice on the memories' outputs, nothing
else changes.

The cycle counter starts when the last pixel is accepted and stops when the result is
offered; its closed form is :meth:`rtl.program.Program.cycles`. The ``phase`` output
says what each counted cycle is for (:class:`rtl.protocol.Phase`).
"""

from __future__ import annotations

import dataclasses

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.intmodel import IntModel
from rtl.argmax import Argmax
from rtl.collisions import COLLISIONS_UNUSED
from rtl.feedback_buffer import FeedbackBuffer
from rtl.goodness import GoodnessDatapath
from rtl.mac_lanes import MacLanes
from rtl.model_memory import (
    LOAD_TARGETS,
    WEIGHT_MEMORIES,
    ModelMemory,
    check_mapping,
    load_depths,
    load_layout,
    load_words,
    memory_images,
    model_memory_depth,
)
from rtl.normaliser import Rsqrt
from rtl.program import (
    PHASE_BITS,
    SIDE_BITS,
    SIDE_LATENCY,
    Program,
    Widths,
    build_program,
    op_layout,
)
from rtl.select import equals, is_zero
from rtl.sequencer import CYCLE_BITS, Sequencer
from rtl.sweep import SHARED_OPERANDS, Sweep
from rtl.weight_store import bram_slices

__all__ = ["LOAD_TARGETS", "WEIGHT_MEMORIES", "Core", "lend_signature", "load_depths",
           "load_layout", "load_words", "memory_images", "norms_signature",
           "observe_signature", "result_layout", "store_signature"]


def result_layout(labels: int, score_bits: int) -> data.StructLayout:
    """The result record: predicted label, every label's score, cycles of the inference."""
    return data.StructLayout({
        "label": range(labels),
        "scores": data.ArrayLayout(unsigned(score_bits), labels),
        "cycles": unsigned(CYCLE_BITS),
    })


def store_signature(program: Program) -> wiring.Signature:
    """The ``store`` port of a core with stored weights, as its user (the training
    engine) sees it: while ``claim`` is high the weight, bias and label memories' read
    ports take the engine's addresses (data: the whole stored words, after the weight
    store's latency for weights, one cycle for biases and labels); while ``hold`` is
    high the sequencer waits before its next op (``observe.fetch``), the core idles and
    ``load`` is accepted."""
    config = program.model.config

    def address(words: int) -> range:
        return range(max(2, words))

    return wiring.Signature({
        "claim": Out(1),
        "weight_addr": Out(address(len(program.weight_words))),
        "weight_data": In(unsigned(program.lanes * program.stored_weight_bits)),
        "bias_addr": Out(address(sum(config.hidden))),
        "bias_data": In(unsigned(program.stored_bias_bits)),
        "label_addr": Out(address(len(program.label_words))),
        "label_data": In(unsigned(program.label_lanes * program.stored_weight_bits)),
        "hold": Out(1),
    })


def lend_signature(lanes: int) -> wiring.Signature:
    """The ``lend`` port of a core built with ``lend=True``, as its user (the training
    engine's update lanes) sees it: lane p multiplies ``a[p]`` by ``b[p]`` in every cycle
    the core gives it no element, and the product is in ``product[p]``
    :data:`rtl.program.SIDE_LATENCY` cycles later (``MacLanes``' side ports)."""
    operands = data.ArrayLayout(signed(SIDE_BITS), lanes)
    return wiring.Signature({
        "a": Out(operands), "b": Out(operands),
        "product": In(data.ArrayLayout(signed(2 * SIDE_BITS), lanes)),
    })


def observe_signature(program: Program) -> wiring.Signature:
    """The ``observe`` port of a core built with ``observe=True`` (see :class:`Core`)."""
    config, w = program.model.config, program.widths
    return wiring.Signature({
        "scan": Out(1), "layer": Out(range(max(2, config.num_layers))),
        "neuron": Out(range(max(2, *config.hidden))), "pre": Out(signed(w.state)),
        "act": Out(1), "act_bank": Out(1), "act_addr": Out(range(max(2, sum(config.hidden)))),
        "act_data": Out(unsigned(w.act)),
        "pre_write": Out(1), "pre_addr": Out(range(max(2, *config.hidden))),
        "pre_data": Out(signed(w.state)),
        "fetch": Out(1), "op_index": Out(range(len(program.ops) + 1)),
    })


def norms_signature(program: Program) -> wiring.Signature:
    """The ``norms`` port of a core built with ``norms=True`` (see :class:`Core`): the
    two reciprocal square roots' outputs, (r, sh) of the running op's feed-forward input
    (``ff_r``, ``ff_sh``) and of its feedback input (``fb_r``, ``fb_sh``), as
    :class:`rtl.normaliser.Rsqrt` gives them."""
    w = program.widths
    return wiring.Signature({
        "ff_r": Out(unsigned(w.r)), "ff_sh": Out(range(w.sq + 2)),
        "fb_r": Out(unsigned(w.r)), "fb_sh": Out(range(w.sq + 2)),
    })


@dataclasses.dataclass
class _Units:
    """The units :meth:`Core.elaborate` makes (:meth:`Core._units`), for the helpers that
    connect them. ``rsqrt_ff`` and ``rsqrt_fb`` are None with stored norms (one unit,
    :meth:`Core._stored_norms`, makes both inputs' reciprocals)."""

    lanes: MacLanes
    rsqrt_ff: Rsqrt | None
    rsqrt_fb: Rsqrt | None
    sweep: Sweep
    buffer: FeedbackBuffer
    goodness: GoodnessDatapath
    argmax: Argmax
    seq: Sequencer
    memories: ModelMemory
    image_mem: memory.Memory
    pre_mem: memory.Memory


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
    store_bits : int, optional
        B_m: the memories hold stored weights of B_m bits (biases B_s + B_m - B_w), as
        a trainer starts them from ``model`` (:func:`rtl.program.build_program`'s
        ``fine_bits``), and the forward pass reads their top B_w (B_s) bits. Needs
        ``weights="loadable"`` or ``"spram"`` (whose stored weights start empty, the
        biases and label weights in block RAM as loadable) and one bank. Default: the
        forward width, no ``store``.
    observe : bool
        Add the ``observe`` port (default False).
    layer1_cache : bool
        FFCL: reuse layer 1's first-iteration products (default True; see
        :func:`rtl.program.build_program`).
    lend : bool
        Add the ``lend`` port: every MAC lane's multiplier takes the port's operands in
        the cycles it is given no element (``MacLanes(shared_lanes=P)``; each lane then
        multiplies 16 x 16, still one DSP). For the training engine's update lanes, which
        only run while the core idles or is held. With ``shared`` the sweep and the
        label scan borrow lanes 0..max(3, G) - 1 while the core runs, the port's user
        every lane while it idles or is held (``accept_load``). Default False.
    norms : bool
        Add the ``norms`` port (default False): for the training engine, which takes the
        reciprocal square roots of a layer's inputs from the forward pass instead of
        computing them again (``TrainingCore(input_norm="forward")``). A separate port,
        not part of ``observe``: a submodule's outputs that nothing reads stay in its
        RTLIL as named wires, so every core without it keeps its netlist.
    lean : bool
        The forward datapath's small-part form (default False, for a part as small as
        the UP5K, where a flip-flop fed by a flip-flop or a memory takes a logic cell of
        its own): ``Sweep(lean=True)``, which reads the bias (and a feedback sweep's kept
        part) when the scaled sum arrives instead of carrying it beside the scaler, and
        with ``shared`` also ``GoodnessDatapath(lean=True)``, whose borrowed multipliers
        compute f (f + e) so that one bit instead of the odd part waits beside them. The
        same results in the same cycles. Its two reciprocal square roots are
        ``Rsqrt(held=True)``: the op's input sums hold for the whole op. With ``shared``
        the lanes are ``MacLanes(held_sums=True)``: the GAP between passes keeps the
        finished sums in the accumulators, and the shift-out needs no top entry; and the
        scan is ``GoodnessDatapath(fused_relu=True)``, a stage shorter: its scores are
        final a cycle before the scan's drain ends (the same cycles); and the sweep is
        ``Sweep(spaced_passes=True)``: GAP keeps one pass at a time in its pipeline, so
        its stages count their neuron index instead of carrying it.
    stored_norms : bool
        Another small-part option (default False): one reciprocal square root, of the
        sweep's sum of squares when an op finishes (``Sequencer(stored_norms=True)``),
        and per layer the latest (r, sh / 2) of it instead of the sums of squares of
        every layer in both loop banks, kept only for a layer an op reads
        (:attr:`rtl.program.Program.norm_reads`, which shows that a read never needs the
        other bank's): the feed-forward and feedback inputs' norms are those of the
        layers' outputs, so one unit computes each once, instead of two units
        recomputing them from the stored sums for every op. The unit is
        ``Rsqrt(held=True, input_register=False)`` (the sum is a register and holds until
        the next op is decoded), with ``keep=True`` when one layer's norm is read: its
        output registers keep it. The same results in the same cycles; the ``norms``
        port's values are valid from the op's first cycle, its feedback values only for
        an op whose feedback pass runs (``fb_en``).
    tag_memory : bool
        Another small-part option (default False): ``Sweep(tag_memory=True)``, the
        passes' tags on their way to the sweep in a block RAM (one more) instead of
        flip-flops. The same results in the same cycles.
    score_port : bool
        Add the ``score`` port (default False, for a part as small as the UP5K): the
        argmax's score select (``Argmax(read_port=True)``) read between searches, so that
        a host link's reply serialiser picks a RESULT's scores through it instead of a
        K-way select of its own. A separate port, as ``norms``: every core without it
        keeps its netlist.

    Members
    -------
    image : In(stream.Signature(unsigned(input_bits)))
        D pixels per image, row-major.
    result : Out(stream.Signature(result_layout(K, score_bits)))
        One record per image.
    busy : Out(1)
        An inference is being computed (the cycle counter counts this cycle).
    phase : Out(PHASE_BITS)
        What this cycle is for: a :class:`rtl.protocol.Phase` code (``IDLE``, 0, while
        not busy); :data:`rtl.program.PHASES` names them.
    load : In(stream.Signature(load_layout(program)))
        Only with ``weights="loadable"`` or ``"spram"``: memory writes
        (:func:`load_words`), accepted while no inference runs.
    bank : In(1)
        Only with ``banks=2``: the bank inferences read (``load`` writes the other).
    store : In(store_signature(program))
        Only with ``store_bits``: the training engine's read access to the stored words
        while the core idles (``load`` writes them).
    lend : In(lend_signature(P))
        Only with ``lend=True``: the lanes' multipliers for another unit's operands.
    norms : Out(norms_signature(program))
        Only with ``norms=True``: (r, sh) of the running op's inputs, the feed-forward
        input's (layers above the first) and the feedback's; valid from
        :attr:`rtl.normaliser.Rsqrt.LATENCY` cycles after the op is latched (in DECODE)
        to its end, so in every cycle the sweep writes one of the op's activations
        (``observe.act``), which it scales with them.
    score : Out(memory.ReadPort.Signature(addr_width=..., shape=unsigned(score_bits)))
        Only with ``score_port=True``: ``score.data`` is the score of label
        ``score.addr`` of the cycle before (``score.en`` ignored), as ``result`` holds
        it, for addresses given from the cycle ``result.valid`` rises until the next
        inference's argmax starts (:class:`rtl.argmax.Argmax`'s ``read``: while the argmax
        searches, the select is the search's).
    observe : Out(observe_signature(program))
        Only with ``observe=True``: what the forward pass computes, as it is computed
        (the training core, :mod:`rtl.training_core`, keeps what its update needs):
        ``scan`` marks a cycle in which the label scan takes neuron ``neuron`` of layer
        ``layer`` with pre-activation ``pre`` (label group 0 only); ``act`` one in which
        the sweep writes activation ``act_data`` at ``act_addr`` (the layer's offset
        plus the neuron) of bank ``act_bank`` (the iteration's, t mod 2) of the
        loop-feedback buffer; ``pre_write`` one in which the sweep writes the
        pre-activation ``pre_data`` of neuron ``pre_addr`` of layer ``layer`` (every
        iteration, scanned or not); ``fetch`` one in which the sequencer fetches op
        ``op_index`` (it waits there while ``store.hold`` is high).
    """

    def __init__(self, model: IntModel, *, lanes: int, label_lanes: int | None = None,
                 weights: str = "rom", banks: int = 1, shared: bool = False,
                 observe: bool = False, store_bits: int | None = None,
                 layer1_cache: bool = True, lend: bool = False, norms: bool = False,
                 lean: bool = False, stored_norms: bool = False,
                 tag_memory: bool = False, score_port: bool = False) -> None:
        if not isinstance(model, IntModel):
            raise TypeError(f"Model must be a golden.intmodel.IntModel, not {model!r}")
        check_mapping(weights, banks)
        if not isinstance(lend, bool):
            raise TypeError(f"Lend must be True or False, not {lend!r}")
        if not isinstance(lean, bool):
            raise TypeError(f"Lean must be True or False, not {lean!r}")
        if not isinstance(stored_norms, bool):
            raise TypeError(f"Stored norms must be True or False, not {stored_norms!r}")
        if not isinstance(tag_memory, bool):
            raise TypeError(f"Tag memory must be True or False, not {tag_memory!r}")
        self.lean = lean
        self.stored_norms = stored_norms
        self.tag_memory = tag_memory
        fine_bits = 0
        if store_bits is not None:
            B_w = model.fmt.weight_bits
            if (not isinstance(store_bits, int) or isinstance(store_bits, bool)
                    or store_bits < B_w):
                raise ValueError(f"Stored weight width must be an integer of at least the "
                                 f"forward weight width {B_w}, not {store_bits!r}")
            if weights not in ("loadable", "spram") or banks != 1:
                raise ValueError("Stored weights need weights='loadable' or 'spram' and one "
                                 "bank (the training engine writes them through load)")
            fine_bits = store_bits - B_w
        self.program: Program = build_program(model, lanes=lanes, label_lanes=label_lanes,
                                              shared=shared, fine_bits=fine_bits,
                                              layer1_cache=layer1_cache)
        self.store_bits = store_bits
        self.model = model
        self.weights = weights
        self.banks = banks
        #: The model memories (made here: a testbench fills an SPRAM store through them).
        self.memories = ModelMemory(self.program, weights=weights, banks=banks)
        w = self.program.widths
        K = model.config.num_classes
        members = {
            "image": In(stream.Signature(unsigned(w.input))),
            "result": Out(stream.Signature(result_layout(K, w.score))),
            "busy": Out(1),
            "phase": Out(PHASE_BITS),
        }
        if weights != "rom":
            members["load"] = In(stream.Signature(load_layout(self.program)))
        if banks == 2:
            members["bank"] = In(1)
        if not isinstance(observe, bool):
            raise TypeError(f"Observe must be True or False, not {observe!r}")
        self.observe_enabled = observe
        if observe:
            members["observe"] = Out(observe_signature(self.program))
        if store_bits is not None:
            members["store"] = In(store_signature(self.program))
        self.lend_enabled = lend
        if lend:
            members["lend"] = In(lend_signature(self.program.lanes))
        if not isinstance(norms, bool):
            raise TypeError(f"Norms must be True or False, not {norms!r}")
        self.norms_enabled = norms
        if norms:
            members["norms"] = Out(norms_signature(self.program))
        if not isinstance(score_port, bool):
            raise TypeError(f"Score port must be True or False, not {score_port!r}")
        self.score_port_enabled = score_port
        if score_port:
            members["score"] = Out(memory.ReadPort.Signature(
                addr_width=(K - 1).bit_length(), shape=unsigned(w.score)))
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
                              label_lanes=self.program.label_lanes, shared=self.program.shared,
                              fine_bits=self.program.fine_bits,
                              layer1_cache=self.program.layer1_cache)
        if model.config != self.model.config:
            raise ValueError("the model to load has another configuration than the core's")
        for field in dataclasses.fields(Widths):
            name, width = field.name, getattr(self.program.widths, field.name)
            if getattr(other.widths, name) > width:
                raise ValueError(f"the model to load needs {getattr(other.widths, name)} "
                                 f"{name} bits; the core has {width}")
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
        return bram_slices(family, depth=depth,
                           width=self.lanes * self.program.stored_weight_bits)

    def cycles_per_inference(self) -> int:
        """The closed-form cycle count of one inference (what the counter reports)."""
        return self.program.cycles()

    def elaborate(self, platform) -> Module:
        m = Module()
        units = self._units(m)
        self._check_latencies(units.memories, units.lanes, units.sweep, units.goodness)
        seq = units.seq

        # -- the sequencer: image in, model loads, program, result out -------------------
        self._sequencer_ports(m, units)

        # -- MAC issue -> lanes (memory read, then the operand stage) ------------------
        self._operand_stage(m, seq, units.lanes, units.memories, units.image_mem,
                            units.buffer)

        # -- the sweep: the lanes' sums -> scale, offset, saturate, write, square --------
        input_norms = self._sweep_inputs(m, units)
        self._bias_and_store(m, units)
        wiring.connect(m, units.sweep.pre, units.pre_mem.write_port())
        self._side_operands(m, units.lanes, units.sweep, units.goodness, seq)

        # -- scan issue -> goodness datapath -> argmax ---------------------------------
        pre, scan = self._scan(m, units)
        if self.score_port_enabled:
            wiring.connect(m, wiring.flipped(self.score), units.argmax.read)
        if self.observe_enabled:
            self._observe(m, seq, units.sweep, pre, scan)
        if self.norms_enabled:
            self._norms_port(m, units, input_norms)
        return m

    def _units(self, m: Module) -> _Units:
        """Make the core's units, each a submodule of ``m``."""
        prog, model = self.program, self.model
        config, fmt, w = model.config, model.fmt, prog.widths
        P, G, K, D = prog.lanes, prog.label_lanes, config.num_classes, config.input_size
        total = sum(config.hidden)
        shared = prog.shared
        # Shared: lanes 0 and 1 scale, lane 2 squares activations, lanes 0..G-1 scan.
        m.submodules.lanes = lanes = MacLanes(
            lanes=P, weight_bits=w.weight, input_bits=w.mac_input, acc_bits=w.acc,
            shared_lanes=P if self.lend_enabled else max(3, G) if shared else 0,
            side_bits=SIDE_BITS,
            # Shared: passes never follow back to back (GAP), so the other lanes may clear
            # ahead and keep their accumulators in the DSPs.
            clear_ahead=shared,
            # Lean and shared: GAP (Program.pass_gap, checked by _check_latencies) leaves
            # the finished sums in the accumulators long enough to shift out without a top
            # entry.
            **({"held_sums": True} if self.lean and shared else {}))
        # Lean: their inputs, the op's input sums, hold for the whole op (_sweep_inputs).
        held = {"held": True} if self.lean else {}
        rsqrt_ff = rsqrt_fb = None
        if not self.stored_norms:
            m.submodules.rsqrt_ff = rsqrt_ff = Rsqrt(
                sq_bits=w.sq, index_bits=fmt.rsqrt_index_bits, frac_bits=fmt.rsqrt_frac_bits,
                **held)
            m.submodules.rsqrt_fb = rsqrt_fb = Rsqrt(
                sq_bits=w.sq, index_bits=fmt.rsqrt_index_bits, frac_bits=fmt.rsqrt_frac_bits,
                **held)
        m.submodules.sweep = sweep = Sweep(
            prog, product_latency=lanes.side_latency if shared else None, lean=self.lean,
            **({"tag_memory": True} if self.tag_memory else {}),
            # Lean and shared: GAP spaces the passes (checked by _check_latencies).
            **({"spaced_passes": True} if self.lean and shared else {}))
        m.submodules.buffer = buffer = FeedbackBuffer(depth=total, width=w.act)
        m.submodules.goodness = goodness = GoodnessDatapath(
            labels=K, lanes=G, state_bits=w.state, weight_bits=w.weight,
            score_bits=w.score, product_latency=lanes.side_latency if shared else None,
            operand_bits=SIDE_BITS, lean=self.lean and shared,
            **({"fused_relu": True} if self.lean and shared else {}))
        m.submodules.argmax = argmax = Argmax(labels=K, score_bits=w.score,
                                              read_port=self.score_port_enabled)
        m.submodules.sequencer = seq = Sequencer(
            prog, **({"stored_norms": True} if self.stored_norms else {}))
        m.submodules.memories = memories = self.memories
        # Every depth is at least 2: a one-entry memory has a zero-width address, which
        # Verilog spells [-1:0].
        m.submodules.image_mem = image_mem = memory.Memory(
            shape=unsigned(w.input), depth=max(2, D), init=[], attrs=COLLISIONS_UNUSED)
        m.submodules.pre_mem = pre_mem = memory.Memory(
            shape=signed(w.state), depth=max(2, *config.hidden), init=[],
            attrs=COLLISIONS_UNUSED)
        return _Units(lanes=lanes, rsqrt_ff=rsqrt_ff, rsqrt_fb=rsqrt_fb, sweep=sweep,
                      buffer=buffer, goodness=goodness, argmax=argmax, seq=seq,
                      memories=memories, image_mem=image_mem, pre_mem=pre_mem)

    def _sequencer_ports(self, m: Module, units: _Units) -> None:
        """Connect the sequencer to the image stream, the model memories and their loads,
        and the result stream (whose record is the scores, the argmax's label and the
        sequencer's cycle count)."""
        seq, memories = units.seq, units.memories
        K, w = self.model.config.num_classes, self.program.widths
        wiring.connect(m, wiring.flipped(self.image), seq.image)
        wiring.connect(m, seq.image_write, units.image_mem.write_port())
        wiring.connect(m, memories.ops, seq.ops)
        if self.weights != "rom":
            wiring.connect(m, wiring.flipped(self.load), memories.load)
            m.d.comb += memories.accept.eq(seq.accept_load)
        if self.banks == 2:
            m.d.comb += memories.bank.eq(self.bank)
        m.d.comb += [self.phase.eq(seq.phase), self.busy.eq(seq.busy),
                     self.result.valid.eq(seq.done.valid), seq.done.ready.eq(self.result.ready)]
        result = Signal(result_layout(K, w.score))
        m.d.comb += [self.result.payload.eq(result), result.scores.eq(units.goodness.scores),
                     result.label.eq(units.argmax.label), result.cycles.eq(seq.done.payload)]

    def _sweep_inputs(self, m: Module, units: _Units) -> tuple:
        """Drive the sweep from the sequencer's op, the lanes' sums and the reciprocals of
        the op's inputs, and its writes into the loop-feedback buffer; returns those
        reciprocals, (r, sh / 2) of the feed-forward input and of the feedback."""
        seq, sweep, lanes, buffer = units.seq, units.sweep, units.lanes, units.buffer
        fmt, op = self.model.fmt, seq.op
        # The reciprocals of the op's inputs: stable for the whole op (sq changes only in
        # FINISH), so the units' registered outputs are used directly.
        first_layer = is_zero(op.layer)
        unit_r = 1 << fmt.rsqrt_frac_bits
        if self.stored_norms:
            ff_r, ff_half, fb_r, fb_half = self._stored_norms(m, seq, sweep)
        else:
            rsqrt_ff, rsqrt_fb = units.rsqrt_ff, units.rsqrt_fb
            m.d.comb += [rsqrt_ff.sq.eq(seq.ff_sq), rsqrt_fb.sq.eq(seq.fb_sq)]
            ff_r, ff_half = rsqrt_ff.r, rsqrt_ff.sh >> 1
            fb_r, fb_half = rsqrt_fb.r, rsqrt_fb.sh >> 1
        m.d.comb += [
            sweep.ff_r.eq(Mux(first_layer, unit_r, ff_r)),
            sweep.ff_shift.eq(op.ff_shift + Mux(first_layer, 0, ff_half)),
            sweep.fb_r.eq(fb_r), sweep.fb_shift.eq(op.fb_shift + fb_half),
            sweep.out_off.eq(op.out_off), sweep.bank.eq(op.bank),
            sweep.tag.eq(seq.tag), seq.free.eq(sweep.free),
            lanes.last.eq(sweep.last), sweep.acc.eq(lanes.out),
            sweep.clear_sq.eq(seq.clear_sq), seq.sq.eq(sweep.sq),
            buffer.write_en.eq(sweep.buffer.en),
            buffer.write_bank.eq(sweep.buffer.bank),
            buffer.write_addr.eq(sweep.buffer.addr),
            buffer.write_data.eq(sweep.buffer.data),
        ]
        return ff_r, ff_half, fb_r, fb_half

    def _bias_and_store(self, m: Module, units: _Units) -> None:
        """The bias memory's read port to the sweep; with ``store_bits``, the forward
        fields of the stored words and the ``store`` port's claim and hold."""
        memories, sweep, seq = units.memories, units.sweep, units.seq
        f = self.program.fine_bits
        store = self.store if self.store_bits is not None else None
        if store is None:
            wiring.connect(m, memories.bias, sweep.bias)
        else:
            # The forward pass reads the top bits of the stored words; the training engine
            # claims the read ports while the core idles.
            m.d.comb += [memories.bias.en.eq(1),
                         memories.bias.addr.eq(Mux(store.claim, store.bias_addr,
                                                   sweep.bias.addr)),
                         sweep.bias.data.eq(memories.bias.data[f:]),
                         store.bias_data.eq(memories.bias.data),
                         store.weight_data.eq(memories.weights.data),
                         store.label_data.eq(memories.labels.data),
                         seq.hold.eq(store.hold)]

    def _scan(self, m: Module, units: _Units) -> tuple:
        """The label scan: the sequencer's (pre-activation, label weights) reads into the
        goodness datapath, its scores into the argmax; returns the pre-activation read and
        whether this cycle scans a neuron's first label group (for ``observe``)."""
        seq, memories, goodness = units.seq, units.memories, units.goodness
        G = self.program.label_lanes
        store = self.store if self.store_bits is not None else None
        pre_read = units.pre_mem.read_port()
        scan_valid = Signal()
        scan_group_d = Signal.like(seq.scan_group)
        m.d.sync += [scan_valid.eq(seq.scan_issue), scan_group_d.eq(seq.scan_group)]
        m.d.comb += [
            pre_read.addr.eq(seq.pre_addr),
            memories.labels.addr.eq(seq.label_addr if store is None
                                    else Mux(store.claim, store.label_addr, seq.label_addr)),
            goodness.clear.eq(seq.clear_scores),
            goodness.add.eq(seq.add_score.en),
            goodness.add_label.eq(seq.add_score.label),
            goodness.add_value.eq(seq.add_score.value),
            goodness.en.eq(scan_valid),
            goodness.pre.eq(pre_read.data),
            goodness.u.eq(self._top_fields(memories.labels.data, G)),
            goodness.group.eq(scan_group_d),
            units.argmax.scores.eq(goodness.scores),
            units.argmax.start.eq(seq.start_argmax),
            seq.argmax_done.eq(units.argmax.done),
        ]
        return pre_read.data, scan_valid & is_zero(scan_group_d)

    def _norms_port(self, m: Module, units: _Units, input_norms: tuple) -> None:
        """Drive ``norms`` with the reciprocals of the op's inputs (:meth:`_sweep_inputs`):
        the kept (r, sh / 2) with stored norms, else the two units' outputs."""
        if self.stored_norms:
            ff_r, ff_half, fb_r, fb_half = input_norms
            m.d.comb += [self.norms.ff_r.eq(ff_r), self.norms.ff_sh.eq(ff_half << 1),
                         self.norms.fb_r.eq(fb_r), self.norms.fb_sh.eq(fb_half << 1)]
        else:
            rsqrt_ff, rsqrt_fb = units.rsqrt_ff, units.rsqrt_fb
            m.d.comb += [self.norms.ff_r.eq(rsqrt_ff.r), self.norms.ff_sh.eq(rsqrt_ff.sh),
                         self.norms.fb_r.eq(rsqrt_fb.r), self.norms.fb_sh.eq(rsqrt_fb.sh)]

    def _observe(self, m: Module, seq: Sequencer, sweep: Sweep, pre, scan) -> None:
        """Drive ``observe`` (the training engine's view of the forward pass): ``scan``
        (the first label group of a scanned neuron, with its pre-activation ``pre``),
        that neuron's index a cycle late as the pre-activation read, the sweep's writes,
        the op fetches."""
        neuron_d = Signal.like(seq.pre_addr)
        m.d.sync += neuron_d.eq(seq.pre_addr)
        m.d.comb += [
            self.observe.scan.eq(scan),
            self.observe.layer.eq(seq.op.layer), self.observe.neuron.eq(neuron_d),
            self.observe.pre.eq(pre),
            self.observe.act.eq(sweep.buffer.en), self.observe.act_bank.eq(sweep.buffer.bank),
            self.observe.act_addr.eq(sweep.buffer.addr),
            self.observe.pre_write.eq(sweep.pre.en), self.observe.pre_addr.eq(sweep.pre.addr),
            self.observe.pre_data.eq(sweep.pre.data),
            self.observe.fetch.eq(seq.fetch), self.observe.op_index.eq(seq.op_index),
            self.observe.act_data.eq(sweep.buffer.data),
        ]

    def _stored_norms(self, m: Module, seq: Sequencer, sweep: Sweep) -> tuple:
        """``stored_norms``: the reciprocal square root of each finished layer's sum of
        squares, kept per layer that an op reads; returns (r, sh / 2) of the running
        op's feed-forward input and of its feedback."""
        prog, fmt, w = self.program, self.model.fmt, self.program.widths
        op = seq.op
        ff_reads, fb_reads = prog.norm_reads
        # A core whose ops read one layer's norm (FFDL and FFL on two layers: the digits
        # and MNIST builds) keeps it in the unit's output registers, updated only when
        # that layer finishes: no register fed by the table's block RAM.
        single = len(ff_reads | fb_reads) == 1
        m.submodules.rsqrt = rsqrt = Rsqrt(
            sq_bits=w.sq, index_bits=fmt.rsqrt_index_bits, frac_bits=fmt.rsqrt_frac_bits,
            held=True, input_register=False, **({"keep": True} if single else {}))
        # The sweep's sum is a register, final in FINISH and held until the next op is
        # decoded (two cycles at least: FINISH, FETCH), as the unit needs.
        m.d.comb += rsqrt.sq.eq(sweep.sq)
        kept = {}
        if single:
            (layer,) = ff_reads | fb_reads
            # The table is read rsqrt.latency - 1 cycles after that layer's FINISH.
            strobe = seq.finish & equals(op.layer, layer)
            for i in range(rsqrt.latency - 1):
                delayed = Signal(name=f"norm_strobe_{i}")
                m.d.sync += delayed.eq(strobe)
                strobe = delayed
            m.d.comb += rsqrt.update.eq(strobe)
            kept[layer] = (rsqrt.r, rsqrt.sh[1:])
        else:
            # Its (r, sh) come rsqrt.latency cycles after FINISH, when the next op may
            # run: the finished layer waits in a register, FINISH's strobe in a delay line.
            target = Signal.like(op.layer)
            with m.If(seq.finish):
                m.d.sync += target.eq(op.layer)
            strobe = seq.finish
            for i in range(rsqrt.latency):
                delayed = Signal(name=f"norm_strobe_{i}")
                m.d.sync += delayed.eq(strobe)
                strobe = delayed
            # One (r, sh / 2) per layer read, its latest (Program.norm_reads: a read never
            # needs the other loop bank's, nor a value from before the layer ran); sh is
            # even (Rsqrt). A layer no op reads has no register.
            for layer in sorted(ff_reads | fb_reads):
                r = Signal.like(rsqrt.r, name=f"norm_r_l{layer}")
                half = Signal(len(rsqrt.sh) - 1, name=f"norm_sh_half_l{layer}")
                with m.If(strobe & equals(target, layer)):
                    m.d.sync += [r.eq(rsqrt.r), half.eq(rsqrt.sh[1:])]
                kept[layer] = (r, half)

        def pick(reads, field, offset):
            """The kept pair of layer ``field - offset`` among ``reads``: an op reads only
            those, so the last one needs no comparison (nor does a single one)."""
            if not reads:
                return Const(0, len(rsqrt.r)), Const(0, len(rsqrt.sh) - 1)
            layers = sorted(reads)
            r, half = kept[layers[-1]]
            for i in layers[:-1]:
                hit = equals(field, i + offset)
                r, half = Mux(hit, kept[i][0], r), Mux(hit, kept[i][1], half)
            return r, half

        # The feed-forward input of layer l > 0 is layer l - 1's output (the first
        # layer's is the image: the caller's unit reciprocal).
        ff_r, ff_half = pick(ff_reads, op.layer, 1)
        fb_r, fb_half = pick(fb_reads, op.fb_src, 0)
        return ff_r, ff_half, fb_r, fb_half

    def _side_operands(self, m: Module, lanes: MacLanes, sweep: Sweep,
                       goodness: GoodnessDatapath, seq: Sequencer) -> None:
        """Who multiplies on the lanes' side ports: with shared multipliers the sweep and
        the label scan, with ``lend`` the training engine (with both, each in turn)."""
        G = self.program.label_lanes
        if self.program.shared:
            # The borrowed lanes: the sweep's operands (lanes 0-2); in a scan the goodness
            # datapath has lanes 0..G-1. Operands count only while no element is given
            # to the lanes, which the sequencer guarantees during both.
            for p in range(lanes.shared_lanes):
                a, b = (sweep.a[p], sweep.b[p]) if p < SHARED_OPERANDS else (0, 0)
                if p < G:
                    a = Mux(seq.scanning, goodness.factor[p], a)
                    b = Mux(seq.scanning, (goodness.cofactor if goodness.lean
                                           else goodness.factor)[p], b)
                if self.lend_enabled:
                    # Lending too: the sweep and the scan have the lanes while the core
                    # runs, the engine while it idles or is held (accept_load), when
                    # neither runs nor is in flight (a pass's sweep and the scan end
                    # before the result; a hold comes after a result).
                    a = Mux(seq.accept_load, self.lend.a[p], a)
                    b = Mux(seq.accept_load, self.lend.b[p], b)
                m.d.comb += [lanes.a[p].eq(a), lanes.b[p].eq(b)]
            m.d.comb += [sweep.product[p].eq(lanes.side[p]) for p in range(SHARED_OPERANDS)]
            m.d.comb += [goodness.product[q].eq(lanes.side[q]) for q in range(G)]
            if self.lend_enabled:
                m.d.comb += self.lend.product.eq(lanes.side)

        elif self.lend_enabled:
            # Every lane's multiplier, for the training engine. MacLanes takes the side
            # operands only in cycles without an element, and the engine gives them only
            # while this core idles or is held before an op (the W pass runs between the
            # result, or the hold, and the next sample's first element): no cycle has two
            # users, and the engine's operands need no gate here.
            m.d.comb += [lanes.a.eq(self.lend.a), lanes.b.eq(self.lend.b),
                         self.lend.product.eq(lanes.side)]

    def _check_latencies(self, memories: ModelMemory, lanes: MacLanes, sweep: Sweep,
                         goodness: GoodnessDatapath) -> None:
        """Raise RuntimeError unless the closed form (rtl.program) follows the units."""
        prog = self.program
        # The last element issued in cycle c is in the accumulators in cycle
        # c + 1 + mac_drain (memory read, operand stages, the lanes): the sequencer's
        # waits and the sweep's hand-over count on it.
        if memories.weight_latency != 1 + prog.operand_stages:
            raise RuntimeError(f"Program.operand_stages is {prog.operand_stages}, but the "
                               f"weight store's latency is {memories.weight_latency}; it must "
                               f"be one memory read plus the operand stages")
        if lanes.held_sums and prog.pass_gap(0) < 2:
            raise RuntimeError(f"Held sums need two cycles without an element between "
                               f"passes; Program.pass_gap(0) is {prog.pass_gap(0)}")
        # A pass's tag comes pass_gap(0) + count + n_in cycles after the previous one's.
        if sweep.spaced_passes and prog.pass_gap(0) + 1 < sweep.pass_spacing(0):
            raise RuntimeError(f"Spaced passes need their tags {sweep.pass_spacing(0)} "
                               f"cycles apart plus the count; Program.pass_gap(0) + 1 is "
                               f"{prog.pass_gap(0) + 1}")
        for what, closed, unit in (
                ("Program.mac_drain", prog.mac_drain, prog.operand_stages + lanes.latency),
                ("SIDE_LATENCY", SIDE_LATENCY, lanes.side_latency),
                ("Program.scale_latency", prog.scale_latency, sweep.scale_latency),
                ("Program.sweep_drain", prog.sweep_drain, sweep.latency),
                # A fused ReLU's datapath is a stage shorter: the drain keeps the cycle,
                # so the closed forms (and every count) stay.
                ("Program.scan_drain", prog.scan_drain,
                 goodness.latency + goodness.fused_relu)):
            if closed != unit:
                raise RuntimeError(f"rtl.program's {what} is {closed}, but the unit's "
                                   f"latency is {unit}; the closed form must follow it")

    def _operand_stage(self, m: Module, seq: Sequencer, lanes: MacLanes,
                       memories: ModelMemory, image_mem: memory.Memory,
                       buffer: FeedbackBuffer) -> None:
        """The sequencer's element, read from memory, registered, to the lanes."""
        fmt, w = self.model.fmt, self.program.widths
        op = seq.op
        image_read = image_mem.read_port()
        # The input element's addresses follow the column in every cycle, whether the
        # MAC state issues it or holds it (a held element is read again): the decision
        # to hold stays off the address path, which it was the slowest path of on the
        # ULX3S-85F build.
        m.d.comb += [
            image_read.addr.eq(seq.column),
            buffer.read_bank.eq(Mux(seq.feedback, ~op.bank, op.bank)),
            buffer.read_addr.eq(Mux(seq.feedback, op.fb_off, op.in_off) + seq.column),
            memories.weights.addr.eq(seq.weight_addr if self.store_bits is None
                                     else Mux(self.store.claim, self.store.weight_addr,
                                              seq.weight_addr)),
        ]
        stage_valid = Signal()
        stage_first = Signal()
        stage_label = Signal()
        stage_hit = Signal()
        stage_from_image = Signal()
        m.d.sync += [stage_valid.eq(seq.element.valid), stage_first.eq(seq.element.first),
                     stage_label.eq(seq.element.label), stage_hit.eq(seq.element.hit),
                     stage_from_image.eq(seq.element.from_image)]
        pixel_value = Mux(stage_label, Mux(stage_hit, fmt.input_max, 0), image_read.data)
        # The operand stage: the chosen element registered beside the memories, so the
        # block RAM read and the choice are a cycle apart from the route to every lane
        # group. The weight store's address copies take the same cycle (its latency 2).
        # A deep weight store registers its parts' outputs too (latency 3): the element
        # takes a second stage to meet its weight.
        operand_valid, operand_first = stage_valid, stage_first
        operand = Mux(stage_from_image, pixel_value, buffer.read_data)
        for i in range(self.program.operand_stages):
            suffix = f"_{i}" if i else ""
            valid = Signal(name=f"operand_valid{suffix}")
            first = Signal(name=f"operand_first{suffix}")
            value = Signal(unsigned(w.mac_input), reset_less=True, name=f"operand{suffix}")
            m.d.sync += [valid.eq(operand_valid), first.eq(operand_first), value.eq(operand)]
            operand_valid, operand_first, operand = valid, first, value
        m.d.comb += [
            lanes.en.eq(operand_valid),
            lanes.first.eq(operand_first),
            lanes.x.eq(operand),
            lanes.w.eq(self._top_fields(memories.weights.data, self.program.lanes)),
        ]

    def _top_fields(self, word, count: int):
        """The forward fields of a memory word of ``count`` stored fields: the top
        ``weight`` bits (c >> f) of each."""
        prog = self.program
        stored, f = prog.stored_weight_bits, prog.fine_bits
        layout = data.ArrayLayout(signed(prog.widths.weight), count)
        return layout(Cat(word[i * stored + f:(i + 1) * stored] for i in range(count)))
