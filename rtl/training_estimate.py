# amaranth: UnusedElaboratable=no
"""The design's training cycles per sample (docs/training-engine.md, "Cycles per sample").

What the training engine needs per sample once its steps overlap as designed, from the
real inference program (:func:`rtl.program.build_program`) and the latencies the
components declare (:class:`rtl.learning_signal.LearningSignalUnit`,
:class:`rtl.update_lane.UpdateLane`, :class:`rtl.weight_store.WeightStore`). It is
arithmetic, not a measurement: the built slice (:class:`rtl.training_core.TrainingCore`)
runs its steps one after another and has its own closed form,
``TrainingCore.training_cycles()``, which its tests hold equal to its counter.

``python docs/training_cycles.py`` prints the design's table; ``ffcl-hw bench`` reports
:attr:`TrainingEstimate.total` as the training row's ``ideal_cycles``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from golden.intmodel import IntModel
from rtl.label_groups import LabelGroups
from rtl.learning_signal import LearningSignalUnit
from rtl.params import check_choice
from rtl.program import (
    FETCH_DECODE,
    LAYER,
    OPERAND_STAGES,
    SIDE_LATENCY,
    SRC_CACHE,
    SRC_IMAGE,
    build_program,
)
from rtl.update_lane import UpdateLane
from rtl.weight_pass import read_cycles
from rtl.weight_store import SPRAM_WORD_BITS, WeightStore, check_spram_word, store_port

__all__ = ["MEMORY_KINDS", "RMW_DRAIN", "SPRAM_BITS_PER_CYCLE", "TrainingEstimate",
           "estimate_training"]

#: Cycles from the last read of an update pass to its write: the weight store's read,
#: the operand register, the update lane (own multiplier or a MAC lane's: both 6). A
#: store deeper than one block RAM reads a cycle later (Program.weight_latency).
RMW_DRAIN = WeightStore.LATENCY + OPERAND_STAGES + UpdateLane.latency_for(None)
#: iCE40 UP5K: four SB_SPRAM256KA side by side, one 16-bit access each per cycle.
SPRAM_BITS_PER_CYCLE = SPRAM_WORD_BITS
#: Where the stored weights live: dual-port block RAM (one word read and one written per
#: cycle) or the UP5K's single-port SPRAM (one word of at most 64 bits a cycle, read or
#: written: the built engine reads every other cycle; a word of at most 32 bits in two
#: banks, one read and one written a cycle, rtl.weight_pass).
MEMORY_KINDS = ("bram", "spram")


@dataclass(frozen=True)
class TrainingEstimate:
    """The design's cycles of one training sample.

    Attributes
    ----------
    inference : int
        ``Program.cycles()`` of the inference program (with its label scans).
    forward : int
        The LAYER ops of a training sample (FFCL without the layer-1 cache: the rule
        recomputes W_1 x at every iteration, its weights may have changed).
    update : int
        Every trained layer's update: learning signal, v, the read-modify-write passes.
    total : int
        forward + update + 1 (the result).
    utilisation : float
        Busy lane-cycles over lane-cycles of the update passes (drains included).
    stored_bits, forward_bits : int
        The model's stored (B_m-bit weights, B_s + f-bit biases) and forward (B_w, B_s)
        sizes.
    """

    inference: int
    forward: int
    update: int
    total: int
    utilisation: float
    stored_bits: int
    forward_bits: int


def estimate_training(model: IntModel, *, lanes: int, label_lanes: int | None = None,
                      shared: bool = False, memory: str = "bram",
                      store_bits: int = 16) -> TrainingEstimate:
    """The design's cycles per training sample of ``model`` (module docstring).

    Parameters
    ----------
    model : IntModel
        FFDL or FFCL (every iteration trained).
    lanes, label_lanes, shared
        The core's configuration, as :func:`rtl.program.build_program` takes it.
    memory : {"bram", "spram"}
        Where the stored weights live (:data:`MEMORY_KINDS`). ``"spram"`` follows the
        built engine (``TrainingCore(weights="spram")``): a word of P stored weights (at
        most 64 bits) read every other cycle and written in the others, or, at most 32
        bits, in two banks: read every cycle in its bank's slot.
    store_bits : int
        B_m, the width of a stored weight.

    Raises
    ------
    ValueError
        For an unknown memory kind, a configuration ``build_program`` refuses, or on
        SPRAM a word of P x B_m bits wider than 64 (the built engine's refusal).
    """
    check_choice("Memory", memory, MEMORY_KINDS)
    if memory == "spram":
        check_spram_word(lanes=lanes, store_bits=store_bits,
                         weight_bits=model.fmt.weight_bits)
    config = model.config
    program = build_program(model, lanes=lanes, label_lanes=label_lanes, shared=shared)
    port = store_port("bram" if memory == "bram" else "spram", lanes * store_bits)
    # With shared multipliers the learning signal borrows the lanes' too.
    gap = LearningSignalUnit.gap_for(SIDE_LATENCY if shared else None)
    rmw_drain = RMW_DRAIN + program.weight_latency - WeightStore.LATENCY
    forward = update = busy = rmw = 0
    for op in program.ops:
        if op.kind != LAYER:
            continue
        if op.ff_src == SRC_CACHE:
            # The rule recomputes layer 1's feed-forward product at every iteration.
            op = dataclasses.replace(op, ff_src=SRC_IMAGE, ff_n_in=config.input_size)
        forward += program.op_cycles(op)
        n, n_in = op.n_out, config.input_size if op.layer == 0 else config.hidden[op.layer - 1]
        source = config.feedback_source(op.layer)
        n_src = 0 if source is None else config.hidden[source]
        # The learning signal (scan, sigma, z, errors), and the normalised inputs v through
        # the scaler (layers above the first, and V's): overlapped with dedicated
        # multipliers, after it when the scaler borrows the lanes.
        # The scan reads U[i, y] and U[i, y'] from the label memory, G labels a word: two
        # reads per neuron unless every label is in one word (G = K).
        reads = LabelGroups(config.num_classes, program.label_lanes).reads
        signal = reads * n + n + gap
        norm = (0 if op.layer == 0 else n_in) + n_src
        norm_cycles = norm + program.scale_latency if norm else 0
        prep = signal + norm_cycles if shared else max(signal, norm_cycles)
        # The built pass's schedule (rtl.weight_pass): the tiles back to back, each next
        # tile's d and rho loaded while the current one runs. Dual port: one word read
        # and one written per cycle. Single-port SPRAM: a word read every other cycle,
        # written in the others; two banks: each word read in its bank's slot. The first
        # tile's shadow load, which the built engine runs after PREPARE, is taken as
        # overlapped with the learning signal (the errors come out in neuron order).
        pass_cycles = read_cycles(lanes, n, n_in, n_src, weight_latency=program.weight_latency,
                                  port=port, ff_base=op.ff_wbase, fb_base=op.fb_wbase)
        # b and U (one word per neuron, v = 1, no multiplier) run beside the W pass on
        # their own memories' ports; they only count if longer.
        small = max(0, 2 * n - pass_cycles)
        update += FETCH_DECODE + prep + pass_cycles + small + rmw_drain
        rmw += pass_cycles + rmw_drain
        busy += n * (n_in + n_src)
    fmt = model.fmt
    f = store_bits - fmt.weight_bits
    entries = sum(lay.W.size + lay.U.size + (0 if lay.V is None else lay.V.size)
                  for lay in model.layers)
    biases = sum(config.hidden)
    return TrainingEstimate(inference=program.cycles(), forward=forward, update=update,
                            total=forward + update + 1, utilisation=busy / (lanes * rmw),
                            stored_bits=entries * store_bits + biases * (fmt.state_bits + f),
                            forward_bits=entries * fmt.weight_bits + biases * fmt.state_bits)
