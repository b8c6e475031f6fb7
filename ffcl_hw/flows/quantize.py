"""The quantize flow: ``RUN/model.npz`` -> ``RUN/model.int.npz`` + integer metrics.

The float model is quantized (:func:`golden.quantize.quantize`) on the first training
images, the integer model is run bit-exactly (:meth:`golden.intmodel.IntModel.run`) on the
quantized test images, and the integer and float accuracies are added to
``RUN/metrics.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ffcl_hw.flows.evaluate import load_run_dataset
from ffcl_hw.runs import RunError, write_json
from golden.evaluate import evaluate
from golden.intformat import argmax
from golden.intmodel import IntModel
from golden.intmodelio import SavedIntModel, load_int_model, save_int_model
from golden.modelio import SavedModel, load_model, model_digest
from golden.quantize import quantize

__all__ = ["INT_MODEL_FILE", "format_summary", "load_quantized_run", "load_run_int_model",
           "quantize_run"]

#: Where :func:`quantize_run` writes the integer model inside a run.
INT_MODEL_FILE = "model.int.npz"
#: Integer full scale of resized pixels (see :func:`quantize_run`).
_RESIZED_INPUT_MAX = 255


def format_summary(model: IntModel) -> dict[str, Any]:
    """The formats of ``model`` and the datapath widths they imply (JSON-ready).

    The :class:`~golden.intformat.IntFormat` fields, then ``acc_bits`` (the widest MAC
    accumulator), ``layer_acc_bits`` and ``feedback_acc_bits`` (per layer; ``None`` where a
    layer has no feedback), ``sq_bits`` (sum of squares) and ``score_bits``.
    """
    return {
        **model.fmt.to_dict(),
        "acc_bits": model.max_acc_bits(),
        "layer_acc_bits": [model.acc_bits(i) for i in range(len(model.layers))],
        "feedback_acc_bits": [None if layer.V is None else model.acc_bits(i, True)
                              for i, layer in enumerate(model.layers)],
        "sq_bits": model.sq_bits(),
        "score_bits": model.score_bits(),
    }


def _trained_with(seed: int | None) -> str:
    return "of unknown seed" if seed is None else f"trained with seed {seed}"


def load_run_int_model(run: Path) -> SavedIntModel:
    """The integer model of ``run``, checked to belong to the run's float model.

    A model quantized from a float model must come from ``RUN/model.npz`` itself: the
    digest it records (:func:`golden.modelio.model_digest`) must be that file's, or a
    model of another run with the same configuration (another seed) would pass. A model
    trained as an integer model (source ``trained``) pairs with no float model. A model
    that records no source (written by an older ffcl-hw) is refused: nothing tells
    which float model it came from.

    Raises
    ------
    RunError
        If the integer model is of another float model, or does not say which.
    ModelFileError
        If a file is missing or malformed.
    """
    path = run / INT_MODEL_FILE
    saved = load_int_model(path)
    source = saved.source
    fix = f"run `ffcl-hw quantize {run}` again"
    if source is None:
        raise RunError(f"{path} does not record the float model it was quantized from "
                       f"(it was written by an older ffcl-hw); {fix}")
    if "quantized_from" not in source:
        return saved
    origin = source["quantized_from"]
    float_model = load_model(run / "model.npz")
    digest = model_digest(float_model)
    if origin["digest"] != digest:
        seed = None if float_model.train_config is None else float_model.train_config.seed
        raise RunError(
            f"{path} was quantized from the float model of {origin.get('run', 'another run')}"
            f" ({_trained_with(origin.get('seed'))}, digest {origin['digest'][:12]}), not "
            f"from {run / 'model.npz'} ({_trained_with(seed)}, digest {digest[:12]}); {fix}"
        )
    return saved


def load_quantized_run(run: Path) -> tuple[SavedModel, IntModel]:
    """The float model of ``run`` and the integer model quantized from it
    (:func:`load_run_int_model`).

    Raises
    ------
    RunError
        If ``model.int.npz`` was quantized from another model than ``model.npz``.
    ModelFileError
        If either file is missing or malformed.
    """
    # Check the pair of model files before anything is built from them.
    model = load_run_int_model(run).model
    float_model = load_model(run / "model.npz")
    return float_model, model


def _read_metrics(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RunError(f"{path} is not readable JSON ({error}); retrain the run") from None
    if not isinstance(metrics, dict):
        raise RunError(f"{path} must hold a JSON object, not {type(metrics).__name__}")
    return metrics


def quantize_run(run: Path, *, weight_bits: int = 8, state_bits: int = 16,
                 calibration: int = 1000) -> dict[str, Any]:
    """Quantize the model of ``run`` and measure the integer model on its test split.

    Pixels: without resizing, the data set's own integers 0..``pixel_max`` (16 for digits,
    255 for IDX data) are the hardware's inputs, exactly. A resized pixel is an average of
    raw pixels, no longer an integer of the raw scale, so it is re-quantized to 8 bits
    (0..255), the width of the original images.

    Parameters
    ----------
    run : Path
        A run folder written by ``ffcl-hw train`` (``model.npz``, ``metrics.json``).
    weight_bits, state_bits : int
        The formats (:class:`~golden.intformat.IntFormat`).
    calibration : int
        How many of the first training images set the pre-activation range.

    Returns
    -------
    dict
        The metrics added to ``run/metrics.json``: ``int_test_accuracy``,
        ``float_test_accuracy``, ``int_per_layer_test_accuracy`` and ``int_format``
        (:func:`format_summary`).

    Raises
    ------
    RunError
        If ``run`` is not a folder, its metrics are unreadable, or the model cannot be
        quantized to the formats asked for.
    ModelFileError
        If the float model is missing or malformed.
    """
    if not isinstance(calibration, int) or isinstance(calibration, bool) or calibration < 1:
        raise RunError(f"calibration must be a positive number of images, not {calibration!r}")
    if not run.is_dir():
        raise RunError(f"no run folder at {run}; train one with `ffcl-hw train --out RUN`")
    saved = load_model(run / "model.npz")
    metrics_path = run / "metrics.json"
    # Read before the work, so a broken metrics file is reported before minutes are spent.
    metrics = _read_metrics(metrics_path)
    data, resize = load_run_dataset(saved, None, None)
    input_max = data.pixel_max if resize is None else _RESIZED_INPUT_MAX
    config = saved.config
    try:
        int_model = quantize(config, saved.params, data.x_train[:calibration],
                             input_max=input_max, weight_bits=weight_bits,
                             state_bits=state_bits)
    except ValueError as error:
        raise RunError(f"cannot quantize {run / 'model.npz'}: {error}") from None

    final = run / INT_MODEL_FILE
    partial = run / f".{INT_MODEL_FILE}.partial"
    try:
        n_calibration = min(calibration, data.n_train)
        save_int_model(partial, int_model, data={
            "dataset": data.name, "resize": resize, "calibration_images": n_calibration,
        }, source={"quantized_from": {
            # The digest pairs the two files; the rest says where the model came from
            # when a copied integer model meets another run's float model.
            "digest": model_digest(saved), "run": str(run.resolve()),
            "seed": None if saved.train_config is None else saved.train_config.seed,
        }})
        # Measure the model as read back from the file, so the numbers describe the file.
        stored = load_int_model(partial).model
        result = stored.run(stored.quantize_input(data.x_test))
        per_layer = [float((argmax(result.goodness[:, i]) == data.y_test).mean())
                     for i in range(config.num_layers)]
        float_result = evaluate(config, saved.params, data.x_test, data.y_test)
        added = {
            "int_test_accuracy": float((result.labels == data.y_test).mean()),
            "float_test_accuracy": float_result.accuracy,
            "int_per_layer_test_accuracy": per_layer,
            "int_format": format_summary(stored),
        }
        write_json(metrics_path, {**metrics, **added})
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return added
