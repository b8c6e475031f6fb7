"""The quantizer: weight exponents, saturation, zero arrays, and accuracy on digits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ffcl_hw.presets import preset_for
from golden.config import ModelConfig, TrainConfig
from golden.datasets import load_dataset
from golden.evaluate import evaluate
from golden.intmodel import IntLayer, IntModel
from golden.quantize import quantize
from golden.training import train
from tests.golden.variants import make_config, random_params

X = 16


def _calibration(config: ModelConfig, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((64, config.input_size))


def _float_arrays(config: ModelConfig, params, model: IntModel):
    """(name, float array, integer array, exponent) of every W and V."""
    for i, layer in enumerate(model.layers):
        W = params.W[i]
        if i == 0:
            if config.algo == "ffl":
                W = np.concatenate([W, params.U[0]], axis=1)
            W = W / model.fmt.input_max
        yield f"W{i + 1}", W, layer.W, layer.w_exp
        if layer.V is not None:
            yield f"V{i + 1}", params.V[i], layer.V, layer.v_exp


@pytest.mark.parametrize("weight_bits", [4, 8, 12])
@pytest.mark.parametrize("scale", [0.01, 0.6, 40.0])
def test_weight_exponents_use_the_full_range(variant, scale, weight_bits):
    config = make_config(variant)
    params = random_params(config, 2, scale=scale)
    model = quantize(config, params, _calibration(config), input_max=X,
                     weight_bits=weight_bits)
    wmax = model.fmt.weight_max
    for name, W, W_q, exp in _float_arrays(config, params, model):
        largest = int(np.abs(W_q).max())
        # The largest weight lands in the top half of the range: no bit is wasted.
        assert wmax / 2 < largest <= wmax, name
        # W_q is W * 2^exp rounded to the nearest integer.
        assert np.all(np.abs(W_q - W * 2.0**exp) <= 0.5), name
    if config.algo != "ffl":
        for i, layer in enumerate(model.layers):
            assert np.abs(layer.U).max() <= wmax
            np.testing.assert_array_equal(layer.U, np.rint(params.U[i] * 2.0**model.fmt.frac_bits))


@pytest.mark.parametrize("state_bits", [8, 12, 16])
def test_biases_saturate_at_the_state_range(state_bits):
    # Calibration sets S from pre-activations, which include b. A bias cancelled by its
    # weights on every calibration image (all-ones images here) does not raise the range,
    # so it can exceed it and must saturate.
    config = make_config("ffdl")
    params = random_params(config, 0)
    D = config.input_size
    params.W[0][:2] = [[-1e3 / D] * D, [1e3 / D] * D]
    params.b[0][:3] = [1e3, -1e3, 0.25]
    model = quantize(config, params, np.ones((4, D)), input_max=X, state_bits=state_bits)
    limit = 1 << (state_bits - 1)
    assert 1e3 * 2**model.fmt.frac_bits > limit
    assert model.layers[0].b[:3].tolist() == [limit - 1, -limit,
                                              round(0.25 * 2**model.fmt.frac_bits)]


@pytest.mark.parametrize(("name", "kind", "layer"), [
    ("ffcl-adjacent-T3", "V", 0),   # FFCL's feedback weights start at zero
    ("ffcl-top-T2", "V", 0),
    ("ffdl", "W", 1),
])
@pytest.mark.parametrize("scale", [0.6, 0.001])
def test_zero_arrays_quantize_to_zero_and_run(name, kind, layer, scale):
    # Scale 0.001 gives tiny pre-activations, so S exceeds Q = rsqrt_frac_bits: the
    # exponent of the zero array must still leave the scaler a non-negative shift.
    config = make_config(name)
    params = random_params(config, 1, scale=scale)
    getattr(params, kind)[layer][:] = 0
    model = quantize(config, params, _calibration(config), input_max=X)
    if scale < 0.01:
        assert model.fmt.frac_bits > model.fmt.rsqrt_frac_bits
    zeroed = getattr(model.layers[layer], kind)
    assert not zeroed.any()
    model.check()
    x_q = np.random.default_rng(3).integers(0, X + 1, size=(16, config.input_size))
    result = model.run(x_q)
    if kind == "V":
        # No feedback: every iteration repeats the first, which is FFDL.
        ffdl = IntModel(
            config=dataclasses.replace(config, algo="ffdl", loops=1, topology="adjacent"),
            fmt=model.fmt,
            layers=[IntLayer(W=lay.W, w_exp=lay.w_exp, b=lay.b, U=lay.U)
                    for lay in model.layers])
        np.testing.assert_array_equal(result.goodness, config.loops * ffdl.run(x_q).goodness)


@pytest.mark.parametrize(("calibration", "message"), [
    (np.zeros((0, 9)), r"calibration images must have shape \(n > 0, 9\), not \(0, 9\)"),
    (np.zeros((5, 8)), r"not \(5, 8\)"),
])
def test_bad_calibration_is_refused(calibration, message):
    config = make_config("ffdl")
    with pytest.raises(ValueError, match=message):
        quantize(config, random_params(config, 0), calibration, input_max=X)


def test_formats_outside_their_range_are_refused():
    config = make_config("ffdl")
    with pytest.raises(ValueError, match="weight_bits must be an integer in 2..16, not 17"):
        quantize(config, random_params(config, 0), _calibration(config), input_max=X,
                 weight_bits=17)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("algo", ["ffl", "ffdl", "ffcl"])
def test_integer_accuracy_on_digits_is_within_one_point_of_float(digits, algo):
    # The CLI's defaults (ffcl_hw.presets) and the default formats: 8-bit weights,
    # 16-bit state, calibrated on the first 1000 training images like `ffcl-hw quantize`.
    preset = preset_for("digits", algo)
    config = ModelConfig(algo=algo, input_size=digits.input_size,
                         num_classes=digits.num_classes, hidden=preset.hidden,
                         loops=preset.loops, theta=preset.theta)
    train_config = TrainConfig(epochs=preset.epochs, batch_size=preset.batch_size,
                               lr=preset.lr, seed=0)
    params = train(config, train_config, digits.x_train, digits.y_train).params
    float_accuracy = evaluate(config, params, digits.x_test, digits.y_test).accuracy
    model = quantize(config, params, digits.x_train[:1000], input_max=digits.pixel_max)
    x_q = model.quantize_input(digits.x_test)
    # Digits pixels are integers 0..16: quantizing the inputs loses nothing.
    np.testing.assert_array_equal(x_q, np.rint(digits.x_test * 16))
    int_accuracy = float((model.run(x_q).labels == digits.y_test).mean())
    assert digits.n_test == 450
    assert float_accuracy > 0.9
    assert int_accuracy >= float_accuracy - 0.01
