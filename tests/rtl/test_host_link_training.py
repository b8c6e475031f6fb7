# amaranth: UnusedElaboratable=no
"""The host link over a training core in Amaranth's simulator, driven by the host library.

``Device.train`` and ``Device.read_model`` against ``HostLink(TrainingCore(...))``: every
TRAIN record (prediction before the update, wrong label, cycles) and every stored word read
back equal :class:`golden.inttrain.IntTrainer`'s; images are classified with the trained
weights; refused frames (bad crc, another lambda, a label out of range, too many samples,
a READ beyond a memory) change nothing. The same runs through the UART pins of the
exported Verilog under Verilator in tests/sim/test_hostlink_cocotb.py (in the default
run; this end-to-end one is opt-in, ``pytest -m slow``).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.back import rtlil
from amaranth.sim import Simulator

from ffcl_hw.device import Device, FrameReader, HostLinkError, encode_frame
from golden.config import ModelConfig
from golden.inttrain import IntTrainer, TrainRule
from golden.lfsr import Lfsr, draw_negative
from rtl.core import LOAD_TARGETS, Core, load_words
from rtl.host_link import (
    HostLink,
    LinkIdentity,
    link_identity,
    link_program,
    load_checksum,
)
from rtl.protocol import Command, ErrorCode, Reply
from rtl.training_core import TrainingCore
from tests.rtl.test_host_link import DIVISOR, TIMEOUT_BITS, SimulatedBoard
from tests.rtl.test_training_core import D, K, X, make_model

RULE = TrainRule(epochs=1, lr_shift=4, seed=7)
LANES, BLOCK = 3, 2


@pytest.fixture(scope="module")
def model():
    return make_model(ModelConfig(algo="ffdl", input_size=D, num_classes=K, hidden=(7, 5),
                                  theta=0.5), 11)


def golden_records(trainer: IntTrainer, x, y, lam: int) -> list[tuple[int, int]]:
    """(prediction before the update, wrong label) per sample, training ``trainer``."""
    out = []
    for xi, yi in zip(x, y, strict=True):
        peek = Lfsr(0)
        peek.state = trainer.label_lfsr.state
        out.append((int(trainer.model.run(xi[None]).labels[0]),
                    draw_negative(peek, int(yi), K)))
        trainer.train_sample(xi, int(yi), lam)
    return out


def assert_stored(device: Device, model, trainer: IntTrainer) -> None:
    forward, stored = device.read_model(model)
    for layer, (got, want) in enumerate(zip(stored, trainer.stored, strict=True)):
        for name in ("W", "b", "U"):
            assert np.array_equal(got[name], want[name]), f"layer {layer} {name}"


def exchange(port: SimulatedBoard, frame: bytes) -> list[tuple[int, bytes]]:
    port.write(frame)
    reader, frames = FrameReader(), []
    while not frames and (byte := port.read(1)):
        frames += reader.frames(byte)
    return [(f.cmd, f.payload) for f in frames]


def train_frame(lam: int, x, y) -> bytes:
    return encode_frame(Command.TRAIN, bytes([lam]) + b"".join(
        bytes([int(yi)]) + bytes(int(p) for p in xi) for xi, yi in zip(x, y, strict=True)))


# 52 to 104 s of Amaranth simulation (some 700 reply bytes at the bit time): opt-in; the
# default run checks the same through the UART pins under Verilator (tests/sim).
@pytest.mark.slow
@pytest.mark.parametrize("lean", [False, True])
def test_the_link_trains_like_the_golden_trainer_and_reads_the_model_back(model, lean):
    # lean: the records written into the sample buffer and the replies read from there.
    core = TrainingCore(model, RULE, lanes=LANES)
    link = HostLink(core, divisor=DIVISOR, timeout_bits=TIMEOUT_BITS, train_block=BLOCK,
                    lean=lean)
    port = SimulatedBoard(link, budget_cycles=40_000)
    device = Device(port)
    assert device.identify() == link_identity(model, lanes=LANES, rule=RULE,
                                              train_block=BLOCK)
    assert link.identity.trains and not link.identity.loadable
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, X + 1, (3, D)), rng.integers(0, K, 3)
    trainer = IntTrainer(model, RULE)
    expected = golden_records(trainer, x, y, RULE.lr_shift)
    # Three samples in frames of two and one.
    records = device.train(x, y, RULE.lr_shift)
    assert [(r.label, r.wrong) for r in records] == expected
    assert [r.cycles for r in records] == [core.training_cycles()] * 3
    assert_stored(device, model, trainer)
    assert device.identify().trained == 3
    # Images are classified with the trained weights, the scores and cycles the core's.
    image = rng.integers(0, X + 1, D)
    label, scores, cycles = device.classify(image)
    golden = trainer.model.run(image[None])
    assert (label, scores) == (int(golden.labels[0]), [int(s) for s in golden.scores[0]])
    assert cycles == core.core.cycles_per_inference()

    # Refused frames change nothing: no weight, no generator (the next sample's
    # records and the read-back still follow the golden trainer).
    lam = RULE.lr_shift
    for frame, code in (
            (train_frame(lam, x[:1], y[:1])[:-1] + b"\x00", ErrorCode.CRC),
            (train_frame(lam + 1, x[:1], y[:1]), ErrorCode.LAMBDA),
            (train_frame(lam, x[:2], [0, K]), ErrorCode.LABEL),
            (train_frame(lam, np.vstack([x, x[:1]])[:3], [0, 1, 2]), ErrorCode.LENGTH),
            (encode_frame(Command.TRAIN, bytes([lam]) + bytes(D)), ErrorCode.LENGTH),
            (encode_frame(Command.READ, bytes([LOAD_TARGETS["bias"], 12, 0, 1, 0])),
             ErrorCode.ADDRESS),
            (encode_frame(Command.READ, bytes([LOAD_TARGETS["bias"], 0, 0, 0, 0])),
             ErrorCode.ADDRESS),
            (encode_frame(Command.READ, bytes([LOAD_TARGETS["ops"], 0, 0, 1, 0])),
             ErrorCode.ADDRESS),
            (encode_frame(Command.LOAD_BEGIN, bytes(8)), ErrorCode.LOAD)):
        # Each frame is whole (a crc error too): the device waits for the next 0xA5.
        got = exchange(port, frame)
        assert got == [(Reply.ERROR, bytes([code]))], (code, got)
    bias = device.read_words(LOAD_TARGETS["bias"], 11, 1)
    assert bias == device.read_words(LOAD_TARGETS["bias"], 11, 1)
    expected = golden_records(trainer, x[:1], y[:1], lam)
    assert [(r.label, r.wrong) for r in device.train(x[:1], y[:1], lam)] == expected
    assert_stored(device, model, trainer)


def test_a_score_port_link_reports_each_inferences_scores(model):
    # TrainingCore(score_port=True), as the iCEBreaker build's: a RESULT's scores come
    # through the argmax's select, which the training passes' inferences used in between;
    # each classification must report its own scores with the weights trained so far.
    core = TrainingCore(model, RULE, lanes=LANES, score_port=True)
    assert core.options["score_port"] and core.core.score_port_enabled
    device = Device(SimulatedBoard(HostLink(core, divisor=DIVISOR, timeout_bits=TIMEOUT_BITS,
                                            train_block=BLOCK), budget_cycles=40_000))
    rng = np.random.default_rng(8)
    x, y = rng.integers(0, X + 1, (2, D)), rng.integers(0, K, 2)
    images = rng.integers(0, X + 1, (3, D))
    trainer = IntTrainer(model, RULE)
    for step in ("before", "after"):
        if step == "after":
            golden_records(trainer, x, y, RULE.lr_shift)
            device.train(x, y, RULE.lr_shift)
        golden = trainer.model.run(images)
        for i, image in enumerate(images):
            label, scores, cycles = device.classify(image)
            assert (label, scores) == (int(golden.labels[i]),
                                       [int(s) for s in golden.scores[i]]), (step, i)


def test_the_link_ident_refuses_a_block_it_cannot_hold(model):
    core = TrainingCore(model, RULE, lanes=LANES)
    for block in (0, 256, True):
        with pytest.raises(ValueError, match="Train block must be an integer in 1..255"):
            HostLink(core, divisor=DIVISOR, train_block=block)
    with pytest.raises(HostLinkError, match="does not train"):
        from tests.flows.board_emulator import EmulatedBoard
        from tests.flows.test_link_training import BoardPort
        Device(BoardPort(EmulatedBoard(model, lanes=LANES))).read_model(model)
    assert LinkIdentity.from_bytes(link_identity(model, lanes=LANES, rule=RULE,
                                                 train_block=BLOCK).to_bytes()).trains


def test_a_lean_link_is_asked_for_by_a_bool_and_needs_room_for_its_records():
    # Record j takes buffer bytes 6 j..6 j + 5, below sample j + 1's label at
    # (j + 1)(D + 1): D = 5 just fits, D = 4 would overwrite the next label unread.
    def core(inputs: int) -> TrainingCore:
        return TrainingCore(make_model(ModelConfig(algo="ffdl", input_size=inputs,
                                                   num_classes=K, hidden=(4,), theta=0.5),
                                       11), RULE, lanes=2)
    with pytest.raises(TypeError, match=r"^Lean must be True or False, not 1$"):
        HostLink(core(D), divisor=DIVISOR, lean=1)
    with pytest.raises(ValueError, match=r"^A lean link keeps the TRAIN records in the "
                                         r"sample buffer, which needs an input size of at "
                                         r"least 5, not 4$"):
        HostLink(core(4), divisor=DIVISOR, lean=True)
    assert HostLink(core(5), divisor=DIVISOR, lean=True).lean
    # An inference link has no records: lean is only its serialiser's shared header there
    # (and D = 4 is fine).
    assert HostLink(core(4).core, divisor=DIVISOR, lean=True).lean


def test_the_record_memory_exists_only_without_lean(model):
    # Off, the link's RTLIL is what it was before the option (compared byte for byte, src
    # attributes aside, with main's when the option came in: the block RAM and
    # small-part training links, two inference links); on, the records go into the
    # sample buffer: no record memory, and the byte counter that writes them.
    def text(lean: bool) -> str:
        link = HostLink(TrainingCore(model, RULE, lanes=LANES), divisor=DIVISOR,
                        train_block=BLOCK, lean=lean)
        return rtlil.convert(link, name="top")
    off, on = text(False), text(True)
    assert " \\records\n" in off and "record_byte" not in off
    assert "records" not in on and "record_byte" in on
    # The serialiser's one header select (ReplySerialiser(shared_header=True)) too.
    assert "picked_header" not in off and "picked_header" in on
    # And the body's last byte marked for its short send index (short_index=True).
    assert "body_last" not in off and "body_last" in on


def test_a_lean_spram_link_keeps_its_read_in_the_load_registers(model):
    # Off, the link's RTLIL is what it was before these options (compared byte for byte,
    # src attributes aside, with main's when they came in: the block RAM and SPRAM
    # training links, two inference links). On, a READ's payload waits in the load
    # transaction's registers (LoadTransaction(holds_read=True)) and its reply length is
    # made from the product at the decision: no READ registers of the link's own, no
    # read_length register; and the parser takes the crc byte in its payload state
    # (FrameParser(crc_in_payload=True)): no last_count.
    def text(lean: bool) -> str:
        core = TrainingCore(model, dataclasses.replace(RULE, store_bits=16), lanes=4,
                            weights="spram")
        link = HostLink(core, divisor=DIVISOR, train_block=BLOCK, initialised=False,
                        lean=lean)
        return rtlil.convert(link, name="top")
    off, on = text(False), text(True)
    assert "read_byte_0" in off and "read_byte_0" not in on
    assert " \\read_length\n" in off and " \\read_length\n" not in on
    held = re.compile(r"wire width 40 \\held\n")
    assert not held.search(off) and held.search(on)
    assert " \\last_count\n" in off and "last_count" not in on


@pytest.mark.parametrize("lean", [False, True])
def test_a_read_fits_its_reply_exactly_when_its_length_field_holds_it(model, lean):
    # READ_fits (error 3 after the range): lean, the product's high bits, not a
    # comparison. Unreachable through the test models' shallow memories (the range
    # refuses first), so the decision's expression is simulated on its own at the edges.
    link = HostLink(TrainingCore(model, RULE, lanes=LANES), divisor=DIVISOR,
                    train_block=BLOCK, lean=lean)
    read_bytes = link.identity.read_bytes
    limit = 0xFFFF // read_bytes
    counts = [0, 1, limit - 1, limit, limit + 1, 0x8000, 0xFFFF]
    m, count, fits = Module(), Signal(16), Signal()
    m.d.comb += fits.eq(link._read_fits(count))
    got = []

    async def testbench(ctx) -> None:
        for value in counts:
            ctx.set(count, value)
            got.append(ctx.get(fits))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    assert got == [int(value * read_bytes <= 0xFFFF) for value in counts]


def test_a_memory_deeper_than_the_links_addresses_is_refused_by_name():
    # 784 x 90 weights on one lane: 70,560 words, beyond LOAD's and READ's 16-bit
    # addresses and IDENT's depth field (it used to end in int.to_bytes's OverflowError).
    deep = make_model(ModelConfig(algo="ffdl", input_size=784, num_classes=K, hidden=(90,),
                                  theta=0.5), 3)
    with pytest.raises(ValueError, match="the weights memory has 70560 words, more than the "
                                         "host link's 16-bit addresses reach"):
        HostLink(Core(deep, lanes=1, weights="loadable"), divisor=DIVISOR)


def test_only_an_spram_training_link_takes_loads_of_the_stored_words(model):
    # Block RAM is initialised by the bitstream: no load. SPRAM comes up empty: loadable,
    # no model until a load commits, and the link must be told so.
    assert not HostLink(TrainingCore(model, RULE, lanes=2), divisor=DIVISOR).identity.loadable
    spram = TrainingCore(model, RULE, lanes=2, weights="spram")
    with pytest.raises(ValueError, match=r"^An SPRAM training core's weights come up empty: "
                                         r"build its link with initialised=False$"):
        HostLink(spram, divisor=DIVISOR)
    ident = HostLink(spram, divisor=DIVISOR, initialised=False).identity
    assert ident.loadable and not ident.model_loaded
    # The checksum is over the stored words, (w << f) + 2^(f-1), and the sequencer
    # program's: what Device.load_model sends a training device.
    stored = load_words(link_program(model, lanes=2, store_bits=RULE.store_bits))
    assert [w for w in stored if w[0] != LOAD_TARGETS["ops"]] == spram.starting_loads()
    assert ident.weights_checksum == load_checksum(stored, ident.load_data_bytes)
    forward = load_words(link_program(model, lanes=2))
    assert ident.weights_checksum != load_checksum(forward, ident.load_data_bytes)
    assert ident == dataclasses.replace(link_identity(
        model, lanes=2, rule=RULE, train_block=ident.train_block, loadable=True),
        model_loaded=False)
