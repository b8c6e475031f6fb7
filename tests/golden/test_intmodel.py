"""IntModel against an independent, per-sample, pure-Python-int reference.

The reference below re-implements the rules of golden/intmodel.py's docstring (and
docs/integer-format.md) with loops over Python ints: no NumPy arithmetic, no width limits.
It also records the largest magnitude every intermediate reaches, so the tests can check
that the widths IntModel reports (acc_bits, sq_bits, score_bits) hold them and that
nothing came near int64 overflow.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import numpy as np
import pytest

from golden.config import ModelConfig
from golden.intformat import IntFormat
from golden.intmodel import IntLayer, IntModel
from golden.quantize import quantize
from tests.golden.variants import VARIANTS, extreme, make_config, random_params

X = 16


class Reference:
    """Python-int inference of an integer network, one sample at a time."""

    def __init__(self, model: IntModel):
        self.config, fmt = model.config, model.fmt
        self.S, self.Q, self.k = fmt.frac_bits, fmt.rsqrt_frac_bits, fmt.rsqrt_index_bits
        self.state_bits, self.X = fmt.state_bits, fmt.input_max

        def rows(array):
            return None if array is None else [[int(v) for v in row] for row in array]

        self.layers = [dict(W=rows(layer.W), w_exp=layer.w_exp, b=[int(v) for v in layer.b],
                            U=rows(layer.U), V=rows(layer.V), v_exp=layer.v_exp)
                       for layer in model.layers]
        # Largest |value| seen, per quantity: ("acc", layer, feedback), "sq", "score", "any".
        self.peak: dict = defaultdict(int)

    def _see(self, key, value: int) -> int:
        self.peak[key] = max(self.peak[key], abs(value))
        self.peak["any"] = max(self.peak["any"], abs(value))
        return value

    @staticmethod
    def round_shift(value: int, shift: int) -> int:
        assert shift >= 0
        return value if shift == 0 else (value + (1 << (shift - 1))) >> shift

    def saturate(self, value: int) -> int:
        limit = 1 << (self.state_bits - 1)
        return min(max(value, -limit), limit - 1)

    def table(self, m: int) -> int:
        # floor(2^Q / sqrt(m) + 1/2) = floor((floor(2^(Q+1) / sqrt(m)) + 1) / 2), and
        # floor(2^(Q+1) / sqrt(m)) = isqrt(floor(4^(Q+1) / m)).
        return 0 if m == 0 else (math.isqrt((4 ** (self.Q + 1)) // m) + 1) // 2

    def rsqrt(self, sq: int) -> tuple[int, int]:
        sh = max(sq.bit_length() - self.k, 0)
        sh += sh % 2
        return self.table(sq >> sh), sh

    def product(self, a: list[int], W: list[list[int]], exp: int, normalise: bool,
                key) -> list[int]:
        """s = round_shift(acc * r, sh/2 + Q + exp - S) for every output neuron."""
        if normalise:
            sq = self._see("sq", sum(v * v for v in a))
            r, sh = self.rsqrt(sq)
        else:
            r, sh = 1 << self.Q, 0
        out = []
        for row in W:
            acc = self._see(key, sum(w * v for w, v in zip(row, a, strict=True)))
            out.append(self.round_shift(self._see("any", acc * r),
                                        sh // 2 + self.Q + exp - self.S))
        return out

    def scan(self, pre: list[int], U: list[list[int]]) -> list[int]:
        K = len(U[0])
        return [sum(max(p + U[i][k], 0) ** 2 for i, p in enumerate(pre)) for k in range(K)]

    def sample(self, x: list[int]) -> list[list[int]]:
        """goodness[l][k] of one image."""
        c = self.config
        L, K = c.num_layers, c.num_classes
        g = [[0] * K for _ in range(L)]
        if c.algo == "ffl":
            for k in range(K):
                a = x + [self.X if j == k else 0 for j in range(K)]
                for i, layer in enumerate(self.layers):
                    s_ff = self.product(a, layer["W"], layer["w_exp"], i > 0, ("acc", i, False))
                    s = [self.saturate(v + b) for v, b in zip(s_ff, layer["b"], strict=True)]
                    a = [max(v, 0) for v in s]
                    g[i][k] = self._see("any", sum(v * v for v in a))
            return g
        prev = [[0] * n for n in c.hidden]
        for t in range(c.loops):
            current = []
            for i, layer in enumerate(self.layers):
                u = x if i == 0 else current[i - 1]
                s_ff = self.product(u, layer["W"], layer["w_exp"], i > 0, ("acc", i, False))
                source = c.feedback_source(i)
                s_fb = ([0] * len(s_ff) if source is None else
                        self.product(prev[source], layer["V"], layer["v_exp"], True,
                                     ("acc", i, True)))
                if c.feedback == "goodness":
                    s = [self.saturate(f + b) for f, b in zip(s_ff, layer["b"], strict=True)]
                    pre = [self.saturate(v + f) for v, f in zip(s, s_fb, strict=True)]
                else:
                    s = pre = [self.saturate(f + v + b) for f, v, b
                               in zip(s_ff, s_fb, layer["b"], strict=True)]
                current.append([max(v, 0) for v in s])
                if c.readout == "sum" or t == c.loops - 1:
                    for k, value in enumerate(self.scan(pre, layer["U"])):
                        g[i][k] += value
            prev = current
        return g

    def run(self, x_q: np.ndarray) -> tuple[list[int], list[list[int]], list]:
        """labels, scores and goodness of every image, and the peaks in ``self.peak``."""
        labels, scores, goodness = [], [], []
        scoring = self.config.scoring_layers()
        for row in x_q:
            g = self.sample([int(v) for v in row])
            score = [self._see("score", sum(g[i][k] for i in scoring))
                     for k in range(self.config.num_classes)]
            # Ties to the lowest label: the first index holding the maximum.
            labels.append(score.index(max(score)))
            scores.append(score)
            goodness.append(g)
        return labels, scores, goodness


def _quantized(name: str, seed: int, *, weight_bits: int = 8, state_bits: int = 16,
               input_max: int = X, config: ModelConfig | None = None) -> IntModel:
    config = config or make_config(name)
    rng = np.random.default_rng(seed)
    return quantize(config, random_params(config, seed), rng.random((64, config.input_size)),
                    input_max=input_max, weight_bits=weight_bits, state_bits=state_bits)


def _images(model: IntModel, seed: int, n: int = 20) -> np.ndarray:
    """Random images, then an all-zero and an all-maximum image."""
    rng = np.random.default_rng(seed)
    X_max, D = model.fmt.input_max, model.config.input_size
    return np.concatenate([rng.integers(0, X_max + 1, size=(n, D)),
                           np.zeros((1, D), dtype=np.int64),
                           np.full((1, D), X_max)])


def _extreme(model: IntModel, kind: str, seed: int) -> IntModel:
    """Every W/U/V entry at +-weight_max and every bias at a state extreme."""
    return extreme(model, kind, np.random.default_rng(seed))


FORMATS = {"w8s16": (8, 16), "w4s8": (4, 8), "w12s20": (12, 20)}


@pytest.mark.parametrize("weights", ["quantized", "signs", "positive", "negative"])
@pytest.mark.parametrize("formats", sorted(FORMATS))
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_int_model_matches_the_python_int_reference_bit_for_bit(name, formats, weights):
    weight_bits, state_bits = FORMATS[formats]
    model = _quantized(name, seed=7, weight_bits=weight_bits, state_bits=state_bits)
    if weights != "quantized":
        model = _extreme(model, weights, seed=8)
    model.check()
    x_q = _images(model, seed=9)
    result = model.run(x_q)
    reference = Reference(model)
    labels, scores, goodness = reference.run(x_q)
    assert result.labels.tolist() == labels
    assert result.scores.tolist() == scores
    assert result.goodness.tolist() == goodness

    # The widths IntModel reports hold every value the reference met, and nothing came
    # near int64 overflow (the NumPy model would then have disagreed, too).
    peak = reference.peak
    products = [key for key in peak if isinstance(key, tuple)]
    assert ("acc", 0, False) in products
    for _, layer, feedback in products:
        assert peak["acc", layer, feedback] < 1 << (model.acc_bits(layer, feedback) - 1)
    assert peak["sq"] < 1 << model.sq_bits()
    assert peak["score"] < 1 << model.score_bits()
    assert peak["any"] < 1 << 62


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_all_positive_extremes_reach_the_reported_widths(name):
    # With every weight and bias at its positive extreme and full-scale images, the
    # accumulators, sums of squares and scores reach the top bit of their widths: the
    # widths are tight, not merely safe.
    model = _extreme(_quantized(name, seed=3), "positive", seed=0)
    x_q = np.full((1, model.config.input_size), model.fmt.input_max)
    reference = Reference(model)
    reference.run(x_q)
    assert reference.peak[("acc", 0, False)] >= 1 << (model.acc_bits(0) - 2)
    assert reference.peak["score"] >= 1 << (model.score_bits() - 1)
    if model.config.num_layers > 1:
        assert reference.peak["sq"] >= 1 << (model.sq_bits() - 1)


FFCL_VARIANTS = sorted(name for name, v in VARIANTS.items() if v["algo"] == "ffcl")


@pytest.mark.parametrize("name", FFCL_VARIANTS)
def test_ffcl_first_iteration_is_ffdl_with_the_same_layers(name):
    # With T = 2, goodness summed over both iterations minus the last one is the first
    # iteration, which hears no feedback (a^(0) = 0): FFDL with FFCL's W, b and U.
    config = dataclasses.replace(make_config(name), loops=2, readout="sum")
    model = _quantized(name, seed=4, config=config)
    last = IntModel(config=dataclasses.replace(config, readout="last"), fmt=model.fmt,
                    layers=model.layers)
    ffdl_config = dataclasses.replace(config, algo="ffdl", loops=1, topology="adjacent",
                                      feedback="state")
    ffdl = IntModel(config=ffdl_config, fmt=model.fmt,
                    layers=[IntLayer(W=layer.W, w_exp=layer.w_exp, b=layer.b, U=layer.U)
                            for layer in model.layers])
    x_q = _images(model, seed=5, n=40)
    first = model.run(x_q).goodness - last.run(x_q).goodness
    np.testing.assert_array_equal(first, ffdl.run(x_q).goodness)
    # The loop matters: the second iteration differs from the first.
    assert np.any(last.run(x_q).goodness != first)


def _tie_labels(model: IntModel, tied_from: int) -> IntModel:
    """Copy of ``model`` whose labels tied_from..K-1 have identical label weights."""
    D = model.config.input_size
    layers = [dataclasses.replace(layer) for layer in model.layers]
    wmax = model.fmt.weight_max
    if model.config.algo == "ffl":
        W = layers[0].W.copy()
        # Label k's column of layer 1 is D + k: give the tied labels one shared column.
        W[:, D:D + tied_from] = -wmax
        W[:, D + tied_from:] = wmax
        layers[0].W = W
    else:
        for layer in layers:
            U = layer.U.copy()
            U[:, :tied_from] = -wmax
            U[:, tied_from:] = U[:, [tied_from]]
            layer.U = U
    return IntModel(config=model.config, fmt=model.fmt, layers=layers)


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("tied_from", [0, 1])
def test_tied_scores_go_to_the_lowest_label(name, tied_from):
    model = _tie_labels(_quantized(name, seed=6), tied_from)
    result = model.run(_images(model, seed=2, n=60))
    scores = result.scores
    # The construction really ties labels tied_from..K-1 on every image.
    assert np.all(scores[:, tied_from:] == scores[:, [tied_from]])
    expected = np.where(scores[:, 0] >= scores[:, tied_from], 0, tied_from)
    np.testing.assert_array_equal(result.labels, expected)
    if tied_from == 1:
        # Images where the tie is the maximum: they name label 1, not K - 1.
        assert np.any(result.labels == 1)


@pytest.mark.parametrize(("x", "expected"), [
    ([0.0, 1.0, 0.5, 1 / 32, 1 / 32 - 1e-9, 1.5, -0.2], [0, 16, 8, 1, 0, 16, 0]),
])
def test_quantize_input_rounds_half_up_and_clips(x, expected):
    model = _quantized("ffdl", seed=0)
    x = np.array([x + [0.0] * (model.config.input_size - len(x))])
    assert model.quantize_input(x)[0, :len(expected)].tolist() == expected


@pytest.mark.parametrize(("images", "message"), [
    (np.zeros((2, 8), dtype=np.int64), r"images must have shape \(n, 9\), not \(2, 8\)"),
    (np.full((2, 9), 17), r"pixels must lie in 0..16"),
    (np.full((2, 9), -1), r"pixels must lie in 0..16"),
])
def test_run_refuses_bad_images(images, message):
    with pytest.raises(ValueError, match=message):
        _quantized("ffdl", seed=0).run(images)


def _zero_model(config: ModelConfig, fmt: IntFormat, w_exp: int) -> IntModel:
    layers = []
    for i, (n_out, n_in) in enumerate(zip(config.hidden, config.fan_in, strict=True)):
        source = config.feedback_source(i)
        layers.append(IntLayer(
            W=np.zeros((n_out, n_in), dtype=np.int64), w_exp=w_exp,
            b=np.zeros(n_out, dtype=np.int64),
            U=np.zeros((n_out, config.num_classes), dtype=np.int64),
            V=None if source is None else np.zeros((n_out, config.hidden[source]), np.int64),
            v_exp=None if source is None else w_exp))
    return IntModel(config=config, fmt=fmt, layers=layers)


@pytest.mark.parametrize(("hidden", "loops", "state_bits", "w_exp", "message"), [
    ((8, 8), 2, 16, -20, "layer 1 W: scaler shift -13 is negative"),
    # The sum of squares of 256 24-bit activations passes 2**53, where rsqrt's bit
    # length (through float64) stops being exact.
    ((256, 8), 2, 24, 0, "sum of squares needs 54 bits, more than 53"),
    # 2 layers x 2048 iterations x 100 neurons of 24-bit goodness terms overflow int64.
    ((100, 100), 2048, 24, 0, "scores need 65 bits, more than int64's 63"),
])
def test_check_refuses_formats_the_arithmetic_cannot_hold(hidden, loops, state_bits, w_exp,
                                                          message):
    config = ModelConfig(algo="ffcl", input_size=4, num_classes=3, hidden=hidden, loops=loops)
    fmt = IntFormat(state_bits=state_bits, frac_bits=5, input_max=16)
    with pytest.raises(ValueError, match=message):
        _zero_model(config, fmt, w_exp).check()
