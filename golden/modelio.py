"""Model files: the weights plus the complete configuration, in one ``.npz``.

A model file holds every weight array (``W1``, ``b1``, ``U1``, ``V1``, ...) and one
``__meta__`` entry: a JSON document with the format version, the :class:`ModelConfig`, the
:class:`TrainConfig` and the data it was trained on (data set name and resize). Nothing
else is needed to use the model. Reading validates all of it; writing goes through a
temporary file so a failure leaves no half-written model behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from golden.config import ConfigError, ModelConfig, TrainConfig
from golden.params import Parameters

__all__ = ["FORMAT_VERSION", "ModelFileError", "SavedModel", "load_model", "model_digest",
           "save_model", "write_npz"]

#: Bumped whenever the layout of a model file changes incompatibly.
FORMAT_VERSION = 1
_META_KEY = "__meta__"
_RETRAIN = "train the model again with `ffcl-hw train --out RUN`"


class ModelFileError(ValueError):
    """A model file is missing or malformed; the message names the file and the problem."""


@dataclass
class SavedModel:
    """A model as stored: configuration, weights and where its data came from."""

    config: ModelConfig
    params: Parameters
    train_config: TrainConfig | None = None
    data: dict[str, Any] = field(default_factory=dict)


def model_digest(model: SavedModel) -> str:
    """The SHA-256 (64 hexadecimal digits) of ``model``'s configuration and weights.

    Two models have the same digest exactly when they compute the same thing: the same
    :class:`ModelConfig` and the same arrays (name, dtype, shape and every bit). How and on
    what the model was trained (``train_config``, ``data``) is left out. An integer model
    records the digest of the float model it was quantized from, so that commands pairing
    the two can tell a model of another run with the same configuration.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, array in sorted(model.params.to_arrays().items()):
        array = np.ascontiguousarray(array)
        # Name, dtype and shape first, so equal bytes under another name or shape differ.
        digest.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_model(path: str | os.PathLike[str], model: SavedModel) -> None:
    """Write ``model`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    meta = {
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "train": None if model.train_config is None else model.train_config.to_dict(),
        "data": model.data,
    }
    arrays = model.params.to_arrays()
    arrays[_META_KEY] = np.array(json.dumps(meta))
    write_npz(path, arrays)


def write_npz(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` through a temporary file and a rename: never a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            np.savez(stream, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_model(path: str | os.PathLike[str]) -> SavedModel:
    """Read and validate a model file.

    Raises
    ------
    ModelFileError
        If the file is missing, is not a model file, or its configuration and weights
        do not agree; the message says which.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}; train one with `ffcl-hw train --out RUN`")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ModelFileError(f"{path} is not a readable .npz model file: {error}") from None
    if _META_KEY not in arrays:
        raise ModelFileError(f"{path} has no {_META_KEY} entry: it is not an ffcl-hw model file")
    try:
        meta = json.loads(str(arrays.pop(_META_KEY)))
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{path}: the configuration is not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise ModelFileError(
            f"{path} has model format version {version!r}; this ffcl-hw reads version "
            f"{FORMAT_VERSION}"
        )
    try:
        config = ModelConfig.from_dict(meta["model"])
        train_config = None if meta.get("train") is None else TrainConfig.from_dict(meta["train"])
    except (KeyError, TypeError) as error:
        raise ModelFileError(f"{path}: malformed configuration ({error})") from None
    except ConfigError as error:
        raise ModelFileError(f"{path}: {error}") from None
    try:
        params = Parameters.from_arrays(config, arrays)
    except (ConfigError, TypeError) as error:
        raise ModelFileError(f"{path}: {error}; {_RETRAIN}") from None
    data = meta.get("data") or {}
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: the data description must be an object, not {data!r}")
    return SavedModel(config=config, params=params, train_config=train_config, data=data)
