# amaranth: UnusedElaboratable=no
"""The host library of the UART link, without hardware: frames, parser, Device."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ffcl_hw.device import (
    Device,
    FrameReader,
    HostLinkError,
    HostLinkTimeout,
    crc8,
    encode_frame,
)
from rtl.core import Core, load_words
from rtl.host_link import (
    LinkIdentity,
    link_identity,
    load_checksum,
    load_payload,
    model_hash,
)
from rtl.protocol import LOAD_CHECKSUM, PROTOCOL_VERSION, Command, ErrorCode, Reply
from tests.flows.board_emulator import EmulatedBoard
from tests.rtl.test_core import _random_model


@pytest.mark.parametrize(("data", "crc"), [
    (b"123456789", 0xF4),          # the catalogue check value of CRC-8 (SMBus)
    (b"", 0x00),
    (b"\x00", 0x00),
    (b"\x01", 0x07),               # a single 1 bit leaves the polynomial
    (b"\x80", 0x89),
    (b"\xff", 0xF3),
])
def test_crc8_matches_known_vectors(data, crc):
    assert crc8(data) == crc


@pytest.mark.parametrize("data", [b"123456789", b"\xa5\x00\xff", bytes(range(256))])
def test_a_message_followed_by_its_crc_has_crc_zero(data):
    assert crc8(data + bytes([crc8(data)])) == 0


def test_encode_frame_lays_out_the_bytes():
    frame = encode_frame(0x02, b"\x10\x20\x30", tag=0x5C)
    assert frame[:5] == b"\xa5\x02\x5c\x03\x00"
    assert frame[5:8] == b"\x10\x20\x30"
    assert frame[8] == crc8(b"\x02\x5c\x03\x00\x10\x20\x30")
    assert encode_frame(0x01) == b"\xa5\x01\x00\x00\x00" + bytes([crc8(b"\x01\x00\x00\x00")])
    assert encode_frame(0x03, bytes(300))[3:5] == (300).to_bytes(2, "little")


@pytest.mark.parametrize(("cmd", "payload", "tag", "message"), [
    (256, b"", 0, "command must be a byte 0..255, not 256"),
    (-1, b"", 0, "command must be a byte 0..255, not -1"),
    (1, b"", 256, "tag must be a byte 0..255, not 256"),
    (1, bytes(65536), 0, "payload must be at most 65535 bytes, not 65536"),
])
def test_encode_frame_refuses_what_does_not_fit(cmd, payload, tag, message):
    with pytest.raises(ValueError, match=message):
        encode_frame(cmd, payload, tag=tag)


PAYLOADS = [b"", b"\x00", b"\xa5", b"\xa5\xa5\xa5", bytes(range(256)) * 2]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_frame_reader_round_trips_in_any_split(payload, chunk):
    stream = encode_frame(0x82, payload) + encode_frame(0x83, b"")
    reader = FrameReader()
    frames = []
    for i in range(0, len(stream), chunk):
        frames += reader.frames(stream[i:i + chunk])
    assert frames == [(0x82, 0, payload), (0x83, 0, b"")]
    assert reader.skipped == 0


def test_frame_reader_skips_garbage_before_and_between_frames():
    stream = (b"\x00\xff\x13" + encode_frame(1, b"ab", tag=0xA5) + b"\x42\x42"
              + encode_frame(2, b"c", tag=7))
    reader = FrameReader()
    assert reader.frames(stream) == [(1, 0xA5, b"ab"), (2, 7, b"c")]
    assert reader.skipped == 5


def test_frame_reader_reports_a_bad_crc_and_resynchronises():
    bad = bytearray(encode_frame(1, b"xyz"))
    bad[-1] ^= 0x40
    reader = FrameReader()
    reader.feed(bytes(bad) + encode_frame(2, b"ok"))
    with pytest.raises(HostLinkError, match="bad crc"):
        reader.next_frame()
    assert reader.frames() == [(2, 0, b"ok")]


def test_frame_reader_treats_an_oversized_length_as_noise():
    reader = FrameReader(max_length=8)
    stream = b"\xa5\x01\x00\xff\xff" + encode_frame(3, b"12345678")
    assert reader.frames(stream) == [(3, 0, b"12345678")]
    assert reader.skipped == 5


def test_frame_reader_waits_for_a_truncated_frame():
    frame = encode_frame(1, b"abcdef")
    reader = FrameReader()
    assert reader.frames(frame[:-1]) == []
    assert reader.frames(frame[-1:]) == [(1, 0, b"abcdef")]


def retag(frame: bytes, tag: int) -> bytes:
    """``frame`` with another tag; its crc recomputed only if it was right."""
    body = bytes([frame[1], tag]) + frame[3:-1]
    good = crc8(frame[1:-1]) == frame[-1]
    return frame[:1] + body + bytes([crc8(body) if good else frame[-1]])


class Verbatim(bytes):
    """A scripted answer sent as it is, its tag not replaced by the command's."""


class Late(bytes):
    """A scripted answer that comes after the host's read has timed out once."""


class ScriptedPort:
    """A fake serial port: each write is answered by the next scripted bytes.

    An answer takes the tag of the frame written (unless :class:`Verbatim`); ``written``
    holds the frames with tag 0, ``tags`` their tags.
    """

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = list(answers)
        self.written: list[bytes] = []
        self.tags: list[int] = []
        self._pending = bytearray()
        self._late = b""

    def write(self, data: bytes) -> int:
        self.written.append(retag(bytes(data), 0))
        self.tags.append(data[2])
        if self.answers:
            answer = self.answers.pop(0)
            late = isinstance(answer, Late)
            if not isinstance(answer, Verbatim) and len(answer) >= 6:
                answer = retag(answer, data[2])
            if late:
                self._late = answer
            else:
                self._pending += answer
        return len(data)

    def read(self, size: int) -> bytes:
        if not self._pending and self._late:
            # This read times out; the late answer arrives right after it.
            self._pending += self._late
            self._late = b""
            return b""
        out = bytes(self._pending[:size])
        del self._pending[:size]
        return out


@pytest.fixture(scope="module")
def model():
    return _random_model("ffdl", 3)


def _ident(model, **changes) -> bytes:
    identity = dataclasses.replace(link_identity(model, lanes=2), **changes)
    return encode_frame(Reply.IDENT, identity.to_bytes())


def test_identify_parses_the_ident_reply(model):
    port = ScriptedPort([_ident(model)])
    identity = Device(port).identify()
    assert identity == link_identity(model, lanes=2)
    assert identity.model_hash == model_hash(model)
    assert port.written == [encode_frame(Command.IDENT)]


@pytest.mark.parametrize(("changes", "message"), [
    ({}, None),
    ({"lanes": 3}, "device has lanes = 3, the model needs 2"),
    ({"labels": 5}, "device has labels = 5, the model needs 4"),
    ({"input_size": 10}, "device has input_size = 10, the model needs 9"),
    ({"model_hash": 0x12345678}, "device has model_hash = 0x12345678, the model needs 0x"),
    ({"version": 2}, f"device speaks protocol version 2; this host speaks {PROTOCOL_VERSION}"),
    ({"version": PROTOCOL_VERSION + 1}, f"protocol version {PROTOCOL_VERSION + 1}"),
])
def test_check_names_the_first_difference(model, changes, message):
    device = Device(ScriptedPort([_ident(model, **changes)]))
    if message is None:
        assert device.check(model, lanes=2) == link_identity(model, lanes=2)
    else:
        with pytest.raises(HostLinkError, match=message):
            device.check(model, lanes=2)


def test_the_model_hash_changes_with_the_formats(model):
    other = dataclasses.replace(model, fmt=dataclasses.replace(model.fmt, frac_bits=
                                                               model.fmt.frac_bits + 1))
    assert model_hash(other) != model_hash(model)
    assert model_hash(dataclasses.replace(model)) == model_hash(model)


def _result_frame(identity, label, scores, cycles) -> bytes:
    n = identity.score_bytes
    payload = bytes([label]) + b"".join(s.to_bytes(n, "little") for s in scores) + \
        cycles.to_bytes(4, "little")
    return encode_frame(Reply.RESULT, payload)


def test_classify_sends_the_pixels_and_decodes_the_result(model):
    identity = link_identity(model, lanes=2)
    scores = [5, 2**identity.score_bits - 1, 0, 77]
    port = ScriptedPort([_ident(model), _result_frame(identity, 1, scores, 123456)])
    image = np.arange(9) % 17
    assert Device(port).classify(image) == (1, scores, 123456)
    assert port.written[1] == encode_frame(Command.IMAGE, bytes(int(p) for p in image))


@pytest.mark.parametrize(("answer", "message"), [
    (encode_frame(Reply.ERROR, b"\x01"), r"device refused IMAGE: error 1 \(bad crc\)"),
    (encode_frame(Reply.ERROR, b"\x03"), r"error 3 \(wrong payload length"),
    (encode_frame(Reply.LOAD), "answered IMAGE with reply 0x83, expected 0x82"),
    (encode_frame(Reply.RESULT, b"\x00"), "RESULT reply has 1 bytes"),
    (b"", "no reply to IMAGE before the port's timeout"),
    (encode_frame(Reply.RESULT, b"\x00")[:-1] + b"\x00", "bad crc"),
])
def test_classify_raises_on_a_bad_answer(model, answer, message):
    device = Device(ScriptedPort([_ident(model), answer]))
    with pytest.raises(HostLinkError, match=message):
        device.classify(np.zeros(9, dtype=int))


@pytest.mark.parametrize(("image", "message"), [
    (np.zeros(8, dtype=int), "image must have 9 pixels, not 8"),
    (np.full(9, 32), r"pixels must lie in 0..31, not 32..32"),
])
def test_classify_refuses_images_the_device_cannot_take(model, image, message):
    device = Device(ScriptedPort([_ident(model)]))
    with pytest.raises(ValueError, match=message):
        device.classify(image)


@pytest.mark.parametrize(("data", "crc"), [
    (b"123456789", 0x0376E6E7),    # the catalogue check value of CRC-32/MPEG-2
    (b"", 0xFFFFFFFF),
    (b"\x00", 0x4E08BFB4),
])
def test_crc32_matches_known_vectors(data, crc):
    assert LOAD_CHECKSUM.compute(data) == crc


def test_the_ident_payload_round_trips():
    identity = dataclasses.replace(link_identity(_random_model("ffdl", 3), lanes=2),
                                   model_loaded=False, weights_checksum=0xDEADBEEF)
    assert len(identity.to_bytes()) == LinkIdentity.SIZE == 36
    assert LinkIdentity.from_bytes(identity.to_bytes()) == identity


def test_load_model_sends_one_transaction(model):
    core = Core(model, lanes=2, weights="loadable")
    identity = link_identity(model, lanes=2, loadable=True)
    writes = load_words(core.program)
    ident = encode_frame(Reply.IDENT, identity.to_bytes())
    port = ScriptedPort([ident, encode_frame(Reply.LOAD_BEGIN)]
                        + [encode_frame(Reply.LOAD)] * len(writes)
                        + [encode_frame(Reply.LOAD_COMMIT)])
    device = Device(port)
    # An IntModel and the Core holding it give the same frames.
    assert device.load_model(model) == len(writes)
    n = identity.load_data_bytes
    checksum = load_checksum(writes, n)
    assert checksum == identity.weights_checksum
    assert port.written[1] == encode_frame(Command.LOAD_BEGIN,
                                           model_hash(model).to_bytes(4, "little")
                                           + checksum.to_bytes(4, "little"))
    for (target, addr, word), frame in zip(writes, port.written[2:-1], strict=True):
        assert frame == encode_frame(Command.LOAD, bytes([target]) + addr.to_bytes(2, "little")
                                     + word.to_bytes(n, "little"))
    assert port.written[-1] == encode_frame(Command.LOAD_COMMIT)
    assert device.identity.weights_checksum == checksum and device.identity.model_loaded


def test_load_model_refuses_a_rom_device_and_reports_a_refused_write(model):
    with pytest.raises(HostLinkError, match="not loadable"):
        Device(ScriptedPort([_ident(model)])).load_model([(1, 0, 0)])
    identity = link_identity(model, lanes=2, loadable=True)
    port = ScriptedPort([encode_frame(Reply.IDENT, identity.to_bytes()),
                         encode_frame(Reply.LOAD_BEGIN), encode_frame(Reply.LOAD),
                         encode_frame(Reply.ERROR, b"\x04")])
    with pytest.raises(HostLinkError, match="LOAD of target 2 address 1: error 4"):
        Device(port).load_model([(2, 0, 1), (2, 1, 1), (2, 2, 1)])
    assert len(port.written) == 4
    port = ScriptedPort([encode_frame(Reply.IDENT, identity.to_bytes()),
                         encode_frame(Reply.ERROR, b"\x05")])
    with pytest.raises(HostLinkError, match="refused LOAD_BEGIN: error 5 .*another model"):
        Device(port).load_model([(2, 0, 1)], model_hash=1)
    with pytest.raises(ValueError, match="load word 256 does not fit the device's 1 bytes"):
        Device(ScriptedPort([encode_frame(Reply.IDENT, dataclasses.replace(
            identity, load_data_bytes=1).to_bytes())])).load_model([(2, 0, 256)])


@pytest.mark.parametrize(("write", "message"), [
    ((1, 4, 0), None),
    ((1, 5, 0), r"write 1: address 5 is beyond the device's ops memory of 5 words \(0..4\)"),
    ((4, 12, 0), "address 12 is beyond the device's labels memory of 12 words"),
    ((5, 0, 0), r"write 1: target 5 is not one of \[1, 2, 3, 4\]"),
])
def test_load_model_refuses_a_write_beyond_a_memory_before_sending_anything(write, message):
    model = _random_model("ffdl", 41)
    identity = link_identity(model, lanes=2, loadable=True)
    assert identity.depths == (5, 57, 12, 12)
    port = ScriptedPort([encode_frame(Reply.IDENT, identity.to_bytes()),
                         encode_frame(Reply.LOAD_BEGIN), *[encode_frame(Reply.LOAD)] * 2,
                         encode_frame(Reply.LOAD_COMMIT)])
    device = Device(port)
    device.identify()
    if message is None:
        assert device.load_model([(2, 0, 0), write]) == 2
        return
    with pytest.raises(ValueError, match=message):
        device.load_model([(2, 0, 0), write])
    assert len(port.written) == 1


@pytest.mark.parametrize("target", [1, 2, 3, 4])
def test_the_board_double_refuses_a_load_at_the_target_memorys_depth(target):
    model = _random_model("ffdl", 41)
    board = EmulatedBoard(model, lanes=2)
    depth = board.identity.depths[target - 1]
    n = board.identity.load_data_bytes
    begin = board.identity.model_hash.to_bytes(4, "little") + bytes(4)
    assert FrameReader().frames(board.receive(encode_frame(Command.LOAD_BEGIN, begin))) == \
        [(Reply.LOAD_BEGIN, 0, b"")]
    for addr, reply in ((depth - 1, (Reply.LOAD, 0, b"")),
                        (depth, (Reply.ERROR, 0, bytes([ErrorCode.ADDRESS])))):
        frame = encode_frame(Command.LOAD, load_payload(target, addr, 0, n))
        assert FrameReader().frames(board.receive(frame)) == [reply]


def test_a_stale_reply_is_never_taken_for_the_answer_to_a_later_command(model):
    # The failure: the reply to image 0 comes after the host's read timed out;
    # classify(image 1) must return image 1's result, not image 0's.
    identity = link_identity(model, lanes=2)
    first = _result_frame(identity, 0, [1, 2, 3, 4], 10)
    second = _result_frame(identity, 3, [5, 6, 7, 8], 10)
    port = ScriptedPort([_ident(model), Late(first), second])
    device = Device(port)
    with pytest.raises(HostLinkTimeout, match="no reply to IMAGE"):
        device.classify(np.zeros(9, dtype=int))
    assert device.classify(np.ones(9, dtype=int)) == (3, [5, 6, 7, 8], 10)
    # The late reply was drained before the next command went out.
    assert device.drained == len(first) and device.stale == 0
    assert port.tags == [1, 2, 3]


def test_a_reply_with_another_tag_is_skipped(model):
    # Without a timeout in between (a reply that was late but came before the next
    # read): its tag is the earlier command's, so it is skipped, not taken.
    identity = link_identity(model, lanes=2)
    stale = encode_frame(Reply.RESULT, _result_frame(identity, 0, [1, 2, 3, 4], 10)[5:-1],
                         tag=1)
    port = ScriptedPort([_ident(model),
                         Verbatim(stale + retag(_result_frame(identity, 3, [5, 6, 7, 8], 9), 2))])
    device = Device(port)
    assert device.classify(np.ones(9, dtype=int)) == (3, [5, 6, 7, 8], 9)
    assert device.stale == 1


@pytest.mark.parametrize(("answer", "resync"), [
    (encode_frame(Reply.ERROR, b"\x01"), True),
    (encode_frame(Reply.ERROR, b"\x03"), True),
    (encode_frame(Reply.ERROR, b"\x08"), False),
    (encode_frame(Reply.LOAD), True),
    (encode_frame(Reply.RESULT, b"\x00")[:-1] + b"\x00", True),
])
def test_the_host_drains_the_line_after_an_error_that_may_leave_bytes(model, answer, resync):
    # A line error (crc, command, length), a wrong reply or one that does not parse:
    # what follows may be fragments, so the next command drains first. A refusal such
    # as error 8 leaves the line in step: no drain (it would cost a port timeout).
    identity = link_identity(model, lanes=2)
    port = ScriptedPort([_ident(model), answer, _result_frame(identity, 1, [0] * 4, 7)])
    device = Device(port)
    with pytest.raises(HostLinkError):
        device.classify(np.zeros(9, dtype=int))
    if resync:
        port._pending += b"\xa5\x82"          # a fragment still on the line
    assert device.classify(np.zeros(9, dtype=int)) == (1, [0] * 4, 7)
    assert (device.drained >= 2) == resync
