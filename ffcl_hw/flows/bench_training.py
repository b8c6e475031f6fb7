# amaranth: UnusedElaboratable=no
"""The bench's training rows: one integer training sample on the accelerator and on CPUs.

- ``cycles_per_sample``: the closed form of the training core's cycle counter,
  ``training_cycles()`` (tests/rtl/test_training_core.py and test_training_spram.py
  hold it equal to the counter; the bench does not simulate the training core) of the
  core the board's training build makes (:func:`ffcl_hw.flows.synth_training.training_core`):
  on a board with SPRAM (the iCEBreaker) its weights there (single port: a word every
  other cycle, or a word a cycle in two banks when it is at most 32 bits) with the
  small-part options (one b and U lane, every multiplier a MAC lane's, G = min(K, P)
  label weights a word, the update's input norms from the forward pass); block RAM and
  the defaults otherwise; update lanes on the MAC lanes' multipliers (the same cycles as
  their own), its steps one after another (the tiles of a W/V pass back to back). A
  model it cannot train there (an SPRAM word wider than 64 bits, fewer than 3 lanes on
  SPRAM) gets ``None`` and the reason.
  ``accelerator.phase_cycles`` splits them by the core's ``phase`` output
  (``training_phase_cycles()``, which the same tests count in simulation).
- ``ideal_cycles``: the design's figure for the run's configuration and board memory
  (:func:`rtl.training_estimate.estimate_training`: the steps overlapped as designed).
- ``lane_utilization``: the core's W and V passes, busy lane-cycles over lane-cycles
  (``TrainingCore.pass_lane_utilization``: each layer's first shadow load, its tiles
  back to back and one drain); the design's in ``design.lane_utilization``.
- ``rv32im_instructions_per_sample`` and ``host_ns_per_sample``: the same integer step
  (golden/inttrain.c) on RV32IM and on the host, checked against ``IntTrainer``
  (:mod:`ffcl_hw.cpu.training`).
- ``samples_per_second``: at the Fmax of the run's training build for the board
  (``RUN/synth/BOARD-train/report.json``, ``ffcl-hw synth RUN --board BOARD --train``;
  the training rows then take that build's lanes),
  else of its inference build (``RUN/synth/BOARD/report.json``), else at the board's
  target clock; ``clock_source`` says which (and ``clock_report`` the file).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from ffcl_hw import cpu
from ffcl_hw.cpu.training import measure_training_host, measure_training_rv32im
from ffcl_hw.runs import RunError
from golden.intmodel import IntModel
from golden.inttrain import IntTrainer, TrainRule, default_lr_shift
from rtl.board import BOARDS
from rtl.training_estimate import estimate_training

__all__ = ["bench_training", "compiled_cache", "run_rule", "training_speedups"]

#: A CPU baseline failed in a way the user must hear about (not a skipped row).
_CPU_ERRORS = (cpu.GoldenMismatch, cpu.CompileError, cpu.CompilerMissing)


def compiled_cache(run: Path) -> Path:
    """Where the bench keeps the CPU baselines' compiled programs of ``run``, beside its
    simulator builds (``RUN/sim_build``), so that benching the run again compiles only
    what changed (:func:`ffcl_hw.cpu.toolchain.compile_c` keys each program on its
    sources, flags, compiler and CPU). Deleting the folder empties the cache."""
    return run / "sim_build" / "c"


def run_rule(run: Path, x_train: np.ndarray) -> tuple[TrainRule, str]:
    """The rule the bench trains with, and where it came from.

    An integer-trained run records its rule in ``metrics.json``; any other run gets the
    defaults of ``train --arith int`` (lambda from :func:`default_lr_shift` of the
    training images, pixels 0..1).
    """
    metrics = run / "metrics.json"
    recorded = None
    if metrics.exists():
        try:
            recorded = json.loads(metrics.read_text()).get("rule")
        except (OSError, json.JSONDecodeError, AttributeError):
            recorded = None
    if isinstance(recorded, dict):
        names = {f.name for f in dataclasses.fields(TrainRule)}
        try:
            return (TrainRule(**{k: v for k, v in recorded.items() if k in names}),
                    f"the run's rule ({metrics})")
        except (TypeError, ValueError):
            pass
    return (TrainRule(epochs=1, lr_shift=default_lr_shift(x_train)),
            "train --arith int's defaults (lambda from the training images)")


def _training_build(run: Path, board: str) -> tuple[Path, dict[str, Any]] | None:
    """The training build's report for ``board`` (``synth --train``), if it has an Fmax."""
    from ffcl_hw.flows.synth_training import training_folder

    path = training_folder(run, board) / "report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    return (path, report) if report.get("fmax_mhz") else None


def _clock(run: Path, board: str | None, synth: dict[str, Any] | None) -> tuple[float | None,
                                                                                str]:
    if board is None:
        return None, "no --board: no clock to convert cycles to time"
    trained = _training_build(run, board)
    if trained is not None:
        path, report = trained
        return float(report["fmax_mhz"]), (f"the Fmax of {path} (the training build, "
                                           f"{report['lanes']} lanes)")
    if synth is not None and synth.get("fmax_mhz"):
        return float(synth["fmax_mhz"]), (f"the Fmax of {run / 'synth' / board / 'report.json'}"
                                          " (the inference build; no training build: run "
                                          f"`ffcl-hw synth {run} --board {board} --train`)")
    mhz = BOARDS[board].default_mhz
    return mhz, (f"{board}'s target clock {mhz:g} MHz (no synthesis report: run `ffcl-hw "
                 f"synth {run} --board {board}` for its Fmax)")


def _accelerator(model: IntModel, rule: TrainRule, lanes: int,
                 board: str | None) -> dict[str, Any]:
    from ffcl_hw.flows.synth_training import training_core

    small = board is not None and BOARDS[board].spram_bits > 0
    weights = "spram" if small else "loadable"
    try:
        core = training_core(model, rule, board, lanes)
    except ValueError as error:
        return {"cycles_per_sample": None, "lane_utilization": None, "weights": weights,
                "not_available": f"the training core cannot train this model here: {error}"}
    return {
        "cycles_per_sample": core.training_cycles(),
        # Where they go: the split of the core's phase output (its closed form).
        "phase_cycles": core.training_phase_cycles(),
        "lane_utilization": core.pass_lane_utilization(),
        "lanes": lanes, "weights": weights,
        "label_lanes": core.label_groups.lanes,
        "bias_label_lanes": len(core.bias_label.lanes),
        "forward_multipliers": core.forward_multipliers,
        "compact_lanes": core.options["compact_lanes"],
        "shared_update_lane": core.shared_update_lane,
        "compact_signal": core.compact_signal,
        "input_norm": core.input_norm,
        "how": "training_cycles() of the core `ffcl-hw synth RUN --board B --train` builds "
               "(ffcl_hw.flows.synth_training.training_core): the closed form of its "
               "counter, which tests/rtl/test_training_core.py and test_training_spram.py "
               "hold equal to it; the weights in the board's memory (block RAM, or SPRAM "
               "on the iCE40 UP5K: single port, two banks for a word of at most 32 bits, "
               "with the small-part options there: one b and U lane, every multiplier a "
               "MAC lane's, G = min(K, P) label weights a word, the update's input norms "
               "from the forward pass), update lanes on the MAC "
               "lanes' multipliers, its steps one after another (the tiles of a pass back "
               "to back); not simulated here",
    }


def _design(model: IntModel, rule: TrainRule, *, lanes: int, label_lanes: int | None,
            shared: bool, memory: str) -> dict[str, Any]:
    try:
        e = estimate_training(model, lanes=lanes, label_lanes=label_lanes, shared=shared,
                              memory=memory, store_bits=rule.store_bits)
    except ValueError as error:
        return {"cycles_per_sample": None, "not_available": str(error)}
    return {"cycles_per_sample": e.total, "forward_cycles": e.forward,
            "update_cycles": e.update, "inference_cycles": e.inference,
            "lane_utilization": e.utilisation, "memory": memory, "lanes": lanes,
            "label_lanes": label_lanes, "shared_multipliers": shared,
            "how": "rtl.training_estimate.estimate_training: docs/training-engine.md's "
                   "cycles per sample with the steps overlapped as designed (arithmetic "
                   "from the inference program and the components' latencies, not built)"}


def bench_training(run: Path, model: IntModel, x_train: np.ndarray, y_train: np.ndarray, *,
                   x_train_float: np.ndarray, lanes: int, label_lanes: int | None,
                   shared: bool, board: str | None, synth: dict[str, Any] | None,
                   rv32im_samples: int, cpu_samples: int, cpu_seconds: float,
                   build: Path) -> dict[str, Any]:
    """The ``training`` section of ``bench.json`` (module docstring).

    ``x_train``, ``y_train``: integer training images and labels (the first
    ``rv32im_samples`` are trained on RV32IM, ``cpu_samples`` timed on the host);
    ``x_train_float``: the same in 0..1, for the default learning rate.

    Raises
    ------
    RunError
        If a CPU baseline disagrees with the golden trainer or fails to compile.
    """
    rule, rule_source = run_rule(run, x_train_float)
    section: dict[str, Any] = {
        "rule": rule.to_dict(), "rule_source": rule_source,
        "cycles_per_sample": None, "ideal_cycles": None, "lane_utilization": None,
        "rv32im_instructions_per_sample": None, "host_ns_per_sample": None,
        "clock_mhz": None, "samples_per_second": None, "design_samples_per_second": None,
    }
    try:
        IntTrainer(model, rule)
    except ValueError as error:
        section["not_available"] = f"the integer rule cannot train this model: {error}"
        return section
    memory = "spram" if board is not None and BOARDS[board].spram_bits else "bram"
    trained = _training_build(run, board) if board is not None else None
    if trained is not None:
        # The training build chose its own lanes (synth --train may widen them for the
        # block RAM): its cycles are the ones its Fmax turns into samples per second.
        lanes = trained[1]["lanes"]
    accelerator = _accelerator(model, rule, lanes, board)
    design = _design(model, rule, lanes=lanes, label_lanes=label_lanes, shared=shared,
                     memory=memory)
    section.update(accelerator=accelerator, design=design,
                   cycles_per_sample=accelerator["cycles_per_sample"],
                   ideal_cycles=design["cycles_per_sample"],
                   lane_utilization=accelerator["lane_utilization"])
    n = min(rv32im_samples, x_train.shape[0])
    try:
        section["rv32im"] = measure_training_rv32im(model, rule, x_train[:n], y_train[:n],
                                                    build_dir=build / "rv32im-train",
                                                    cache_dir=compiled_cache(run))
        section["rv32im_instructions_per_sample"] = \
            section["rv32im"]["instructions_per_sample"]
    except cpu.CrossCompilerMissing as error:
        section["rv32im"] = {"skipped": str(error)}
    except _CPU_ERRORS as error:
        raise RunError(f"RV32IM training step: {error}") from None
    m = min(cpu_samples, x_train.shape[0])
    try:
        section["host_c"] = measure_training_host(
            model, rule, x_train[:m], y_train[:m], check_samples=min(n, m),
            min_seconds=cpu_seconds, build_dir=build / "host-train",
            cache_dir=compiled_cache(run))
        section["host_ns_per_sample"] = section["host_c"]["ns_per_sample"]
    except _CPU_ERRORS as error:
        raise RunError(f"host C training step: {error}") from None
    mhz, source = _clock(run, board, synth)
    section["clock_mhz"], section["clock_source"] = mhz, source
    section["clock_report"] = (str(trained[0]) if trained is not None
                               else str(run / "synth" / board / "report.json")
                               if board is not None and synth is not None
                               and synth.get("fmax_mhz") else None)
    if mhz is not None:
        for key, cycles in (("samples_per_second", section["cycles_per_sample"]),
                            ("design_samples_per_second", section["ideal_cycles"])):
            section[key] = mhz * 1e6 / cycles if cycles else None
    return section


def training_speedups(training: dict[str, Any]) -> dict[str, Any]:
    """RV32IM instructions over the accelerator's cycles per training sample: the
    training core's closed form and the design's figure (None where either is missing)."""
    rv = training.get("rv32im_instructions_per_sample")
    cycles, ideal = training.get("cycles_per_sample"), training.get("ideal_cycles")
    return {"training_vs_rv32im_instructions": rv / cycles if rv and cycles else None,
            "training_design_vs_rv32im_instructions": rv / ideal if rv and ideal else None}
