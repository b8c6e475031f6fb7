"""Training: negatives, seeding, schedules and the cross-checks of docs/algorithm.md."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from golden.config import ModelConfig, TrainConfig
from golden.network import goodness_all_labels, trace
from golden.optim import learning_rate
from golden.training import draw_negatives, train
from tests.golden.variants import make_config, random_params


def _toy_data(n=120, d=9, k=4, seed=0):
    # Each class lights a different block of pixels: learnable in a few epochs.
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    x = rng.uniform(0, 0.3, size=(n, d))
    for c in range(k):
        x[y == c, 2 * c:2 * c + 2] += 0.7
    return x, y


@pytest.mark.parametrize("kind", ["random", "hard"])
@pytest.mark.parametrize("name", ["ffl", "ffdl", "ffcl-adjacent-T3"])
def test_a_negative_label_never_equals_the_true_label(kind, name):
    config = make_config(name, num_classes=4)
    params = random_params(config, seed=0)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(500, config.input_size))
    y = rng.integers(0, 4, size=500)
    negatives = draw_negatives(config, params, x, y, rng, kind)
    assert negatives.shape == y.shape
    assert np.all(negatives != y)
    assert negatives.min() >= 0 and negatives.max() < 4


def test_random_negatives_are_uniform_over_the_wrong_labels():
    config = make_config("ffdl", num_classes=5)
    y = np.zeros(50_000, dtype=np.int64)
    negatives = draw_negatives(config, random_params(config, 0), np.zeros((50_000, 9)), y,
                               np.random.default_rng(2))
    counts = np.bincount(negatives, minlength=5)
    assert counts[0] == 0
    # 12,500 expected per wrong label; 4 standard deviations is about 400.
    assert np.all(np.abs(counts[1:] - 12_500) < 450), counts


def test_hard_negatives_are_the_highest_scoring_wrong_label():
    config = make_config("ffdl")
    params = random_params(config, seed=9)
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, size=(40, config.input_size))
    y = rng.integers(0, 4, size=40)
    negatives = draw_negatives(config, params, x, y, rng, "hard")
    scores = goodness_all_labels(config, params, x).sum(axis=1)
    for i in range(40):
        wrong = [k for k in range(4) if k != y[i]]
        assert negatives[i] == max(wrong, key=lambda k: (scores[i, k], -k))


@pytest.mark.parametrize("name", ["ffl", "ffdl", "ffcl-adjacent-T3", "ffcl-goodness"])
def test_the_same_seed_gives_the_same_model_and_another_seed_does_not(name):
    config = make_config(name)
    x, y = _toy_data()
    run = dict(epochs=3, batch_size=16, lr=1e-2)
    a = train(config, TrainConfig(seed=4, **run), x, y)
    b = train(config, TrainConfig(seed=4, **run), x, y)
    c = train(config, TrainConfig(seed=5, **run), x, y)
    for name_, array in a.params.to_arrays().items():
        np.testing.assert_array_equal(array, b.params.to_arrays()[name_])
    assert [r.layer_loss for r in a.history] == [r.layer_loss for r in b.history]
    assert not np.array_equal(a.params.W[0], c.params.W[0])


def test_ffl_and_ffdl_first_layers_train_identically_with_the_same_seed():
    # Layer 1 of FFL sees [x, y]; layer 1 of FFDL sees x plus U_1 y: the same function,
    # the same initial draws and negatives, so the same updates (up to summation order).
    x, y = _toy_data()
    ffl = make_config("ffl", theta=0.5)
    ffdl = dataclasses.replace(ffl, algo="ffdl")
    run = TrainConfig(epochs=4, batch_size=16, lr=1e-2, seed=11)
    a = train(ffl, run, x, y, dtype=np.float64)
    b = train(ffdl, run, x, y, dtype=np.float64)
    for kind in ("W", "b", "U"):
        np.testing.assert_allclose(a.params.get(kind, 0), b.params.get(kind, 0),
                                   rtol=1e-9, atol=1e-12)
    assert not np.allclose(a.params.W[1], b.params.W[1])


@pytest.mark.parametrize("name", ["ffcl-adjacent-T3", "ffcl-top-T2", "ffcl-goodness"])
def test_ffcl_first_iteration_equals_ffdl_exactly(name):
    ffcl = make_config(name)
    params = random_params(ffcl, seed=12)
    ffdl = ModelConfig(algo="ffdl", input_size=ffcl.input_size,
                       num_classes=ffcl.num_classes, hidden=ffcl.hidden, theta=ffcl.theta)
    ffdl_params = dataclasses.replace(params, V=[None] * ffcl.num_layers)
    x = np.random.default_rng(13).uniform(0, 1, size=(10, ffcl.input_size))
    first = trace(ffcl, params, x)[0]
    reference = trace(ffdl, ffdl_params, x)[0]
    for a, b in zip(first, reference, strict=True):
        np.testing.assert_array_equal(a.pre, b.pre)
    # ...and later iterations do hear the loop.
    assert not np.array_equal(trace(ffcl, params, x)[1][0].pre, first[0].pre)


def test_layerwise_training_moves_one_layer_at_a_time(monkeypatch):
    import golden.training as training

    config = make_config("ffdl")
    x, y = _toy_data()
    seen = []
    real = training.local_gradients

    def spy(*args, **kwargs):
        seen.append(kwargs["layers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "local_gradients", spy)
    result = train(config, TrainConfig(epochs=1, batch_size=60, schedule="layerwise",
                                       seed=1), x, y)
    assert seen == [(0,), (0,), (1,), (1,)]
    assert [r.stage for r in result.history] == [0, 1]
    # Layer 2's biases start at zero and only stage 2 moves them.
    assert np.any(result.params.b[1] != 0)


def test_training_lowers_the_loss_and_learns_the_toy_task():
    config = make_config("ffdl")
    x, y = _toy_data(n=400)
    result = train(config, TrainConfig(epochs=20, batch_size=32, lr=1e-2, seed=0), x, y)
    assert result.history[-1].loss < 0.5 * result.history[0].loss
    scores = goodness_all_labels(config, result.params, x.astype(np.float32)).sum(axis=1)
    assert (np.argmax(scores, axis=1) == y).mean() > 0.95


@pytest.mark.parametrize(("epoch", "expected"), [(0, 1.0), (4, 1.0), (5, 1.0), (6, 0.8),
                                                 (9, 0.2)])
def test_learning_rate_is_constant_then_falls_linearly(epoch, expected):
    assert learning_rate(1.0, epoch, 10) == pytest.approx(expected)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("x", np.zeros((4, 3)), r"shape \(n, 9\)"),
    ("y", np.array([0, 1, 2, 9]), r"0\.\.3"),
])
def test_train_refuses_data_that_does_not_fit_the_network(field, value, message):
    config = make_config("ffdl")
    data = {"x": np.zeros((4, 9)), "y": np.array([0, 1, 2, 3])}
    data[field] = value
    with pytest.raises(ValueError, match=message):
        train(config, TrainConfig(epochs=1), data["x"], data["y"])


def test_training_that_diverges_stops_at_the_first_non_finite_loss():
    from golden.training import TrainingDiverged

    x, y = _toy_data()
    config = make_config("ffdl", num_classes=4)
    epochs_seen = []
    message = r"the loss became (nan|inf) in epoch [12] of 5 \(learning rate 1e\+38\)"
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.raises(TrainingDiverged, match=message) as info:
        train(config, TrainConfig(epochs=5, batch_size=20, lr=1e38, seed=0), x, y,
              dtype=np.float32, callback=lambda done, total, loss: epochs_seen.append(done))
    assert not np.isfinite(info.value.loss)
    # Stopped inside the epoch it diverged in: no later epoch was reported as finished.
    assert epochs_seen == list(range(1, info.value.epoch))
