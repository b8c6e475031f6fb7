# amaranth: UnusedElaboratable=no
"""The host link's reply serialiser on its own: a request in, a frame's bytes out.

Every frame is compared byte for byte with the host library's encoder
(ffcl_hw.device.encode_frame), under a transmitter that takes bytes at once and one that
holds ``ready`` low for long stretches.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from amaranth.sim import Simulator

from ffcl_hw.device import encode_frame
from rtl.core import result_layout
from rtl.host_link import link_identity
from rtl.protocol import ErrorCode, Reply
from rtl.reply_serialiser import ReplyFrame, ReplySerialiser
from tests.rtl.helpers import PERIOD
from tests.rtl.test_core import _random_model

IDENTITY = link_identity(_random_model("ffdl", 7), lanes=2, loadable=True)
LAYOUT = result_layout(IDENTITY.labels, IDENTITY.score_bits)
#: The command's tag every reply must echo (the sync byte's value: it is a header field,
#: not a frame start, and a serialiser sending a constant shows).
TAG = 0xA5


def result_record(seed: int) -> dict:
    rng = random.Random(seed)
    return {"label": rng.randrange(IDENTITY.labels),
            "scores": [rng.randrange(1 << IDENTITY.score_bits) for _ in range(IDENTITY.labels)],
            "cycles": rng.randrange(1 << 32)}


def expected_frame(kind: ReplyFrame, *, error: int, record: dict, model_ok: int,
                   checksum: int) -> bytes:
    if kind == ReplyFrame.IDENT:
        ident = dataclasses.replace(IDENTITY, model_loaded=bool(model_ok),
                                    weights_checksum=checksum)
        return encode_frame(Reply.IDENT, ident.to_bytes(), tag=TAG)
    if kind == ReplyFrame.RESULT:
        scores = b"".join(s.to_bytes(IDENTITY.score_bytes, "little") for s in record["scores"])
        return encode_frame(Reply.RESULT, bytes([record["label"]]) + scores
                            + record["cycles"].to_bytes(4, "little"), tag=TAG)
    if kind == ReplyFrame.ERROR:
        return encode_frame(Reply.ERROR, bytes([error]), tag=TAG)
    return encode_frame(kind.code, tag=TAG)


def serialise(requests, *, pauses: str, seed: int = 0, back_to_back: bool = False):
    """Send each (kind, error) request, held until taken, after the previous reply's
    ``done`` (or at once: ``back_to_back``); returns the bytes taken, the byte counts at
    each ``done`` and at each result.ready, and any byte that changed while on offer."""
    dut = ReplySerialiser(identity=IDENTITY, result_layout=LAYOUT)
    rng = random.Random(seed)
    sent = bytearray()
    at_done: list[int] = []
    result_taken: list[int] = []
    unstable = []

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
            if ctx.get(dut.result.ready):
                result_taken.append(len(sent))
            await ctx.tick()

    async def source(ctx) -> None:
        ctx.set(dut.tag, TAG)
        ctx.set(dut.model_ok, 1)
        ctx.set(dut.checksum, 0xCAFE_F00D)
        ctx.set(dut.result.valid, 1)
        ctx.set(dut.result.payload, result_record(seed))
        for kind, error in requests:
            ctx.set(dut.request.valid, 1)
            ctx.set(dut.request.payload, {"reply": kind, "error": error})
            while True:
                taken = ctx.get(dut.request.ready)
                await ctx.tick()
                if taken:
                    break
            ctx.set(dut.request.valid, 0)
            if not back_to_back:
                await until_done(ctx, len(at_done) + 1)
        await until_done(ctx, len(requests))

    async def until_done(ctx, count: int) -> None:
        for _ in range(20_000):
            if len(at_done) >= count:
                break
            await ctx.tick()
        # Long enough for a serialiser that does not stop to send another byte.
        await ctx.tick().repeat(20)

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    sim.add_testbench(sink, background=True)
    sim.add_testbench(source)
    sim.run()
    return bytes(sent), at_done, result_taken, unstable


@pytest.mark.parametrize("back_to_back", [False, True])
@pytest.mark.parametrize("pauses", ["none", "often"])
def test_every_reply_frame_goes_out_byte_for_byte(pauses, back_to_back):
    requests = [(ReplyFrame.IDENT, 0), (ReplyFrame.RESULT, 0), (ReplyFrame.LOAD, 0),
                (ReplyFrame.LOAD_BEGIN, 0), (ReplyFrame.LOAD_COMMIT, 0),
                *((ReplyFrame.ERROR, code) for code in ErrorCode)]
    sent, at_done, result_taken, unstable = serialise(requests, pauses=pauses, seed=3,
                                                      back_to_back=back_to_back)
    frames = [expected_frame(kind, error=error, record=result_record(3), model_ok=1,
                             checksum=0xCAFE_F00D) for kind, error in requests]
    assert sent == b"".join(frames)
    # `done` pulses once per reply, with its last byte.
    ends = [sum(len(f) for f in frames[:i + 1]) for i in range(len(frames))]
    assert at_done == ends
    # The result record is taken once, as the RESULT reply's crc byte goes out.
    assert result_taken == [ends[1]]
    # A byte on offer stays on offer, unchanged, until the transmitter takes it.
    assert unstable == []


def test_the_serialiser_idles_after_a_reply():
    # Nothing more comes out after the last reply: no byte without a request.
    sent, at_done, _, _ = serialise([(ReplyFrame.LOAD, 0)], pauses="none")
    assert sent == encode_frame(Reply.LOAD, tag=TAG) and len(at_done) == 1


def test_reply_frame_codes_are_the_protocols():
    assert {kind.code for kind in ReplyFrame} == set(Reply)


def test_reply_serialiser_refuses_a_layout_that_is_not_a_struct():
    with pytest.raises(TypeError, match="^Result layout must be a data.StructLayout, not 8$"):
        ReplySerialiser(identity=IDENTITY, result_layout=8)
