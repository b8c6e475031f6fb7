"""The train flow: data set -> golden float model -> ``RUN/model.npz`` + ``RUN/metrics.json``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffcl_hw.runs import RunError, staged_run, write_json
from golden.config import ModelConfig, TrainConfig
from golden.costs import inference_cost
from golden.datasets import Dataset
from golden.evaluate import evaluate
from golden.modelio import SavedModel, save_model
from golden.training import ProgressCallback, TrainingDiverged, train

__all__ = ["TrainedRun", "cost_summary", "train_run"]


@dataclass
class TrainedRun:
    """A finished run: the model as saved and its metrics."""

    model: SavedModel
    metrics: dict[str, Any]


def cost_summary(config: ModelConfig) -> dict[str, Any]:
    """The cost model's counts for ``config`` (and the fair FFL baseline for FFL)."""
    summary: dict[str, Any] = inference_cost(config).to_dict()
    if config.algo == "ffl":
        summary["fair_ffl"] = inference_cost(config, fair=True).to_dict()
    return summary


def train_run(
    dataset: Dataset,
    config: ModelConfig,
    train_config: TrainConfig,
    out: Path,
    *,
    resize: int | None = None,
    force: bool = False,
    callback: ProgressCallback | None = None,
) -> TrainedRun:
    """Train ``config`` on ``dataset``, evaluate it and write the run folder ``out``.

    ``resize`` is recorded with the model, so that evaluation can load the same inputs.

    Returns
    -------
    TrainedRun
        The saved model and the metrics written to ``out/metrics.json``.

    Raises
    ------
    RunError
        If ``out`` cannot be written (:func:`~ffcl_hw.runs.staged_run`), or training
        diverged (nothing is written then).
    """
    with staged_run(out, force=force) as staging:
        try:
            # Overflow on the way to a NaN loss is reported once, by the error below,
            # rather than as a screen of NumPy warnings.
            with np.errstate(over="ignore", invalid="ignore"):
                result = train(config, train_config, dataset.x_train, dataset.y_train,
                               callback=callback)
        except TrainingDiverged as error:
            raise RunError(f"training diverged in epoch {error.epoch} of {error.epochs}: the "
                           f"loss became {error.loss}; lower --lr (now {train_config.lr:g}) "
                           f"or --theta (now {config.theta:g}); no model was written"
                           ) from None
        start = time.perf_counter()
        test = evaluate(config, result.params, dataset.x_test, dataset.y_test)
        eval_seconds = time.perf_counter() - start
        model = SavedModel(
            config=config, params=result.params, train_config=train_config,
            data={"dataset": dataset.name, "resize": resize},
        )
        cost = cost_summary(config)
        metrics: dict[str, Any] = {
            "dataset": dataset.name,
            "resize": resize,
            "algo": config.algo,
            "hidden": list(config.hidden),
            "loops": config.loops,
            "test_accuracy": test.accuracy,
            "per_layer_test_accuracy": test.per_layer_accuracy,
            "all_layers_test_accuracy": test.all_layers_accuracy,
            "test_samples": test.samples,
            "macs_per_inference": cost["macs"],
            "cost_per_inference": cost,
            "parameters": result.params.count(),
            "train_seconds": round(result.seconds, 3),
            "eval_seconds": round(eval_seconds, 3),
            "loss_history": [round(r.loss, 6) for r in result.history],
            "model": config.to_dict(),
            "train": train_config.to_dict(),
        }
        save_model(staging / "model.npz", model)
        write_json(staging / "metrics.json", metrics)
    return TrainedRun(model=model, metrics=metrics)
