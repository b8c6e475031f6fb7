"""The configuration of a Forward-Forward network: every choice of docs/algorithm.md, named.

A :class:`ModelConfig` describes the architecture and the inference-time choices of one
network; a :class:`TrainConfig` describes how it is trained. Both validate every field on
construction, so that a model file or a command line that names an impossible network is
refused with a message that says which value is wrong and what would be accepted.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALGORITHMS",
    "ConfigError",
    "ModelConfig",
    "TrainConfig",
]

#: The three members of the family, in the order the project reports them.
ALGORITHMS = ("ffl", "ffdl", "ffcl")

_CHOICES: dict[str, tuple[str, ...]] = {
    "algo": ALGORITHMS,
    # FFL scoring layers: Hinton's "all but the first" or every layer.
    "scoring": ("skip-first", "all"),
    # FFCL feedback topology: layer l < L hears layer l+1, or only layer 1 hears layer L.
    "topology": ("adjacent", "top"),
    # FFCL feedback target: the forwarded state (s_l) or only the goodness pre-activation.
    "feedback": ("state", "goodness"),
    # FFCL readout: goodness summed over the T iterations, or the last iteration's only.
    "readout": ("sum", "last"),
    # FFCL training loss: every iteration's local loss summed, or the last iteration's.
    "loss_iterations": ("all", "last"),
    "negatives": ("random", "hard"),
    "schedule": ("simultaneous", "layerwise"),
    "optimizer": ("adam", "sgd"),
}


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the value and the fix."""


def _check_choice(name: str, value: object) -> None:
    choices = _CHOICES[name]
    if value not in choices:
        raise ConfigError(
            f"{name} must be one of {', '.join(choices)}, not {value!r}"
        )


def _check_positive_int(name: str, value: object) -> None:
    # bool is an int subclass; a True width is a bug, not a width of one.
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, not {value!r}")


def _check_positive_float(name: str, value: object) -> None:
    # Infinity passes `> 0` and trains a model of NaNs, so it is refused with NaN.
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0
            or not math.isfinite(value)):
        raise ConfigError(f"{name} must be a finite positive number, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Architecture and inference choices of one FFL, FFDL or FFCL network.

    Parameters
    ----------
    algo : {"ffl", "ffdl", "ffcl"}
        Which member of the family. FFL feeds the label to layer 1 only; FFDL feeds it to
        every layer and forwards label-free features; FFCL is FFDL unrolled for ``loops``
        iterations with feedback weights.
    input_size : int
        D, the number of input pixels.
    num_classes : int
        K, the number of labels (at least 2).
    hidden : tuple of int
        N_1..N_L, the widths of the hidden layers.
    loops : int
        T, the number of FFCL iterations; 1 for FFL and FFDL, at least 2 for FFCL, exactly 2
        with ``feedback="goodness"``.
    topology : {"adjacent", "top"}
        FFCL only: layer l < L receives n(a_{l+1}) ("adjacent"), or layer 1 alone receives
        n(a_L) ("top").
    feedback : {"state", "goodness"}
        FFCL only: the feedback product enters the forwarded pre-activation s_l ("state"),
        or only the goodness pre-activation of the receiving layer ("goodness").
    readout : {"sum", "last"}
        FFCL only: the score of a label sums goodness over all iterations or takes the last.
    scoring : {"skip-first", "all"}
        FFL only: which layers' goodness makes the score. Hinton skips layer 1.
    theta : float
        Threshold per neuron: layer l's threshold is ``theta * N_l``.
    eps : float
        The epsilon of the length normalisation n(v) = v / (||v|| + eps).
    """

    algo: str
    input_size: int
    num_classes: int
    hidden: tuple[int, ...]
    loops: int = 1
    topology: str = "adjacent"
    feedback: str = "state"
    readout: str = "sum"
    scoring: str = "skip-first"
    theta: float = 0.5
    eps: float = 1e-6

    def __post_init__(self) -> None:
        _check_choice("algo", self.algo)
        _check_positive_int("input_size", self.input_size)
        _check_positive_int("num_classes", self.num_classes)
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, not {self.num_classes}")
        if isinstance(self.hidden, list):
            # Configurations read back from JSON carry lists; the frozen dataclass wants a
            # hashable tuple.
            object.__setattr__(self, "hidden", tuple(self.hidden))
        if not isinstance(self.hidden, tuple) or not self.hidden:
            raise ConfigError(
                f"hidden must be a non-empty sequence of layer widths, not {self.hidden!r}"
            )
        for i, width in enumerate(self.hidden):
            _check_positive_int(f"hidden[{i}]", width)
        _check_positive_int("loops", self.loops)
        for name in ("topology", "feedback", "readout", "scoring"):
            _check_choice(name, getattr(self, name))
        if self.algo == "ffcl":
            if self.loops < 2:
                raise ConfigError(
                    f"FFCL needs loops (T) of at least 2, not {self.loops}; "
                    "T = 1 is FFDL (use algo 'ffdl')"
                )
            if self.feedback == "goodness" and self.loops != 2:
                raise ConfigError(
                    f"feedback 'goodness' is defined for loops (T) = 2 only, not {self.loops}"
                )
        elif self.loops != 1:
            raise ConfigError(
                f"loops (T) must be 1 for {self.algo.upper()}, not {self.loops}; "
                "the cortical loop is FFCL's (use algo 'ffcl')"
            )
        _check_positive_float("theta", self.theta)
        _check_positive_float("eps", self.eps)

    @property
    def num_layers(self) -> int:
        """L, the number of hidden layers."""
        return len(self.hidden)

    @property
    def fan_in(self) -> tuple[int, ...]:
        """N_{l-1} for every layer: the width of the feature input of layer l."""
        return (self.input_size, *self.hidden[:-1])

    def thresholds(self) -> tuple[float, ...]:
        """theta_l = theta * N_l for every layer."""
        return tuple(self.theta * n for n in self.hidden)

    def has_label_weights(self, layer: int) -> bool:
        """Whether layer ``layer`` (0-based) has label weights U_l.

        FFL gives the label to layer 1 only; FFDL and FFCL give it to every layer.
        """
        return self.algo != "ffl" or layer == 0

    def feedback_source(self, layer: int) -> int | None:
        """The 0-based layer whose previous-iteration output layer ``layer`` receives.

        ``None`` when the layer has no feedback weights (always for FFL and FFDL).
        """
        if self.algo != "ffcl":
            return None
        if self.topology == "adjacent":
            return layer + 1 if layer + 1 < self.num_layers else None
        return self.num_layers - 1 if layer == 0 else None

    def scoring_layers(self) -> tuple[int, ...]:
        """The 0-based layers whose goodness is summed into a label's score."""
        if self.algo == "ffl" and self.scoring == "skip-first" and self.num_layers > 1:
            return tuple(range(1, self.num_layers))
        return tuple(range(self.num_layers))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of every field."""
        data = dataclasses.asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild and validate a configuration written by :meth:`to_dict`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model configuration keys: {', '.join(unknown)}")
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How a network is trained (docs/algorithm.md, "Common parts").

    Parameters
    ----------
    epochs : int
        Passes over the training set (per layer, with ``schedule="layerwise"``).
    batch_size : int
        Mini-batch size; every positive sample is paired with one negative.
    lr : float
        Peak learning rate. It is held for the first half of training, then falls linearly
        (Hinton's schedule) to ``2 * lr / epochs`` in the last epoch.
    seed : int
        Seeds the initial weights, the shuffles and the negative labels.
    negatives : {"random", "hard"}
        Wrong labels drawn uniformly from the K-1 wrong ones, or the wrong label the current
        model scores highest.
    schedule : {"simultaneous", "layerwise"}
        All layers trained at once, or layer 1 for ``epochs`` epochs, then layer 2, and so on.
    loss_iterations : {"all", "last"}
        FFCL: each layer's local loss summed over the T iterations, or the last only.
    optimizer : {"adam", "sgd"}
        Adam, or SGD with momentum 0.9.
    init_gain : float
        Initial weights are scaled so that the initial goodness is about
        ``init_gain`` times the threshold.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-2
    seed: int = 0
    negatives: str = "random"
    schedule: str = "simultaneous"
    loss_iterations: str = "all"
    optimizer: str = "adam"
    init_gain: float = 1.0

    def __post_init__(self) -> None:
        _check_positive_int("epochs", self.epochs)
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_float("lr", self.lr)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, not {self.seed!r}")
        for name in ("negatives", "schedule", "loss_iterations", "optimizer"):
            _check_choice(name, getattr(self, name))
        _check_positive_float("init_gain", self.init_gain)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild and validate a configuration written by :meth:`to_dict`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training configuration keys: {', '.join(unknown)}")
        return cls(**data)
