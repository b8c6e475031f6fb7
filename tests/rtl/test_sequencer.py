# amaranth: UnusedElaboratable=no
"""The sequencer alone, against rtl.program: the passes it issues (elements, tags), the
phase of every cycle and the cycle count, with the datapath replaced by the testbench."""

from __future__ import annotations

import itertools

import pytest
from amaranth import Elaboratable, Module, unsigned
from amaranth.lib import memory, wiring

from rtl.model_memory import memory_images
from rtl.program import LAYER, PHASES, SCAN, build_program, op_layout
from rtl.sequencer import Sequencer
from tests.rtl.helpers import simulate
from tests.rtl.test_core import _random_model


class _Bench(Elaboratable):
    """The sequencer with its program ROM and image memory."""

    def __init__(self, program, **options) -> None:
        self.program = program
        self.dut = Sequencer(program, **options)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.dut = dut = self.dut
        m.submodules.ops = ops = memory.Memory(
            shape=unsigned(op_layout(self.program).size), depth=max(2, len(self.program.ops)),
            init=memory_images(self.program)["ops"])
        wiring.connect(m, ops.read_port(), dut.ops)
        m.submodules.image = image = memory.Memory(
            shape=unsigned(self.program.widths.input),
            depth=max(2, self.program.model.config.input_size), init=[])
        wiring.connect(m, dut.image_write, image.write_port())
        return m


def _no_held_passes(program) -> bool:
    return all(max(before[1], 2) <= after[0] for op in program.ops if op.kind == LAYER
               for before, after in itertools.pairwise(program.passes(op)))


def _run(program, *, free=lambda cycle: 1, argmax_cycles: int | None = None,
         stored_norms: bool = False) -> dict:
    """One inference: send the image, answer ``free`` and the argmax, record everything."""
    bench = _Bench(program, **({"stored_norms": True} if stored_norms else {}))
    dut = bench.dut
    K = program.model.config.num_classes
    argmax_cycles = K if argmax_cycles is None else argmax_cycles
    seen = {"phases": dict.fromkeys(PHASES, 0), "elements": [], "tags": [], "scan": 0,
            "writes": [], "clears": 0, "trace": [], "finish": []}

    async def testbench(ctx):
        ctx.set(dut.done.ready, 1)
        for pixel in range(program.model.config.input_size):
            ctx.set(dut.image.payload, pixel + 1)
            ctx.set(dut.image.valid, 1)
            if ctx.get(dut.image_write.en):
                seen["writes"].append((ctx.get(dut.image_write.addr),
                                       ctx.get(dut.image_write.data)))
            seen["clears"] += ctx.get(dut.clear_scores)
            assert ctx.get(dut.image.ready) and not ctx.get(dut.busy)
            await ctx.tick()
        ctx.set(dut.image.valid, 0)
        cycle, argmax_left, pass_elements = 0, None, 0
        while not ctx.get(dut.done.valid):
            ctx.set(dut.free, free(cycle))
            # A sum of squares that says when it was stored.
            ctx.set(dut.sq, 1000 + cycle)
            # Every cycle until the result has a phase, named as rtl.program.PHASES does.
            phase = ctx.get(dut.phase).name.lower()
            op = ctx.get(dut.op)
            sums = ((None, None) if stored_norms
                    else (ctx.get(dut.ff_sq), ctx.get(dut.fb_sq)))
            seen["trace"].append((phase, op.kind, op.layer, op.bank, op.fb_src,
                                  op.fb_en, *sums, ctx.get(dut.element.valid)))
            if stored_norms and ctx.get(dut.finish):
                seen["finish"].append((cycle, op.bank, op.layer))
            assert phase in PHASES and ctx.get(dut.busy)
            seen["phases"][phase] += 1
            element = ctx.get(dut.element)
            if element.valid:
                pass_elements += 1
                seen["elements"].append(element.first)
            tag = ctx.get(dut.tag)
            if tag.valid:
                seen["tags"].append((pass_elements, tag.count, bool(tag.fb), bool(tag.final),
                                     tag.neuron))
                pass_elements = 0
            seen["scan"] += ctx.get(dut.scan_issue)
            if ctx.get(dut.start_argmax):
                # The argmax takes its first label in the next cycle, its last K later.
                argmax_left = argmax_cycles
            elif argmax_left is not None:
                argmax_left -= 1
                ctx.set(dut.argmax_done, argmax_left == 0)
            await ctx.tick()
            cycle += 1
            assert cycle < 10 * program.cycles(), "the sequencer never offers a result"
        seen["cycles"] = ctx.get(dut.done.payload)
        seen["counted"] = cycle
        await ctx.tick()
        assert not ctx.get(dut.done.valid) and ctx.get(dut.image.ready)

    simulate(bench, testbench)
    return seen


def _passes(program) -> list[tuple[int, int, bool, bool, int]]:
    """Per pass, as the tags should say: (elements, neurons, feedback, final, first)."""
    out = []
    for op in program.ops:
        if op.kind != LAYER:
            continue
        passes = program.passes(op)
        for i, (elements, swept, feedback) in enumerate(passes):
            final = feedback or not op.fb_en
            tile = sum(1 for e, _, fb in passes[:i] if fb or not op.fb_en)
            out.append((elements, swept, feedback, final, tile * program.lanes))
    return out


@pytest.mark.parametrize(("name", "lanes", "shared"), [
    ("ffdl", 3, False), ("ffl", 2, False), ("ffcl-adjacent-T3", 3, False),
    ("ffcl-adjacent-T3", 3, True)])
def test_the_sequencer_walks_the_program(name, lanes, shared):
    program = build_program(_random_model(name, 4), lanes=lanes,
                            label_lanes=1 if shared else None, shared=shared)
    assert _no_held_passes(program)
    seen = _run(program)
    D = program.model.config.input_size
    # The image: every pixel written at its address, the scores cleared once.
    assert seen["writes"] == [(a, a + 1) for a in range(D)]
    assert seen["clears"] == 1
    # Every cycle counted, in the phases of the closed form.
    assert seen["cycles"] == seen["counted"] == program.cycles()
    assert seen["phases"] == program.phase_cycles()
    # Each pass: its elements, the first one flagged, and its tag.
    assert seen["tags"] == [p[:4] + (p[4],) for p in _passes(program)]
    # ``first`` on the first element of every pass, and only there.
    assert seen["elements"] == [int(i == 0) for p in _passes(program) for i in range(p[0])]
    assert seen["scan"] == sum(op.n_out * program.groups for op in program.ops
                               if op.kind == SCAN)


@pytest.mark.parametrize(("name", "lanes"), [("ffdl-3layers", 2), ("ffcl-adjacent-T3", 3),
                                             ("ffcl-top-T2", 3)])
def test_the_reciprocals_read_the_sums_of_squares_stored_for_the_op(name, lanes):
    # FINISH stores a layer's sum of squares in the op's bank; a layer's feed-forward
    # input is the previous layer in the same bank (none for the first), its feedback
    # source is in the other bank (the previous iteration).
    program = build_program(_random_model(name, 6), lanes=lanes)
    trace = _run(program)["trace"]
    stored, checked = {}, 0
    for cycle, (phase, kind, layer, bank, fb_src, fb_en, ff_sq, fb_sq, issued) in \
            enumerate(trace):
        if issued:
            assert ff_sq == (0 if layer == 0 else stored[(bank, layer - 1)])
            if fb_en:
                assert fb_sq == stored[(1 - bank, fb_src)]
            checked += 1
        finishing = kind == LAYER and phase == "normalisation" and \
            cycle + 1 < len(trace) and trace[cycle + 1][0] == "control"
        if finishing:
            stored[(bank, layer)] = 1000 + cycle
    assert checked and len(stored) > 1


@pytest.mark.parametrize(("name", "lanes"), [("ffdl-3layers", 2), ("ffcl-adjacent-T3", 3),
                                             ("ffl", 2)])
def test_with_stored_norms_the_sequencer_says_when_each_layer_finishes(name, lanes):
    # Sequencer(stored_norms=True), Core(stored_norms=True)'s: no stored sums of squares
    # (nor their ports), the same walk in the same cycles, and ``finish`` exactly in the
    # cycles the plain sequencer stores a layer's sum, with that op's bank and layer.
    program = build_program(_random_model(name, 6), lanes=lanes)
    plain, lean = _run(program), _run(program, stored_norms=True)
    for key in ("phases", "elements", "tags", "scan", "cycles", "counted"):
        assert lean[key] == plain[key], key
    stores = [(cycle, bank, layer) for cycle, (phase, kind, layer, bank, *_) in
              enumerate(plain["trace"])
              if kind == LAYER and phase == "normalisation" and cycle + 1 < len(plain["trace"])
              and plain["trace"][cycle + 1][0] == "control"]
    assert lean["finish"] == stores and len(stores) == sum(op.kind == LAYER
                                                           for op in program.ops)
    dut = Sequencer(program, stored_norms=True)
    assert not hasattr(dut, "ff_sq") and not hasattr(dut, "fb_sq")
    assert not hasattr(Sequencer(program), "finish")
    with pytest.raises(TypeError, match=r"^Stored norms must be True or False, not 1$"):
        Sequencer(program, stored_norms=1)


def test_a_pass_waits_for_the_sweep_to_be_free():
    program = build_program(_random_model("ffdl", 4), lanes=3)
    held = 5
    # Busy for the first cycles of the first pass's end: its last element waits.
    n_in = program.ops[0].ff_n_in
    seen = _run(program, free=lambda cycle: int(not (n_in - 1 <= cycle < n_in - 1 + held)))
    # FETCH and DECODE take cycles 0 and 1 of the counted ones: the pass ends 2 later.
    base = _run(program)
    assert seen["cycles"] == base["cycles"] + held - 2
    assert seen["phases"]["normalisation"] == base["phases"]["normalisation"] + held - 2
    assert seen["tags"] == base["tags"]
