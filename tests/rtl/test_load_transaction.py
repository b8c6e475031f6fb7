# amaranth: UnusedElaboratable=no
"""The host link's load transaction on its own: frames in as the parser gives them, the
verdict, the write and the model's state out.

The frames are the host library's (rtl.host_link.load_payload, load_checksum), so the
running CRC-32 is checked against the protocol's reference, not against itself.
"""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from rtl.core import LOAD_TARGETS, Core, load_depths, load_words
from rtl.host_link import load_checksum, load_payload, model_hash
from rtl.load_transaction import LoadTransaction, load_data_bytes
from rtl.protocol import READ_SIZE, Command, ErrorCode
from rtl.reply_serialiser import ReplyFrame
from tests.rtl.helpers import PERIOD
from tests.rtl.test_core import _random_model

MODEL = _random_model("ffdl", 41)
PROGRAM = Core(MODEL, lanes=2, weights="loadable").program
N = load_data_bytes(PROGRAM)
HASH = model_hash(MODEL)
#: A few writes of the model (any writes do: the transaction checks the checksum only).
WRITES = load_words(PROGRAM)[:3] + [w for w in load_words(PROGRAM) if w[0] == 3][:2]
BUILT_IN = 0x1234_5678


def begin(writes, model_hash_: int = HASH) -> tuple[int, bytes]:
    return Command.LOAD_BEGIN, (model_hash_.to_bytes(4, "little")
                                + load_checksum(writes, N).to_bytes(4, "little"))


def load(write) -> tuple[int, bytes]:
    return Command.LOAD, load_payload(*write, N)


COMMIT = (Command.LOAD_COMMIT, b"")


def play(frames, *, banked: bool, write_made=lambda i: True, holds_read: bool = False,
         serial_checksum: bool = False, one_bound: bool = False):
    """Each frame as the parser and the link present it; returns per frame the verdict
    (reply, error, write), the write's fields when it was a write, and the state after
    (model_ok, checksum, bank), and with ``holds_read`` also ``held`` after it. The link
    decides on the load commands only (not on a READ)."""
    dut = LoadTransaction(PROGRAM, model_hash=HASH, checksum=BUILT_IN, model_loaded=True,
                          banked=banked, holds_read=holds_read,
                          serial_checksum=serial_checksum, one_bound=one_bound)
    out = []

    async def testbench(ctx) -> None:
        for i, (cmd, payload) in enumerate(frames):
            ctx.set(dut.cmd, cmd)
            ctx.set(dut.length, len(payload))
            ctx.set(dut.header, 1)
            await ctx.tick()
            ctx.set(dut.header, 0)
            for index, byte in enumerate(payload):
                ctx.set(dut.payload.valid, 1)
                ctx.set(dut.payload.payload, {"data": byte, "index": index})
                await ctx.tick()
                ctx.set(dut.payload.valid, 0)
                # Bytes come a UART byte apart (serial_checksum: a byte counts over the
                # 8 cycles after it).
                await ctx.tick().repeat(8 if serial_checksum else 2)
            # The crc byte's cycle, then the decision's: the verdict must be ready then.
            await ctx.tick().repeat(2)
            verdict = ctx.get(dut.verdict)
            write = None
            if verdict.write:
                write = (ctx.get(dut.write.target), ctx.get(dut.write.addr),
                         ctx.get(dut.write.data))
            ctx.set(dut.decide, cmd != Command.READ)
            await ctx.tick()
            ctx.set(dut.decide, 0)
            if verdict.write and write_made(i):
                # The core takes the write some cycles later.
                await ctx.tick().repeat(3)
                ctx.set(dut.written, 1)
                await ctx.tick()
                ctx.set(dut.written, 0)
            await ctx.tick().repeat(2)
            reply = verdict.reply
            out.append(((reply, verdict.error if reply == ReplyFrame.ERROR else 0,
                         bool(verdict.write)), write,
                        (ctx.get(dut.model_ok), ctx.get(dut.checksum), ctx.get(dut.bank)),
                        *([ctx.get(dut.held)] if holds_read else [])))

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    sim.add_testbench(testbench)
    sim.run()
    return out


ACK_BEGIN = (ReplyFrame.LOAD_BEGIN, 0, False)
WRITE = (ReplyFrame.LOAD, 0, True)
ACK_COMMIT = (ReplyFrame.LOAD_COMMIT, 0, False)


def error(code: ErrorCode):
    return (ReplyFrame.ERROR, code, False)


#: The pending checksum a byte at a time as the bytes arrive, or a bit a cycle after each
#: (serial_checksum, the lean training link's).
COUNTING = pytest.mark.parametrize("serial_checksum", [False, True], ids=["byte", "serial"])


@COUNTING
@pytest.mark.parametrize("banked", [False, True])
def test_a_good_transaction_writes_every_word_and_commits(banked, serial_checksum):
    result = play([begin(WRITES), *(load(w) for w in WRITES), COMMIT], banked=banked,
                  serial_checksum=serial_checksum)
    assert [r[0] for r in result] == [ACK_BEGIN, *[WRITE] * len(WRITES), ACK_COMMIT]
    assert [r[1] for r in result[1:-1]] == WRITES
    # One bank: no complete model from LOAD_BEGIN until the commit.
    assert result[0][2][0] == int(banked)
    assert result[-1][2] == (1, load_checksum(WRITES, N), int(banked))


@COUNTING
@pytest.mark.parametrize("banked", [False, True])
@pytest.mark.parametrize("fault", ["lost", "twice", "changed", "not-made"])
def test_a_commit_with_a_wrong_checksum_does_not_switch_banks(banked, fault,
                                                              serial_checksum):
    loads = [load(w) for w in WRITES]
    made = lambda i: True  # noqa: E731
    if fault == "lost":
        loads = loads[:-1]
    elif fault == "twice":
        loads = [*loads, loads[0]]
    elif fault == "changed":
        target, addr, word = WRITES[1]
        loads[1] = load((target, addr, word ^ 1))
    else:
        # Acknowledged as a write by the verdict, but the core never took it: it must not
        # count (the running checksum advances on `written`, not on the verdict).
        made = lambda i: i != 2  # noqa: E731
    result = play([begin(WRITES), *loads, COMMIT, COMMIT], banked=banked,
                  write_made=made, serial_checksum=serial_checksum)
    assert result[-2][0] == error(ErrorCode.CHECKSUM)
    # The transaction is void: a second commit is out of sequence.
    assert result[-1][0] == error(ErrorCode.SEQUENCE)
    # Two banks: the model in use stays in use. One bank: none until a load commits.
    assert result[-1][2] == ((1, BUILT_IN, 0) if banked else (0, BUILT_IN, 0))


def test_another_models_hash_is_refused_before_anything_changes():
    result = play([begin(WRITES, HASH ^ 0x100), load(WRITES[0]), COMMIT], banked=False)
    assert [r[0] for r in result] == [error(ErrorCode.MODEL), error(ErrorCode.SEQUENCE),
                                      error(ErrorCode.SEQUENCE)]
    assert result[-1][2] == (1, BUILT_IN, 0)


#: Each memory's bound compared, or the target's picked (one_bound, the lean link's).
BOUNDS = pytest.mark.parametrize("one_bound", [False, True], ids=["bounds", "one_bound"])


@pytest.mark.parametrize(("frame", "code"), [
    ((Command.LOAD_BEGIN, bytes(7)), ErrorCode.LENGTH),
    ((Command.LOAD_BEGIN, bytes(9)), ErrorCode.LENGTH),
    ((Command.LOAD, load_payload(*WRITES[0], N)[:-1]), ErrorCode.LENGTH),
    ((Command.LOAD, load_payload(*WRITES[0], N) + b"\x00"), ErrorCode.LENGTH),
    ((Command.LOAD, load_payload(0, 0, 0, N)), ErrorCode.LOAD),
    ((Command.LOAD, load_payload(5, 0, 0, N)), ErrorCode.LOAD),
    ((Command.LOAD, load_payload(2, 0xFFFF, 0, N)), ErrorCode.ADDRESS),
    ((Command.LOAD_COMMIT, b"\x00"), ErrorCode.LENGTH),
])
@BOUNDS
@COUNTING
def test_a_refused_frame_inside_a_transaction_neither_writes_nor_counts(frame, code,
                                                                       serial_checksum,
                                                                       one_bound):
    # In a transaction of WRITES: the refused frame between the writes must leave the
    # checksum alone, so the commit still matches.
    loads = [load(w) for w in WRITES]
    result = play([begin(WRITES), loads[0], frame, *loads[1:], COMMIT], banked=True,
                  serial_checksum=serial_checksum, one_bound=one_bound)
    assert result[2][0] == error(code)
    assert result[-1][0] == ACK_COMMIT


@BOUNDS
@pytest.mark.parametrize("target", sorted(LOAD_TARGETS.values()))
def test_a_load_at_the_target_memorys_depth_is_refused(target, one_bound):
    # The last word of each memory is written; the word after it (inside the largest
    # memory's range, so the address field takes it) is refused with error 9 and does
    # not count, so the commit of the one good write still matches.
    depth = load_depths(PROGRAM)[target]
    assert depth < max(load_depths(PROGRAM).values()) or target == 2
    last, beyond = (target, depth - 1, 1), (target, depth, 1)
    result = play([begin([last]), load(last), load(beyond), COMMIT], banked=False,
                  one_bound=one_bound)
    assert [r[0] for r in result] == [ACK_BEGIN, WRITE, error(ErrorCode.ADDRESS), ACK_COMMIT]
    assert result[1][1] == last


@COUNTING
def test_a_second_begin_starts_the_transaction_again(serial_checksum):
    result = play([begin(WRITES), load(WRITES[0]), begin(WRITES[1:]),
                   *(load(w) for w in WRITES[1:]), COMMIT], banked=True,
                  serial_checksum=serial_checksum)
    assert result[-1][0] == ACK_COMMIT
    assert result[-1][2] == (1, load_checksum(WRITES[1:], N), 1)


def test_load_transaction_refuses_a_hash_wider_than_32_bits():
    with pytest.raises(ValueError, match="^Model hash must be a 32-bit unsigned integer, "
                                         "not 4294967296$"):
        LoadTransaction(PROGRAM, model_hash=1 << 32, checksum=0, model_loaded=True,
                        banked=False)


def read(target: int, addr: int, count: int) -> tuple[int, bytes]:
    return Command.READ, bytes([target]) + addr.to_bytes(2, "little") + count.to_bytes(2,
                                                                                     "little")


@pytest.mark.parametrize("banked", [False, True])
def test_a_read_held_in_the_payload_registers_leaves_the_transaction_alone(banked):
    # holds_read (the lean training link's, with serial_checksum): a READ's payload
    # lands in the registers a LOAD's and LOAD_BEGIN's use, and ``held`` gives it; READs
    # before, inside and between the frames of a transaction neither count in its
    # checksum nor change a write, and the commit still matches.
    reads = [read(2, 0x0102, 0x0304), read(3, 0xA5C3, 0x7E81), read(4, 0xFFFF, 0xFFFF)]
    loads = [load(w) for w in WRITES]
    frames = [reads[0], begin(WRITES), reads[1], loads[0], reads[2], *loads[1:], reads[0],
              COMMIT]
    result = play(frames, banked=banked, holds_read=True, serial_checksum=True)
    for (cmd, payload), (_, _, _, held) in zip(frames, result, strict=True):
        if cmd == Command.READ:
            assert held.to_bytes(READ_SIZE, "little") == payload
    assert [r[1] for r in result if r[1] is not None] == WRITES
    assert result[-1][0] == ACK_COMMIT
    assert result[-1][2] == (1, load_checksum(WRITES, N), int(banked))


@pytest.mark.parametrize(("option", "name"), [("holds_read", "Holds read"),
                                              ("serial_checksum", "Serial checksum"),
                                              ("one_bound", "One bound")])
def test_load_transaction_small_part_options_are_bools(option, name):
    with pytest.raises(TypeError, match=f"^{name} must be True or False, not 1$"):
        LoadTransaction(PROGRAM, model_hash=0, checksum=0, model_loaded=True, banked=False,
                        **{option: 1})
