# amaranth: UnusedElaboratable=no
"""GoodnessDatapath against a cycle model of its score registers, compared every cycle."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal, signed
from amaranth.back import rtlil

from golden.intformat import unsigned_bits
from rtl.goodness import GoodnessDatapath
from tests.rtl.helpers import get_array, signed_range, simulate

SEED = 31415

LABELS_LANES = [(10, 10), (10, 3), (4, 1), (2, 2)]


@dataclass(frozen=True)
class Step:
    """The inputs of one cycle."""

    en: int = 0
    pre: int = 0
    u: tuple[int, ...] = ()
    group: int = 0
    clear: int = 0
    add: int = 0
    add_label: int = 0
    add_value: int = 0


@dataclass
class GoodnessModel:
    """The scores as GoodnessDatapath documents them, one ``step`` per clock cycle.

    An element (``en``) given at cycle c adds max(pre + u[q], 0)**2 to
    scores[group * G + q] for every lane q with group * G + q < K, visible from cycle
    c + ``latency``. ``clear`` and ``add`` act on the next cycle. The component leaves a
    square that lands together with ``clear`` or ``add`` undefined (the sequencer keeps
    them apart), so the model refuses such a stream instead of guessing.
    """

    labels: int
    lanes: int
    latency: int
    scores: list[int] = field(init=False)
    pipe: deque[Step | None] = field(init=False)

    def __post_init__(self) -> None:
        self.scores = [0] * self.labels
        # Elements of the last latency - 1 cycles, oldest first.
        self.pipe = deque([None] * (self.latency - 1))

    def in_flight(self) -> bool:
        """Whether any element given earlier has not reached the scores yet."""
        return any(e is not None for e in self.pipe)

    def step(self, step: Step) -> list[int]:
        """Advance one cycle; return the scores as they read after the clock edge."""
        self.pipe.append(step if step.en else None)
        landing = self.pipe.popleft()
        assert not (landing and (step.clear or step.add)), "stream breaks the contract"
        if step.clear:
            self.scores = [0] * self.labels
        elif landing is not None:
            for q, u in enumerate(landing.u):
                k = landing.group * self.lanes + q
                if k < self.labels:
                    self.scores[k] += max(landing.pre + u, 0) ** 2
        if step.add and not step.clear:
            self.scores[step.add_label] += step.add_value
        return list(self.scores)


class _Borrowed(Elaboratable):
    """A datapath with borrowed multipliers and a stand-in for them: lane q's product of
    ``factor[q]`` and ``factor[q]`` (``lean``: ``cofactor[q]``), ``latency`` cycles
    later, as the MAC lanes' side ports give it."""

    def __init__(self, dut: GoodnessDatapath) -> None:
        self.dut = dut

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.dut = dut = self.dut
        for q in range(dut.lanes):
            product = dut.factor[q] * (dut.cofactor if dut.lean else dut.factor)[q]
            for i in range(dut.product_latency):
                delayed = Signal(signed(2 * dut.operand_bits), name=f"product_{q}_{i}")
                m.d.sync += delayed.eq(product)
                product = delayed
            m.d.comb += dut.product[q].eq(product)
        return m


def run_goodness(dut: GoodnessDatapath, steps: list[Step], seed: int) -> list[list[int]]:
    """Drive ``steps`` one per cycle plus a drain, comparing ``scores`` every cycle (with
    borrowed multipliers, a stand-in gives the products).

    Returns the scores observed after every cycle (each already checked).
    """
    model = GoodnessModel(dut.labels, dut.lanes, dut.latency)
    schedule = steps + [Step(u=(0,) * dut.lanes)] * dut.latency
    observed: list[list[int]] = []
    top = 1 << dut.score_bits

    async def testbench(ctx) -> None:
        for cycle, step in enumerate(schedule):
            for name in ("en", "pre", "group", "clear", "add", "add_label", "add_value"):
                ctx.set(getattr(dut, name), getattr(step, name))
            ctx.set(dut.u, list(step.u))
            expected = model.step(step)
            # The derived width holds every score of the stream: no wrap to hide.
            assert max(expected) < top, f"seed {seed}: test chose too narrow a score width"
            await ctx.tick()
            got = get_array(ctx, dut.scores, dut.labels)
            assert got == expected, (
                f"seed {seed}, scores after cycle {cycle} ({step}): got {got}, "
                f"expected {expected}")
            observed.append(got)

    simulate(dut if dut.product_latency is None else _Borrowed(dut), testbench)
    assert len(observed) == len(schedule), f"seed {seed}: testbench ended early"
    return observed


def groups_of(labels: int, lanes: int) -> int:
    """ceil(K / G), computed here rather than taken from the component under test."""
    return -(-labels // lanes)


def random_steps(rng: np.random.Generator, labels: int, lanes: int, state_bits: int,
                 weight_bits: int, neurons: int, add_max: int, latency: int) -> list[Step]:
    """Neurons scanned group by group with random gaps, FFL adds and clears in between.

    ``add`` and ``clear`` are only placed where the contract allows them: with no square
    in flight (the model keeps the element history that decides this).
    """
    pre_low, pre_high = signed_range(state_bits)
    u_low, u_high = signed_range(weight_bits)
    tracker = GoodnessModel(labels, lanes, latency)
    steps: list[Step] = []

    def emit(step: Step) -> None:
        steps.append(step)
        tracker.step(step)

    def idle() -> Step:
        # Garbage on the data inputs of an idle cycle must be ignored.
        return Step(pre=int(rng.integers(pre_low, pre_high, endpoint=True)),
                    u=tuple(int(v) for v in rng.integers(u_low, u_high, size=lanes,
                                                         endpoint=True)),
                    group=int(rng.integers(0, groups_of(labels, lanes))))

    for neuron in range(neurons):
        extreme = rng.random() < 0.2
        pre = int(rng.choice([pre_low, pre_high])) if extreme else \
            int(rng.integers(pre_low, pre_high, endpoint=True))
        for group in range(groups_of(labels, lanes)):
            while rng.random() < 0.25:
                emit(idle())
            if extreme:
                u = tuple(int(v) for v in rng.choice([u_low, u_high], size=lanes))
            else:
                u = tuple(int(v) for v in rng.integers(u_low, u_high, size=lanes,
                                                       endpoint=True))
            emit(Step(en=1, pre=pre, u=u, group=group))
        # Between neurons, now and then: a pass's FFL goodness added to one label, or
        # (rarely, and always once in the middle) a new inference. Both wait for the
        # squares in flight to land.
        roll = rng.random()
        middle = neuron == neurons // 2
        if roll < 0.25 or middle:
            while tracker.in_flight():
                emit(idle())
            if roll < 0.05 or middle:
                emit(Step(u=(0,) * lanes, clear=1))
            else:
                emit(Step(u=(0,) * lanes, add=1, add_label=int(rng.integers(0, labels)),
                          add_value=int(rng.integers(0, add_max, endpoint=True))))
    return steps


@pytest.mark.parametrize(("state_bits", "weight_bits"), [(16, 8), (4, 2)])
@pytest.mark.parametrize(("labels", "lanes"), LABELS_LANES)
def test_random_scan(labels: int, lanes: int, state_bits: int, weight_bits: int) -> None:
    seed = SEED + 1000 * labels + 100 * lanes + state_bits
    rng = np.random.default_rng(seed)
    neurons, add_max = 40, 1 << 12
    # The width from the bound of this stream: every element at the extremes, one add of
    # add_max after every neuron.
    h_max = signed_range(state_bits)[1] + signed_range(weight_bits)[1]
    bound = neurons * groups_of(labels, lanes) * h_max ** 2 + neurons * add_max
    dut = GoodnessDatapath(labels=labels, lanes=lanes, state_bits=state_bits,
                           weight_bits=weight_bits, score_bits=unsigned_bits(bound))
    assert dut.groups == groups_of(labels, lanes)
    steps = random_steps(rng, labels, lanes, state_bits, weight_bits, neurons=neurons,
                         add_max=add_max, latency=dut.latency)
    observed = run_goodness(dut, steps, seed)
    # The stream must exercise what it claims to: adds, clears, gaps, and scores that grew.
    assert sum(s.add for s in steps) >= 3, f"seed {seed}"
    assert sum(s.clear for s in steps) >= 1, f"seed {seed}"
    assert sum(not s.en for s in steps) > 20, f"seed {seed}"
    assert max(max(o) for o in observed) > 0, f"seed {seed}"


@pytest.mark.parametrize(("labels", "lanes"), LABELS_LANES)
def test_lanes_beyond_labels_ignored(labels: int, lanes: int) -> None:
    # The last group's lanes past K carry large weights; they must change nothing (the
    # model only scores k < K, and a stray write would show as a mismatch).
    groups = groups_of(labels, lanes)
    steps = [Step(en=1, pre=100, u=(127,) * lanes, group=g) for g in range(groups)]
    dut = GoodnessDatapath(labels=labels, lanes=lanes, state_bits=16, weight_bits=8,
                           score_bits=20)
    final = run_goodness(dut, steps, seed=0)[-1]
    assert final == [227 ** 2] * labels


@pytest.mark.parametrize(("labels", "lanes"), LABELS_LANES)
def test_clear_and_add(labels: int, lanes: int) -> None:
    dut = GoodnessDatapath(labels=labels, lanes=lanes, state_bits=16, weight_bits=8,
                           score_bits=16)
    u = tuple(range(1, lanes + 1))
    scan = [Step(en=1, pre=10, u=u, group=g) for g in range(dut.groups)]
    # Wait for the last square to land before clearing (the contract).
    drain = [Step(u=(0,) * lanes)] * dut.latency
    steps = [*scan, *drain, Step(u=(0,) * lanes, clear=1)]
    # After the clear, one add per label with a distinct value, back to back.
    steps += [Step(u=(0,) * lanes, add=1, add_label=k, add_value=1000 + k)
              for k in range(labels)]
    # A clear in the same cycle as an add wins: the add is dropped.
    steps += [Step(u=(0,) * lanes, clear=1, add=1, add_label=labels - 1, add_value=7)]
    observed = run_goodness(dut, steps, seed=0)
    cleared = len(scan) + len(drain)
    assert max(observed[cleared - 1]) > 0
    assert observed[cleared] == [0] * labels
    assert observed[cleared + labels] == [1000 + k for k in range(labels)]
    assert observed[-1] == [0] * labels


@pytest.mark.parametrize(("state_bits", "weight_bits", "neurons"), [
    (16, 8, 200),
    (8, 8, 150),     # equal widths: pre + u needs the extra bit of h
    (4, 2, 300),
])
@pytest.mark.parametrize(("labels", "lanes"), LABELS_LANES)
def test_extremes_derived_width_does_not_wrap(labels: int, lanes: int, state_bits: int,
                                              weight_bits: int, neurons: int) -> None:
    pre_low, pre_high = signed_range(state_bits)
    u_low, u_high = signed_range(weight_bits)
    h_max = pre_high + u_high
    bound = neurons * h_max ** 2
    score_bits = unsigned_bits(bound)
    dut = GoodnessDatapath(labels=labels, lanes=lanes, state_bits=state_bits,
                           weight_bits=weight_bits, score_bits=score_bits)
    groups = groups_of(labels, lanes)
    steps = [Step(en=1, pre=pre_high, u=(u_high,) * lanes, group=g)
             for _ in range(neurons) for g in range(groups)]
    # Both most negative, and most negative against most positive: ReLU gives zero.
    steps += [Step(en=1, pre=pre_low, u=(u_low,) * lanes, group=g) for g in range(groups)]
    steps += [Step(en=1, pre=pre_low, u=(u_high,) * lanes, group=g) for g in range(groups)]
    final = run_goodness(dut, steps, seed=0)[-1]
    # Every score reaches the bound exactly, and the bound needs every bit of the width.
    assert final == [bound] * labels
    assert bound >= 1 << (score_bits - 1)


#: Borrowed multipliers: the full form and the small-part one (``lean``, and with the
#: add and the ReLU in one stage, ``fused_relu``), the MAC lanes' side latency and another.
BORROWED = [dict(product_latency=2), dict(product_latency=2, lean=True),
            dict(product_latency=3, lean=True),
            dict(product_latency=2, lean=True, fused_relu=True)]


@pytest.mark.parametrize("borrowed", BORROWED, ids=lambda b: "-".join(map(str, b.values())))
@pytest.mark.parametrize(("state_bits", "weight_bits"), [(16, 8), (16, 16), (4, 2)])
@pytest.mark.parametrize(("labels", "lanes"), [(10, 3), (4, 1), (2, 2)])
def test_borrowed_multipliers_give_the_same_scores(labels, lanes, state_bits, weight_bits,
                                                   borrowed):
    # Random scans (odd and even h, gaps, FFL adds, clears), then every lane at the
    # extremes: with 16-bit states and weights h reaches 2^16 - 2, whose halves are the
    # widest a signed 16-bit multiplier input takes (2^15 - 1); h = 1 and 3 are the
    # smallest odd ones (f = 0: the square is e alone).
    seed = SEED + 7 * labels + lanes + state_bits + weight_bits
    rng = np.random.default_rng(seed)
    pre_low, pre_high = signed_range(state_bits)
    u_low, u_high = signed_range(weight_bits)
    h_max = pre_high + u_high
    neurons, add_max = 30, 1 << 12
    dut = GoodnessDatapath(labels=labels, lanes=lanes, state_bits=state_bits,
                           weight_bits=weight_bits, operand_bits=16,
                           score_bits=unsigned_bits((neurons + 4) * groups_of(labels, lanes)
                                                    * h_max ** 2 + neurons * add_max),
                           **borrowed)
    assert dut.latency == borrowed["product_latency"] + 4 - borrowed.get("fused_relu", False)
    steps = random_steps(rng, labels, lanes, state_bits, weight_bits, neurons=neurons,
                         add_max=add_max, latency=dut.latency)
    groups = groups_of(labels, lanes)
    for pre, u in ((pre_high, u_high), (1, 0), (pre_high, u_high - 1), (2, 1)):
        steps += [Step(en=1, pre=pre, u=(u,) * lanes, group=g) for g in range(groups)]
    observed = run_goodness(dut, steps, seed)
    assert max(max(o) for o in observed) > h_max ** 2


def test_lean_is_for_borrowed_multipliers_only():
    kwargs = dict(labels=4, lanes=2, state_bits=16, weight_bits=8, score_bits=20)
    with pytest.raises(ValueError, match=r"^The lean goodness datapath borrows its "
                                         r"multipliers: it needs a product latency$"):
        GoodnessDatapath(**kwargs, lean=True)
    with pytest.raises(TypeError, match=r"^Lean must be True or False, not 1$"):
        GoodnessDatapath(**kwargs, product_latency=2, lean=1)
    with pytest.raises(ValueError, match=r"^The fused ReLU is a form of the lean goodness "
                                         r"datapath: it needs lean=True$"):
        GoodnessDatapath(**kwargs, product_latency=2, fused_relu=True)


def test_lean_carries_one_bit_beside_the_product():
    # The small-part form's registers: per lane the add, the ReLU, the halves and e's
    # line beside the product (1 bit a cycle), no input, odd-part or square register.
    dut = GoodnessDatapath(labels=10, lanes=3, state_bits=16, weight_bits=8, score_bits=36,
                           product_latency=2, lean=True)
    wires = {line.split()[-1]: line.split()[2] for line in
             rtlil.convert(dut, name="top").splitlines() if line.startswith("  wire width")}
    for q in range(3):
        assert [wires.get(f"\\{name}") for name in (f"z_{q}", f"h_{q}", f"c_{q}", f"e_{q}",
                                                      f"e_{q}_0", f"e_{q}_1")] == \
            ["18", "17", "16", "1", "1", "1"]
    assert not [name for name in wires if "odd" in name]


def test_fused_relu_registers_h_from_the_sum():
    # The add and the ReLU in one stage: z is the adder's output, not a register (the
    # register Yosys fed h from, through h's synchronous reset); h, c, e and e's line stay.
    def registers(**options) -> set[str]:
        dut = GoodnessDatapath(labels=10, lanes=3, state_bits=16, weight_bits=8,
                               score_bits=36, product_latency=2, lean=True, **options)
        return {line.split()[-1] for line in rtlil.convert(dut, name="top").splitlines()
                if line.strip().startswith("connect \\Q ")}

    plain, fused = registers(), registers(fused_relu=True)
    assert {"\\z_0", "\\h_0", "\\c_0", "\\e_0", "\\e_0_1"} <= plain
    # One stage fewer: the line of label groups is a register shorter.
    assert plain - fused == {"\\z_0", "\\z_1", "\\z_2", "\\group_4"}
