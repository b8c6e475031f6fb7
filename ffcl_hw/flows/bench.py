"""The bench flow: the accelerator's cycles per inference against CPUs, for one run.

What is measured (docs/bench.md says how each figure is obtained):

- ``accelerator``: the exact RTL under cocotb and Verilator (``ffcl-hw sim``'s machinery):
  the hardware cycle counter, split into phases by the core's ``phase`` port, the ideal
  count (MACs / lanes) and the lane utilisation; latency in microseconds at the Fmax of
  ``RUN/synth/BOARD/report.json`` when that synthesis exists. Following CFU Playground, a
  cycle count is reported only when the golden check of the same run passed on every
  sample; otherwise the flow fails.
- ``host_c``: the integer model as generated C, compiled at -O2 and -O3 by the system C
  compiler, checked bit-exact and timed (:mod:`ffcl_hw.cpu`).
- ``numpy``: the golden integer model itself, timed.
- ``rv32im``: the same C for RV32IM in an instruction-set simulator: instructions retired
  per inference, a lower bound on the cycles of any in-order RV32IM core. Skipped, with
  the reason, when the cross compiler is missing.
- ``variants``: FFL, FFDL and FFCL of the same shape: MACs, accelerator cycles (closed
  form, which the tests hold equal to the hardware counter for every variant) and RV32IM
  instructions, to show the saving of the single-pass label scan.
- ``training``: one sample of the integer learning rule: the training core's cycles
  (closed form), the design's, and the same C step on RV32IM and the host, checked
  against the golden trainer (:mod:`ffcl_hw.flows.bench_training`).

Everything lands in ``RUN/bench.json``, ``RUN/bench.md`` and ``RUN/bench/*.png``, written
all at once.
The compiled CPU programs are kept in ``RUN/sim_build/c`` (beside the simulator builds)
and reused by the next bench of the run when nothing they depend on changed
(:func:`ffcl_hw.flows.bench_training.compiled_cache`); they are checked and timed anew
every time.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ffcl_hw import cpu
from ffcl_hw.flows.bench_report import markdown_report, plot_report
from ffcl_hw.flows.bench_training import bench_training, compiled_cache, training_speedups
from ffcl_hw.flows.evaluate import load_run_dataset
from ffcl_hw.flows.quantize import load_quantized_run
from ffcl_hw.flows.simulate import simulate_run
from ffcl_hw.runs import RunError, write_json
from golden.config import ModelConfig
from golden.costs import inference_cost
from golden.intmodel import IntModel
from golden.params import init_parameters
from golden.quantize import quantize
from rtl.board import BOARDS
from rtl.program import build_program

__all__ = ["BENCH_FILES", "bench_run", "variant_models"]

#: What the flow writes inside the run.
BENCH_FILES = ("bench.json", "bench.md", "bench")
#: The host C builds: optimisation level and extra flags. The last one may use every
#: instruction-set extension of this machine (e.g. AVX-512 VNNI), which the portable
#: x86-64 builds do not.
HOST_BUILDS = {"-O2": ("-O2", ()), "-O3": ("-O3", ()),
               "-O3 -march=native": ("-O3", ("-march=native",))}
#: A CPU baseline failed in a way the user must hear about (not a skipped row).
_CPU_ERRORS = (cpu.GoldenMismatch, cpu.CompileError, cpu.CompilerMissing)
#: FFCL's iterations when the run itself is not FFCL.
_DEFAULT_LOOPS = 3


def _synth_report(run: Path, board: str | None) -> dict[str, Any] | None:
    """The board's synthesis report, or None when that synthesis has not been run."""
    if board is None:
        return None
    if board not in BOARDS:
        raise RunError(f"--board must be one of {', '.join(BOARDS)}, not {board!r}")
    path = run / "synth" / board / "report.json"
    if not path.exists():
        return None
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RunError(f"{path} is not readable JSON ({error}); run `ffcl-hw synth {run} "
                       f"--board {board}` again") from None
    if not isinstance(report, dict) or "fmax_mhz" not in report:
        raise RunError(f"{path} is not a synthesis report; run `ffcl-hw synth {run} "
                       f"--board {board}` again")
    return report


def variant_models(model: IntModel, calibration: np.ndarray, *,
                   seed: int = 0) -> dict[str, IntModel]:
    """FFL, FFDL and FFCL integer models of ``model``'s shape and formats.

    The run's own algorithm is the run's model; the others get untrained weights (the
    accelerator's cycles and the CPU's instruction counts do not depend on weight values,
    only on the shape). FFCL takes the run's iterations, or 3.
    """
    config = model.config
    loops = config.loops if config.algo == "ffcl" else _DEFAULT_LOOPS
    rng = np.random.default_rng(seed)
    sq_norm = float(np.mean(np.sum(calibration.astype(np.float64) ** 2, axis=1)))
    models = {}
    for algo in ("ffl", "ffdl", "ffcl"):
        if algo == config.algo:
            models[algo] = model
            continue
        variant = ModelConfig(algo=algo, input_size=config.input_size,
                              num_classes=config.num_classes, hidden=config.hidden,
                              loops=loops if algo == "ffcl" else 1)
        params = init_parameters(variant, rng, input_sq_norm=sq_norm)
        models[algo] = quantize(variant, params, calibration, input_max=model.fmt.input_max,
                                weight_bits=model.fmt.weight_bits,
                                state_bits=model.fmt.state_bits)
    return models


def _accelerator(run: Path, model: IntModel, *, samples: int, lanes: int,
                 label_lanes: int | None, shared: bool, synth: dict[str, Any] | None,
                 board: str | None, progress: Callable[[int], None] | None) -> dict[str, Any]:
    """Cycles of the exact RTL in Verilator, checked against the golden model."""
    sim = simulate_run(run, simulator="verilator", samples=samples, lanes=lanes,
                       label_lanes=label_lanes, shared=shared, progress=progress,
                       write=False)
    if sim["mismatches"]:
        raise RunError(f"the accelerator disagrees with the golden model "
                       f"({sim['first_mismatch']}); no cycle count is reported")
    program = build_program(model, lanes=lanes, label_lanes=label_lanes, shared=shared)
    cycles = sim["cycles_per_inference"]["max"]
    macs = inference_cost(model.config).macs
    ideal = math.ceil(macs / lanes)
    result: dict[str, Any] = {
        "simulator": "verilator",
        "samples": sim["samples"],
        "golden_check": f"passed on {sim['samples']} of {sim['samples']} images",
        "lanes": lanes,
        "label_lanes": program.label_lanes,
        "shared_multipliers": shared,
        "cycles_per_inference": cycles,
        "cycles_closed_form": program.cycles(),
        "ideal_cycles": ideal,
        "ideal_fraction": ideal / cycles,
        "mac_cycles": sim["mac_cycles"],
        "matrix_cycles": sim["matrix_cycles"],
        "lane_utilization": sim["lane_utilization"],
        "phase_cycles": sim.get("phase_cycles"),
        "macs_per_inference": macs,
        "how": "hardware cycle counter of the exported Verilog under cocotb + Verilator, "
               "from the last pixel accepted to the result offered; per-phase cycles "
               "counted from the core's phase port",
        "board": board,
        "fmax_mhz": None,
        "latency_us": None,
    }
    if synth is not None and synth.get("fmax_mhz"):
        same = synth.get("lanes", lanes) == lanes and \
            synth.get("label_lanes", program.label_lanes) == program.label_lanes and \
            (synth.get("multipliers") == "shared") == shared
        result.update({
            "fmax_mhz": synth["fmax_mhz"],
            "clock_mhz": synth.get("clock_mhz"),
            "meets_timing": synth.get("meets_timing"),
            "latency_us": cycles / synth["fmax_mhz"],
            "latency_at_clock_us": (cycles / synth["clock_mhz"]
                                    if synth.get("clock_mhz") else None),
            "synthesis_matches_lanes": same,
        })
    elif board is not None:
        result["latency_note"] = (f"no synthesis report for {board}: run `ffcl-hw synth "
                                  f"{run} --board {board}` for the latency at its Fmax")
    return result


def _variants(models: dict[str, IntModel], images: np.ndarray, *, lanes: int,
              label_lanes: int | None, shared: bool, rv32im: bool, build: Path,
              cache: Path | None = None) -> list[dict[str, Any]]:
    rows = []
    for algo, model in models.items():
        program = build_program(model, lanes=lanes, label_lanes=label_lanes, shared=shared)
        cost = inference_cost(model.config)
        row: dict[str, Any] = {
            "algo": algo,
            "loops": model.config.loops,
            "macs_per_inference": cost.macs,
            "accelerator_cycles": program.cycles(),
            "ideal_cycles": math.ceil(cost.macs / lanes),
            "lane_utilization": program.mac_cycles() / program.matrix_cycles(),
            "rv32im_instructions": None,
        }
        if rv32im:
            try:
                measured = cpu.measure_rv32im(model, images, build_dir=build / f"rv32im-{algo}",
                                              cache_dir=cache)
            except _CPU_ERRORS as error:
                raise RunError(f"RV32IM, {algo.upper()} variant: {error}") from None
            row["rv32im_instructions"] = measured["instructions_per_inference"]
        rows.append(row)
    ffdl = next(r for r in rows if r["algo"] == "ffdl")
    for row in rows:
        row["macs_vs_ffdl"] = row["macs_per_inference"] / ffdl["macs_per_inference"]
        row["cycles_vs_ffdl"] = row["accelerator_cycles"] / ffdl["accelerator_cycles"]
    return rows


def bench_run(run: Path, *, board: str | None = None, samples: int = 20, lanes: int = 8,
              label_lanes: int | None = None, shared: bool = False, cpu_samples: int = 50,
              rv32im_samples: int = 3, cpu_seconds: float = 2.0,
              progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Measure ``run``'s model on the accelerator and the CPUs; write the bench files.

    Parameters
    ----------
    run : Path
        A quantized run (``model.npz`` and ``model.int.npz``).
    board : str, optional
        Take the latency from ``RUN/synth/BOARD/report.json``, and the lane counts and
        multiplier mapping of that build when it records them.
    lanes, label_lanes, shared : optional
        The core's configuration when no board report gives it (``shared``: the scaler
        and squares borrow the lanes' multipliers).
    samples : int
        Test images through the RTL (each checked against the golden model).
    cpu_samples, rv32im_samples : int
        Test images the host C and NumPy timings and the RV32IM counts run on; for the
        training rows, the first training samples the host step is timed on and the
        RV32IM step trains on (each checked against the golden trainer).
    cpu_seconds : float
        Timed seconds per host C build and for NumPy.

    Returns
    -------
    dict
        What ``RUN/bench.json`` holds.

    Raises
    ------
    RunError
        Bad options, a missing or mismatched model, a golden mismatch on any target.
    """
    _check_bench_options(run, samples=samples, cpu_samples=cpu_samples,
                         rv32im_samples=rv32im_samples, lanes=lanes, cpu_seconds=cpu_seconds)
    synth = _synth_report(run, board)
    if synth is not None and "lanes" in synth:
        # Measure the configuration that was synthesized.
        lanes = synth["lanes"]
        label_lanes = synth.get("label_lanes", label_lanes)
        shared = synth.get("multipliers") == "shared"
    float_model, model = load_quantized_run(run)
    data, _ = load_run_dataset(float_model, None, None)
    images = model.quantize_input(data.x_test[:cpu_samples])

    report: dict[str, Any] = {
        "run": str(run),
        "model": {"dataset": float_model.data.get("dataset"), **model.config.to_dict(),
                  "macs_per_inference": inference_cost(model.config).macs},
        "machine": {"platform": platform.platform(), "processor": cpu.nominal_clock().cpu,
                    "cores": os.cpu_count()},
    }
    report["accelerator"] = _accelerator(run, model, samples=samples, lanes=lanes,
                                         label_lanes=label_lanes, shared=shared, synth=synth,
                                         board=board, progress=progress)
    parent = run.resolve().parent
    build = Path(tempfile.mkdtemp(prefix=f".{run.name}.bench.", dir=parent))
    cache = compiled_cache(run)
    try:
        try:
            report["host_c"] = {
                name: cpu.measure_host_c(model, images, opt=opt, flags=flags,
                                         min_seconds=cpu_seconds,
                                         build_dir=build / f"host{i}",
                                         cache_dir=cache)
                for i, (name, (opt, flags)) in enumerate(HOST_BUILDS.items())}
        except _CPU_ERRORS as error:
            raise RunError(f"host C: {error}") from None
        report["numpy"] = cpu.measure_numpy(model, images, min_seconds=cpu_seconds)
        try:
            report["rv32im"] = cpu.measure_rv32im(model, images[:rv32im_samples],
                                                  build_dir=build / "rv32im",
                                                  cache_dir=cache)
            has_rv32im = True
        except cpu.CrossCompilerMissing as error:
            report["rv32im"] = {"skipped": str(error)}
            has_rv32im = False
        except _CPU_ERRORS as error:
            raise RunError(f"RV32IM: {error}") from None
        models = variant_models(model, data.x_train[:200])
        report["variants"] = _variants(models, images[:1], lanes=lanes,
                                       label_lanes=label_lanes, shared=shared,
                                       rv32im=has_rv32im, build=build,
                                       cache=cache)
        n_train = max(cpu_samples, rv32im_samples)
        report["training"] = bench_training(
            run, model, model.quantize_input(data.x_train[:n_train]), data.y_train[:n_train],
            x_train_float=data.x_train, lanes=lanes, label_lanes=label_lanes, shared=shared,
            board=board, synth=synth, rv32im_samples=rv32im_samples,
            cpu_samples=cpu_samples, cpu_seconds=cpu_seconds, build=build)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    report["speedup"] = _speedups(report)
    _publish(run, report)
    return report


def _check_bench_options(run: Path, *, samples: int, cpu_samples: int, rv32im_samples: int,
                         lanes: int, cpu_seconds: float) -> None:
    """Refuse :func:`bench_run`'s bad counts and a run it cannot bench (no folder, no
    integer model), each message naming the fix.

    Raises
    ------
    RunError
    """
    for name, value in (("--samples", samples), ("--cpu-samples", cpu_samples),
                        ("--rv32im-samples", rv32im_samples), ("--lanes", lanes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RunError(f"{name} must be a positive integer, not {value!r}")
    if not isinstance(cpu_seconds, int | float) or not cpu_seconds > 0:
        raise RunError(f"cpu_seconds must be a positive number, not {cpu_seconds!r}")
    if not run.is_dir():
        raise RunError(f"no run folder at {run}; train one with `ffcl-hw train --out RUN`")
    if not (run / "model.int.npz").exists():
        raise RunError(f"{run} has no integer model; run `ffcl-hw quantize {run}` first")


def _publish(run: Path, report: dict[str, Any]) -> None:
    """Write the plots, ``bench.md`` and ``bench.json`` into ``run`` (adding the plots'
    paths to ``report``): all files or none, through a staging folder beside the run."""
    staging = Path(tempfile.mkdtemp(prefix=f".{run.name}.bench-out.",
                                    dir=run.resolve().parent))
    try:
        (staging / "bench").mkdir()
        plots = plot_report(report, staging / "bench")
        report["plots"] = [str(run / "bench" / p.name) for p in plots]
        (staging / "bench.md").write_text(markdown_report(report))
        write_json(staging / "bench.json", report)
        if (run / "bench").exists():
            shutil.rmtree(run / "bench")
        for name in BENCH_FILES:
            os.replace(staging / name, run / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _speedups(report: dict[str, Any]) -> dict[str, Any]:
    """How many times fewer cycles the accelerator needs than each CPU."""
    cycles = report["accelerator"]["cycles_per_inference"]
    rv = report["rv32im"].get("instructions_per_inference")
    name, best = min(report["host_c"].items(), key=lambda item: item[1]["ns_per_inference"])
    speedup: dict[str, Any] = {
        "vs_rv32im_instructions": rv / cycles if rv else None,
        "vs_host_c_cycles": (best["estimated_cycles_per_inference"] / cycles
                             if best.get("estimated_cycles_per_inference") else None),
        "host_c_build": name,
    }
    latency = report["accelerator"].get("latency_us")
    if latency:
        speedup["vs_host_c_time"] = best["ns_per_inference"] / 1000 / latency
    speedup.update(training_speedups(report["training"]))
    return speedup
