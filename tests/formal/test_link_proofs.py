# amaranth: UnusedElaboratable=no
"""Formal proofs of the host link: its parts' stream contracts, the frame parser's crc
verdict, and the link's rules for memory writes and the bank switch.

The link-level proofs use :class:`sim.link_harness.LinkHarness`: free bytes in (any
sequence, under the stream contract the UART receiver keeps), free acceptance of the
reply bytes, a free core. Each harness is shown to fail on a copy of the source with the
bug it is for (:func:`sim.formal.module_variant`). A counterexample that needs a load
transaction opened first is two frames and a reply long (49 cycles, 35 s of solver time);
the default run's mutants start with the transaction open (``_OPEN``), one frame (16
cycles, 8 s), and the full-length ones are ``slow``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth import Cat, Const, Module, Signal
from amaranth.hdl import Assert
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from golden.quantize import quantize
from rtl.core import Core
from rtl.crc_tree import crc_tree
from rtl.frame_parser import FrameParser
from rtl.host_link import link_identity
from rtl.protocol import FRAME_CRC, LOAD_CHECKSUM
from rtl.uart import UartRx, UartTx
from sim.formal import combinational_fanout, internal_signal, module_variant, prove
from sim.link_harness import LinkHarness
from sim.properties import StreamContract, serial_crc
from tests.golden.variants import make_config, random_params


def _tiny_model():
    config = dataclasses.replace(make_config("ffdl", input_size=2, num_classes=2),
                                 hidden=(2,))
    return quantize(config, random_params(config, 1),
                    np.random.default_rng(0).uniform(0, 1, (16, 2)), input_max=16)


MODEL = _tiny_model()
#: k-induction depth of the link proofs (each closed at 8 when measured).
DEPTH = 8


@pytest.fixture
def work(tmp_path):
    return tmp_path / "formal"


def _passes(result) -> None:
    assert result.passed, f"{result.status}: see {result.log}"


def _fails(result) -> None:
    # FAIL is a counterexample from the initial state (bmc), not an induction failure.
    assert result.status == "FAIL", f"{result.status}: see {result.log}"


# -- the reference CRC the harnesses use ---------------------------------------------------

@pytest.mark.parametrize("parameters", [FRAME_CRC, LOAD_CHECKSUM], ids=["crc8", "crc32"])
def test_the_bit_serial_reference_crc_is_the_protocols(parameters):
    algorithm = parameters.algorithm
    data = b"123456789"
    m = Module()
    state = Const(algorithm.initial_crc, algorithm.crc_width)
    out = serial_crc(m, algorithm, state, Const(int.from_bytes(data, "little"), 72))
    sim = Simulator(m)

    async def testbench(ctx):
        assert ctx.get(out) == parameters.compute(data)
    sim.add_testbench(testbench)
    sim.run()


# -- the parts: stream contracts and the parser's crc verdict -----------------------------

def _parser_crc_is_the_frames(m: Module, parser: FrameParser, fragment) -> None:
    """``crc_ok`` of a held frame says whether its last byte is the CRC-8 of its cmd, its
    tag, its two length bytes and exactly ``length`` payload bytes, the ones passed on.

    The reference folds bytes with :func:`rtl.crc_tree.crc_tree`, proved equal to the
    bit-serial CRC on its own (``test_the_crc_trees_are_the_bit_serial_crc``): with the
    bit-serial one here the solver took minutes per step.
    """
    from rtl.frame_parser import _State
    state, crc_reg = internal_signal(fragment, "state"), internal_signal(fragment, "crc")
    # crc_in_payload: no last_count; the payload state takes the crc byte too.
    last_count = (None if parser.crc_in_payload
                  else internal_signal(fragment, "last_count"))
    frame, payload = parser.frame.payload, parser.payload
    byte = parser.rx.payload
    reference, count, last_byte = Signal(8), Signal(16), Signal(8)

    def folded(*values):
        # A signal per byte: nested XOR trees are expanded as trees.
        crc_value = Const(0, 8)
        for value in values:
            step = Signal(8)
            m.d.comb += step.eq(crc_tree(FRAME_CRC, crc_value, value))
            crc_value = step
        return crc_value
    with m.If(parser.rx.valid & parser.rx.ready):
        m.d.sync += last_byte.eq(byte)
    with m.If(parser.header):
        m.d.sync += [reference.eq(folded(frame.cmd, frame.tag, frame.length[:8], byte)),
                     count.eq(0)]
    with m.If(payload.valid):
        m.d.sync += [reference.eq(crc_tree(FRAME_CRC, reference, payload.payload.data)),
                     count.eq(count + 1)]
    with m.If(parser.frame.valid):
        m.d.comb += [Assert(frame.crc_ok == (last_byte == reference)),
                     Assert(count == frame.length)]
    # Invariants of each state (they make the induction close).
    with m.Switch(state):
        with m.Case(_State.CMD):
            m.d.comb += Assert(crc_reg == 0)
        with m.Case(_State.TAG):
            m.d.comb += Assert(crc_reg == folded(frame.cmd))
        with m.Case(_State.LEN_LO):
            m.d.comb += Assert(crc_reg == folded(frame.cmd, frame.tag))
        with m.Case(_State.LEN_HI):
            m.d.comb += Assert(crc_reg == folded(frame.cmd, frame.tag, frame.length[:8]))
        with m.Case(_State.PAYLOAD):
            m.d.comb += [Assert(crc_reg == reference), Assert(payload.payload.index == count)]
            if last_count is None:
                m.d.comb += Assert(count <= frame.length)
            else:
                m.d.comb += [Assert(last_count == frame.length - 1),
                             Assert(count < frame.length)]
        with m.Case(_State.CRC):
            m.d.comb += [Assert(crc_reg == reference), Assert(count == frame.length)]


class _CrcTrees(wiring.Component):
    """Any state and byte into both CRC implementations."""

    def __init__(self, parameters) -> None:
        self.parameters = parameters
        super().__init__({"state": In(parameters.algorithm.crc_width), "byte": In(8)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += Assert(crc_tree(self.parameters, self.state, self.byte)
                           == serial_crc(m, self.parameters.algorithm, self.state, self.byte))
        return m


@pytest.mark.parametrize("parameters", [
    FRAME_CRC,
    # The load checksum's: 40 free bits, about 30 s of solver time.
    pytest.param(LOAD_CHECKSUM, marks=pytest.mark.slow)], ids=["crc8", "crc32"])
def test_the_crc_trees_are_the_bit_serial_crc(parameters, work):
    _passes(prove(_CrcTrees(parameters), name=f"crc_tree_{parameters.algorithm.crc_width}",
                  depth=1, folder=work))


def _parser(source="rtl.frame_parser", replace=None, crc_in_payload: bool = False):
    return module_variant(source, replace).FrameParser(timeout_cycles=8,
                                                       crc_in_payload=crc_in_payload)


@pytest.mark.parametrize("crc_in_payload", [
    # About 40 s of solver time: the lean form opt-in (tests/rtl/test_frame_parser.py
    # runs both forms' frames in the default run).
    False, pytest.param(True, marks=pytest.mark.slow)], ids=["crc", "payload"])
def test_the_frame_parser_keeps_its_contract_and_its_crc_verdict_is_the_frames(
        work, crc_in_payload):
    # crc_in_payload: the lean link's parser, the crc byte taken in the payload state.
    harness = StreamContract(_parser(crc_in_payload=crc_in_payload), inputs=["rx"],
                             outputs=["frame"], extra=_parser_crc_is_the_frames)
    _passes(prove(harness, name="parser", depth=DEPTH, mode="prove", folder=work))
    assert combinational_fanout(_parser(crc_in_payload=crc_in_payload),
                                source="frame__ready", sinks=["frame__valid"],
                                folder=work) == []


PARSER_BUGS = {
    # The frame let go after a cycle whether the link has answered it or not.
    "valid-dropped": {"                with m.If(self.frame.ready):\n":
                      "                with m.If(1):\n"},
    # Every frame's crc taken as good.
    # (The CRC state's comparison: the harness's parser takes the crc byte there.)
    "crc-ignored": {"command's decision tree in one cycle were the iCE40 build's slowest\n"
                    "                    # path (the next byte is a UART frame away).\n"
                    "                    m.d.sync += [self.frame.payload.crc_ok.eq(byte == crc),":
                    "command's decision tree in one cycle were the iCE40 build's slowest\n"
                    "                    # path (the next byte is a UART frame away).\n"
                    "                    m.d.sync += [self.frame.payload.crc_ok.eq(1),"},
    # The crc byte compared with the crc before the last payload byte was folded in.
    "crc-short": {"m.d.sync += [count.eq(count + 1), crc.eq(crc_next)]\n"
                  "                        with m.If(count == last_count):":
                  "m.d.sync += count.eq(count + 1)\n"
                  "                        with m.If(count == last_count):"},
}


@pytest.mark.parametrize("bug", [
    # About 10 s of solver time each: one in the default run.
    "crc-ignored", *(pytest.param(bug, marks=pytest.mark.slow)
                     for bug in PARSER_BUGS if bug != "crc-ignored")])
def test_the_parser_harness_catches(bug, work):
    harness = StreamContract(_parser(replace=PARSER_BUGS[bug]), inputs=["rx"],
                             outputs=["frame"], extra=_parser_crc_is_the_frames)
    # The shortest counterexamples: a frame of 6 or 7 bytes, then a cycle held.
    _fails(prove(harness, name=f"parser_{bug}", depth=10, folder=work))


def _serialiser(replace=None):
    core = Core(MODEL, lanes=2, weights="loadable")
    module = module_variant("rtl.reply_serialiser", replace)
    return module.ReplySerialiser(identity=link_identity(MODEL, lanes=2, loadable=True),
                                  result_layout=core.result.payload.shape())


def test_the_reply_serialiser_keeps_its_contract(work):
    harness = StreamContract(_serialiser(), inputs=["request", "result"], outputs=["tx"])
    _passes(prove(harness, name="serialiser", depth=DEPTH, mode="prove", folder=work))
    assert combinational_fanout(_serialiser(), source="tx__ready", sinks=["tx__valid"],
                                folder=work) == []


def test_the_serialiser_harness_catches_a_byte_dropped_while_not_taken(work):
    bug = {"            with m.If(self.tx.ready):\n                m.d.sync += out_full.eq(0)":
           "            with m.If(1):\n                m.d.sync += out_full.eq(0)"}
    harness = StreamContract(_serialiser(bug), inputs=["request", "result"], outputs=["tx"])
    _fails(prove(harness, name="serialiser_bug", depth=12, folder=work))


def test_the_uart_receiver_keeps_its_contract_for_ever(work):
    # k-induction: every reachable state, not only the first frames.
    _passes(prove(StreamContract(UartRx(divisor=4), outputs=["data"]), name="uart_rx_k",
                  depth=DEPTH, mode="prove", folder=work))


def test_the_uart_receiver_harness_catches_an_overrun_replacing_the_byte(work):
    # The bug the first UART proof found: a byte completed while the previous one is
    # still offered replaced it.
    bug = {"with m.If(line & (~valid | self.data.ready)):": "with m.If(line):"}
    rx = module_variant("rtl.uart", bug).UartRx(divisor=4)
    _fails(prove(StreamContract(rx, outputs=["data"]), name="uart_rx_bug", depth=100,
                 folder=work))


def _frames_what_it_takes(m: Module, tx, fragment) -> None:
    """A byte taken goes out framed: start bit, its 8 bits least significant first, stop
    bit, each for ``divisor`` cycles."""
    divisor = tx.divisor
    byte = Signal(8)
    age = Signal(range(10 * divisor + 2))
    with m.If(tx.data.valid & tx.data.ready):
        m.d.sync += [byte.eq(tx.data.payload), age.eq(1)]
    with m.Elif((age != 0) & (age <= 10 * divisor)):
        m.d.sync += age.eq(age + 1)
    line = Cat(Const(0, 1), byte, Const(1, 1))
    for bit in range(10):
        with m.If((age > bit * divisor) & (age <= (bit + 1) * divisor)):
            m.d.comb += Assert(tx.tx == line[bit])
    # Nothing is taken before the stop bit has been sent.
    with m.If((age != 0) & (age <= 10 * divisor)):
        m.d.comb += Assert(~tx.data.ready)


def test_the_uart_transmitter_sends_the_byte_it_takes(work):
    harness = StreamContract(UartTx(divisor=4), inputs=["data"],
                             extra=_frames_what_it_takes)
    _passes(prove(harness, name="uart_tx", depth=48, mode="prove", folder=work))


def test_the_transmitter_harness_catches_a_byte_taken_mid_frame(work):
    bug = {"self.data.ready.eq(idle)": "self.data.ready.eq(1)"}
    harness = StreamContract(module_variant("rtl.uart", bug).UartTx(divisor=4),
                             inputs=["data"], extra=_frames_what_it_takes)
    _fails(prove(harness, name="uart_tx_bug", depth=12, folder=work))


# -- the link: writes, bounds, the bank, its streams --------------------------------------

LINKS = {
    "one-bank": dict(banks=1),
    "two-banks": dict(banks=2),
    "spram": dict(banks=1, weights="spram"),
}


def _link(check, *, mutate=None, **spec):
    spec = {"lanes": 2, **spec}
    return LinkHarness(MODEL, check=check, mutate=mutate, **spec)


@pytest.mark.parametrize("name", list(LINKS))
@pytest.mark.parametrize("check", ["writes", "bounds", "streams"])
def test_the_link_writes_only_good_load_frames_in_bounds_and_keeps_its_streams(check, name,
                                                                              work):
    _passes(prove(_link(check, **LINKS[name]), name=f"link_{check}_{name}", depth=DEPTH,
                  mode="prove", folder=work))


def test_the_bank_switches_exactly_on_a_good_commit(work):
    _passes(prove(_link("bank", banks=2), name="link_bank", depth=DEPTH, mode="prove",
                  folder=work))


def test_no_valid_of_the_link_depends_on_its_ready(work):
    found = combinational_fanout(_link("streams"), source="load_ready",
                                 sinks=["probe"], folder=work)
    found += combinational_fanout(_link("streams"), source="image_ready",
                                  sinks=["probe"], folder=work)
    found += combinational_fanout(_link("streams"), source="tx__ready",
                                  sinks=["tx__valid"], folder=work)
    assert found == []


#: A transaction open from the start (as after a good LOAD_BEGIN), its announced checksum
#: not the empty one: a counterexample is then one frame long.
_OPEN = {"loading = Signal()  ": "loading = Signal(init=1)  ",
         "announced = Signal(32)  ": "announced = Signal(32, init=1)  "}

LINK_BUGS = {
    # The link acts on a frame whatever its crc verdict.
    "write-without-crc": ("writes", 1, {
        "rtl.host_link": {"with m.If(~frame.crc_ok):": "with m.If(0):"},
        "rtl.load_transaction": _OPEN}),
    # A commit whose checksum does not match switches banks anyway.
    "bank-on-bad-commit": ("bank", 2, {"rtl.load_transaction": {
        **_OPEN,
        "                with m.If(self.decide):\n"
        "                    m.d.sync += loading.eq(0)\n":
        "                with m.If(self.decide):\n"
        "                    m.d.sync += [loading.eq(0), bank.eq(~bank)]\n"}}),
    # The bound before each memory had its own: below the deepest memory's word count
    # (an ops address of 8 of 5 was written to op 0).
    "deepest-memory-bound": ("bounds", 1, {"rtl.load_transaction": {
        **_OPEN,
        "            return Cat(*((target == code) & (address < depth)\n"
        "                         for code, depth in depths.items())).any()":
        "            return address < max(depths.values())"}}),
    # The address's low byte compared alone: 256 + 1 would be written at 1.
    "low-address-byte-only": ("bounds", 1, {"rtl.load_transaction": {
        **_OPEN,
        "(target == code) & (address < depth)": "(target == code) & (address[:8] < depth)"}}),
    # The image stream advances whether the core takes the pixel or not.
    "image-moves-while-held": ("streams", 1, {"rtl.host_link": {
        "                with m.If(pixels_in.ready):\n"
        "                    m.d.sync += pixel.eq(pixel + 1)":
        "                with m.If(1):\n"
        "                    m.d.sync += pixel.eq(pixel + 1)"}}),
    # The write is withdrawn after a cycle whether the core took it or not.
    "load-valid-dropped": ("streams", 1, {
        "rtl.host_link": {"                    with m.If(core.load.ready):\n":
                          "                    with m.If(1):\n"},
        "rtl.load_transaction": _OPEN}),
}


#: A second seeded bug of a check already caught by default: opt-in (``-m slow``). The
#: product bugs they seed stay caught by default by that check's proofs
#: (test_the_link_writes_only_good_load_frames_in_bounds_and_keeps_its_streams).
SECOND_LINK_BUGS = ("low-address-byte-only", "load-valid-dropped")


@pytest.mark.parametrize("bug", [
    bug if bug not in SECOND_LINK_BUGS
    # covered by default: [deepest-memory-bound] / [image-moves-while-held] (same check)
    else pytest.param(bug, marks=pytest.mark.slow) for bug in LINK_BUGS])
def test_the_link_harness_catches(bug, work):
    check, banks, mutate = LINK_BUGS[bug]
    _fails(prove(_link(check, banks=banks, mutate=mutate), name=f"link_{bug}", depth=20,
                 folder=work))


@pytest.mark.slow
@pytest.mark.parametrize("bug", ["write-without-crc", "bank-on-bad-commit"])
def test_the_link_harness_catches_from_power_up(bug, work):
    # The same bugs with no shortcut: LOAD_BEGIN, its reply, then the bad frame.
    check, banks, mutate = LINK_BUGS[bug]
    mutate = {name: {old: new for old, new in edits.items() if old not in _OPEN}
              for name, edits in mutate.items()}
    _fails(prove(_link(check, banks=banks, mutate=mutate), name=f"link_{bug}_full",
                 depth=60, folder=work))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="Check must be one of writes, bounds, bank, "
                                         "streams, not 'crc'"):
        _link("crc")
    with pytest.raises(ValueError, match="The bank check needs a core with two banks"):
        _link("bank", banks=1)
    with pytest.raises(ValueError, match="holds 'no such text' 0 times, not once"):
        module_variant("rtl.uart", {"no such text": ""})
    with pytest.raises(LookupError, match="0 signals named 'nothing' in the top, not one"):
        from amaranth import Fragment
        internal_signal(Fragment.get(UartRx(divisor=4), None), "nothing")
