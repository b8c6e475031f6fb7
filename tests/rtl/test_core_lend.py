# amaranth: UnusedElaboratable=no
"""The lend port of ``Core(lend=True)``: the MAC lanes' multipliers for the training
engine's update lanes (``MacLanes(shared_lanes=P)``).

The bit-exact training tests see a lend fault only where it changes an accumulator or an
update. Here the port is checked directly: operands offered while the core classifies
must change nothing (not a score, not a cycle), and operands offered while it idles
must come back as their products :data:`rtl.program.SIDE_LATENCY` cycles later.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from rtl.core import Core
from rtl.program import SIDE_BITS, SIDE_LATENCY
from tests.rtl.helpers import PERIOD, classify
from tests.rtl.test_core import _random_model

LOW, HIGH = -(1 << (SIDE_BITS - 1)), 1 << (SIDE_BITS - 1)


def _operands(rng: np.random.Generator, lanes: int) -> tuple[list[int], list[int]]:
    """Random full-range signed operands a and b for every lane."""
    a, b = rng.integers(LOW, HIGH, size=(2, lanes))
    return [int(v) for v in a], [int(v) for v in b]


def _offer(ctx, core: Core, a: list[int], b: list[int]) -> None:
    for p, (x, y) in enumerate(zip(a, b, strict=True)):
        ctx.set(core.lend.a[p], x)
        ctx.set(core.lend.b[p], y)


def _classify_under_garbage(core: Core, images: np.ndarray, rng: np.random.Generator,
                            *others) -> list[tuple[int, tuple[int, ...], int]]:
    """Classify ``images`` with random full-range operands on every lane of the lend port
    in every cycle (and the ``others`` testbenches in the background); the results."""
    results = []

    async def garbage(ctx) -> None:
        async for _ in ctx.tick():
            _offer(ctx, core, *_operands(rng, core.lanes))

    async def testbench(ctx) -> None:
        ctx.set(core.result.ready, 1)
        for image in images:
            results.append(await classify(ctx, core, image))

    sim = Simulator(core)
    sim.add_clock(PERIOD)
    for background in (garbage, *others):
        sim.add_testbench(background, background=True)
    sim.add_testbench(testbench)
    sim.run()
    return results


def _assert_golden(results, model, images: np.ndarray) -> None:
    golden = model.run(images)
    assert [r[0] for r in results] == golden.labels.tolist()
    assert [r[1] for r in results] == [tuple(int(s) for s in row) for row in golden.scores]


async def _check_products(ctx, core: Core, rng: np.random.Generator, cycles: int) -> None:
    """New operands every cycle; each product read exactly SIDE_LATENCY cycles later."""
    P = core.lanes
    offered = []
    for t in range(cycles + SIDE_LATENCY):
        if t < cycles:
            offered.append(_operands(rng, P))
            _offer(ctx, core, *offered[-1])
        await ctx.tick()
        # After the edge ending cycle t: the product of cycle t - SIDE_LATENCY + 1.
        c = t - SIDE_LATENCY + 1
        if 0 <= c < cycles:
            a, b = offered[c]
            got = [int(ctx.get(core.lend.product[p])) for p in range(P)]
            assert got == [x * y for x, y in zip(a, b, strict=True)], f"cycle {c}"


@pytest.mark.parametrize(("name", "lanes"), [("ffdl", 3), ("ffcl-adjacent-T3", 3),
                                             ("ffcl-top-T2", 8)])
def test_operands_offered_while_the_core_classifies_change_nothing(name, lanes):
    # Random full-range operands on every lane in every cycle, whatever the core does: a
    # lend select that leaks them into the MAC lanes while elements flow (forced, or a
    # cycle late at a pass's start) changes scores or cycles.
    seed = 5 * lanes + len(name)
    model = _random_model(name, seed)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, model.fmt.input_max + 1, size=(3, model.config.input_size))
    core = Core(model, lanes=lanes, weights="loadable", lend=True)
    plain = Core(model, lanes=lanes, weights="loadable")
    results = _classify_under_garbage(core, images, rng)
    _assert_golden(results, model, images)
    # The same cycles as a core that cannot lend (the closed form both share).
    assert core.cycles_per_inference() == plain.cycles_per_inference()
    assert [r[2] for r in results] == [plain.cycles_per_inference()] * len(images)


def test_lent_products_come_back_side_latency_cycles_later_while_idle():
    # Idle after reset, and idle again after an inference (the lanes' last elements
    # gone): every lane multiplies full-range 16-bit operands, new ones every cycle, so a
    # product a cycle early or late, or a lane that keeps the MAC element, is a mismatch.
    model = _random_model("ffcl-adjacent-T3", 4)
    core = Core(model, lanes=3, weights="loadable", lend=True)
    rng = np.random.default_rng(4)
    image = rng.integers(0, model.fmt.input_max + 1, size=model.config.input_size)
    extremes = [LOW, HIGH - 1, LOW, -1]

    async def testbench(ctx) -> None:
        ctx.set(core.result.ready, 1)
        await _check_products(ctx, core, rng, 24)
        label, scores, _ = await classify(ctx, core, image)
        assert (label, scores) == (int(model.run(image[None]).labels[0]),
                                   tuple(int(s) for s in model.run(image[None]).scores[0]))
        await _check_products(ctx, core, rng, 24)
        # The extremes: -2^15 squared is the widest product (2^30).
        for a in extremes:
            _offer(ctx, core, [a] * 3, [a] * 3)
            await ctx.tick().repeat(SIDE_LATENCY)
            assert [int(ctx.get(core.lend.product[p])) for p in range(3)] == [a * a] * 3

    sim = Simulator(core)
    sim.add_clock(PERIOD)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize(("name", "lanes", "label_lanes"), [
    ("ffdl", 3, 2), ("ffcl-adjacent-T3", 4, 2), ("ffcl-top-T2", 3, 3)])
def test_a_shared_core_holds_at_any_op_without_lending_a_lane_in_use(name, lanes, label_lanes):
    # The small-part core (Core(shared=True, lend=True)): its sweep and label scan borrow
    # the lanes while it runs, the engine gets them whenever accept_load is high, which a
    # hold raises at a FETCH. An op ends with its drain (TAIL, SCAN_DRAIN), so nothing
    # is in flight at a FETCH: held at many FETCHes, with garbage on the lend port in
    # every cycle, the scores must stay golden. Caught (tried): the engine's operands
    # selected whenever the core does not scan; accept_load raised by a hold during a
    # drain's last cycles.
    seed = 7 * lanes + len(name)
    model = _random_model(name, seed)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, model.fmt.input_max + 1, size=(3, model.config.input_size))
    core = Core(model, lanes=lanes, label_lanes=label_lanes, weights="loadable",
                shared=True, lend=True, observe=True, store_bits=model.fmt.weight_bits)
    holds = []

    async def hold(ctx) -> None:
        # Bursts of 1 to 12 cycles of hold, about half of the time: many land on a FETCH
        # (counted: a fetch with the hold high, the core held before that op).
        remaining = 0
        async for _, _, fetch, held in ctx.tick().sample(core.observe.fetch, core.store.hold):
            holds.append(bool(fetch and held))
            if remaining:
                remaining -= 1
            else:
                remaining = int(rng.integers(1, 13))
                ctx.set(core.store.hold, rng.random() < 0.5)

    results = _classify_under_garbage(core, images, rng, hold)
    assert sum(holds) >= 20
    _assert_golden(results, model, images)
