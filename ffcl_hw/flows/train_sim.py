# amaranth: UnusedElaboratable=no
"""The training simulation flow: the training core learns, checked against the golden trainer.

``ffcl-hw sim RUN --train`` trains the simulated :class:`rtl.training_core.TrainingCore`
on the first N training samples of the run's data set, in the order
:func:`golden.inttrain.train_int` takes them in epoch 0 (its order generator, seeded with
the rule's seed), starting from ``RUN/model.int.npz``. The rule is the one an integer run
recorded (``train --arith int``); a quantized float run gets the defaults of
``train --arith int`` (:func:`default_rule`). After every ``check_every``-th sample and
the last, every stored word (W, V, b, U) read back through the core's ``read`` port must equal
:class:`golden.inttrain.IntTrainer`'s; every sample's ``done`` record must carry the
golden predicted label and wrong label, and its cycle count the closed form; the first
sample's cycles per phase of the core's ``phase`` output must equal
:meth:`~rtl.training_core.TrainingCore.training_phase_cycles` (the report's
``phase_cycles``). The first mismatch ends the run. ``RUN/train_sim.json`` is written
(atomically) either way.

With ``weights="spram"`` (``--weights spram``) the simulated core keeps its stored
weights in (simulated) iCE40 SPRAM, which comes up empty: every simulator loads the
starting words through the core's ``load`` port before sample 0
(:meth:`rtl.training_core.TrainingCore.starting_loads`), as a board's host would. An
SPRAM word holds 64 bits, so lanes x the rule's stored width must fit.

lambda (``lr_shift_in``, the same for the golden trainer) is ``--lr-shift`` within the
core's range (:attr:`TrainingCore.lr_range`: the rule's first to last epoch's), by default
the last epoch's (:func:`default_lr_shift_for`): the run continues a deployed model, which
its first epoch's larger rate would shake out of its minimum.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ffcl_hw.flows.evaluate import load_run_dataset
from ffcl_hw.flows.quantize import load_run_int_model
from ffcl_hw.flows.simulate import SIMULATORS
from ffcl_hw.presets import int_preset_for
from ffcl_hw.runs import RunError, write_json
from golden.intmodel import IntModel
from golden.inttrain import TrainRule, default_lr_shift, default_lr_steps
from golden.modelio import load_model
from rtl.program import build_program
from rtl.training_core import WEIGHT_KINDS, TrainingCore
from rtl.weight_store import SPRAM_DEPTH, SPRAM_WORD_BITS
from sim.amaranth_sim import run_training
from sim.train_check import TrainingChecker, TrainingRun

__all__ = ["FULL_CHECK_SAMPLES", "LONG_RUN_CHECK_EVERY", "TRAIN_SIM_FILE", "TOP_NAME",
           "checked_lr_shift", "default_check_every", "default_lr_shift_for", "default_rule",
           "model_and_rule", "train_order", "train_sim_run", "training_samples"]

#: Where the report goes inside the run.
TRAIN_SIM_FILE = "train_sim.json"
#: The training core's Verilog module name.
TOP_NAME = "ffcl_training_core"
#: Runs up to this many samples compare every stored word after every sample by default.
FULL_CHECK_SAMPLES = 200
#: Longer runs compare them after every this-many samples and after the last.
LONG_RUN_CHECK_EVERY = 100


def default_check_every(samples: int) -> int:
    """Every sample up to :data:`FULL_CHECK_SAMPLES` samples, else every
    :data:`LONG_RUN_CHECK_EVERY` (and the last, always)."""
    return 1 if samples <= FULL_CHECK_SAMPLES else LONG_RUN_CHECK_EVERY


def default_rule(x_train: np.ndarray, dataset: str) -> TrainRule:
    """The rule ``train --arith int`` uses by default on ``dataset``: the int preset's
    epochs, lambda_0 from the images, steps at half and three quarters, seed 0."""
    epochs = int_preset_for(dataset).epochs
    return TrainRule(epochs=epochs, lr_shift=default_lr_shift(x_train),
                     lr_steps=default_lr_steps(epochs))


def default_lr_shift_for(rule: TrainRule) -> int:
    """lambda of ``sim --train`` without ``--lr-shift``: the rule's last epoch's.

    Continuing a trained model at its first epoch's lambda undoes much of its training
    (a digits FFDL 64-64 int run, 97.78 %, falls to 90.89 % over one epoch at 2^-6; see
    docs/training-engine.md); its last epoch's is the rate it converged at.
    """
    return rule.lr_range[1]


def _recorded_rule(source: dict[str, Any]) -> TrainRule:
    recorded = source["trained"]["rule"]
    names = {f.name for f in fields(TrainRule)}
    return TrainRule(**{k: v for k, v in recorded.items() if k in names})


def train_order(rule: TrainRule, n_train: int) -> np.ndarray:
    """The training set's order in epoch 0 of :func:`golden.inttrain.train_int`."""
    return np.random.default_rng(rule.seed).permutation(n_train)


def model_and_rule(run: Path) -> tuple[IntModel, TrainRule, str, Any]:
    """The starting model, the rule, where the rule came from, and the data set: what
    ``sim --train`` trains and ``synth --train`` builds (the rule an integer run recorded,
    else ``train --arith int``'s default rule for the data set)."""
    saved = load_run_int_model(run)
    data, _ = load_run_dataset(load_model(run / "model.npz"), None, None)
    try:
        if "trained" in saved.source:
            return (saved.model, _recorded_rule(saved.source),
                    "the rule this integer run was trained with", data)
        return (saved.model, default_rule(data.x_train, data.name),
                "the default rule of `train --arith int` (a quantized float run)", data)
    except ValueError as error:
        raise RunError(f"{run / 'model.int.npz'}: {error}") from None


def _check_spram_fit(model: IntModel, rule: TrainRule, lanes: int) -> None:
    """Refuse a word of ``lanes`` stored weights wider than an SPRAM word, naming the
    lane count and the stored width (an integer run's ``--store-bits``) that fit."""
    bits = lanes * rule.store_bits
    if bits <= SPRAM_WORD_BITS:
        return
    fixes = [f"--lanes {SPRAM_WORD_BITS // rule.store_bits}"]
    if SPRAM_WORD_BITS // lanes >= model.fmt.weight_bits:
        fixes.append(f"a run trained with `train --arith int --store-bits "
                     f"{SPRAM_WORD_BITS // lanes}`")
    raise RunError(f"--weights spram: {lanes} lanes x {rule.store_bits}-bit stored weights = "
                   f"{bits} bits, more than an SPRAM word's {SPRAM_WORD_BITS}; use "
                   f"{' or '.join(fixes)}")


def _check_spram_depth(model: IntModel, lanes: int, store_bits: int) -> None:
    """Refuse a weight memory deeper than an SPRAM (its words, one per tile and column,
    fall as lanes are added), naming the lane count that fits or, if none does within an
    SPRAM word, block RAM."""
    def words(p: int) -> int:
        return len(build_program(model, lanes=p).weight_words)

    needed = words(lanes)
    if needed <= SPRAM_DEPTH:
        return
    widest = SPRAM_WORD_BITS // store_bits
    fit = next((p for p in range(lanes + 1, widest + 1) if words(p) <= SPRAM_DEPTH), None)
    fix = (f"use --lanes {fit}" if fit is not None else
           f"no lane count up to the {widest} an SPRAM word holds fits: simulate it in "
           f"block RAM (--weights loadable)")
    raise RunError(f"--weights spram: on {lanes} lanes the weight memory is {needed:,} "
                   f"words, more than an SPRAM's {SPRAM_DEPTH:,}; {fix}")


def _simulate_cocotb(core: TrainingCore, simulator: str, run: Path, rule: TrainRule,
                     lr_shift: int, images: np.ndarray, labels: np.ndarray, check_every: int,
                     progress: Callable[[int], None] | None) -> tuple[TrainingRun, float]:
    """Build (or reuse) the core's Verilog simulation and run the training bench."""
    from golden.intmodelio import save_int_model
    from sim.runner import build_design, run_tests
    from sim.tools import ToolMissing

    start = time.perf_counter()
    try:
        built = build_design(core, simulator, run / "sim_build", toplevel=TOP_NAME)
    except ToolMissing as error:
        raise RunError(str(error)) from None
    build_seconds = time.perf_counter() - start
    work = built.build_dir / "ffcl-hw-train-sim"
    work.mkdir(exist_ok=True)
    save_int_model(work / "model.int.npz", core.model)
    np.save(work / "images.npy", images)
    np.save(work / "labels.npy", labels)
    setup = {"rule": {f.name: getattr(rule, f.name) for f in fields(TrainRule)},
             "lanes": core.lanes, "options": core.options,
             "check_every": check_every, "lr_shift": lr_shift}
    (work / "train.json").write_text(json.dumps(setup))
    report = work / "report.json"
    report.unlink(missing_ok=True)
    env = {"FFCL_MODEL": str(work / "model.int.npz"), "FFCL_TRAIN": str(work / "train.json"),
           "FFCL_IMAGES": str(work / "images.npy"), "FFCL_LABELS": str(work / "labels.npy"),
           "FFCL_REPORT": str(report)}
    try:
        bench = run_tests(built, "sim.train_testbench", name="ffcl-hw-train-sim",
                          testcase="train_samples", env=env, progress=progress)
    except RuntimeError as error:
        raise RunError(str(error)) from None
    if not report.exists():
        raise RunError(f"the {simulator} simulation ended without a report; see {bench.log}")
    return TrainingRun.from_json(json.loads(report.read_text())), build_seconds


def _check_train_sim_options(simulator: str, samples: int, check_every: int | None,
                             lanes: int | None, weights: str) -> None:
    """Refuse a bad simulator, sample count, interval, lane count or weight memory (in
    that order)."""
    if simulator not in SIMULATORS:
        raise RunError(f"--simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise RunError(f"--samples must be a positive integer, not {samples!r}")
    if check_every is not None and (not isinstance(check_every, int) or check_every < 1):
        raise RunError(f"--check-every must be a positive integer, not {check_every!r}")
    if lanes is not None and (not isinstance(lanes, int) or lanes < 1):
        raise RunError(f"--lanes must be a positive integer, not {lanes!r}")
    if weights not in WEIGHT_KINDS:
        raise RunError(f"--weights must be one of {', '.join(WEIGHT_KINDS)} with --train, "
                       f"not {weights!r}")


def _check_lanes_fit(model: IntModel, rule: TrainRule, lanes: int, weights: str) -> None:
    """Refuse more lanes than the widest layer has neurons, or (``weights="spram"``) a
    word or a weight memory an SPRAM does not hold."""
    widest = max(model.config.hidden)
    if lanes > widest:
        raise RunError(f"--lanes {lanes} is more than the widest layer's {widest} neurons, "
                       f"so {lanes - widest} lanes would never update; use --lanes "
                       f"{widest} or fewer")
    if weights == "spram":
        _check_spram_fit(model, rule, lanes)
        _check_spram_depth(model, lanes, rule.store_bits)


def checked_lr_shift(rule: TrainRule, lr_shift: int | None) -> int:
    """lambda: ``lr_shift``, or :func:`default_lr_shift_for` when None; refuse one outside
    the training core's range (:attr:`golden.inttrain.TrainRule.lr_range`)."""
    low, high = rule.lr_range
    if lr_shift is None:
        return default_lr_shift_for(rule)
    if (not isinstance(lr_shift, int) or isinstance(lr_shift, bool)
            or not low <= lr_shift <= high):
        raise RunError(f"--lr-shift {lr_shift} is outside the training core's range "
                       f"{low}..{high} (lambda of the rule's first to last epoch); use "
                       f"--lr-shift {low} to {high}")
    return lr_shift


def training_samples(model: IntModel, rule: TrainRule, data: Any,
                     samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` training images (quantized) and labels, in epoch 0's order
    (:func:`train_order`), as int64."""
    order = train_order(rule, data.n_train)[:samples]
    images = model.quantize_input(data.x_train[order]).astype(np.int64)
    labels = data.y_train[order].astype(np.int64)
    return images, labels


def _train_sim_report(simulator: str, samples: int, check_every: int, lanes: int,
                      core: TrainingCore, board: str | None, rule: TrainRule,
                      rule_source: str, lr_shift: int, result: TrainingRun,
                      build_seconds: float, seconds: float) -> dict[str, Any]:
    """The report of a training simulation, before the results that count only when
    every check passed (``cycles_per_sample``, the accuracies, ``samples_per_second``)."""
    mismatch = result.mismatch
    return {
        "simulator": simulator,
        "samples": samples,
        "samples_trained": len(result.records),
        "check_every": check_every,
        "checked_samples": len(result.checked),
        "lanes": lanes,
        # The core's parameters (multipliers, weights, label lanes, the small-part
        # options: docs/training-engine.md, "The training core").
        **core.options,
        # SPRAM: one bank (a word every other cycle) or two (a word a cycle).
        "weight_banks": core.core.memories.weight_store.banks,
        # The board whose training build's core this is (None: the options given).
        "board": board,
        "rule": rule.to_dict(),
        "rule_source": rule_source,
        "lr_shift": lr_shift,
        "lr_range": list(core.lr_range),
        "weight_mismatches": 0 if mismatch is None else mismatch.words,
        "mismatch": None if mismatch is None else str(mismatch),
        "cycles_per_sample": None, "cycles_formula": core.training_cycles(),
        # The first sample's cycles per phase of the core's phase output (checked
        # against the closed form beside it; counted on the first sample only).
        "phase_cycles": result.phase_cycles,
        "phase_cycles_formula": core.training_phase_cycles(),
        "test_accuracy": None, "golden_test_accuracy": None,
        "initial_test_accuracy": None,
        "build_seconds": round(build_seconds, 3),
        "wall_seconds": round(seconds, 3),
        "samples_per_second": None,
    }


def _passed_results(model: IntModel, data: Any, checker: TrainingChecker,
                    result: TrainingRun, samples: int, seconds: float) -> dict[str, Any]:
    """Cycle counts and accuracies of a run whose every check passed: the trained and
    the golden trainer's models, and the starting one, on the test set."""
    x_test = model.quantize_input(data.x_test)
    trained = checker.model_from_words(result.words)
    golden = checker.model_from_words(result.golden_words)
    cycles = np.array([r[2] for r in result.records])
    return {
        "cycles_per_sample": {"min": int(cycles.min()), "mean": float(cycles.mean()),
                              "max": int(cycles.max())},
        "test_accuracy": float((trained.run(x_test).labels == data.y_test).mean()),
        "golden_test_accuracy": float((golden.run(x_test).labels == data.y_test).mean()),
        "initial_test_accuracy": float((model.run(x_test).labels == data.y_test).mean()),
        "samples_per_second": samples / seconds if seconds > 0 else None,
    }


def train_sim_run(run: Path, *, simulator: str = "verilator", samples: int,
                  check_every: int | None = None, lanes: int | None = None,
                  lr_shift: int | None = None, multipliers: str = "shared",
                  weights: str = "loadable", board: str | None = None,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train the simulated core on ``samples`` training samples; write ``RUN/train_sim.json``.

    ``lr_shift`` is lambda for every sample (default :func:`default_lr_shift_for`);
    ``multipliers`` where the update lanes multiply and ``weights`` where the stored
    weights live (:class:`rtl.training_core.TrainingCore`; ``"spram"``: loaded through
    the core's ``load`` port before the first sample). ``board``: instead of
    ``weights``, the core ``board``'s training build makes
    (:func:`ffcl_hw.flows.synth_training.training_core`: on the iCEBreaker SPRAM with
    the small-part options). ``lanes``: default 8, or with ``board`` that build's choice.

    Returns
    -------
    dict
        The report written (``mismatch`` is ``None`` when every check passed).

    Raises
    ------
    RunError
        Bad input (simulator, sample count, interval, lanes, weight memory, lambda
        outside the core's range; SPRAM words narrower than lanes x stored bits; a model
        the training core cannot train), checked before anything is simulated.
    """
    _check_train_sim_options(simulator, samples, check_every, lanes, weights)
    model, rule, rule_source, data = model_and_rule(run)
    if samples > data.n_train:
        raise RunError(f"--samples {samples} is more than the {data.n_train} training "
                       f"samples of {data.name}; use --samples {data.n_train} or fewer")
    board_core = None
    if board is not None:
        from ffcl_hw.flows.synth_training import choose_training_core

        # The build's own core: its choice of lanes, or the given ones, through its fit
        # check (a refusal says why).
        board_core = choose_training_core(model, rule, board, lanes, multipliers)[0]
        lanes, weights = board_core.lanes, board_core.weights
    lanes = 8 if lanes is None else lanes
    _check_lanes_fit(model, rule, lanes, weights)
    check_every = check_every or default_check_every(samples)
    lr_shift = checked_lr_shift(rule, lr_shift)
    try:
        core = board_core or TrainingCore(model, rule, lanes=lanes, multipliers=multipliers,
                                          weights=weights)
        checker = TrainingChecker(core, check_every=check_every, samples=samples,
                                  lr_shift=lr_shift)
    except ValueError as error:
        raise RunError(f"--train: {error}") from None
    images, labels = training_samples(model, rule, data, samples)

    start = time.perf_counter()
    if simulator == "amaranth":
        result = run_training(core, checker, images, labels, progress=progress)
        build_seconds = 0.0
    else:
        result, build_seconds = _simulate_cocotb(core, simulator, run, rule, lr_shift,
                                                 images, labels, check_every, progress)
    seconds = time.perf_counter() - start - build_seconds
    report = _train_sim_report(simulator, samples, check_every, lanes, core, board, rule,
                               rule_source, lr_shift, result, build_seconds, seconds)
    if result.mismatch is None:
        # Cycle counts and accuracies count only when every check passed.
        report.update(_passed_results(model, data, checker, result, samples, seconds))
    write_json(run / TRAIN_SIM_FILE, report)
    return report
