"""The training-cycle estimate of docs/training-engine.md, from the real inference program.

    python docs/training_cycles.py

For each board configuration: the inference cycles (``Program.cycles``), the forward
passes of a training sample (the program's LAYER ops, with FFCL's layer-1 cache
disabled: the rule recomputes W_1 x at every iteration, its weights may have changed),
and the update of every layer in the closed form of the design note, with the units'
latencies read from the components (``LearningSignalUnit.gap_for``, ``UpdateLane.latency``,
``WeightStore.LATENCY``, ``OPERAND_STAGES``): :func:`rtl.training_estimate.estimate_training`,
which ``ffcl-hw bench`` also reports as the training row's ideal cycles. The last table is
the built training core's closed form (``TrainingCore.training_cycles``), which the tests
check against its counter in simulation; nothing here is measured on a board.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from golden.config import ModelConfig  # noqa: E402
from golden.inttrain import TrainRule, initial_model  # noqa: E402
from rtl.learning_signal import LearningSignalUnit  # noqa: E402
from rtl.program import SIDE_LATENCY  # noqa: E402
from rtl.training_core import TrainingCore  # noqa: E402
from rtl.training_estimate import RMW_DRAIN, estimate_training  # noqa: E402
from rtl.weight_store import SPRAM_WIDTH, SPRAM_WORD_BITS  # noqa: E402

#: Bits of the memory the weights live in: UP5K SPRAM (4 x 256 Kb), ECP5-85F block RAM
#: (208 DP16KD of 18 Kb); the boards' other memories (EBR, distributed RAM) are left out.
MEMORY_BITS = {"spram": 4 * 16384 * SPRAM_WIDTH, "bram": 208 * 18432}

CONFIGS = [
    # name, config, pixels 0..X, lanes, shared multipliers, memory, B_m. On SPRAM a word of
    # P stored weights is at most 64 bits (TrainingCore refuses more): 8 lanes x 8 bits;
    # one of at most 32 bits is kept in two banks, read a word a cycle: 4 lanes x 8 bits.
    ("digits FFDL 64-64 (iCEBreaker)", dict(algo="ffdl", input_size=64, hidden=(64, 64)),
     16, 8, True, "spram", 8),
    ("digits FFDL 64-64 (iCEBreaker, 4 lanes)",
     dict(algo="ffdl", input_size=64, hidden=(64, 64)), 16, 4, True, "spram", 16),
    ("digits FFDL 64-64 (iCEBreaker, 4 lanes, two banks)",
     dict(algo="ffdl", input_size=64, hidden=(64, 64)), 16, 4, True, "spram", 8),
    ("digits FFCL 64-64 T=3 (iCEBreaker)",
     dict(algo="ffcl", input_size=64, hidden=(64, 64), loops=3), 16, 8, True, "spram", 8),
    ("MNIST 14x14 FFDL 196-64-64 (iCEBreaker)",
     dict(algo="ffdl", input_size=196, hidden=(64, 64)), 255, 8, True, "spram", 8),
    ("digits FFDL 64-64 (ECP5, 8 lanes)", dict(algo="ffdl", input_size=64, hidden=(64, 64)),
     16, 8, False, "bram", 16),
    ("MNIST FFDL 784-256-256 (ULX3S-85F)",
     dict(algo="ffdl", input_size=784, hidden=(256, 256)), 255, 86, False, "bram", 16),
    ("MNIST FFCL 784-256-256 T=3 (ULX3S-85F)",
     dict(algo="ffcl", input_size=784, hidden=(256, 256), loops=3), 255, 86, False, "bram", 16),
]


def _model(config: ModelConfig, input_max: int):
    """Seeded weights of ``config`` (the cycles do not depend on the weights)."""
    rng = np.random.default_rng(0)
    return initial_model(config, rng.random((16, config.input_size)), input_max=input_max,
                         seed=0)


def estimate(config: ModelConfig, input_max: int, lanes: int, shared: bool, memory: str,
             store_bits: int = 16) -> dict[str, float]:
    """rtl.training_estimate.estimate_training on seeded weights of ``config``, with every
    label scanned per cycle (2 with shared multipliers), and the memory it lives in."""
    e = estimate_training(_model(config, input_max), lanes=lanes,
                          label_lanes=2 if shared else config.num_classes,
                          shared=shared, memory=memory, store_bits=store_bits)
    return {"stored_bits": e.stored_bits, "forward_bits": e.forward_bits,
            "memory_bits": MEMORY_BITS[memory], "inference": e.inference,
            "forward": e.forward, "update": e.update, "total": e.total,
            "utilisation": e.utilisation}


def largest_fit(e: dict[str, float]) -> int:
    """The largest B_m whose stored model fits the memory (bits grow by one per entry
    and per bias for each bit of B_m)."""
    per_bit = (e["stored_bits"] - e["forward_bits"]) / 8
    return min(24, 8 + int((e["memory_bits"] - e["forward_bits"]) // per_bit))


def main() -> None:
    print(f"RMW drain {RMW_DRAIN} cycles, learning-signal gap {LearningSignalUnit.GAP} "
          f"cycles ({LearningSignalUnit.gap_for(SIDE_LATENCY)} with borrowed multipliers)")
    print("| model | P | memory | B_m | inference | training: forward | update | total "
          "| update-pass lane utilisation |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, fields, input_max, lanes, shared, memory, store_bits in CONFIGS:
        config = ModelConfig(num_classes=10, theta=0.25, **fields)
        e = estimate(config, input_max, lanes, shared, memory, store_bits)
        print(f"| {name} | {lanes}{' shared' if shared else ''} | {memory} | {store_bits} | "
              f"{e['inference']:,} | {e['forward']:,} | {e['update']:,} | {e['total']:,} "
              f"| {100 * e['utilisation']:.1f}% |")
    print()
    print("| model | weights at B_w = 8 (inference) | stored at B_m = 16 | memory | "
          "stored / memory | largest B_m within the memory |")
    print("|---|---|---|---|---|---|")
    seen = set()
    for name, fields, input_max, lanes, shared, memory, _ in CONFIGS:
        if (str(fields), memory) in seen:
            continue
        seen.add((str(fields), memory))
        config = ModelConfig(num_classes=10, theta=0.25, **fields)
        # The sizes at B_m = 16 whatever the memory's word allows.
        e = {**estimate(config, input_max, lanes, shared, "bram"),
             "memory_bits": MEMORY_BITS[memory]}
        print(f"| {name} | {e['forward_bits'] / 1024:,.0f} Kb | "
              f"{e['stored_bits'] / 1024:,.0f} Kb | {e['memory_bits'] / 1024:,.0f} Kb | "
              f"{e['stored_bits'] / e['memory_bits']:.0%} | {largest_fit(e)} |")
    print()
    print("The built training core's W-pass lane utilisation, digits FFDL 64-64 "
          "(TrainingCore.pass_lane_utilization: N n_in entries over P x the passes' cycles, "
          "the tiles back to back, each layer's first shadow load and drain included; "
          "tests/rtl/test_training_spram.py counts both "
          "in simulation), and its training cycles per sample:")
    print("| P | B_m | SPRAM banks | SPRAM | block RAM (dual port) | SPRAM bound "
          "(one bank 64 / (2 P B_m), two 100 %) | cycles per sample, SPRAM | block RAM |")
    print("|---|---|---|---|---|---|---|---|")
    digits = _model(ModelConfig(algo="ffdl", input_size=64, num_classes=10, hidden=(64, 64),
                                theta=0.25), 16)
    for lanes, store_bits in ((8, 8), (4, 16), (4, 8), (2, 16)):
        rule = TrainRule(epochs=1, lr_shift=6, store_bits=store_bits)
        spram = TrainingCore(digits, rule, lanes=lanes, weights="spram")
        bram = TrainingCore(digits, rule, lanes=lanes)
        banks = spram.core.memories.weight_store.banks
        bound = 1.0 if banks == 2 else min(1.0, SPRAM_WORD_BITS / (2 * lanes * store_bits))
        print(f"| {lanes} | {store_bits} | {banks} | {spram.pass_lane_utilization():.1%} | "
              f"{bram.pass_lane_utilization():.1%} | {bound:.0%} | "
              f"{spram.training_cycles():,} | {bram.training_cycles():,} |")
    print()
    print("The built training core (rtl.training_core, block RAM; the update lanes on the "
          "MAC lanes' multipliers or their own, the same cycles): its counter's closed form, "
          "TrainingCore.training_cycles (tests/rtl/test_training_core.py compares it with "
          "the counter); with the learning signal on MAC lanes 0 and 1 too "
          "(signal_multipliers='shared')")
    print("| model | P | inference | training sample | signal on the lanes "
          "| design estimate above |")
    print("|---|---|---|---|---|---|")
    rows = [("ffdl", (10, 7), 3, 1, "all"), ("ffdl", (64, 64), 8, 1, "all"),
            ("ffcl", (64, 64), 8, 3, "last"), ("ffcl", (64, 64), 8, 3, "all")]
    for algo, hidden, lanes, loops, iterations in rows:
        config = ModelConfig(algo=algo, input_size=64, num_classes=10, hidden=hidden,
                             theta=0.25, loops=loops)
        model = initial_model(config, np.random.default_rng(0).random((50, 64)),
                              input_max=16, seed=0)
        rule = TrainRule(epochs=1, lr_shift=6, loss_iterations=iterations)
        core = TrainingCore(model, rule, lanes=lanes)
        signal = TrainingCore(model, rule, lanes=lanes, signal_multipliers="shared")
        design = (estimate(config, 16, lanes, False, "bram")["total"]
                  if lanes == 8 and iterations == "all" else None)
        name = f"digits {algo.upper()} 64-{'-'.join(map(str, hidden))}"
        if algo == "ffcl":
            name += f" T={loops}, loss_iterations {iterations}"
        print(f"| {name} | {lanes} | {core.core.program.cycles():,} | "
              f"{core.training_cycles():,} | {signal.training_cycles():,} | "
              f"{'' if design is None else f'{design:,}'} |")
    print()
    print("The small-part options (TrainingCore: bias_label_lanes=1, "
          "forward_multipliers='shared', signal_multipliers='shared', label_lanes=G; "
          "docs/training-engine.md), digits FFDL 64-64 and FFCL 64-64 T=3 (every iteration "
          "trained) in SPRAM at B_m = 8, against the same lanes without them; and with the "
          "update's input norms from the forward pass too (input_norm='forward', as the "
          "iCEBreaker build):")
    print("| model | P | G | inference | training sample | with input_norm='forward' "
          "| without the options (inference, sample) |")
    print("|---|---|---|---|---|---|---|")
    b8 = TrainRule(epochs=1, lr_shift=6, store_bits=8)
    ffcl = _model(ModelConfig(algo="ffcl", input_size=64, num_classes=10, hidden=(64, 64),
                              theta=0.25, loops=3), 16)
    for name, model, rule, lanes in (
            ("digits FFDL 64-64", digits, b8, 4), ("digits FFDL 64-64", digits, b8, 3),
            ("digits FFCL 64-64 T=3", ffcl, replace(b8, loss_iterations="all"), 4)):
        options = dict(weights="spram", bias_label_lanes=1, forward_multipliers="shared",
                       signal_multipliers="shared", label_lanes=lanes)
        small = TrainingCore(model, rule, lanes=lanes, **options)
        forward = TrainingCore(model, rule, lanes=lanes, **options, input_norm="forward")
        plain = TrainingCore(model, rule, lanes=lanes, weights="spram")
        print(f"| {name} | {lanes} | {lanes} | {small.core.program.cycles():,} | "
              f"{small.training_cycles():,} | {forward.training_cycles():,} | "
              f"{plain.core.program.cycles():,}, {plain.training_cycles():,} |")
    print()
    phase_table(digits, ffcl, b8)


def phase_table(digits, ffcl, rule: TrainRule) -> None:
    """Where a training sample's cycles go on the boards' training cores
    (:func:`ffcl_hw.flows.synth_training.training_core`): ``training_phase_cycles``, the
    split the core's ``phase`` output shows (the tests count it in simulation)."""
    from ffcl_hw.flows.synth_training import training_core

    print("A training sample's cycles per phase of the training core's phase output "
          "(TrainingCore.training_phase_cycles; tests/rtl/test_training_core.py and "
          "test_training_spram.py count them in simulation), B_m = 8, on the boards' "
          "training cores (ffcl_hw.flows.synth_training.training_core):")
    builds = (("digits FFDL 64-64, iCEBreaker, 3 lanes", digits, rule, "icebreaker", 3),
              ("digits FFCL 64-64 T=3 (all), iCEBreaker, 3 lanes", ffcl,
               replace(rule, loss_iterations="all"), "icebreaker", 3),
              ("digits FFDL 64-64, ULX3S-85F, 8 lanes", digits, rule, "ulx3s-85f", 8))
    cores = [(name, training_core(model, r, board, lanes))
             for name, model, r, board, lanes in builds]
    names = list(cores[0][1].training_phase_cycles())
    print("| phase | " + " | ".join(name for name, _ in cores) + " |")
    print("|---|" + "---|" * len(cores))
    for phase in [*names, "total"]:
        cells = []
        for _, core in cores:
            split = core.training_phase_cycles()
            count = core.training_cycles() if phase == "total" else split[phase]
            cells.append(f"{count:,} ({count / core.training_cycles():.1%})")
        print(f"| {phase} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
