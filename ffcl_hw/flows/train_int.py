"""The integer train flow: the on-chip learning rule -> ``RUN/model.int.npz`` and metrics.

``ffcl-hw train --arith int`` trains with :mod:`golden.inttrain` (docs/integer-training.md)
from integer weights drawn from the seed, or from an existing run's ``model.int.npz``
(``--init RUN``: adapting a deployed model to new data). The run holds what a quantized
float run holds, so ``evaluate``, ``sim`` and ``bench`` accept it:

- ``model.int.npz``: the forward weights (the top bits of the stored weights);
- ``model.npz``: the same network in float (every integer times its scale), so the float
  tools can read it; its accuracy is ``dequantized_test_accuracy``;
- ``metrics.json``: ``int_test_accuracy`` (= ``test_accuracy``), the loss per epoch, the
  training time and the rule's parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffcl_hw.flows.quantize import INT_MODEL_FILE, format_summary
from ffcl_hw.flows.train import cost_summary
from ffcl_hw.runs import RunError, staged_run, write_json
from golden.datasets import Dataset
from golden.evaluate import evaluate
from golden.intformat import argmax
from golden.intmodel import IntModel
from golden.intmodelio import load_int_model, save_int_model
from golden.inttrain import TrainRule, initial_model, train_int
from golden.modelio import SavedModel, save_model
from golden.params import Parameters

__all__ = ["RESIZED_INPUT_MAX", "dequantize", "init_from_run", "seed_model",
           "train_float_sgd_run", "train_int_run"]

#: Integer full scale of resized pixels (as ``ffcl-hw quantize``).
RESIZED_INPUT_MAX = 255


def dequantize(model: IntModel) -> Parameters:
    """The float parameters an integer FFDL/FFCL model stands for (docs/integer-format.md)."""
    fmt = model.fmt
    s = 2.0 ** -fmt.frac_bits
    W, b, U, V = [], [], [], []
    for i, lay in enumerate(model.layers):
        scale = 2.0 ** -lay.w_exp * (fmt.input_max if i == 0 else 1)
        W.append(lay.W * scale)
        b.append(lay.b * s)
        U.append(None if lay.U is None else lay.U * s)
        V.append(None if lay.V is None else lay.V * 2.0 ** -lay.v_exp)
    return Parameters(W=W, b=b, U=U, V=V)


def init_from_run(run: Path, dataset: Dataset) -> IntModel:
    """The integer model of ``run`` (``--init``), checked against ``dataset``.

    Raises
    ------
    RunError
        If the run has no integer model or the data do not fit it.
    """
    path = run / INT_MODEL_FILE
    if not path.exists():
        raise RunError(f"--init {run}: no {INT_MODEL_FILE} there; quantize the run "
                       f"(`ffcl-hw quantize {run}`) or train one with --arith int")
    model = load_int_model(path).model
    if model.config.input_size != dataset.input_size:
        raise RunError(f"--init {run}: the model takes {model.config.input_size} pixels but "
                       f"{dataset.name} images have {dataset.input_size}; pass the --resize "
                       "the model was trained with")
    if dataset.num_classes > model.config.num_classes:
        raise RunError(f"--init {run}: {dataset.name} has {dataset.num_classes} classes but "
                       f"the model knows {model.config.num_classes}")
    return model


@dataclass
class IntTrainedRun:
    """A finished integer run: the model and the metrics written."""

    model: IntModel
    metrics: dict[str, Any]


def train_int_run(
    dataset: Dataset,
    model: IntModel,
    rule: TrainRule,
    out: Path,
    *,
    resize: int | None = None,
    init: Path | None = None,
    force: bool = False,
    callback=None,
) -> IntTrainedRun:
    """Train ``model`` with the rule on ``dataset`` and write the run folder ``out``."""
    config = model.config
    try:
        with staged_run(out, force=force) as staging:
            x_train = model.quantize_input(dataset.x_train)
            x_test = model.quantize_input(dataset.x_test)
            start_accuracy = float((model.run(x_test).labels == dataset.y_test).mean())
            result = train_int(model, rule, x_train, dataset.y_train, callback=callback)
            trained = result.model
            data = {"dataset": dataset.name, "resize": resize, "calibration_images": 0}
            # Trained as an integer model: it pairs with no float model (the model.npz
            # beside it is its dequantized copy, not its origin).
            source = {"trained": {"rule": rule.to_dict(), "dataset": dataset.name,
                                  "init": None if init is None else str(init)}}
            save_int_model(staging / INT_MODEL_FILE, trained, data=data, source=source)
            # Measure the model as read back from the file.
            stored = load_int_model(staging / INT_MODEL_FILE).model
            start = time.perf_counter()
            run = stored.run(x_test)
            eval_seconds = time.perf_counter() - start
            params = dequantize(stored)
            float_result = evaluate(config, params, dataset.x_test, dataset.y_test)
            save_model(staging / "model.npz", SavedModel(
                config=config, params=params, data={"dataset": dataset.name, "resize": resize}))
            cost = cost_summary(config)
            int_accuracy = float((run.labels == dataset.y_test).mean())
            per_layer = [float((argmax(run.goodness[:, i]) == dataset.y_test).mean())
                         for i in range(config.num_layers)]
            metrics: dict[str, Any] = {
                "dataset": dataset.name,
                "resize": resize,
                "arith": "int",
                "algo": config.algo,
                "hidden": list(config.hidden),
                "loops": config.loops,
                "test_accuracy": int_accuracy,
                "int_test_accuracy": int_accuracy,
                "per_layer_test_accuracy": per_layer,
                "int_per_layer_test_accuracy": per_layer,
                "all_layers_test_accuracy": int_accuracy,
                "dequantized_test_accuracy": float_result.accuracy,
                "initial_int_test_accuracy": start_accuracy,
                "init": None if init is None else str(init),
                "test_samples": int(dataset.y_test.shape[0]),
                "macs_per_inference": cost["macs"],
                "cost_per_inference": cost,
                "parameters": int(sum(np.size(a) for lay in stored.layers
                                      for a in (lay.W, lay.b, lay.U, lay.V) if a is not None)),
                "train_seconds": round(result.seconds, 3),
                "eval_seconds": round(eval_seconds, 3),
                "loss_history": [round(r.loss, 6) for r in result.history],
                "lr_shift_history": [r.lr_shift for r in result.history],
                "model": config.to_dict(),
                "rule": rule.to_dict(),
                "int_format": format_summary(stored),
                "update_widths": result.trainer.update_widths(),
            }
            write_json(staging / "metrics.json", metrics)
    except ValueError as error:
        raise RunError(f"integer training: {error}") from None
    return IntTrainedRun(model=stored, metrics=metrics)


def seed_model(dataset: Dataset, config, *, resize: int | None, seed: int, weight_bits: int,
               state_bits: int, frac_bits: int | None) -> IntModel:
    """Integer starting weights for ``config`` from ``seed`` (:func:`initial_model`)."""
    input_max = dataset.pixel_max if resize is None else RESIZED_INPUT_MAX
    try:
        return initial_model(config, dataset.x_train, input_max=input_max, seed=seed,
                             weight_bits=weight_bits, state_bits=state_bits,
                             frac_bits=frac_bits)
    except ValueError as error:
        raise RunError(f"integer training: {error}") from None


def train_float_sgd_run(dataset: Dataset, config, rule: TrainRule, out: Path, *,
                        resize: int | None = None, force: bool = False) -> dict[str, Any]:
    """The rule's float twin (:mod:`golden.float_sgd`): writes ``model.npz`` and metrics.

    ``train --arith float-sgd``: the baseline the integer rule is measured against (same
    initial weights, sample order, batch size 1 and learning-rate schedule, in float64).
    """
    from golden.float_sgd import train_float_sgd

    with staged_run(out, force=force) as staging:
        params, losses, seconds = train_float_sgd(config, rule, dataset.x_train,
                                                  dataset.y_train)
        test = evaluate(config, params, dataset.x_test, dataset.y_test)
        cost = cost_summary(config)
        metrics: dict[str, Any] = {
            "dataset": dataset.name, "resize": resize, "arith": "float-sgd",
            "algo": config.algo, "hidden": list(config.hidden), "loops": config.loops,
            "test_accuracy": test.accuracy,
            "per_layer_test_accuracy": test.per_layer_accuracy,
            "all_layers_test_accuracy": test.all_layers_accuracy,
            "test_samples": test.samples, "macs_per_inference": cost["macs"],
            "cost_per_inference": cost, "parameters": params.count(),
            "train_seconds": round(seconds, 3), "loss_history": [round(v, 6) for v in losses],
            "model": config.to_dict(), "rule": rule.to_dict(),
        }
        save_model(staging / "model.npz", SavedModel(
            config=config, params=params, data={"dataset": dataset.name, "resize": resize}))
        write_json(staging / "metrics.json", metrics)
    return metrics
