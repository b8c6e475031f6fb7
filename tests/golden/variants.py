"""Small random networks in float64 for the golden-model tests."""

from __future__ import annotations

import numpy as np

from golden.config import ModelConfig
from golden.params import Parameters, expected_shapes

# Every structural variant the spec names, small enough for finite differences.
VARIANTS = {
    "ffl": dict(algo="ffl", hidden=(7, 5)),
    "ffl-3layers": dict(algo="ffl", hidden=(6, 5, 4), scoring="all"),
    "ffdl": dict(algo="ffdl", hidden=(7, 5)),
    "ffdl-3layers": dict(algo="ffdl", hidden=(6, 5, 4)),
    "ffcl-adjacent-T3": dict(algo="ffcl", hidden=(7, 5), loops=3),
    "ffcl-top-T2": dict(algo="ffcl", hidden=(6, 5, 4), loops=2, topology="top"),
    "ffcl-goodness": dict(algo="ffcl", hidden=(7, 5), loops=2, feedback="goodness"),
    "ffcl-last": dict(algo="ffcl", hidden=(7, 5), loops=3, readout="last"),
}


def make_config(name: str, *, input_size: int = 9, num_classes: int = 4,
                theta: float = 0.5) -> ModelConfig:
    """The configuration of variant ``name`` of :data:`VARIANTS`."""
    return ModelConfig(input_size=input_size, num_classes=num_classes, theta=theta,
                       **VARIANTS[name])


def random_params(config: ModelConfig, seed: int, scale: float = 0.6) -> Parameters:
    """Random float64 weights for every array, including label and feedback weights.

    Nonzero U and V (unlike the zero initialisation of training) make every gradient
    term matter, so a wrong term cannot hide behind a zero.
    """
    rng = np.random.default_rng(seed)
    arrays = {name: rng.normal(0, scale, size=shape)
              for name, shape in expected_shapes(config).items()}
    return Parameters.from_arrays(config, arrays)



def reweighted(model, seed: int):
    """The integer ``model`` with other random integers: same configuration, formats and
    exponents, so a core built for one can load the other at run time."""
    import dataclasses

    other = dataclasses.replace(model, layers=[dataclasses.replace(layer)
                                               for layer in model.layers])
    rng = np.random.default_rng(seed)
    wmax = model.fmt.weight_max
    for layer in other.layers:
        layer.W = rng.integers(-wmax, wmax + 1, size=layer.W.shape)
        layer.U = rng.integers(-wmax, wmax + 1, size=layer.U.shape)
        if layer.V is not None:
            layer.V = rng.integers(-wmax, wmax + 1, size=layer.V.shape)
        layer.b = rng.integers(-200, 200, size=layer.b.shape)
    return other


def extreme(model, kind: str, rng: np.random.Generator):
    """The integer ``model`` with every W/U/V entry at +-weight_max and every bias at a
    state extreme: ``kind`` "positive" (all at the maximum: every label ties),
    "negative" (all at the minimum) or anything else (each drawn from the two by ``rng``).
    """
    from golden.intmodel import IntLayer, IntModel

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
