"""From a trained float model to an :class:`~golden.intmodel.IntModel`.

- Weight matrices: symmetric ``weight_bits`` integers with one power-of-two scale each,
  W_q = clip(rint(W 2^e), -wmax, wmax) with e = floor(log2(wmax / max|W|)), so the
  largest weight uses the full range. Layer 1's matrix is W_1 / X (FFL: [W_1, U_1] / X),
  which folds the pixel scale into the weights.
- One fixed-point scale 2^-S for every pre-activation, bias and label weight, so goodness
  adds across layers without alignment. S is the largest value for which (a) every label
  weight fits ``weight_bits`` and (b) the largest pre-activation seen on calibration
  images, with 1.5x headroom, fits ``state_bits``. Values beyond (b) saturate.
"""

from __future__ import annotations

import math

import numpy as np

from golden.config import ModelConfig
from golden.intformat import IntFormat
from golden.intmodel import IntLayer, IntModel
from golden.network import trace, trace_ffl
from golden.params import Parameters

__all__ = ["quantize"]

_HEADROOM = 1.5


def _exponent(max_abs: float, limit: int, zero: int = 0) -> int:
    """Largest e with max_abs * 2^e <= limit (an all-zero array gets e = ``zero``)."""
    if max_abs == 0:
        return zero
    return math.floor(math.log2(limit / max_abs))


def _to_int(array: np.ndarray, exp: int, limit: int) -> np.ndarray:
    return np.clip(np.rint(np.asarray(array, dtype=np.float64) * 2.0**exp), -limit,
                   limit).astype(np.int64)


def _max_preactivation(config: ModelConfig, params: Parameters, x: np.ndarray) -> float:
    """Largest |pre-activation| (and |pre + U|) of the float model on ``x``."""
    x = x.astype(np.float64)
    p64 = params.astype(np.float64)
    largest = 0.0
    if config.algo == "ffl":
        for k in range(config.num_classes):
            labels = np.full(x.shape[0], k)
            for i, step in enumerate(trace_ffl(config, p64, x, labels)):
                z = step.pre + (p64.U[i].T[labels] if p64.U[i] is not None else 0)
                largest = max(largest, float(np.abs(z).max()))
        return largest
    for row in trace(config, p64, x):
        for i, step in enumerate(row):
            largest = max(largest, float(np.abs(step.pre).max()),
                          float(np.abs(step.pre).max() + np.abs(p64.U[i]).max()))
    return largest


def quantize(
    config: ModelConfig,
    params: Parameters,
    calibration: np.ndarray,
    *,
    input_max: int,
    weight_bits: int = 8,
    state_bits: int = 16,
    rsqrt_index_bits: int = 8,
    rsqrt_frac_bits: int = 12,
) -> IntModel:
    """Quantize a float network.

    Parameters
    ----------
    config, params
        The trained float network.
    calibration : ndarray, shape (n, D)
        Training images in [0, 1]; they set the pre-activation range.
    input_max : int
        X, the integer full scale of a pixel (16 for digits, 255 for 8-bit images).
    weight_bits, state_bits, rsqrt_index_bits, rsqrt_frac_bits : int
        The formats (:class:`~golden.intformat.IntFormat`).

    Raises
    ------
    ValueError
        If a format is out of range or the formats cannot represent the model.
    """
    if calibration.ndim != 2 or calibration.shape[1] != config.input_size or not len(calibration):
        raise ValueError(
            f"calibration images must have shape (n > 0, {config.input_size}), "
            f"not {calibration.shape}"
        )
    wmax = (1 << (weight_bits - 1)) - 1
    act_max = (1 << (state_bits - 1)) - 1
    frac = _exponent(_HEADROOM * _max_preactivation(config, params, calibration), act_max)
    for U in params.U:
        if U is not None and config.algo != "ffl":
            frac = min(frac, _exponent(float(np.abs(U).max()), wmax))
    fmt = IntFormat(weight_bits=weight_bits, state_bits=state_bits, frac_bits=frac,
                    input_max=input_max, rsqrt_index_bits=rsqrt_index_bits,
                    rsqrt_frac_bits=rsqrt_frac_bits)
    # Any exponent represents an all-zero array (e.g. FFCL's V before training moves it);
    # 0 unless that would make the scaler's shift e + Q - S negative.
    zero_exp = max(0, frac - rsqrt_frac_bits)
    layers = []
    for i in range(config.num_layers):
        W = params.W[i].astype(np.float64)
        if i == 0:
            if config.algo == "ffl":
                W = np.concatenate([W, params.U[0].astype(np.float64)], axis=1)
            W = W / input_max
        w_exp = _exponent(float(np.abs(W).max()), wmax, zero_exp)
        layer = IntLayer(
            W=_to_int(W, w_exp, wmax), w_exp=w_exp,
            b=_to_int(params.b[i], frac, act_max + 1).clip(-act_max - 1, act_max),
            U=None if config.algo == "ffl" else _to_int(params.U[i], frac, wmax),
        )
        if params.V[i] is not None:
            layer.v_exp = _exponent(float(np.abs(params.V[i]).max()), wmax, zero_exp)
            layer.V = _to_int(params.V[i], layer.v_exp, wmax)
        layers.append(layer)
    model = IntModel(config=config, fmt=fmt, layers=layers)
    model.check()
    return model
