"""The closed-form layer-local gradients against finite differences of each layer's loss.

The reference loss here is written independently of golden.local_loss: it takes the
layer's inputs (u, f, label) recorded from the forward pass as constants, exactly as the
spec says a layer must see them, and recomputes the softplus loss from scratch.
"""

from __future__ import annotations

import numpy as np
import pytest

from golden.local_loss import local_gradients
from golden.network import trace, trace_ffl
from tests.golden.variants import make_config, random_params


def _frozen_inputs(config, params, x, y_pos, y_neg, loss_iterations):
    """Per layer: [(u, f, labels, positive)] for every sample set its loss covers."""
    inputs = [[] for _ in range(config.num_layers)]
    if config.algo == "ffl":
        for labels, positive in ((y_pos, True), (y_neg, False)):
            for layer, step in enumerate(trace_ffl(config, params, x, labels)):
                inputs[layer].append((step.u, None, labels, positive))
        return inputs
    rows = trace(config, params, x)
    rows = rows if loss_iterations == "all" else rows[-1:]
    for row in rows:
        for layer, step in enumerate(row):
            for labels, positive in ((y_pos, True), (y_neg, False)):
                inputs[layer].append((step.u, step.f, labels, positive))
    return inputs


def _reference_loss(arrays, inputs, theta):
    total = 0.0
    for u, f, labels, positive in inputs:
        z = u @ arrays["W"].T + arrays["b"]
        if arrays.get("V") is not None and f is not None:
            z = z + f @ arrays["V"].T
        if arrays.get("U") is not None:
            z = z + arrays["U"][:, labels].T
        g = (np.maximum(z, 0) ** 2).sum(axis=1)
        margin = theta - g if positive else g - theta
        total += np.log1p(np.exp(margin)).mean()
    return total


@pytest.mark.parametrize("loss_iterations", ["all", "last"])
def test_gradients_match_finite_differences(variant, loss_iterations):
    config = make_config(variant)
    params = random_params(config, seed=3)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, size=(6, config.input_size))
    y_pos = rng.integers(0, config.num_classes, size=6)
    y_neg = (y_pos + rng.integers(1, config.num_classes, size=6)) % config.num_classes
    grads = local_gradients(config, params, x, y_pos, y_neg, loss_iterations=loss_iterations)
    inputs = _frozen_inputs(config, params, x, y_pos, y_neg, loss_iterations)
    checked = 0
    for layer, grad in enumerate(grads):
        arrays = {kind: getattr(params, kind)[layer] for kind in ("W", "b", "U", "V")}
        theta = config.thresholds()[layer]
        assert grad.loss == pytest.approx(_reference_loss(arrays, inputs[layer], theta), rel=1e-12)
        for kind, array in arrays.items():
            if array is None:
                assert getattr(grad, kind) is None
                continue
            analytic = getattr(grad, kind)
            # Every entry of small arrays, a random sample of large ones.
            flat = np.arange(array.size)
            for index in rng.choice(flat, size=min(array.size, 12), replace=False):
                where = np.unravel_index(index, array.shape)
                old = array[where]
                h = 1e-6
                array[where] = old + h
                up = _reference_loss(arrays, inputs[layer], theta)
                array[where] = old - h
                down = _reference_loss(arrays, inputs[layer], theta)
                array[where] = old
                numeric = (up - down) / (2 * h)
                assert analytic[where] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (
                    f"layer {layer + 1} d{kind}{where}"
                )
                checked += 1
    assert checked > 20


def test_a_wrong_gradient_would_be_caught():
    # The reference loss must be sensitive to the parameters at all; otherwise the
    # comparison above could pass with any gradient.
    config = make_config("ffdl")
    params = random_params(config, seed=1)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, size=(6, config.input_size))
    y = rng.integers(0, config.num_classes, size=6)
    inputs = _frozen_inputs(config, params, x, y, (y + 1) % 4, "all")
    arrays = {kind: getattr(params, kind)[0] for kind in ("W", "b", "U", "V")}
    before = _reference_loss(arrays, inputs[0], config.thresholds()[0])
    arrays["W"] = arrays["W"] * 1.1
    assert _reference_loss(arrays, inputs[0], config.thresholds()[0]) != pytest.approx(before)


@pytest.mark.parametrize("name", ["ffdl", "ffcl-adjacent-T3", "ffcl-top-T2", "ffcl-goodness"])
def test_a_later_layers_goodness_never_reaches_an_earlier_layers_update(name):
    # U_L enters only layer L's goodness, never anything forwarded. With backpropagation
    # layer 1's gradient would depend on it; with layer-local learning it cannot.
    config = make_config(name)
    params = random_params(config, seed=5)
    rng = np.random.default_rng(6)
    x = rng.uniform(0, 1, size=(8, config.input_size))
    y = rng.integers(0, 4, size=8)
    before = local_gradients(config, params, x, y, (y + 1) % 4)
    params.U[-1] += rng.normal(0, 1, size=params.U[-1].shape)
    params.b[-1] += 0.5 if config.algo == "ffdl" else 0.0
    after = local_gradients(config, params, x, y, (y + 1) % 4)
    for layer in range(config.num_layers - 1):
        for kind in ("W", "b", "U", "V"):
            a, b = getattr(before[layer], kind), getattr(after[layer], kind)
            if a is not None:
                np.testing.assert_array_equal(a, b)
    # ...while the last layer's own gradient does change.
    assert not np.array_equal(before[-1].U, after[-1].U)


@pytest.mark.parametrize("name", ["ffl", "ffl-3layers", "ffdl", "ffdl-3layers"])
def test_changing_a_later_layers_weights_never_changes_an_earlier_update(name):
    config = make_config(name)
    params = random_params(config, seed=7)
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, size=(8, config.input_size))
    y = rng.integers(0, 4, size=8)
    before = local_gradients(config, params, x, y, (y + 2) % 4)
    for layer in range(1, config.num_layers):
        params.W[layer] += rng.normal(0, 1, size=params.W[layer].shape)
        params.b[layer] += 1.0
    after = local_gradients(config, params, x, y, (y + 2) % 4)
    for kind in ("W", "b", "U"):
        a, b = getattr(before[0], kind), getattr(after[0], kind)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(before[-1].W, after[-1].W)
