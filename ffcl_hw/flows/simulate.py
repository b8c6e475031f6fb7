"""The simulate flow: the core on test images, checked against the golden integer model.

A cycle count is reported only for a run whose golden check passed on every sample
(CFU Playground's rule); a mismatch is reported with the first failing sample and field.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffcl_hw.flows.evaluate import load_run_dataset
from ffcl_hw.flows.export import build_core
from ffcl_hw.flows.quantize import load_quantized_run
from ffcl_hw.runs import RunError, write_json
from golden.costs import inference_cost
from golden.intmodel import IntResult
from sim.amaranth_sim import CoreResult, run_core

__all__ = ["SIMULATORS", "Mismatch", "check_results", "simulate_run"]

SIMULATORS = ("verilator", "icarus", "amaranth")
#: The waveform format each simulator writes.
WAVE_SUFFIX = {"verilator": ".fst", "icarus": ".fst", "amaranth": ".vcd"}


@dataclass(frozen=True)
class Mismatch:
    """The first disagreement of one sample with the golden model."""

    sample: int
    field: str
    hardware: Any
    golden: Any
    reference: str = "in the golden model"

    def __str__(self) -> str:
        return (f"sample {self.sample}: {self.field} is {self.hardware} in the hardware, "
                f"{self.golden} {self.reference}")


def check_results(results: list[CoreResult], golden: IntResult, expected_cycles: int,
                  expected_phases: dict[str, int] | None = None) -> list[Mismatch]:
    """Compare every record field by field: label, each score, cycle count, and (where
    both are known) the cycles of each phase."""
    mismatches = []
    for i, result in enumerate(results):
        if result.label != int(golden.labels[i]):
            mismatches.append(Mismatch(i, "label", result.label, int(golden.labels[i])))
            continue
        scores = [int(v) for v in golden.scores[i]]
        wrong = [k for k, (a, b) in enumerate(zip(result.scores, scores, strict=True)) if a != b]
        if wrong:
            k = wrong[0]
            mismatches.append(Mismatch(i, f"score[{k}]", result.scores[k], scores[k]))
            continue
        if result.cycles != expected_cycles:
            mismatches.append(Mismatch(i, "cycles", result.cycles, expected_cycles,
                                       "by the closed-form count"))
            continue
        if expected_phases is not None and result.phase_cycles is not None:
            wrong = [name for name, count in expected_phases.items()
                     if result.phase_cycles.get(name) != count]
            if wrong:
                name = wrong[0]
                mismatches.append(Mismatch(i, f"phase_cycles[{name}]",
                                           result.phase_cycles.get(name),
                                           expected_phases[name], "by the closed-form count"))
    return mismatches


def _run_cocotb(core, simulator: str, images: np.ndarray, run: Path, waves: Path | None,
                progress: Callable[[int], None] | None) -> tuple[list[CoreResult], float]:
    """Build (or reuse) the Verilog simulation and run the bench's ``run_samples`` test."""
    from sim.runner import build_core as build_simulation
    from sim.runner import run_testbench
    from sim.tools import ToolMissing

    start = time.perf_counter()
    try:
        built = build_simulation(core, simulator, run / "sim_build", waves=waves is not None)
    except ToolMissing as error:
        raise RunError(str(error)) from None
    build_seconds = time.perf_counter() - start
    try:
        bench = run_testbench(built, images, testcase="run_samples", name="ffcl-hw-sim",
                          progress=progress)
    except RuntimeError as error:
        raise RunError(str(error)) from None
    report = bench.report
    if not report:
        raise RunError(f"the {simulator} simulation ended without a report; see {bench.log}")
    phases = report.get("phase_cycles") or [None] * len(report["labels"])
    if len(phases) != len(report["labels"]):
        raise RunError(f"the {simulator} simulation's phase output showed {len(phases)} "
                       f"inferences for {len(report['labels'])} results; see {bench.log}")
    results = [CoreResult(label=label, scores=tuple(scores), cycles=cycles,
                          phase_cycles=phase_cycles)
               for label, scores, cycles, phase_cycles in zip(
                   report["labels"], report["scores"], report["cycles"], phases, strict=True)]
    if waves is not None:
        dumps = sorted(built.build_dir.rglob("*.fst")) + sorted(built.build_dir.rglob("*.vcd"))
        if not dumps:
            raise RunError(f"the {simulator} simulation wrote no waveform in {built.build_dir}")
        waves.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(max(dumps, key=lambda p: p.stat().st_mtime), waves)
    return results, build_seconds


def simulate_run(run: Path, *, simulator: str = "amaranth", samples: int = 20, lanes: int = 8,
                 label_lanes: int | None = None, shared: bool = False,
                 waves: Path | None = None,
                 progress: Callable[[int], None] | None = None,
                 write: bool = True) -> dict[str, Any]:
    """Run ``samples`` test images through the core and write ``RUN/sim.json``.

    ``write=False`` only returns the report (the bench measures without replacing the
    run's ``sim.json``).

    Returns
    -------
    dict
        The report written to ``sim.json``.
    """
    if simulator not in SIMULATORS:
        raise RunError(f"--simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if waves is not None and waves.suffix != WAVE_SUFFIX[simulator]:
        raise RunError(f"{simulator} writes {WAVE_SUFFIX[simulator][1:].upper()} waveforms; "
                       f"name the --waves file *{WAVE_SUFFIX[simulator]}, not {waves.name}")
    if not isinstance(samples, int) or samples < 1:
        raise RunError(f"--samples must be a positive integer, not {samples!r}")
    float_model, _ = load_quantized_run(run)
    data, _ = load_run_dataset(float_model, None, None)
    core = build_core(run, lanes=lanes, label_lanes=label_lanes, shared=shared)
    model = core.model
    count = min(samples, data.n_test)
    images = model.quantize_input(data.x_test[:count])
    golden = model.run(images)
    start = time.perf_counter()
    if simulator == "amaranth":
        results = run_core(core, images, progress=progress, vcd=str(waves) if waves else None)
        build_seconds = 0.0
    else:
        results, build_seconds = _run_cocotb(core, simulator, images, run, waves, progress)
    seconds = time.perf_counter() - start - build_seconds
    expected = core.cycles_per_inference()
    program = core.program
    expected_phases = program.phase_cycles()
    mismatches = check_results(results, golden, expected, expected_phases)
    if not mismatches and any(r.phase_cycles is None for r in results):
        raise RunError(f"the {simulator} simulation reported no cycles per phase")
    cycles = np.array([r.cycles for r in results])
    labels = np.array([r.label for r in results])
    report: dict[str, Any] = {
        "simulator": simulator,
        "samples": count,
        "lanes": lanes,
        "label_lanes": core.program.label_lanes,
        "shared_multipliers": shared,
        "mismatches": len(mismatches),
        "first_mismatch": str(mismatches[0]) if mismatches else None,
        "accuracy": float((labels == data.y_test[:count]).mean()),
        "golden_int_accuracy": float((golden.labels == data.y_test[:count]).mean()),
        # Cycle counts count only when every sample matched the golden model.
        "cycles_per_inference": None if mismatches else {
            "min": int(cycles.min()), "mean": float(cycles.mean()), "max": int(cycles.max())},
        "cycles_formula": expected,
        # Cycles per phase from the core's phase output, the same on every sample (each
        # is checked against the closed form), and the closed form itself.
        "phase_cycles": None if mismatches else results[0].phase_cycles,
        "phase_cycles_formula": expected_phases,
        "mac_cycles": program.mac_cycles(),
        "matrix_cycles": program.matrix_cycles(),
        "lane_utilization": program.mac_cycles() / program.matrix_cycles(),
        "macs_per_inference": inference_cost(model.config).macs,
        "build_seconds": round(build_seconds, 3),
        "simulation_seconds": round(seconds, 3),
        "inferences_per_second": count / seconds if seconds > 0 else None,
    }
    if write:
        write_json(run / "sim.json", report)
    return report
