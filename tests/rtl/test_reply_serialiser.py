# amaranth: UnusedElaboratable=no
"""The host link's reply serialiser on its own: a request in, a frame's bytes out.

Every frame is compared byte for byte with the host library's encoder
(ffcl_hw.device.encode_frame), under a transmitter that takes bytes at once and one that
holds ``ready`` low for long stretches. A serialiser of a training identity also sends the
TRAIN and READ replies, their payload taken from the ``body`` stream (offered at once or
now and then), up to the longest body its 16-bit length field carries; one of an inference
identity has no such replies.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from ffcl_hw.device import FrameReader, encode_frame
from golden.config import ModelConfig
from golden.inttrain import TrainRule
from rtl.core import result_layout
from rtl.host_link import link_identity
from rtl.protocol import ErrorCode, Reply
from rtl.reply_serialiser import STREAMED, ReplyFrame, ReplySerialiser
from tests.rtl.helpers import PERIOD
from tests.rtl.test_core import _random_model
from tests.rtl.test_training_core import D, K, make_model

IDENTITY = link_identity(_random_model("ffdl", 7), lanes=2, loadable=True)
LAYOUT = result_layout(IDENTITY.labels, IDENTITY.score_bits)
#: A training core's link identity, as tests/rtl/test_host_link_training.py builds it:
#: it trains (TRAIN and READ replies exist), takes two samples a frame, reads 8-byte words.
TRAINING = link_identity(
    make_model(ModelConfig(algo="ffdl", input_size=D, num_classes=K, hidden=(7, 5),
                           theta=0.5), 11),
    lanes=3, rule=TrainRule(epochs=1, lr_shift=4, seed=7), train_block=2)
#: The longest payload a streamed reply can have: all its 16-bit length field holds.
LONGEST_BODY = 0xFFFF
#: The command's tag every reply must echo (the sync byte's value: it is a header field,
#: not a frame start, and a serialiser sending a constant shows).
TAG = 0xA5


def result_record(seed: int, identity=IDENTITY) -> dict:
    rng = random.Random(seed)
    return {"label": rng.randrange(identity.labels),
            "scores": [rng.randrange(1 << identity.score_bits) for _ in range(identity.labels)],
            "cycles": rng.randrange(1 << 32)}


def train_body(seed: int, samples: int) -> bytes:
    """A TRAIN reply's payload as the host reads it: per sample the label of its training
    pass, the wrong label drawn, the cycles (LE32)."""
    rng = random.Random(seed)
    return b"".join(bytes([rng.randrange(K), rng.randrange(K)])
                    + rng.randrange(1 << 32).to_bytes(4, "little") for _ in range(samples))


def read_body(seed: int, words: int, identity=TRAINING) -> bytes:
    """A READ reply's payload: ``words`` stored words, ``read_bytes`` each, LE."""
    rng = random.Random(seed)
    n = identity.read_bytes
    return b"".join(rng.randrange(1 << 8 * n).to_bytes(n, "little") for _ in range(words))


def expected_frame(kind: ReplyFrame, *, error: int, record: dict, model_ok: int,
                   checksum: int, body: bytes = b"", identity=IDENTITY,
                   trained: int = 0, tag: int = TAG) -> bytes:
    if kind == ReplyFrame.IDENT:
        ident = dataclasses.replace(identity, model_loaded=bool(model_ok),
                                    weights_checksum=checksum, trained=trained)
        return encode_frame(Reply.IDENT, ident.to_bytes(), tag=tag)
    if kind == ReplyFrame.RESULT:
        scores = b"".join(s.to_bytes(identity.score_bytes, "little") for s in record["scores"])
        return encode_frame(Reply.RESULT, bytes([record["label"]]) + scores
                            + record["cycles"].to_bytes(4, "little"), tag=tag)
    if kind == ReplyFrame.ERROR:
        return encode_frame(Reply.ERROR, bytes([error]), tag=tag)
    return encode_frame(kind.code, body, tag=tag)


def serialise(requests, *, pauses: str, seed: int = 0, back_to_back: bool = False,
              identity=IDENTITY, trained: int = 0, score_port: bool = False,
              shared_header: bool = False, short_index: bool = False, tag: int = TAG):
    """Send each (kind, error, body) request, held until taken, after the previous reply's
    ``done`` (or at once: ``back_to_back``), its body offered on ``body`` (and its length
    on ``body_length``) from the cycle after it is taken; returns the bytes taken, the
    byte counts at each ``done`` and at each result.ready, any byte that changed while on
    offer, and the body bytes taken by each ``done``. With ``score_port`` the record's
    scores are only on the ``score`` port (a synchronous read, as the core's), the
    record's own all zero. ``shared_header``: the serialiser's one header select.
    ``short_index``: the body's last byte marked on ``body_last``."""
    dut = ReplySerialiser(identity=identity,
                          result_layout=result_layout(identity.labels, identity.score_bits),
                          score_port=score_port, shared_header=shared_header,
                          short_index=short_index)
    rng = random.Random(seed)
    feed_rng = random.Random(seed + 1)
    sent = bytearray()
    at_done: list[int] = []
    result_taken: list[int] = []
    unstable = []
    pending = bytearray()             # body bytes not yet taken
    body_taken = [0]
    body_at_done: list[int] = []
    # Cycles to wait for a reply: 3 a byte with no pauses, some 13 with the sink's.
    budget = 20_000 + (4 if pauses == "none" else 20) * sum(len(body) for _, _, body in requests)

    async def sink(ctx) -> None:
        # The transmitter: ready now and then (or always); a byte on offer must stay the
        # same until it is taken.
        offered = None
        while True:
            ready = 1 if pauses == "none" else int(rng.random() < 0.1)
            ctx.set(dut.tx.ready, ready)
            await ctx.delay(PERIOD / 4)
            valid, byte = ctx.get(dut.tx.valid), ctx.get(dut.tx.payload)
            if offered is not None and (not valid or byte != offered):
                unstable.append((offered, valid, byte))
            offered = byte if valid and not ready else None
            if valid and ready:
                sent.append(byte)
            if ctx.get(dut.done):
                at_done.append(len(sent))
                body_at_done.append(body_taken[0])
            if ctx.get(dut.result.ready):
                result_taken.append(len(sent))
            await ctx.tick()

    async def feeder(ctx) -> None:
        # The body's source: a byte, once offered, stays on offer until it is taken.
        offered = False
        while True:
            offered = offered or bool(pending) and (pauses == "none"
                                                    or feed_rng.random() < 0.3)
            ctx.set(dut.body.valid, offered)
            ctx.set(dut.body.payload, pending[0] if offered else 0)
            if short_index:
                # One body waits at a time (a request is taken once the last is out).
                ctx.set(dut.body_last, offered and len(pending) == 1)
            await ctx.delay(PERIOD / 4)
            if offered and ctx.get(dut.body.ready):
                del pending[0]
                body_taken[0] += 1
                offered = False
            await ctx.tick()

    async def score_reads(ctx) -> None:
        # The core's score read port: the score of the address of the cycle before, the
        # first label's beyond the last (Argmax's ``read``).
        scores = result_record(seed, identity)["scores"]
        while True:
            addr = ctx.get(dut.score.addr)
            await ctx.tick()
            ctx.set(dut.score.data, scores[addr] if addr < len(scores) else scores[0])

    async def source(ctx) -> None:
        ctx.set(dut.tag, tag)
        ctx.set(dut.model_ok, 1)
        ctx.set(dut.checksum, 0xCAFE_F00D)
        ctx.set(dut.trained, trained)
        ctx.set(dut.result.valid, 1)
        record = result_record(seed, identity)
        if score_port:
            record["scores"] = [0] * identity.labels
        ctx.set(dut.result.payload, record)
        for kind, error, body in requests:
            ctx.set(dut.request.valid, 1)
            ctx.set(dut.request.payload, {"reply": kind, "error": error})
            if not back_to_back:
                # Not the length yet (the previous reply is out): a serialiser must not
                # take it with the request.
                ctx.set(dut.body_length, len(body) ^ 0x5555)
            for _ in range(budget):
                taken = ctx.get(dut.request.ready)
                await ctx.tick()
                if taken:
                    break
            else:
                return                    # stuck: the caller's checks say where
            ctx.set(dut.request.valid, 0)
            ctx.set(dut.body_length, len(body))
            pending.extend(body)
            if not back_to_back and not await until_done(ctx, len(at_done) + 1):
                return
        await until_done(ctx, len(requests))

    async def until_done(ctx, count: int) -> bool:
        """Wait for the ``count``-th ``done``; False if it does not come."""
        for _ in range(budget):
            if len(at_done) >= count:
                break
            await ctx.tick()
        else:
            return False
        # Long enough for a serialiser that does not stop to send another byte.
        await ctx.tick().repeat(20)
        return True

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    sim.add_testbench(sink, background=True)
    sim.add_testbench(feeder, background=True)
    if score_port:
        sim.add_testbench(score_reads, background=True)
    sim.add_testbench(source)
    sim.run()
    return bytes(sent), at_done, result_taken, unstable, body_at_done


@pytest.mark.parametrize("shared_header", [False, True])
@pytest.mark.parametrize("score_port", [False, True])
@pytest.mark.parametrize("back_to_back", [False, True])
@pytest.mark.parametrize("pauses", ["none", "often"])
def test_every_reply_frame_goes_out_byte_for_byte(pauses, back_to_back, score_port,
                                                  shared_header):
    # score_port: the RESULT's scores read through the port, a score at a time;
    # shared_header: every frame's header from one select.
    requests = [(ReplyFrame.IDENT, 0, b""), (ReplyFrame.RESULT, 0, b""),
                (ReplyFrame.LOAD, 0, b""), (ReplyFrame.LOAD_BEGIN, 0, b""),
                (ReplyFrame.LOAD_COMMIT, 0, b""),
                *((ReplyFrame.ERROR, code, b"") for code in ErrorCode)]
    sent, at_done, result_taken, unstable, _ = serialise(requests, pauses=pauses, seed=3,
                                                         back_to_back=back_to_back,
                                                         score_port=score_port,
                                                         shared_header=shared_header)
    frames = [expected_frame(kind, error=error, record=result_record(3), model_ok=1,
                             checksum=0xCAFE_F00D) for kind, error, _ in requests]
    assert sent == b"".join(frames)
    # `done` pulses once per reply, with its last byte.
    ends = [sum(len(f) for f in frames[:i + 1]) for i in range(len(frames))]
    assert at_done == ends
    # The result record is taken once, as the RESULT reply's crc byte goes out.
    assert result_taken == [ends[1]]
    # A byte on offer stays on offer, unchanged, until the transmitter takes it.
    assert unstable == []


@pytest.mark.parametrize(("shared_header", "short_index"), [(False, False), (True, False),
                                                           (True, True)])
def test_every_frame_echoes_the_tag_it_is_given(shared_header, short_index):
    # Another tag than the sync byte's value: a header that sends a constant (the sync
    # byte's, say) where the tag belongs shows.
    requests = [(ReplyFrame.IDENT, 0, b""), (ReplyFrame.RESULT, 0, b""),
                (ReplyFrame.LOAD_COMMIT, 0, b""), (ReplyFrame.ERROR, ErrorCode.CRC, b""),
                (ReplyFrame.TRAIN, 0, train_body(2, 1)), (ReplyFrame.READ, 0, read_body(2, 3))]
    sent, *_ = serialise(requests, pauses="none", seed=2, identity=TRAINING,
                         shared_header=shared_header, short_index=short_index, tag=0x3C)
    assert sent == b"".join(expected_frame(kind, error=error, record=result_record(2, TRAINING),
                                           model_ok=1, checksum=0xCAFE_F00D, body=body,
                                           identity=TRAINING, tag=0x3C)
                            for kind, error, body in requests)


def test_the_serialiser_idles_after_a_reply():
    # Nothing more comes out after the last reply: no byte without a request.
    sent, at_done, _, _, _ = serialise([(ReplyFrame.LOAD, 0, b"")], pauses="none")
    assert sent == encode_frame(Reply.LOAD, tag=TAG) and len(at_done) == 1


def test_reply_frame_codes_are_the_protocols():
    assert {kind.code for kind in ReplyFrame} == set(Reply)


def test_reply_serialiser_refuses_a_layout_that_is_not_a_struct():
    with pytest.raises(TypeError, match="^Result layout must be a data.StructLayout, not 8$"):
        ReplySerialiser(identity=IDENTITY, result_layout=8)


@pytest.mark.parametrize(("option", "message"), [("score_port", "Score port"),
                                                 ("shared_header", "Shared header"),
                                                 ("short_index", "Short index")])
def test_the_small_part_options_are_asked_for_by_a_bool(option, message):
    with pytest.raises(TypeError, match=f"^{message} must be True or False, not 1$"):
        ReplySerialiser(identity=IDENTITY, result_layout=LAYOUT, **{option: 1})


def streamed_requests(seed: int) -> list[tuple[ReplyFrame, int, bytes]]:
    """Replies of a training link, the streamed ones with bodies of one record or
    word, the most records a TRAIN frame has, and a READ whose length needs both bytes
    of its field; IDENT and RESULT between them show a streamed reply ends where it
    should."""
    return [(ReplyFrame.TRAIN, 0, train_body(seed, 1)),
            (ReplyFrame.IDENT, 0, b""),
            (ReplyFrame.TRAIN, 0, train_body(seed + 1, TRAINING.train_block)),
            (ReplyFrame.READ, 0, read_body(seed, 1)),
            (ReplyFrame.RESULT, 0, b""),
            (ReplyFrame.READ, 0, read_body(seed + 1, 37)),
            (ReplyFrame.ERROR, ErrorCode.LABEL, b""),
            (ReplyFrame.LOAD, 0, b"")]


#: The serialiser options of the training links the boards build (HostLink: score_port
#: from the core, shared_header = lean, short_index = lean and training): the ECP5 link
#: (none) and the iCEBreaker's lean link (all three) run every pacing by default; every
#: other mix of the options runs by default with pauses and requests back to back, the
#: rest of its pacings with ``-m slow``.
BUILT_OPTIONS = ((False, False, False), (True, True, True))


def _training_link_cases() -> list:
    cases = []
    for pauses in ("none", "often"):
        for back_to_back in (False, True):
            for score_port in (False, True):
                for shared_header in (False, True):
                    for short_index in (False, True):
                        case = (pauses, back_to_back, score_port, shared_header, short_index)
                        default = ((score_port, shared_header, short_index) in BUILT_OPTIONS
                                   or (pauses, back_to_back) == ("often", True))
                        # covered by default: this option mix's [often-True-...] case and
                        # the built mixes' cases of this pacing
                        cases.append(case if default
                                     else pytest.param(*case, marks=pytest.mark.slow))
    return cases


@pytest.mark.parametrize(("pauses", "back_to_back", "score_port", "shared_header",
                          "short_index"), _training_link_cases())
def test_a_training_link_sends_train_and_read_replies_byte_for_byte(pauses, back_to_back,
                                                                   score_port, shared_header,
                                                                   short_index):
    # short_index: the body's last byte marked, the send index held while the body
    # goes out.
    requests = streamed_requests(5)
    # 296 bytes: the length field's high byte is not 0.
    assert len(requests[5][2]) == 296
    sent, at_done, result_taken, unstable, body_at_done = serialise(
        requests, pauses=pauses, seed=5, back_to_back=back_to_back, identity=TRAINING,
        trained=0x1234_5678, score_port=score_port, shared_header=shared_header,
        short_index=short_index)
    frames = [expected_frame(kind, error=error, record=result_record(5, TRAINING), model_ok=1,
                             checksum=0xCAFE_F00D, body=body, identity=TRAINING,
                             trained=0x1234_5678) for kind, error, body in requests]
    assert sent == b"".join(frames)
    ends = [sum(len(f) for f in frames[:i + 1]) for i in range(len(frames))]
    assert at_done == ends
    assert result_taken == [ends[4]]
    assert unstable == []
    # Each streamed reply takes its body's bytes and no more, before its crc goes out.
    assert body_at_done == [sum(len(body) for _, _, body in requests[:i + 1])
                            for i in range(len(requests))]
    # The host's parser takes every frame (its crc checked), the streamed ones with the
    # records and words the core sent.
    parsed = FrameReader().frames(sent)
    assert len(parsed) == len(requests)
    assert [(f.cmd, f.tag, f.payload) for f in parsed if f.cmd in (Reply.TRAIN, Reply.READ)] \
        == [(kind.code, TAG, body) for kind, _, body in requests if kind in STREAMED]


# 25-32 s of simulation on the shared cores (some 200,000 cycles): opt-in. The default
# run's longest body, 296 bytes, has both length bytes but not the send index's 17th bit.
@pytest.mark.slow
@pytest.mark.parametrize("short_index", [False, True])
def test_the_longest_read_reply_goes_out_whole(short_index):
    # 65,535 payload bytes: the crc byte's index, 65,540, takes the send index's 17th bit
    # (short_index: the index stays at 5 while they go out).
    body = bytes(random.Random(9).randrange(256) for _ in range(LONGEST_BODY))
    sent, at_done, _, unstable, body_at_done = serialise(
        [(ReplyFrame.READ, 0, body), (ReplyFrame.LOAD, 0, b"")], pauses="none",
        identity=TRAINING, short_index=short_index)
    frame = encode_frame(Reply.READ, body, tag=TAG)
    assert sent[:5] == bytes([0xA5, Reply.READ, TAG, 0xFF, 0xFF])
    assert sent == frame + encode_frame(Reply.LOAD, tag=TAG)
    assert at_done == [len(frame), len(frame) + 6] and unstable == []
    assert body_at_done == [LONGEST_BODY] * 2


@pytest.mark.parametrize("kind", STREAMED)
def test_an_inference_link_has_no_streamed_replies(kind):
    # The host link answers TRAIN and READ with ERROR 10 on an inference core and never
    # asks for these replies; asked anyway, the serialiser sends no frame (its one byte
    # is the crc of nothing) and takes no body byte.
    assert ReplySerialiser(identity=IDENTITY, result_layout=LAYOUT).streamed == ()
    assert ReplySerialiser(identity=TRAINING, result_layout=result_layout(
        TRAINING.labels, TRAINING.score_bits)).streamed == STREAMED
    sent, at_done, _, _, body_at_done = serialise(
        [(kind, 0, read_body(1, 2)), (ReplyFrame.LOAD, 0, b"")], pauses="none")
    assert sent == b"\x00" + encode_frame(Reply.LOAD, tag=TAG)
    assert at_done == [1, 7] and body_at_done == [0, 0]


def test_the_short_index_counts_the_frames_own_bytes():
    # Off, the send index reaches a 65,535-byte body's crc (17 bits) and the body's
    # length is added to the header's; on, the longest frame's bytes (the IDENT reply's 42
    # and its crc) fit 6 bits, and the crc's index is a constant.
    def text(short_index: bool) -> str:
        return rtlil.convert(ReplySerialiser(
            identity=TRAINING, result_layout=result_layout(TRAINING.labels,
                                                           TRAINING.score_bits),
            shared_header=True, short_index=short_index), name="top")
    off, on = text(False), text(True)
    assert "wire width 17 \\send_index\n" in off and "body_last" not in off
    assert "wire width 6 \\send_index\n" in on and " \\body_last\n" in on
