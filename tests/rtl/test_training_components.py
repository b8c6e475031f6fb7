# amaranth: UnusedElaboratable=no
"""The training components together against IntTrainer, sample by sample.

The label generator, the rounding generator, a replay generator, the learning-signal unit
and P update lanes run in one simulation; the testbench plays the engine that
docs/training-engine.md describes (its buffers, its order of passes, the replay of the
column words kappa for every tile from one kept word), and everything the engine does
not yet have in gateware (the forward pass, the normalised inputs v) comes from the
golden trainer. After every layer update the stored W, V, b, U and the rounding
generator's state must equal IntTrainer's bit for bit.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring

from golden.config import ModelConfig
from golden.intformat import IntFormat
from golden.intmodel import IntLayer, IntModel
from golden.inttrain import LABEL_SEED_OFFSET, IntTrainer, TrainRule
from golden.lfsr import draw_negative
from rtl.learning_signal import LearningSignalUnit
from rtl.lfsr import WordGenerator
from rtl.update_lane import STORED_KINDS, UpdateLane
from tests.rtl.helpers import simulate

SEED = 1729
D, K, X = 9, 4, 16


class _Engine(wiring.Component):
    """The components side by side (no connections: the testbench is the engine)."""

    def __init__(self, model: IntModel, rule: TrainRule, lanes: int) -> None:
        super().__init__({})
        self.labels = WordGenerator(offset=LABEL_SEED_OFFSET, reset_seed=rule.seed)
        self.words = WordGenerator(offset=0, reset_seed=rule.seed)
        self.replay = WordGenerator(offset=0, seed_bits=0)
        self.signal = LearningSignalUnit.for_model(model, sigmoid=rule.sigmoid)
        self.lanes = [UpdateLane.for_model(model, rule) for _ in range(lanes)]

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.labels, m.submodules.words = self.labels, self.words
        m.submodules.replay, m.submodules.signal = self.replay, self.signal
        for p, lane in enumerate(self.lanes):
            m.submodules[f"lane_{p}"] = lane
        return m


def make_model(config: ModelConfig, seed: int) -> IntModel:
    fmt = IntFormat(weight_bits=8, state_bits=16, frac_bits=6, input_max=X)
    rng = np.random.default_rng(seed)
    layers = []
    for i, n in enumerate(config.hidden):
        n_in = D if i == 0 else config.hidden[i - 1]
        lay = IntLayer(W=rng.integers(-40, 41, (n, n_in)), w_exp=7 if i == 0 else 8,
                       b=rng.integers(-300, 300, n), U=rng.integers(-40, 41, (n, K)))
        source = config.feedback_source(i)
        if source is not None:
            lay.V = rng.integers(-40, 41, (n, config.hidden[source]))
            lay.v_exp = 9
        layers.append(lay)
    model = IntModel(config=config, fmt=fmt, layers=layers)
    model.check()
    return model


async def take(ctx, generator: WordGenerator) -> int:
    """One word of a stream generator (it offers one every cycle after reset)."""
    ctx.set(generator.words.ready, 1)
    assert ctx.get(generator.words.valid)
    word = ctx.get(generator.words.payload)
    await ctx.tick()
    ctx.set(generator.words.ready, 0)
    return word


async def draw_wrong_label(ctx, dut: _Engine, y: int) -> int:
    """y' by rejection, from the label generator's words (docs/integer-training.md)."""
    mask = (1 << (K - 2).bit_length()) - 1
    while True:
        r = await take(ctx, dut.labels) & mask
        if r < K - 1:
            wrong = y + 1 + r
            return wrong - K if wrong >= K else wrong


async def learning_signal(ctx, unit: LearningSignalUnit, pre, u_pos, u_neg, theta):
    """Stream the neurons in, the errors out; return d, dp, dn and z."""
    ctx.set(unit.theta, theta)
    ctx.set(unit.neurons.valid, 1)
    for i in range(pre.size):
        ctx.set(unit.neurons.payload, {"pre": int(pre[i]), "u_pos": int(u_pos[i]),
                                       "u_neg": int(u_neg[i]), "last": i == pre.size - 1})
        await ctx.tick()
    ctx.set(unit.neurons.valid, 0)
    ctx.set(unit.errors.ready, 1)
    errors = []
    while len(errors) < pre.size:
        if ctx.get(unit.errors.valid):
            e = ctx.get(unit.errors.payload)
            errors.append((int(e.d), int(e.dp), int(e.dn)))
            z = ctx.get(unit.z)
        await ctx.tick()
    ctx.set(unit.errors.ready, 0)
    d, dp, dn = (np.array(column, dtype=np.int64) for column in zip(*errors, strict=True))
    return d, dp, dn, z


async def run_lanes(ctx, lanes: list[UpdateLane], bundles: list) -> list:
    """Give one bundle (a list of per-lane entries or None, and the tag of each) per
    cycle; return (tag, new value) for every entry, taken ``latency`` cycles later."""
    latency = lanes[0].latency
    pending: deque = deque()
    results = []
    for t in range(len(bundles) + latency):
        bundle = bundles[t] if t < len(bundles) else None
        tags = []
        for p, lane in enumerate(lanes):
            entry = bundle[p] if bundle is not None and p < len(bundle) else None
            ctx.set(lane.en, entry is not None)
            if entry is not None:
                tag, fields = entry
                for name, value in fields.items():
                    ctx.set(getattr(lane, name), value)
                tags.append(tag)
            else:
                tags.append(None)
        # A replay word is taken in the cycles its bundle asks for one.
        await ctx.tick()
        pending.append(tags)
        if len(pending) == latency:
            for lane, tag in zip(lanes, pending.popleft(), strict=True):
                assert bool(ctx.get(lane.valid)) == (tag is not None)
                if tag is not None:
                    results.append((tag, ctx.get(lane.out)))
    return results


async def update_layer(ctx, dut: _Engine, trainer: IntTrainer, stored: dict, layer: int,
                       u, f, pre, y: int, y_neg: int, lam: int) -> int:
    """One layer's update by the components; returns the last rounding word taken."""
    model = trainer.model
    lay = model.layers[layer]
    fine = trainer.fine_bits
    n, n_in = pre.size, u.size
    n_src = 0 if f is None else f.size
    # Words in the spec's order: kappa^W, kappa^V, kappa^b, kappa^+, kappa^-, rho.
    # The engine keeps kappa^W_1, the three scalar kappas and the rho buffer only.
    words = [await take(ctx, dut.words) for _ in range(n_in + n_src + 3 + n)]
    first_kappa = words[0]
    kappa_b, kappa_pos, kappa_neg = words[n_in + n_src:n_in + n_src + 3]
    rho = words[n_in + n_src + 3:]
    u_fwd = stored["U"] >> fine
    d, dp, dn, z = await learning_signal(ctx, dut.signal, pre, u_fwd[:, y], u_fwd[:, y_neg],
                                         trainer.thresholds[layer])
    shifts = {name: k - z for name, k in trainer.base_shifts(layer, lam).items()}
    v_w = u if layer == 0 else trainer._normalised(u)
    v_f = None if f is None else trainer._normalised(f)
    lanes = dut.lanes
    P = len(lanes)
    select = {kind: STORED_KINDS.index(kind) for kind in STORED_KINDS}
    for tile in range(-(-n // P)):
        rows = range(tile * P, min(n, (tile + 1) * P))
        # Rewind the replay generator to kappa^W_1 for this tile.
        ctx.set(dut.replay.restore, 1)
        ctx.set(dut.replay.restore_word, first_kappa)
        await ctx.tick()
        ctx.set(dut.replay.restore, 0)
        bundles = []
        columns = [("W", j, int(v_w[j])) for j in range(n_in)]
        if f is not None:
            columns += [("V", j, int(v_f[j])) for j in range(n_src)]
        for name, j, v in columns:
            # The replay word of this element (one per cycle, in pass order).
            kappa = await take(ctx, dut.replay)
            bundles.append([((name, i, j), {
                "c": int(stored[name][i, j]), "d": int(d[i]), "v": v, "rho": rho[i],
                "kappa": kappa, "k": shifts[name], "select": select["W"]}) for i in rows])
        for (name, i, j), value in await run_lanes(ctx, lanes, bundles):
            stored[name][i, j] = value
    # b and U's two columns: v = 1 (a lane without its multiplier would do).
    bundles = []
    for i in range(n):
        bundles.append([(("b", i, None), {"c": int(stored["b"][i]), "d": int(d[i]), "v": 1,
                                          "rho": rho[i], "kappa": kappa_b, "k": shifts["b"],
                                          "select": select["b"]})])
        bundles.append([(("U", i, y), {"c": int(stored["U"][i, y]), "d": int(dp[i]), "v": 1,
                                       "rho": rho[i], "kappa": kappa_pos, "k": shifts["U"],
                                       "select": select["W"]})])
        bundles.append([(("U", i, y_neg), {"c": int(stored["U"][i, y_neg]), "d": int(dn[i]),
                                           "v": 1, "rho": rho[i], "kappa": kappa_neg,
                                           "k": shifts["U"], "select": select["W"]})])
    for (name, i, j), value in await run_lanes(ctx, lanes[:1], bundles):
        if j is None:
            stored[name][i] = value
        else:
            stored[name][i, j] = value
    assert lay is model.layers[layer]
    return words[-1]


CASES = {
    # FFCL, adjacent feedback, T = 2, 3 lanes on layers of 7 and 5 (ragged tiles);
    # stochastic rounding and the table.
    "ffcl_stochastic": (dict(algo="ffcl", hidden=(7, 5), loops=2), dict(), 3),
    # FFDL, nearest rounding, the piecewise sigmoid, 2 lanes.
    "ffdl_nearest_piecewise": (dict(algo="ffdl", hidden=(6, 4)),
                               dict(rounding="nearest", sigmoid="piecewise"), 2),
    # Fine bits f = 4 (B_m = 12) and a large learning rate: saturation and k <= 0 occur.
    "ffcl_top_b12": (dict(algo="ffcl", hidden=(5, 4, 3), loops=2, topology="top"),
                     dict(store_bits=12, lr_shift=0), 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_components_train_like_the_golden_trainer(name: str) -> None:
    fields, rule_fields, lanes = CASES[name]
    config = ModelConfig(input_size=D, num_classes=K, theta=0.5, **fields)
    model = make_model(config, SEED + len(name))
    rule = TrainRule(epochs=1, seed=7, **{"lr_shift": 4, **rule_fields})
    trainer = IntTrainer(model, rule)
    stored = [{key: array.copy() for key, array in layer.items()}
              for layer in trainer.stored]
    dut = _Engine(trainer.model, rule, lanes)
    rng = np.random.default_rng(SEED)
    samples = [(rng.integers(0, X + 1, D).astype(np.int64), int(rng.integers(0, K)))
               for _ in range(3)]
    lam = rule.lr_shift

    async def testbench(ctx) -> None:
        for number, (x, y) in enumerate(samples):
            y_neg = await draw_wrong_label(ctx, dut, y)
            assert y_neg == draw_negative(trainer.label_lfsr, y, K), f"sample {number}"
            prev = [np.zeros(n, dtype=np.int64) for n in config.hidden]
            for t in range(config.loops):
                current: list[np.ndarray] = []
                for i in range(config.num_layers):
                    u = x if i == 0 else current[i - 1]
                    source = config.feedback_source(i)
                    f = None if source is None else prev[source]
                    s, pre = trainer._forward(i, u, f)
                    current.append(np.maximum(s, 0))
                    last_word = await update_layer(ctx, dut, trainer, stored[i], i, u, f,
                                                   pre, y, y_neg, lam)
                    trainer._update(i, u, f, pre, y, y_neg, lam)
                    where = f"{name}: sample {number}, t {t + 1}, layer {i + 1}"
                    for key, array in trainer.stored[i].items():
                        np.testing.assert_array_equal(stored[i][key], array,
                                                      err_msg=f"{where}: {key}")
                    assert last_word == trainer.rounding_lfsr.state, where
                prev = current

    simulate(dut, testbench)
    # The updates moved the weights (a test of nothing would pass too).
    start = IntTrainer(make_model(config, SEED + len(name)), rule).stored
    assert any(not np.array_equal(a[key], b[key])
               for a, b in zip(stored, start, strict=True) for key in a)
