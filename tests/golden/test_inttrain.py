"""The integer training rule against an independent per-sample Python-int implementation.

``Reference`` below re-implements docs/integer-training.md with loops over Python ints and
its own single-step LFSR: no NumPy arithmetic, no width limits. It records the largest
magnitude of every intermediate, so the tests can check the widths the trainer reports.
"""

from __future__ import annotations

import math
from collections import defaultdict
from fractions import Fraction

import numpy as np
import pytest

from golden.config import ModelConfig
from golden.intformat import IntFormat, rsqrt_table
from golden.intmodel import IntLayer, IntModel
from golden.inttrain import (
    IntTrainer,
    TrainRule,
    default_lr_steps,
    initial_model,
    sigmoid_table,
    train_int,
)
from golden.lfsr import LFSR_MASK, Lfsr, draw_negative

# Structural variants of training (FFL is not trained by the rule).
TRAIN_VARIANTS = {
    "ffdl-1layer": dict(algo="ffdl", hidden=(5,)),
    "ffdl": dict(algo="ffdl", hidden=(5, 4)),
    "ffdl-3layers": dict(algo="ffdl", hidden=(5, 4, 3)),
    "ffcl-adjacent-T2": dict(algo="ffcl", hidden=(5, 4), loops=2),
    "ffcl-adjacent-T3": dict(algo="ffcl", hidden=(5, 4, 3), loops=3),
    "ffcl-top-T2": dict(algo="ffcl", hidden=(5, 4, 3), loops=2, topology="top"),
    "ffcl-top-T3": dict(algo="ffcl", hidden=(5, 4), loops=3, topology="top"),
    "ffcl-goodness": dict(algo="ffcl", hidden=(5, 4), loops=2, feedback="goodness"),
}
RULES = {
    "default": dict(),
    "last": dict(loss_iterations="last"),
    "nearest": dict(rounding="nearest"),
    "piecewise": dict(sigmoid="piecewise"),
    "f0": dict(store_bits=8),
    "store12-fast": dict(store_bits=12, lr_shift=1),
    "boost": dict(upper_lr_boost=2),
}
D, K, X = 6, 3, 16


def _step(state: int) -> int:
    return (state >> 1) ^ (LFSR_MASK if state & 1 else 0)


class Reference:
    """The rule of docs/integer-training.md, one sample at a time, in Python ints."""

    def __init__(self, model: IntModel, rule: TrainRule):
        self.config, self.fmt, self.rule = model.config, model.fmt, rule
        fmt = model.fmt
        self.f = rule.store_bits - fmt.weight_bits
        half = (1 << self.f) >> 1
        wmax = fmt.weight_max

        def rows(a):
            return None if a is None else [[(int(v) << self.f) + half for v in row] for row in a]

        self.layers = [dict(W=rows(lay.W), b=[(int(v) << self.f) + half for v in lay.b],
                            U=rows(lay.U), V=rows(lay.V), w_exp=lay.w_exp, v_exp=lay.v_exp)
                       for lay in model.layers]
        self.wlim = (-wmax * 2**self.f, (wmax + 1) * 2**self.f - 1)
        self.blim = (-(2 ** (fmt.state_bits - 1 + self.f)), 2 ** (fmt.state_bits - 1 + self.f) - 1)
        self.rsqrt = [int(v) for v in rsqrt_table(fmt.rsqrt_index_bits, fmt.rsqrt_frac_bits)]
        self.rng = 1 + rule.seed % (2**32 - 1)
        self.lab = 1 + (rule.seed + 0x9E3779B9) % (2**32 - 1)
        self.peak: dict = defaultdict(int)

    def see(self, key, value):
        self.peak[key] = max(self.peak[key], abs(value))
        return value

    # -- helpers from the documents ------------------------------------------------
    @staticmethod
    def rs(v: int, n: int) -> int:
        if n < 0:
            return v * 2**-n
        return v if n == 0 else (v + 2 ** (n - 1)) // 2**n

    def sat(self, v: int) -> int:
        lim = 2 ** (self.fmt.state_bits - 1)
        return min(max(v, -lim), lim - 1)

    def fwd(self, c: int) -> int:
        return c // 2**self.f

    def word(self, which: str) -> int:
        s = getattr(self, which)
        for _ in range(32):
            s = _step(s)
        setattr(self, which, s)
        return s

    def norm(self, a: list[int]) -> tuple[int, int]:
        sq = sum(v * v for v in a)
        sh = max(sq.bit_length() - self.fmt.rsqrt_index_bits, 0)
        sh += sh % 2
        return self.rsqrt[sq >> sh], sh

    def product(self, W, exp, u, normalise):
        Q, S = self.fmt.rsqrt_frac_bits, self.fmt.frac_bits
        r, sh = self.norm(u) if normalise else (2**Q, 0)
        return [self.rs(sum(self.fwd(w) * x for w, x in zip(row, u, strict=True)) * r,
                        sh // 2 + Q + exp - S) for row in W]

    def sigma(self, m: int) -> int:
        i = (m // 2 ** (2 * self.fmt.frac_bits - 4)) + 128
        i = min(max(i, 0), 255)
        mid = Fraction(2 * (i - 128) + 1, 32)
        if self.rule.sigmoid == "table":
            return math.floor(256 / (1 + math.exp(-float(mid))) + 0.5)
        return min(max(128 + math.floor(64 * mid + Fraction(1, 2)), 0), 256)

    # -- the rule --------------------------------------------------------------------
    def sample(self, x: list[int], y: int, lam: int) -> tuple[int, int]:
        """Train on one sample; returns (the label of the training pass, y')."""
        cfg = self.config
        b = (K - 2).bit_length()
        while True:
            r = self.word("lab") % 2**b
            if r < K - 1:
                break
        yn = (y + 1 + r) % K
        assert yn != y
        prev = [[0] * n for n in cfg.hidden]
        scores = [0] * K
        for t in range(cfg.loops):
            trained = self.rule.loss_iterations == "all" or t == cfg.loops - 1
            read = cfg.readout == "sum" or t == cfg.loops - 1
            cur = []
            for i, L in enumerate(self.layers):
                u = x if i == 0 else cur[i - 1]
                src = cfg.feedback_source(i)
                fb = None if src is None else prev[src]
                p = self.product(L["W"], L["w_exp"], u, i > 0)
                q = [0] * len(p) if fb is None else self.product(L["V"], L["v_exp"], fb, True)
                bf = [self.fwd(c) for c in L["b"]]
                if cfg.algo == "ffcl" and cfg.feedback == "goodness":
                    s = [self.sat(a + c) for a, c in zip(p, bf, strict=True)]
                    pre = [self.sat(a + c) for a, c in zip(s, q, strict=True)]
                else:
                    s = pre = [self.sat(a + c + d) for a, c, d in zip(p, q, bf, strict=True)]
                cur.append([max(v, 0) for v in s])
                if read and i in cfg.scoring_layers():
                    # The label scan reads U before this layer's update.
                    for k in range(K):
                        scores[k] += sum(max(p + self.fwd(row[k]), 0) ** 2
                                         for p, row in zip(pre, L["U"], strict=True))
                if trained:
                    self.update(i, u, fb, pre, y, yn, lam)
            prev = cur
        return scores.index(max(scores)), yn

    def update(self, i, u, fb, pre, y, yn, lam):
        fmt, L, f = self.fmt, self.layers[i], self.f
        S, Q = fmt.frac_bits, fmt.rsqrt_frac_bits
        hp = [max(p + self.fwd(row[y]), 0) for p, row in zip(pre, L["U"], strict=True)]
        hn = [max(p + self.fwd(row[yn]), 0) for p, row in zip(pre, L["U"], strict=True)]
        gp, gn = sum(h * h for h in hp), sum(h * h for h in hn)
        theta = math.floor(Fraction(self.config.theta) * self.config.hidden[i] * 4**S
                           + Fraction(1, 2))
        sp, sn = self.sigma(theta - gp), self.sigma(gn - theta)
        M = max(sp * max(hp), sn * max(hn))
        self.see("error_product", M)
        z = max(0, M.bit_length() - 14)
        dp = [self.rs(-sp * h, z) for h in hp]
        dn = [self.rs(sn * h, z) for h in hn]
        d = [a + c for a, c in zip(dp, dn, strict=True)]
        for v in dp + dn + d:
            self.see("delta", v)

        def nvec(a):
            r, sh = self.norm(a)
            return [self.rs(v * r, sh // 2 + Q - 14) for v in a]

        vw = list(u) if i == 0 else nvec(u)
        vf = None if fb is None else nvec(fb)
        for v in vw + (vf or []):
            self.see("v", v)
        kw = [self.word("rng") for _ in vw]
        kv = [] if vf is None else [self.word("rng") for _ in vf]
        kb, kp, kn = self.word("rng"), self.word("rng"), self.word("rng")
        rho = [self.word("rng") for _ in d]
        base = lam - (self.rule.upper_lr_boost if i > 0 else 0) + 8 - 1 - f - z
        P1 = 2 * (fmt.input_max - 1).bit_length() if i == 0 else 14
        k_w = base + S + P1 - L["w_exp"]
        k_v = None if vf is None else base + S + 14 - L["v_exp"]

        def step(p, r, k):
            self.see("product", p)
            if k <= 0:
                return p * 2**-k
            if self.rule.rounding == "nearest":
                return (p + 2 ** (k - 1)) // 2**k
            return (p + (r % 2**k)) // 2**k

        def clamp(v, lim):
            return min(max(v, lim[0]), lim[1])

        for a in range(len(d)):
            L["W"][a] = [clamp(c + step(-d[a] * v, rho[a] + kk, k_w), self.wlim)
                         for c, v, kk in zip(L["W"][a], vw, kw, strict=True)]
            if vf is not None:
                L["V"][a] = [clamp(c + step(-d[a] * v, rho[a] + kk, k_v), self.wlim)
                             for c, v, kk in zip(L["V"][a], vf, kv, strict=True)]
            L["b"][a] = clamp(L["b"][a] + step(-d[a], rho[a] + kb, base), self.blim)
            L["U"][a][y] = clamp(L["U"][a][y] + step(-dp[a], rho[a] + kp, base), self.wlim)
            L["U"][a][yn] = clamp(L["U"][a][yn] + step(-dn[a], rho[a] + kn, base), self.wlim)


def _random_model(name: str, seed: int, *, weight_bits: int = 8, frac_bits: int = 6,
                  big: bool = False) -> IntModel:
    config = ModelConfig(input_size=D, num_classes=K, theta=0.5, **TRAIN_VARIANTS[name])
    fmt = IntFormat(weight_bits=weight_bits, state_bits=16, frac_bits=frac_bits, input_max=X)
    rng = np.random.default_rng(seed)
    wmax = fmt.weight_max
    hi = wmax if big else max(2, wmax // 3)
    layers = []
    for i, n in enumerate(config.hidden):
        n_in = D if i == 0 else config.hidden[i - 1]
        lay = IntLayer(W=rng.integers(-hi, hi + 1, (n, n_in)), w_exp=7 if i == 0 else 8,
                       b=rng.integers(-300, 300, n), U=rng.integers(-hi, hi + 1, (n, K)))
        src = config.feedback_source(i)
        if src is not None:
            lay.V = rng.integers(-hi, hi + 1, (n, config.hidden[src]))
            lay.v_exp = 9
        layers.append(lay)
    model = IntModel(config=config, fmt=fmt, layers=layers)
    model.check()
    return model


def _compare(trainer: IntTrainer, ref: Reference) -> None:
    for i, (st, L) in enumerate(zip(trainer.stored, ref.layers, strict=True)):
        for name in st:
            assert st[name].tolist() == L[name], f"layer {i + 1} {name}"
        lay = trainer.model.layers[i]
        assert lay.W.tolist() == [[ref.fwd(c) for c in row] for row in L["W"]]
        assert lay.b.tolist() == [ref.fwd(c) for c in L["b"]]
    assert trainer.rounding_lfsr.state == ref.rng
    assert trainer.label_lfsr.state == ref.lab


@pytest.mark.parametrize("rule_name", sorted(RULES))
@pytest.mark.parametrize("name", sorted(TRAIN_VARIANTS))
def test_samples_match_the_python_int_reference(name: str, rule_name: str) -> None:
    model = _random_model(name, seed=len(name) + len(rule_name))
    rule = TrainRule(epochs=1, seed=3, **{"lr_shift": 4, **RULES[rule_name]})
    trainer, ref = IntTrainer(model, rule), Reference(model, rule)
    rng = np.random.default_rng(5)
    changed = False
    for _ in range(6):
        x = rng.integers(0, X + 1, D)
        y = int(rng.integers(0, K))
        before = [a.copy() for a in trainer.stored[0].values()]
        result = trainer.train_sample(x, y, rule.lr_shift)
        assert (result.label, result.wrong) == ref.sample([int(v) for v in x], y, rule.lr_shift)
        _compare(trainer, ref)
        changed |= any(not np.array_equal(a, b)
                       for a, b in zip(before, trainer.stored[0].values(), strict=True))
    # The comparison means something only if the weights moved.
    assert changed


@pytest.mark.parametrize("name", sorted(TRAIN_VARIANTS))
def test_without_updates_between_iterations_the_label_is_the_models_before_the_sample(
        name: str) -> None:
    # FFDL (one iteration) and FFCL 'last': every forward pass of a sample reads the
    # weights the sample started with, so the label reported is IntModel.run's on them.
    model = _random_model(name, seed=6)
    rule = TrainRule(epochs=1, lr_shift=4, seed=3, loss_iterations="last")
    trainer = IntTrainer(model, rule)
    rng = np.random.default_rng(5)
    labels = set()
    for _ in range(12):
        x, y = rng.integers(0, X + 1, D), int(rng.integers(0, K))
        before = int(trainer.model.run(x[None]).labels[0])
        label_lfsr = Lfsr(0)
        label_lfsr.state = trainer.label_lfsr.state
        result = trainer.train_sample(x, y, rule.lr_shift)
        assert (result.label, result.wrong) == (before, draw_negative(label_lfsr, y, K))
        labels.add(result.label)
    # More than one label: a constant would not pass for the model's.
    assert len(labels) > 1


@pytest.mark.parametrize("name", ["ffcl-adjacent-T2", "ffcl-top-T3", "ffcl-goodness"])
def test_with_every_iteration_trained_the_label_is_the_training_passs(name: str) -> None:
    # loss_iterations 'all': iteration t + 1 runs on the weights iteration t updated, so
    # the label reported (the Python-int reference's) is not always the one of the
    # weights before the sample; these samples include such cases.
    model = _random_model(name, seed=2)
    rule = TrainRule(epochs=1, lr_shift=4, seed=3)
    trainer, ref = IntTrainer(model, rule), Reference(model, rule)
    rng = np.random.default_rng(5)
    differ = 0
    for _ in range(40):
        x, y = rng.integers(0, X + 1, D), int(rng.integers(0, K))
        before = int(trainer.model.run(x[None]).labels[0])
        result = trainer.train_sample(x, y, rule.lr_shift)
        assert (result.label, result.wrong) == ref.sample([int(v) for v in x], y,
                                                          rule.lr_shift)
        differ += result.label != before
    assert differ >= 3


@pytest.mark.parametrize("name", ["ffdl", "ffcl-adjacent-T3", "ffcl-goodness"])
def test_extreme_weights_and_inputs_stay_within_the_documented_widths(name: str) -> None:
    # All-positive full-scale weights, full-scale pixels and a large learning rate push
    # every intermediate towards its bound; the stored weights must saturate, not wrap.
    model = _random_model(name, seed=1, big=True, frac_bits=6)
    for lay in model.layers:
        lay.W[:] = model.fmt.weight_max
        lay.U[:] = model.fmt.weight_max
        lay.b[:] = model.fmt.act_max
        if lay.V is not None:
            lay.V[:] = model.fmt.weight_max
    rule = TrainRule(epochs=1, lr_shift=0, seed=1)
    trainer, ref = IntTrainer(model, rule), Reference(model, rule)
    widths = trainer.update_widths()
    for y in range(K):
        x = np.full(D, X)
        trainer.train_sample(x, y, 0)
        ref.sample([X] * D, y, 0)
        _compare(trainer, ref)
    assert ref.peak["delta"] <= 2**14
    assert ref.peak["v"] < 2 ** widths["v"]
    assert ref.peak["product"] < 2 ** (widths["product"] - 1)
    assert ref.peak["error_product"] < 2 ** (widths["error_product"] - 1)
    # The extremes were reached: the errors used the top of their range.
    assert ref.peak["delta"] >= 2**13
    lo, hi = trainer.limits["W"]
    for st in trainer.stored:
        assert st["W"].min() >= lo and st["W"].max() <= hi
        assert st["W"].min() == lo or st["W"].max() == hi


def test_training_is_deterministic_and_depends_on_the_seed() -> None:
    model = _random_model("ffcl-adjacent-T2", seed=2)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, X + 1, (30, D)), rng.integers(0, K, 30)

    def run(seed):
        result = train_int(model, TrainRule(epochs=2, lr_shift=4, seed=seed), x, y)
        return [a.copy() for st in result.trainer.stored for a in st.values()]

    first, again, other = run(1), run(1), run(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_forward_pass_is_the_inference_arithmetic() -> None:
    # With updates only after the last iteration, every forward pass of a sample uses the
    # starting weights: the scanned goodness must equal IntModel.run's, bit for bit.
    for name in ("ffdl", "ffcl-adjacent-T3", "ffcl-goodness", "ffcl-top-T2"):
        model = _random_model(name, seed=4)
        trainer = IntTrainer(model, TrainRule(epochs=1, loss_iterations="last"))
        x = np.random.default_rng(1).integers(0, X + 1, D)
        seen: list = []

        def record(i, u, f, pre, y, yn, lam, seen=seen, trainer=trainer):
            U = trainer.model.layers[i].U
            seen.append(np.maximum(pre[:, None] + U, 0) ** 2)
            return 0.0

        trainer._update = record
        trainer.train_sample(x, 0, 4)
        expected = model.run(x[None]).goodness[0]
        config = model.config
        last = expected if config.readout == "last" or config.loops == 1 else None
        if last is None:
            # readout "sum": compare the last iteration alone against a "last" readout.
            import dataclasses
            last = dataclasses.replace(model, config=dataclasses.replace(
                config, readout="last")).run(x[None]).goodness[0]
        assert [g.sum(axis=0).tolist() for g in seen] == last.tolist()


def test_lfsr_first_words_are_the_documented_ones() -> None:
    # docs/integer-training.md lists these: seed 0, state 1.
    lfsr = Lfsr(0)
    assert lfsr.state == 1
    assert [lfsr.word() for _ in range(4)] == [0x8A0F3DB5, 0x90BD2FA6, 0x44C38D95, 0x972542A4]
    single = Lfsr(0)
    for _ in range(32 * 4):
        single.step()
    assert single.state == lfsr.state
    # The block path equals the word-by-word path, across its 4096-word blocks.
    a, b = Lfsr(12345), Lfsr(12345)
    block = a.words(5000)
    assert block.tolist() == [b.word() for _ in range(5000)]
    assert Lfsr(2**32 - 1).state == 1 and Lfsr(2**32 - 2).state == 2**32 - 1


def test_lfsr_polynomial_is_primitive() -> None:
    # x has order 2^32 - 1 modulo p(x) = x^32 + x^22 + x^2 + x + 1: the period is maximal.
    poly = (1 << 32) | (1 << 22) | 0b111

    def mulmod(a, b):
        out = 0
        while b:
            if b & 1:
                out ^= a
            b >>= 1
            a <<= 1
            if a >> 32:
                a ^= poly
        return out

    def power(e):
        result, base = 1, 2
        while e:
            if e & 1:
                result = mulmod(result, base)
            base = mulmod(base, base)
            e >>= 1
        return result

    n = 2**32 - 1
    assert power(n) == 1
    for prime in (3, 5, 17, 257, 65537):
        assert power(n // prime) != 1
    # The Galois mask is that polynomial's taps (32, 22, 2, 1).
    assert LFSR_MASK == (1 << 31) | (1 << 21) | (1 << 1) | 1


@pytest.mark.parametrize("classes", [2, 3, 10, 17])
def test_negative_label_is_never_the_true_one_and_uniform(classes: int) -> None:
    lfsr = Lfsr(7)
    draws = 4000 * (classes - 1)
    counts = np.zeros((classes, classes), dtype=np.int64)
    rng = np.random.default_rng(0)
    for y in rng.integers(0, classes, draws):
        wrong = draw_negative(lfsr, int(y), classes)
        assert wrong != y and 0 <= wrong < classes
        counts[y, wrong] += 1
    # Chi-square of the offset (wrong - y) mod K over its K - 1 values: at this fixed seed
    # the statistic must be below the 99.9 % point (uniformity), and a modulo-biased draw
    # (4 bits mod 9) fails it for K = 10.
    offsets = np.zeros(classes - 1)
    for y in range(classes):
        for w in range(classes):
            if w != y:
                offsets[(w - y) % classes - 1] += counts[y, w]
    if classes > 2:
        expected = draws / (classes - 1)
        chi2 = float(((offsets - expected) ** 2 / expected).sum())
        dof = classes - 2
        assert chi2 < dof + 4.5 * math.sqrt(2 * dof) + 6
    if classes == 10:
        biased = np.bincount([(w & 15) % 9 for w in Lfsr(7).words(draws)], minlength=9)
        assert float(((biased - expected) ** 2 / expected).sum()) > 100


def test_sigmoid_table_entries_are_exact() -> None:
    table = sigmoid_table("table")
    for i, entry in enumerate(table.tolist()):
        m = (i - 128 + 0.5) / 16
        value = 256 / (1 + math.exp(-m))
        # No entry is near a rounding tie, so float64 decides it exactly.
        assert abs(value - math.floor(value) - 0.5) > 1e-6
        assert entry == math.floor(value + 0.5)
    assert table[0] == 0 and table[255] == 256 and table[128] == 130
    assert (np.diff(table) >= 0).all()
    assert (table + table[::-1] == 256).all()
    piecewise = sigmoid_table("piecewise")
    assert piecewise[128] == 130 and piecewise[127] == 126 and piecewise[0] == 0
    assert piecewise[255] == 256


def test_rule_and_trainer_refuse_what_they_cannot_do() -> None:
    with pytest.raises(ValueError, match="rounding must be one of stochastic, nearest"):
        TrainRule(epochs=1, rounding="up")
    with pytest.raises(ValueError, match="store_bits must be an integer in 2..24, not 30"):
        TrainRule(epochs=1, store_bits=30)
    model = _random_model("ffdl", seed=0)
    with pytest.raises(ValueError, match=r"store_bits \(6\) must be at least"):
        IntTrainer(model, TrainRule(epochs=1, store_bits=6))
    with pytest.raises(ValueError, match="exceeds 32 at lr_shift 40"):
        IntTrainer(model, TrainRule(epochs=1, lr_shift=40))
    ffl = ModelConfig(algo="ffl", input_size=D, num_classes=K, hidden=(4,))
    with pytest.raises(ValueError, match="FFDL and FFCL, not FFL"):
        initial = initial_model(ModelConfig(algo="ffdl", input_size=D, num_classes=K,
                                            hidden=(4,)), np.ones((3, D)) / 2, input_max=X,
                                seed=0)
        IntTrainer(IntModel(config=ffl, fmt=initial.fmt, layers=initial.layers),
                   TrainRule(epochs=1))


def test_digits_training_learns() -> None:
    from golden.datasets import load_dataset

    data = load_dataset("digits")
    config = ModelConfig(algo="ffdl", input_size=64, num_classes=10, hidden=(32,), theta=0.5)
    model = initial_model(config, data.x_train, input_max=data.pixel_max, seed=0)
    result = train_int(model, TrainRule(epochs=2, lr_shift=6),
                       model.quantize_input(data.x_train), data.y_train)
    accuracy = (result.model.run(model.quantize_input(data.x_test)).labels == data.y_test).mean()
    assert accuracy > 0.85
    assert result.history[-1].loss < result.history[0].loss


def test_float_twin_with_the_same_schedule_learns() -> None:
    from golden.datasets import load_dataset
    from golden.evaluate import evaluate
    from golden.float_sgd import train_float_sgd

    data = load_dataset("digits")
    config = ModelConfig(algo="ffdl", input_size=64, num_classes=10, hidden=(16,), theta=0.5)
    params, losses, _ = train_float_sgd(config, TrainRule(epochs=2, lr_shift=6),
                                        data.x_train[:400], data.y_train[:400])
    assert evaluate(config, params, data.x_test, data.y_test).accuracy > 0.6
    assert losses[1] < losses[0]


@pytest.mark.parametrize(("epochs", "steps"), [(1, ()), (2, (1, 1)), (3, (1, 2)),
                                               (30, (15, 22))])
def test_the_default_schedule_steps_at_half_and_three_quarters_never_at_epoch_0(epochs,
                                                                                  steps):
    # With one epoch both steps would land at epoch 0 and one epoch would train at
    # lambda_0 + 2, not the lambda_0 asked for (--lr-shift).
    assert default_lr_steps(epochs) == steps
    rule = TrainRule(epochs=epochs, lr_shift=3, lr_steps=default_lr_steps(epochs))
    assert rule.lr_shift_at(0) == 3
    assert rule.lr_range[1] == 3 + len(steps)
