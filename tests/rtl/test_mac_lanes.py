"""MacLanes against a cycle model of its accumulators, compared with ``acc`` every cycle."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.back import rtlil

from golden.intformat import signed_bits
from rtl.mac_lanes import MacLanes
from tests.rtl.helpers import PERIOD, get_array, signed_range, simulate, unsigned_max

SEED = 20240611


@dataclass(frozen=True)
class Step:
    """The inputs of one cycle."""

    en: int
    first: int
    x: int
    w: tuple[int, ...]


class MacModel:
    """The accumulators as MacLanes documents them, one ``step`` per clock cycle.

    An element given with ``en`` at cycle c reaches ``acc`` at c + ``latency``: it replaces
    the accumulator when given with ``first`` and adds to it otherwise.
    """

    def __init__(self, lanes: int, latency: int, acc_bits: int) -> None:
        self.acc = [0] * lanes
        self.low, self.high = signed_range(acc_bits)
        # Elements of the last latency - 1 cycles, oldest first.
        self.pipe: deque[tuple[int, list[int]] | None] = deque([None] * (latency - 1))

    def step(self, step: Step) -> list[int]:
        """Advance one cycle; return ``acc`` as it reads after the clock edge."""
        self.pipe.append((step.first, [w * step.x for w in step.w]) if step.en else None)
        landing = self.pipe.popleft()
        if landing is not None:
            first, products = landing
            if first:
                self.acc = products
            else:
                self.acc = [a + p for a, p in zip(self.acc, products, strict=True)]
        # The model is exact; the test widths are chosen so that it never leaves the range
        # of acc_bits. If it did, the test itself would be wrong.
        assert all(self.low <= a <= self.high for a in self.acc), self.acc
        return list(self.acc)


def run_mac(dut: MacLanes, steps: list[Step], seed: int) -> list[list[int]]:
    """Drive ``steps`` one per cycle plus a drain; compare ``acc`` with the model each cycle.

    Returns ``acc`` as observed after every cycle (each one already checked).
    """
    model = MacModel(dut.lanes, dut.latency, dut.acc_bits)
    idle = Step(en=0, first=0, x=0, w=(0,) * dut.lanes)
    # Idle cycles after the stream let the last element reach acc before the end.
    schedule = steps + [idle] * dut.latency
    observed: list[list[int]] = []

    async def testbench(ctx) -> None:
        # Reset state: every accumulator starts at zero.
        assert get_array(ctx, dut.acc, dut.lanes) == [0] * dut.lanes, f"seed {seed}"
        for cycle, step in enumerate(schedule):
            ctx.set(dut.en, step.en)
            ctx.set(dut.first, step.first)
            ctx.set(dut.x, step.x)
            ctx.set(dut.w, list(step.w))
            expected = model.step(step)
            await ctx.tick()
            got = get_array(ctx, dut.acc, dut.lanes)
            assert got == expected, (
                f"seed {seed}, acc after cycle {cycle} ({step}): got {got}, expected {expected}")
            observed.append(got)

    simulate(dut, testbench)
    assert len(observed) == len(schedule), f"seed {seed}: testbench ended early"
    return observed


def random_steps(rng: np.random.Generator, cycles: int, lanes: int, weight_bits: int,
                 input_bits: int) -> list[Step]:
    """A stream with gaps, restarts, garbage on idle cycles and extreme values."""
    w_low, w_high = signed_range(weight_bits)
    x_max = unsigned_max(input_bits)
    steps = []
    for _ in range(cycles):
        # A fifth of the elements take the extremes: x at its maximum, w at either end.
        if rng.random() < 0.2:
            x = x_max
            w = tuple(int(v) for v in rng.choice([w_low, w_high], size=lanes))
        else:
            x = int(rng.integers(0, x_max, endpoint=True))
            w = tuple(int(v) for v in rng.integers(w_low, w_high, size=lanes, endpoint=True))
        steps.append(Step(
            # About a third of the cycles are gaps; first and the data still toggle there
            # and must be ignored.
            en=int(rng.random() < 0.7), first=int(rng.random() < 0.15), x=x, w=w))
    return steps


@pytest.mark.parametrize(("weight_bits", "input_bits"), [(8, 8), (2, 1), (16, 16)])
@pytest.mark.parametrize("lanes", [1, 2, 3, 8])
def test_random_stream(lanes: int, weight_bits: int, input_bits: int) -> None:
    seed = SEED + 1000 * lanes + 10 * weight_bits + input_bits
    rng = np.random.default_rng(seed)
    cycles = 300
    # Bound on |acc|: every element of the stream at the extremes.
    bound = cycles * (1 << (weight_bits - 1)) * unsigned_max(input_bits)
    acc_bits = signed_bits(bound)
    dut = MacLanes(lanes=lanes, weight_bits=weight_bits, input_bits=input_bits,
                   acc_bits=acc_bits)
    steps = random_steps(rng, cycles, lanes, weight_bits, input_bits)
    # The stream must actually exercise what it claims to.
    assert sum(s.en and s.first for s in steps) > 5
    assert sum(not s.en for s in steps) > 30
    run_mac(dut, steps, seed)


@pytest.mark.parametrize("lanes", [1, 3])
def test_latency_of_one_element(lanes: int) -> None:
    # A single element must appear exactly `latency` cycles later, not earlier or later:
    # the model says so and run_mac compares every cycle in between.
    dut = MacLanes(lanes=lanes, weight_bits=8, input_bits=8, acc_bits=20)
    assert dut.latency >= 1
    w = tuple(range(-3, -3 + lanes))
    steps = [Step(en=1, first=1, x=200, w=w)]
    model = MacModel(lanes, dut.latency, dut.acc_bits)
    idle = Step(en=0, first=0, x=0, w=(0,) * lanes)
    trace = [model.step(s) for s in steps + [idle] * dut.latency]
    # The model's own trace (acc after each cycle): zero until cycle `latency`, the
    # product from then on.
    assert all(t == [0] * lanes for t in trace[:dut.latency - 1])
    assert trace[dut.latency - 1:] == [[200 * v for v in w]] * 2
    assert run_mac(dut, steps, seed=0) == trace


@pytest.mark.parametrize("lanes", [2, 8])
def test_restart_back_to_back(lanes: int) -> None:
    # Dot products of three elements, one after another without a gap: the `first` of
    # the next one must not see the previous sum.
    rng = np.random.default_rng(SEED + lanes)
    steps = []
    for i in range(30):
        w = tuple(int(v) for v in rng.integers(-128, 127, size=lanes, endpoint=True))
        steps.append(Step(en=1, first=int(i % 3 == 0), x=int(rng.integers(0, 255)), w=w))
    dut = MacLanes(lanes=lanes, weight_bits=8, input_bits=8, acc_bits=signed_bits(3 * 128 * 255))
    run_mac(dut, steps, SEED + lanes)


@pytest.mark.parametrize(("lanes", "weight_bits", "input_bits", "n_in"), [
    (8, 8, 8, 784),     # a full 28x28 image of 8-bit pixels on 8-bit weights
    (3, 16, 16, 64),
    (2, 2, 1, 7),
    (1, 4, 4, 1),       # a single product: the derived width is the product width
])
def test_derived_width_does_not_overflow(lanes: int, weight_bits: int, input_bits: int,
                                         n_in: int) -> None:
    w_low, w_high = signed_range(weight_bits)
    x_max = unsigned_max(input_bits)
    # The largest magnitude of n_in products uses the most negative weight.
    acc_bits = signed_bits(n_in * -w_low * x_max)
    dut = MacLanes(lanes=lanes, weight_bits=weight_bits, input_bits=input_bits,
                   acc_bits=acc_bits)
    # Lanes alternate between the two extreme weights, so both ends of acc are reached.
    w = tuple(w_low if p % 2 == 0 else w_high for p in range(lanes))
    steps = [Step(en=1, first=int(i == 0), x=x_max, w=w) for i in range(n_in)]
    final = run_mac(dut, steps, seed=0)[-1]
    # The exact sums, the even lanes at the most negative value the bound allows.
    assert final == [wi * n_in * x_max for wi in w]


#: (lanes, idle cycles between dot products, options). Held sums (the small part's
#: shift-out without a top entry) at the fewest idle cycles they allow, two: on 3 lanes
#: (the iCEBreaker's), 2 (no bank at all), 6 (a lane of a second group is the top), and
#: with lanes that clear ahead (their accumulators clear a cycle before the first product).
SHIFT_OUT_CASES = [(1, 0, {}), (5, 0, {}), (8, 0, {}), (9, 3, {}), (22, 1, {}),
                   (3, 2, {"held_sums": True}), (2, 2, {"held_sums": True}),
                   (6, 2, {"held_sums": True, "clear_ahead": True})]


@pytest.mark.parametrize(("lanes", "gap", "options"), SHIFT_OUT_CASES)
def test_finished_sums_shift_out_one_lane_per_cycle(lanes: int, gap: int,
                                                    options: dict) -> None:
    # Dot products back to back (or with idle cycles between them): `latency` cycles after
    # the element given with `last`, `out` is lane 0's sum, then lane 1's, ... while the
    # accumulators already hold the next dot product's first products. Lane counts above
    # MacLanes.GROUP put the bank's loads in several groups.
    rng = np.random.default_rng(SEED + 7 * lanes + gap)
    acc_bits = signed_bits(64 * 128 * 255)
    dut = MacLanes(lanes=lanes, weight_bits=8, input_bits=8, acc_bits=acc_bits, **options)
    schedule: list[dict[str, object]] = []
    sums: list[list[int]] = []
    for _ in range(6):
        # At least `lanes` elements, so the previous sums are out before the next ones.
        length = int(rng.integers(lanes, lanes + 6, endpoint=True))
        total = [0] * lanes
        for i in range(length):
            x = int(rng.integers(0, 255, endpoint=True))
            w = [int(v) for v in rng.integers(-128, 127, size=lanes, endpoint=True)]
            total = [t + wi * x for t, wi in zip(total, w, strict=True)]
            schedule.append(dict(en=1, first=int(i == 0), last=int(i == length - 1), x=x, w=w))
        sums.append(total)
        # Idle cycles carry garbage, including `last`, which must be ignored without en.
        schedule += [dict(en=0, first=1, last=1, x=255, w=[-128] * lanes)] * gap
    schedule += [dict(en=0, first=0, last=0, x=0, w=[0] * lanes)] * (dut.latency + lanes)
    ends = [c for c, step in enumerate(schedule) if step["en"] and step["last"]]
    expected = {end + dut.latency + p: sums[k][p]
                for k, end in enumerate(ends) for p in range(lanes)}
    seen: dict[int, int] = {}

    async def testbench(ctx) -> None:
        for cycle, step in enumerate(schedule):
            for name, value in step.items():
                ctx.set(getattr(dut, name), value)
            # `out` is combinational from registers: read before the edge ends the cycle.
            await ctx.delay(PERIOD / 4)
            if cycle in expected:
                seen[cycle] = ctx.get(dut.out)
            await ctx.tick()

    simulate(dut, testbench)
    assert seen == expected
    assert len(expected) == 6 * lanes


def test_held_sums_drop_the_top_entry():
    # The shift-out's registers: P - 1 entries, P - 2 with held sums (none on 2 lanes).
    def entries(lanes: int, **options) -> int:
        dut = MacLanes(lanes=lanes, weight_bits=8, input_bits=8, acc_bits=20, **options)
        return sum(1 for line in rtlil.convert(dut, name="top").splitlines()
                   if line.startswith("  wire width") and "\\shift_" in line)

    assert [entries(3), entries(3, held_sums=True), entries(2, held_sums=True)] == [2, 1, 0]
