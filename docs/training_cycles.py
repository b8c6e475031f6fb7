"""The training-cycle estimate of docs/training-engine.md, from the real inference program.

    python docs/training_cycles.py

For each board configuration: the inference cycles (``Program.cycles``), the forward
passes of a training sample (the program's LAYER ops, with FFCL's layer-1 cache
disabled: the rule recomputes W_1 x at every iteration, its weights may have changed),
and the update of every layer in the closed form of the design note, with the units'
latencies read from the components (``LearningSignalUnit.gap_for``, ``UpdateLane.latency``,
``WeightStore.LATENCY``, ``OPERAND_STAGES``): the design's arithmetic. The last table is
the built training core's closed form (``TrainingCore.training_cycles``), which the tests
check against its counter in simulation; nothing here is measured on a board.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from golden.config import ModelConfig  # noqa: E402
from golden.inttrain import TrainRule, initial_model  # noqa: E402
from rtl.learning_signal import LearningSignalUnit  # noqa: E402
from rtl.program import (  # noqa: E402
    FETCH_DECODE,
    LAYER,
    OPERAND_STAGES,
    SIDE_LATENCY,
    SRC_CACHE,
    SRC_IMAGE,
    build_program,
)
from rtl.training_core import TrainingCore  # noqa: E402
from rtl.update_lane import UpdateLane  # noqa: E402
from rtl.weight_store import SPRAM_WIDTH, WeightStore  # noqa: E402

#: Cycles from the last read of an update pass to its write: the weight store's read,
#: the operand register, the update lane (own multiplier or a MAC lane's: both 6).
RMW_DRAIN = WeightStore.LATENCY + OPERAND_STAGES + UpdateLane.latency_for(None)
#: iCE40 UP5K: four SB_SPRAM256KA side by side, one 16-bit access each per cycle.
SPRAM_BITS_PER_CYCLE = 4 * SPRAM_WIDTH
#: Bits of the memory the weights live in: UP5K SPRAM (4 x 256 Kb), ECP5-85F block RAM
#: (208 DP16KD of 18 Kb); the boards' other memories (EBR, distributed RAM) are left out.
MEMORY_BITS = {"spram": 4 * 16384 * SPRAM_WIDTH, "bram": 208 * 18432}

CONFIGS = [
    # name, config, pixels 0..X, lanes, shared multipliers, memory
    ("digits FFDL 64-64 (iCEBreaker)", dict(algo="ffdl", input_size=64, hidden=(64, 64)),
     16, 8, True, "spram"),
    ("digits FFCL 64-64 T=3 (iCEBreaker)",
     dict(algo="ffcl", input_size=64, hidden=(64, 64), loops=3), 16, 8, True, "spram"),
    ("MNIST 14x14 FFDL 196-64-64 (iCEBreaker)",
     dict(algo="ffdl", input_size=196, hidden=(64, 64)), 255, 8, True, "spram"),
    ("digits FFDL 64-64 (ECP5, 8 lanes)", dict(algo="ffdl", input_size=64, hidden=(64, 64)),
     16, 8, False, "bram"),
    ("MNIST FFDL 784-256-256 (ULX3S-85F)",
     dict(algo="ffdl", input_size=784, hidden=(256, 256)), 255, 86, False, "bram"),
    ("MNIST FFCL 784-256-256 T=3 (ULX3S-85F)",
     dict(algo="ffcl", input_size=784, hidden=(256, 256), loops=3), 255, 86, False, "bram"),
]


def estimate(config: ModelConfig, input_max: int, lanes: int, shared: bool, memory: str,
             store_bits: int = 16) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.random((16, config.input_size))
    model = initial_model(config, x, input_max=input_max, seed=0)
    program = build_program(model, lanes=lanes, label_lanes=config.num_classes if not shared
                            else 2, shared=shared)
    # With shared multipliers the learning signal borrows the lanes' too.
    gap = LearningSignalUnit.gap_for(SIDE_LATENCY if shared else None)
    forward = update = busy = rmw = 0
    t = -1
    for op in program.ops:
        if op.kind != LAYER:
            continue
        if op.layer == 0:
            t += 1
        if op.ff_src == SRC_CACHE:
            # The rule recomputes layer 1's feed-forward product at every iteration.
            op = dataclasses.replace(op, ff_src=SRC_IMAGE, ff_n_in=config.input_size)
        forward += program.op_cycles(op)
        n, n_in = op.n_out, config.input_size if op.layer == 0 else config.hidden[op.layer - 1]
        source = config.feedback_source(op.layer)
        n_src = 0 if source is None else config.hidden[source]
        tiles = program.tiles(n)
        # The learning signal (scan, sigma, z, errors), and the normalised inputs v through
        # the scaler (layers above the first, and V's): overlapped with dedicated
        # multipliers, after it when the scaler borrows the lanes.
        # The scan reads U[i, y] and U[i, y'] from the label memory, G labels a word: two
        # reads per neuron unless every label is in one word (G = K).
        reads = 1 if program.groups == 1 else 2
        signal = reads * n + n + gap
        norm = (0 if op.layer == 0 else n_in) + n_src
        norm_cycles = norm + program.scale_latency if norm else 0
        prep = signal + norm_cycles if shared else max(signal, norm_cycles)
        words = tiles * (n_in + n_src)
        if memory == "bram":
            # Dual port: one word read and one written per cycle.
            pass_cycles = words
        else:
            # Single-port SPRAM: every weight read and written once, 64 bits a cycle.
            weights_per_access = SPRAM_BITS_PER_CYCLE // store_bits
            pass_cycles = 2 * -(-tiles * lanes // weights_per_access) * (n_in + n_src)
        # b and U (one word per neuron, v = 1, no multiplier) run beside the W pass on
        # their own memories' ports; they only count if longer.
        small = max(0, 2 * n - pass_cycles)
        layer_update = FETCH_DECODE + prep + pass_cycles + small + RMW_DRAIN
        update += layer_update
        rmw += pass_cycles + RMW_DRAIN
        busy += n * (n_in + n_src)
    total = forward + update + 1
    fmt = model.fmt
    f = store_bits - fmt.weight_bits
    entries = sum(lay.W.size + lay.U.size + (0 if lay.V is None else lay.V.size)
                  for lay in model.layers)
    biases = sum(config.hidden)
    return {"stored_bits": entries * store_bits + biases * (fmt.state_bits + f),
            "forward_bits": entries * fmt.weight_bits + biases * fmt.state_bits,
            "memory_bits": MEMORY_BITS[memory], "inference": program.cycles(),
            "forward": forward, "update": update, "total": total,
            "utilisation": busy / (lanes * rmw)}


def largest_fit(e: dict[str, float]) -> int:
    """The largest B_m whose stored model fits the memory (bits grow by one per entry
    and per bias for each bit of B_m)."""
    per_bit = (e["stored_bits"] - e["forward_bits"]) / 8
    return min(24, 8 + int((e["memory_bits"] - e["forward_bits"]) // per_bit))


def main() -> None:
    print(f"RMW drain {RMW_DRAIN} cycles, learning-signal gap {LearningSignalUnit.GAP} "
          f"cycles ({LearningSignalUnit.gap_for(SIDE_LATENCY)} with borrowed multipliers), "
          f"stored weights 16 bits")
    print("| model | P | memory | inference | training: forward | update | total "
          "| update-pass lane utilisation |")
    print("|---|---|---|---|---|---|---|---|")
    for name, fields, input_max, lanes, shared, memory in CONFIGS:
        config = ModelConfig(num_classes=10, theta=0.25, **fields)
        e = estimate(config, input_max, lanes, shared, memory)
        print(f"| {name} | {lanes}{' shared' if shared else ''} | {memory} | "
              f"{e['inference']:,} | {e['forward']:,} | {e['update']:,} | {e['total']:,} "
              f"| {100 * e['utilisation']:.1f}% |")
    print()
    print("| model | weights at B_w = 8 (inference) | stored at B_m = 16 | memory | "
          "stored / memory | largest B_m within the memory |")
    print("|---|---|---|---|---|---|")
    for name, fields, input_max, lanes, shared, memory in CONFIGS:
        config = ModelConfig(num_classes=10, theta=0.25, **fields)
        e = estimate(config, input_max, lanes, shared, memory)
        print(f"| {name} | {e['forward_bits'] / 1024:,.0f} Kb | "
              f"{e['stored_bits'] / 1024:,.0f} Kb | {e['memory_bits'] / 1024:,.0f} Kb | "
              f"{e['stored_bits'] / e['memory_bits']:.0%} | {largest_fit(e)} |")
    print()
    print("iCE40 alternatives (update-pass lane utilisation of the 8 MAC lanes, "
          "bound 64 / (2 P B_m)):")
    for store_bits, lanes in ((16, 8), (12, 8), (8, 8), (16, 2), (8, 4)):
        print(f"  B_m = {store_bits:2d}, P = {lanes}: "
              f"{min(1.0, SPRAM_BITS_PER_CYCLE / (2 * lanes * store_bits)):.0%}")
    print()
    print("The built training core (rtl.training_core, dedicated multipliers, block RAM): "
          "its counter's closed form, TrainingCore.training_cycles "
          "(tests/rtl/test_training_core.py compares it with the counter)")
    print("| model | P | inference | training sample | design estimate above |")
    print("|---|---|---|---|---|")
    rows = [("ffdl", (10, 7), 3, 1, "all"), ("ffdl", (64, 64), 8, 1, "all"),
            ("ffcl", (64, 64), 8, 3, "last"), ("ffcl", (64, 64), 8, 3, "all")]
    for algo, hidden, lanes, loops, iterations in rows:
        config = ModelConfig(algo=algo, input_size=64, num_classes=10, hidden=hidden,
                             theta=0.25, loops=loops)
        model = initial_model(config, np.random.default_rng(0).random((50, 64)),
                              input_max=16, seed=0)
        core = TrainingCore(model, TrainRule(epochs=1, lr_shift=6, loss_iterations=iterations),
                            lanes=lanes)
        design = (estimate(config, 16, lanes, False, "bram")["total"]
                  if lanes == 8 and iterations == "all" else None)
        name = f"digits {algo.upper()} 64-{'-'.join(map(str, hidden))}"
        if algo == "ffcl":
            name += f" T={loops}, loss_iterations {iterations}"
        print(f"| {name} | {lanes} | {core.core.program.cycles():,} | "
              f"{core.training_cycles():,} | {'' if design is None else f'{design:,}'} |")


if __name__ == "__main__":
    main()
