"""The integer FFL/FFDL/FFCL inference that the accelerator computes, bit for bit.

An :class:`IntModel` holds integer weights and the :class:`~golden.intformat.IntFormat`;
:meth:`IntModel.run` classifies integer images exactly as the RTL core does. The rules
(docs/integer-format.md):

- Pixels are integers 0..X. Layer 1: acc = W_1 x (W_1 quantized from W_1 / X, so the
  pixel scale is folded into the weights); FFL's layer 1 also has the label as an input
  block of K columns whose input is X for the candidate label and 0 otherwise.
- Layers above, and feedback: acc = W a on the raw integer activations, then
  s = round_shift(acc * r, sh/2 + Q + e - S), with (r, sh) = rsqrt(sum a^2): the
  normalisation W n(a) = (W a) / ||a|| done once per output neuron. Only W_1 x uses
  r = 2^Q, sh = 0 (layer 1's feedback product is normalised like every other). Feed-forward
  and feedback products are scaled separately, then added.
- s = saturate(s_ff + s_fb + b) (state feedback) and a = max(s, 0); with goodness
  feedback, s = saturate(s_ff + b) is forwarded and pre = saturate(s + s_fb) scanned.
- Label scan: g(k) = sum_i max(pre_i + U[i, k], 0)^2; FFL: g = sum_i max(s_i, 0)^2.
- Score: the scoring layers' goodness summed over the read iterations; argmax, ties to
  the lowest label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.config import ModelConfig
from golden.intformat import IntFormat, argmax, rsqrt, saturate, scale, signed_bits, unsigned_bits

__all__ = ["IntLayer", "IntModel", "IntResult"]

# Products are computed as float64 matrix products, exact while every partial sum stays
# below 2**53; IntModel checks that bound from the formats.
_EXACT_LIMIT = 1 << 53
_SCAN_CHUNK = 1024


@dataclass
class IntLayer:
    """Integer weights of one layer.

    Attributes
    ----------
    W : ndarray of int64, shape (N_l, n_in)
        Feature weights (layer 1 of FFL includes the K label columns).
    w_exp : int
        W_float = W * 2**-w_exp (layer 1: W_float / X).
    b : ndarray of int64, shape (N_l,)
        Bias, fixed point with S fractional bits.
    U : ndarray of int64, shape (N_l, K), or None
        Label weights for the scan, S fractional bits (None for FFL).
    V : ndarray of int64, shape (N_l, N_src), or None
        Feedback weights; ``v_exp`` their exponent.
    """

    W: np.ndarray
    w_exp: int
    b: np.ndarray
    U: np.ndarray | None = None
    V: np.ndarray | None = None
    v_exp: int | None = None


@dataclass
class IntResult:
    """What the hardware reports for a batch of images.

    Attributes
    ----------
    labels : ndarray, shape (n,)
    scores : ndarray, shape (n, K)
        Per-label scores (the scoring layers summed).
    goodness : ndarray, shape (n, L, K)
        Per-layer goodness summed over the read iterations.
    """

    labels: np.ndarray
    scores: np.ndarray
    goodness: np.ndarray


def _matmul(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact integer a @ w.T through float64 (the caller guarantees |sums| < 2**53)."""
    return np.rint(a.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)


@dataclass
class IntModel:
    """An integer network and the formats of its arithmetic."""

    config: ModelConfig
    fmt: IntFormat
    layers: list[IntLayer]

    # -- derived facts shared with the RTL -------------------------------------------
    def input_width(self, layer: int) -> int:
        """n_in of layer ``layer``'s feature product (FFL layer 1 counts the K label columns)."""
        return self.layers[layer].W.shape[1]

    def shift(self, exp: int) -> int:
        """Constant part of the scaler's right shift for a product of exponent ``exp``."""
        return exp + self.fmt.rsqrt_frac_bits - self.fmt.frac_bits

    def input_max(self, layer: int) -> int:
        """Largest value a layer's feature input can take."""
        return self.fmt.input_max if layer == 0 else self.fmt.act_max

    def acc_bits(self, layer: int, feedback: bool = False) -> int:
        """Signed width of a MAC accumulator that cannot overflow for this product."""
        if feedback:
            n_in, amax = self.layers[layer].V.shape[1], self.fmt.act_max
        else:
            n_in, amax = self.input_width(layer), self.input_max(layer)
        return signed_bits(n_in * self.fmt.weight_max * amax)

    def max_acc_bits(self) -> int:
        """The widest accumulator any product of the model needs."""
        widths = [self.acc_bits(i) for i in range(len(self.layers))]
        widths += [self.acc_bits(i, True) for i, layer in enumerate(self.layers)
                   if layer.V is not None]
        return max(widths)

    def sq_bits(self) -> int:
        """Unsigned width of sum(a^2) over the widest layer."""
        return unsigned_bits(max(self.config.hidden) * self.fmt.act_max**2)

    def score_bits(self) -> int:
        """Unsigned width of a per-label score: cannot overflow by construction."""
        h_max = self.fmt.act_max + (self.fmt.weight_max if self.config.algo != "ffl" else 0)
        reads = self.config.loops if self.config.readout == "sum" else 1
        if self.config.algo == "ffcl" and self.config.feedback == "goodness":
            reads = 2 if self.config.readout == "sum" else 1
        total = sum(reads * self.config.hidden[i] * h_max**2
                    for i in self.config.scoring_layers())
        return unsigned_bits(total)

    def check(self) -> None:
        """Verify that every shift is non-negative and every product exact in float64.

        Raises
        ------
        ValueError
            Naming the layer and the limit broken.
        """
        for i, layer in enumerate(self.layers):
            for name, exp in (("W", layer.w_exp), ("V", layer.v_exp)):
                if exp is not None and self.shift(exp) < 0:
                    raise ValueError(
                        f"layer {i + 1} {name}: scaler shift {self.shift(exp)} is negative; "
                        "raise rsqrt_frac_bits or lower frac_bits"
                    )
        if (1 << self.max_acc_bits()) * (1 << (self.fmt.rsqrt_frac_bits + 1)) >= _EXACT_LIMIT:
            raise ValueError("accumulator times reciprocal exceeds 2**53: formats too wide")
        # rsqrt finds the bit length of sum(a^2) through float64, exact below 2**53.
        if self.sq_bits() > 53:
            raise ValueError(f"sum of squares needs {self.sq_bits()} bits, more than 53: "
                             "lower state_bits or the layer widths")
        if self.score_bits() > 63:
            raise ValueError(f"scores need {self.score_bits()} bits, more than int64's 63: "
                             "lower state_bits or the layer widths")

    # -- inference --------------------------------------------------------------------
    def _product(self, a: np.ndarray, w: np.ndarray, exp: int, normalise: bool) -> np.ndarray:
        acc = _matmul(a, w)
        if not normalise:
            return scale(acc, 1 << self.fmt.rsqrt_frac_bits, self.shift(exp))
        sq = np.einsum("ij,ij->i", a, a)
        r, sh = rsqrt(sq, self.fmt.table, self.fmt.rsqrt_index_bits)
        return scale(acc, r[:, None], (sh // 2 + self.shift(exp))[:, None])

    def _scan(self, pre: np.ndarray, U: np.ndarray) -> np.ndarray:
        out = np.empty((pre.shape[0], U.shape[1]), dtype=np.int64)
        for start in range(0, pre.shape[0], _SCAN_CHUNK):
            h = np.maximum(pre[start:start + _SCAN_CHUNK, :, None] + U[None], 0)
            out[start:start + _SCAN_CHUNK] = (h * h).sum(axis=1)
        return out

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Pixels in [0, 1] to integers 0..X: floor(x X + 1/2), clipped."""
        X = self.fmt.input_max
        return np.clip(np.floor(np.asarray(x, dtype=np.float64) * X + 0.5), 0, X).astype(np.int64)

    def run(self, x_q: np.ndarray) -> IntResult:
        """Classify integer images ``x_q`` (shape (n, D), values 0..X)."""
        x_q = np.asarray(x_q, dtype=np.int64)
        config, fmt = self.config, self.fmt
        if x_q.ndim != 2 or x_q.shape[1] != config.input_size:
            raise ValueError(f"images must have shape (n, {config.input_size}), not {x_q.shape}")
        if x_q.size and (x_q.min() < 0 or x_q.max() > fmt.input_max):
            raise ValueError(f"pixels must lie in 0..{fmt.input_max}")
        n, L, K = x_q.shape[0], config.num_layers, config.num_classes
        goodness = np.zeros((n, L, K), dtype=np.int64)
        if config.algo == "ffl":
            for k in range(K):
                label_block = np.zeros((n, K), dtype=np.int64)
                label_block[:, k] = fmt.input_max
                a = np.concatenate([x_q, label_block], axis=1)
                for i, layer in enumerate(self.layers):
                    s = saturate(self._product(a, layer.W, layer.w_exp, i > 0) + layer.b,
                                 fmt.state_bits)
                    a = np.maximum(s, 0)
                    goodness[:, i, k] = (a * a).sum(axis=1)
        else:
            prev = [np.zeros((n, width), dtype=np.int64) for width in config.hidden]
            first = None
            goodness_mode = config.algo == "ffcl" and config.feedback == "goodness"
            for t in range(config.loops):
                read = config.readout == "sum" or t == config.loops - 1
                current: list[np.ndarray] = []
                for i, layer in enumerate(self.layers):
                    if i == 0:
                        # The image is the same at every iteration: W_1 x once.
                        if first is None:
                            first = self._product(x_q, layer.W, layer.w_exp, False)
                        s_ff = first
                    else:
                        s_ff = self._product(current[i - 1], layer.W, layer.w_exp, True)
                    source = config.feedback_source(i)
                    s_fb = (0 if source is None
                            else self._product(prev[source], layer.V, layer.v_exp, True))
                    if goodness_mode:
                        s = saturate(s_ff + layer.b, fmt.state_bits)
                        pre = saturate(s + s_fb, fmt.state_bits)
                    else:
                        s = pre = saturate(s_ff + s_fb + layer.b, fmt.state_bits)
                    current.append(np.maximum(s, 0))
                    if read:
                        goodness[:, i] += self._scan(pre, layer.U)
                prev = current
        scores = goodness[:, list(config.scoring_layers())].sum(axis=1)
        return IntResult(labels=argmax(scores), scores=scores, goodness=goodness)
