"""Gate-level simulation of a board's netlist: ``ffcl-hw sim RUN --netlist BOARD``.

What is simulated: the board top ``ffcl-hw synth RUN --board BOARD`` builds (the same
core choice, :func:`ffcl_hw.flows.choose.choose_core`; PLL, reset synchroniser, pin
buffers and ``HostLink(Core)``), through the same build plan (the board's amaranth-boards
platform, the same Yosys script with the same overrides: ``synth_ice40 -dsp`` or
``synth_ecp5``), written out by Yosys as a Verilog netlist of vendor cells after
synthesis, and simulated under cocotb + Icarus with the cell models Yosys ships and this
project's own where Yosys has only a black box (:mod:`sim.netlist`). The host library's
``Device`` drives the UART pins: on the iCEBreaker it loads the weights into SPRAM over
the link first, as on the board.

How it differs from the bitstream's netlist, and only there:

- the UART bit time is :data:`SIM_DIVISOR` clock cycles, not clock / 115,200 (about 260
  at 30 MHz): the line rate is a constant of the design, and at the board's rate loading
  the weights would take millions of gate-level cycles. The receiver, transmitter and
  framing are the same logic with a smaller counter;
- the PLL is simulated as a wire (its models are black boxes) that locks when the
  bench's reset ends; the design is clocked by the bench;
- the ECP5 lane floorplan (nextpnr BEL attributes, no logic) is not applied;
- the netlist is the one after synthesis, not after place and route: nextpnr packs the
  same cells into logic tiles and routes them without changing their function, and its
  own timing analysis, not a simulation, says whether the routed design meets the clock.
  The simulation is functional (zero delay).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ffcl_hw.flows.evaluate import load_run_dataset
from ffcl_hw.flows.quantize import load_quantized_run
from ffcl_hw.flows.simulate import check_results
from ffcl_hw.flows.synth import TOP_NAME, check_fit, prepare_build
from ffcl_hw.flows.toolchain import run_step, toolchain_env
from ffcl_hw.runs import RunError, write_json
from golden.costs import inference_cost
from golden.intmodel import IntModel
from golden.inttrain import TrainRule
from rtl.board import BOARDS, Board, BoardTop, board_info
from rtl.core import Core
from rtl.host_link import TRAIN_BLOCK, HostLink
from rtl.training_core import TrainingCore
from sim.amaranth_sim import CoreResult

__all__ = ["SIM_DIVISOR", "VENDOR_CELLS", "netlist_sim_run", "netlist_train_run",
           "simulate_netlist", "simulate_training_netlist", "synth_netlist"]

#: The UART bit time of the simulated design, in clock cycles (the least rtl.uart takes).
SIM_DIVISOR = 4
#: The hard cells each family's netlist is checked for, and counted in the report.
VENDOR_CELLS = {
    "ice40": ("SB_MAC16", "SB_SPRAM256KA", "SB_RAM40_4K", "SB_PLL40_PAD", "SB_IO"),
    "ecp5": ("MULT18X18D", "DP16KD", "PDPW16KD", "TRELLIS_DPR16X4", "EHXPLLL", "TRELLIS_IO"),
}
#: Each family's LUT cell, counted in a training netlist's report.
LUT_CELLS = {"ice40": "SB_LUT4", "ecp5": "LUT4"}
NETLIST = f"{TOP_NAME}_netlist.v"


def _placement(board: str, luts: int) -> str | None:
    """What a training netlist for ``board`` with ``luts`` LUTs is not, said plainly:
    None on ECP5 (``synth --train`` places and routes its training cores); on an SPRAM
    board (the iCEBreaker's UP5K) that no bitstream of it exists."""
    info = board_info(board)
    if not info.spram_bits:
        return None
    # nextpnr is not run here; each logic cell holds one LUT4, so the LUTs bound the
    # cells from below.
    where = "docs/training-engine.md, Logic of the components"
    if luts > info.logic_cells:
        why = (f"this netlist does not place on the UP5K ({luts:,} SB_LUT4 alone are "
               f"{luts / info.logic_cells:.0%} of its {info.logic_cells:,} logic cells; "
               f"{where})")
    else:
        why = (f"nextpnr is not run on this netlist ({luts:,} SB_LUT4 for the UP5K's "
               f"{info.logic_cells:,} logic cells; the digits training core does not place: "
               f"{where})")
    return f"no bitstream: {why}; the simulation proves the netlist's logic, not a build"


def _pins(board: str, netlist_json: Path) -> dict[str, str]:
    """The netlist top's clock and UART ports, as the platform names requested pins."""
    platform = board_info(board).make_platform()
    pins = {"clk": f"{platform.default_clk}_0__io", "rx": "uart_0__rx__io",
            "tx": "uart_0__tx__io"}
    ports = json.loads(netlist_json.read_text())["modules"][TOP_NAME]["ports"]
    missing = [port for port in pins.values() if port not in ports]
    if missing:
        raise RunError(f"the {board} netlist has no port {', '.join(missing)} (it has "
                       f"{', '.join(sorted(ports))}); the platform names pins otherwise")
    return pins


def synth_netlist(core: Core | TrainingCore, *, board: str, out_dir: Path,
                  divisor: int = SIM_DIVISOR) -> dict[str, Any]:
    """Synthesise ``BoardTop(HostLink(core))`` for ``board`` into a Verilog netlist.

    A :class:`rtl.training_core.TrainingCore` gets the link ``ffcl-hw synth --train``
    gives it (:func:`ffcl_hw.flows.synth_training.training_link`: the default
    :data:`rtl.host_link.TRAIN_BLOCK` samples a TRAIN frame, lean on an SPRAM board),
    its fit check counting the training engine.

    The platform's build plan (:func:`ffcl_hw.flows.synth.prepare_build`) goes to
    ``out_dir``; its Yosys step writes ``ffcl_top.json``, which a second Yosys call turns
    into ``ffcl_top_netlist.v`` (``read_json; write_verilog -noattr``), leaving the plan's
    script as the synth flow runs it. Unchanged RTLIL and script reuse the netlist already
    in ``out_dir``.

    Returns
    -------
    dict
        ``netlist`` (path), ``pins`` (clk, rx, tx port names), ``cells`` (the family's
        :data:`VENDOR_CELLS` counted in the netlist), ``divisor``, ``clock_mhz`` (what
        the bitstream's PLL gives; the simulation runs at the bench's clock),
        ``yosys_seconds`` (0 when reused), ``reused``.
    """
    from sim.netlist import cell_counts

    info = board_info(board)
    check_fit(core, board)
    if isinstance(core, TrainingCore):
        from ffcl_hw.flows.synth_training import training_link

        link = training_link(core, board, divisor)
    else:
        link = HostLink(core, divisor=divisor, initialised=core.weights != "spram")
    top = BoardTop(link, board=board)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / "plan"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    (yosys, _, _), _ = prepare_build(top, stage)
    netlist = out_dir / NETLIST
    inputs = (f"{TOP_NAME}.il", f"{TOP_NAME}.ys")
    reused = netlist.exists() and all(
        (out_dir / name).exists() and (out_dir / name).read_bytes() == (stage / name).read_bytes()
        for name in inputs)
    seconds = 0.0
    if not reused:
        netlist.unlink(missing_ok=True)
        for path in stage.iterdir():
            path.replace(out_dir / path.name)
        env = toolchain_env()
        seconds = run_step(yosys, out_dir, "yosys.log", env)
        # The netlist as Verilog, from the JSON the plan's script wrote (YoWASP tools see
        # only their working folder: relative names).
        run_step(["yosys", "-q", "-p",
                  f"read_json {TOP_NAME}.json; write_verilog -noattr {NETLIST}.tmp"],
                 out_dir, "write_verilog.log", env)
        (out_dir / f"{NETLIST}.tmp").replace(netlist)
    shutil.rmtree(stage, ignore_errors=True)
    return {"netlist": str(netlist), "pins": _pins(board, out_dir / f"{TOP_NAME}.json"),
            "cells": cell_counts(netlist, VENDOR_CELLS[info.family]), "divisor": divisor,
            "clock_mhz": top.pll.achieved_mhz, "yosys_seconds": round(seconds, 2),
            "reused": reused}


def _build(synthesised: dict[str, Any], *, board: str, root: Path,
           models: dict[str, Path] | None, folder: str):
    """Compile a :func:`synth_netlist` netlist with its cell models (both benches):
    (the built design, its work folder ``folder``, the build's seconds).

    Raises
    ------
    RunError
        If Icarus is missing.
    """
    from sim.netlist import NetlistPins, build_netlist
    from sim.tools import ToolMissing

    start = time.perf_counter()
    try:
        built = build_netlist(Path(synthesised["netlist"]), family=board_info(board).family,
                              top=TOP_NAME, pins=NetlistPins(**synthesised["pins"]),
                              root=root, models=models)
    except ToolMissing as error:
        raise RunError(str(error)) from None
    work = built.build_dir / folder
    work.mkdir(exist_ok=True)
    return built, work, time.perf_counter() - start


def simulate_netlist(synthesised: dict[str, Any], core: Core, images: np.ndarray, *,
                     board: str, root: Path, models: dict[str, Path] | None = None,
                     progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run the netlist bench (:mod:`sim.netlist_testbench`) on a :func:`synth_netlist`
    result: load ``core``'s model over the host link if its weights are loadable, then
    classify ``images``.

    Returns
    -------
    dict
        The bench's report (``labels``, ``scores``, ``cycles`` per image classified,
        ``errors`` and ``first_error`` against the golden model, ``load_cycles``,
        ``sim_cycles``), with ``tests``/``failed`` (cocotb's counts), ``log``,
        ``build_seconds`` and ``simulation_seconds``.

    Raises
    ------
    RunError
        If Icarus is missing or the simulation crashed before its test ran.
    """
    from golden.intmodelio import save_int_model
    from sim.runner import run_tests

    built, work, build_seconds = _build(synthesised, board=board, root=root, models=models,
                                        folder="run")
    save_int_model(work / "model.int.npz", core.model)
    program = core.program
    (work / "core.json").write_text(json.dumps(
        {"lanes": program.lanes, "label_lanes": program.label_lanes, "shared": program.shared}))
    np.save(work / "images.npy", np.asarray(images, dtype=np.int64))
    report_file = work / "report.json"
    report_file.unlink(missing_ok=True)
    env = {"FFCL_HOST_LIBRARY": "ffcl_hw.device", "FFCL_MODEL": str(work / "model.int.npz"),
           "FFCL_CORE": str(work / "core.json"), "FFCL_IMAGES": str(work / "images.npy"),
           "FFCL_SAMPLES": str(len(images)), "FFCL_REPORT": str(report_file),
           "FFCL_LINK": json.dumps({"divisor": synthesised["divisor"],
                                    "load": core.weights != "rom",
                                    "empty": core.weights == "spram"})}
    start = time.perf_counter()
    try:
        run = run_tests(built, "sim.netlist_testbench", name="run", env=env, progress=progress)
    except RuntimeError as error:
        raise RunError(str(error)) from None
    bench = json.loads(report_file.read_text()) if report_file.exists() else {
        "labels": [], "scores": [], "cycles": [], "errors": None, "first_error": None,
        "load_cycles": None, "sim_cycles": None}
    bench.update(tests=run.tests, failed=run.failed, log=str(run.log),
                 build_seconds=build_seconds,
                 simulation_seconds=time.perf_counter() - start)
    return bench


def simulate_training_netlist(synthesised: dict[str, Any], core: TrainingCore,
                              images: np.ndarray, labels: np.ndarray, *, board: str,
                              root: Path, lr_shift: int | None = None,
                              models: dict[str, Path] | None = None,
                              progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train a :func:`synth_netlist` training netlist on ``images`` and ``labels`` through
    the host link, read the model back and compare it with the golden trainer
    (:mod:`sim.hostlink_training_testbench`, test ``train_and_read_back``).

    An SPRAM core (``weights="spram"``, the iCEBreaker's) comes up empty: the bench first
    loads the starting stored words over the link (``Device.load_model``, as ``ffcl-hw
    run --train`` loads a board). Every TRAIN record (the label of the training pass,
    the wrong label, the cycles) is checked against :class:`golden.inttrain.IntTrainer`
    and the closed form as it arrives; every stored word (W, FFCL's V, b, U) is read
    back once, after the last sample (a read-back of the digits model is thousands of
    link bytes, each hundreds of gate-level cycles); then ``images[0]`` is classified
    with the trained weights.
    ``lr_shift`` is lambda of every sample (default: the rule's first epoch's).

    Returns
    -------
    dict
        ``records`` ([label, wrong, cycles] per sample trained), ``error`` (the first
        disagreement or failure, None when every check passed), ``trained``,
        ``read_back``, ``load_writes`` and ``load_cycles`` (None without a load),
        ``sim_cycles``, with ``tests``/``failed`` (cocotb's counts),
        ``log``, ``build_seconds`` and ``simulation_seconds``.

    Raises
    ------
    RunError
        If Icarus is missing or the simulation crashed before its test ran.
    """
    from golden.intmodelio import save_int_model
    from sim.runner import run_tests

    built, work, build_seconds = _build(synthesised, board=board, root=root, models=models,
                                        folder="train")
    save_int_model(work / "model.int.npz", core.model)
    np.save(work / "images.npy", np.asarray(images, dtype=np.int64))
    np.save(work / "labels.npy", np.asarray(labels, dtype=np.int64))
    report_file = work / "report.json"
    report_file.unlink(missing_ok=True)
    rule = core.rule
    setup = {"model": str(work / "model.int.npz"),
             "rule": {f.name: getattr(rule, f.name) for f in fields(rule)},
             "lanes": core.lanes, "options": core.options, "block": TRAIN_BLOCK,
             "divisor": synthesised["divisor"],
             "seed": 0, "images": str(work / "images.npy"),
             "labels": str(work / "labels.npy"),
             "lr_shift": rule.lr_shift_at(0) if lr_shift is None else lr_shift,
             "report": str(report_file)}
    start = time.perf_counter()
    try:
        run = run_tests(built, "sim.hostlink_training_testbench", name="train",
                        testcase="train_and_read_back", progress=progress,
                        env={"FFCL_HOST_LIBRARY": "ffcl_hw.device",
                             "FFCL_TRAIN": json.dumps(setup)})
    except RuntimeError as error:
        raise RunError(str(error)) from None
    bench = json.loads(report_file.read_text()) if report_file.exists() else {
        "records": [], "error": "the bench ended without a report", "trained": 0,
        "read_back": False, "load_writes": None, "load_cycles": None, "sim_cycles": None}
    bench.update(tests=run.tests, failed=run.failed, log=str(run.log),
                 build_seconds=build_seconds,
                 simulation_seconds=time.perf_counter() - start)
    return bench


def netlist_sim_run(run: Path, *, board: str, samples: int = 20, lanes: int | None = None,
                    label_lanes: int | None = None, multipliers: str | None = None,
                    weights: str | None = None, models: dict[str, Path] | None = None,
                    progress: Callable[[int], None] | None = None,
                    write: bool = True) -> dict[str, Any]:
    """Synthesise ``RUN``'s board design and simulate its netlist on ``samples`` test
    images through the host link; write ``RUN/sim.json``.

    Options left out are chosen as ``ffcl-hw synth`` chooses them for ``board``. Loadable
    weights (``spram``, ``loadable``) are loaded over the link before the first image.
    The netlist and the simulation's build live in ``RUN/netlist/BOARD``. ``models``
    replaces one of the project's own cell models (:data:`sim.netlist.OWN_MODELS`), for
    tests that show a wrong model is caught.

    Returns
    -------
    dict
        The report written to ``sim.json``: what :func:`ffcl_hw.flows.simulate.simulate_run`
        writes (``phase_cycles`` is None: the phase output is not a pin), with
        ``"simulator": "netlist-BOARD"``, ``board``, ``weights``, ``multipliers``,
        ``netlist`` (path, cells, pins, UART divisor), ``load_cycles`` (None without a
        load), ``synth_seconds`` and ``sim_cycles``.
    """
    from ffcl_hw.flows.choose import choose_core

    if board not in BOARDS:
        raise RunError(f"--netlist must be one of {', '.join(BOARDS)}, not {board!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise RunError(f"--samples must be a positive integer, not {samples!r}")
    float_model, model = load_quantized_run(run)
    data, _ = load_run_dataset(float_model, None, None)
    choice = choose_core(model, board, lanes=lanes, label_lanes=label_lanes,
                         multipliers=multipliers, weights=weights)
    try:
        core = Core(model, lanes=choice.lanes, label_lanes=choice.label_lanes,
                    weights=choice.weights, shared=choice.multipliers == "shared")
    except (TypeError, ValueError) as error:
        raise RunError(str(error)) from None
    folder = run / "netlist" / board
    start = time.perf_counter()
    synthesised = synth_netlist(core, board=board, out_dir=folder)
    synth_seconds = time.perf_counter() - start

    count = min(samples, data.n_test)
    images = model.quantize_input(data.x_test[:count])
    golden = model.run(images)
    bench = simulate_netlist(synthesised, core, images, board=board, root=folder / "sim",
                             models=models, progress=progress)
    if len(bench["labels"]) != count:
        detail = f": {bench['first_error']}" if bench.get("first_error") else ""
        raise RunError(f"the {board} netlist simulation classified {len(bench['labels'])} "
                       f"of {count} images{detail}; see {bench['log']}")
    results = [CoreResult(label=label, scores=tuple(scores), cycles=cycles, phase_cycles=None)
               for label, scores, cycles in zip(bench["labels"], bench["scores"],
                                                bench["cycles"], strict=True)]
    program = core.program
    mismatches = check_results(results, golden, program.cycles())
    cycles = np.array([r.cycles for r in results])
    labels = np.array([r.label for r in results])
    report: dict[str, Any] = {
        "simulator": f"netlist-{board}",
        "samples": count,
        "lanes": program.lanes,
        "label_lanes": program.label_lanes,
        "shared_multipliers": program.shared,
        "mismatches": len(mismatches),
        "first_mismatch": str(mismatches[0]) if mismatches else None,
        "accuracy": float((labels == data.y_test[:count]).mean()),
        "golden_int_accuracy": float((golden.labels == data.y_test[:count]).mean()),
        "cycles_per_inference": None if mismatches else {
            "min": int(cycles.min()), "mean": float(cycles.mean()), "max": int(cycles.max())},
        "cycles_formula": program.cycles(),
        # The core's phase output is not a pin of the board top.
        "phase_cycles": None,
        "phase_cycles_formula": program.phase_cycles(),
        "mac_cycles": program.mac_cycles(),
        "matrix_cycles": program.matrix_cycles(),
        "lane_utilization": program.mac_cycles() / program.matrix_cycles(),
        "macs_per_inference": inference_cost(model.config).macs,
        "board": board,
        "weights": core.weights,
        "multipliers": choice.multipliers,
        "netlist": {key: synthesised[key] for key in ("netlist", "cells", "pins", "divisor")},
        "load_cycles": bench.get("load_cycles"),
        "sim_cycles": bench.get("sim_cycles"),
        "synth_seconds": round(synth_seconds, 3),
        "build_seconds": round(bench["build_seconds"], 3),
        "simulation_seconds": round(bench["simulation_seconds"], 3),
        "inferences_per_second": count / bench["simulation_seconds"],
    }
    if write:
        write_json(run / "sim.json", report)
    return report


def _check_netlist_train_options(board: str, samples: int, lanes: int | None) -> Board:
    """Refuse a bad ``--netlist`` board, ``--samples`` or ``--lanes`` (in that order);
    return the board's :class:`rtl.board.Board`."""
    if board not in BOARDS:
        raise RunError(f"--netlist must be one of {', '.join(BOARDS)}, not {board!r}")
    info = board_info(board)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise RunError(f"--samples must be a positive integer, not {samples!r}")
    if lanes is not None and (isinstance(lanes, bool) or not isinstance(lanes, int)
                              or lanes < 1):
        raise RunError(f"--lanes must be a positive integer, not {lanes!r}")
    return info


def _netlist_train_model(run: Path, samples: int,
                         lr_shift: int | None) -> tuple[IntModel, TrainRule, str, Any, int]:
    """The model, rule, rule source and data set ``sim --train`` trains, and lambda;
    refuse an FFL run, more samples than the training set holds, or a lambda outside the
    rule's range (in that order)."""
    from ffcl_hw.flows.train_sim import checked_lr_shift, model_and_rule

    model, rule, rule_source, data = model_and_rule(Path(run))
    config = model.config
    if config.algo not in ("ffdl", "ffcl"):
        raise RunError(f"{run} is an {config.algo.upper()} run: the training core trains "
                       f"FFDL and FFCL models (train one with ffcl-hw train --arith int "
                       f"--algo ffdl or --algo ffcl)")
    if samples > data.n_train:
        raise RunError(f"--samples {samples} is more than the {data.n_train} training "
                       f"samples of {data.name}; use --samples {data.n_train} or fewer")
    return model, rule, rule_source, data, checked_lr_shift(rule, lr_shift)


def _netlist_train_report(board: str, samples: int, core: TrainingCore, rule: TrainRule,
                          rule_source: str, lr_shift: int, synthesised: dict[str, Any],
                          luts: int, synth_seconds: float,
                          bench: dict[str, Any]) -> dict[str, Any]:
    """The report of a training netlist simulation, before the golden trainer's results
    (``cycles_per_sample``, the accuracies and ``samples_per_second`` are None)."""
    low, high = rule.lr_range
    return {
        "simulator": f"netlist-{board}",
        "samples": samples,
        "samples_trained": len(bench["records"]),
        "check_every": samples,
        "checked_samples": 1 if bench["read_back"] else 0,
        "lanes": core.lanes,
        "multipliers": core.multipliers,
        "weights": core.weights,
        "rule": rule.to_dict(),
        "rule_source": rule_source,
        "lr_shift": lr_shift,
        "lr_range": [low, high],
        "weight_mismatches": bench.get("entries_differing") or 0,
        "mismatch": bench["error"],
        "cycles_per_sample": None, "cycles_formula": core.training_cycles(),
        "test_accuracy": None, "golden_test_accuracy": None, "initial_test_accuracy": None,
        "board": board,
        "netlist": {**{key: synthesised[key] for key in ("netlist", "cells", "pins", "divisor")},
                    "luts": luts},
        "placement": _placement(board, luts),
        "load_writes": bench.get("load_writes"),
        "load_cycles": bench.get("load_cycles"),
        "sim_cycles": bench.get("sim_cycles"),
        "synth_seconds": round(synth_seconds, 3),
        "build_seconds": round(bench["build_seconds"], 3),
        "wall_seconds": round(bench["simulation_seconds"], 3),
        "samples_per_second": None,
    }


def _golden_training_results(model: IntModel, rule: TrainRule, data: Any,
                             images: np.ndarray, labels: np.ndarray, lr_shift: int,
                             bench: dict[str, Any]) -> dict[str, Any]:
    """The report's cycles, accuracies and rate of a netlist simulation whose records and
    stored words all matched: the golden trainer's model, trained on the same samples."""
    from golden.inttrain import IntTrainer

    trainer = IntTrainer(model, rule)
    for image, label in zip(images, labels, strict=True):
        trainer.train_sample(image, int(label), lr_shift)
    x_test = model.quantize_input(data.x_test)
    golden = float((trainer.model.run(x_test).labels == data.y_test).mean())
    cycles = np.array([r[2] for r in bench["records"]])
    return {
        "cycles_per_sample": {"min": int(cycles.min()), "mean": float(cycles.mean()),
                              "max": int(cycles.max())},
        "test_accuracy": golden, "golden_test_accuracy": golden,
        "initial_test_accuracy": float((model.run(x_test).labels == data.y_test).mean()),
        "samples_per_second": len(images) / bench["simulation_seconds"],
    }


def netlist_train_run(run: Path, *, board: str, samples: int = 20, lanes: int | None = None,
                      lr_shift: int | None = None, multipliers: str = "shared",
                      models: dict[str, Path] | None = None,
                      progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Synthesise ``RUN``'s training design for ``board`` and train its netlist on the
    first ``samples`` training samples; write ``RUN/train_sim.json``.

    The core is the one ``ffcl-hw synth RUN --board BOARD --train`` builds
    (:func:`ffcl_hw.flows.synth_training.choose_training_core`: ``lanes`` or the first
    count that fits, the run's rule; block RAM on ECP5, on the iCEBreaker the small-part
    core with its weights in SPRAM, which the bench loads over the link first); the
    samples, their order and lambda are those of ``sim --train``
    (:mod:`ffcl_hw.flows.train_sim`). Every record is checked as it arrives; every
    stored word is read back once, after the last sample
    (:func:`simulate_training_netlist`). The netlist and the simulation's build live in
    ``RUN/netlist/BOARD-train``.

    On the iCEBreaker this proves the netlist's logic, not a build: the training core
    does not place on the UP5K (docs/training-engine.md, "Logic of the components"), so
    no bitstream of it exists; ``placement`` in the report says so with the netlist's
    LUT count.

    Returns
    -------
    dict
        The report written: ``sim --train``'s fields (``check_every`` is ``samples``: one
        read-back; ``weight_mismatches`` counts the stored entries that differ) with
        ``"simulator": "netlist-BOARD"``, ``board``, ``netlist`` (path, cells, ``luts``,
        pins, UART divisor), ``placement`` (None on ECP5; on the iCEBreaker the sentence
        that no bitstream of this core exists), ``load_writes`` and ``load_cycles``
        (None without a load), ``sim_cycles``, ``synth_seconds``, ``build_seconds`` and
        ``simulation_seconds``. The accuracies are those of the golden trainer's model,
        which the read-back equals when ``mismatch`` is None.

    Raises
    ------
    RunError
        Bad input (samples, lanes, lambda, an FFL run, a core that does not fit or
        that the RTL does not build: on the iCEBreaker fewer than 3 lanes, or an SPRAM
        word wider than 64 bits), before any tool runs.
    """
    from ffcl_hw.flows.synth_training import choose_training_core
    from ffcl_hw.flows.train_sim import TRAIN_SIM_FILE, training_samples
    from sim.netlist import cell_counts

    info = _check_netlist_train_options(board, samples, lanes)
    model, rule, rule_source, data, lr_shift = _netlist_train_model(run, samples, lr_shift)
    core, _ = choose_training_core(model, rule, board, lanes, multipliers)
    images, labels = training_samples(model, rule, data, samples)

    folder = Path(run) / "netlist" / f"{board}-train"
    start = time.perf_counter()
    synthesised = synth_netlist(core, board=board, out_dir=folder)
    synth_seconds = time.perf_counter() - start
    bench = simulate_training_netlist(synthesised, core, images, labels, board=board,
                                      root=folder / "sim", lr_shift=lr_shift, models=models,
                                      progress=progress)
    lut = LUT_CELLS[info.family]
    luts = cell_counts(Path(synthesised["netlist"]), (lut,))[lut]
    error = bench["error"]
    if error is None and (bench["failed"] or not bench["read_back"]):
        # Not a disagreement with the golden trainer: the simulation stopped early.
        raise RunError(f"the {board} training netlist simulation ended after "
                       f"{bench['trained']} of {samples} samples without its checks "
                       f"finishing; see {bench['log']}")
    report = _netlist_train_report(board, samples, core, rule, rule_source, lr_shift,
                                   synthesised, luts, synth_seconds, bench)
    if error is None:
        # Counted only when every record and every stored word matched.
        report.update(_golden_training_results(model, rule, data, images, labels, lr_shift,
                                               bench))
    write_json(Path(run) / TRAIN_SIM_FILE, report)
    return report
