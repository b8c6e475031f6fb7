"""cocotb: a host library end to end against the host link's exported Verilog.

The design is ``HostLink(Core(model A, weights="loadable"))`` exported as the top (its
``rx``/``tx`` pins and the clock and reset of its ``sync`` domain; the board top adds only
the PLL, which Verilator cannot simulate, a reset-until-lock and one more synchroniser).
A UART source (:mod:`sim.uart`) puts bytes on ``rx`` and a sink reads ``tx`` back, both at
the link's bit time; :class:`~sim.uart.SimulatedSerial` gives them pyserial's
``write``/``read``, so that the host library's unchanged, blocking ``Device`` runs in a
thread started by :func:`cocotb.task.bridge` and each port call comes back into the
simulation through :func:`cocotb.task.resume`. Every RESULT is checked against
``IntModel.run`` of the model the device holds at that moment, field by field, and the
cycle count against the closed form.

Set by tests/sim/test_hostlink_cocotb.py through :mod:`sim.runner`:

- FFCL_HOST_LIBRARY: the module of the host library under test (``ffcl_hw.device``): its
  ``Device``, ``HostLinkError``, ``FrameReader``, ``encode_frame`` and ``crc8``. The
  runner names it, so that sim/ does not import the floor above it.
- FFCL_MODEL (model A, in the hardware), FFCL_CORE (lanes), FFCL_IMAGES, FFCL_SAMPLES
- FFCL_LINK: JSON ``{"divisor": ..., "timeout_bits": ..., "banks": ...}`` of the HostLink
  and the core's model memories (with 2 banks a failed load keeps the model in use)
- FFCL_LOAD_MODEL: model B (A's configuration, other weights) to load over the link
- FFCL_OTHER_MODEL: model C, another configuration, whose load must be refused
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles

from golden.intmodel import IntModel
from golden.intmodelio import load_int_model
from rtl.core import LOAD_TARGETS, load_words
from rtl.host_link import LinkIdentity, link_identity, load_checksum, load_payload
from rtl.program import build_program
from rtl.protocol import Command, ErrorCode, Reply
from sim.link_faults import FAULTS, LinkCase, check_replies, fault_table, late_reply
from sim.uart import SimulatedSerial, UartSink, UartSource

CLOCK_NS = 10

_host = importlib.import_module(os.environ["FFCL_HOST_LIBRARY"])
Device, FrameReader, HostLinkError = _host.Device, _host.FrameReader, _host.HostLinkError
HostLinkTimeout = _host.HostLinkTimeout
crc8, encode_frame = _host.crc8, _host.encode_frame


class LinkBench:
    """Clock, reset, the UART source and sink, the port and a ``Device`` on it."""

    def __init__(self, dut) -> None:
        self.dut = dut
        self.log = dut._log
        with open(os.environ["FFCL_CORE"]) as stream:
            core = json.load(stream)
        self.link = json.loads(os.environ["FFCL_LINK"])
        self.lanes, self.label_lanes = core["lanes"], core["label_lanes"]
        self.model_a = load_int_model(os.environ["FFCL_MODEL"]).model
        self.model_b = load_int_model(os.environ["FFCL_LOAD_MODEL"]).model
        self.model_c = load_int_model(os.environ["FFCL_OTHER_MODEL"]).model
        samples = int(os.environ["FFCL_SAMPLES"])
        self.images = np.load(os.environ["FFCL_IMAGES"])[:samples]
        self.program = build_program(self.model_a, lanes=self.lanes,
                                     label_lanes=self.label_lanes)

    async def start(self) -> LinkBench:
        divisor = self.link["divisor"]
        self.dut.rx.value = 1
        cocotb.start_soon(Clock(self.dut.clk, CLOCK_NS, unit="ns").start())
        await self.reset()
        # Started after the reset, so that tx's first rise is not read as a byte.
        self.source = source = UartSource(self.dut.rx, self.dut.clk, divisor=divisor,
                                          period_ns=CLOCK_NS)
        self.sink = sink = UartSink(self.dut.tx, self.dut.clk, divisor=divisor,
                                    period_ns=CLOCK_NS)
        # A read waits for an inference and a reply of up to 64 bytes.
        self.port = SimulatedSerial(source, sink,
                                    timeout_cycles=self.program.cycles() + 64 * 10 * divisor)
        self.device = Device(self.port)
        return self

    async def send(self, send) -> None:
        """Queue a fault-table step's bytes (sim.link_faults.Send) on the line."""
        self.source.write_nowait(send.data, skew=send.skew,
                                 framing_error_at=send.framing_error_at)

    async def reset(self) -> None:
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    # -- blocking helpers, for the bridge thread --------------------------------------
    def classify_and_check(self, model: IntModel, images: np.ndarray) -> None:
        """Classify ``images`` through Device; label, every score and cycles must match."""
        golden = model.run(images)
        for i, image in enumerate(images):
            label, scores, cycles = self.device.classify(image)
            want = (int(golden.labels[i]), [int(s) for s in golden.scores[i]])
            assert (label, scores) == want, \
                f"image {i}: device ({label}, {scores}), golden {want}"
            assert cycles == self.program.cycles(), \
                f"image {i}: {cycles} cycles, closed form {self.program.cycles()}"

    def raw_exchange(self, data: bytes, *, replies: int = 1) -> list[tuple[int, bytes]]:
        """Send raw bytes and read ``replies`` (cmd, payload) frames (fewer if the port
        times out); every reply must carry tag 0, the raw frames' tag."""
        self.port.write(data)
        reader, frames = FrameReader(), []
        while len(frames) < replies:
            byte = self.port.read(1)
            if not byte:
                break
            frames += reader.frames(byte)
        assert all(frame.tag == 0 for frame in frames), frames
        return [(frame.cmd, frame.payload) for frame in frames]

    def load(self, model: IntModel) -> None:
        _BANKS_WRITTEN.append(True)
        self.device.load_model(model)

    def images_differ(self, first: IntModel, second: IntModel) -> None:
        # A scenario that says "the weights are still B" means something only if A and B
        # disagree on its images.
        assert (first.run(self.images).scores != second.run(self.images).scores).any(), \
            "the two models agree on every image; choose other seeds"


@cocotb.test()
async def identify(dut) -> None:
    tb = await LinkBench(dut).start()

    def scenario() -> None:
        expected = link_identity(tb.model_a, lanes=tb.lanes, label_lanes=tb.label_lanes,
                                 loadable=True)
        identity = tb.device.identify()
        assert identity == expected, f"{identity} != {expected}"
        assert tb.device.check(tb.model_a, lanes=tb.lanes, label_lanes=tb.label_lanes)
        try:
            tb.device.check(tb.model_a, lanes=tb.lanes + 1, label_lanes=tb.label_lanes)
        except HostLinkError as error:
            assert "lanes" in str(error), error
        else:
            raise AssertionError("check() accepted a wrong lane count")

    await bridge(scenario)()


# -- the fault table (sim/link_faults.py), one cocotb test per row ---------------------
# Defined before the tests that load other models, so that the rows find A built into
# both banks, as they expect, without a load of their own (cocotb runs tests in order).

def _fault_case(tb: LinkBench) -> tuple[LinkCase, dict]:
    """The rows' device: model A built in, B = the bench's load model (its writes that
    differ from A's), the first two images; the golden records of A and B."""
    identity = link_identity(tb.model_a, lanes=tb.lanes, label_lanes=tb.label_lanes,
                             loadable=True)
    built_in = load_words(tb.program)
    program_b = build_program(tb.model_b, lanes=tb.lanes, label_lanes=tb.label_lanes)
    to_b = [w for w in load_words(program_b) if w not in set(built_in)]
    images = tb.images[:2]
    golden = {}
    for name, model in (("a", tb.model_a), ("b", tb.model_b)):
        run = model.run(images)
        golden[name] = [(int(run.labels[i]), [int(v) for v in run.scores[i]],
                         tb.program.cycles()) for i in range(len(images))]
    case = LinkCase(identity=identity, images=[bytes(int(p) for p in im) for im in images],
                    to_b=to_b, built_in=built_in, banked=tb.link["banks"] == 2,
                    timeout_bits=tb.link["timeout_bits"])
    return case, golden


#: Weights checksums IDENT reported after a row whose end classified with A: a commit of
#: A's own words (the depth row) leaves A in use under another checksum.
_A_AFTER: set[int] = set()
#: Something may have written a bank since configuration (a load, or the interrupted
#: one): the bank not in use may not hold A.
_BANKS_WRITTEN: list[bool] = []


def _hold_a(tb: LinkBench, *, every_bank: bool) -> None:
    """Put A in use (earlier tests load other models, and a reset keeps the memories);
    with ``every_bank``, in the bank not in use too (a row that commits switches to it).
    Each load costs about 200 000 cycles, so only when IDENT says it is needed."""
    checksum = link_identity(tb.model_a, lanes=tb.lanes, label_lanes=tb.label_lanes,
                             loadable=True).weights_checksum
    identity = tb.device.identify()
    if not identity.model_loaded or identity.weights_checksum not in {checksum, *_A_AFTER}:
        tb.load(tb.model_a)
    if every_bank and tb.link["banks"] == 2 and _BANKS_WRITTEN:
        tb.load(tb.model_a)


def _play(tb: LinkBench, fault) -> None:
    case, golden = _fault_case(tb)
    tb.port.idle(tb.link["timeout_bits"] + 2)
    tb.sink.skew = fault.host_skew
    reader, steps = FrameReader(), []
    for send, expected in fault.steps:
        tb.port.idle(send.gap_bits)
        resume(tb.send)(send)
        # The replies the step expects (the line stays quiet only for the next step's
        # gap: a fragment must still be there for it); a reply that should not have come
        # shows in a later step's, or after the last.
        frames = []
        while len(frames) < len(expected):
            byte = tb.port.read(1)
            if not byte:
                break
            frames += reader.frames(byte)
        steps.append(frames)
    while byte := tb.port.read(1):
        steps[-1] += reader.frames(byte)
    tb.sink.skew = 0.0
    for i, ((_, expected), frames) in enumerate(zip(fault.steps, steps, strict=True)):
        check_replies(f"{fault.name}, step {i}", expected, frames,
                      identity=case.identity, golden=golden)
    if fault.steps[-1][1][0].result == "a":
        _A_AFTER.add(LinkIdentity.from_bytes(steps[-2][0][2]).weights_checksum)


@cocotb.test()
@cocotb.parametrize(name=FAULTS)
async def fault(dut, name: str) -> None:
    tb = await LinkBench(dut).start()

    def scenario() -> None:
        # The one row that commits a load switches banks (two banks): A in both first.
        _hold_a(tb, every_bank=name == "LOAD at depth - 1 and at depth")
        if name == "load interrupted halfway":
            _BANKS_WRITTEN.append(True)
        case, _ = _fault_case(tb)
        _play(tb, next(f for f in fault_table(case) if f.name == name))

    await bridge(scenario)()


@cocotb.test()
async def late_reply_is_never_taken_for_the_next(dut) -> None:
    tb = await LinkBench(dut).start()

    def scenario() -> None:
        _hold_a(tb, every_bank=False)
        case, golden = _fault_case(tb)
        normal = tb.port.timeout_cycles

        @contextlib.contextmanager
        def short_reads():
            tb.port.timeout_cycles = 4 * tb.link["divisor"]
            yield
            tb.port.timeout_cycles = normal

        late_reply(Device(tb.port), case.images, [g[:2] for g in golden["a"]],
                   short_reads=short_reads, timeout_error=HostLinkTimeout)

    await bridge(scenario)()


@cocotb.test()
async def images_bit_exact(dut) -> None:
    tb = await LinkBench(dut).start()
    # Whatever an earlier test loaded, start from the elaborated model A.
    await bridge(lambda: (tb.load(tb.model_a), tb.classify_and_check(tb.model_a, tb.images)))()


@cocotb.test()
async def load_another_model_at_run_time(dut) -> None:
    tb = await LinkBench(dut).start()

    def scenario() -> None:
        tb.images_differ(tb.model_a, tb.model_b)
        tb.load(tb.model_a)
        tb.classify_and_check(tb.model_a, tb.images[:1])
        tb.load(tb.model_b)
        tb.classify_and_check(tb.model_b, tb.images)

    await bridge(scenario)()


def _corrupt_crc(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0x01])


def _raw(cmd: int, length: int, payload: bytes) -> bytes:
    """A frame whose length field disagrees with its payload, with a good crc."""
    body = bytes([cmd, 0]) + length.to_bytes(2, "little") + payload
    return bytes([0xA5]) + body + bytes([crc8(body)])


@cocotb.test()
async def bad_frames_are_refused_and_the_weights_stay(dut) -> None:
    tb = await LinkBench(dut).start()
    timeout_bits = tb.link["timeout_bits"]

    def scenario() -> None:
        tb.images_differ(tb.model_a, tb.model_b)
        # Load B first: afterwards every answer must still be B's, not the elaborated A's.
        tb.load(tb.model_b)
        image = bytes(int(p) for p in tb.images[0])
        D = len(image)
        n = tb.device.identity.load_data_bytes
        weight_write = bytes([LOAD_TARGETS["weights"], 0, 0]) + bytes([0x55] * n)
        cases = {
            "bad crc": (_corrupt_crc(encode_frame(Command.IMAGE, image)), ErrorCode.CRC),
            "bad crc on a load": (_corrupt_crc(encode_frame(Command.LOAD, weight_write)),
                                  ErrorCode.CRC),
            "image too short": (encode_frame(Command.IMAGE, image[:-1]), ErrorCode.LENGTH),
            # The length field one short: the last pixel is read as the crc byte.
            "length field one short": (_raw(Command.IMAGE, D - 1, image[:-1])[:-1] + image[-1:],
                                       ErrorCode.CRC),
            "load too long": (encode_frame(Command.LOAD, weight_write + b"\x00"), ErrorCode.LENGTH),
        }
        for name, (frame, code) in cases.items():
            replies = tb.raw_exchange(frame)
            assert replies == [(Reply.ERROR, bytes([code]))], f"{name}: {replies}"
            tb.classify_and_check(tb.model_b, tb.images[:1])
        # A truncated frame gets no reply; after the idle timeout the next frame works.
        for cut in (1, 4, 7):
            assert tb.raw_exchange(encode_frame(Command.IMAGE, image)[:cut], replies=0) == []
            tb.port.idle(timeout_bits + 2)
            tb.classify_and_check(tb.model_b, tb.images[:1])
        # Weights of another configuration are refused before anything is written.
        try:
            tb.load(tb.model_c)
        except HostLinkError as error:
            assert f"error {ErrorCode.MODEL}" in str(error), error
        else:
            raise AssertionError("the device accepted a model of another configuration")
        tb.classify_and_check(tb.model_b, tb.images)

    await bridge(scenario)()


@cocotb.test()
async def a_failed_load_is_void(dut) -> None:
    tb = await LinkBench(dut).start()
    banked = tb.link["banks"] == 2

    def scenario() -> None:
        tb.images_differ(tb.model_a, tb.model_b)
        tb.load(tb.model_b)
        before = tb.device.identify()
        assert before.model_loaded
        # A transaction that loses one write: the commit fails on the whole-model checksum.
        identity = tb.device.identity
        program = build_program(tb.model_a, lanes=tb.lanes, label_lanes=tb.label_lanes)
        writes = load_words(program)
        n = identity.load_data_bytes
        begin = identity.model_hash.to_bytes(4, "little") + \
            load_checksum(writes, n).to_bytes(4, "little")
        assert tb.raw_exchange(encode_frame(Command.LOAD_BEGIN, begin)) == [(Reply.LOAD_BEGIN, b"")]
        for write in writes[:-1]:
            assert tb.raw_exchange(encode_frame(Command.LOAD, load_payload(*write, n))) == \
                [(Reply.LOAD, b"")]
        assert tb.raw_exchange(encode_frame(Command.LOAD_COMMIT)) == \
            [(Reply.ERROR, bytes([ErrorCode.CHECKSUM]))]
        # One bank: it holds a mix of A and B now, and no image may be classified with
        # it, not even after a reset (the flag lives, like the memories, through resets).
        # Two banks: the mix is in the bank not in use; B stays in use, also after a reset.
        for reset in (False, True):
            if reset:
                resume(tb.reset)()
            if banked:
                assert tb.device.identify() == before
                tb.classify_and_check(tb.model_b, tb.images)
                continue
            assert not tb.device.identify().model_loaded
            try:
                tb.device.classify(tb.images[0])
            except HostLinkError as error:
                assert f"error {ErrorCode.NO_MODEL}" in str(error), error
            else:
                raise AssertionError("the device classified an image with a half-loaded model")
        tb.load(tb.model_b)
        assert tb.device.identify().model_loaded
        tb.classify_and_check(tb.model_b, tb.images)

    await bridge(scenario)()
