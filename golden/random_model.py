"""Random networks for tests and the random regression: configurations, weights, images.

Everything here draws from a generator the caller seeds, so a draw is replayed by its
seed alone:

- :func:`random_config`: a :class:`~golden.config.ModelConfig` of any algorithm and
  inference choice, small enough to simulate quickly (widths from 1 up);
- :func:`random_params`: float weights for every array, label and feedback weights
  included; :func:`random_int_model` quantizes them with random formats;
- :func:`reweighted` and :func:`extreme`: the same integer model with other integers (a
  model to load at run time) or with every weight at full magnitude;
- :func:`random_images`: integer images that start with the corners (all zero, all
  maximum, alternating) before uniform and sparse ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from golden.config import ALGORITHMS, ModelConfig
from golden.intmodel import IntLayer, IntModel
from golden.params import Parameters, expected_shapes
from golden.quantize import quantize

__all__ = ["extreme", "random_config", "random_images", "random_int_model", "random_params",
           "reweighted"]

#: Pixel full scales drawn by :func:`random_int_model`: 1 (binary images), the 8x8 digits'
#: 16, 8-bit images' 255 and an odd one.
INPUT_MAXIMA = (1, 15, 16, 255)


def random_config(rng: np.random.Generator, *, algos: Sequence[str] = ALGORITHMS,
                  feedbacks: Sequence[str] = ("state", "goodness"), max_layers: int = 3,
                  max_width: int = 24, max_inputs: int = 32,
                  max_classes: int = 10) -> ModelConfig:
    """A configuration drawn from ``rng``: algorithm, D, K, 1..``max_layers`` widths of
    1..``max_width``, and for FFCL T = 2..3, topology, feedback, readout; for FFL the
    scoring. ``feedbacks`` limits FFCL's feedback modes (the RTL core has "state" only).
    """
    algo = str(rng.choice(list(algos)))
    # FFCL's loop needs two layers (a one-layer adjacent network has no feedback).
    layers = int(rng.integers(2 if algo == "ffcl" else 1, max_layers + 1))
    fields = dict(
        algo=algo, input_size=int(rng.integers(2, max_inputs + 1)),
        num_classes=int(rng.integers(2, max_classes + 1)),
        hidden=tuple(int(w) for w in rng.integers(1, max_width + 1, size=layers)),
    )
    if algo == "ffcl":
        feedback = str(rng.choice(list(feedbacks)))
        fields.update(topology=str(rng.choice(["adjacent", "top"])), feedback=feedback,
                      readout=str(rng.choice(["sum", "last"])),
                      loops=2 if feedback == "goodness" else int(rng.integers(2, 4)))
    elif algo == "ffl":
        fields.update(scoring=str(rng.choice(["skip-first", "all"])))
    return ModelConfig(**fields)


def random_params(config: ModelConfig, seed: int, scale: float = 0.6) -> Parameters:
    """Random float64 weights for every array, including label and feedback weights.

    Nonzero U and V (unlike the zero initialisation of training) make every gradient
    term matter, so a wrong term cannot hide behind a zero.
    """
    rng = np.random.default_rng(seed)
    arrays = {name: rng.normal(0, scale, size=shape)
              for name, shape in expected_shapes(config).items()}
    return Parameters.from_arrays(config, arrays)


def random_int_model(config: ModelConfig, rng: np.random.Generator, *,
                     max_state_bits: int = 16) -> IntModel:
    """``config`` with random weights quantized with random formats: X from
    :data:`INPUT_MAXIMA`, weights of 4..8 bits, states of 8..``max_state_bits`` bits;
    one draw in four then gets every weight at full magnitude (:func:`extreme`).
    """
    params = random_params(config, int(rng.integers(1 << 31)), scale=float(rng.uniform(0.2, 1.5)))
    calibration = rng.uniform(0, 1, size=(32, config.input_size))
    model = quantize(config, params, calibration, input_max=int(rng.choice(INPUT_MAXIMA)),
                     weight_bits=int(rng.integers(4, 9)),
                     state_bits=int(rng.integers(8, max_state_bits + 1)))
    if rng.random() < 0.25:
        model = extreme(model, "mixed", rng)
    return model


def reweighted(model: IntModel, seed: int) -> IntModel:
    """The integer ``model`` with other random integers: same configuration, formats and
    exponents, so a core built for one can load the other at run time. Biases lie in
    -200..199, or the state range where that is narrower."""
    other = dataclasses.replace(model, layers=[dataclasses.replace(layer)
                                               for layer in model.layers])
    rng = np.random.default_rng(seed)
    wmax = model.fmt.weight_max
    bound = min(200, 1 << (model.fmt.state_bits - 1))
    for layer in other.layers:
        layer.W = rng.integers(-wmax, wmax + 1, size=layer.W.shape)
        if layer.U is not None:
            layer.U = rng.integers(-wmax, wmax + 1, size=layer.U.shape)
        if layer.V is not None:
            layer.V = rng.integers(-wmax, wmax + 1, size=layer.V.shape)
        layer.b = rng.integers(-bound, bound, size=layer.b.shape)
    return other


def extreme(model: IntModel, kind: str, rng: np.random.Generator) -> IntModel:
    """The integer ``model`` with every W/U/V entry at +-weight_max and every bias at a
    state extreme: ``kind`` "positive" (all at the maximum: every label ties),
    "negative" (all at the minimum) or anything else (each drawn from the two by ``rng``).
    """
    wmax, limit = model.fmt.weight_max, 1 << (model.fmt.state_bits - 1)

    def fill(array, low, high):
        if array is None:
            return None
        if kind == "positive":
            return np.full_like(array, high)
        if kind == "negative":
            return np.full_like(array, low)
        return rng.choice([low, high], size=array.shape).astype(np.int64)

    layers = [IntLayer(W=fill(layer.W, -wmax, wmax), w_exp=layer.w_exp,
                       b=fill(layer.b, -limit, limit - 1), U=fill(layer.U, -wmax, wmax),
                       V=fill(layer.V, -wmax, wmax), v_exp=layer.v_exp)
              for layer in model.layers]
    return IntModel(config=model.config, fmt=model.fmt, layers=layers)


def random_images(model: IntModel, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` integer images (shape (count, D), 0..X) for ``model``.

    The corners come first, so that even a few images reach them: all zero, all at the
    maximum, alternating 0 and X; then, by turns, uniform images, binary images (each
    pixel 0 or X) and sparse ones (most pixels 0).
    """
    D, X = model.config.input_size, model.fmt.input_max
    corners = [np.zeros(D, np.int64), np.full(D, X, np.int64), np.arange(D) % 2 * X]
    images = corners[:count]
    for i in range(len(images), count):
        kind = i % 3
        if kind == 0:
            image = rng.integers(0, X + 1, size=D)
        elif kind == 1:
            image = rng.choice([0, X], size=D)
        else:
            image = np.where(rng.random(D) < 0.8, 0, rng.integers(0, X + 1, size=D))
        images.append(image.astype(np.int64))
    return np.array(images, dtype=np.int64).reshape(count, D)
