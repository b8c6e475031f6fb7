"""Configuration validation: every impossible network is refused with a clear message."""

from __future__ import annotations

import pytest

from golden.config import ConfigError, ModelConfig, TrainConfig

BASE = dict(algo="ffdl", input_size=64, num_classes=10, hidden=(64, 64))


@pytest.mark.parametrize(("changes", "message"), [
    ({"algo": "bp"}, "algo must be one of ffl, ffdl, ffcl, not 'bp'"),
    ({"input_size": 0}, "input_size must be a positive integer, not 0"),
    ({"num_classes": 1}, "num_classes must be at least 2, not 1"),
    ({"hidden": ()}, "hidden must be a non-empty sequence"),
    ({"hidden": (64, 0)}, r"hidden\[1\] must be a positive integer, not 0"),
    ({"hidden": (64, True)}, r"hidden\[1\] must be a positive integer, not True"),
    ({"loops": 2}, r"loops \(T\) must be 1 for FFDL, not 2"),
    ({"algo": "ffcl", "loops": 1}, r"FFCL needs loops \(T\) of at least 2, not 1"),
    ({"algo": "ffcl", "loops": 3, "feedback": "goodness"}, "loops .T. = 2 only, not 3"),
    ({"topology": "ring"}, "topology must be one of adjacent, top, not 'ring'"),
    ({"readout": "max"}, "readout must be one of sum, last"),
    ({"theta": 0}, "theta must be a finite positive number, not 0"),
    ({"theta": float("inf")}, "theta must be a finite positive number, not inf"),
    ({"theta": float("nan")}, "theta must be a finite positive number, not nan"),
])
def test_model_config_refuses(changes, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**{**BASE, **changes})


@pytest.mark.parametrize(("changes", "message"), [
    ({"epochs": 0}, "epochs must be a positive integer, not 0"),
    ({"lr": -1.0}, "lr must be a finite positive number, not -1.0"),
    ({"lr": float("inf")}, "lr must be a finite positive number, not inf"),
    ({"init_gain": float("nan")}, "init_gain must be a finite positive number, not nan"),
    ({"seed": -3}, "seed must be a non-negative integer, not -3"),
    ({"negatives": "soft"}, "negatives must be one of random, hard, not 'soft'"),
    ({"schedule": "greedy"}, "schedule must be one of simultaneous, layerwise"),
])
def test_train_config_refuses(changes, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


@pytest.mark.parametrize(("config", "sources"), [
    (ModelConfig(**{**BASE, "algo": "ffcl", "loops": 3, "hidden": (8, 8, 8)}), [1, 2, None]),
    (ModelConfig(**{**BASE, "algo": "ffcl", "loops": 2, "hidden": (8, 8, 8),
                    "topology": "top"}), [2, None, None]),
    (ModelConfig(**BASE), [None, None]),
])
def test_feedback_topologies(config, sources):
    assert [config.feedback_source(i) for i in range(config.num_layers)] == sources


def test_scoring_layers_and_label_weights():
    ffl = ModelConfig(**{**BASE, "algo": "ffl"})
    assert ffl.scoring_layers() == (1,)
    assert ModelConfig(**{**BASE, "algo": "ffl", "scoring": "all"}).scoring_layers() == (0, 1)
    assert [ffl.has_label_weights(i) for i in range(2)] == [True, False]
    assert ModelConfig(**BASE).scoring_layers() == (0, 1)
    assert ModelConfig(**BASE).thresholds() == (32.0, 32.0)


def test_round_trip_and_unknown_keys():
    config = ModelConfig(**{**BASE, "algo": "ffcl", "loops": 3})
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown model configuration keys: colour"):
        ModelConfig.from_dict({**config.to_dict(), "colour": "red"})
    train = TrainConfig(epochs=5, seed=2)
    assert TrainConfig.from_dict(train.to_dict()) == train
