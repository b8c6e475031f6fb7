# amaranth: UnusedElaboratable=no
"""The host link's fault table (sim/link_faults.py) against the gateware in Amaranth's
simulator.

Each row runs on a fresh ``HostLink(Core(A, weights="loadable", banks=...))``: the
testbench drives ``rx`` bit by bit at the row's skew (in simulated time, not whole clock
cycles), with a stop bit low where the row puts a framing error, and decodes ``tx`` with
its own receiver at the row's host skew. The same rows run against the board double
(tests/flows/test_link_faults.py) and under cocotb. The divisor is 8, not the 4 of the
other link tests: at 4 one clock cycle is a quarter of a bit, and a receiver that finds
the start edge up to a cycle late cannot take a sender 3 % fast (measured: it fails at
-3 %, passes at -2 %); 8 is the smallest that passes +-3 % at every phase.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

import pytest
from amaranth.sim import Simulator

from ffcl_hw.device import Device, FrameReader, HostLinkTimeout
from golden.intmodel import IntModel
from rtl.core import Core, load_words
from rtl.host_link import HostLink
from sim.link_faults import FAULTS, LinkCase, check_replies, fault_table, late_reply
from tests.golden.variants import reweighted
from tests.rtl.helpers import PERIOD
from tests.rtl.test_core import _random_model
from tests.rtl.test_host_link import SimulatedBoard, images_for

DIVISOR = 8
TIMEOUT_BITS = 24
LANES = 8


@functools.cache
def models() -> tuple[IntModel, IntModel]:
    """A, and B: A with other biases (a load of B is a few writes)."""
    model_a = _random_model("ffdl", 21)
    other = reweighted(model_a, 22)
    model_b = dataclasses.replace(model_a, layers=[
        dataclasses.replace(layer, b=new.b) for layer, new in zip(model_a.layers, other.layers,
                                                                   strict=True)])
    return model_a, model_b


@functools.cache
def link_case(banked: bool) -> tuple[LinkCase, dict]:
    """The rows' device and the golden (label, scores, cycles) of A and B per image."""
    model_a, model_b = models()
    core = Core(model_a, lanes=LANES, weights="loadable", banks=2 if banked else 1)
    link = HostLink(core, divisor=DIVISOR, timeout_bits=TIMEOUT_BITS)
    images = images_for(model_a, 2, 23)
    golden = {}
    for name, model in (("a", model_a), ("b", model_b)):
        run = model.run(images)
        golden[name] = [(int(run.labels[i]), [int(s) for s in run.scores[i]],
                         core.cycles_per_inference()) for i in range(len(images))]
    assert golden["a"][0][:2] != golden["a"][1][:2], "choose images that differ"
    built_in = load_words(core.program)
    to_b = [w for w in core.load_words_for(model_b) if w not in set(built_in)]
    case = LinkCase(identity=link.identity, images=[bytes(int(p) for p in im) for im in images],
                    to_b=to_b, built_in=built_in, banked=banked, timeout_bits=TIMEOUT_BITS)
    return case, golden


def _link(banked: bool) -> HostLink:
    model_a, _ = models()
    return HostLink(Core(model_a, lanes=LANES, weights="loadable", banks=2 if banked else 1),
                    divisor=DIVISOR, timeout_bits=TIMEOUT_BITS)


async def send(ctx, line, data: bytes, *, skew: float, framing_error_at: int | None) -> None:
    """8N1 bytes on ``line``, each bit ``1 + skew`` bit times long."""
    bit = DIVISOR * PERIOD * (1 + skew)
    for i, byte in enumerate(data):
        bad = i == framing_error_at
        for level in [0, *((byte >> k) & 1 for k in range(8)), int(not bad)]:
            ctx.set(line, level)
            await ctx.delay(bit)
        if bad:
            # Two idle bits after the low stop bit: the receiver finds the next start.
            ctx.set(line, 1)
            await ctx.delay(2 * bit)


async def receive(ctx, line, *, skew: float) -> int:
    """A byte from ``line``, sampled in the middle of each of its bits as a receiver
    whose bit time is ``1 + skew`` of the link's finds them."""
    await ctx.negedge(line)
    bit = DIVISOR * PERIOD * (1 + skew)
    await ctx.delay(bit / 2)
    assert ctx.get(line) == 0, "start bit too short"
    value = 0
    for k in range(8):
        await ctx.delay(bit)
        value |= ctx.get(line) << k
    await ctx.delay(bit)
    assert ctx.get(line) == 1, "framing error on tx"
    return value


def play(banked: bool, fault) -> None:
    case, golden = link_case(banked)
    link = _link(banked)
    reader, received, per_step = FrameReader(), [], []
    sim = Simulator(link)
    sim.add_clock(PERIOD)

    async def monitor(ctx) -> None:
        while True:
            received.extend(reader.frames(bytes([await receive(ctx, link.tx,
                                                               skew=fault.host_skew)])))

    async def driver(ctx) -> None:
        ctx.set(link.rx, 1)
        for send_, expected in fault.steps:
            await ctx.delay(send_.gap_bits * DIVISOR * PERIOD)
            before = len(received)
            await send(ctx, link.rx, send_.data, skew=send_.skew,
                       framing_error_at=send_.framing_error_at)
            # A reply of up to 64 bytes and an inference. The line stays quiet only for
            # the next step's gap (a fragment must still be there for it): a reply that
            # should not have come shows in the next step's replies, or in the last's,
            # read after 30 more bit times.
            for _ in range(64 + 4000 // (10 * DIVISOR)):
                if len(received) >= before + len(expected):
                    break
                await ctx.tick().repeat(10 * DIVISOR)
            per_step.append(before)
        await ctx.tick().repeat(30 * DIVISOR)

    sim.add_testbench(monitor, background=True)
    sim.add_testbench(driver)
    sim.run()
    bounds = [*per_step, len(received)]
    steps = [received[bounds[i]:bounds[i + 1]] for i in range(len(per_step))]
    for i, ((_, expected), frames) in enumerate(zip(fault.steps, steps, strict=True)):
        check_replies(f"{fault.name}, step {i}", expected, frames, identity=case.identity,
                      golden=golden)
    assert reader.skipped == 0, "noise on tx"


#: The default run: in this simulator, the sender 3 % fast (the row the divisor is chosen
#: for) and a framing error inside a frame with two banks, and the interrupted load with
#: one (two banks: cocotb). The other rows with two banks, the 2 % senders (the 3 % ones
#: cover them), plain noise, the host reading a skewed transmitter and the rest with one
#: bank are opt-in (``pytest -m slow``): cocotb (two banks,
#: tests/sim/test_hostlink_cocotb.py::test_the_host_library_drives_the_host_link_verilog[2])
#: and the double (tests/flows/test_link_faults.py) run every row by default.
DEFAULT = {("sender 3 % fast", 2), ("framing error inside a frame", 2),
           ("load interrupted halfway", 1)}


@pytest.mark.parametrize(("name", "banks"), [
    pytest.param(name, banks, marks=() if (name, banks) in DEFAULT else pytest.mark.slow)
    for banks in (2, 1) for name in FAULTS])
def test_the_gateware_answers_every_fault_as_the_table_says(name, banks):
    case, _ = link_case(banks == 2)
    play(banks == 2, next(f for f in fault_table(case) if f.name == name))


def test_a_late_reply_from_the_gateware_is_never_taken_for_the_next():
    case, golden = link_case(False)
    model_a, _ = models()
    board = SimulatedBoard(HostLink(Core(model_a, lanes=LANES), divisor=4,
                                    timeout_bits=TIMEOUT_BITS))

    @contextlib.contextmanager
    def short_reads():
        board.budget_cycles = 200
        yield
        board.budget_cycles = 3000         # an inference and its reply, with room

    # Divisor 4: SimulatedBoard's own.
    late_reply(Device(board), case.images, [golden["a"][i][:2] for i in range(2)],
               short_reads=short_reads, timeout_error=HostLinkTimeout)
