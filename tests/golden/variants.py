"""Small random networks in float64 for the golden-model tests."""

from __future__ import annotations

# random_params, reweighted and extreme live in golden (the random regression of sim/ draws
# from them too); they stay importable from here.
from golden.config import ModelConfig
from golden.random_model import extreme, random_params, reweighted

__all__ = ["VARIANTS", "extreme", "make_config", "random_params", "reweighted"]

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
