# amaranth: UnusedElaboratable=no
"""LearningSignalUnit against golden.inttrain.learning_signal, update after update, with
idle input cycles and output back-pressure crossed, on random and extreme layers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal, signed
from amaranth.hdl import Fragment

from golden.config import ModelConfig
from golden.intformat import IntFormat
from golden.intmodel import IntLayer, IntModel
from golden.inttrain import learning_signal, sigmoid_table, threshold
from rtl.learning_signal import LearningSignalUnit
from tests.rtl.helpers import simulate

SEED = 2718


@dataclass
class Update:
    """One layer's update: the inputs and what the golden reference makes of them."""

    pre: np.ndarray
    u_pos: np.ndarray
    u_neg: np.ndarray
    theta: int


def golden(dut: LearningSignalUnit, update: Update):
    return learning_signal(update.pre, update.u_pos, update.u_neg, update.theta,
                           sigmoid_table(dut.sigmoid), dut.frac_bits)


def run_updates(dut: LearningSignalUnit, updates: list[Update], rng: np.random.Generator,
                idle: float, stall: float) -> list[dict]:
    """Drive every update (input idle with probability ``idle``, output not ready with
    probability ``stall``); return per update what the unit gave, with the cycles from
    the last neuron taken to the first error offered. A unit with borrowed multipliers
    gets them from :class:`_WithMultipliers`."""
    borrowed = dut.product_latency is not None
    results: list[dict] = []

    async def testbench(ctx) -> None:
        cycle = 0
        for update in updates:
            ctx.set(dut.theta, update.theta)
            n = update.pre.size
            i = 0
            while i < n:
                offer = rng.random() >= idle
                ctx.set(dut.neurons.valid, offer)
                ctx.set(dut.neurons.payload, {
                    "pre": int(update.pre[i]), "u_pos": int(update.u_pos[i]),
                    "u_neg": int(update.u_neg[i]), "last": i == n - 1})
                taken = offer and ctx.get(dut.neurons.ready)
                await ctx.tick()
                cycle += 1
                if taken:
                    i += 1
            ctx.set(dut.neurons.valid, 0)
            last_taken = cycle
            got = {"dp": [], "dn": [], "d": [], "first": None}
            while True:
                ready = rng.random() >= stall
                if borrowed:
                    ready = True     # always ready: no back-pressure to give
                else:
                    ctx.set(dut.errors.ready, ready)
                assert not ctx.get(dut.neurons.ready), "took a neuron while giving errors"
                if ctx.get(dut.errors.valid):
                    if got["first"] is None:
                        got["first"] = cycle - last_taken + 1
                        for name in ("z", "g_pos", "g_neg", "sigma_pos", "sigma_neg"):
                            got[name] = ctx.get(getattr(dut, name))
                    if ready:
                        error = ctx.get(dut.errors.payload)
                        for name in ("dp", "dn", "d"):
                            got[name].append(int(getattr(error, name)))
                        if error.last:
                            await ctx.tick()
                            cycle += 1
                            break
                await ctx.tick()
                cycle += 1
                assert cycle < 100 * (n + 20) * len(updates), "the unit stopped"
            if not borrowed:
                ctx.set(dut.errors.ready, 0)
            results.append(got)

    simulate(_WithMultipliers(dut) if borrowed else dut, testbench)
    return results


def check(dut: LearningSignalUnit, updates: list[Update], results: list[dict],
          seed: int) -> None:
    for number, (update, got) in enumerate(zip(updates, results, strict=True)):
        want = golden(dut, update)
        where = f"seed {seed}, update {number} (N = {update.pre.size}, theta {update.theta})"
        # g itself (below 2^g_bits), or compact min(g, 2^W): what the margins need.
        kept = 1 << dut.g_kept
        assert (got["g_pos"], got["g_neg"]) == (min(want.g_pos, kept),
                                                min(want.g_neg, kept)), where
        assert (got["sigma_pos"], got["sigma_neg"]) == (want.sigma_pos, want.sigma_neg), where
        assert got["z"] == want.z, where
        for name in ("dp", "dn", "d"):
            assert got[name] == getattr(want, name).tolist(), f"{where}: {name}"


def random_updates(dut: LearningSignalUnit, rng: np.random.Generator, count: int,
                   max_n: int | None = None) -> list[Update]:
    """Layers of random width with pre-activations and label weights drawn from the full
    range, from the extremes, or small; thresholds around g (every part of the table),
    at 0 and at the top."""
    low, high = -(1 << (dut.state_bits - 1)), (1 << (dut.state_bits - 1)) - 1
    wmax = (1 << (dut.weight_bits - 1)) - 1
    theta_top = (1 << dut.theta_bits) - 1
    updates = []
    for _ in range(count):
        n = int(rng.integers(1, (max_n or dut.depth) + 1))
        kind = rng.integers(4)
        if kind == 0:
            pre = rng.integers(low, high + 1, size=n)
        elif kind == 1:
            pre = rng.choice([low, high, 0, -1, 1], size=n)
        else:
            scale = 1 << int(rng.integers(0, dut.state_bits - 1))
            pre = rng.integers(-scale, scale + 1, size=n)
        u_pos = rng.choice([-wmax, wmax, 0], size=n) if kind == 1 else \
            rng.integers(-wmax, wmax + 1, size=n)
        u_neg = rng.integers(-wmax, wmax + 1, size=n)
        h = np.maximum(pre + u_pos, 0)
        g = int(h @ h)
        which = rng.integers(4)
        if which == 0:
            # Margins within the table's span: -8..8 in units of 2^(2S).
            spread = 8 << (2 * dut.frac_bits)
            theta = g + int(rng.integers(-spread, spread + 1))
        elif which == 1:
            theta = int(rng.integers(0, theta_top + 1))
        else:
            theta = int(rng.choice([0, theta_top]))
        updates.append(Update(pre=pre.astype(np.int64), u_pos=u_pos.astype(np.int64),
                              u_neg=u_neg.astype(np.int64),
                              theta=min(max(theta, 0), theta_top)))
    return updates


def digits_like_model(state_bits: int = 16, weight_bits: int = 8,
                      frac_bits: int = 6) -> IntModel:
    """An FFCL model (layers of 19 and 6 neurons, adjacent feedback) in the given formats;
    only its formats and shape matter here."""
    config = ModelConfig(algo="ffcl", input_size=9, num_classes=4, theta=0.5,
                         hidden=(19, 6), loops=2)
    fmt = IntFormat(weight_bits=weight_bits, state_bits=state_bits, frac_bits=frac_bits,
                    input_max=16)
    layers = []
    for i, (n, n_in) in enumerate(zip(config.hidden, (9, 19), strict=True)):
        source = config.feedback_source(i)
        layers.append(IntLayer(
            W=np.zeros((n, n_in), np.int64), w_exp=4, b=np.zeros(n, np.int64),
            U=np.zeros((n, 4), np.int64),
            V=None if source is None else np.zeros((n, config.hidden[source]), np.int64),
            v_exp=None if source is None else 4))
    return IntModel(config=config, fmt=fmt, layers=layers)


CONFIGS = {
    # The default formats (B_s = 16, B_w = 8), widths from an IntModel as the spec says.
    "model_table": dict(model=dict(), sigmoid="table"),
    "model_piecewise": dict(model=dict(), sigmoid="piecewise"),
    # Narrow states, S = 2 (the table index drops no bit), the smallest weights.
    "narrow_s2": dict(model=dict(state_bits=8, weight_bits=3, frac_bits=2), sigmoid="table"),
    # Wide states: h beyond 16 bits, z up to 12.
    "wide": dict(model=dict(state_bits=20, weight_bits=12, frac_bits=9), sigmoid="piecewise"),
    # Borrowed multipliers (iCE40): h up to 2^15 + 126 goes through them as h >> 1.
    "borrowed_2": dict(model=dict(), sigmoid="table", product_latency=2),
    "borrowed_1_narrow": dict(model=dict(state_bits=8, weight_bits=3, frac_bits=2),
                              sigmoid="piecewise", product_latency=1),
    # The small-part form (lean): the h buffer's unchecked read port; with borrowed
    # multipliers of latency 2 or more, h read back from it in the scan for the squares'
    # odd part (latency 1 would read it in its write's cycle: the delay lines stay).
    "lean_own": dict(model=dict(), sigmoid="table", lean=True),
    "lean_borrowed_2": dict(model=dict(), sigmoid="table", product_latency=2, lean=True),
    "lean_borrowed_3_wide": dict(model=dict(state_bits=14, weight_bits=10, frac_bits=4),
                                 sigmoid="piecewise", product_latency=3, lean=True),
    "lean_borrowed_1_narrow": dict(model=dict(state_bits=8, weight_bits=3, frac_bits=2),
                                   sigmoid="piecewise", product_latency=1, lean=True),
    # Compact (the UP5K's): an error every other cycle through one datapath, margins as
    # wide as Theta (37-bit g, 17-bit margins here; narrow: no g bit beyond them).
    "compact_2": dict(model=dict(), sigmoid="table", product_latency=2, lean=True,
                      compact=True),
    "compact_3_wide": dict(model=dict(state_bits=14, weight_bits=10, frac_bits=4),
                           sigmoid="piecewise", product_latency=3, lean=True, compact=True),
    "compact_1_narrow": dict(model=dict(state_bits=8, weight_bits=3, frac_bits=2),
                             sigmoid="table", product_latency=1, lean=True, compact=True),
}


def make_dut(name: str) -> LearningSignalUnit:
    spec = CONFIGS[name]
    return LearningSignalUnit.for_model(digits_like_model(**spec["model"]),
                                        sigmoid=spec["sigmoid"],
                                        product_latency=spec.get("product_latency"),
                                        lean=spec.get("lean", False),
                                        compact=spec.get("compact", False))


class _WithMultipliers(Elaboratable):
    """The unit with two multipliers outside it that answer ``product_latency`` cycles
    later, as the MAC lanes' side ports do (the testbench drives the unit's own ports)."""

    def __init__(self, unit: LearningSignalUnit) -> None:
        self.unit = unit

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.unit = unit = self.unit
        for q in range(2):
            product = unit.a[q] * unit.b[q]
            for i in range(unit.product_latency):
                register = Signal(signed(2 * unit.operand_bits), name=f"product_{q}_{i}")
                m.d.sync += register.eq(product)
                product = register
            m.d.comb += unit.product[q].eq(product)
        return m


@pytest.mark.parametrize(("idle", "stall"), [(0.0, 0.0), (0.3, 0.5)],
                         ids=["streaming", "idle_and_back_pressure"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_random_updates_match_golden(name: str, idle: float, stall: float) -> None:
    # (Borrowed multipliers make the errors always ready: stall is then ignored.)
    seed = SEED + sorted(CONFIGS).index(name) * 10 + int(stall > 0)
    rng = np.random.default_rng(seed)
    dut = make_dut(name)
    updates = random_updates(dut, rng, count=30)
    results = run_updates(dut, updates, rng, idle, stall)
    check(dut, updates, results, seed)
    if idle == 0 and stall == 0:
        # Without stalls the gap is the documented one.
        assert [r["first"] for r in results] == [dut.gap_of(u.pre.size) for u in updates]


@pytest.mark.parametrize("name", ["model_table", "borrowed_2", "lean_borrowed_2", "compact_2"])
def test_extremes_reach_the_widths(name: str) -> None:
    # h = H on every neuron (z at its largest), h = 2^15 - 1 with sigma = 256 (sigma h =
    # 2^23 - 256: dn rounds up to the error's top, 2^14), all h zero (z = 0, no error),
    # one neuron, and full layers.
    dut = make_dut(name)
    amax, wmax = (1 << (dut.state_bits - 1)) - 1, (1 << (dut.weight_bits - 1)) - 1
    n = dut.depth
    full = np.full(n, amax, dtype=np.int64)
    zero = np.zeros(n, dtype=np.int64)
    updates = [
        Update(pre=full, u_pos=zero + wmax, u_neg=zero + wmax, theta=0),
        Update(pre=full, u_pos=zero, u_neg=zero, theta=0),
        Update(pre=-full - 1, u_pos=zero - wmax, u_neg=zero + wmax, theta=5),
        Update(pre=full, u_pos=zero + wmax, u_neg=zero, theta=(1 << dut.theta_bits) - 1),
        Update(pre=np.array([amax]), u_pos=np.array([wmax]), u_neg=np.array([-wmax]),
               theta=0),
        # sigma = 255 and max h = 65 (odd): 255 x 65 = 16575 >= 2^14 > 255 x 64, so the
        # odd part of sigma h decides z (1, not 0); once from each side (S = 6: the
        # margin 21125 or 21000 is table index 210).
        Update(pre=np.full(5, 65), u_pos=np.full(5, -65), u_neg=np.zeros(5, np.int64),
               theta=0),
        Update(pre=np.full(5, 65), u_pos=np.zeros(5, np.int64), u_neg=np.full(5, -65),
               theta=21125 + 21000),
    ]
    results = run_updates(dut, updates, np.random.default_rng(SEED), 0.0, 0.0)
    check(dut, updates, results, SEED)
    wants = [golden(dut, u) for u in updates]
    assert wants[0].z == dut.z_max
    assert wants[1].dn.max() == 1 << 14
    assert wants[2].z == 0 and not wants[2].d.any()
    assert [(w.sigma_neg, w.z) for w in wants[5:6]] == [(255, 1)]
    assert [(w.sigma_pos, w.z) for w in wants[6:7]] == [(255, 1)]


def test_for_model_derives_the_spec_widths() -> None:
    model = digits_like_model()
    dut = LearningSignalUnit.for_model(model)
    Fragment.get(dut, None)     # and it elaborates
    # docs/integer-training.md, "Widths", with B_w = 8, B_s = 16: h 16 bits, sigma h 24,
    # z 0..10.
    assert (dut.h_bits, dut.largest_bits, dut.z_max) == (16, 24, 10)
    assert dut.depth == max(model.config.hidden)
    assert dut.theta_bits >= max(threshold(model.config, model.fmt, i).bit_length()
                                 for i in range(model.config.num_layers))


def test_parameters_are_validated() -> None:
    base = dict(state_bits=16, weight_bits=8, frac_bits=6, theta_bits=20, depth=8)
    with pytest.raises(TypeError, match=r"^Fractional bits must be an integer of at least 2, "
                                        r"not 1$"):
        LearningSignalUnit(**{**base, "frac_bits": 1})
    with pytest.raises(TypeError, match=r"^Neuron count must be a positive integer, not 0$"):
        LearningSignalUnit(**{**base, "depth": 0})
    with pytest.raises(ValueError, match=r"^Sigmoid must be one of table, piecewise, "
                                         r"not 'hard'$"):
        LearningSignalUnit(**base, sigmoid="hard")
    with pytest.raises(ValueError, match=r"^Borrowed multipliers take 16-bit signed operands: "
                                         r"h of 20 bits does not fit"):
        LearningSignalUnit(**{**base, "state_bits": 20}, product_latency=2)
    with pytest.raises(TypeError, match=r"^Compact must be a bool, not 1$"):
        LearningSignalUnit(**base, product_latency=2, lean=True, compact=1)
    for kept in (dict(product_latency=2), dict(lean=True)):
        with pytest.raises(ValueError, match=r"^Compact needs the lean form with borrowed "
                                             r"multipliers \(lean=True and a product "
                                             r"latency\)$"):
            LearningSignalUnit(**base, **kept, compact=True)


@pytest.mark.parametrize("name", ["compact_2", "compact_3_wide", "compact_1_narrow"])
def test_compact_errors_come_every_other_cycle_and_g_is_kept_to_the_margins(name) -> None:
    # Compact: the errors of N neurons over 2 N - 1 cycles (error_cycles, what
    # ErrorScan.cycles adds up), the same gap as lean; g kept to W = max(theta_bits,
    # 2S + 3) + 1 bits (17 of 35 for the default formats: the kept g and its mark
    # are what the margins see).
    dut = make_dut(name)
    lean = LearningSignalUnit.for_model(digits_like_model(**CONFIGS[name]["model"]),
                                        sigmoid=dut.sigmoid,
                                        product_latency=dut.product_latency, lean=True)
    assert dut.gap == lean.gap and dut.g_bits == lean.g_bits
    assert [dut.gap_of(n) - lean.gap_of(n) for n in (1, 5)] == [3, 11]
    assert dut.g_kept == min(max(dut.theta_bits, 2 * dut.frac_bits + 3) + 1, dut.g_bits)
    assert [dut.error_cycles(n) for n in (1, 5)] == [1, 9]
    assert [lean.error_cycles(n) for n in (1, 5)] == [1, 5]
    rng = np.random.default_rng(SEED)
    updates = random_updates(dut, rng, count=4)
    offered = []

    async def testbench(ctx) -> None:
        for update in updates:
            ctx.set(dut.theta, update.theta)
            for i in range(update.pre.size):
                ctx.set(dut.neurons.valid, 1)
                ctx.set(dut.neurons.payload, {
                    "pre": int(update.pre[i]), "u_pos": int(update.u_pos[i]),
                    "u_neg": int(update.u_neg[i]), "last": i == update.pre.size - 1})
                await ctx.tick()
            ctx.set(dut.neurons.valid, 0)
            cycles = []
            for cycle in range(dut.gap_of(update.pre.size) + 2 * update.pre.size + 2):
                if ctx.get(dut.errors.valid):
                    cycles.append(cycle)
                await ctx.tick()
            offered.append(cycles)

    simulate(_WithMultipliers(dut), testbench)
    for update, cycles in zip(updates, offered, strict=True):
        n = update.pre.size
        first = dut.gap_of(n) - 1
        assert cycles == list(range(first, first + 2 * n, 2)), n
    if name == "compact_2":
        assert (dut.g_kept, dut.g_bits) == (17, 35)
