"""Accuracy of a network: final (scoring layers summed) and per layer.

All figures come from one computation of every layer's goodness for every label, so
the final and per-layer accuracies of a report always describe the same forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.config import ModelConfig
from golden.network import goodness_all_labels
from golden.params import Parameters

__all__ = ["Evaluation", "evaluate"]


@dataclass(frozen=True)
class Evaluation:
    """Accuracies of one network on one labelled set.

    Attributes
    ----------
    accuracy : float
        Argmax of the score (the configuration's scoring layers summed).
    per_layer_accuracy : list of float
        Argmax of each layer's goodness alone.
    all_layers_accuracy : float
        Argmax of every layer's goodness summed (equals ``accuracy`` unless FFL skips
        layer 1).
    samples : int
        Number of images.
    """

    accuracy: float
    per_layer_accuracy: list[float]
    all_layers_accuracy: float
    samples: int


def evaluate(config: ModelConfig, params: Parameters, x: np.ndarray, y: np.ndarray,
             *, batch: int = 2000) -> Evaluation:
    """Classify ``x`` and compare with ``y``; argmax ties go to the lowest label."""
    if x.shape[0] == 0:
        raise ValueError("cannot evaluate on an empty set of images")
    dtype = params.W[0].dtype
    goodness = np.concatenate([
        goodness_all_labels(config, params, np.asarray(x[i:i + batch], dtype=dtype))
        for i in range(0, x.shape[0], batch)
    ])

    def accuracy(layers: list[int]) -> float:
        predicted = np.argmax(goodness[:, layers].sum(axis=1), axis=1)
        return float((predicted == y).mean())

    return Evaluation(
        accuracy=accuracy(list(config.scoring_layers())),
        per_layer_accuracy=[accuracy([i]) for i in range(config.num_layers)],
        all_layers_accuracy=accuracy(list(range(config.num_layers))),
        samples=int(x.shape[0]),
    )
