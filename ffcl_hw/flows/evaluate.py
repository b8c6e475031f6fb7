"""The evaluate flow: a saved run against a data set's test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ffcl_hw.runs import RunError
from golden.datasets import Dataset, load_dataset
from golden.evaluate import evaluate
from golden.modelio import SavedModel, load_model

__all__ = ["evaluate_run", "load_run_dataset"]


def load_run_dataset(model: SavedModel, dataset: str | None,
                     resize: int | None) -> tuple[Dataset, int | None]:
    """The data set a run is evaluated on: the one given, else the one it was trained on.

    Raises
    ------
    RunError
        If the images do not have the model's input size or labels beyond its classes.
    """
    name = dataset or model.data.get("dataset")
    if name is None:
        raise RunError("the model does not record its data set; pass --dataset")
    if resize is None and dataset is None:
        resize = model.data.get("resize")
    data = load_dataset(name, resize=resize)
    config = model.config
    if data.input_size != config.input_size:
        raise RunError(
            f"{data.name} images have {data.input_size} pixels "
            f"({data.image_shape[0]}x{data.image_shape[1]}) but the model takes "
            f"{config.input_size}; pass the --resize the model was trained with"
        )
    if data.num_classes > config.num_classes:
        raise RunError(
            f"{data.name} has {data.num_classes} classes but the model knows "
            f"{config.num_classes}"
        )
    return data, resize


def evaluate_run(run: Path, *, dataset: str | None = None,
                 resize: int | None = None) -> dict[str, Any]:
    """Accuracy of the model in ``run`` on a test split (default: its own data set)."""
    model = load_model(run / "model.npz")
    data, resize = load_run_dataset(model, dataset, resize)
    result = evaluate(model.config, model.params, data.x_test, data.y_test)
    return {
        "run": str(run),
        "dataset": data.name,
        "resize": resize,
        "algo": model.config.algo,
        "hidden": list(model.config.hidden),
        "test_accuracy": result.accuracy,
        "per_layer_test_accuracy": result.per_layer_accuracy,
        "all_layers_test_accuracy": result.all_layers_accuracy,
        "test_samples": result.samples,
    }
