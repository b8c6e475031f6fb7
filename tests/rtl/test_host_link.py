# amaranth: UnusedElaboratable=no
"""The host link end to end in Amaranth's simulator.

The host library (ffcl_hw.device) encodes every frame; the testbench puts its bytes on
``rx`` at the UART's bit time, decodes ``tx`` back into bytes and parses them with the
host library's FrameReader. Every RESULT is compared bit for bit with the golden model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from amaranth.sim import Simulator

from ffcl_hw.device import (
    Device,
    FrameReader,
    HostLinkError,
    crc8,
    encode_frame,
)
from golden.intmodel import IntModel
from rtl.core import Core, load_words
from rtl.host_link import HostLink, LinkIdentity, link_identity, load_checksum
from rtl.protocol import Command, ErrorCode, Reply
from sim.lint import lint_verilog
from tests.golden.variants import reweighted
from tests.rtl.helpers import PERIOD
from tests.rtl.test_core import _random_model

DIVISOR = 4
TIMEOUT_BITS = 24


@dataclasses.dataclass
class Step:
    """Bytes for the line, after ``gap_bits`` idle bit times, and the replies they earn;
    then ``settle_bits`` of idle line in which an unexpected extra reply would show."""

    data: bytes
    replies: int = 1
    gap_bits: int = 2
    settle_bits: int = 30



async def send_byte(ctx, line, byte: int) -> None:
    """Drive one 8N1 byte onto ``line``, one bit per DIVISOR cycles."""
    for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
        ctx.set(line, bit)
        await ctx.tick().repeat(DIVISOR)


async def receive_byte(ctx, line) -> int:
    """A UART receiver in Python: wait for the start bit, sample every bit in its middle.

    Checks the start bit at its middle and the stop bit, so a malformed frame on the
    device's tx line fails the test.
    """
    while True:
        await ctx.tick()
        if not ctx.get(line):
            break
    await ctx.tick().repeat(DIVISOR // 2)
    assert ctx.get(line) == 0, "start bit too short"
    value = 0
    for i in range(8):
        await ctx.tick().repeat(DIVISOR)
        value |= ctx.get(line) << i
    await ctx.tick().repeat(DIVISOR)
    assert ctx.get(line) == 1, "framing error on tx"
    return value

def exchange(link: HostLink, steps: list[Step]) -> list[list[tuple[int, bytes]]]:
    """Play ``steps`` on the link's rx; returns the frames received after each step."""
    reader = FrameReader()
    received: list[tuple[int, bytes]] = []
    per_step: list[list[tuple[int, bytes]]] = []
    sim = Simulator(link)
    sim.add_clock(PERIOD)

    async def monitor(ctx) -> None:
        while True:
            received.extend((frame.cmd, frame.payload) for frame in
                            reader.frames(bytes([await receive_byte(ctx, link.tx)])))

    async def driver(ctx) -> None:
        ctx.set(link.rx, 1)
        for step in steps:
            await ctx.tick().repeat(step.gap_bits * DIVISOR)
            before = len(received)
            for byte in step.data:
                await send_byte(ctx, link.rx, byte)
            # Generous: a reply of up to 64 bytes and an inference of up to 4000 cycles.
            for _ in range(64 * 10 * DIVISOR + 4000):
                if len(received) >= before + step.replies:
                    break
                await ctx.tick()
            if step.settle_bits:
                await ctx.tick().repeat(step.settle_bits * DIVISOR)
            per_step.append(received[before:])

    sim.add_testbench(monitor, background=True)
    sim.add_testbench(driver)
    sim.run()
    assert reader.skipped == 0, "noise on tx"
    return per_step


def result_of(identity: LinkIdentity, payload: bytes) -> tuple[int, list[int], int]:
    n = identity.score_bytes
    assert len(payload) == identity.result_size
    scores = [int.from_bytes(payload[1 + k * n:1 + (k + 1) * n], "little")
              for k in range(identity.labels)]
    return payload[0], scores, int.from_bytes(payload[-4:], "little")


def image_frame(image) -> bytes:
    return encode_frame(Command.IMAGE, bytes(int(p) for p in image))


def assert_golden(core: Core, model: IntModel, images, replies) -> None:
    """Every reply is a RESULT equal to the golden model's label, scores and cycles."""
    golden = model.run(np.asarray(images))
    identity = link_identity(model, lanes=core.lanes, label_lanes=core.program.label_lanes)
    assert len(replies) == len(images)
    for i, (cmd, payload) in enumerate(replies):
        assert cmd == Reply.RESULT
        label, scores, cycles = result_of(identity, payload)
        assert label == golden.labels[i]
        assert scores == [int(s) for s in golden.scores[i]]
        assert cycles == core.cycles_per_inference()


@pytest.fixture(scope="module")
def model() -> IntModel:
    return _random_model("ffcl-adjacent-T3", 21)


def images_for(model: IntModel, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, model.fmt.input_max + 1, size=(n, model.config.input_size))


@pytest.mark.parametrize("name", ["ffdl", "ffcl-adjacent-T3"])
def test_ident_reports_the_identity_and_images_match_the_golden_model(name):
    model = _random_model(name, 5)
    core = Core(model, lanes=3)
    link = HostLink(core, divisor=DIVISOR, timeout_bits=TIMEOUT_BITS)
    images = images_for(model, 2, 7)
    replies = exchange(link, [Step(encode_frame(Command.IDENT)),
                              *(Step(image_frame(image)) for image in images)])
    assert replies[0] == [(Reply.IDENT, link.identity.to_bytes())]
    assert LinkIdentity.from_bytes(replies[0][0][1]) == link.identity
    assert link.identity == link_identity(model, lanes=3)
    assert_golden(core, model, images, [r[0] for r in replies[1:]])


def _corrupt_crc(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0x01])


def _raw(cmd: int, length: int, payload: bytes) -> bytes:
    """A frame with a length field that disagrees with its payload, but a good crc."""
    body = bytes([cmd, 0]) + length.to_bytes(2, "little") + payload
    return bytes([0xA5]) + body + bytes([crc8(body)])


# Each bad frame gets exactly one ERROR reply with its code, and the next IMAGE works.
BAD_FRAMES = {
    "crc": (lambda m: _corrupt_crc(image_frame([1] * m.config.input_size)), ErrorCode.CRC),
    "payload-bit-flip": (lambda m: image_frame([1] * m.config.input_size)[:6] + b"\x7f"
                         + image_frame([1] * m.config.input_size)[7:], ErrorCode.CRC),
    "unknown-command": (lambda m: encode_frame(0x08, b"\x00\x01"), ErrorCode.COMMAND),
    "reply-code-as-command": (lambda m: encode_frame(0x81), ErrorCode.COMMAND),
    "image-too-short": (lambda m: encode_frame(Command.IMAGE, bytes(m.config.input_size - 1)),
                        ErrorCode.LENGTH),
    "image-too-long": (lambda m: encode_frame(Command.IMAGE, bytes(m.config.input_size + 1)),
                       ErrorCode.LENGTH),
    "ident-with-payload": (lambda m: encode_frame(Command.IDENT, b"\x00"), ErrorCode.LENGTH),
    "load-on-rom-core": (lambda m: encode_frame(Command.LOAD, bytes(12)), ErrorCode.LOAD),
    "load-begin-on-rom-core": (lambda m: encode_frame(Command.LOAD_BEGIN, bytes(8)),
                               ErrorCode.LOAD),
    "load-commit-on-rom-core": (lambda m: encode_frame(Command.LOAD_COMMIT), ErrorCode.LOAD),
    # Whatever their length: the core does not train.
    "train-on-inference-core": (lambda m: encode_frame(Command.TRAIN, bytes(3)), ErrorCode.TRAIN),
    "read-on-inference-core": (lambda m: encode_frame(Command.READ, bytes(5)), ErrorCode.TRAIN),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_a_bad_frame_gets_its_error_code_and_the_link_stays_usable(case, model):
    make, code = BAD_FRAMES[case]
    core = Core(model, lanes=3)
    link = HostLink(core, divisor=DIVISOR, timeout_bits=TIMEOUT_BITS)
    images = images_for(model, 1, 3)
    replies = exchange(link, [Step(make(model)), Step(image_frame(images[0]))])
    assert replies[0] == [(Reply.ERROR, bytes([code]))]
    assert_golden(core, model, images, replies[1])


@pytest.mark.parametrize(("cut", "noise"), [(1, b""), (3, b""), (8, b""), (13, b""),
                                            (0, b"\x00\x13\xff"), (6, b"\xa5")])
def test_a_truncated_frame_is_dropped_after_the_idle_timeout(cut, noise, model):
    # The host stops mid-frame (or sends noise), stays quiet for longer than the
    # timeout, then sends a good frame: no reply to the fragment, the right one to it.
    core = Core(model, lanes=3)
    link = HostLink(core, divisor=DIVISOR, timeout_bits=TIMEOUT_BITS)
    images = images_for(model, 1, 4)
    fragment = noise + image_frame(images[0])[:cut]
    replies = exchange(link, [Step(fragment, replies=0),
                              Step(image_frame(images[0]), gap_bits=TIMEOUT_BITS + 11)])
    assert replies[0] == []
    assert_golden(core, model, images, replies[1])


@pytest.mark.parametrize(("gap_bits", "kept"), [(2, True), (TIMEOUT_BITS - 1, True),
                                               (TIMEOUT_BITS + 1, False)])
def test_the_timeout_counts_silence_between_the_bytes_of_a_frame(gap_bits, kept):
    # A pause inside a frame: below the timeout the frame continues and is answered;
    # above it the parser has started over, so the rest of the frame is noise.
    model = _random_model("ffdl", 2)
    core = Core(model, lanes=2)
    link = HostLink(core, divisor=DIVISOR, timeout_bits=TIMEOUT_BITS)
    images = images_for(model, 2, 5)
    frame = image_frame(images[0])
    replies = exchange(link, [Step(frame[:5], replies=0, settle_bits=0),
                              Step(frame[5:], gap_bits=gap_bits, replies=int(kept)),
                              Step(image_frame(images[1]), gap_bits=TIMEOUT_BITS + 1)])
    assert replies[0] == []
    if kept:
        assert_golden(core, model, images[:1], replies[1])
    else:
        assert replies[1] == []
    assert_golden(core, model, images[1:], replies[2])


def _other_model(model_a: IntModel, seed: int) -> IntModel:
    """Same configuration and formats, other integers."""
    return reweighted(model_a, seed)


def load_frame(link: HostLink, target: int, addr: int, word: int) -> bytes:
    n = link.identity.load_data_bytes
    return encode_frame(Command.LOAD, bytes([target]) + addr.to_bytes(2, "little")
                        + word.to_bytes(n, "little"))


def begin_frame(link: HostLink, writes, *, model_hash: int | None = None) -> bytes:
    """LOAD_BEGIN announcing ``writes`` (the link's own model hash unless given)."""
    announced = link.identity.model_hash if model_hash is None else model_hash
    checksum = load_checksum(writes, link.identity.load_data_bytes)
    return encode_frame(Command.LOAD_BEGIN, announced.to_bytes(4, "little")
                        + checksum.to_bytes(4, "little"))


COMMIT = encode_frame(Command.LOAD_COMMIT)
ACK_BEGIN, ACK_LOAD, ACK_COMMIT = ([(code, b"")] for code in (Reply.LOAD_BEGIN, Reply.LOAD,
                                                              Reply.LOAD_COMMIT))


def error(code: int) -> list[tuple[int, bytes]]:
    return [(Reply.ERROR, bytes([code]))]


@pytest.fixture(scope="module")
def two_models():
    # B is A with other biases only, so that a whole load of B is a few writes (the bias
    # memory) and each transaction below takes seconds, not a minute, in this simulator.
    model_a = _random_model("ffdl", 21)
    other = _other_model(model_a, 22)
    model_b = dataclasses.replace(model_a, layers=[
        dataclasses.replace(layer, b=new.b) for layer, new in zip(model_a.layers, other.layers,
                                                                   strict=True)])
    images = images_for(model_a, 1, 23)
    # Every load below must be visible: the two models disagree on the image.
    assert (model_a.run(images).scores != model_b.run(images).scores).any()
    return model_a, model_b, images


def _changed_writes(core: Core, model: IntModel) -> list[tuple[int, int, int]]:
    """The writes of ``model`` that differ from the core's built-in model."""
    built_in = set(load_words(core.program))
    return [w for w in core.load_words_for(model) if w not in built_in]


#: In an expected reply list: a RESULT equal to model A's for the image.
RESULT_A = "result-a"


def _transaction(case: str, link: HostLink, writes, images):
    """(steps, expected replies, model the final image must match: "a", "b" or None).

    With one bank a failed or open transaction leaves no model to classify with; with two
    the model in use stays in use (RESULT_A where one bank answers error 8).
    """
    image = image_frame(images[0])
    loads = [Step(load_frame(link, *w), settle_bits=0) for w in writes]
    acks = [ACK_LOAD] * len(writes)
    begin = Step(begin_frame(link, writes))
    none = "a" if link.banked else None
    refused = RESULT_A if link.banked else error(ErrorCode.NO_MODEL)
    if case == "good":
        return [begin, *loads, Step(COMMIT), Step(image)], [ACK_BEGIN, *acks, ACK_COMMIT], "b"
    if case == "a-write-lost":
        return ([begin, *loads[:-1], Step(COMMIT), Step(image)],
                [ACK_BEGIN, *acks[:-1], error(ErrorCode.CHECKSUM)], none)
    if case == "a-write-twice":
        return ([begin, *loads, loads[0], Step(COMMIT), Step(image)],
                [ACK_BEGIN, *acks, ACK_LOAD, error(ErrorCode.CHECKSUM)], none)
    if case == "image-while-loading":
        return ([begin, *loads[:1], Step(image), *loads[1:], Step(COMMIT), Step(image)],
                [ACK_BEGIN, ACK_LOAD, refused, *acks[1:], ACK_COMMIT], "b")
    if case == "retry-after-bad-crc":
        bad = Step(_corrupt_crc(load_frame(link, *writes[0])))
        return ([begin, bad, *loads, Step(COMMIT), Step(image)],
                [ACK_BEGIN, error(ErrorCode.CRC), *acks, ACK_COMMIT], "b")
    if case == "another-configuration":
        # Refused before anything is written: the old model stays and is still used.
        other = Step(begin_frame(link, writes, model_hash=link.identity.model_hash ^ 1))
        return [other, Step(image)], [error(ErrorCode.MODEL)], "a"
    if case == "load-without-begin":
        return ([loads[0], Step(COMMIT), Step(image)],
                [error(ErrorCode.SEQUENCE), error(ErrorCode.SEQUENCE)], "a")
    if case == "begin-too-short":
        return ([Step(encode_frame(Command.LOAD_BEGIN, bytes(7))), Step(image)],
                [error(ErrorCode.LENGTH)], "a")
    if case == "commit-with-payload":
        return ([begin, Step(encode_frame(Command.LOAD_COMMIT, b"\x00")), Step(COMMIT),
                 Step(image)],
                [ACK_BEGIN, error(ErrorCode.LENGTH), error(ErrorCode.CHECKSUM)], none)
    raise ValueError(case)


TRANSACTIONS = ["good", "a-write-lost", "a-write-twice", "image-while-loading",
                "retry-after-bad-crc", "another-configuration", "load-without-begin",
                "begin-too-short", "commit-with-payload"]


#: The cases that also run on one bank by default (the rest with ``-m slow``): a lost
#: write (one bank: no model to classify with after it) and an image while loading (one
#: bank: refused, no model in use). A good load on one bank is opt-in too: covered by
#: default by [image-while-loading-1], whose load commits, classifies with model B and
#: IDENTs its checksum as [good-1] does.
ONE_BANK_DEFAULT = ("a-write-lost", "image-while-loading")


@pytest.mark.parametrize(("case", "banks"), [
    (case, banks) if banks == 2 or case in ONE_BANK_DEFAULT
    else pytest.param(case, banks, marks=pytest.mark.slow)
    for case in TRANSACTIONS for banks in (1, 2)])
def test_a_load_transaction_commits_only_with_the_whole_model_checksum(case, banks, two_models):
    model_a, model_b, images = two_models
    core = Core(model_a, lanes=8, weights="loadable", banks=banks)
    link = HostLink(core, divisor=DIVISOR, timeout_bits=TIMEOUT_BITS)
    writes = _changed_writes(core, model_b)
    steps, expected, final = _transaction(case, link, writes, images)
    steps.append(Step(encode_frame(Command.IDENT)))
    replies = exchange(link, steps)
    for i, want in enumerate(expected):
        if want == RESULT_A:
            assert_golden(core, model_a, images, replies[i])
        else:
            assert replies[i] == want, f"reply {i}"
    # The image after the transaction: the model in use, or refused for want of one.
    if final is None:
        assert replies[-2] == error(ErrorCode.NO_MODEL)
    else:
        assert_golden(core, {"a": model_a, "b": model_b}[final], images, replies[-2])
    # IDENT says whether a complete model is loaded, and whose checksum it has.
    identity = LinkIdentity.from_bytes(replies[-1][0][1])
    assert identity.model_loaded == (final is not None)
    if final is not None:
        chosen = writes if final == "b" else load_words(core.program)
        assert identity.weights_checksum == load_checksum(chosen, identity.load_data_bytes)


def test_two_banks_switch_on_every_good_commit(two_models):
    # A, then B loaded into bank 1, then A loaded again into bank 0: each commit switches
    # to the bank just written, and a failed load between them changes nothing.
    model_a, model_b, images = two_models
    core = Core(model_a, lanes=8, weights="loadable", banks=2)
    link = HostLink(core, divisor=DIVISOR, timeout_bits=TIMEOUT_BITS)
    # B differs from A in its biases only: each load writes those words (into a bank that
    # started as A), so the test takes seconds. Reading the wrong bank shows as A for B.
    to_b = _changed_writes(core, model_b)
    built_in = load_words(core.program)
    to_a = [w for w in built_in if (w[0], w[1]) in {(t, a) for t, a, _ in to_b}]

    def load(writes, *, lose_one=False):
        sent = writes[:-1] if lose_one else writes
        return [Step(begin_frame(link, writes)),
                *(Step(load_frame(link, *w), settle_bits=0) for w in sent), Step(COMMIT)]

    steps = [*load(to_b), Step(image_frame(images[0])), *load(to_a, lose_one=True),
             Step(image_frame(images[0])), *load(to_a), Step(image_frame(images[0]))]
    replies = exchange(link, steps)
    n_b, n_a = len(to_b) + 2, len(to_a) + 2
    assert replies[n_b - 1] == ACK_COMMIT
    assert_golden(core, model_b, images, replies[n_b])
    assert replies[n_b + n_a - 1] == error(ErrorCode.CHECKSUM)
    assert_golden(core, model_b, images, replies[n_b + n_a])
    assert replies[-2] == ACK_COMMIT
    assert_golden(core, model_a, images, replies[-1])


def test_a_board_with_empty_memories_refuses_images_until_a_load_commits(two_models):
    model_a, model_b, images = two_models
    core = Core(model_a, lanes=8, weights="loadable")
    link = HostLink(core, divisor=DIVISOR, timeout_bits=TIMEOUT_BITS, initialised=False)
    assert not link.identity.model_loaded
    writes = _changed_writes(core, model_b)
    replies = exchange(link, [Step(encode_frame(Command.IDENT)), Step(image_frame(images[0])),
                              Step(begin_frame(link, writes)),
                              *(Step(load_frame(link, *w), settle_bits=0) for w in writes),
                              Step(COMMIT), Step(image_frame(images[0]))])
    assert not LinkIdentity.from_bytes(replies[0][0][1]).model_loaded
    assert replies[1] == error(ErrorCode.NO_MODEL)
    assert replies[-2] == ACK_COMMIT
    assert_golden(core, model_b, images, replies[-1])


@pytest.mark.parametrize(("case", "code"), [("target-0", ErrorCode.LOAD),
                                            ("target-5", ErrorCode.LOAD),
                                            ("address-beyond", ErrorCode.ADDRESS),
                                            ("ops-address-8-of-5", ErrorCode.ADDRESS),
                                            ("bad-crc", ErrorCode.CRC),
                                            ("short", ErrorCode.LENGTH)])
def test_a_refused_load_leaves_the_weights_alone(case, code, two_models):
    model_a, model_b, images = two_models
    core = Core(model_a, lanes=3, weights="loadable")
    link = HostLink(core, divisor=DIVISOR, timeout_bits=TIMEOUT_BITS)
    # A write that would change the model (the first weight word of model B).
    target, addr, word = next(w for w in core.load_words_for(model_b) if w[0] == 2)
    frame = {
        "target-0": load_frame(link, 0, addr, word),
        "target-5": load_frame(link, 5, addr, word),
        "address-beyond": load_frame(link, target, 0xFFFF, word),
        # The case: inside the largest memory's range, past the program's 5
        # ops; the ops memory keeps 3 address bits, so it would overwrite op 0.
        "ops-address-8-of-5": load_frame(link, 1, 8, word),
        "bad-crc": _corrupt_crc(load_frame(link, target, addr, word)),
        # The payload one byte short, with a correct crc.
        "short": encode_frame(Command.LOAD, load_frame(link, target, addr, word)[5:-2]),
    }[case]
    assert link.identity.depths[0] == 5
    # In a transaction of no writes: the refused frame must neither write nor count.
    replies = exchange(link, [Step(begin_frame(link, [])), Step(frame), Step(COMMIT),
                              Step(image_frame(images[0]))])
    assert replies[:3] == [ACK_BEGIN, error(code), ACK_COMMIT]
    assert_golden(core, model_a, images, replies[3])


@pytest.mark.parametrize(("weights", "banks", "score_port"), [
    ("rom", 1, False), ("loadable", 1, False), ("loadable", 2, False), ("rom", 1, True)])
def test_the_host_link_exports_lint_clean_verilog(weights, banks, score_port, tmp_path):
    # score_port: the tables and the byte select of a RESULT's scores lint-clean too.
    core = Core(_random_model("ffcl-adjacent-T3", 1), lanes=2, weights=weights, banks=banks,
                score_port=score_port)
    path = tmp_path / "host_link.v"
    path.write_text(verilog.convert(HostLink(core, divisor=4), name="host_link"))
    status, messages = lint_verilog(Path(path))
    assert status == 0, messages
    assert "%Warning" not in messages and "%Error" not in messages, messages


def test_host_link_refuses_bad_parameters():
    model = _random_model("ffdl", 1)
    with pytest.raises(ValueError, match="^Divisor must be an integer of at least 4, not 2$"):
        HostLink(Core(model, lanes=2), divisor=2)
    with pytest.raises(ValueError, match="Timeout must be an integer of at least 20"):
        HostLink(Core(model, lanes=2), divisor=4, timeout_bits=5)
    with pytest.raises(TypeError, match="Core must be an rtl.core.Core"):
        HostLink(model, divisor=4)
    wide = dataclasses.replace(model, fmt=dataclasses.replace(model.fmt, input_max=300))
    with pytest.raises(ValueError, match="Pixels must be at most 8 bits for the host link, "
                                         "not 9"):
        HostLink(Core(wide, lanes=2), divisor=4)


class SimulatedBoard:
    """A port (``write``/``read``) whose far end is the HostLink in Amaranth's simulator,
    so that :class:`ffcl_hw.device.Device` itself can be tested against the gateware.

    ``read`` runs the simulation until the bytes have come out of ``tx`` or a budget of
    cycles has passed (then it returns fewer bytes, as a serial port's timeout does).
    """

    def __init__(self, link: HostLink, *, budget_cycles: int = 20_000) -> None:
        self.budget_cycles = budget_cycles
        self._to_line: list[int] = []
        self._from_line = bytearray()
        self._cycles = 0
        self.sim = Simulator(link)
        self.sim.add_clock(PERIOD)

        async def driver(ctx) -> None:
            ctx.set(link.rx, 1)
            while True:
                if not self._to_line:
                    await ctx.tick()
                    continue
                await send_byte(ctx, link.rx, self._to_line.pop(0))

        async def monitor(ctx) -> None:
            while True:
                self._from_line.append(await receive_byte(ctx, link.tx))

        self.sim.add_testbench(driver, background=True)
        self.sim.add_testbench(monitor, background=True)

    def write(self, data: bytes) -> int:
        self._to_line.extend(data)
        return len(data)

    def read(self, size: int) -> bytes:
        spent = 0
        while len(self._from_line) < size and spent < self.budget_cycles:
            self._cycles += 64
            spent += 64
            self.sim.run_until(self._cycles * PERIOD)
        out = bytes(self._from_line[:size])
        del self._from_line[:size]
        return out


# Opt-in (-m slow): the same scenario (ffcl_hw.device: identify, check, classify, load
# another model, classify with it, a wrong lane count refused) runs by default under
# Verilator on the link's Verilog, tests/sim/test_hostlink_cocotb.py::
# test_the_host_library_drives_the_host_link_verilog[2] (identify,
# load_another_model_at_run_time); SimulatedBoard stays in the default run through
# tests/rtl/test_host_link_training.py and tests/rtl/test_link_faults.py.
@pytest.mark.slow
def test_the_host_library_drives_the_simulated_board():
    # ffcl_hw.device.Device end to end: check the identity, classify, load another
    # model, classify with it; every result bit for bit against the golden model.
    model_a = _random_model("ffdl", 31)
    model_b = _other_model(model_a, 32)
    core = Core(model_a, lanes=8, weights="loadable")
    device = Device(SimulatedBoard(HostLink(core, divisor=DIVISOR,
                                            timeout_bits=TIMEOUT_BITS)))
    assert device.check(model_a, lanes=8).loadable
    images = images_for(model_a, 2, 33)
    # The load must be visible: the two models disagree on these images.
    assert (model_a.run(images).scores != model_b.run(images).scores).any()
    for model in (model_a, model_b):
        if model is model_b:
            assert device.load_model(core.load_words_for(model_b)) == 45
        golden = model.run(images)
        for i, image in enumerate(images):
            label, scores, cycles = device.classify(image)
            assert label == golden.labels[i]
            assert scores == [int(s) for s in golden.scores[i]]
            assert cycles == core.cycles_per_inference()
    with pytest.raises(HostLinkError, match="device has lanes = 8, the model needs 3"):
        device.check(model_a, lanes=3)


def test_a_core_with_a_score_port_answers_images_like_the_golden_model():
    # Core(score_port=True): the link reads each RESULT's scores through the argmax's
    # select, idle once the result is in, instead of the record's (not read at all).
    # Four images of labels 2, 1, 1, 2 (never 0, what a search that lost its select to
    # the port reports): each reply's scores must be its own inference's.
    model = _random_model("ffcl-adjacent-T3", 7)
    core = Core(model, lanes=3, score_port=True)
    link = HostLink(core, divisor=DIVISOR, timeout_bits=TIMEOUT_BITS)
    images = images_for(model, 4, 9)
    assert list(model.run(images).labels) == [2, 1, 1, 2]
    replies = exchange(link, [Step(image_frame(image)) for image in images])
    assert_golden(core, model, images, [r[0] for r in replies])


def _module_ports(text: str) -> dict[str, set[str]]:
    """Each RTLIL module's port names."""
    ports: dict[str, set[str]] = {}
    for chunk in text.split("\nmodule ")[1:]:
        name, _, body = chunk.partition("\n")
        ports[name] = {line.split()[-1] for line in body.splitlines()
                       if line.startswith("  wire ") and (" input " in line or " output " in line)}
    return ports


def test_the_score_port_exists_only_with_the_option():
    # Off (every build but the iCEBreaker training build's), the argmax reads nothing
    # between searches and the serialiser picks the score bytes from the record: the
    # RTLIL of the argmax, two cores and four links (inference and training, block RAM
    # and small-part) was compared byte for byte, src attributes aside, with main's
    # when the option came in. On: the core's port, its argmax's, and the link's
    # serialiser reads it.
    model = _random_model("ffdl", 7)
    for on in (False, True):
        core = Core(model, lanes=3, score_port=on)
        assert core.score_port_enabled == on and hasattr(core, "score") == on
        ports = _module_ports(rtlil.convert(HostLink(core, divisor=DIVISOR), name="top"))
        # (An input port takes its RTLIL name from what drives it: the core's address is
        # ``read__addr``, its argmax's.)
        for module, port in (("\\top.core", "\\score__data"),
                             ("\\top.core.argmax", "\\read__addr"),
                             ("\\top.replies", "\\score__addr"),
                             ("\\top.replies", "\\score__data")):
            assert (port in ports[module]) == on, (on, module, port)
    with pytest.raises(TypeError, match=r"^Score port must be True or False, not 1$"):
        Core(model, lanes=3, score_port=1)
