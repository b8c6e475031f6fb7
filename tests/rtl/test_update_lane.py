# amaranth: UnusedElaboratable=no
"""UpdateLane against golden.inttrain.update_step and stored_limits: every shift of the
spec's range crossed with the extremes of every operand, random entries, both rounding
modes, both stored ranges, an own and a borrowed multiplier."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.back import rtlil
from amaranth.hdl import Fragment
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.config import ModelConfig
from golden.intformat import IntFormat
from golden.intmodel import IntLayer, IntModel
from golden.inttrain import DELTA_BITS, IntTrainer, TrainRule, stored_limits, update_step
from golden.lfsr import LFSR_WIDTH
from rtl.update_lane import UpdateLane
from tests.rtl.helpers import run_pipeline

SEED = 1414
TOP_WORD = (1 << LFSR_WIDTH) - 1
#: The spec's formats by default: B_w = 8, B_s = 16, B_m = 16 (f = 8), pixels 0..16.
FORMAT = IntFormat(weight_bits=8, state_bits=16, frac_bits=6, input_max=16)


def golden_new(lane: UpdateLane, entry: dict[str, int]) -> int:
    # A unit-input lane has no v port: v = 1.
    p = np.array([-entry["d"] * entry.get("v", 1)], dtype=np.int64)
    step = update_step(p, np.array([entry["rho"]], dtype=np.uint64),
                       np.uint64(entry["kappa"]), entry["k"], lane.rounding)
    low, high = lane.limits[entry["select"]]
    return int(np.clip(entry["c"] + step[0], low, high))


def corner_entries(lane: UpdateLane, rng: np.random.Generator) -> list[dict[str, int]]:
    """Every k in the lane's range crossed with: d at +-2^14, +-1 and 0; v at 0, 1 and its
    top; c at both ends of its range and in the middle; words 0, all ones and random."""
    v_top = (1 << lane.input_bits) - 1
    d_top = 1 << DELTA_BITS
    entries = []
    for k in range(lane.min_shift, lane.max_shift + 1):
        for select, (low, high) in enumerate(lane.limits):
            combos = itertools.product((-d_top, -1, 0, 1, d_top), (0, 1, v_top),
                                       (low, high, (low + high) // 2))
            for d, v, c in combos:
                rho, kappa = (int(w) for w in rng.choice(
                    [0, TOP_WORD, int(rng.integers(0, TOP_WORD + 1))], size=2))
                entries.append({"en": 1, "c": c, "d": d, "v": v, "rho": rho,
                                "kappa": kappa, "k": k, "select": select})
    return entries


def random_entries(lane: UpdateLane, rng: np.random.Generator,
                   count: int) -> list[dict[str, int]]:
    """Random entries with the stored value near the end its step moves it to (where the
    saturation decides) a third of the time, small k (no saturation) a third."""
    v_top = (1 << lane.input_bits) - 1
    d_top = 1 << DELTA_BITS
    entries = []
    for _ in range(count):
        select = int(rng.integers(len(lane.limits)))
        low, high = lane.limits[select]
        d = int(rng.integers(-d_top, d_top + 1))
        v = int(rng.integers(0, v_top + 1))
        kind = rng.integers(3)
        if kind == 0:
            k = int(rng.integers(lane.min_shift, lane.max_shift + 1))
            c = int(rng.integers(low, high + 1))
        elif kind == 1:
            k = int(rng.integers(-4, 12))
            c = int(high - rng.integers(0, 64) if d < 0 else low + rng.integers(0, 64))
        else:
            k = int(rng.integers(8, 24))
            c = int(rng.integers(low, high + 1))
        entries.append({"en": 1, "c": c, "d": d, "v": v,
                        "rho": int(rng.integers(0, TOP_WORD + 1)),
                        "kappa": int(rng.integers(0, TOP_WORD + 1)), "k": k,
                        "select": select})
    return entries


class _BorrowedMultiplier(wiring.Component):
    """The lane with a multiplier outside it that answers ``product_latency`` later, as
    the MAC lanes' side ports do."""

    def __init__(self, lane: UpdateLane) -> None:
        self.lane = lane
        self.latency = lane.latency
        self.limits, self.rounding = lane.limits, lane.rounding
        self.input_bits, self.min_shift, self.max_shift = (lane.input_bits, lane.min_shift,
                                                           lane.max_shift)
        members = {name: In(port.shape()) for name, port in (
            ("en", lane.en), ("c", lane.c), ("d", lane.d), ("v", lane.v), ("rho", lane.rho),
            ("kappa", lane.kappa), ("k", lane.k), ("select", lane.select))}
        members.update({"valid": Out(1), "out": Out(lane.out.shape())})
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.lane = lane = self.lane
        for name in ("en", "c", "d", "v", "rho", "kappa", "k", "select"):
            m.d.comb += getattr(lane, name).eq(getattr(self, name))
        m.d.comb += [self.valid.eq(lane.valid), self.out.eq(lane.out)]
        product = lane.a * lane.b
        for i in range(lane.product_latency):
            reg = Signal.like(lane.product, name=f"borrowed_{i}")
            m.d.sync += reg.eq(product)
            product = reg
        m.d.comb += lane.product.eq(product)
        return m


def make_lane(rounding: str, borrowed: bool, store_bits: int = 16, compact: bool = False,
              c_memory: bool = False, late_rounding: bool = False, **shifts: int):
    limits = stored_limits(FORMAT, store_bits)
    lane = UpdateLane(limits=[limits["W"], limits["b"]], input_bits=15, rounding=rounding,
                      product_latency=2 if borrowed else None, compact=compact,
                      c_memory=c_memory, late_rounding=late_rounding, **shifts)
    return _BorrowedMultiplier(lane) if borrowed else lane


def check(lane, entries: list[dict[str, int]], seed: int) -> None:
    got = run_pipeline(lane, entries, ("valid", "out"), lane.latency)
    for entry, out in zip(entries, got, strict=True):
        want = golden_new(lane, entry)
        assert out == {"valid": 1, "out": want}, f"seed {seed}: {entry}: got {out}, golden {want}"


@pytest.mark.parametrize(("borrowed", "compact"), [
    (False, False), (False, True), (True, False),
    # Opt-in (-m slow): the default test_a_compact_lane_matches_golden_over_any_shift_range
    # runs a compact lane on a borrowed multiplier over every shift at the extremes, and
    # [*-own-compact] the compact arithmetic at these 16 stored bits.
    pytest.param(True, True, marks=pytest.mark.slow)], ids=["own-wide", "own-compact",
                                                            "borrowed-wide",
                                                            "borrowed-compact"])
@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_every_shift_at_the_extremes_matches_golden(rounding: str, borrowed: bool,
                                                    compact: bool) -> None:
    seed = SEED + 2 * borrowed + (rounding == "nearest")
    rng = np.random.default_rng(seed)
    lane = make_lane(rounding, borrowed, compact=compact)
    check(lane, corner_entries(lane, rng), seed)


@pytest.mark.parametrize(("min_shift", "max_shift", "store_bits"),
                         [(0, 1, 8), (0, 30, 8), (-3, 5, 12), (-32, 32, 8), (-9, 20, 8)])
@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_a_compact_lane_matches_golden_over_any_shift_range(
        rounding: str, min_shift: int, max_shift: int, store_bits: int) -> None:
    # The compact shift selects its bits at k + left_limit, left_limit = min(-min_shift,
    # store_bits + 1): no left shift at all, a left limit below the stored width, a
    # clamped one (k down to -32, the spec's bound, with 9 kept bits), and a largest k
    # far below the sum's width (the saturation test then reaches past the selectable
    # offsets).
    seed = SEED + 31 * max_shift - min_shift + (rounding == "nearest")
    rng = np.random.default_rng(seed)
    lane = make_lane(rounding, True, store_bits, compact=True, min_shift=min_shift,
                     max_shift=max_shift)
    entries = corner_entries(lane, rng) + random_entries(lane, rng, 300)
    for entry in entries:
        # k outside the lane's range is outside its contract.
        entry["k"] = min(max(entry["k"], min_shift), max_shift)
    check(lane, entries, seed)


@pytest.mark.parametrize("compact", [False, True], ids=["wide", "compact"])
@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_unit_input_matches_golden_with_v_one(rounding: str, compact: bool) -> None:
    # b and U (BiasLabelPass): no multiplier, the same latency as an own multiplier, and
    # every shift at the extremes plus random entries as update_step with v = 1.
    seed = SEED + 7 + (rounding == "nearest")
    rng = np.random.default_rng(seed)
    limits = stored_limits(FORMAT, 16)
    lane = UpdateLane(limits=[limits["W"], limits["b"]], input_bits=1, rounding=rounding,
                      unit_input=True, compact=compact)
    assert lane.latency == UpdateLane.latency_for(None)
    assert lane.products() == [] and not hasattr(lane, "v")
    entries = corner_entries(lane, rng) + random_entries(lane, rng, 500)
    for entry in entries:
        del entry["v"]
    check(lane, entries, seed)


@pytest.mark.parametrize("compact", [False, True], ids=["wide", "compact"])
@pytest.mark.parametrize("store_bits", [8, 12, 16])
@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_random_entries_match_golden(rounding: str, store_bits: int, compact: bool) -> None:
    seed = SEED + store_bits * 10 + (rounding == "nearest")
    rng = np.random.default_rng(seed)
    lane = make_lane(rounding, False, store_bits, compact=compact)
    check(lane, random_entries(lane, rng, 1000), seed)


@pytest.mark.parametrize(("borrowed", "compact"), [(True, True), (False, False)],
                         ids=["borrowed-compact", "own-wide"])
def test_a_lane_with_its_stored_values_in_a_memory_matches_golden(borrowed: bool,
                                                                  compact: bool) -> None:
    # c_memory: c read from a block RAM latency - 1 cycles after its entry, an entry
    # every cycle, so a read a cycle early or late (or a depth that lets a later write
    # overtake the read) gives a neighbour's c.
    seed = SEED + 97 + borrowed
    rng = np.random.default_rng(seed)
    lane = make_lane("stochastic", borrowed, compact=compact, c_memory=True)
    entries = random_entries(lane, rng, 200)
    check(lane, entries, seed)
    # As narrow as one block RAM (W and b of B_m = 8 and 12 bits): all of c in it.
    narrow = make_lane("stochastic", borrowed, 8, compact=compact, c_memory=True)
    assert (narrow.lane if borrowed else narrow).stored_bits <= 16
    check(narrow, random_entries(narrow, rng, 100), seed)
    inner = lane.lane if borrowed else lane
    # At least latency - 1 words, so a read never meets the write of its own address
    # (which the simulator reads as the old word, a block RAM without collision
    # logic may not).
    found = re.search(r"memory width (\d+) size (\d+) \\c_mem\n",
                      rtlil.convert(inner, name="top"))
    # (24 bits here: the low 16 in the block RAM, the rest in registers.)
    assert inner.stored_bits == 24
    assert found and int(found[1]) == UpdateLane.C_MEMORY_BITS == 16
    assert int(found[2]) >= inner.latency - 1
    assert "c_mem" not in rtlil.convert(make_lane("stochastic", False), name="top")
    with pytest.raises(TypeError, match=r"^C memory must be True or False, not 1$"):
        make_lane("stochastic", False, c_memory=1)


@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_a_lane_with_late_rounding_words_matches_golden(rounding: str) -> None:
    # late_rounding: each entry's rho and kappa a cycle after its other members (and k),
    # entries back to back, so words taken a cycle early or late (or R formed with the
    # next entry's k) are a neighbour's.
    seed = SEED + 53 + (rounding == "nearest")
    rng = np.random.default_rng(seed)
    lane = make_lane(rounding, True, compact=True, late_rounding=True)
    entries = corner_entries(lane, rng)[::7] + random_entries(lane, rng, 200)
    words = [{name: entry[name] for name in ("rho", "kappa")} for entry in entries]
    inputs = [{**entry, **(words[i - 1] if i else {"rho": 0, "kappa": 0})}
              for i, entry in enumerate(entries)] + [{"en": 0, **words[-1]}]
    got = run_pipeline(lane, inputs, ("valid", "out"), lane.latency)[:-1]
    for entry, out in zip(entries, got, strict=True):
        want = golden_new(lane, entry)
        assert out == {"valid": 1, "out": want}, f"seed {seed}: {entry}: got {out}, golden {want}"
    assert lane.lane.late_rounding and "k_first" in rtlil.convert(lane.lane, name="top")
    assert "k_first" not in rtlil.convert(make_lane(rounding, True, compact=True).lane,
                                          name="top")
    with pytest.raises(TypeError, match=r"^Late rounding must be True or False, not 1$"):
        make_lane(rounding, True, compact=True, late_rounding=1)
    with pytest.raises(ValueError, match=r"^Late rounding is a compact lane's: it needs "
                                         r"compact=True$"):
        make_lane(rounding, True, late_rounding=True)


def test_saturates_both_sides_and_stochastic_rounding_is_unbiased() -> None:
    lane = make_lane("stochastic", False)
    (w_low, w_high), (b_low, b_high) = lane.limits
    d_top = 1 << DELTA_BITS
    entries = [
        # k = -32: any non-zero product is far past either bound.
        {"c": 0, "d": -1, "v": 1, "k": -32, "select": 0},
        {"c": 0, "d": 1, "v": 1, "k": -32, "select": 0},
        {"c": 0, "d": -d_top, "v": (1 << 15) - 1, "k": -32, "select": 1},
        {"c": 0, "d": d_top, "v": (1 << 15) - 1, "k": -32, "select": 1},
        # At the range's ends a step outwards saturates, inwards moves.
        {"c": w_high, "d": -1, "v": 1, "k": 0, "select": 0},
        {"c": w_low, "d": 1, "v": 1, "k": 0, "select": 0},
        {"c": w_high, "d": 1, "v": 1, "k": 0, "select": 0},
        {"c": b_high, "d": -1, "v": 1, "k": 0, "select": 1},
        {"c": b_low, "d": 1, "v": 1, "k": 0, "select": 1},
    ]
    for entry in entries:
        entry.update(en=1, rho=0, kappa=0)
    got = [o["out"] for o in run_pipeline(lane, entries, ("valid", "out"), lane.latency)]
    assert got == [w_high, w_low, b_high, b_low, w_high, w_low, w_high - 1, b_high, b_low]
    # The mean step of p = -3, k = 2 over every R in 0..3 is -3/4 exactly.
    entries = [{"en": 1, "c": 0, "d": 3, "v": 1, "rho": r, "kappa": 0, "k": 2, "select": 0}
               for r in range(4)]
    got = [o["out"] for o in run_pipeline(lane, entries, ("out",), lane.latency)]
    assert sum(got) == -3


def test_valid_follows_en() -> None:
    lane = make_lane("nearest", False)
    entries = [{"en": e, "c": 5, "d": 1, "v": 1, "rho": 0, "kappa": 0, "k": 0, "select": 0}
               for e in (1, 0, 0, 1, 1, 0)]
    got = run_pipeline(lane, entries, ("valid",), lane.latency)
    assert [g["valid"] for g in got] == [1, 0, 0, 1, 1, 0]


def test_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match=r"^Limits must be a non-empty sequence"):
        UpdateLane(limits=[(3, 2)], input_bits=8)
    with pytest.raises(ValueError, match=r"^Rounding must be one of stochastic, nearest, "
                                         r"not 'down'$"):
        UpdateLane(limits=[(0, 3)], input_bits=8, rounding="down")
    with pytest.raises(TypeError, match=r"^Largest shift must be an integer in 1\.\.32, "
                                        r"not 33$"):
        UpdateLane(limits=[(0, 3)], input_bits=8, max_shift=33)
    with pytest.raises(ValueError, match=r"^A borrowed multiplier takes 16-bit signed "
                                         r"operands: errors of 16 bits and inputs of 16 bits"):
        UpdateLane(limits=[(0, 3)], input_bits=16, product_latency=2)
    with pytest.raises(ValueError, match=r"^A unit input multiplies nothing: product_latency "
                                         r"must be None with unit_input=True$"):
        UpdateLane(limits=[(0, 3)], input_bits=1, product_latency=2, unit_input=True)
    with pytest.raises(TypeError, match=r"^Unit input must be True or False, not 1$"):
        UpdateLane(limits=[(0, 3)], input_bits=1, unit_input=1)


def test_for_model_covers_every_shift_of_the_run() -> None:
    # Digits-sized FFCL model: every k = base - z of every layer, array, epoch (lambda
    # grows at the steps) and z lies in the lane's range, and the range is no wider.
    config = ModelConfig(algo="ffcl", input_size=16, num_classes=4, theta=0.25,
                         hidden=(8, 6), loops=2)
    layers = [IntLayer(W=np.ones((8, 16), np.int64), w_exp=7, b=np.zeros(8, np.int64),
                       U=np.ones((8, 4), np.int64), V=np.ones((8, 6), np.int64), v_exp=9),
              IntLayer(W=np.ones((6, 8), np.int64), w_exp=8, b=np.zeros(6, np.int64),
                       U=np.ones((6, 4), np.int64))]
    model = IntModel(config=config, fmt=FORMAT, layers=layers)
    rule = TrainRule(epochs=10, lr_shift=5, lr_steps=(3, 6, 9))
    lane = UpdateLane.for_model(model, rule)
    Fragment.get(lane, None)    # and it elaborates
    trainer = IntTrainer(model, rule)
    used = {base - z for epoch in range(rule.epochs) for layer in range(2)
            for base in trainer.base_shifts(layer, rule.lr_shift_at(epoch)).values()
            for z in range(trainer.max_block_shift + 1)}
    assert (lane.min_shift, lane.max_shift) == (min(used), max(used))
    assert lane.latency == UpdateLane.latency_for(None)
