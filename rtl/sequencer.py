"""The sequencer's program: the operations one inference walks, and their memory images.

An inference is a short list of operations fixed at elaboration from the integer model:

- ``LAYER``: compute one layer at one iteration (FFL: at one candidate label), tile by
  tile of P neurons. Each tile runs a feed-forward pass (MAC over the layer's input, or,
  for FFCL's layer 1 after the first iteration, a load of the cached W_1 x products) and,
  when the layer hears the loop, a feedback pass over the other bank of the loop-feedback
  buffer; each pass ends with a sweep that scales the P accumulators one per cycle.
- ``SCAN``: the label scan of one layer (FFDL/FFCL), every read iteration.
- ``DONE``: argmax and the result.

The core's state machine executes these from a small ROM; this module also computes the
closed-form cycle count of the whole program (docs/cycles.md), which tests compare with
the hardware counter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth import unsigned
from amaranth.lib import data

from golden.intmodel import IntModel
from rtl.params import check_positive_int

__all__ = ["LAYER", "SCAN", "DONE", "Op", "Program", "build_program"]

# Nonzero codes: a comparison with zero lowers to a lint-unclean logical NOT.
LAYER, SCAN, DONE = 1, 2, 3

# Source of a layer's feature input.
SRC_IMAGE, SRC_ACT, SRC_CACHE = 1, 2, 3

# Fixed costs of the core's state machine, in cycles (see docs/cycles.md).
FETCH_DECODE = 2      # FETCH (op ROM address), DECODE (latch the op)
# PREP: the op's sums of squares enter the Rsqrt units. Their results are first used by
# the first sweep, which comes LAYER_PREP + 2 cycles after PREP begins at the earliest
# (PASS, then CACHE_LOAD), so one cycle covers an Rsqrt latency of up to 3; rtl.core
# checks Rsqrt.LATENCY against this bound.
LAYER_PREP = 1
MAC_DRAIN = 2         # a MAC pass's last element reaches the accumulators
CACHE_LOAD = 2        # read the cached products of a tile and load the accumulators
SWEEP_DRAIN = 4       # the last scaled neuron reaches the buffers and sum of squares
LAYER_FINISH = 1      # store the layer's sum of squares (FFL: add it to a score)
SCAN_DRAIN = 3        # the last square reaches the score registers


@dataclass(frozen=True)
class Op:
    """One operation of the program (field meanings in :func:`op_layout`)."""

    kind: int
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
    cache_write: int = 0
    ffl_add: int = 0
    u_base: int = 0


@dataclass
class Program:
    """Everything the core is elaborated from: ops, memory images and widths."""

    model: IntModel
    lanes: int
    label_lanes: int
    ops: list[Op]
    weight_words: list[list[int]]          # per word: P signed weights
    bias: list[int]                        # per neuron (all layers): state_bits signed
    label_words: list[list[int]]           # per word: G signed label weights
    layer_offsets: list[int]
    cache_tiles: int
    widths: dict[str, int] = field(default_factory=dict)

    @property
    def groups(self) -> int:
        """ceil(K / G): label groups per neuron in the scan."""
        return -(-self.model.config.num_classes // self.label_lanes)

    def tiles(self, n: int) -> int:
        """ceil(n / P)."""
        return -(-n // self.lanes)

    # -- the closed-form cycle count ----------------------------------------------------
    def op_cycles(self, op: Op) -> int:
        """Cycles the core spends on ``op`` (docs/cycles.md)."""
        if op.kind == DONE:
            # DECODE starts the argmax, which takes one cycle per label.
            return FETCH_DECODE + self.model.config.num_classes
        if op.kind == SCAN:
            return FETCH_DECODE + op.n_out * self.groups + SCAN_DRAIN
        ff = CACHE_LOAD if op.ff_src == SRC_CACHE else op.ff_n_in + MAC_DRAIN
        fb = op.fb_n_in + MAC_DRAIN if op.fb_en else 0
        passes = 2 if op.fb_en else 1
        tiles = self.tiles(op.n_out)
        # Every tile pays for its passes; the sweeps together touch every neuron once per
        # pass.
        return (FETCH_DECODE + LAYER_PREP + tiles * (ff + fb) + passes * op.n_out
                + SWEEP_DRAIN + LAYER_FINISH)

    def cycles(self) -> int:
        """Cycles of one inference, from the last pixel accepted to the result."""
        return sum(self.op_cycles(op) for op in self.ops)

    def mac_cycles(self) -> int:
        """Cycles in which the MAC lanes take a new element (the matrix-vector work)."""
        return sum(self.tiles(op.n_out) * ((op.ff_n_in if op.ff_src != SRC_CACHE else 0)
                                           + (op.fb_n_in if op.fb_en else 0))
                   for op in self.ops if op.kind == LAYER)

    def matrix_cycles(self) -> int:
        """Cycles of the matrix-vector phases: MAC passes, their drains and sweeps."""
        total = 0
        for op in self.ops:
            if op.kind == LAYER:
                total += self.op_cycles(op) - FETCH_DECODE - LAYER_PREP - LAYER_FINISH
        return total


def _pack_rows(matrix, lanes: int) -> list[list[int]]:
    """Tile-major words: word j * n_in + c holds M[j P + p, c] for p < P (0 beyond N)."""
    n_out, n_in = matrix.shape
    words = []
    for tile in range(-(-n_out // lanes)):
        for c in range(n_in):
            words.append([int(matrix[tile * lanes + p, c]) if tile * lanes + p < n_out else 0
                          for p in range(lanes)])
    return words


def build_program(model: IntModel, *, lanes: int, label_lanes: int | None = None) -> Program:
    """The program and memory images of ``model`` on ``lanes`` MAC lanes.

    Parameters
    ----------
    model : IntModel
        The integer model.
    lanes : int
        P, MAC lanes.
    label_lanes : int, optional
        G, labels scanned per cycle; default every label (K).

    Raises
    ------
    ValueError
        For a configuration the hardware does not implement (FFCL feedback into
        goodness), naming the alternative.
    """
    config = model.config
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
    offsets = [sum(config.hidden[:i]) for i in range(config.num_layers)]
    weight_words: list[list[int]] = []
    ff_base, fb_base = [], []
    for layer in model.layers:
        ff_base.append(len(weight_words))
        weight_words += _pack_rows(layer.W, lanes)
        fb_base.append(len(weight_words))
        if layer.V is not None:
            weight_words += _pack_rows(layer.V, lanes)
    groups = -(-K // label_lanes)
    label_words: list[list[int]] = []
    u_base = []
    for layer in model.layers:
        u_base.append(len(label_words))
        if layer.U is None:
            continue
        for i in range(layer.U.shape[0]):
            for g in range(groups):
                label_words.append([int(layer.U[i, g * label_lanes + q])
                                    if g * label_lanes + q < K else 0
                                    for q in range(label_lanes)])
    bias = [int(v) for layer in model.layers for v in layer.b]

    def layer_op(i: int, t: int, label: int = 0) -> Op:
        layer = model.layers[i]
        source = config.feedback_source(i)
        cached = config.algo == "ffcl" and i == 0 and t > 0
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
            cache_write=int(config.algo == "ffcl" and i == 0 and t == 0),
            ffl_add=int(config.algo == "ffl" and i in config.scoring_layers()),
        )

    ops: list[Op] = []
    if config.algo == "ffl":
        for k in range(K):
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
    fmt = model.fmt
    widths = {
        "weight": fmt.weight_bits,
        "state": fmt.state_bits,
        "act": fmt.act_bits,
        "input": fmt.input_bits,
        "mac_input": max(fmt.input_bits, fmt.act_bits),
        "acc": model.max_acc_bits(),
        "sq": model.sq_bits(),
        "score": model.score_bits(),
        "r": fmt.rsqrt_frac_bits + 1,
    }
    # The largest shift: the biggest constant plus half the largest normalising shift.
    max_const = max([op.ff_shift for op in ops] + [op.fb_shift for op in ops] + [0])
    widths["shift"] = (max_const + (widths["sq"] + 1) // 2 + 1).bit_length()
    return Program(model=model, lanes=lanes, label_lanes=label_lanes, ops=ops,
                   weight_words=weight_words, bias=bias, label_words=label_words,
                   layer_offsets=offsets, cache_tiles=-(-config.hidden[0] // lanes),
                   widths=widths)


def op_layout(program: Program) -> data.StructLayout:
    """The bit layout of one op in the core's program ROM."""
    config = program.model.config

    def r(n: int) -> unsigned:
        return unsigned(max(1, int(n).bit_length()))

    max_n = max(max(config.hidden), config.input_size + config.num_classes)
    words = max(1, len(program.weight_words))
    return data.StructLayout({
        "kind": 2,
        "layer": r(config.num_layers),
        "n_out": r(max_n),
        "bank": 1,
        "ff_src": 2,
        "ff_n_in": r(max_n),
        "ff_wbase": r(words),
        "ff_shift": r(program.widths and (1 << program.widths["shift"])),
        "in_off": r(sum(config.hidden)),
        "label_block": 1,
        "label": r(config.num_classes),
        "fb_en": 1,
        "fb_src": r(config.num_layers),
        "fb_n_in": r(max_n),
        "fb_wbase": r(words),
        "fb_shift": r(1 << program.widths["shift"]),
        "fb_off": r(sum(config.hidden)),
        "out_off": r(sum(config.hidden)),
        "cache_write": 1,
        "ffl_add": 1,
        "u_base": r(max(1, len(program.label_words))),
    })
