"""The board's host link: framed commands over a UART, in front of one core.

docs/host-link.md is the protocol, byte by byte. In short, every frame both ways is

    0xA5, cmd, length (2 bytes, little-endian), payload (length bytes), crc

with crc = CRC-8 (polynomial 0x07, init 0, no reflection, no final xor) over cmd, the
length bytes and the payload. The host sends IDENT, IMAGE, or a load transaction
(LOAD_BEGIN with the model's hash and a CRC-32 over all its writes, LOAD frames, one memory
write each, and LOAD_COMMIT); the device answers each frame with exactly one reply (IDENT,
RESULT, an acknowledge or ERROR). Nothing of a frame reaches the core before its crc has
checked out: an image is buffered and streamed into the core afterwards, a memory write is
held in registers until then. From LOAD_BEGIN until a LOAD_COMMIT whose checksum matches
every write made, the device holds no complete model and refuses images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import crc, enum, memory, wiring
from amaranth.lib.wiring import In, Out

from golden.intmodel import IntModel
from rtl.core import LOAD_TARGETS, Core, load_layout, load_words, memory_images
from rtl.program import build_program
from rtl.protocol import (
    FRAME_CRC,
    LOAD_BEGIN_SIZE,
    LOAD_CHECKSUM,
    PROTOCOL_VERSION,
    SYNC,
    Command,
    ErrorCode,
    Reply,
)
from rtl.select import is_zero, select
from rtl.uart import UartRx, UartTx, check_divisor

__all__ = [
    "HostLink", "LinkIdentity", "link_identity", "load_checksum", "load_data_bytes",
    "load_payload", "model_hash",
]

def _crc_update(parameters: crc.Parameters, state: Value, word: Value) -> Value:
    """One data word into the CRC ``parameters`` (neither reflection nor final xor), as
    XOR trees: such a CRC is linear over GF(2) in (state, word), so each output bit is the
    XOR of the input bits whose unit vectors set it, read off the library's own software
    model (``Parameters.compute``), as :class:`amaranth.lib.crc.Processor` does.

    Not the Processor itself: its register restarts only at the initial value (the pending
    load checksum restarts from the running one) and, for the two frame CRC-8s, its
    restart multiplexer before the XOR trees cost 31 more LUT4s than these trees under the
    link's own state machine (1,071 against 1,040 for the host link of the iCEBreaker
    digits build, its core a blackbox, ``synth_ice40 -dsp``), at 97 % of the UP5K's cells.
    """
    algorithm = parameters.algorithm
    assert not (algorithm.reflect_input or algorithm.reflect_output or algorithm.xor_output)
    width, data_width = algorithm.crc_width, parameters.data_width

    def step(initial: int, data: int) -> int:
        algorithm.initial_crc = initial
        return algorithm(data_width).compute([data])

    state_columns = [step(1 << i, 0) for i in range(width)]
    word_columns = [step(0, 1 << i) for i in range(data_width)]
    out = []
    for j in range(width):
        taps = [state[i] for i in range(width) if state_columns[i] >> j & 1] + \
            [word[i] for i in range(data_width) if word_columns[i] >> j & 1]
        acc = taps[0]
        for tap in taps[1:]:
            acc = acc ^ tap
        out.append(acc)
    return Cat(*out)


def load_payload(target: int, addr: int, word: int, data_bytes: int) -> bytes:
    """The payload of one LOAD frame: target, address (LE16), word (``data_bytes``, LE)."""
    if not 0 <= word < 1 << (8 * data_bytes):
        raise ValueError(f"load word {word} does not fit the device's {data_bytes} bytes")
    return bytes([target]) + addr.to_bytes(2, "little") + word.to_bytes(data_bytes, "little")


def load_checksum(writes, data_bytes: int) -> int:
    """The whole-model checksum of a load: CRC-32/MPEG-2 over the LOAD payloads of
    ``writes`` ((target, address, word) triples), concatenated in the order sent."""
    return LOAD_CHECKSUM.compute(b"".join(load_payload(target, addr, word, data_bytes)
                                          for target, addr, word in writes))


def model_hash(model: IntModel) -> int:
    """32-bit hash of the model's configuration and formats (not of its weights).

    The first 4 bytes of the SHA-256 of the canonical JSON (sorted keys, no spaces) of
    ``{"config": config.to_dict(), "format": fmt.to_dict()}``, read little-endian, so that
    sending the integer little-endian puts those 4 digest bytes on the wire in order.
    """
    canonical = json.dumps({"config": model.config.to_dict(), "format": model.fmt.to_dict()},
                           sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:4], "little")


@dataclass(frozen=True)
class LinkIdentity:
    """What the IDENT reply says: enough for a host to check it talks to the right core.

    Attributes
    ----------
    version : int
        Protocol version (:data:`PROTOCOL_VERSION`).
    labels, input_size : int
        K and D.
    lanes, label_lanes : int
        P and G of the core.
    input_bits, score_bits : int
        Width of a pixel and of a score.
    loadable : bool
        The core takes LOAD frames.
    load_data_bytes : int
        Bytes of a LOAD frame's data field (0 when not loadable).
    model_hash : int
        :func:`model_hash` of the model the core was built for.
    model_loaded : bool
        The memories hold a complete model: the one built in, or the last load that
        committed. False while a load transaction is open, after one failed, and on a
        board whose weight memories start empty, until a load commits.
    weights_checksum : int
        :func:`load_checksum` of the model in the memories: of the built-in model until a
        load commits, then the committed load's (meaningful only when ``model_loaded``).
    shared : bool
        The core's scaler and squares borrow the MAC lanes' multipliers
        (``Core(shared=True)``), which sets its cycle count's closed form.
    """

    version: int
    labels: int
    input_size: int
    lanes: int
    label_lanes: int
    input_bits: int
    score_bits: int
    loadable: bool
    load_data_bytes: int
    model_hash: int
    model_loaded: bool = True
    weights_checksum: int = 0
    shared: bool = False

    #: Bytes of the IDENT reply payload.
    SIZE = 19

    @property
    def score_bytes(self) -> int:
        """Bytes per score in a RESULT reply."""
        return -(-self.score_bits // 8)

    @property
    def result_size(self) -> int:
        """Bytes of a RESULT reply payload: label, K scores, cycles."""
        return 1 + self.labels * self.score_bytes + 4

    def to_bytes(self) -> bytes:
        """The IDENT reply payload (docs/host-link.md)."""
        return bytes([self.version, self.labels, *self.input_size.to_bytes(2, "little"),
                      self.lanes, self.label_lanes, self.input_bits, self.score_bits,
                      int(self.loadable) | int(self.shared) << 1, self.load_data_bytes,
                      *self.model_hash.to_bytes(4, "little"), int(self.model_loaded),
                      *self.weights_checksum.to_bytes(4, "little")])

    @classmethod
    def from_bytes(cls, payload: bytes) -> LinkIdentity:
        """Parse an IDENT reply payload; ValueError if its size is not :attr:`SIZE`."""
        if len(payload) != cls.SIZE:
            raise ValueError(f"an IDENT payload has {cls.SIZE} bytes, not {len(payload)}")
        return cls(version=payload[0], labels=payload[1],
                   input_size=int.from_bytes(payload[2:4], "little"), lanes=payload[4],
                   label_lanes=payload[5], input_bits=payload[6], score_bits=payload[7],
                   loadable=bool(payload[8] & 1), shared=bool(payload[8] & 2),
                   load_data_bytes=payload[9],
                   model_hash=int.from_bytes(payload[10:14], "little"),
                   model_loaded=bool(payload[14]),
                   weights_checksum=int.from_bytes(payload[15:19], "little"))


def _load_data_bits(program) -> int:
    return load_layout(program)["data"].width


def load_data_bytes(program) -> int:
    """Bytes of a LOAD frame's data field for a core running ``program``."""
    return -(-_load_data_bits(program) // 8)


def link_identity(model: IntModel, *, lanes: int, label_lanes: int | None = None,
                  loadable: bool = False, shared: bool = False) -> LinkIdentity:
    """The identity a :class:`HostLink` over ``Core(model, lanes=..., ...)`` reports
    after configuration (with the built-in model in its memories)."""
    program = build_program(model, lanes=lanes, label_lanes=label_lanes, shared=shared)
    data_bytes = load_data_bytes(program)
    return LinkIdentity(
        version=PROTOCOL_VERSION, labels=model.config.num_classes,
        input_size=model.config.input_size, lanes=program.lanes,
        label_lanes=program.label_lanes, input_bits=program.widths["input"],
        score_bits=program.widths["score"], loadable=loadable,
        load_data_bytes=data_bytes if loadable else 0,
        model_hash=model_hash(model),
        weights_checksum=load_checksum(load_words(program), data_bytes), shared=shared)


def _equals(value: Value, constant: int) -> Value:
    """``value == constant``, lint-clean for 0 (see rtl.select)."""
    return is_zero(value) if constant == 0 else value == constant


class _State(enum.Enum, shape=4):
    # No state is 0: a test for 0 lowers to a lint-unclean multi-bit NOT (rtl.select).
    SYNC = 1          # discard bytes until 0xA5
    CMD = 2
    LEN_LO = 3
    LEN_HI = 4
    PAYLOAD = 5
    CRC = 6           # the frame's last byte: check it, then act or answer ERROR
    PRIME = 7         # first read of the image buffer
    STREAM = 8        # buffered pixels -> core
    RESULT = 9        # wait for the core's result record
    LOAD = 10         # one memory write -> core
    SEND = 11         # the reply frame -> UART
    DECIDE = 12       # act on a frame whose crc byte has been compared


class _Reply(enum.Enum, shape=3):
    IDENT = 1
    RESULT = 2
    ACK = 3
    ERROR = 4
    BEGIN = 5
    COMMIT = 6


class HostLink(wiring.Component):
    """A UART host link around one :class:`~rtl.core.Core` (docs/host-link.md).

    Parameters
    ----------
    core : Core
        The core to serve; it becomes a submodule. Its pixels must be at most 8 bits, its
        K, P and G at most 255 and D at most 65535 (they are bytes of the IDENT reply).
    divisor : int
        Clock cycles per UART bit, at least 4.
    timeout_bits : int
        Idle timeout in bit times: a frame whose next byte does not start within this time
        is abandoned and the parser waits for 0xA5 again. At least 20 (two byte times).
    initialised : bool
        The core's weight memories hold its model from configuration (block RAM with
        initial contents). False for memories that configuration leaves empty (iCE40
        SPRAM): then the device refuses images until a load commits.

    Members
    -------
    rx : In(1)
        UART line from the host (idle high).
    tx : Out(1)
        UART line to the host (idle high).

    Attributes
    ----------
    identity : LinkIdentity
        What the IDENT reply reports.
    """

    def __init__(self, core: Core, *, divisor: int, timeout_bits: int = 200,
                 initialised: bool = True) -> None:
        if not isinstance(core, Core):
            raise TypeError(f"Core must be an rtl.core.Core, not {core!r}")
        self.divisor = check_divisor(divisor)
        if (not isinstance(timeout_bits, int) or isinstance(timeout_bits, bool)
                or timeout_bits < 20):
            raise ValueError(f"Timeout must be an integer of at least 20 bit times, "
                             f"not {timeout_bits!r}")
        self.timeout_bits = timeout_bits
        if not isinstance(initialised, bool):
            raise TypeError(f"Initialised must be a bool, not {initialised!r}")
        program = core.program
        if program.widths["input"] > 8:
            raise ValueError(f"Pixels must be at most 8 bits for the host link, not "
                             f"{program.widths['input']}")
        config = core.model.config
        for name, value, limit in (("Label count", config.num_classes, 255),
                                   ("Lane count", program.lanes, 255),
                                   ("Label lane count", program.label_lanes, 255),
                                   ("Input size", config.input_size, 65535)):
            if value > limit:
                raise ValueError(f"{name} must be at most {limit} for the host link, "
                                 f"not {value}")
        self.core = core
        #: The core has two banks: a load writes the one not in use.
        self.banked = getattr(core, "banks", 1) == 2
        self.identity = dataclasses.replace(
            link_identity(core.model, lanes=program.lanes, label_lanes=program.label_lanes,
                          loadable=core.weights != "rom", shared=program.shared),
            model_loaded=initialised)
        if not initialised and not self.identity.loadable:
            raise ValueError("A core whose memories start empty must be loadable "
                             "(weights='loadable' or 'spram')")
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    @property
    def load_size(self) -> int:
        """Payload bytes of a LOAD frame: target, address (2), data."""
        return 3 + self.identity.load_data_bytes

    def _load_command(self, m, answer, flags, load_regs, t, state) -> None:
        """After the crc byte of a LOAD_BEGIN, LOAD or LOAD_COMMIT: check, then act."""
        with m.If(flags.begin):
            with m.If(~flags.begin_length):
                answer(_Reply.ERROR, ErrorCode.LENGTH)
            with m.Elif(~flags.model_hash):
                # Weights of another configuration: refused before anything is written.
                answer(_Reply.ERROR, ErrorCode.MODEL)
            with m.Else():
                m.d.sync += [t.loading.eq(1), t.running.eq(LOAD_CHECKSUM.algorithm.initial_crc),
                             t.announced.eq(Cat(*load_regs[4:8]))]
                if not self.banked:
                    # One bank: from here until a good commit it holds no complete model.
                    m.d.sync += t.model_ok.eq(0)
                answer(_Reply.BEGIN)
        with m.Elif(flags.load):
            with m.If(~flags.load_length):
                answer(_Reply.ERROR, ErrorCode.LENGTH)
            with m.Elif(~t.loading):
                answer(_Reply.ERROR, ErrorCode.SEQUENCE)
            with m.Elif(~flags.load_ok):
                answer(_Reply.ERROR, ErrorCode.LOAD)
            with m.Else():
                m.d.sync += state.eq(_State.LOAD)
        with m.Else():
            with m.If(~flags.no_payload):
                answer(_Reply.ERROR, ErrorCode.LENGTH)
            with m.Elif(~t.loading):
                answer(_Reply.ERROR, ErrorCode.SEQUENCE)
            with m.Elif(~flags.checksum):
                # A write lost, added or changed: the transaction is void (with two banks
                # the model in use stays in use).
                m.d.sync += t.loading.eq(0)
                answer(_Reply.ERROR, ErrorCode.CHECKSUM)
            with m.Else():
                m.d.sync += [t.loading.eq(0), t.model_ok.eq(1), t.weights_sum.eq(t.announced)]
                if self.banked:
                    m.d.sync += t.bank.eq(~t.bank)
                answer(_Reply.COMMIT)

    def elaborate(self, platform) -> Module:
        m = Module()
        core, ident = self.core, self.identity
        D, K = ident.input_size, ident.labels
        m.submodules.uart_rx = urx = UartRx(divisor=self.divisor)
        m.submodules.uart_tx = utx = UartTx(divisor=self.divisor)
        m.submodules.core = core
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        state = Signal(_State, init=_State.SYNC)
        byte = urx.data.payload
        got = Signal()                     # a byte is taken from the receiver this cycle
        m.d.comb += got.eq(urx.data.valid & urx.data.ready)

        cmd = Signal(8)
        length = Signal(16)
        count = Signal(16)
        # length - 1, computed once per frame: the payload's end is then an equality test,
        # not an increment and a compare in one cycle (an iCE40 critical path).
        last_count = Signal(16)
        crc = Signal(8)
        crc_next = _crc_update(FRAME_CRC, crc, byte)
        crc_ok = Signal()

        # -- idle timeout: a frame that stops mid-way must not swallow the next one ------
        timeout_cycles = self.timeout_bits * self.divisor
        mid_frame = Signal()
        quiet = Signal(range(timeout_cycles))
        timed_out = Signal()
        # Only silence counts: the time from the middle of a byte's stop bit to the next
        # start edge, so that the rule does not depend on the byte time.
        silent = mid_frame & ~urx.busy & ~urx.data.valid
        with m.If(silent):
            m.d.sync += quiet.eq(quiet + 1)
        with m.Else():
            m.d.sync += quiet.eq(0)
        m.d.comb += timed_out.eq(silent & (quiet == timeout_cycles - 1))

        # -- the image buffer: pixels wait here until the crc is known -------------------
        m.submodules.image_buffer = image_mem = memory.Memory(
            shape=len(core.image.payload), depth=max(2, D), init=[])
        image_write, image_read = image_mem.write_port(), image_mem.read_port()
        pixel = Signal(range(D + 1))
        m.d.comb += [image_write.addr.eq(count[:len(image_write.addr)]),
                     image_write.data.eq(byte[:len(image_write.data)]),
                     core.image.payload.eq(image_read.data)]

        # -- the LOAD payload (target, addr, data) or LOAD_BEGIN's (model hash, checksum),
        # held until the crc is known -------------------------------------------------
        loadable = ident.loadable
        load_regs = [Signal(8, name=f"load_byte_{i}")
                     for i in range(max(self.load_size, LOAD_BEGIN_SIZE) if loadable else 0)]
        load_ok = Const(0, 1)
        if loadable:
            layout = load_layout(core.program)
            depth = max(2, *(len(words) for words in memory_images(core.program).values()))
            target, address = load_regs[0], Cat(load_regs[1], load_regs[2])
            data_bits = _load_data_bits(core.program)
            load_ok = ~is_zero(target) & (target <= max(LOAD_TARGETS.values())) & \
                (address < depth)
            m.d.comb += [
                core.load.payload.target.eq(target[:layout["target"].width]),
                core.load.payload.addr.eq(address[:layout["addr"].width]),
                core.load.payload.data.eq(Cat(*load_regs[3:self.load_size])[:data_bits]),
            ]

        # -- the load transaction -------------------------------------------------------
        # Whether the memories hold a complete model, that model's checksum and (two
        # banks) which bank holds it: set at configuration like the memories themselves,
        # so a reset does not forget that a failed load left a bank half written.
        model_ok = Signal(init=int(ident.model_loaded), reset_less=True)
        weights_sum = Signal(32, init=ident.weights_checksum, reset_less=True)
        bank = Signal(reset_less=True)
        if self.banked:
            m.d.comb += core.bank.eq(bank)
        loading = Signal()                 # between a good LOAD_BEGIN and LOAD_COMMIT
        announced = Signal(32)             # LOAD_BEGIN's checksum
        running = Signal(32)               # CRC-32 of the writes made in this transaction
        pending = Signal(32)               # ... and of the LOAD frame being received
        transaction = SimpleNamespace(model_ok=model_ok, weights_sum=weights_sum, bank=bank,
                                      loading=loading, announced=announced, running=running)

        # -- the result record: the core holds it until the reply has gone out -----------
        # (a copy here would cost ~430 flip-flops, a tenth of an iCE40 UP5K)
        result = core.result.payload

        # -- the reply frames, byte by byte (the crc byte is computed as they go out) ----
        def frame(code: int, payload: list) -> list:
            n = len(payload)
            return [Const(SYNC, 8), Const(code, 8), Const(n & 0xFF, 8), Const(n >> 8, 8),
                    *payload]

        error_code = Signal(8)
        score_bits = ident.score_bits
        scores = []
        for k in range(K):
            score = result.scores[k]
            scores += [score[8 * j:min(8 * j + 8, score_bits)] for j in range(ident.score_bytes)]
        cycles = result.cycles
        frames = {
            _Reply.IDENT: frame(Reply.IDENT, [
                *(Const(b, 8) for b in ident.to_bytes()[:14]), Cat(model_ok, Const(0, 7)),
                *(weights_sum[8 * j:8 * j + 8] for j in range(4))]),
            _Reply.RESULT: frame(Reply.RESULT, [result.label, *scores,
                                                *(cycles[8 * j:8 * j + 8] for j in range(4))]),
            _Reply.ACK: frame(Reply.LOAD, []),
            _Reply.BEGIN: frame(Reply.LOAD_BEGIN, []),
            _Reply.COMMIT: frame(Reply.LOAD_COMMIT, []),
            _Reply.ERROR: frame(Reply.ERROR, [error_code]),
        }
        reply = Signal(_Reply, init=_Reply.ERROR)
        # Up to one past the crc byte's index, the frame's length.
        send_index = Signal(range(max(len(f) for f in frames.values()) + 2))
        send_crc = Signal(8)
        body = Const(0, 8)
        last = Const(0, 8)
        for kind, items in frames.items():
            # Each frame's byte at send_index is picked into a register, and the reply's
            # own is chosen a cycle later: the byte select and the choice of frame in one
            # cycle were the iCE40 build's slowest path.
            picked = Signal(8, name=f"picked_{kind.name.lower()}")
            m.d.sync += picked.eq(select(items, send_index))
            body = Mux(reply == kind, picked, body)
            # The crc goes out at index len(items), right after the frame's last byte.
            last = Mux(reply == kind, len(items), last)
        is_last = Signal()
        m.d.comb += is_last.eq(send_index == last)
        # The reply goes out through a one-byte register: the byte for send_index is
        # fetched in one cycle and handed to the UART from the register, and the crc
        # absorbs the registered byte when the UART takes it. The frame multiplexer and the
        # crc are thus in separate cycles (together they were the iCE40 build's slowest
        # path); the UART needs many cycles per byte anyway.
        out_byte = Signal(8)
        out_full = Signal()               # out_byte holds the next byte to send
        out_first = Signal()              # ... which is the sync byte (not in the crc)
        out_last = Signal()               # ... which is the crc byte
        picking = Signal()                # the picked bytes are for send_index now

        def answer(kind: _Reply, code: int | None = None) -> None:
            m.d.sync += [reply.eq(kind), send_index.eq(0), send_crc.eq(0), out_full.eq(0),
                         picking.eq(0), state.eq(_State.SEND)]
            if code is not None:
                m.d.sync += error_code.eq(code)

        # -- what the command's decision looks at, registered every cycle ---------------
        # The fields are stable from the payload's last byte on, a UART byte before the
        # decision: the comparisons of the command, the length, the model hash and the
        # checksums are made a cycle ahead, so the decision tree sees single bits (with
        # the comparisons, it and the answer's registers were the iCE40 build's slowest
        # path).
        flags = SimpleNamespace(**{name: Signal(name=f"flag_{name}") for name in (
            "ident", "image", "begin", "load", "load_family", "no_payload", "image_length",
            "begin_length", "load_length", "model_hash", "checksum", "load_ok")})
        m.d.sync += [
            flags.ident.eq(cmd == Command.IDENT),
            flags.image.eq(cmd == Command.IMAGE),
            flags.begin.eq(cmd == Command.LOAD_BEGIN),
            flags.load.eq(cmd == Command.LOAD),
            flags.load_family.eq((cmd == Command.LOAD) | (cmd == Command.LOAD_BEGIN) |
                                 (cmd == Command.LOAD_COMMIT)),
            flags.no_payload.eq(is_zero(length)),
            flags.image_length.eq(length == D),
            flags.begin_length.eq(length == LOAD_BEGIN_SIZE),
            flags.load_length.eq(length == self.load_size),
            flags.load_ok.eq(load_ok),
        ]
        if loadable:
            m.d.sync += [flags.model_hash.eq(Cat(*load_regs[:4]) == ident.model_hash),
                         flags.checksum.eq(running == announced)]

        # -- the parser and sequencer --------------------------------------------------
        with m.Switch(state):
            with m.Case(_State.SYNC):
                m.d.comb += urx.data.ready.eq(1)
                # Anything but the sync byte between frames is noise.
                with m.If(got & (byte == SYNC)):
                    m.d.sync += [crc.eq(0), state.eq(_State.CMD)]

            with m.Case(_State.CMD):
                m.d.comb += [urx.data.ready.eq(1), mid_frame.eq(1)]
                with m.If(got):
                    m.d.sync += [cmd.eq(byte), crc.eq(crc_next), state.eq(_State.LEN_LO)]

            with m.Case(_State.LEN_LO):
                m.d.comb += [urx.data.ready.eq(1), mid_frame.eq(1)]
                with m.If(got):
                    m.d.sync += [length[:8].eq(byte), crc.eq(crc_next),
                                 state.eq(_State.LEN_HI)]

            with m.Case(_State.LEN_HI):
                m.d.comb += [urx.data.ready.eq(1), mid_frame.eq(1)]
                with m.If(got):
                    m.d.sync += [length[8:].eq(byte), crc.eq(crc_next), count.eq(0),
                                 last_count.eq(Cat(length[:8], byte) - 1)]
                    if loadable:
                        m.d.sync += pending.eq(running)
                    # An empty payload goes straight to the crc byte.
                    m.d.sync += state.eq(Mux(is_zero(Cat(length[:8], byte)), _State.CRC,
                                             _State.PAYLOAD))

            with m.Case(_State.PAYLOAD):
                m.d.comb += [urx.data.ready.eq(1), mid_frame.eq(1)]
                with m.If(got):
                    m.d.sync += [count.eq(count + 1), crc.eq(crc_next)]
                    # Store what the command could use; a wrong length is refused later,
                    # after the crc, so that the whole frame is consumed first.
                    m.d.comb += image_write.en.eq((cmd == Command.IMAGE) & (count < D))
                    if loadable:
                        is_load = cmd == Command.LOAD
                        for i, reg in enumerate(load_regs):
                            with m.If((is_load | (cmd == Command.LOAD_BEGIN)) & _equals(count, i)):
                                m.d.sync += reg.eq(byte)
                        # The checksum this write would make; it counts once acknowledged.
                        with m.If(is_load):
                            m.d.sync += pending.eq(_crc_update(LOAD_CHECKSUM, pending, byte))
                    with m.If(count == last_count):
                        m.d.sync += state.eq(_State.CRC)

            with m.Case(_State.CRC):
                m.d.comb += [urx.data.ready.eq(1), mid_frame.eq(1)]
                with m.If(got):
                    # Compared here, acted on in the next cycle: the comparison and the
                    # command's decision tree in one cycle were the iCE40 build's slowest
                    # path (the next byte is a UART frame away).
                    m.d.sync += [crc_ok.eq(byte == crc), state.eq(_State.DECIDE)]

            with m.Case(_State.DECIDE):
                with m.If(~crc_ok):
                    answer(_Reply.ERROR, ErrorCode.CRC)
                with m.Elif(flags.ident):
                    with m.If(flags.no_payload):
                        answer(_Reply.IDENT)
                    with m.Else():
                        answer(_Reply.ERROR, ErrorCode.LENGTH)
                with m.Elif(flags.image):
                    with m.If(~flags.image_length):
                        answer(_Reply.ERROR, ErrorCode.LENGTH)
                    with m.Elif(~model_ok):
                        # Never an inference with a half-loaded mix of two models.
                        answer(_Reply.ERROR, ErrorCode.NO_MODEL)
                    with m.Else():
                        m.d.sync += state.eq(_State.PRIME)
                with m.Elif(flags.load_family):
                    if not loadable:
                        answer(_Reply.ERROR, ErrorCode.LOAD)
                    else:
                        self._load_command(m, answer, flags, load_regs, transaction, state)
                with m.Else():
                    answer(_Reply.ERROR, ErrorCode.COMMAND)

            with m.Case(_State.PRIME):
                # The buffer's read port has one cycle of latency: fetch pixel 0 first.
                m.d.comb += image_read.addr.eq(0)
                m.d.sync += [pixel.eq(0), state.eq(_State.STREAM)]

            with m.Case(_State.STREAM):
                m.d.comb += core.image.valid.eq(1)
                # Keep the read one pixel ahead whenever the core takes one.
                m.d.comb += image_read.addr.eq(
                    Mux(core.image.ready, pixel + 1, pixel)[:len(image_read.addr)])
                with m.If(core.image.ready):
                    m.d.sync += pixel.eq(pixel + 1)
                    with m.If(_equals(pixel, D - 1)):
                        m.d.sync += state.eq(_State.RESULT)

            with m.Case(_State.RESULT):
                # Answer from the core's record; it is taken only once sent (SEND).
                with m.If(core.result.valid):
                    answer(_Reply.RESULT)

            with m.Case(_State.LOAD):
                if loadable:
                    m.d.comb += core.load.valid.eq(1)
                    with m.If(core.load.ready):
                        m.d.sync += running.eq(pending)
                        answer(_Reply.ACK)

            with m.Case(_State.SEND):
                with m.If(~out_full & ~picking):
                    # The picked registers take send_index's bytes.
                    m.d.sync += picking.eq(1)
                with m.Elif(~out_full):
                    # Fetch the next byte; the crc byte is the crc of all before it.
                    m.d.sync += [out_byte.eq(Mux(is_last, send_crc, body)), out_full.eq(1),
                                 out_first.eq(is_zero(send_index)), out_last.eq(is_last),
                                 send_index.eq(send_index + 1), picking.eq(0)]
                with m.Else():
                    m.d.comb += [utx.data.valid.eq(1), utx.data.payload.eq(out_byte)]
                    with m.If(utx.data.ready):
                        m.d.sync += out_full.eq(0)
                        # The crc covers everything after the sync byte and before itself.
                        with m.If(~out_first & ~out_last):
                            m.d.sync += send_crc.eq(_crc_update(FRAME_CRC, send_crc, out_byte))
                        with m.If(out_last):
                            m.d.sync += state.eq(_State.SYNC)
                            # The record has been sent: the core may drop it now.
                            m.d.comb += core.result.ready.eq(reply == _Reply.RESULT)

        with m.If(timed_out):
            m.d.sync += state.eq(_State.SYNC)
        return m
