# amaranth: UnusedElaboratable=no
"""The board training flow: a run's training set trained on a board, the model read back.

``ffcl-hw run RUN --port PORT --train [--epochs N]`` trains a board whose bitstream holds
a :class:`rtl.training_core.TrainingCore` on RUN's training set in golden ``train_int``'s
order (epoch e: the e-th ``permutation(n)`` of ``default_rng(rule.seed)``) and lambda
schedule (``rule.lr_shift_at(e)``), with :class:`golden.inttrain.IntTrainer` running
alongside on the host: every TRAIN record (the label of the training pass, the wrong
label) is checked against what the trainer reports for the sample
(:class:`golden.inttrain.SampleResult`), and at the end every stored word read back (W,
FFCL's V, b, U) must equal the trainer's.
From a freshly configured board (IDENT: nothing trained, the run's weights), the board's
model is then train_int's for the same seed and epochs. A training core that keeps its
weights in SPRAM (IDENT: loadable, empty at configuration) is first loaded with the run's
starting model, its stored words, in one load transaction (again if it has trained since
configuration: the commit restarts its generators from the seed, so a used board trains
as a fresh one; a block RAM training core that has trained must be configured again).
``RUN/board_train.json`` holds the report. ``--read [--out NEW]`` saves the model the
board holds as an integer run (the forward weights in ``model.int.npz`` with their
provenance, its dequantized twin ``model.npz`` and ``metrics.json``), so that
``evaluate``, ``sim`` and ``bench`` take it.

The rule is the run's (``metrics.json``'s ``rule``, written by ``train --arith int``) with
``epochs`` from ``--epochs``; a quantized float run has none, and gets the rule ``train
--arith int`` would use by default (``lr_shift`` from :func:`golden.inttrain.default_lr_shift`,
steps at half and three quarters of the epochs, seed 0). The bitstream must have been
built with the same rule: IDENT's stored width and lambda are checked; the generators'
seed, the rounding and the sigmoid are not in IDENT, and a difference shows as a record
that differs from the trainer's.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ffcl_hw.device import Device, HostLinkError, Port, lambdas
from ffcl_hw.flows.board_run import _identify, open_port
from ffcl_hw.flows.evaluate import load_run_dataset
from ffcl_hw.flows.quantize import INT_MODEL_FILE, load_quantized_run
from ffcl_hw.flows.synth import BAUD
from ffcl_hw.flows.train_int import dequantize
from ffcl_hw.runs import RunError, staged_run, write_json
from golden.datasets import Dataset
from golden.intmodel import IntModel
from golden.intmodelio import save_int_model
from golden.inttrain import IntTrainer, TrainRule, default_lr_shift, default_lr_steps
from golden.modelio import SavedModel, save_model
from rtl.host_link import LinkIdentity, link_identity
from sim.train_check import first_stored_difference

__all__ = ["BOARD_TRAIN_FILE", "TRAINABLE", "board_read", "board_train", "run_rule"]

#: What ``--train`` writes into the run folder.
BOARD_TRAIN_FILE = "board_train.json"
#: The algorithms ``--train`` takes: those the training core trains (FFL's two labels
#: need two forward passes and two updates; the integer rule does not train it).
TRAINABLE = ("ffdl", "ffcl")


def run_rule(run: Path, epochs: int, x_train: np.ndarray) -> TrainRule:
    """The rule ``run`` was (or would by default be) trained with, for ``epochs`` epochs."""
    path = run / "metrics.json"
    stored = None
    if path.exists():
        try:
            stored = json.loads(path.read_text()).get("rule")
        except (OSError, json.JSONDecodeError, AttributeError) as error:
            raise RunError(f"{path} is not readable JSON ({error})") from None
    try:
        if stored is None:
            return TrainRule(epochs=epochs, lr_shift=default_lr_shift(x_train),
                             lr_steps=default_lr_steps(epochs))
        fields = ("lr_shift", "lr_steps", "store_bits", "rounding", "sigmoid",
                  "loss_iterations", "seed", "upper_lr_boost")
        return TrainRule(epochs=epochs, **{k: stored[k] for k in fields if k in stored})
    except (ValueError, TypeError) as error:
        raise RunError(f"{path}: the run's rule cannot be used: {error}") from None


def _connect(port: str, baud: int, timeout: float,
             connect: Callable[[str], Port] | None) -> Port:
    serial_port = (connect or (lambda p: open_port(p, baud=baud, timeout=timeout)))(port)
    if hasattr(serial_port, "reset_input_buffer"):
        serial_port.reset_input_buffer()
    return serial_port


def _training_board(device: Device, port: str, baud: int, timeout: float, model: IntModel,
                    run: Path) -> LinkIdentity:
    identity = _identify(device, port, baud, timeout, idle_seconds=200 * 10 / baud)
    if not identity.trains:
        raise RunError(f"the device on {port} does not train: its bitstream holds the "
                       "inference core only (IDENT's trains flag is 0). Build and flash a "
                       "bitstream with the training core")
    try:
        device.check(model, lanes=identity.lanes, label_lanes=identity.label_lanes)
    except HostLinkError as error:
        raise RunError(f"the device on {port} holds another model than {run}: {error}. "
                       "Build and flash this run's training bitstream") from None
    return identity


class _Training(NamedTuple):
    """What :func:`_train_alongside` saw on the board."""

    #: The records that differed from the golden trainer's, in words (training stops at
    #: the block of the first).
    mismatches: list[str]
    #: Every trained sample's cycle count, as its record gives it.
    cycles: list[int]
    #: Samples trained.
    samples: int
    #: Seconds the training took, over the link.
    seconds: float


def _check_trainable(model: IntModel, run: Path) -> None:
    """Refuse a model of an algorithm the training core does not train (FFL)."""
    if model.config.algo not in TRAINABLE:
        raise RunError(f"{run} is an {model.config.algo.upper()} model; training over the "
                       f"host link takes {' and '.join(a.upper() for a in TRAINABLE)} runs "
                       "(the integer rule trains those): train one with `ffcl-hw train "
                       "--arith int --algo ffdl|ffcl`")


def _check_built_for(identity: LinkIdentity, rule: TrainRule, schedule: list[int], *,
                     port: str, run: Path) -> None:
    """Refuse a board whose bitstream was built for another stored width or lambda range
    than ``rule``'s, or a block RAM training core that has trained since configuration
    (it cannot be loaded back to the run's starting point)."""
    if identity.stored_bits != rule.store_bits:
        raise RunError(f"the device on {port} stores {identity.stored_bits}-bit weights, "
                       f"{run}'s rule {rule.store_bits}: build the bitstream with the "
                       "run's rule")
    for epoch, lam in enumerate(schedule):
        if not identity.lr_first <= lam <= identity.lr_last:
            raise RunError(
                f"the device on {port} trains with lambda {lambdas(identity)} only (the "
                f"schedule its bitstream was built for); {run}'s schedule needs {lam} at "
                f"epoch {epoch + 1}. "
                + (f"Pass --epochs {epoch} or fewer, or build" if epoch else "Build")
                + " the bitstream with the run's rule")
    if identity.trained and not identity.loadable:
        raise RunError(f"the device on {port} has trained {identity.trained} samples "
                       "since it was configured: its weights and generators are no longer "
                       f"{run}'s starting point. Configure the FPGA again (flash the "
                       "bitstream) to train from the run's model")


def _with_starting_model(device: Device, identity: LinkIdentity, model: IntModel,
                         rule: TrainRule, *, port: str, run: Path,
                         log: Callable[[str], None] | None
                         ) -> tuple[LinkIdentity, int, float | None]:
    """Make sure the board holds ``run``'s starting model: load it into a loadable
    training core that does not hold it untrained (:func:`_load_starting_model`), then
    refuse a board that holds no complete model or other weights.

    Returns
    -------
    (identity, loaded, load_seconds)
        IDENT after any load, the load's writes (0 without one) and its seconds (None
        without one).
    """
    expected = link_identity(model, lanes=identity.lanes, label_lanes=identity.label_lanes,
                             rule=rule, train_block=identity.train_block)
    loaded, load_seconds = 0, None
    # IDENT's checksum is the last commit's, whatever was trained since: a board
    # that has trained is loaded again, and the commit restarts its generators.
    if identity.loadable and (not identity.model_loaded or identity.trained
                              or identity.weights_checksum != expected.weights_checksum):
        loaded, load_seconds = _load_starting_model(device, identity, model, port=port,
                                                    run=run, log=log)
        identity = device.identify()
    if not identity.model_loaded:
        raise RunError(f"the device on {port} holds no complete model (a load is open or "
                       "failed); configure the FPGA again")
    if identity.weights_checksum != expected.weights_checksum:
        raise RunError(f"the device on {port} holds other weights than {run} (weights "
                       f"checksum 0x{identity.weights_checksum:08X}, the run's stored "
                       f"words 0x{expected.weights_checksum:08X}); flash this run's "
                       "training bitstream")
    return identity, loaded, load_seconds


def _load_starting_model(device: Device, identity: LinkIdentity, model: IntModel, *,
                         port: str, run: Path,
                         log: Callable[[str], None] | None) -> tuple[int, float]:
    """Load ``model``'s stored words in one load transaction, telling ``log`` why; return
    the load's writes and seconds."""
    # An SPRAM training core comes up empty: the run's starting stored words go in
    # first, in one load transaction, which also restarts training from the seed.
    if log is not None:
        log(f"loading {run}'s starting model into the device on {port} ("
            + (f"it has trained {identity.trained} samples: the load's commit "
               "restarts it from the rule's seed" if identity.trained else
               "its weights are in SPRAM, which starts empty") + ")")
    start = time.perf_counter()
    try:
        loaded = device.load_model(model)
    except HostLinkError as error:
        raise RunError(f"loading {run}'s starting model into the device on {port}: "
                       f"{error}") from None
    return loaded, time.perf_counter() - start


def _train_alongside(device: Device, trainer: IntTrainer, x_train: np.ndarray,
                     y_train: np.ndarray, schedule: list[int], *, seed: int, block: int,
                     progress: Callable[[int], None] | None) -> _Training:
    """Train the board in train_int's order (epoch e: the e-th permutation of
    ``default_rng(seed)``), ``block`` samples a TRAIN, with ``trainer`` taking the same
    samples; check every record against the trainer's result."""
    order_rng = np.random.default_rng(seed)
    mismatches, cycles, done = [], [], 0
    start = time.perf_counter()
    for epoch, lam in enumerate(schedule):
        order = order_rng.permutation(len(y_train))
        for first in range(0, len(order), block):
            if mismatches:
                # Once the board has parted from the trainer, what follows tells nothing.
                break
            chunk = order[first:first + block]
            try:
                records = device.train(x_train[chunk], y_train[chunk], lam)
            except (HostLinkError, ValueError) as error:
                raise RunError(f"epoch {epoch + 1}, samples {first}..{first + len(chunk) - 1}"
                               f": {error}") from None
            for n, record in zip(chunk, records, strict=True):
                result = trainer.train_sample(x_train[n], int(y_train[n]), lam)
                if (record.label, record.wrong) != (result.label, result.wrong):
                    mismatches.append(f"epoch {epoch + 1} sample {done} (training image "
                                      f"{n}): prediction {record.label}, wrong label "
                                      f"{record.wrong} on the board; {result.label}, "
                                      f"{result.wrong} in the golden trainer")
                cycles.append(record.cycles)
                done += 1
            if progress is not None:
                progress(done)
    return _Training(mismatches, cycles, done, time.perf_counter() - start)


def _checked_results(training: _Training, trainer: IntTrainer, forward: IntModel,
                     stored: list[dict], *, model: IntModel, rule: TrainRule, lanes: int,
                     data: Dataset) -> dict[str, Any]:
    """The report's checks and measures: records and stored words against the golden
    trainer, test accuracy of the model read back and of the trainer's, cycles per
    sample (only when everything matched) and the closed form's, time."""
    from rtl.training_core import TrainingCore

    mismatches, seconds = training.mismatches, training.seconds
    difference = first_stored_difference(stored, trainer.stored)
    x_test = model.quantize_input(data.x_test)
    accuracy = float((forward.run(x_test).labels == data.y_test).mean())
    golden_accuracy = float((trainer.model.run(x_test).labels == data.y_test).mean())
    closed_form = TrainingCore(model, rule, lanes=lanes).training_cycles()
    c = np.array(training.cycles)
    return {
        # Training stops at the block of the first record that differs.
        "mismatches": len(mismatches),
        "first_mismatch": mismatches[0] if mismatches else None,
        "model_equal": difference is None, "first_difference": difference,
        "accuracy": accuracy, "golden_int_accuracy": golden_accuracy,
        # Cycle counts count only when every record and word matched the golden trainer.
        "cycles_per_sample": None if mismatches or difference else {
            "min": int(c.min()), "mean": float(c.mean()), "max": int(c.max())},
        "cycles_formula": closed_form,
        "seconds": round(seconds, 3),
        "samples_per_second": training.samples / seconds if seconds > 0 else None,
    }


def board_train(run: Path, *, port: str, epochs: int = 1, baud: int = BAUD,
                timeout: float = 2.0, connect: Callable[[str], Port] | None = None,
                progress: Callable[[int], None] | None = None,
                keep: dict[str, Any] | None = None,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the board at ``port`` on ``run``'s training set for ``epochs`` epochs and
    write ``RUN/board_train.json`` (module docstring).

    Parameters
    ----------
    keep : dict, optional
        Filled with ``model`` (the forward model read back), ``stored``, ``identity`` and
        ``rule``, for :func:`board_read` after training.
    log : callable, optional
        Told, in a sentence, of a step that is not training: loading the run's starting
        model into a device whose training core keeps its weights in SPRAM.

    Returns
    -------
    dict
        The report: ``mismatches`` (records that differ from the golden trainer's),
        ``first_mismatch``, ``model_equal`` (every stored word read back equals the
        trainer's), ``first_difference``, ``cycles_per_sample``, ``accuracy`` ...

    Raises
    ------
    RunError
        For a bad ``epochs``, a model the training core cannot train (FFL), a board that
        does not train, holds another model, has trained since it was configured (block
        RAM: an SPRAM board is loaded again instead), or
        takes another stored width or lambda than the rule's, or refuses the load of the
        starting model; the message says the fix.
    """
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise RunError(f"--epochs must be a positive integer, not {epochs!r}")
    float_model, model = load_quantized_run(run)
    _check_trainable(model, run)
    data, _ = load_run_dataset(float_model, None, None)
    rule = run_rule(run, epochs, data.x_train)
    x_train = model.quantize_input(data.x_train)
    y_train = np.asarray(data.y_train, dtype=np.int64)
    schedule = [rule.lr_shift_at(e) for e in range(epochs)]

    serial_port = _connect(port, baud, timeout, connect)
    try:
        device = Device(serial_port)
        identity = _training_board(device, port, baud, timeout, model, run)
        _check_built_for(identity, rule, schedule, port=port, run=run)
        identity, loaded, load_seconds = _with_starting_model(device, identity, model, rule,
                                                              port=port, run=run, log=log)
        trainer = IntTrainer(model, rule)
        training = _train_alongside(device, trainer, x_train, y_train, schedule,
                                    seed=rule.seed, block=max(1, identity.train_block),
                                    progress=progress)
        try:
            forward, stored = device.read_model(model)
        except HostLinkError as error:
            raise RunError(f"reading the trained model back from {port}: {error}") from None
        identity = device.identify()
    finally:
        if hasattr(serial_port, "close"):
            serial_port.close()

    report: dict[str, Any] = {
        "port": port, "baud": baud, "epochs": epochs, "samples": training.samples,
        # Writes of the starting model's load (an SPRAM training core), 0 without one.
        "loaded": loaded,
        "load_seconds": None if load_seconds is None else round(load_seconds, 3),
        "lr_shifts": schedule, "rule": rule.to_dict(), "device": dataclasses.asdict(identity),
        **_checked_results(training, trainer, forward, stored, model=model, rule=rule,
                           lanes=identity.lanes, data=data),
    }
    write_json(run / BOARD_TRAIN_FILE, report)
    if keep is not None:
        keep.update(model=forward, stored=stored, identity=identity, rule=rule)
    return report


def board_read(run: Path, *, port: str, out: Path | None = None, baud: int = BAUD,
               timeout: float = 2.0, connect: Callable[[str], Port] | None = None,
               kept: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save the model the board at ``port`` holds as the integer run ``out`` (default
    ``RUN-board`` beside RUN); ``kept`` is :func:`board_train`'s, to save without reading
    again.

    Returns
    -------
    dict
        The new run's metrics.

    Raises
    ------
    RunError
        If the board does not train or holds another configuration, or ``out`` exists.
    """
    float_model, model = load_quantized_run(run)
    out = run.parent / f"{run.name}-board" if out is None else out
    data, resize = load_run_dataset(float_model, None, None)
    if kept is None:
        serial_port = _connect(port, baud, timeout, connect)
        try:
            device = Device(serial_port)
            identity = _training_board(device, port, baud, timeout, model, run)
            try:
                forward, _ = device.read_model(model)
            except HostLinkError as error:
                raise RunError(f"reading the model from {port}: {error}") from None
        finally:
            if hasattr(serial_port, "close"):
                serial_port.close()
    else:
        forward, identity = kept["model"], kept["identity"]
    config = model.config
    x_test = model.quantize_input(data.x_test)
    with staged_run(out, force=False) as staging:
        source = {"trained": {"on_board": {"port": port, "samples_trained": identity.trained,
                                           "model_hash": identity.model_hash,
                                           "stored_bits": identity.stored_bits},
                              "dataset": data.name, "init": str(run)}}
        save_int_model(staging / INT_MODEL_FILE, forward,
                       data={"dataset": data.name, "resize": resize, "calibration_images": 0},
                       source=source)
        save_model(staging / "model.npz", SavedModel(
            config=config, params=dequantize(forward),
            data={"dataset": data.name, "resize": resize}))
        accuracy = float((forward.run(x_test).labels == data.y_test).mean())
        metrics = {"dataset": data.name, "resize": resize, "arith": "int",
                   "algo": config.algo, "hidden": list(config.hidden), "loops": config.loops,
                   "test_accuracy": accuracy, "int_test_accuracy": accuracy,
                   "init": str(run), "read_from_board": port,
                   "samples_trained_on_board": identity.trained,
                   "test_samples": int(len(data.y_test)), "model": config.to_dict()}
        if kept is not None:
            metrics["rule"] = kept["rule"].to_dict()
        write_json(staging / "metrics.json", metrics)
    return metrics
