"""Integer model files: an :class:`~golden.intmodel.IntModel` in one ``model.int.npz``.

The file holds the integer arrays ``W1``, ``b1``, ``U1``, ``V1``, ... and one ``__meta__``
entry: a JSON document with the format version, ``"kind": "ffcl-hw integer model"``, the
:class:`~golden.config.ModelConfig`, the :class:`~golden.intformat.IntFormat`, each
layer's exponents (``w_exp``, ``v_exp``), a ``data`` description (data set, resize,
calibration) and a ``source``: where the model came from, ``{"quantized_from": {"digest":
...}}`` (the :func:`~golden.modelio.model_digest` of the float model it was quantized from,
with whatever else identifies that model's run) or ``{"trained": {...}}`` (trained as an
integer model, paired with no float model). Files written before the source was recorded
have none (``SavedIntModel.source`` is ``None``). The arrays are stored in the smallest
of int8/int16/int32 that holds the format's range, so the dtype follows from the format
and not from the values; reading converts them to int64.

Unlike a float model (:mod:`golden.modelio`), FFL's layer 1 W has D + K columns (the
label block is folded in, divided by X like the pixels) and FFL has no U arrays. Reading
validates everything the integer arithmetic relies on: names, shapes, integer dtypes,
every value within its format's range, and :meth:`IntModel.check`. Writing goes through a
temporary file, so a failure leaves no half-written model behind.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from golden.config import ConfigError, ModelConfig
from golden.intformat import IntFormat
from golden.intmodel import IntLayer, IntModel
from golden.modelio import ModelFileError, write_npz
from golden.params import expected_shapes

__all__ = [
    "INT_FORMAT_VERSION",
    "INT_MODEL_KIND",
    "SOURCE_KINDS",
    "SavedIntModel",
    "expected_int_shapes",
    "load_int_model",
    "save_int_model",
]

#: Bumped whenever the layout of an integer model file changes incompatibly.
INT_FORMAT_VERSION = 1
#: The ``kind`` of every integer model file; float model files have none.
INT_MODEL_KIND = "ffcl-hw integer model"
_META_KEY = "__meta__"
_HINT = "quantize a run with `ffcl-hw quantize RUN`"
#: The kinds of ``source`` an integer model may record: quantized from a float model
#: (whose digest it names) or trained as an integer model.
SOURCE_KINDS = ("quantized_from", "trained")
_DIGEST_DIGITS = 64


@dataclass
class SavedIntModel:
    """An integer model as stored: the model, where its data came from and where the model
    came from (``source``: one key of :data:`SOURCE_KINDS`, or ``None`` in older files)."""

    model: IntModel
    data: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] | None = None


def expected_int_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every array an integer model of ``config`` has.

    The float model's arrays (:func:`golden.params.expected_shapes`), except that FFL's
    label weights live in layer 1's W: W1 is (N_1, D + K) and there is no U.
    """
    shapes = expected_shapes(config)
    if config.algo == "ffl":
        del shapes["U1"]
        shapes["W1"] = (config.hidden[0], config.input_size + config.num_classes)
    return shapes


def _storage_dtype(bits: int) -> type[np.signedinteger]:
    """The smallest signed NumPy integer type of at least ``bits`` bits."""
    for dtype in (np.int8, np.int16, np.int32):
        if bits <= np.iinfo(dtype).bits:
            return dtype
    return np.int64


def _arrays(model: IntModel) -> dict[str, np.ndarray]:
    weight = _storage_dtype(model.fmt.weight_bits)
    state = _storage_dtype(model.fmt.state_bits)
    arrays = {}
    for i, layer in enumerate(model.layers):
        for kind, array, dtype in (("W", layer.W, weight), ("b", layer.b, state),
                                   ("U", layer.U, weight), ("V", layer.V, weight)):
            if array is not None:
                arrays[f"{kind}{i + 1}"] = np.asarray(array).astype(dtype)
    return arrays


def save_int_model(path: str | os.PathLike[str], model: IntModel, *,
                   data: dict[str, Any] | None = None,
                   source: dict[str, Any] | None = None) -> None:
    """Write ``model`` to ``path`` atomically (temporary file, then rename).

    Parameters
    ----------
    path : path-like
        Destination, conventionally ``RUN/model.int.npz``.
    model : IntModel
        The integer model; its arrays must fit their formats (they are stored in the
        smallest integer type that holds the format, and :func:`load_int_model` checks).
    data : dict, optional
        JSON-ready description of the data (data set, resize, calibration images).
    source : dict, optional
        Where the model came from: ``{"quantized_from": {"digest": ..., ...}}`` or
        ``{"trained": {...}}`` (JSON-ready; checked as :func:`load_int_model` reads it).

    Raises
    ------
    ModelFileError
        If ``source`` is not one that :func:`load_int_model` would accept.
    """
    path = Path(path)
    if source is not None:
        _check_source(path, source)
    meta = {
        "format_version": INT_FORMAT_VERSION,
        "kind": INT_MODEL_KIND,
        "model": model.config.to_dict(),
        "format": model.fmt.to_dict(),
        "layers": [{"w_exp": layer.w_exp, "v_exp": layer.v_exp} for layer in model.layers],
        "data": data or {},
    }
    if source is not None:
        meta["source"] = source
    arrays = _arrays(model)
    arrays[_META_KEY] = np.array(json.dumps(meta))
    write_npz(path, arrays)


def _read_meta(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if _META_KEY not in arrays:
        raise ModelFileError(
            f"{path} has no {_META_KEY} entry: it is not an ffcl-hw integer model file"
        )
    try:
        meta = json.loads(str(arrays.pop(_META_KEY)))
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{path}: the configuration is not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: the configuration must be a JSON object, not {meta!r}")
    if meta.get("kind") != INT_MODEL_KIND:
        # A float model file has a format version and a model but no kind: say so, since
        # passing RUN/model.npz for RUN/model.int.npz is the likely mistake.
        what = ("a float model file" if "kind" not in meta
                else f"a file of kind {meta.get('kind')!r}")
        raise ModelFileError(
            f"{path} is {what}, not an integer model ({INT_MODEL_KIND!r}); {_HINT} and "
            "read RUN/model.int.npz"
        )
    if meta.get("format_version") != INT_FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has integer model format version {meta.get('format_version')!r}; "
            f"this ffcl-hw reads version {INT_FORMAT_VERSION}"
        )
    return meta


def _check_source(path: Path, source: object) -> dict[str, Any]:
    """``source`` if it names one kind of :data:`SOURCE_KINDS` with an object, and a
    ``quantized_from`` names the float model's digest."""
    if (not isinstance(source, dict) or len(source) != 1
            or next(iter(source)) not in SOURCE_KINDS):
        raise ModelFileError(f"{path}: source must be an object with one of "
                             f"{', '.join(SOURCE_KINDS)}, not {source!r}")
    kind, origin = next(iter(source.items()))
    if not isinstance(origin, dict):
        raise ModelFileError(f"{path}: source {kind} must be an object, not {origin!r}")
    if kind == "quantized_from":
        digest = origin.get("digest")
        if (not isinstance(digest, str) or len(digest) != _DIGEST_DIGITS
                or any(c not in "0123456789abcdef" for c in digest)):
            raise ModelFileError(
                f"{path}: source quantized_from needs the float model's digest "
                f"({_DIGEST_DIGITS} hexadecimal digits), not {digest!r}"
            )
    return source


def _exponent(path: Path, value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelFileError(f"{path}: {what} must be an integer, not {value!r}")
    return value


def _read_layers(path: Path, config: ModelConfig, entries: object) -> list[tuple[int, int | None]]:
    """Each layer's (w_exp, v_exp), checked against where the config has feedback."""
    if not isinstance(entries, list) or len(entries) != config.num_layers:
        raise ModelFileError(
            f"{path}: layers must be a list of {config.num_layers} exponent entries, "
            f"not {entries!r}"
        )
    exps = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"w_exp", "v_exp"}:
            raise ModelFileError(
                f"{path}: layer {i + 1} must give exactly w_exp and v_exp, not {entry!r}"
            )
        w_exp = _exponent(path, entry["w_exp"], f"layer {i + 1} w_exp")
        has_v = config.feedback_source(i) is not None
        if has_v:
            v_exp = _exponent(path, entry["v_exp"], f"layer {i + 1} v_exp")
        elif entry["v_exp"] is not None:
            raise ModelFileError(
                f"{path}: layer {i + 1} has no feedback weights, so v_exp must be null, "
                f"not {entry['v_exp']!r}"
            )
        else:
            v_exp = None
        exps.append((w_exp, v_exp))
    return exps


def _check_arrays(path: Path, config: ModelConfig, fmt: IntFormat,
                  arrays: dict[str, np.ndarray]) -> None:
    expected = expected_int_shapes(config)
    network = f"an integer {config.algo.upper()} network with hidden {list(config.hidden)}"
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise ModelFileError(f"{path} is missing arrays {', '.join(missing)} needed by {network}")
    extra = sorted(set(arrays) - set(expected))
    if extra:
        raise ModelFileError(f"{path} has arrays {', '.join(extra)} that {network} does not use")
    state_low, state_high = -(1 << (fmt.state_bits - 1)), (1 << (fmt.state_bits - 1)) - 1
    for name, shape in expected.items():
        array = arrays[name]
        if tuple(array.shape) != shape:
            raise ModelFileError(
                f"{path}: array {name} has shape {tuple(array.shape)}, but the "
                f"configuration needs {shape}"
            )
        if not np.issubdtype(array.dtype, np.integer):
            raise ModelFileError(
                f"{path}: array {name} has dtype {array.dtype}; an integer model stores "
                "signed integers"
            )
        if name.startswith("b"):
            low, high, what = state_low, state_high, f"{fmt.state_bits}-bit state range"
        else:
            low, high, what = -fmt.weight_max, fmt.weight_max, f"{fmt.weight_bits}-bit weight range"
        # Python ints: comparing an int8 array's minimum with -32768 must not wrap.
        smallest, largest = (int(array.min()), int(array.max())) if array.size else (0, 0)
        if smallest < low or largest > high:
            bad = smallest if smallest < low else largest
            raise ModelFileError(
                f"{path}: array {name} holds {bad}, outside the {what} {low}..{high}"
            )


def load_int_model(path: str | os.PathLike[str]) -> SavedIntModel:
    """Read and validate an integer model file.

    Raises
    ------
    ModelFileError
        If the file is missing, is not an integer model file (a float ``model.npz`` is
        named as such), or its configuration, formats, exponents and arrays do not agree;
        the message names the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no integer model file at {path}; {_HINT}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ModelFileError(
            f"{path} is not a readable .npz integer model file: {error}"
        ) from None
    meta = _read_meta(path, arrays)
    try:
        config = ModelConfig.from_dict(meta["model"])
        fmt = IntFormat(**meta["format"])
    except KeyError as error:
        raise ModelFileError(f"{path}: the configuration lacks {error}") from None
    except TypeError as error:
        raise ModelFileError(f"{path}: malformed configuration ({error})") from None
    except (ConfigError, ValueError) as error:
        raise ModelFileError(f"{path}: {error}") from None
    exps = _read_layers(path, config, meta.get("layers"))
    _check_arrays(path, config, fmt, arrays)
    data = meta.get("data") or {}
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: the data description must be an object, not {data!r}")
    source = meta.get("source")
    if source is not None:
        _check_source(path, source)

    def get(name: str) -> np.ndarray | None:
        return arrays[name].astype(np.int64) if name in arrays else None

    layers = [
        IntLayer(W=get(f"W{i + 1}"), w_exp=w_exp, b=get(f"b{i + 1}"), U=get(f"U{i + 1}"),
                 V=get(f"V{i + 1}"), v_exp=v_exp)
        for i, (w_exp, v_exp) in enumerate(exps)
    ]
    model = IntModel(config=config, fmt=fmt, layers=layers)
    try:
        model.check()
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None
    return SavedIntModel(model=model, data=data, source=source)
