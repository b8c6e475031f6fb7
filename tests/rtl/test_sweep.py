# amaranth: UnusedElaboratable=no
"""The sweep against a model of its arithmetic (golden.intformat.scale, saturation, ReLU,
squares), with its bias and pre-activation memories and, for shared multipliers, a
stand-in for the lanes' borrowed multipliers of the same latency."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal, signed
from amaranth.back import rtlil
from amaranth.lib import memory, wiring

from golden.intformat import scale
from rtl.program import MAC_DRAIN, OPERAND_STAGES, SIDE_LATENCY, SWEEP_SPACING, build_program
from rtl.sweep import SHARED_OPERANDS, Sweep
from tests.rtl.helpers import simulate
from tests.rtl.test_core import _random_model


class _Bench(Elaboratable):
    """The sweep with a bias memory, a pre-activation memory and (shared) multipliers."""

    def __init__(self, program, bias: list[int], lean: bool = False, **options) -> None:
        self.program = program
        self.dut = Sweep(program, product_latency=SIDE_LATENCY if program.shared else None,
                         lean=lean, **options)
        self.bias = bias

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.dut = dut = self.dut
        w = self.program.widths
        m.submodules.bias = bias = memory.Memory(
            shape=signed(w.state), depth=max(2, len(self.bias)), init=self.bias)
        wiring.connect(m, bias.read_port(), dut.bias)
        m.submodules.pre = pre = memory.Memory(
            shape=signed(w.state), depth=max(2, *self.program.model.config.hidden),
            init=[])
        wiring.connect(m, dut.pre, pre.write_port())
        if self.program.shared:
            # The lanes' multipliers: a product SIDE_LATENCY cycles after its operands.
            for p in range(SHARED_OPERANDS):
                product = dut.a[p] * dut.b[p]
                for i in range(SIDE_LATENCY):
                    delayed = Signal(signed(32), name=f"product_{p}_{i}")
                    m.d.sync += delayed.eq(product)
                    product = delayed
                m.d.comb += dut.product[p].eq(product)
        return m


def _program(shared: bool):
    # FFCL with feedback: the sweep keeps feed-forward parts (partial_entries > 0).
    return build_program(_random_model("ffcl-adjacent-T3", 5), lanes=3, label_lanes=1,
                         shared=shared)


def _expected(program, scaled: list[int], bias: list[int]) -> tuple[list[int], list[int]]:
    """Pre-activations (saturated) and activations (ReLU) of scaled sums plus biases."""
    bits = program.widths.state
    s_max, s_min = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    pre = [max(s_min, min(s_max, v + b)) for v, b in zip(scaled, bias, strict=True)]
    return pre, [max(0, v) for v in pre]


def _run(program, bias: list[int], steps: dict[int, dict], cycles: int,
         lean: bool = False, **options) -> list[dict]:
    """Set ``steps[c]`` (member path -> value) in cycle c; record every cycle's outputs."""
    bench = _Bench(program, bias, lean, **options)
    dut = bench.dut
    record = []

    async def testbench(ctx):
        for cycle in range(cycles):
            for path, value in steps.get(cycle, {}).items():
                target = dut
                for part in path.split("."):
                    target = getattr(target, part)
                ctx.set(target, value)
            record.append({
                "free": ctx.get(dut.free), "last": ctx.get(dut.last), "sq": ctx.get(dut.sq),
                "buffer": (ctx.get(dut.buffer.addr), ctx.get(dut.buffer.data),
                           ctx.get(dut.buffer.bank)) if ctx.get(dut.buffer.en) else None,
                "pre": (ctx.get(dut.pre.addr), ctx.get(dut.pre.data))
                if ctx.get(dut.pre.en) else None,
            })
            await ctx.tick()

    simulate(bench, testbench)
    return record


def _tag(neuron: int, count: int, *, fb: int = 0, final: int = 1) -> dict:
    return {"tag": {"valid": 1, "fb": fb, "final": final, "neuron": neuron, "count": count}}


@pytest.mark.parametrize("lean", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_a_final_sweep_writes_scaled_biased_saturated_values_and_sums_squares(shared, lean):
    program = _program(shared)
    w = program.widths
    rng = np.random.default_rng(3 + shared)
    count, neuron, out_off = 3, 1, 2
    bias = [int(v) for v in rng.integers(-(1 << (w.state - 1)), 1 << (w.state - 1),
                                         size=sum(program.model.config.hidden))]
    # Large sums saturate both ways; small ones land inside.
    accs = [(1 << (w.acc - 1)) - 1, -(1 << (w.acc - 1)), 37]
    r, shift = (1 << (w.r - 1)) + 5, 4
    start = 1 + MAC_DRAIN           # the tag is registered, then waits for the lanes
    steps = {0: {**_tag(neuron, count), "ff_r": r, "ff_shift": shift, "out_off": out_off,
                 "bank": 1, "fb_r": 0, "fb_shift": 0},
             1: {"tag": {"valid": 0}}}
    for i, acc in enumerate(accs):
        steps[start + i] = {"acc": acc}
    dut = Sweep(program, product_latency=SIDE_LATENCY if shared else None, lean=lean)
    assert dut.latency == program.sweep_drain
    assert dut.scale_latency == program.scale_latency
    record = _run(program, bias, steps, start + count + dut.latency + 4, lean)
    scaled = [int(v) for v in scale(np.array(accs), r, shift)]
    pre, act = _expected(program, scaled, bias[out_off + neuron:out_off + neuron + count])
    writes = [c for c, row in enumerate(record) if row["buffer"]]
    # One write per neuron, one per cycle, after the scaler and the three sum stages.
    first_write = start + dut.scale_latency + 3
    assert writes == list(range(first_write, first_write + count))
    assert [record[c]["buffer"] for c in writes] == \
        [(out_off + neuron + i, act[i], 1) for i in range(count)]
    assert [record[c]["pre"] for c in writes] == [(neuron + i, pre[i]) for i in range(count)]
    # The last square is in the sum ``latency`` cycles after the last sum was swept.
    last_swept = start + count - 1
    total = sum(a * a for a in act)
    assert record[last_swept + dut.latency]["sq"] != total or total == 0
    assert record[last_swept + dut.latency + 1]["sq"] == total
    assert total != 0


@pytest.mark.parametrize("count", [1, 2, 3])
def test_free_and_last_follow_the_tag(count):
    program = _program(False)
    record = _run(program, [0] * 16, {0: _tag(0, count), 1: {"tag": {"valid": 0}}}, 12)
    # The lanes see ``last`` with the element: after the tag register and the operand stage.
    assert [c for c, row in enumerate(record) if row["last"]] == [1 + OPERAND_STAGES]
    # A pass may end again only when its sums will find the sweep done with these.
    held = max(count, SWEEP_SPACING)
    assert [row["free"] for row in record[:held + 2]] == \
        [1] + [0] * (held - 1) + [1, 1]


@pytest.mark.parametrize(("shared", "lean"), [(False, False), (False, True), (True, True)])
def test_a_feedback_sweep_adds_the_kept_feed_forward_part(shared, lean):
    # Feed-forward pass (not final: no write), its feedback pass right after (final),
    # SWEEP_SPACING after it: the feedback sweep reads the first neuron's kept part in the
    # cycle it is written. (Lean: the kept part includes the bias, which the feedback
    # sweep must then not add again; the biases differ per neuron, so a bias read a
    # cycle early or late shows.)
    program = _program(shared)
    w = program.widths
    bias = [5 * i - 20 + 37 * (i % 3) for i in range(sum(program.model.config.hidden))]
    count, neuron, out_off = 2, 0, 3
    # Sums that land inside the state's range (none saturates, so each part shows), one
    # of them below zero (the ReLU).
    ff_acc, fb_acc = [100, -3000], [-7, 900]
    start = 1 + MAC_DRAIN
    context = {"ff_r": 1 << (w.r - 1), "ff_shift": w.r + 1, "fb_r": (1 << (w.r - 1)) + 1,
               "fb_shift": w.r, "out_off": out_off, "bank": 0}
    assert count == SWEEP_SPACING
    # (Each tag is valid for one cycle: the first one held for two would sweep neuron 0
    # twice, which saturated sums used to hide.)
    steps = {0: {**_tag(neuron, count, final=0), **context}, 1: {"tag": {"valid": 0}},
             count: _tag(neuron, count, fb=1, final=1), count + 1: {"tag": {"valid": 0}}}
    for i in range(count):
        steps[start + i] = {"acc": ff_acc[i]}
        steps[start + count + i] = {"acc": fb_acc[i]}
    record = _run(program, bias, steps, start + 2 * count + 20, lean)
    scaled = [int(a) + int(b) for a, b in zip(
        scale(np.array(ff_acc), context["ff_r"], context["ff_shift"]),
        scale(np.array(fb_acc), context["fb_r"], context["fb_shift"]), strict=True)]
    pre, act = _expected(program, scaled, bias[out_off + neuron:out_off + neuron + count])
    assert pre[0] > 0 > pre[1] > -(1 << (w.state - 1))
    assert [row["buffer"] for row in record if row["buffer"]] == \
        [(out_off + neuron + i, act[i], 0) for i in range(count)]
    assert [row["pre"] for row in record if row["pre"]] == \
        [(neuron + i, pre[i]) for i in range(count)]


@pytest.mark.parametrize(("shared", "lean"), [(False, False), (True, True)])
def test_tags_through_a_block_ram_sweep_the_same(shared, lean):
    # Sweep(tag_memory=True): the tags but valid through a block RAM written every cycle
    # at a running address. Passes of every kind (feed-forward not final, feedback
    # final, feed-forward final), 1 to 3 neurons, as close as the sweep lets them
    # (SWEEP_SPACING or their count apart) and far apart, for more cycles than the
    # memory has words: every cycle's outputs equal the flip-flop line's.
    program = _program(shared)
    bias, steps, cycles = _random_passes(
        program, np.random.default_rng(11 + shared), 12,
        lambda count: max(count, SWEEP_SPACING), (0, 9))
    lines = _run(program, bias, steps, cycles, lean)
    memory_ = _run(program, bias, steps, cycles, lean, tag_memory=True)
    assert memory_ == lines
    assert sum(row["buffer"] is not None for row in lines) >= 12
    assert Sweep(program, product_latency=SIDE_LATENCY if shared else None,
                 tag_memory=True).tag_memory
    with pytest.raises(TypeError, match=r"^Tag memory must be True or False, not 1$"):
        Sweep(_program(False), tag_memory=1)


def _random_passes(program, rng, passes: int, spacing, extra: tuple[int, int]):
    """(biases, steps, cycles) of ``passes`` random passes for :func:`_run`: every kind
    in turn (feed-forward not final, feedback final, feed-forward final), 1 to 3 neurons
    each, the next ``spacing(count)`` cycles later, every fourth a random ``extra``
    (low, high) cycles later still; the sums arrive MAC_DRAIN cycles after their tag."""
    w = program.widths
    total = sum(program.model.config.hidden)
    bias = [int(v) for v in rng.integers(-300, 300, size=total)]
    steps = {0: {"ff_r": (1 << (w.r - 1)) + 3, "ff_shift": w.r, "fb_r": 1 << (w.r - 1),
                 "fb_shift": w.r + 1, "out_off": 2, "bank": 1}}
    cycle = 1
    for i in range(passes):
        count = int(rng.integers(1, 4))
        neuron = int(rng.integers(0, max(program.model.config.hidden) - count + 1))
        fb, final = [(0, 0), (1, 1), (0, 1)][i % 3]
        steps.setdefault(cycle, {}).update(_tag(neuron, count, fb=fb, final=final))
        steps[cycle + 1] = {"tag": {"valid": 0}}
        for j in range(count):
            steps.setdefault(cycle + 1 + MAC_DRAIN + j, {})["acc"] = int(
                rng.integers(-5000, 5000))
        cycle += spacing(count) + (int(rng.integers(*extra)) if i % 4 == 3 else 0)
    return bias, steps, cycle + 30


def test_clear_restarts_the_sum_of_squares():
    program = _program(False)
    steps = {0: {**_tag(0, 1), "ff_r": 2, "ff_shift": 1},
             1: {"tag": {"valid": 0}}, 1 + MAC_DRAIN: {"acc": 20}, 20: {"clear_sq": 1},
             21: {"clear_sq": 0}}
    record = _run(program, [0] * 16, steps, 23)
    assert record[20]["sq"] == 400 and record[22]["sq"] == 0


def test_lean_is_a_bool():
    with pytest.raises(TypeError, match=r"^Lean must be True or False, not 1$"):
        Sweep(_program(False), lean=1)


def test_a_product_latency_goes_with_shared_multipliers_only():
    with pytest.raises(ValueError, match="exactly with shared multipliers"):
        Sweep(_program(False), product_latency=SIDE_LATENCY)
    with pytest.raises(ValueError, match="exactly with shared multipliers"):
        Sweep(_program(True))


@pytest.mark.parametrize("tag_memory", [False, True])
def test_spaced_passes_sweep_the_same(tag_memory):
    # Sweep(spaced_passes=True): each stage counts its neuron index from the tag's, and
    # fb and final are the pass's. Passes of every kind (feed-forward not final, feedback
    # final, feed-forward final), 1 to 3 neurons, as close as the option allows
    # (pass_spacing) and farther: every cycle's outputs equal the lean sweep's.
    program = _program(True)
    dut = Sweep(program, product_latency=SIDE_LATENCY, lean=True, spaced_passes=True)
    bias, steps, cycles = _random_passes(program, np.random.default_rng(13 + tag_memory), 9,
                                         dut.pass_spacing, (1, 5))
    options = {"tag_memory": True} if tag_memory else {}
    lines = _run(program, bias, steps, cycles, True, **options)
    spaced = _run(program, bias, steps, cycles, True, spaced_passes=True, **options)
    assert spaced == lines
    assert sum(row["buffer"] is not None for row in lines) >= 9


def test_spaced_passes_keep_only_valid_in_a_line():
    # The line's registers: valid at every stage; neuron, fb and final at none.
    def registers(**options) -> set[str]:
        dut = Sweep(_program(True), product_latency=SIDE_LATENCY, lean=True, **options)
        return {line.split()[-1] for line in rtlil.convert(dut, name="top").splitlines()
                if line.strip().startswith("connect \\Q \\sw_")}

    plain, spaced = registers(), registers(spaced_passes=True)
    assert {"\\sw_neuron_1", "\\sw_final_1", "\\sw_fb_1", "\\sw_valid_1"} <= plain
    assert [r for r in spaced if not r.startswith(("\\sw_valid_", "\\sw_count_"))] == []
    with pytest.raises(ValueError, match=r"^Spaced passes are a form of the lean sweep: "
                                         r"they need lean=True$"):
        Sweep(_program(True), product_latency=SIDE_LATENCY, spaced_passes=True)
    with pytest.raises(TypeError, match=r"^Spaced passes must be True or False, not 1$"):
        Sweep(_program(True), product_latency=SIDE_LATENCY, lean=True, spaced_passes=1)
