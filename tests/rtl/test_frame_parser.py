# amaranth: UnusedElaboratable=no
"""The host link's frame parser on its own: bytes in as a stream, frames and payload out.

The frames come from the host library's encoder (ffcl_hw.device.encode_frame), so the
parser is checked against the protocol's other end, and every frame is compared field by
field with what was sent.
"""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from ffcl_hw.device import crc8, encode_frame
from rtl.frame_parser import FrameParser
from rtl.protocol import SYNC, Command
from tests.rtl.helpers import PERIOD

TIMEOUT = 40
#: Cycles between two bytes on the receiver's stream (a UART byte takes many cycles).
GAP = 3


async def idle(ctx, cycles: int) -> None:
    if cycles:
        await ctx.tick().repeat(cycles)


class Harness:
    """Drives ``rx`` like the UART receiver and records what the parser says.

    ``release`` says, per frame, after how many cycles the link answers it (frame.ready).
    """

    def __init__(self, dut: FrameParser, *, release: int = 2) -> None:
        self.dut = dut
        self.release = release
        self.frames: list[tuple[int, int, bool]] = []
        self.tags: list[int] = []
        self.payloads: list[list[tuple[int, int]]] = [[]]
        self.headers = 0
        self.refused = 0          # cycles a byte waited while the parser held a frame
        self.taken_while_held = 0

    async def monitor(self, ctx) -> None:
        dut, held = self.dut, 0
        async for _, _, valid, payload, header, fvalid, frame, taken in ctx.tick().sample(
                dut.payload.valid, dut.payload.payload, dut.header, dut.frame.valid,
                dut.frame.payload, dut.rx.valid & dut.rx.ready):
            self.taken_while_held += fvalid & taken
            if valid:
                self.payloads[-1].append((payload.index, payload.data))
            self.headers += header
            if fvalid:
                held += 1
                if held == 1:
                    self.frames.append((frame.cmd, frame.length, bool(frame.crc_ok)))
                    self.tags.append(frame.tag)
                    self.payloads.append([])
                ctx.set(dut.frame.ready, held > self.release)
            else:
                held = 0
                ctx.set(dut.frame.ready, 0)

    async def send(self, ctx, data: bytes, *, gap: int = GAP) -> None:
        """Each byte offered until taken, then ``gap`` cycles of silence."""
        dut = self.dut
        for byte in data:
            ctx.set(dut.rx.payload, byte)
            ctx.set(dut.rx.valid, 1)
            while True:
                # The byte is taken at the tick that ends a cycle with ready high.
                taken = ctx.get(dut.rx.ready)
                await ctx.tick()
                if taken:
                    break
                self.refused += 1
            ctx.set(dut.rx.valid, 0)
            await idle(ctx, gap)


def run(data_steps: list[tuple[bytes, int]], *, release: int = 2,
        settle: int = 3 * TIMEOUT, crc_in_payload: bool = False) -> Harness:
    dut = FrameParser(timeout_cycles=TIMEOUT, crc_in_payload=crc_in_payload)
    harness = Harness(dut, release=release)

    async def testbench(ctx) -> None:
        for data, gap_before in data_steps:
            await idle(ctx, gap_before)
            await harness.send(ctx, data)
        await ctx.tick().repeat(settle)

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    sim.add_testbench(harness.monitor, background=True)
    sim.add_testbench(testbench)
    sim.run()
    return harness


#: The crc byte taken in a crc state, or in the payload state (the lean link's).
CRC_BYTE = pytest.mark.parametrize("crc_in_payload", [False, True], ids=["crc", "payload"])


@CRC_BYTE
@pytest.mark.parametrize("length", [0, 1, 2, 7, 300])
def test_a_frame_comes_out_with_its_fields_and_every_payload_byte(length, crc_in_payload):
    rng = random.Random(length)
    payload = bytes(rng.randrange(256) for _ in range(length))
    # The first tag is the sync byte's value: a header field, not a frame start.
    harness = run([(encode_frame(Command.IMAGE, payload, tag=SYNC), 0),
                   (encode_frame(Command.IDENT, tag=length % 256), 5)],
                  crc_in_payload=crc_in_payload)
    assert harness.frames == [(Command.IMAGE, length, True), (Command.IDENT, 0, True)]
    assert harness.tags == [SYNC, length % 256]
    assert harness.payloads[0] == list(enumerate(payload))
    assert harness.payloads[1] == []
    assert harness.headers == 2


@CRC_BYTE
def test_noise_between_frames_is_skipped_and_a_bad_crc_is_reported(crc_in_payload):
    good = encode_frame(Command.LOAD, b"\x01\x02\x03")
    bad = good[:-1] + bytes([good[-1] ^ 0x80])
    harness = run([(b"\x00\x13\xff", 0), (bad, 0), (b"\x5a", 0), (good, 0)],
                  crc_in_payload=crc_in_payload)
    assert harness.frames == [(Command.LOAD, 3, False), (Command.LOAD, 3, True)]


@CRC_BYTE
@pytest.mark.parametrize("offset", [-1, +1])
def test_the_payload_ends_where_the_length_field_says(offset, crc_in_payload):
    # A length field one off: the parser must count exactly `length` payload bytes. One
    # short, the last payload byte is taken as the crc (mismatch) and the real crc byte is
    # noise; one long, the crc byte is taken as payload and the frame is cut by the
    # timeout, unanswered. A parser that ends a byte early or late shows here.
    payload = bytes(range(10, 16))
    length = len(payload) + offset
    body = bytes([Command.IMAGE, 0]) + length.to_bytes(2, "little") + payload
    frame = bytes([SYNC]) + body + bytes([crc8(body)])
    after = encode_frame(Command.IDENT)
    harness = run([(frame, 0), (after, 2 * TIMEOUT)], crc_in_payload=crc_in_payload)
    if offset < 0:
        assert harness.frames[0] == (Command.IMAGE, length, False)
        assert harness.payloads[0] == list(enumerate(payload[:length]))
        assert harness.frames[1:] == [(Command.IDENT, 0, True)]
    else:
        assert harness.frames == [(Command.IDENT, 0, True)]
        # The payload bytes taken before the cut: every byte sent, the crc byte last.
        assert harness.payloads[0] == list(enumerate(payload + frame[-1:]))


@CRC_BYTE
@pytest.mark.parametrize("release", [1, 25])
def test_a_held_frame_blocks_the_next_until_released(release, crc_in_payload):
    # While the link answers a frame, the parser takes no byte; the next frame is parsed
    # whole once it is released (the bytes waited, none was lost).
    first, second = encode_frame(Command.IDENT), encode_frame(Command.IMAGE, b"\x07")
    harness = run([(first + second, 0)], release=release, crc_in_payload=crc_in_payload)
    assert harness.frames == [(Command.IDENT, 0, True), (Command.IMAGE, 1, True)]
    assert harness.payloads[1] == [(0, 7)]
    assert harness.taken_while_held == 0
    # The next frame's first byte came GAP cycles after the crc byte: it waited if the
    # frame was held longer.
    assert (harness.refused > 0) == (release > GAP)


@CRC_BYTE
@pytest.mark.parametrize(("pause", "kept"), [(TIMEOUT - 2, True), (TIMEOUT + 2, False)])
def test_silence_inside_a_frame_up_to_the_timeout_is_tolerated(pause, kept, crc_in_payload):
    frame = encode_frame(Command.IMAGE, b"\x01\x02\x03")
    # GAP cycles of silence follow each byte already: the pause adds to them.
    harness = run([(frame[:4], 0), (frame[4:], pause - GAP),
                   (encode_frame(Command.IDENT), 2 * TIMEOUT)], crc_in_payload=crc_in_payload)
    expected = [(Command.IMAGE, 3, True)] if kept else []
    assert harness.frames == [*expected, (Command.IDENT, 0, True)]


def test_frame_parser_refuses_a_bad_timeout():
    with pytest.raises(ValueError, match="^Timeout must be an integer of at least 2 cycles, "
                                         "not 1$"):
        FrameParser(timeout_cycles=1)


def test_frame_parser_crc_in_payload_is_a_bool():
    with pytest.raises(TypeError, match="^Crc in payload must be True or False, not 1$"):
        FrameParser(timeout_cycles=2, crc_in_payload=1)
