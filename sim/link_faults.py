"""The host link's fault table: line faults and what the device must answer to each.

One table, run unchanged against the board double (tests/flows/test_link_faults.py), the
gateware in Amaranth's simulator (tests/rtl/test_link_faults.py) and its Verilog under
cocotb (sim/hostlink_testbench.py): each row is a list of :class:`Send` steps on the line,
each with the replies it must earn, and the model the device must classify with at the
end (or none: images refused with error 8). A runner plays a step's bytes after
``gap_bits`` of idle line, at ``skew`` off the link's bit time and with a framing error
where the step says, reads the replies (its own receiver ``host_skew`` off), and compares
them with the expected ones, tag, code and payload. The double has no line: it takes
skewed bytes as they are, drops a byte with a framing error, and counts a gap as silence.

Every row starts from a device holding model A in every bank (the built-in one) and ends
by asking IDENT and classifying an image. A late reply is no line fault but the host's:
:func:`late_reply` is that row, run through the host library on each runner's port.

Rows are built for a device by :func:`fault_table` from a :class:`LinkCase` (the bytes
depend on the model: image size, load words, memory depths); their names are
:data:`FAULTS`, the same for every device. Some expected answers rest on bytes not being
the sync byte or a crc not matching by chance: the builder checks each such assumption
and picks another tag if it fails, so a row never passes by luck.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rtl.host_link import LinkIdentity, load_checksum, load_payload
from rtl.protocol import FRAME_CRC, SYNC, Command, ErrorCode, Reply

__all__ = ["FAULTS", "Expect", "Fault", "LinkCase", "Send", "check_replies", "encode",
           "fault_table", "late_reply"]


def _crc8(data: bytes) -> int:
    return FRAME_CRC.compute(bytes(data))


def encode(cmd: int, payload: bytes = b"", *, tag: int, length: int | None = None) -> bytes:
    """A frame (docs/host-link.md) whose length field says ``length`` (default: the
    payload's), with a good crc over what is sent."""
    n = len(payload) if length is None else length
    body = bytes([cmd, tag]) + n.to_bytes(2, "little") + bytes(payload)
    return bytes([SYNC]) + body + bytes([_crc8(body)])


@dataclass(frozen=True)
class Send:
    """Bytes the host puts on the line, back to back.

    Attributes
    ----------
    data : bytes
    gap_bits : int
        Idle line before the first byte, in the link's bit times.
    framing_error_at : int or None
        The byte at this index goes out with its stop bit low, followed by two idle
        bits so that the receiver finds the next start bit.
    skew : float
        The sender's bit time is ``1 + skew`` times the link's (+0.03: 3 % slow).
    """

    data: bytes
    gap_bits: int = 2
    framing_error_at: int | None = None
    skew: float = 0.0


@dataclass(frozen=True)
class Expect:
    """One reply: its code and tag, and what its payload must be.

    ``payload`` bytes exactly; or ``result`` ("a" or "b"): a RESULT equal to that model's
    for image ``image``; or ``loaded``: an IDENT whose "model loaded" flag is that.
    """

    reply: int
    tag: int
    payload: bytes | None = None
    result: str | None = None
    image: int = 0
    loaded: bool | None = None


@dataclass(frozen=True)
class Fault:
    """One row: the steps with the replies each must earn; ``host_skew`` is the host
    receiver's bit time off the link's (reading a fast or slow transmitter)."""

    name: str
    steps: tuple[tuple[Send, tuple[Expect, ...]], ...]
    host_skew: float = 0.0


@dataclass(frozen=True)
class LinkCase:
    """What the rows of one device depend on.

    Attributes
    ----------
    identity : LinkIdentity
        The device's IDENT (loadable; depths, load data bytes, hash).
    images : sequence of bytes
        Two images, as IMAGE payloads.
    to_b : list of (target, address, word)
        The writes that turn the built-in model A into B (few: a short load).
    built_in : list of (target, address, word)
        Model A's writes (the words at each memory's last address are rewritten as they are).
    banked : bool
        Two banks: a failed or interrupted load leaves A in use.
    timeout_bits : int
    """

    identity: LinkIdentity
    images: Sequence[bytes]
    to_b: list
    built_in: list
    banked: bool
    timeout_bits: int
    final_tags: tuple[int, int] = field(default=(0xF0, 0xF1))


#: The row names, in order (a cocotb test is parametrised over them before any model is
#: known).
FAULTS = (
    "noise before a frame",
    "noise ending in 0xA5 before a frame",
    "a frame within the timeout after a truncated one",
    "length field one too long",
    "length field one too short",
    "LOAD at depth - 1 and at depth",
    "framing error inside a frame",
    "load interrupted halfway",
    "sender 3 % fast",
    "sender 3 % slow",
    "sender 2 % fast",
    "sender 2 % slow",
    "host reads a 3 % fast transmitter",
    "host reads a 3 % slow transmitter",
)


def _pick_tag(first: int, condition) -> int:
    """The first tag from ``first`` on for which ``condition(tag)`` holds."""
    for tag in (*range(first, 256), *range(first)):
        if condition(tag):
            return tag
    raise ValueError("no tag satisfies the row's assumptions; choose other images")


def fault_table(case: LinkCase) -> list[Fault]:
    """The rows of :data:`FAULTS` for one device (see the module docstring)."""
    frames = _Frames(case)
    in_use = "a"          # the model in use after every row (loads rewrite A or fail)
    none_loaded = None if not case.banked else in_use
    rows: dict[str, tuple] = {}
    rows.update(_noise_rows(frames, in_use))
    rows.update(_framing_rows(frames, in_use))
    rows["LOAD at depth - 1 and at depth"] = _load_at_depth_row(frames, in_use)

    # A byte of the frame is lost to a framing error: the frame ends one byte short and
    # the timeout drops it.
    rows["framing error inside a frame"] = (
        (Send(frames.image_frame(14), framing_error_at=6), ()),
        (Send(frames.image_frame(15), gap_bits=frames.quiet), (_result(15),)),
        *frames.tail(in_use))
    rows["load interrupted halfway"] = _interrupted_load_row(frames, none_loaded)

    for name, skew, tag in (("sender 3 % fast", -0.03, 18), ("sender 3 % slow", 0.03, 19),
                            ("sender 2 % fast", -0.02, 30), ("sender 2 % slow", 0.02, 31)):
        rows[name] = ((Send(frames.image_frame(tag), skew=skew), (_result(tag),)),
                      (Send(encode(Command.IDENT, tag=tag + 1), skew=skew),
                       (Expect(Reply.IDENT, tag + 1, loaded=True),)), *frames.tail(in_use))

    table = [Fault(name, tuple(steps)) for name, steps in rows.items()]
    for name, skew in (("host reads a 3 % fast transmitter", -0.03),
                       ("host reads a 3 % slow transmitter", 0.03)):
        table.append(Fault(name, ((Send(frames.image_frame(32)), (_result(32),)),
                                  *frames.tail(in_use)), host_skew=skew))
    assert tuple(f.name for f in table) == FAULTS
    return table


def _result(tag: int, model: str = "a", index: int = 0) -> Expect:
    """A RESULT of ``model`` for image ``index``."""
    return Expect(Reply.RESULT, tag, result=model, image=index)


def _error(tag: int, code: ErrorCode) -> Expect:
    """An ERROR with ``code``."""
    return Expect(Reply.ERROR, tag, payload=bytes([code]))


def _ack(code: int, tag: int) -> Expect:
    """A reply ``code`` with no payload (a load's acknowledgement)."""
    return Expect(code, tag, payload=b"")


def _no_sync(data: bytes) -> bool:
    """No byte of ``data`` is the sync byte (no frame starts in it)."""
    return SYNC not in data


class _Frames:
    """The frames of one device's rows (:func:`fault_table`): its image frames and the
    tail every row ends with."""

    def __init__(self, case: LinkCase) -> None:
        self.case = case
        self.ident, self.image, self.other = case.identity, case.images[0], case.images[1]
        self.D, self.n = self.ident.input_size, self.ident.load_data_bytes
        self.quiet = case.timeout_bits + 2

    def image_frame(self, tag: int, pixels: bytes | None = None) -> bytes:
        """An IMAGE frame of ``pixels`` (default: the first image)."""
        return encode(Command.IMAGE, self.image if pixels is None else pixels, tag=tag)

    def tail(self, model: str | None) -> tuple:
        """The steps every row ends with."""
        # After every row: the device is in step again and holds `model` (or none).
        t_ident, t_image = self.case.final_tags
        image_reply = (_result(t_image, model, 1) if model is not None
                       else _error(t_image, ErrorCode.NO_MODEL))
        return ((Send(encode(Command.IDENT, tag=t_ident), gap_bits=self.quiet),
                 (Expect(Reply.IDENT, t_ident, loaded=model is not None),)),
                (Send(self.image_frame(t_image, self.other)), (image_reply,)))


def _noise_rows(frames: _Frames, in_use: str) -> dict[str, tuple]:
    """The rows of noise before a frame, plain and ending in a stray sync byte."""
    D, quiet, image_frame = frames.D, frames.quiet, frames.image_frame
    rows = {}
    rows["noise before a frame"] = (
        (Send(b"\x00\x13\xff\x5a" + image_frame(1)), (_result(1),)), *frames.tail(in_use))

    # The stray 0xA5 starts a frame: the real sync byte is its cmd, the real cmd its tag,
    # and the length field (tag, image length's low byte) exceeds the bytes that follow,
    # so the frame waits and the idle timeout drops it, unanswered.
    assert 2 + 256 * (D & 0xFF) > D + 2, "the stray frame's length must exceed the bytes"
    rows["noise ending in 0xA5 before a frame"] = (
        (Send(b"\x13" + bytes([SYNC]) + image_frame(2)), ()),
        (Send(image_frame(3), gap_bits=quiet), (_result(3),)), *frames.tail(in_use))
    return rows


def _framing_rows(frames: _Frames, in_use: str) -> dict[str, tuple]:
    """The rows of frames cut or mislabelled: a frame after a truncated one, and length
    fields one too long and one too short."""
    D, quiet, image, image_frame = frames.D, frames.quiet, frames.image, frames.image_frame
    rows = {}

    # The next frame continues the truncated one's payload; the byte that lands on its
    # crc does not match, so one ERROR with the first tag, and the rest is noise.
    def continues(tag: int) -> bool:
        cut, nxt = image_frame(4)[:7], image_frame(tag)
        stream = cut + nxt
        crc_at = 5 + D
        return (_crc8(stream[1:crc_at]) != stream[crc_at]
                and _no_sync(stream[crc_at + 1:]))
    t = _pick_tag(5, continues)
    rows["a frame within the timeout after a truncated one"] = (
        (Send(image_frame(4)[:7]), ()),
        (Send(image_frame(t)), (_error(4, ErrorCode.CRC),)),
        (Send(image_frame(6), gap_bits=quiet), (_result(6),)), *frames.tail(in_use))

    # One too long: the crc byte is read as the last pixel and the next frame's sync byte
    # as the crc; the rest of that frame is noise.
    long_frame = encode(Command.IMAGE, image, tag=7, length=D + 1)
    t = _pick_tag(8, lambda tag: _no_sync(image_frame(tag)[1:])
                  and _crc8(long_frame[1:]) != SYNC)
    rows["length field one too long"] = (
        (Send(long_frame), ()),
        (Send(image_frame(t)), (_error(7, ErrorCode.CRC),)),
        (Send(image_frame(9), gap_bits=quiet), (_result(9),)), *frames.tail(in_use))

    # One too short: the last pixel is read as the crc, the real crc byte is noise.
    t = _pick_tag(10, lambda tag: (
        _crc8(encode(Command.IMAGE, image, tag=tag, length=D - 1)[1:5 + D - 1]) != image[-1]
        and encode(Command.IMAGE, image, tag=tag, length=D - 1)[-1] != SYNC))
    rows["length field one too short"] = (
        (Send(encode(Command.IMAGE, image, tag=t, length=D - 1)), (_error(t, ErrorCode.CRC),)),
        (Send(image_frame(11), gap_bits=quiet), (_result(11),)), *frames.tail(in_use))
    return rows


def _load_at_depth_row(frames: _Frames, in_use: str) -> tuple:
    """The row "LOAD at depth - 1 and at depth"."""
    case, ident, n = frames.case, frames.ident, frames.n
    # The last word of every memory rewritten as it is (the model stays A), and a write
    # one past it refused with error 9 and not counted.
    last = {target: max((w for w in case.built_in if w[0] == target), key=lambda w: w[1])
            for target in sorted({w[0] for w in case.built_in})}
    writes = list(last.values())
    begin = ident.model_hash.to_bytes(4, "little") + \
        load_checksum(writes, n).to_bytes(4, "little")
    steps = [(Send(encode(Command.LOAD_BEGIN, begin, tag=12)), (_ack(Reply.LOAD_BEGIN, 12),))]
    for i, (target, addr, word) in enumerate(writes):
        assert addr == ident.depths[target - 1] - 1
        steps += [
            (Send(encode(Command.LOAD, load_payload(target, addr, word, n), tag=20 + 2 * i)),
             (_ack(Reply.LOAD, 20 + 2 * i),)),
            (Send(encode(Command.LOAD, load_payload(target, addr + 1, word, n),
                         tag=21 + 2 * i)), (_error(21 + 2 * i, ErrorCode.ADDRESS),))]
    steps.append((Send(encode(Command.LOAD_COMMIT, tag=13)), (_ack(Reply.LOAD_COMMIT, 13),)))
    return (*steps, *frames.tail(in_use))


def _interrupted_load_row(frames: _Frames, none_loaded: str | None) -> tuple:
    """The row "load interrupted halfway"."""
    case, ident, n = frames.case, frames.ident, frames.n
    # The host gives up half way through a load of B, in the middle of a LOAD frame.
    half = max(1, len(case.to_b) // 2)
    begin_b = ident.model_hash.to_bytes(4, "little") + \
        load_checksum(case.to_b, n).to_bytes(4, "little")
    steps = [(Send(encode(Command.LOAD_BEGIN, begin_b, tag=16)), (_ack(Reply.LOAD_BEGIN, 16),))]
    steps += [(Send(encode(Command.LOAD, load_payload(*w, n), tag=(40 + i) & 0xFF)),
               (_ack(Reply.LOAD, (40 + i) & 0xFF),)) for i, w in enumerate(case.to_b[:half])]
    cut = encode(Command.LOAD, load_payload(*case.to_b[half % len(case.to_b)], n), tag=17)
    steps.append((Send(cut[:len(cut) // 2]), ()))
    return (*steps, *frames.tail(none_loaded))


def late_reply(device, images, golden, *, short_reads, timeout_error) -> None:
    """The issue's failure, through the host library: the read of image 0's RESULT times
    out (``short_reads()`` is a context in which the port's reads time out before an
    inference is done), and ``classify(image 1)`` must answer for image 1.

    ``golden`` is [(label, scores)] of the two images; ``timeout_error`` the host
    library's timeout exception (sim/ does not import the library itself).
    """
    device.identify()
    with short_reads():
        try:
            device.classify(list(images[0]))
        except timeout_error:
            pass
        else:
            raise AssertionError("the short read did not time out: make it shorter")
    label, scores, _ = device.classify(list(images[1]))
    assert (label, list(scores)) == golden[1], \
        f"classify(image 1) gave {(label, scores)}, image 1's is {golden[1]} " \
        f"(image 0's is {golden[0]})"
    assert device.drained > 0, "the late reply was not drained"


def check_replies(where: str, expected: Sequence[Expect], frames: Sequence, *,
                  identity: LinkIdentity, golden: dict) -> None:
    """Raise AssertionError naming ``where`` unless ``frames`` ((cmd, tag, payload)
    each) are the ``expected`` replies; ``golden[model][image]`` is (label, scores,
    cycles) of that model for that image."""
    got = [(cmd, tag) for cmd, tag, _ in frames]
    want = [(e.reply, e.tag) for e in expected]
    assert got == want, f"{where}: replies (code, tag) {got}, expected {want}"
    for e, (_, _, payload) in zip(expected, frames, strict=True):
        if e.payload is not None:
            assert payload == e.payload, f"{where}: payload {payload.hex()}, expected " \
                                         f"{e.payload.hex()}"
        if e.loaded is not None:
            loaded = LinkIdentity.from_bytes(payload).model_loaded
            assert loaded == e.loaded, f"{where}: IDENT says model loaded {loaded}"
        if e.result is not None:
            k = identity.score_bytes
            scores = [int.from_bytes(payload[1 + i * k:1 + (i + 1) * k], "little")
                      for i in range(identity.labels)]
            record = (payload[0], scores, int.from_bytes(payload[-4:], "little"))
            assert record == golden[e.result][e.image], \
                f"{where}: RESULT {record}, model {e.result}'s {golden[e.result][e.image]}"
