"""Integer Forward-Forward training, one sample at a time: the on-chip learning rule.

docs/integer-training.md states the rule; this module is its reference. In short, per
sample (image x, true label y):

1. The wrong label y' comes from the label generator (:func:`golden.lfsr.draw_negative`).
2. For t = 1..T, for l = 1..L: layer l's forward pass at iteration t is the integer
   inference arithmetic (:mod:`golden.intmodel`) on the forward weights, the top
   ``weight_bits`` of the stored weights (``stored >> f``, f = store_bits - weight_bits).
   If iteration t is trained, layer l is then updated at once (so iteration t + 1 sees
   the updated weights; the layer above at iteration t reads a_l, computed before).
3. An update: scans for y and y' give h+, h-, g+, g-; the sigmoid table gives sigma+ and
   sigma-; the per-neuron errors dp = round_shift(-sigma+ h+, z), dn = round_shift(sigma-
   h-, z), d = dp + dn share one block exponent z; every stored weight moves by
   ``(-d_i v_j + R_ij) >> k`` (a rank-1 update through 16 x 16 multipliers), with the
   stochastic rounding bits R_ij = (rho_i + kappa_j) mod 2^k from the rounding
   generator, and saturates to its range.
4. The label of the training pass: the goodness of every label, scanned in these forward
   passes (each before its layer's update) and read out as inference does, gives the
   label the chip reports for the sample (:class:`SampleResult`).

Nothing is kept from one layer, iteration or sample to the next but the weights and the
two generators' states.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from golden.config import ModelConfig
from golden.intformat import IntFormat, argmax, round_shift, rsqrt, saturate, signed_bits
from golden.intmodel import IntLayer, IntModel
from golden.lfsr import Lfsr, draw_negative
from golden.params import init_parameters

__all__ = [
    "DELTA_BITS",
    "LABEL_SEED_OFFSET",
    "NORM_FRAC_BITS",
    "SIGMOID_FRAC_BITS",
    "SIGMOID_INDEX_BITS",
    "SIGMOID_INPUT_FRAC_BITS",
    "EpochLog",
    "IntTrainResult",
    "IntTrainer",
    "LearningSignal",
    "SampleResult",
    "TrainRule",
    "default_lr_shift",
    "default_lr_steps",
    "initial_model",
    "input_frac_bits",
    "learning_signal",
    "shift_round",
    "sigmoid_index",
    "sigmoid_table",
    "stored_limits",
    "threshold",
    "train_int",
    "update_step",
]

#: Address width of the sigmoid table (256 entries).
SIGMOID_INDEX_BITS = 8
#: Fractional bits of the table's input: one entry per 1/16 of margin, -8..8.
SIGMOID_INPUT_FRAC_BITS = 4
#: Fractional bits of the table's entries (0..256 stand for 0..1).
SIGMOID_FRAC_BITS = 8
#: Fractional bits of a normalised input n(a)_j in the update (v_j <= 2^14 (1 + 0.98 %)).
NORM_FRAC_BITS = 14
#: |dp|, |dn|, |d| <= 2^DELTA_BITS: the error fits a 16-bit signed multiplier input.
DELTA_BITS = 14
#: The label generator is seeded with seed + this (the rounding generator with seed).
LABEL_SEED_OFFSET = 0x9E3779B9
#: The largest rounding shift: R is the low k bits of a 32-bit sum.
_MAX_SHIFT = 32

_ROUNDINGS = ("stochastic", "nearest")
_SIGMOIDS = ("table", "piecewise")
_LOSS_ITERATIONS = ("all", "last")


def sigmoid_table(kind: str = "table") -> np.ndarray:
    """The 256 entries SIG[i], i = 0..255, of the loss-derivative sigmoid.

    Entry i stands for the margin m_i = (i - 128 + 1/2) / 16 (the middle of its bin).
    ``"table"``: SIG[i] = floor(256 sigmoid(m_i) + 1/2). ``"piecewise"`` (the hard sigmoid
    1/2 + m/4 clipped to 0..1): SIG[i] = clip(128 + (2 (i - 128) + 1) * 4 / 2, 0, 256)
    = clip(128 + 4 (i - 128) + 2, 0, 256). Entries lie in 0..256 (9 bits unsigned).
    """
    size = 1 << SIGMOID_INDEX_BITS
    half = size >> 1
    one = 1 << SIGMOID_FRAC_BITS
    i = np.arange(size, dtype=np.int64)
    if kind == "table":
        # sigmoid(m) = (1 + tanh(m/2)) / 2; float64 is far from any rounding tie here
        # (tests/golden/test_inttrain.py checks every entry against exact rationals).
        m = (i - half + 0.5) / (1 << SIGMOID_INPUT_FRAC_BITS)
        return np.floor(one * 0.5 * (1 + np.tanh(0.5 * m)) + 0.5).astype(np.int64)
    if kind == "piecewise":
        # one/4 per unit of margin = one/4/16 per index step; the bin middle adds half.
        step = one // (4 << SIGMOID_INPUT_FRAC_BITS)
        return np.clip(one // 2 + step * (i - half) + step // 2, 0, one)
    raise ValueError(f"sigmoid must be one of {', '.join(_SIGMOIDS)}, not {kind!r}")


@dataclass(frozen=True, kw_only=True)
class TrainRule:
    """The parameters of the learning rule (everything else is fixed by the document).

    Parameters
    ----------
    epochs : int
        Passes over the training data.
    lr_shift : int
        lambda_0: the learning rate is 2^-lambda.
    lr_steps : tuple of int
        Epochs (0-based) at which lambda grows by one: lambda(e) = lambda_0 + the number of
        steps <= e.
    store_bits : int
        B_m, the width of a stored weight (W, U, V); the forward pass reads its top
        ``weight_bits``. Stored biases have state_bits + (B_m - weight_bits) bits.
    rounding : {"stochastic", "nearest"}
        The update's rounding: with the generator's bits, or half up.
    sigmoid : {"table", "piecewise"}
        The table of the sigmoid, or the hard sigmoid 1/2 + m/4 (a shift and a clamp).
    loss_iterations : {"all", "last"}
        FFCL: update after every iteration, or after the last only.
    seed : int
        Seeds both generators and the sample order.
    upper_lr_boost : int
        Layers 2..L learn with 2^-(lambda - upper_lr_boost): their inputs are unit vectors,
        layer 1's are images with a larger norm, so the same lambda moves them less.
    """

    epochs: int
    lr_shift: int = 7
    lr_steps: tuple[int, ...] = ()
    store_bits: int = 16
    rounding: str = "stochastic"
    sigmoid: str = "table"
    loss_iterations: str = "all"
    seed: int = 0
    upper_lr_boost: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.lr_steps, list):
            object.__setattr__(self, "lr_steps", tuple(self.lr_steps))
        for name, low, high in (("epochs", 1, 1 << 30), ("lr_shift", 0, 40),
                                ("store_bits", 2, 24), ("seed", 0, 1 << 63),
                                ("upper_lr_boost", 0, 16)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..{high}, not {value!r}")
        if not isinstance(self.lr_steps, tuple) or any(
                not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in self.lr_steps):
            raise ValueError(f"lr_steps must be non-negative epoch numbers, not {self.lr_steps!r}")
        for name, choices in (("rounding", _ROUNDINGS), ("sigmoid", _SIGMOIDS),
                              ("loss_iterations", _LOSS_ITERATIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, "
                                 f"not {getattr(self, name)!r}")

    def lr_shift_at(self, epoch: int) -> int:
        """lambda at 0-based ``epoch``."""
        return self.lr_shift + sum(1 for step in self.lr_steps if step <= epoch)

    @property
    def lr_range(self) -> tuple[int, int]:
        """(lambda of the first epoch, lambda of the last): the schedule only grows, so
        every lambda of the rule lies in this range."""
        return self.lr_shift_at(0), self.lr_shift_at(self.epochs - 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields and the fixed constants of the rule."""
        return {
            "epochs": self.epochs, "lr_shift": self.lr_shift, "lr_steps": list(self.lr_steps),
            "store_bits": self.store_bits, "rounding": self.rounding, "sigmoid": self.sigmoid,
            "loss_iterations": self.loss_iterations, "seed": self.seed,
            "upper_lr_boost": self.upper_lr_boost,
            "sigmoid_index_bits": SIGMOID_INDEX_BITS,
            "sigmoid_input_frac_bits": SIGMOID_INPUT_FRAC_BITS,
            "sigmoid_frac_bits": SIGMOID_FRAC_BITS, "norm_frac_bits": NORM_FRAC_BITS,
            "delta_bits": DELTA_BITS, "lfsr": "x^32+x^22+x^2+x+1 Galois, 32 steps/word",
        }


def shift_round(value: np.ndarray, shift: int) -> np.ndarray:
    """round_shift(value, shift) for shift >= 0, value * 2^-shift (exact) below."""
    return round_shift(value, shift) if shift >= 0 else np.asarray(value, np.int64) << -shift


def _bits(value: int) -> int:
    return int(value).bit_length()


def threshold(config: ModelConfig, fmt: IntFormat, layer: int) -> int:
    """Theta_l = floor(theta N_l 2^(2S) + 1/2), exact for the float theta."""
    exact = Fraction(config.theta) * config.hidden[layer] * Fraction(2) ** (2 * fmt.frac_bits)
    return math.floor(exact + Fraction(1, 2))


def input_frac_bits(fmt: IntFormat, layer: int) -> int:
    """P_l: 2 bits(X - 1) for layer 1 (1 / X^2 ~ 2^-P), NORM_FRAC_BITS above."""
    return 2 * _bits(fmt.input_max - 1) if layer == 0 else NORM_FRAC_BITS


def stored_limits(fmt: IntFormat, store_bits: int) -> dict[str, tuple[int, int]]:
    """The stored range (low, high) of every array: W, U, V keep -wmax <= c >> f <= wmax,
    b keeps c >> f a state_bits-bit state (f = store_bits - weight_bits)."""
    f, wmax = store_bits - fmt.weight_bits, fmt.weight_max
    weights = (-wmax << f, ((wmax + 1) << f) - 1)
    top = 1 << (fmt.state_bits - 1 + f)
    return {"W": weights, "U": weights, "V": weights, "b": (-top, top - 1)}


def sigmoid_index(margin: int, frac_bits: int) -> int:
    """index(m) = clamp((m >> (2S - 4)) + 128, 0, 255): the table entry of a margin with
    2S fractional bits."""
    shift = 2 * frac_bits - SIGMOID_INPUT_FRAC_BITS
    half = 1 << (SIGMOID_INDEX_BITS - 1)
    return min(max((int(margin) >> shift) + half, 0), (1 << SIGMOID_INDEX_BITS) - 1)


@dataclass(frozen=True)
class LearningSignal:
    """The intermediates of steps 1-5 of a layer's update (docs/integer-training.md).

    h_pos, h_neg, dp, dn, d are per neuron (int64); the rest are Python ints: the
    goodness g_pos, g_neg, the table entries sigma_pos, sigma_neg, their indices,
    the block maximum M (``largest``) and the block exponent z.
    """

    h_pos: np.ndarray
    h_neg: np.ndarray
    g_pos: int
    g_neg: int
    index_pos: int
    index_neg: int
    sigma_pos: int
    sigma_neg: int
    largest: int
    z: int
    dp: np.ndarray
    dn: np.ndarray
    d: np.ndarray


def learning_signal(pre: np.ndarray, u_pos: np.ndarray, u_neg: np.ndarray, theta: int,
                    table: np.ndarray, frac_bits: int) -> LearningSignal:
    """Steps 1-5 of an update: the scans for the two labels' columns ``u_pos`` = U[:, y]
    and ``u_neg`` = U[:, y'], the sigmoid table, the block exponent and the errors."""
    h_pos = np.maximum(pre + u_pos, 0)
    h_neg = np.maximum(pre + u_neg, 0)
    g_pos, g_neg = int(h_pos @ h_pos), int(h_neg @ h_neg)
    index_pos = sigmoid_index(theta - g_pos, frac_bits)
    index_neg = sigmoid_index(g_neg - theta, frac_bits)
    sig_pos, sig_neg = int(table[index_pos]), int(table[index_neg])
    largest = max(sig_pos * int(h_pos.max()), sig_neg * int(h_neg.max()))
    z = max(0, _bits(largest) - DELTA_BITS)
    dp = round_shift(-sig_pos * h_pos, z)
    dn = round_shift(sig_neg * h_neg, z)
    return LearningSignal(h_pos=h_pos, h_neg=h_neg, g_pos=g_pos, g_neg=g_neg,
                          index_pos=index_pos, index_neg=index_neg, sigma_pos=sig_pos,
                          sigma_neg=sig_neg, largest=largest, z=z, dp=dp, dn=dn, d=dp + dn)


def update_step(p: np.ndarray, r_row: np.ndarray, r_col: np.ndarray | int, k: int,
                rounding: str) -> np.ndarray:
    """step(p, R, k) of step 9 (before saturation): (p + R) >> k for k > 0 with
    R = (rho + kappa) mod 2^k (``stochastic``; ``nearest``: R = 2^(k-1)), p 2^-k for
    k <= 0. ``r_row`` (rho) and ``r_col`` (kappa) are uint64 words that broadcast."""
    if k <= 0:
        return p << -k
    if rounding == "nearest":
        return (p + (1 << (k - 1))) >> k
    r = ((r_row + r_col) & np.uint64((1 << k) - 1)).astype(np.int64)
    return (p + r) >> k


@dataclass(frozen=True)
class SampleResult:
    """What :meth:`IntTrainer.train_sample` did with one sample.

    Attributes
    ----------
    label : int
        The label of the training pass: the argmax of the goodness its forward passes
        scanned, each before its layer's update (docs/integer-training.md, "One sample").
        The weights before the sample give the same label (``IntModel.run``) for FFDL and
        FFCL with loss_iterations 'last', not with 'all'. The chip reports this label.
    wrong : int
        y', the wrong label the label generator drew.
    layer_loss : list of float
        The float local loss of every layer, summed over the trained iterations.
    """

    label: int
    wrong: int
    layer_loss: list[float]


@dataclass
class EpochLog:
    """One epoch: its lambda and the mean local loss of every layer (float, for reports)."""

    epoch: int
    lr_shift: int
    layer_loss: list[float]
    seconds: float

    @property
    def loss(self) -> float:
        """The layers' mean losses summed."""
        return float(sum(self.layer_loss))


class IntTrainer:
    """The stored weights and generators of one integer training run.

    Parameters
    ----------
    model : IntModel
        FFDL or FFCL: the starting forward weights and their formats. The stored weights
        start at ``(W << f) + 2^(f-1)`` (the middle of the forward code; ``W`` if f = 0).
    rule : TrainRule

    Attributes
    ----------
    model : IntModel
        The forward model: always ``stored >> f`` of the current stored weights.
    stored : list of dict
        Per layer, the stored arrays "W", "b", "U" and, with feedback, "V" (int64).
    fine_bits : int
        f = store_bits - weight_bits.
    rounding_lfsr, label_lfsr : Lfsr
    """

    def __init__(self, model: IntModel, rule: TrainRule) -> None:
        config, fmt = model.config, model.fmt
        if config.algo == "ffl":
            raise ValueError("integer training supports FFDL and FFCL, not FFL "
                             "(FFL's two labels need two forward passes and two updates)")
        if rule.store_bits < fmt.weight_bits:
            raise ValueError(f"store_bits ({rule.store_bits}) must be at least the forward "
                             f"weight_bits ({fmt.weight_bits})")
        if 2 * fmt.frac_bits < SIGMOID_INPUT_FRAC_BITS:
            raise ValueError(f"frac_bits must be at least {SIGMOID_INPUT_FRAC_BITS // 2} for "
                             f"training (the margin feeds the sigmoid table), not {fmt.frac_bits}")
        if fmt.input_max >= 1 << 15:
            raise ValueError(f"input_max must be below 2^15 for training (a pixel is a "
                             f"multiplier input), not {fmt.input_max}")
        model.check()
        self.rule = rule
        self.fine_bits = f = rule.store_bits - fmt.weight_bits
        half = (1 << f) >> 1
        layers = [IntLayer(W=lay.W.copy(), w_exp=lay.w_exp, b=lay.b.copy(), U=lay.U.copy(),
                           V=None if lay.V is None else lay.V.copy(), v_exp=lay.v_exp)
                  for lay in model.layers]
        self.model = IntModel(config=config, fmt=fmt, layers=layers)
        self.stored = []
        for lay in layers:
            arrays = {"W": (lay.W << f) + half, "b": (lay.b << f) + half,
                      "U": (lay.U << f) + half}
            if lay.V is not None:
                arrays["V"] = (lay.V << f) + half
            self.stored.append(arrays)
        # Stored ranges: forward = stored >> f stays in -wmax..wmax (W, U, V) and in the
        # state range (b).
        self.limits = stored_limits(fmt, rule.store_bits)
        self.table = sigmoid_table(rule.sigmoid)
        self.thresholds = [threshold(config, fmt, i) for i in range(config.num_layers)]
        self.rounding_lfsr = Lfsr(rule.seed)
        self.label_lfsr = Lfsr(rule.seed + LABEL_SEED_OFFSET)
        self._check_shifts()

    # -- derived facts ------------------------------------------------------------------
    @property
    def h_max(self) -> int:
        """The largest h = max(pre + U, 0): amax + wmax."""
        return self.model.fmt.act_max + self.model.fmt.weight_max

    @property
    def max_block_shift(self) -> int:
        """The largest z: the errors are at most 2^SIGMOID_FRAC_BITS h_max."""
        return max(0, _bits((1 << SIGMOID_FRAC_BITS) * self.h_max) - DELTA_BITS)

    def base_shifts(self, layer: int, lr_shift: int) -> dict[str, int]:
        """k + z of every array of ``layer`` (the update shift is this minus z)."""
        fmt, lay, f = self.model.fmt, self.model.layers[layer], self.fine_bits
        if layer > 0:
            lr_shift -= self.rule.upper_lr_boost
        common = lr_shift + SIGMOID_FRAC_BITS - 1 - f
        shifts = {"W": common + fmt.frac_bits + input_frac_bits(fmt, layer) - lay.w_exp,
                  "b": common, "U": common}
        if lay.V is not None:
            shifts["V"] = common + fmt.frac_bits + NORM_FRAC_BITS - lay.v_exp
        return shifts

    def _check_shifts(self) -> None:
        for epoch in (0, self.rule.epochs - 1):
            lam = self.rule.lr_shift_at(epoch)
            for i in range(len(self.model.layers)):
                for name, k in self.base_shifts(i, lam).items():
                    if k > _MAX_SHIFT:
                        raise ValueError(
                            f"layer {i + 1} {name}: update shift {k} exceeds {_MAX_SHIFT} at "
                            f"lr_shift {lam}; lower lr_shift")
                    if k - self.max_block_shift < -_MAX_SHIFT:
                        raise ValueError(
                            f"layer {i + 1} {name}: update shift {k - self.max_block_shift} "
                            f"is below -{_MAX_SHIFT} at lr_shift {lam}; raise lr_shift")

    def update_widths(self) -> dict[str, int]:
        """Signed widths of the update datapath (worst cases over every layer and array)."""
        fmt = self.model.fmt
        v_max = max(fmt.input_max, (1 << NORM_FRAC_BITS) + (1 << (NORM_FRAC_BITS - 6)))
        product = (1 << DELTA_BITS) * v_max
        return {
            "sigma": _bits(1 << SIGMOID_FRAC_BITS),
            "error_product": signed_bits((1 << SIGMOID_FRAC_BITS) * self.h_max),
            "delta": DELTA_BITS + 1 + 1,
            "v": _bits(v_max),
            "product": signed_bits(product),
            "stored_weight": self.rule.store_bits,
            "stored_bias": fmt.state_bits + self.fine_bits,
        }

    # -- one sample ----------------------------------------------------------------------
    def _normalised(self, a: np.ndarray) -> np.ndarray:
        """v_j = round_shift(a_j r, sh/2 + Q - 14): n(a) with 14 fractional bits."""
        fmt = self.model.fmt
        r, sh = rsqrt(np.array([int(a @ a)]), fmt.table, fmt.rsqrt_index_bits)
        return shift_round(a * r[0], int(sh[0]) // 2 + fmt.rsqrt_frac_bits - NORM_FRAC_BITS)

    def _forward(self, layer: int, u: np.ndarray,
                 f: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Layer ``layer``'s state s and goodness pre-activation pre (inference arithmetic)."""
        model, fmt = self.model, self.model.fmt
        lay = model.layers[layer]
        s_ff = model._product(u[None], lay.W, lay.w_exp, layer > 0)[0]
        s_fb = 0 if f is None else model._product(f[None], lay.V, lay.v_exp, True)[0]
        if model.config.algo == "ffcl" and model.config.feedback == "goodness":
            s = saturate(s_ff + lay.b, fmt.state_bits)
            return s, saturate(s + s_fb, fmt.state_bits)
        s = saturate(s_ff + s_fb + lay.b, fmt.state_bits)
        return s, s

    def _update(self, layer: int, u: np.ndarray, f: np.ndarray | None, pre: np.ndarray,
                y: int, y_neg: int, lr_shift: int) -> float:
        """Update layer ``layer`` from one forward pass; returns the float local loss."""
        fmt, lay, st = self.model.fmt, self.model.layers[layer], self.stored[layer]
        S, fb = fmt.frac_bits, self.fine_bits
        theta = self.thresholds[layer]
        signal = learning_signal(pre, lay.U[:, y], lay.U[:, y_neg], theta, self.table, S)
        g_pos, g_neg, z = signal.g_pos, signal.g_neg, signal.z
        dp, dn, d = signal.dp, signal.dn, signal.d
        v_w = u if layer == 0 else self._normalised(u)
        v_f = None if f is None else self._normalised(f)
        n_cols = u.size + (0 if f is None else f.size) + 3
        words = self.rounding_lfsr.words(n_cols + pre.size)
        kappa, rho = words[:n_cols], words[n_cols:]
        shifts = {name: k - z for name, k in self.base_shifts(layer, lr_shift).items()}

        def delta(p: np.ndarray, r_row: np.ndarray, k_col: np.ndarray, k: int) -> np.ndarray:
            return update_step(p, r_row, k_col, k, self.rule.rounding)

        def apply(name: str, column: slice | int, change: np.ndarray) -> None:
            lo, hi = self.limits[name]
            array = st[name]
            array[column] = np.clip(array[column] + change, lo, hi)

        c = 0
        dW = delta(-d[:, None] * v_w[None, :], rho[:, None], kappa[None, c:c + u.size], shifts["W"])
        st["W"] += dW
        np.clip(st["W"], *self.limits["W"], out=st["W"])
        c += u.size
        if f is not None:
            dV = delta(-d[:, None] * v_f[None, :], rho[:, None], kappa[None, c:c + f.size],
                       shifts["V"])
            st["V"] += dV
            np.clip(st["V"], *self.limits["V"], out=st["V"])
            c += f.size
        apply("b", slice(None), delta(-d, rho, kappa[c], shifts["b"]))
        apply("U", (slice(None), y), delta(-dp, rho, kappa[c + 1], shifts["U"]))
        apply("U", (slice(None), y_neg), delta(-dn, rho, kappa[c + 2], shifts["U"]))
        # The forward model reads the top bits.
        lay.W = st["W"] >> fb
        lay.b = st["b"] >> fb
        lay.U = st["U"] >> fb
        if f is not None:
            lay.V = st["V"] >> fb
        scale = 2.0 ** (-2 * S)
        return float(np.logaddexp(0, (theta - g_pos) * scale)
                     + np.logaddexp(0, (g_neg - theta) * scale))

    def train_sample(self, x_q: np.ndarray, y: int, lr_shift: int) -> SampleResult:
        """One sample: draw the wrong label, run and update every layer (rule order).

        Returns
        -------
        SampleResult
            The label of the training pass (what the chip reports: the label scans of
            the forward passes this loop runs, each before its layer's update), the wrong
            label drawn and the float local loss of every layer (summed over trained
            iterations).
        """
        config, model = self.model.config, self.model
        y = int(y)
        y_neg = draw_negative(self.label_lfsr, y, config.num_classes)
        x_q = np.asarray(x_q, dtype=np.int64)
        losses = [0.0] * config.num_layers
        goodness = np.zeros((config.num_layers, config.num_classes), dtype=np.int64)
        prev = [np.zeros(n, dtype=np.int64) for n in config.hidden]
        for t in range(config.loops):
            trained = self.rule.loss_iterations == "all" or t == config.loops - 1
            current: list[np.ndarray] = []
            for i in range(config.num_layers):
                u = x_q if i == 0 else current[i - 1]
                source = config.feedback_source(i)
                f = None if source is None else prev[source]
                s, pre = self._forward(i, u, f)
                current.append(np.maximum(s, 0))
                if config.readout == "sum" or t == config.loops - 1:
                    # Scanned before the update: with 'all', iteration t + 1 reads the
                    # weights iteration t updated, so this is not IntModel.run's label.
                    goodness[i] += model._scan(pre[None], model.layers[i].U)[0]
                if trained:
                    losses[i] += self._update(i, u, f, pre, y, y_neg, lr_shift)
            prev = current
        scores = goodness[list(config.scoring_layers())].sum(axis=0)
        return SampleResult(label=int(argmax(scores)), wrong=y_neg, layer_loss=losses)


def default_lr_steps(epochs: int) -> tuple[int, ...]:
    """The default schedule's steps: lambda grows by one at half and at three quarters of
    ``epochs`` (0-based epochs ``epochs // 2`` and ``3 * epochs // 4``).

    A step that would fall at epoch 0 is left out: it would raise lambda from the start,
    so one epoch would train at lambda_0 + 2, not at the lambda_0 asked for.
    """
    return tuple(step for step in (epochs // 2, 3 * epochs // 4) if step > 0)


def default_lr_shift(x_train: np.ndarray) -> int:
    """lambda_0 = 3 + floor(log2(mean ||x||^2)) over the training images (pixels in 0..1).

    Layer 1's step grows with the squared norm of its input. Measured points (README, "On-chip
    training"): digits (mean 15) did best at 6, MNIST 14x14 (19) trained at 7, and 7 was
    too large for MNIST (88) and Fashion-MNIST (162), whose loss fell only after the
    schedule had raised lambda to 8 and 9.
    """
    x = np.asarray(x_train, dtype=np.float64)
    return 3 + math.floor(math.log2(float(np.einsum("ij,ij->i", x, x).mean())))


def _exponent(max_abs: float, limit: int) -> int:
    return math.floor(math.log2(limit / max_abs))


def initial_model(config: ModelConfig, x_train: np.ndarray, *, input_max: int, seed: int,
                  weight_bits: int = 8, state_bits: int = 16,
                  frac_bits: int | None = None, headroom_bits: int = 0) -> IntModel:
    """Integer starting weights from a seed: the float initialisation, quantized.

    The float weights come from :func:`golden.params.init_parameters` (seeded with
    ``seed``). Each weight array gets the largest exponent that keeps its largest value
    within wmax / 2^headroom_bits (the weights of the digits and MNIST runs stayed below
    their initial maximum, so no headroom is the default: every bit is resolution); V
    (zero at the start) gets the exponent whose range is one standard deviation
    sqrt(2 theta) of a W for unit-norm inputs (feedback starts small). S is the largest value with
    max|U| 2^S <= wmax and S <= state_bits - 6 (pre-activations up to 32), unless
    ``frac_bits`` is given.
    """
    if config.algo == "ffl":
        raise ValueError("integer training supports FFDL and FFCL, not FFL")
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0])
    x = np.asarray(x_train, dtype=np.float64)
    params = init_parameters(config, rng, input_sq_norm=float(np.einsum("ij,ij->i", x, x).mean()),
                             dtype=np.float64)
    wmax = (1 << (weight_bits - 1)) - 1
    room = wmax / (1 << headroom_bits)
    if frac_bits is None:
        # U gets no headroom: S sets the resolution of every state, and one more bit of
        # it trained better on digits than room for U to grow (README, "On-chip training").
        frac_bits = min(state_bits - 6,
                        min(_exponent(float(np.abs(U).max()), wmax) for U in params.U))
    fmt = IntFormat(weight_bits=weight_bits, state_bits=state_bits, frac_bits=frac_bits,
                    input_max=input_max)

    def to_int(a: np.ndarray, e: int) -> np.ndarray:
        return np.clip(np.rint(a * 2.0**e), -wmax, wmax).astype(np.int64)

    layers = []
    for i in range(config.num_layers):
        W = params.W[i] / (input_max if i == 0 else 1)
        w_exp = _exponent(float(np.abs(W).max()), room)
        lay = IntLayer(W=to_int(W, w_exp), w_exp=w_exp, b=np.zeros(config.hidden[i], np.int64),
                       U=to_int(params.U[i], frac_bits))
        source = config.feedback_source(i)
        if source is not None:
            # sigma of a W for unit-norm inputs (golden/params.py): the range of V.
            lay.v_exp = _exponent(math.sqrt(2.0 * config.theta), wmax)
            lay.V = np.zeros((config.hidden[i], config.hidden[source]), np.int64)
        layers.append(lay)
    model = IntModel(config=config, fmt=fmt, layers=layers)
    model.check()
    return model


@dataclass
class IntTrainResult:
    """The trained forward model, the per-epoch log and the wall time."""

    model: IntModel
    trainer: IntTrainer
    history: list[EpochLog] = field(default_factory=list)
    seconds: float = 0.0


def train_int(model: IntModel, rule: TrainRule, x_q: np.ndarray, y: np.ndarray, *,
              callback: Callable[[int, int, float], None] | None = None,
              fast: bool | None = None) -> IntTrainResult:
    """Train ``model`` with the rule on integer images ``x_q`` (n, D) and labels ``y``.

    The sample order of epoch e is the e-th ``permutation(n)`` of
    ``numpy.random.default_rng(seed)`` (a host-side choice: the hardware trains on the
    samples in the order it receives them). ``fast``: use the compiled path
    (:mod:`golden.inttrain_fast`, equal bit for bit); ``None`` uses it when a C compiler
    works, ``False`` runs the NumPy reference.
    """
    from golden import inttrain_fast

    config = model.config
    x_q = np.asarray(x_q, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    if x_q.ndim != 2 or x_q.shape[1] != config.input_size:
        raise ValueError(f"images must have shape (n, {config.input_size}), not {x_q.shape}")
    if y.shape != (x_q.shape[0],):
        raise ValueError(f"labels must have shape ({x_q.shape[0]},), not {y.shape}")
    if x_q.size and (x_q.min() < 0 or x_q.max() > model.fmt.input_max):
        raise ValueError(f"pixels must lie in 0..{model.fmt.input_max}")
    if y.size and (y.min() < 0 or y.max() >= config.num_classes):
        raise ValueError(f"labels must lie in 0..{config.num_classes - 1}")
    if fast is None:
        fast = inttrain_fast.available()
    start = time.perf_counter()
    trainer = IntTrainer(model, rule)
    order_rng = np.random.default_rng(rule.seed)
    result = IntTrainResult(model=trainer.model, trainer=trainer)
    for epoch in range(rule.epochs):
        t0 = time.perf_counter()
        lam = rule.lr_shift_at(epoch)
        order = order_rng.permutation(x_q.shape[0])
        if fast:
            total = inttrain_fast.train_samples(trainer, x_q, y, order, lam)
        else:
            total = np.zeros(config.num_layers)
            for n in order:
                total += trainer.train_sample(x_q[n], int(y[n]), lam).layer_loss
        result.history.append(EpochLog(epoch=epoch, lr_shift=lam,
                                       layer_loss=(total / max(1, x_q.shape[0])).tolist(),
                                       seconds=time.perf_counter() - t0))
        if callback is not None:
            callback(epoch + 1, rule.epochs, result.history[-1].loss)
    result.seconds = time.perf_counter() - start
    return result
