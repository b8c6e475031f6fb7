# amaranth: UnusedElaboratable=no
"""The sequencer's program: the operations one inference walks, and their memory images.

An inference is a short list of operations fixed at elaboration from the integer model:

- ``LAYER``: compute one layer at one iteration (FFL: at one candidate label), tile by
  tile of P neurons. Each tile runs a feed-forward pass (MAC over the layer's input) and,
  when the layer hears the loop, a feedback pass over the other bank of the loop-feedback
  buffer. Every pass hands its P accumulators to the sweep, which scales them one per
  cycle while the lanes already run the next pass (with shared multipliers, the sweep
  borrows the lanes' multipliers, so the next pass waits for it). FFCL's layer 1 after the first
  iteration skips its feed-forward pass: the scaled W_1 x products of the first iteration
  are kept per neuron and reused.
- ``SCAN``: the label scan of one layer (FFDL/FFCL), every read iteration.
- ``DONE``: argmax and the result.

The core's state machine executes these from a small ROM; this module also computes the
closed-form cycle count of the whole program and of each phase (docs/cycles.md), which
tests compare with the hardware counter and the core's ``phase`` output.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from amaranth import Shape, unsigned
from amaranth.lib import data

from golden.intmodel import IntModel
from rtl.mac_lanes import MacLanes
from rtl.normaliser import Rsqrt, Scaler, SplitScaler
from rtl.params import check_positive_int
from rtl.protocol import OpKind, Phase
from rtl.weight_store import weight_store_latency

__all__ = ["DONE", "LAYER", "OPERAND_STAGES", "PHASES", "PHASE_BITS", "SCAN", "Op", "Program",
           "Widths", "build_program", "pack_rows"]

#: The op kinds (:class:`rtl.protocol.OpKind`) by their short names.
LAYER, SCAN, DONE = OpKind.LAYER, OpKind.SCAN, OpKind.DONE

# Source of a layer's feature input.
SRC_IMAGE, SRC_ACT, SRC_CACHE = 1, 2, 3

# Fixed costs of the core's state machine, in cycles (see docs/cycles.md); the pipeline
# depths follow the units' latencies, which the core checks.
FETCH_DECODE = 2      # FETCH (op ROM address), DECODE (latch the op)
#: Registers between the memories' outputs and the lanes: the input element (pixel, label
#: or activation, chosen) and, in the weight store, the read address's copies. The
#: element then has a cycle to reach the lane groups across the part, and no register
#: drives every weight block RAM's address (each took 12-20 ns on the ULX3S-85F). A
#: weight store deeper than one block RAM takes a cycle more (its parts' output
#: registers), and so does the element: :attr:`Program.operand_stages` is the model's.
OPERAND_STAGES = 1
#: After a pass's last element is read from memory, until its products are all
#: accumulated (:attr:`Program.mac_drain` is the model's).
MAC_DRAIN = OPERAND_STAGES + MacLanes.LATENCY
#: Cycles from side operands to their product on a lane lent to other units.
SIDE_LATENCY = MacLanes.SIDE_LATENCY
# The sweep after the scaler: offset (kept feed-forward part + bias), sum, saturate; then
# the write and the activation's square.
SUM_STAGES = 3
#: Cycles at least between the sweeps of two passes back to back: a feedback sweep reads
#: a neuron's kept feed-forward part two cycles before it adds it, at the earliest in the
#: cycle the feed-forward sweep writes it. Only one-neuron tiles fed back from a layer of
#: one neuron are ever held by it.
SWEEP_SPACING = 2
LAYER_FINISH = 1      # store the layer's sum of squares (FFL: add it to a score)
SCAN_LATENCY = 4      # goodness with its own multipliers: inputs, ReLU, square, score

#: Codes of the core's ``phase`` output by name, one per kind of counted cycle
#: (:class:`rtl.protocol.Phase`, whose ``IDLE``, 0, is not counted: the core is idle or
#: offering its result): ``matrix_vector``, ``loop_feedback``, ``normalisation``,
#: ``label_scan``, ``control``.
PHASES = {phase.name.lower(): phase.value for phase in Phase if phase is not Phase.IDLE}
PHASE_BITS = Shape.cast(Phase).width


@dataclass(frozen=True)
class Widths:
    """Bit widths of the core's values, derived from the model's formats.

    Attributes
    ----------
    weight, state, act, input : int
        A signed weight, a signed pre-activation, an unsigned activation, a pixel.
    mac_input : int
        The unsigned MAC input element (pixel or activation).
    acc : int
        A signed accumulator that cannot overflow.
    sq : int
        A layer's sum of squared activations.
    score : int
        A label's goodness score.
    r : int
        An unsigned reciprocal square root (frac bits + 1).
    shift : int
        The scaler's right shift (constant plus half the normalising shift).
    """

    weight: int
    state: int
    act: int
    input: int
    mac_input: int
    acc: int
    sq: int
    score: int
    r: int
    shift: int


@dataclass(frozen=True)
class Op:
    """One operation of the program (field meanings in :func:`op_layout`)."""

    kind: OpKind
    layer: int = 0
    n_out: int = 0
    bank: int = 0
    ff_src: int = SRC_IMAGE
    ff_n_in: int = 0
    ff_wbase: int = 0
    ff_shift: int = 0
    in_off: int = 0
    label_block: int = 0
    label: int = 0
    fb_en: int = 0
    fb_src: int = 0
    fb_n_in: int = 0
    fb_wbase: int = 0
    fb_shift: int = 0
    fb_off: int = 0
    out_off: int = 0
    ffl_add: int = 0
    u_base: int = 0


@dataclass
class Program:
    """Everything the core is elaborated from: ops, memory images and widths."""

    model: IntModel
    lanes: int
    label_lanes: int
    ops: list[Op]
    weight_words: list[list[int]]          # per word: P signed (stored) weights
    bias: list[int]                        # per neuron (all layers): signed (stored) biases
    label_words: list[list[int]]           # per word: G signed (stored) label weights
    layer_offsets: list[int]
    widths: Widths
    prep: int = 0                          # cycles between DECODE and a layer's first pass
    shared: bool = False                   # scaler and squares borrow the MAC lanes' multipliers
    #: f: the memories hold stored weights of weight + f bits (biases state + f) and the
    #: forward pass reads their top bits (c >> f); 0 for an inference-only core.
    fine_bits: int = 0
    layer1_cache: bool = True              # FFCL layer 1 reuses its first W_1 x

    @property
    def weight_latency(self) -> int:
        """Cycles from the weight store's address to its word
        (:func:`rtl.weight_store.weight_store_latency` of the word count): 2, or 3 for a
        store deeper than one block RAM."""
        return _weight_latency(len(self.weight_words))

    @property
    def operand_stages(self) -> int:
        """Registers between the memories' outputs and the lanes
        (:data:`OPERAND_STAGES`, one more beside a deep weight store)."""
        return self.weight_latency - 1

    @property
    def mac_drain(self) -> int:
        """Cycles from a pass's last element read until its products are all accumulated:
        the operand stages and the lanes (:data:`MAC_DRAIN` for a store one block deep)."""
        return _mac_drain(len(self.weight_words))

    @property
    def stored_weight_bits(self) -> int:
        """Bits of a weight or label weight in the memories (B_w + f)."""
        return self.widths.weight + self.fine_bits

    @property
    def stored_bias_bits(self) -> int:
        """Bits of a bias in the memory (B_s + f)."""
        return self.widths.state + self.fine_bits

    @property
    def scale_latency(self) -> int:
        """Cycles from a swept accumulator to its scaled value (rtl.normaliser: Scaler,
        or SplitScaler, whose products come from the lanes)."""
        return (SplitScaler.latency_for(SIDE_LATENCY) if self.shared else Scaler.LATENCY)

    @property
    def square_latency(self) -> int:
        """Cycles from an activation to its square: a register of its own, or the
        borrowed lane's."""
        return SIDE_LATENCY if self.shared else 1

    @property
    def sweep_drain(self) -> int:
        """Cycles from the last swept accumulator until its square is in the layer's sum
        of squares: the scaler, offset, sum, saturation, the square, the sum."""
        return self.scale_latency + SUM_STAGES + self.square_latency

    @property
    def scan_drain(self) -> int:
        """Cycles from the last scanned element until its square is in the scores."""
        return SCAN_LATENCY + (SIDE_LATENCY if self.shared else 0)

    def pass_gap(self, swept: int) -> int:
        """Shared multipliers only: cycles between a pass's last element and the next
        pass's first, while the sweep of ``swept`` neurons borrows the lanes (the last
        activation square takes its lane's multiplier in the cycle before the next pass's
        first element reaches the lanes)."""
        # Both passes' elements take the operand stages to the lanes, so only the
        # lanes' own latency counts.
        return MacLanes.LATENCY + swept + self.scale_latency + SUM_STAGES - 1

    @property
    def groups(self) -> int:
        """ceil(K / G): label groups per neuron in the scan."""
        return -(-self.model.config.num_classes // self.label_lanes)

    @property
    def partial_entries(self) -> int:
        """Entries of the core's memory of scaled feed-forward products (one per neuron
        of every layer; none when no layer hears the loop)."""
        if any(op.kind == LAYER and op.fb_en for op in self.ops):
            return sum(self.model.config.hidden)
        return 0

    @property
    def norm_reads(self) -> tuple[frozenset, frozenset]:
        """The layers whose output norm the ``LAYER`` ops read: as the feed-forward input
        (the layer below, this iteration's) and as the feedback (the source, the previous
        iteration's) of an op whose feedback pass runs (``fb_en``).

        Each read is of the layer's output written earlier in the same inference, and of
        its latest: a feedback source is above the layer that hears it
        (:meth:`golden.config.ModelConfig.feedback_source`), so it has not run yet in the
        iteration; the loop banks need not be told apart (a core keeps one norm per
        layer read, and no reset value is ever read). Raises RuntimeError for a program
        in which that fails.
        """
        ff = frozenset(op.layer - 1 for op in self.ops if op.kind == LAYER and op.layer > 0)
        fb = frozenset(op.fb_src for op in self.ops if op.kind == LAYER and op.fb_en)
        # The bank each layer last wrote in the inference: every read must find the bank
        # it reads.
        latest: dict[int, int] = {}
        for index, op in enumerate(self.ops):
            if op.kind != LAYER:
                continue
            reads = ([(op.layer - 1, op.bank)] if op.layer > 0 else []) + \
                ([(op.fb_src, 1 - op.bank)] if op.fb_en else [])
            for layer, bank in reads:
                if layer not in latest:
                    raise RuntimeError(f"op {index} (layer {op.layer}, bank {op.bank}) reads "
                                       f"layer {layer}'s norm before the layer ran")
                if latest[layer] != bank:
                    raise RuntimeError(f"op {index} (layer {op.layer}, bank {op.bank}) reads "
                                       f"layer {layer}'s norm of bank {bank}, but the layer "
                                       f"last wrote bank {latest[layer]}")
            latest[op.layer] = op.bank
        return ff, fb

    def tiles(self, n: int) -> int:
        """ceil(n / P)."""
        return -(-n // self.lanes)

    def passes(self, op: Op) -> list[tuple[int, int, bool]]:
        """The MAC passes of a ``LAYER`` op in order: (elements, neurons swept, feedback).

        Per tile of P neurons (the last one may be narrower): the feed-forward pass unless
        the op reuses cached products, then the feedback pass when the layer hears the
        loop.
        """
        passes = []
        for tile in range(self.tiles(op.n_out)):
            swept = min(self.lanes, op.n_out - tile * self.lanes)
            if op.ff_src != SRC_CACHE:
                passes.append((op.ff_n_in, swept, False))
            if op.fb_en:
                passes.append((op.fb_n_in, swept, True))
        return passes

    # -- the closed-form cycle count ----------------------------------------------------
    def op_phases(self, op: Op) -> dict[str, int]:
        """Cycles the core spends on ``op``, per phase of :data:`PHASES` (docs/cycles.md)."""
        counts = dict.fromkeys(PHASES, 0)
        counts["control"] = FETCH_DECODE
        if op.kind == DONE:
            # DECODE starts the argmax, which takes one cycle per label.
            counts["control"] += self.model.config.num_classes
        elif op.kind == SCAN:
            counts["label_scan"] = op.n_out * self.groups + self.scan_drain
        else:
            passes = self.passes(op)
            for elements, _, feedback in passes:
                counts["loop_feedback" if feedback else "matrix_vector"] += elements
            if self.shared:
                # Every pass but the last waits for its sweep to give the lanes back.
                held = sum(self.pass_gap(swept) for _, swept, _ in passes[:-1])
            else:
                # A pass's last element waits until the sweep of the previous pass has
                # taken its last accumulator: a pass shorter than the previous tile is
                # stretched.
                held = sum(max(0, max(before[1], SWEEP_SPACING) - after[0])
                           for before, after in pairwise(passes))
            counts["normalisation"] = (self.prep + held + self.mac_drain + passes[-1][1]
                                       + self.sweep_drain + LAYER_FINISH)
        return counts

    def op_cycles(self, op: Op) -> int:
        """Cycles the core spends on ``op`` (docs/cycles.md)."""
        return sum(self.op_phases(op).values())

    def phase_cycles(self) -> dict[str, int]:
        """Cycles of one inference per phase of :data:`PHASES`; they add up to
        :meth:`cycles`, and the core's ``phase`` output shows the same split."""
        totals = dict.fromkeys(PHASES, 0)
        for op in self.ops:
            for name, count in self.op_phases(op).items():
                totals[name] += count
        return totals

    def cycles(self) -> int:
        """Cycles of one inference, from the last pixel accepted to the result."""
        return sum(self.op_cycles(op) for op in self.ops)

    def mac_cycles(self) -> int:
        """Cycles in which the MAC lanes take a new element (the matrix-vector work)."""
        phases = self.phase_cycles()
        return phases["matrix_vector"] + phases["loop_feedback"]

    def matrix_cycles(self) -> int:
        """Cycles of the matrix-vector phases: the LAYER ops without their fetch, decode,
        prep and finish (MAC passes, held passes and the last sweep's drain)."""
        return sum(self.op_cycles(op) - FETCH_DECODE - self.prep - LAYER_FINISH
                   for op in self.ops if op.kind == LAYER)


def pack_rows(matrix, lanes: int) -> list[list[int]]:
    """Tile-major words: word j * n_in + c holds M[j P + p, c] for p < P (0 beyond N).

    The layout the weight memories hold and the MAC lanes read; the training core writes
    its stored words in the same order.
    """
    n_out, n_in = matrix.shape
    words = []
    for tile in range(-(-n_out // lanes)):
        for c in range(n_in):
            words.append([int(matrix[tile * lanes + p, c]) if tile * lanes + p < n_out else 0
                          for p in range(lanes)])
    return words


def _weight_latency(weight_words: int) -> int:
    """The weight store's latency for ``weight_words`` words (a store has at least 2)."""
    return weight_store_latency(max(2, weight_words))


def _mac_drain(weight_words: int) -> int:
    """:attr:`Program.mac_drain` for a store of ``weight_words`` words: its operand stages
    (the store's latency less the memory's read) and the lanes. ``build_program`` needs it
    before the program exists."""
    return _weight_latency(weight_words) - 1 + MacLanes.LATENCY


def build_program(model: IntModel, *, lanes: int, label_lanes: int | None = None,
                  shared: bool = False, fine_bits: int = 0,
                  layer1_cache: bool = True) -> Program:
    """The program and memory images of ``model`` on ``lanes`` MAC lanes.

    Parameters
    ----------
    model : IntModel
        The integer model.
    lanes : int
        P, MAC lanes.
    label_lanes : int, optional
        G, labels scanned per cycle; default every label (K).
    shared : bool
        The scaler, the activation square and the G goodness squares borrow the MAC
        lanes' 16 x 16 multipliers (lanes 0 and 1 scale, lane 2 squares, lanes 0..G-1
        scan): the core then needs no multipliers beyond the lanes, at the cost of the
        overlap of sweep and next pass. Needs P >= 3, G <= P and widths that fit.
    fine_bits : int
        f: the memory images hold the stored weights a trainer starts from, (w << f) +
        2^(f-1) for every weight, label weight and bias (w with f = 0, the default), and
        the forward pass reads their top bits (:attr:`Program.fine_bits`).
    layer1_cache : bool
        FFCL: layer 1 reuses its first iteration's scaled W_1 x products (default True).
        False when W_1 changes between iterations (training with every iteration's
        loss): every iteration then runs layer 1's feed-forward pass.

    Raises
    ------
    ValueError
        For a configuration the hardware does not implement (FFCL feedback into
        goodness), naming the alternative; with ``shared``, for too few lanes or values
        too wide for the lanes' multipliers.
    """
    config = model.config
    label_lanes = _check_build_arguments(config, lanes, label_lanes, fine_bits, layer1_cache)
    offsets = [sum(config.hidden[:i]) for i in range(config.num_layers)]
    weight_words, ff_base, fb_base = _weight_words(model, lanes, fine_bits)
    label_words, u_base = _label_words(model, label_lanes, fine_bits)
    bias = [int(_stored(v, fine_bits)) for layer in model.layers for v in layer.b]
    ops = _ops(model, _Bases(offsets=offsets, ff=ff_base, fb=fb_base, u=u_base),
               layer1_cache)
    widths = _widths(model, ops)
    prep = _prep(model, widths, len(weight_words))
    if not isinstance(shared, bool):
        raise TypeError(f"Shared multipliers must be True or False, not {shared!r}")
    if shared:
        _check_shared(lanes, label_lanes, widths)
    return Program(model=model, lanes=lanes, label_lanes=label_lanes, ops=ops,
                   weight_words=weight_words, bias=bias, label_words=label_words,
                   layer_offsets=offsets, widths=widths, prep=prep, shared=shared,
                   fine_bits=fine_bits, layer1_cache=layer1_cache)


def _check_build_arguments(config, lanes: int, label_lanes: int | None, fine_bits: int,
                           layer1_cache: bool) -> int:
    """Raise as :func:`build_program` does for its arguments but ``shared`` (checked once
    the widths are known); returns G, ``label_lanes`` or every label."""
    check_positive_int("Lane count", lanes)
    K = config.num_classes
    label_lanes = K if label_lanes is None else label_lanes
    check_positive_int("Label lane count", label_lanes)
    if label_lanes > K:
        raise ValueError(f"Label lane count must be at most the label count {K}, "
                         f"not {label_lanes}")
    if config.algo == "ffcl" and config.feedback == "goodness":
        raise ValueError("the RTL core implements FFCL with feedback 'state' only; "
                         "feedback 'goodness' runs in the golden models")
    check_positive_int("Fine bit count", fine_bits, minimum=0)
    if not isinstance(layer1_cache, bool):
        raise TypeError(f"Layer 1 cache must be True or False, not {layer1_cache!r}")
    return label_lanes


def _stored(values, fine_bits: int):
    """A trainer's starting stored values of forward ``values`` (rule.md: the middle
    of the forward code)."""
    half = (1 << fine_bits) >> 1
    return (values << fine_bits) + half


def _weight_words(model: IntModel, lanes: int,
                  fine_bits: int) -> tuple[list[list[int]], list[int], list[int]]:
    """The weight memory's words (per layer its W rows, then its V rows, ``lanes`` weights
    a word) and each layer's first W and first V word."""
    weight_words: list[list[int]] = []
    ff_base, fb_base = [], []
    for layer in model.layers:
        ff_base.append(len(weight_words))
        weight_words += pack_rows(_stored(layer.W, fine_bits), lanes)
        fb_base.append(len(weight_words))
        if layer.V is not None:
            weight_words += pack_rows(_stored(layer.V, fine_bits), lanes)
    return weight_words, ff_base, fb_base


def _label_words(model: IntModel, label_lanes: int,
                 fine_bits: int) -> tuple[list[list[int]], list[int]]:
    """The label memory's words (per neuron of a scored layer its K label weights,
    ``label_lanes`` a word, the last word zero-padded) and each layer's first word."""
    K = model.config.num_classes
    groups = -(-K // label_lanes)
    label_words: list[list[int]] = []
    u_base = []
    for layer in model.layers:
        u_base.append(len(label_words))
        if layer.U is None:
            continue
        for i in range(layer.U.shape[0]):
            for g in range(groups):
                label_words.append([int(_stored(layer.U[i, g * label_lanes + q], fine_bits))
                                    if g * label_lanes + q < K else 0
                                    for q in range(label_lanes)])
    return label_words, u_base


@dataclass(frozen=True)
class _Bases:
    """Where each layer's data starts: its activations in the loop-feedback buffer
    (``offsets``), its W and V words (``ff``, ``fb``) and its label words (``u``)."""

    offsets: list[int]
    ff: list[int]
    fb: list[int]
    u: list[int]


def _ops(model: IntModel, bases: _Bases, layer1_cache: bool) -> list[Op]:
    """The sequencer's program: FFL's layers once per candidate label, else every
    iteration's layers, each followed by its SCAN where the readout reads it; then DONE."""
    config = model.config
    offsets, ff_base, fb_base, u_base = bases.offsets, bases.ff, bases.fb, bases.u

    def layer_op(i: int, t: int, label: int = 0) -> Op:
        layer = model.layers[i]
        source = config.feedback_source(i)
        # Layer 1's feed-forward products are the same at every iteration: from the
        # second on they are reused, scaled, from the first (only for a layer that hears
        # the loop, whose feedback pass then gives the sweep its accumulators).
        cached = (config.algo == "ffcl" and i == 0 and t > 0 and source is not None
                  and layer1_cache)
        return Op(
            kind=LAYER, layer=i, n_out=config.hidden[i], bank=t % 2,
            ff_src=SRC_CACHE if cached else (SRC_IMAGE if i == 0 else SRC_ACT),
            ff_n_in=layer.W.shape[1], ff_wbase=ff_base[i], ff_shift=model.shift(layer.w_exp),
            in_off=offsets[i - 1] if i > 0 else 0,
            label_block=int(config.algo == "ffl" and i == 0), label=label,
            # Iteration 1's feedback is n(0) = 0: the pass is skipped, not computed.
            fb_en=int(source is not None and t > 0),
            fb_src=source or 0,
            fb_n_in=layer.V.shape[1] if layer.V is not None else 0,
            fb_wbase=fb_base[i],
            fb_shift=model.shift(layer.v_exp) if layer.v_exp is not None else 0,
            fb_off=offsets[source] if source is not None else 0,
            out_off=offsets[i],
            ffl_add=int(config.algo == "ffl" and i in config.scoring_layers()),
        )

    ops: list[Op] = []
    if config.algo == "ffl":
        for k in range(config.num_classes):
            ops += [layer_op(i, 0, k) for i in range(config.num_layers)]
    else:
        for t in range(config.loops):
            read = config.readout == "sum" or t == config.loops - 1
            for i in range(config.num_layers):
                ops.append(layer_op(i, t))
                if read:
                    ops.append(Op(kind=SCAN, layer=i, n_out=config.hidden[i],
                                  u_base=u_base[i]))
    ops.append(Op(kind=DONE))
    return ops


def _widths(model: IntModel, ops: list[Op]) -> Widths:
    """The datapath widths of ``model`` running ``ops``."""
    fmt = model.fmt
    sq_bits = model.sq_bits()
    # The largest shift: the biggest constant plus half the largest normalising shift.
    max_const = max([op.ff_shift for op in ops] + [op.fb_shift for op in ops] + [0])
    return Widths(
        weight=fmt.weight_bits,
        state=fmt.state_bits,
        act=fmt.act_bits,
        input=fmt.input_bits,
        mac_input=max(fmt.input_bits, fmt.act_bits),
        acc=model.max_acc_bits(),
        sq=sq_bits,
        score=model.score_bits(),
        r=fmt.rsqrt_frac_bits + 1,
        shift=(max_const + (sq_bits + 1) // 2 + 1).bit_length(),
    )


def _prep(model: IntModel, widths: Widths, weight_words: int) -> int:
    """:attr:`Program.prep`: cycles between DECODE and a layer's first pass, for a weight
    store of ``weight_words`` words."""
    fmt = model.fmt
    # The reciprocal square roots of a layer's inputs settle from the cycle after DECODE;
    # the first sweep comes mac_drain + 1 cycles after the first pass starts at the
    # earliest, so only a slower table needs extra cycles before the pass.
    rsqrt = Rsqrt(sq_bits=widths.sq, index_bits=fmt.rsqrt_index_bits,
                  frac_bits=fmt.rsqrt_frac_bits)
    return max(0, rsqrt.latency - (_mac_drain(weight_words) + 1))


#: Width of a MAC lane multiplier's signed inputs when other units borrow it (SB_MAC16).
SIDE_BITS = 16


def _check_shared(lanes: int, label_lanes: int, widths: Widths) -> None:
    """Raise ValueError unless the scaler and squares can borrow the lanes' multipliers."""
    if lanes < 3:
        raise ValueError(f"shared multipliers need at least 3 MAC lanes (two scale, one "
                         f"squares), not {lanes}; use more lanes or dedicated multipliers")
    if label_lanes > lanes:
        raise ValueError(f"shared multipliers scan on the MAC lanes: {label_lanes} label "
                         f"lanes need as many MAC lanes, the core has {lanes}")
    # Largest width each use allows (SplitScaler, GoodnessDatapath, MacLanes).
    limits = {"weight": SIDE_BITS, "state": SIDE_BITS, "mac_input": SIDE_BITS - 1,
              "acc": 2 * SIDE_BITS - 1, "r": SIDE_BITS - 1}
    for name, limit in limits.items():
        if getattr(widths, name) > limit:
            raise ValueError(f"shared multipliers take {SIDE_BITS}-bit signed inputs: the "
                             f"model's {name} width {getattr(widths, name)} exceeds {limit}; use "
                             f"dedicated multipliers")


def op_layout(program: Program) -> data.StructLayout:
    """The bit layout of one op in the core's program ROM."""
    config = program.model.config

    def r(n: int) -> unsigned:
        return unsigned(max(1, int(n).bit_length()))

    max_n = max(max(config.hidden), config.input_size + config.num_classes)
    words = max(1, len(program.weight_words))
    return data.StructLayout({
        "kind": OpKind,
        "layer": r(config.num_layers),
        "n_out": r(max_n),
        "bank": 1,
        "ff_src": 2,
        "ff_n_in": r(max_n),
        "ff_wbase": r(words),
        "ff_shift": r(1 << program.widths.shift),
        "in_off": r(sum(config.hidden)),
        "label_block": 1,
        "label": r(config.num_classes),
        "fb_en": 1,
        "fb_src": r(config.num_layers),
        "fb_n_in": r(max_n),
        "fb_wbase": r(words),
        "fb_shift": r(1 << program.widths.shift),
        "fb_off": r(sum(config.hidden)),
        "out_off": r(sum(config.hidden)),
        "ffl_add": 1,
        "u_base": r(max(1, len(program.label_words))),
    })
