"""The board's host link: framed commands over a UART, in front of one core.

docs/host-link.md is the protocol, byte by byte. In short, every frame both ways is

    0xA5, cmd, tag, length (2 bytes, little-endian), payload (length bytes), crc

with crc = CRC-8 (polynomial 0x07, init 0, no reflection, no final xor) over cmd, tag, the
length bytes and the payload. A reply carries its command's tag, so that a host never takes
a late reply for the answer to a later command. The host sends IDENT, IMAGE, or a load transaction
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amaranth import Cat, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import data, enum, memory, wiring
from amaranth.lib.wiring import In, Out

from golden.intmodel import IntModel
from golden.inttrain import TrainRule
from rtl.collisions import COLLISIONS_UNUSED
from rtl.core import LOAD_TARGETS, Core, load_depths, load_words
from rtl.frame_parser import FrameParser
from rtl.load_transaction import LoadTransaction, load_data_bytes
from rtl.program import Program, build_program
from rtl.protocol import (
    LOAD_CHECKSUM,
    PROTOCOL_VERSION,
    READ_SIZE,
    Command,
    ErrorCode,
)
from rtl.reply_serialiser import ReplyFrame, ReplySerialiser
from rtl.resources import MemoryShape, Product
from rtl.select import equals, is_zero, select
from rtl.stored_words import STORED_MEMORIES
from rtl.training_core import TrainingCore
from rtl.uart import UartRx, UartTx, check_divisor

__all__ = [
    "TRAIN_BLOCK", "HostLink", "LinkIdentity", "check_depths", "link_identity",
    "link_memories", "link_program", "link_products", "load_checksum", "load_data_bytes",
    "load_payload", "model_hash", "read_bytes", "sample_buffer_depth",
]

def load_payload(target: int, addr: int, word: int, data_bytes: int) -> bytes:
    """The payload of one LOAD frame: target, address (LE16), word (``data_bytes``, LE)."""
    if not 0 <= word < 1 << (8 * data_bytes):
        raise ValueError(f"load word {word} does not fit the device's {data_bytes} bytes")
    if not 0 <= addr <= 0xFFFF:
        raise ValueError(f"load address {addr} does not fit the link's 16-bit addresses")
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
    depths : tuple of int
        Words in each memory, in target order (ops, weights, bias, labels;
        :func:`rtl.core.load_depths`): a LOAD or READ at ``depth`` or beyond is refused
        with error 9. All 0 when the core neither loads nor trains.
    trains : bool
        The bitstream trains (a :class:`rtl.training_core.TrainingCore`): TRAIN and READ
        are accepted.
    stored_bits, stored_bias_bits : int
        Widths of a stored weight (W, U) and a stored bias on a training core (0 otherwise).
    train_block : int
        Most samples one TRAIN frame may carry (0 when not training).
    read_bytes : int
        Bytes of each word in a READ reply (0 when not training).
    lr_first, lr_last : int
        The lambdas the gateware trains with: a TRAIN frame's lambda must lie in
        ``lr_first..lr_last`` (the rule's schedule, ``lr_shift_at(0)`` to
        ``lr_shift_at(epochs - 1)``, which the update lanes' shifters are built for);
        0 when not training.
    trained : int
        Samples trained since configuration (mod 2^32); a reset or a load keeps it.
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
    depths: tuple[int, ...] = (0,) * len(LOAD_TARGETS)
    trains: bool = False
    stored_bits: int = 0
    stored_bias_bits: int = 0
    train_block: int = 0
    read_bytes: int = 0
    lr_first: int = 0
    lr_last: int = 0
    trained: int = 0

    #: Bytes of the IDENT reply payload.
    SIZE = 19 + 2 * len(LOAD_TARGETS) + 10

    def __post_init__(self) -> None:
        # Every field has the bytes docs/host-link.md gives it; a value that does not
        # fit is refused here by name, not by int.to_bytes's OverflowError.
        check_depths(self.depths)
        for name, limit in (("input_size", 0xFFFF), ("labels", 0xFF), ("lanes", 0xFF),
                            ("label_lanes", 0xFF), ("train_block", 0xFF),
                            ("read_bytes", 0xFF), ("lr_first", 0xFF), ("lr_last", 0xFF),
                            ("trained", 0xFFFFFFFF)):
            value = getattr(self, name)
            if not 0 <= value <= limit:
                raise ValueError(f"IDENT's {name} must lie in 0..{limit}, not {value}")

    @property
    def score_bytes(self) -> int:
        """Bytes per score in a RESULT reply."""
        return -(-self.score_bits // 8)

    @property
    def result_size(self) -> int:
        """Bytes of a RESULT reply payload: label, K scores, cycles."""
        return 1 + self.labels * self.score_bytes + 4

    @property
    def flags(self) -> int:
        """Byte 8: bit 0 loadable, bit 1 shared multipliers, bit 2 trains."""
        return int(self.loadable) | int(self.shared) << 1 | int(self.trains) << 2

    def to_bytes(self) -> bytes:
        """The IDENT reply payload (docs/host-link.md)."""
        return bytes([self.version, self.labels, *self.input_size.to_bytes(2, "little"),
                      self.lanes, self.label_lanes, self.input_bits, self.score_bits,
                      self.flags, self.load_data_bytes,
                      *self.model_hash.to_bytes(4, "little"), int(self.model_loaded),
                      *self.weights_checksum.to_bytes(4, "little"),
                      *b"".join(d.to_bytes(2, "little") for d in self.depths),
                      self.stored_bits, self.stored_bias_bits, self.train_block,
                      self.read_bytes, self.lr_first, self.lr_last,
                      *self.trained.to_bytes(4, "little")])

    @classmethod
    def from_bytes(cls, payload: bytes) -> LinkIdentity:
        """Parse an IDENT reply payload; ValueError if its size is not :attr:`SIZE`."""
        if len(payload) != cls.SIZE:
            raise ValueError(f"an IDENT payload has {cls.SIZE} bytes, not {len(payload)}")
        end = 19 + 2 * len(LOAD_TARGETS)
        return cls(version=payload[0], labels=payload[1],
                   input_size=int.from_bytes(payload[2:4], "little"), lanes=payload[4],
                   label_lanes=payload[5], input_bits=payload[6], score_bits=payload[7],
                   loadable=bool(payload[8] & 1), shared=bool(payload[8] & 2),
                   trains=bool(payload[8] & 4), load_data_bytes=payload[9],
                   model_hash=int.from_bytes(payload[10:14], "little"),
                   model_loaded=bool(payload[14]),
                   weights_checksum=int.from_bytes(payload[15:19], "little"),
                   depths=tuple(int.from_bytes(payload[i:i + 2], "little")
                                for i in range(19, end, 2)),
                   stored_bits=payload[end], stored_bias_bits=payload[end + 1],
                   train_block=payload[end + 2], read_bytes=payload[end + 3],
                   lr_first=payload[end + 4], lr_last=payload[end + 5],
                   trained=int.from_bytes(payload[end + 6:end + 10], "little"))


def check_depths(depths) -> None:
    """Refuse, by name, a memory of more words than the link's 16-bit addresses reach
    (``depths`` in target order, as IDENT carries them)."""
    names = {code: name for name, code in LOAD_TARGETS.items()}
    for target, depth in enumerate(depths, start=1):
        if not 0 <= depth <= 0xFFFF:
            raise ValueError(
                f"the {names[target]} memory has {depth} words, more than the host link's "
                f"16-bit addresses reach (65535): build the core with more lanes (fewer, "
                f"wider words)")


def link_program(model: IntModel, *, lanes: int, label_lanes: int | None = None,
                 shared: bool = False, store_bits: int | None = None) -> Program:
    """The program whose :func:`rtl.core.load_words` a load transaction writes and IDENT's
    weights checksum covers (:func:`load_checksum`): ``model`` at the core's lane counts
    and, for a training core (``store_bits``, IDENT's ``stored_bits``), as stored words,
    B_m bits a weight, each (w << f) + 2^(f-1) with f = B_m - weight bits. A host builds
    it from IDENT's fields and the model alone (the sequencer program's words, target 1,
    are in it with FFCL's layer 1 cache: an SPRAM training core's program is a ROM and
    ignores them, but they count in the checksum like every write)."""
    fine = 0 if store_bits is None else store_bits - model.fmt.weight_bits
    return build_program(model, lanes=lanes, label_lanes=label_lanes, shared=shared,
                         fine_bits=fine)


def link_identity(model: IntModel, *, lanes: int, label_lanes: int | None = None,
                  loadable: bool = False, shared: bool = False,
                  rule: TrainRule | None = None, train_block: int = 0) -> LinkIdentity:
    """The identity a :class:`HostLink` over ``Core(model, lanes=..., ...)`` (or, with
    ``rule``, over ``TrainingCore(model, rule, lanes=...)`` taking ``train_block``
    samples a frame, with any lambda of the rule's schedule) reports after configuration
    (with the built-in model in its memories)."""
    program = link_program(model, lanes=lanes, label_lanes=label_lanes, shared=shared,
                           store_bits=None if rule is None else rule.store_bits)
    data_bytes = load_data_bytes(program)
    check_depths(tuple(load_depths(program).values()))
    training = {}
    if rule is not None:
        training = dict(trains=True, stored_bits=program.stored_weight_bits,
                        stored_bias_bits=program.stored_bias_bits, train_block=train_block,
                        read_bytes=read_bytes(program),
                        lr_first=rule.lr_range[0], lr_last=rule.lr_range[1])
    return LinkIdentity(
        version=PROTOCOL_VERSION, labels=model.config.num_classes,
        input_size=model.config.input_size, lanes=program.lanes,
        label_lanes=program.label_lanes, input_bits=program.widths.input,
        score_bits=program.widths.score, loadable=loadable,
        load_data_bytes=data_bytes if loadable else 0,
        model_hash=model_hash(model),
        weights_checksum=load_checksum(load_words(program), data_bytes), shared=shared,
        depths=(tuple(load_depths(program).values()) if loadable or rule is not None
                else (0,) * len(LOAD_TARGETS)),
        **training)


#: Samples a TRAIN frame may carry unless a :class:`HostLink` is told otherwise.
TRAIN_BLOCK = 4


def sample_buffer_depth(input_size: int, train_block: int = 0) -> int:
    """Bytes of a link's sample buffer: an image, or ``train_block`` labelled samples
    (pixels and label) on a training core."""
    return max(2, input_size, train_block * (input_size + 1))


def link_memories(core: Core | TrainingCore, *,
                  train_block: int = TRAIN_BLOCK) -> list[MemoryShape]:
    """The memories a :class:`HostLink` around ``core`` adds (the fit check counts them
    for a training core): the sample buffer and, training, the TRAIN reply's records."""
    training = isinstance(core, TrainingCore)
    D = (core.core if training else core).model.config.input_size
    shapes = [MemoryShape("sample_buffer", sample_buffer_depth(D, train_block if training
                                                               else 0), 8)]
    if training:
        shapes.append(MemoryShape("records", max(2, train_block), _RECORD.size))
    return shapes


def link_products(core: Core | TrainingCore, *,
                  train_block: int = TRAIN_BLOCK) -> list[Product]:
    """What a :class:`HostLink` around a training ``core`` multiplies: the READ reply's
    length (a 16-bit word count times the bytes of a word, :func:`read_bytes`) and the
    TRAIN reply's (the samples times a record's bytes); a factor that is a power of two
    would be wiring. Yosys maps both to hard multipliers on ECP5 (the digits training
    build). None around an inference core."""
    if not isinstance(core, TrainingCore):
        return []
    counts = ((16, read_bytes(core.core.program)),
              (Shape.cast(range(train_block + 2)).width, _RECORD.size // 8))
    return [Product("host_link", bits, factor.bit_length()) for bits, factor in counts
            if factor & (factor - 1)]


def read_bytes(program) -> int:
    """Bytes of a word in a READ reply: the widest stored memory's word (weights, bias,
    labels), little-endian, bits above the memory's own width 0."""
    widths = (program.lanes * program.stored_weight_bits, program.stored_bias_bits,
              program.label_lanes * program.stored_weight_bits)
    return -(-max(widths) // 8)


class _Step(enum.Enum, shape=4):
    # No step is 0: a test for 0 lowers to a lint-unclean multi-bit NOT (rtl.select).
    IDLE = 1          # the parser takes a frame; once it has one, decide (see _decide)
    PRIME = 2         # first read of the image buffer
    STREAM = 3        # buffered pixels -> core
    RESULT = 4        # wait for the core's result record
    LOAD = 5          # one memory write -> core
    SEND = 6          # the reply frame -> UART
    TRAIN_PRIME = 7   # read a buffered sample's label
    TRAIN_LABEL = 8   # keep it; read the sample's first pixel
    TRAIN_STREAM = 9  # its pixels -> the training core
    TRAIN_DONE = 10   # its record -> the record buffer; then the next sample or the reply
    READ_PRIME = 11   # a classify-only sample of zeros: the training core serves reads
    READ_WAIT = 12    # ... while it offers that sample's record


#: The link's own decision flags (the load commands' are the transaction's).
_FLAGS = data.StructLayout({name: 1 for name in (
    "ident", "image", "load_family", "no_payload", "image_length", "train", "read",
    "train_length", "read_length", "read_range", "read_fits")})

#: A TRAIN reply's record of one sample, as the record buffer holds it.
_RECORD = data.StructLayout({"label": 8, "wrong": 8, "cycles": 32})


@dataclass
class _Train:
    """The signals the link's TRAIN and READ handling share between
    :meth:`HostLink._capture` (the payload's fields), :meth:`HostLink._reply_body` (the
    record buffer and the reply body, which sets the rest) and
    :meth:`HostLink._training_steps`."""

    lam: Signal
    t_pos: Signal
    t_count: Signal
    bad_label: Signal
    r_target: Value
    r_addr: Value
    r_count: Value
    record_write: Any = None
    trained: Signal | None = None
    t_sample: Signal | None = None
    t_label: Signal | None = None
    raddr: Signal | None = None
    read_length: Signal | None = None
    answer_body: Callable[..., None] | None = None
    body_addr: Signal | None = None
    body_length: Signal | None = None


class HostLink(wiring.Component):
    """A UART host link around one core (docs/host-link.md).

    The UART receiver feeds a :class:`~rtl.frame_parser.FrameParser`; IMAGE and TRAIN
    payloads wait in a sample buffer, LOAD and LOAD_BEGIN payloads in the
    :class:`~rtl.load_transaction.LoadTransaction` (loadable cores only), until the frame's
    crc has checked out. Then the link decides: an ERROR, IDENT or load reply at once, or an
    inference (the buffer streamed into the core), a memory write, or (a training core)
    the buffered samples trained one after the other or stored words read, first. Every
    reply goes out through the :class:`~rtl.reply_serialiser.ReplySerialiser` and the UART
    transmitter, and the parser takes the next frame once it has.

    Parameters
    ----------
    core : Core or TrainingCore
        The core to serve; it becomes a submodule. Its pixels must be at most 8 bits, its
        K, P and G at most 255 and D at most 65535 (they are bytes of the IDENT reply).
        A :class:`~rtl.training_core.TrainingCore` adds TRAIN and READ. Built with
        ``weights="spram"`` it is loadable: its weight words come up empty, and a load
        transaction writes the stored words (B_m-bit fields, (w << f) + 2^(f-1) for a
        starting model) through its ``load`` port, and its commit pulses the core's
        ``restart`` (training from the model loaded starts at the rule's seed); its IDENT
        checksum is that of the stored words (:func:`link_identity`). A block RAM
        training core is written by its own updates only: LOAD gets error 4.
    divisor : int
        Clock cycles per UART bit, at least 4.
    timeout_bits : int
        Idle timeout in bit times: a frame whose next byte does not start within this time
        is abandoned and the parser waits for 0xA5 again. At least 20 (two byte times).
    initialised : bool
        The core's weight memories hold its model from configuration (block RAM with
        initial contents). False for memories that configuration leaves empty (iCE40
        SPRAM): then the device refuses images until a load commits.
    train_block : int
        A training core: the most samples one TRAIN frame may carry, 1..255 (the sample
        buffer holds ``train_block * (D + 1)`` bytes).
    lean : bool
        The small part's link (the iCEBreaker training build): a training core's TRAIN
        records are written, a byte a cycle, into the sample buffer over the samples
        already trained (record j at bytes 6 j..6 j + 5, below sample j + 1's label at
        (j + 1)(D + 1), so D must be at least 5) and the reply's body is read from there,
        instead of a record memory that Yosys keeps in flip-flops (40 bits a sample on
        the digits build, each flip-flop a logic cell of its own); the reply
        serialiser picks every frame's header from one select
        (``ReplySerialiser(shared_header=True)``); and, training, the link marks the
        reply body's last byte, so that the serialiser's send index counts the frames'
        own bytes only (``ReplySerialiser(short_index=True)``); the parser takes the crc
        byte in its payload state (``FrameParser(crc_in_payload=True)``: no register of
        the length minus one); training, the READ reply's length register is made from
        the product when the READ is decided (no register of the product), and over an
        SPRAM core a READ's payload waits in the load transaction's registers
        (``LoadTransaction(holds_read=True)``), not in registers of the link's own, and
        a LOAD's bytes count in its checksum a bit a cycle
        (``LoadTransaction(serial_checksum=True)``) and its address is compared with
        one bound (``one_bound=True``); a READ's end is compared with one bound too, and
        its fit in the length field read off the product that makes the length. The
        same bytes on the wire; a sample's record is taken 6 cycles after it is offered
        (its cycle count ends when it is offered). Default False.

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
    training : bool
        The core is a TrainingCore.
    inner : Core
        The inference core: ``core`` itself, or the training core's ``core``.
    train_block : int
        Most samples a TRAIN frame may carry.
    banked : bool
        The core has two banks (a load writes the one not in use).
    load_size : int
        Payload bytes of a LOAD frame.
    lean : bool
        The small part's link (the parameter).
    """

    def __init__(self, core: Core | TrainingCore, *, divisor: int, timeout_bits: int = 200,
                 initialised: bool = True, train_block: int = TRAIN_BLOCK,
                 lean: bool = False) -> None:
        if not isinstance(core, Core | TrainingCore):
            raise TypeError(f"Core must be an rtl.core.Core or an rtl.training_core."
                            f"TrainingCore, not {core!r}")
        self.divisor = check_divisor(divisor)
        if (not isinstance(timeout_bits, int) or isinstance(timeout_bits, bool)
                or timeout_bits < 20):
            raise ValueError(f"Timeout must be an integer of at least 20 bit times, "
                             f"not {timeout_bits!r}")
        self.timeout_bits = timeout_bits
        if not isinstance(initialised, bool):
            raise TypeError(f"Initialised must be a bool, not {initialised!r}")
        if (not isinstance(train_block, int) or isinstance(train_block, bool)
                or not 1 <= train_block <= 255):
            raise ValueError(f"Train block must be an integer in 1..255 samples, "
                             f"not {train_block!r}")
        if not isinstance(lean, bool):
            raise TypeError(f"Lean must be True or False, not {lean!r}")
        self.training = isinstance(core, TrainingCore)
        inner = core.core if self.training else core
        program = inner.program
        if program.widths.input > 8:
            raise ValueError(f"Pixels must be at most 8 bits for the host link, not "
                             f"{program.widths.input}")
        config = inner.model.config
        for name, value, limit in (("Label count", config.num_classes, 255),
                                   ("Lane count", program.lanes, 255),
                                   ("Label lane count", program.label_lanes, 255),
                                   ("Input size", config.input_size, 65535)):
            if value > limit:
                raise ValueError(f"{name} must be at most {limit} for the host link, "
                                 f"not {value}")
        if lean and self.training and config.input_size < _RECORD.size // 8 - 1:
            # Record j's bytes would overwrite sample j + 1's label before it is read.
            raise ValueError(f"A lean link keeps the TRAIN records in the sample buffer, "
                             f"which needs an input size of at least "
                             f"{_RECORD.size // 8 - 1}, not {config.input_size}")
        self.core = core
        self.inner = inner
        self.train_block = train_block
        self.lean = lean
        #: The core has two banks: a load writes the one not in use.
        self.banked = getattr(inner, "banks", 1) == 2
        training = {}
        if self.training:
            training = dict(rule=core.rule, train_block=train_block)
        # A training core takes loads through its own ``load`` port, which only an
        # SPRAM one has (its weights come up empty); a block RAM one keeps its netlist.
        loadable = (core.weights == "spram" if self.training else inner.weights != "rom")
        # LinkIdentity refuses, by name, a memory deeper than the 16-bit addresses.
        self.identity = dataclasses.replace(
            link_identity(inner.model, lanes=program.lanes, label_lanes=program.label_lanes,
                          loadable=loadable, shared=program.shared, **training),
            model_loaded=initialised)
        if not initialised and not self.identity.loadable:
            raise ValueError("A core whose memories start empty must be loadable "
                             "(weights='loadable' or 'spram')")
        if self.training and core.weights == "spram" and initialised:
            # Its TRAIN frames would update words that were never written.
            raise ValueError("An SPRAM training core's weights come up empty: build its "
                             "link with initialised=False")
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    @property
    def load_size(self) -> int:
        """Payload bytes of a LOAD frame: target, address (2), data."""
        return 3 + self.identity.load_data_bytes

    @property
    def _lean_transaction(self) -> bool:
        # Lean, a loadable training link's READ payload waits in the load transaction's
        # registers (LoadTransaction(holds_read=True)), not in registers of its own, and
        # a LOAD's bytes count in its checksum a bit a cycle (serial_checksum=True).
        return self.lean and self.training and self.identity.loadable

    def elaborate(self, platform) -> Module:
        m = Module()
        core, inner, ident = self.core, self.inner, self.identity
        m.submodules.uart_rx = urx = UartRx(divisor=self.divisor)
        m.submodules.uart_tx = utx = UartTx(divisor=self.divisor)
        m.submodules.parser = parser = FrameParser(
            timeout_cycles=self.timeout_bits * self.divisor, crc_in_payload=self.lean)
        # The core holds its result record until the reply has gone out (a copy here would
        # cost ~430 flip-flops, a tenth of an iCE40 UP5K).
        # A core with a score port (Core(score_port=True)) gives a RESULT's scores
        # through its argmax's select, one score at a time.
        m.submodules.replies = replies = ReplySerialiser(
            identity=ident, result_layout=inner.result.payload.shape(),
            score_port=inner.score_port_enabled, shared_header=self.lean,
            short_index=self.lean and self.training)
        m.submodules.core = core
        if inner.score_port_enabled:
            wiring.connect(m, inner.score, replies.score)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), parser.rx_busy.eq(urx.busy),
                     replies.tag.eq(parser.frame.payload.tag)]
        wiring.connect(m, urx.data, parser.rx)
        wiring.connect(m, replies.tx, utx.data)
        if self.training:
            # The training core takes its inference core's record itself, and holds its
            # own (``done``) until the link takes it after the reply: the inference
            # core's result registers keep the scores until the next sample.
            m.d.comb += replies.result.payload.eq(inner.result.payload)
        else:
            wiring.connect(m, core.result, replies.result)

        # -- the load transaction, if the core takes loads -------------------------------
        load = None
        if ident.loadable:
            m.submodules.transaction = load = LoadTransaction(
                inner.program, model_hash=ident.model_hash, checksum=ident.weights_checksum,
                model_loaded=ident.model_loaded, banked=self.banked,
                holds_read=self._lean_transaction, serial_checksum=self._lean_transaction,
                one_bound=self._lean_transaction)
            wiring.connect(m, parser.payload, load.payload)
            m.d.comb += [load.cmd.eq(parser.frame.payload.cmd),
                         load.length.eq(parser.frame.payload.length),
                         load.header.eq(parser.header), core.load.payload.eq(load.write),
                         replies.model_ok.eq(load.model_ok),
                         replies.checksum.eq(load.checksum)]
            if self.banked:
                m.d.comb += core.bank.eq(load.bank)
            if self.training:
                # A model committed trains from the seed, as IntTrainer(model, rule) does:
                # the link decides only in IDLE, after the last record was taken, so the
                # training core waits for a sample and takes the restart.
                m.d.comb += core.restart.eq(
                    load.decide & (load.verdict.reply == ReplyFrame.LOAD_COMMIT))
        else:
            m.d.comb += [replies.model_ok.eq(1), replies.checksum.eq(ident.weights_checksum)]
        self._sequence(m, parser, replies, load)
        return m

    def _lambda(self, m: Module, lam: Signal) -> Signal:
        """Drive the training core's lambda input with a TRAIN frame's ``lam``; whether
        it lies in the schedule's range (IDENT's ``lr_first..lr_last``). The core would
        clamp a lambda outside it, training with another rate than the host asked for,
        so the link refuses such a frame (error 11) instead."""
        first, last = self.core.lr_range
        accepted = Signal()
        m.d.comb += [self.core.lr_shift_in.eq(lam),
                     accepted.eq((lam >= first) & (lam <= last))]
        return accepted

    def _sequence(self, m: Module, parser: FrameParser, replies: ReplySerialiser,
                  load: LoadTransaction | None) -> None:
        """What a complete frame makes the link do: answer it, or run an image through
        the core, or make a memory write, or train or read (a training core), then
        answer."""
        core, D = self.core, self.identity.input_size
        training = self.training
        frame = parser.frame.payload
        step = Signal(_Step, init=_Step.IDLE)
        pixels_in = core.samples if training else core.image
        cmd = frame.cmd
        is_image = cmd == Command.IMAGE
        is_train = (cmd == Command.TRAIN) if training else Const(0)
        image_write, image_read = self._sample_buffer(m, parser, is_image, is_train, pixels_in)
        pixel = Signal(range(D + 1))

        tr = self._capture(m, parser, is_train, cmd,
                           load.held if self._lean_transaction else None)
        flags = self._flags(m, cmd, frame, is_image, tr)

        # The serialiser is idle whenever the link answers (the link waits for each reply
        # to go out, in SEND), so its request's ready need not be looked at.
        def answer(kind, code=0) -> None:
            m.d.comb += [replies.request.valid.eq(1), replies.request.payload.reply.eq(kind),
                         replies.request.payload.error.eq(code)]
            m.d.sync += step.eq(_Step.SEND)

        lam_ok = None
        if training:
            lam_ok = self._lambda(m, tr.lam)
            self._reply_body(m, replies, answer, image_write, image_read, tr)

        with m.Switch(step):
            with m.Case(_Step.IDLE):
                # A frame whose crc byte has been compared a cycle ago.
                with m.If(parser.frame.valid):
                    self._decide(m, frame, flags, tr, answer, load, lam_ok,
                                 replies.model_ok, step, pixel)

            with m.Case(_Step.PRIME):
                # The buffer's read port has one cycle of latency: fetch pixel 0 first.
                m.d.comb += image_read.addr.eq(0)
                m.d.sync += [pixel.eq(0), step.eq(_Step.STREAM)]

            with m.Case(_Step.STREAM):
                # A training core classifies only (its ``train`` bit 0).
                m.d.comb += pixels_in.valid.eq(1)
                # Keep the read one pixel ahead whenever the core takes one.
                m.d.comb += image_read.addr.eq(
                    Mux(pixels_in.ready, pixel + 1, pixel)[:len(image_read.addr)])
                with m.If(pixels_in.ready):
                    m.d.sync += pixel.eq(pixel + 1)
                    with m.If(equals(pixel, D - 1)):
                        m.d.sync += step.eq(_Step.RESULT)

            with m.Case(_Step.RESULT):
                # Answer from the core's record; it is taken only once sent.
                with m.If(core.done.valid if training else core.result.valid):
                    answer(ReplyFrame.RESULT)

            with m.Case(_Step.LOAD):
                if load is not None:
                    m.d.comb += core.load.valid.eq(1)
                    with m.If(core.load.ready):
                        m.d.comb += load.written.eq(1)
                        answer(ReplyFrame.LOAD)

            if training:
                self._training_steps(m, step, pixels_in, image_read, image_write, pixel, tr)

            with m.Case(_Step.SEND):
                if training and self.lean:
                    # A TRAIN reply's body: its records, from the sample buffer.
                    m.d.comb += image_read.addr.eq(tr.body_addr)
                with m.If(replies.done):
                    # The frame has been answered: the parser may take the next.
                    m.d.comb += parser.frame.ready.eq(1)
                    m.d.sync += step.eq(_Step.IDLE)
                    if training:
                        # A RESULT's or READ's record, held while the reply went out.
                        m.d.comb += core.done.ready.eq(core.done.valid)

    def _sample_buffer(self, m: Module, parser: FrameParser, is_image, is_train,
                       pixels_in) -> tuple:
        """The sample buffer: an IMAGE's pixels or a TRAIN's labelled samples wait here
        until the crc is known; its read port gives ``pixels_in`` (the core's) its pixels.
        Returns the buffer's write and read ports."""
        D, B = self.identity.input_size, self.train_block
        depth = sample_buffer_depth(D, B if self.training else 0)
        m.submodules.image_buffer = image_mem = memory.Memory(shape=8, depth=depth, init=[],
                                                              attrs=COLLISIONS_UNUSED)
        image_write, image_read = image_mem.write_port(), image_mem.read_port()
        index = parser.payload.payload.index
        byte = parser.payload.payload.data
        m.d.comb += [image_write.data.eq(byte),
                     image_write.en.eq(parser.payload.valid & (
                         (is_image & (index < D))
                         | (is_train & ~is_zero(index) & (index <= B * (D + 1))))),
                     image_write.addr.eq(Mux(is_train, index - 1, index)[:len(image_write.addr)])]
        if self.training:
            m.d.comb += pixels_in.payload.pixel.eq(image_read.data)
        else:
            m.d.comb += pixels_in.payload.eq(image_read.data)
        return image_write, image_read

    def _decide(self, m: Module, frame, flags, tr: _Train, answer,
                load: LoadTransaction | None, lam_ok, model_ok, step: Signal,
                pixel: Signal) -> None:
        """A frame in IDLE: its answer, in the protocol's order (the crc first), or its
        first step."""
        with m.If(~frame.crc_ok):
            answer(ReplyFrame.ERROR, ErrorCode.CRC)
        with m.Elif(flags.ident):
            with m.If(flags.no_payload):
                answer(ReplyFrame.IDENT)
            with m.Else():
                answer(ReplyFrame.ERROR, ErrorCode.LENGTH)
        with m.Elif(flags.image):
            with m.If(~flags.image_length):
                answer(ReplyFrame.ERROR, ErrorCode.LENGTH)
            with m.Elif(~model_ok):
                # Never an inference with a half-loaded mix of two models.
                answer(ReplyFrame.ERROR, ErrorCode.NO_MODEL)
            with m.Else():
                m.d.sync += step.eq(_Step.PRIME)
        with m.Elif(flags.load_family):
            if load is None:
                answer(ReplyFrame.ERROR, ErrorCode.LOAD)
            else:
                m.d.comb += load.decide.eq(1)
                with m.If(load.verdict.write):
                    m.d.sync += step.eq(_Step.LOAD)
                with m.Else():
                    answer(load.verdict.reply, load.verdict.error)
        with m.Elif(flags.train):
            if not self.training:
                answer(ReplyFrame.ERROR, ErrorCode.TRAIN)
            else:
                self._decide_train(m, flags, tr, answer, lam_ok, model_ok, step)
        with m.Elif(flags.read):
            if not self.training:
                answer(ReplyFrame.ERROR, ErrorCode.TRAIN)
            else:
                self._decide_read(m, flags, tr, answer, model_ok, step, pixel)
        with m.Else():
            answer(ReplyFrame.ERROR, ErrorCode.COMMAND)

    def _decide_train(self, m: Module, flags, tr: _Train, answer, lam_ok, model_ok,
                      step: Signal) -> None:
        """A TRAIN frame in IDLE (a training core's): its refusal, in the protocol's
        order, or its first step."""
        with m.If(~flags.train_length):
            answer(ReplyFrame.ERROR, ErrorCode.LENGTH)
        with m.Elif(~model_ok):
            answer(ReplyFrame.ERROR, ErrorCode.NO_MODEL)
        with m.Elif(~lam_ok):
            answer(ReplyFrame.ERROR, ErrorCode.LAMBDA)
        with m.Elif(tr.bad_label):
            answer(ReplyFrame.ERROR, ErrorCode.LABEL)
        with m.Else():
            m.d.sync += [step.eq(_Step.TRAIN_PRIME), tr.raddr.eq(0), tr.t_sample.eq(0)]
            if self.lean:
                # The records' write address (the body's, later).
                m.d.sync += tr.body_addr.eq(0)

    def _decide_read(self, m: Module, flags, tr: _Train, answer, model_ok, step: Signal,
                     pixel: Signal) -> None:
        """A READ frame in IDLE (a training core's): its refusal, in the protocol's
        order, or its first step."""
        with m.If(~flags.read_length):
            answer(ReplyFrame.ERROR, ErrorCode.LENGTH)
        with m.Elif(~model_ok):
            answer(ReplyFrame.ERROR, ErrorCode.NO_MODEL)
        with m.Elif(~flags.read_range):
            answer(ReplyFrame.ERROR, ErrorCode.ADDRESS)
        with m.Elif(~flags.read_fits):
            answer(ReplyFrame.ERROR, ErrorCode.LENGTH)
        with m.Else():
            m.d.sync += [step.eq(_Step.READ_PRIME), pixel.eq(0)]
            if self.lean:
                # The reply's length, from the product itself: no register of it
                # (16 flip-flops after a DSP, each a logic cell of its own on the iCE40).
                m.d.sync += tr.body_length.eq(tr.r_count * self.identity.read_bytes)

    def _capture(self, m: Module, parser: FrameParser, is_train, cmd,
                 held: Value | None = None) -> _Train:
        """The fields of a TRAIN or READ payload as its bytes arrive (training cores); a
        READ's from ``held`` (the load transaction's registers) when given."""
        D, K, B = self.identity.input_size, self.identity.labels, self.train_block
        index = parser.payload.payload.index
        byte = parser.payload.payload.data
        # -- a TRAIN payload as it arrives: lambda, then per sample a label and D pixels;
        # how many samples, and whether a label is out of range ---------------------------
        lam = Signal(8)
        t_pos = Signal(range(D + 1))        # the byte's place in its sample (0: the label)
        t_count = Signal(range(B + 2))      # samples begun, up to B + 1 (too many)
        bad_label = Signal()
        # -- a READ payload: target, address, count ---------------------------------------
        if held is None:
            r_regs = [Signal(8, name=f"read_byte_{i}") for i in range(READ_SIZE)]
        else:
            r_regs = [held[8 * i:8 * i + 8] for i in range(READ_SIZE)]
        tr = _Train(lam=lam, t_pos=t_pos, t_count=t_count, bad_label=bad_label,
                    r_target=r_regs[0], r_addr=Cat(r_regs[1], r_regs[2]),
                    r_count=Cat(r_regs[3], r_regs[4]))
        if not self.training:
            return tr
        with m.If(parser.header):
            m.d.sync += [t_pos.eq(0), t_count.eq(0), bad_label.eq(0)]
        with m.If(parser.payload.valid & is_train):
            with m.If(is_zero(index)):
                m.d.sync += lam.eq(byte)
            with m.Else():
                m.d.sync += t_pos.eq(Mux(t_pos == D, 0, t_pos + 1))
                with m.If(is_zero(t_pos)):
                    m.d.sync += t_count.eq(Mux(t_count == B + 1, t_count, t_count + 1))
                    with m.If(byte >= K):
                        m.d.sync += bad_label.eq(1)
        if held is None:
            for i, reg in enumerate(r_regs):
                with m.If(parser.payload.valid & (cmd == Command.READ) & equals(index, i)):
                    m.d.sync += reg.eq(byte)
        return tr

    def _flags(self, m: Module, cmd, frame, is_image, tr: _Train) -> Signal:
        """What the decision looks at, registered every cycle (:data:`_FLAGS`)."""
        D, B = self.identity.input_size, self.train_block
        t_pos, t_count = tr.t_pos, tr.t_count
        r_target, r_addr, r_count = tr.r_target, tr.r_addr, tr.r_count
        # -- what the decision looks at, registered every cycle --------------------------
        # The fields are stable from the payload's last byte on, a UART byte before the
        # decision: the comparisons are made a cycle ahead, so the decision tree sees
        # single bits (with the comparisons, it and the answer's registers were the iCE40
        # build's slowest path). The load commands' own are the transaction's.
        flags = Signal(_FLAGS, name="flag")
        m.d.sync += [
            flags.ident.eq(cmd == Command.IDENT),
            flags.image.eq(is_image),
            flags.load_family.eq((cmd == Command.LOAD) | (cmd == Command.LOAD_BEGIN) |
                                 (cmd == Command.LOAD_COMMIT)),
            flags.no_payload.eq(is_zero(frame.length)),
            flags.image_length.eq(frame.length == D),
            flags.train.eq(cmd == Command.TRAIN),
            flags.read.eq(cmd == Command.READ),
        ]
        if self.training:
            readable = [LOAD_TARGETS[name] for name in STORED_MEMORIES.values()]
            m.d.sync += [
                # 1 + n (D + 1) bytes with 1 <= n <= B: the last sample is whole.
                flags.train_length.eq(is_zero(t_pos) & ~is_zero(t_count) & (t_count <= B)),
                flags.read_length.eq(frame.length == READ_SIZE),
                flags.read_range.eq(~is_zero(r_count) & self._read_range(r_target, r_addr,
                                                                         r_count, readable)),
                flags.read_fits.eq(self._read_fits(r_count)),
            ]
        return flags

    def _read_fits(self, count: Value) -> Value:
        """Whether a READ reply of ``count`` words fits the 16-bit length field. Lean,
        from the product that makes the reply's length (:meth:`_decide_read`; one
        multiplier for both), its high bits zero, not a comparison with a constant (an
        iCE40 carry chain)."""
        read_bytes = self.identity.read_bytes
        if not self.lean:
            return count <= 0xFFFF // read_bytes
        return is_zero((count * read_bytes)[16:])

    def _read_range(self, target: Value, addr: Value, count: Value, readable) -> Value:
        """Whether words ``addr`` to ``addr + count - 1`` of memory ``target`` exist and
        it is one of the ``readable`` codes. Lean, one comparison with the target's depth
        picked by the target (as ``LoadTransaction(one_bound=True)``), not one per
        memory (a carry chain each on the iCE40)."""
        depths = self.identity.depths
        if not self.lean:
            return Cat(*((target == code) & (addr + count <= depths[code - 1])
                         for code in readable)).any()
        bound = Const(0, 16)
        for code in readable:
            bound = Mux(target == code, depths[code - 1], bound)
        return Cat(*(target == code for code in readable)).any() & (addr + count <= bound)

    def _reply_body(self, m: Module, replies: ReplySerialiser, answer, image_write,
                    image_read, tr: _Train) -> None:
        """The record buffer, the samples-trained count and the body stream of the TRAIN
        and READ replies; sets the rest of ``tr``."""
        core, B = self.core, self.train_block
        read_bytes = self.identity.read_bytes
        r_target, r_count = tr.r_target, tr.r_count
        record_write = record_read = None
        if not self.lean:
            m.submodules.records = record_mem = memory.Memory(
                shape=_RECORD, depth=max(2, B), init=[], attrs=COLLISIONS_UNUSED)
            record_write, record_read = record_mem.write_port(), record_mem.read_port()
        # Samples trained since configuration: kept through a reset, like the memories.
        trained = Signal(32, reset_less=True)
        m.d.comb += replies.trained.eq(trained)
        t_sample = Signal(range(max(2, B)))
        t_label = Signal(8)
        raddr = Signal.like(image_write.addr)
        done = core.done
        record_size = _RECORD.size // 8
        if not self.lean:
            m.d.comb += [record_write.addr.eq(t_sample),
                         record_write.data.label.eq(done.payload.label),
                         record_write.data.wrong.eq(done.payload.wrong),
                         record_write.data.cycles.eq(done.payload.cycles)]
        # The body: words (records, or stored words through the core's read port) a
        # byte at a time, least significant first.
        body_read = Signal()              # stored words, not records
        fetching, shifting = Signal(), Signal()
        body_addr, words_left = Signal(16), Signal(16)
        # Lean, a record is read from the sample buffer a byte (a word) at a time.
        word_bytes = max(1 if self.lean else record_size, read_bytes)
        body_word = Signal(8 * word_bytes)
        bytes_left = Signal(range(word_bytes + 1))
        read_latency = core.read_latency
        wait = Signal(range(read_latency + 1))
        read_length = None
        if not self.lean:
            read_length = Signal(16)
            m.d.sync += read_length.eq(r_count * read_bytes)
        m.d.comb += [core.read.target.eq(r_target), core.read.addr.eq(body_addr)]
        if self.lean:
            record_data, record_bytes = image_read.data, 1
        else:
            m.d.comb += record_read.addr.eq(body_addr)
            record_data, record_bytes = record_read.data, record_size
        with m.If(fetching):
            # The address is held: the word is there read_latency cycles on (a
            # record one cycle on).
            m.d.sync += wait.eq(wait + 1)
            with m.If(wait == read_latency):
                m.d.sync += [
                    body_word.eq(Mux(body_read, core.read_data, record_data)),
                    bytes_left.eq(Mux(body_read, read_bytes, record_bytes)),
                    fetching.eq(0), shifting.eq(1), wait.eq(0)]
        with m.If(shifting):
            m.d.comb += [replies.body.valid.eq(1), replies.body.payload.eq(body_word[:8])]
            with m.If(replies.body.ready):
                m.d.sync += [body_word.eq(body_word >> 8), bytes_left.eq(bytes_left - 1)]
                with m.If(bytes_left == 1):
                    m.d.sync += [shifting.eq(0), body_addr.eq(body_addr + 1),
                                 words_left.eq(words_left - 1),
                                 fetching.eq(words_left != 1)]

        body_length = Signal(16)
        m.d.comb += replies.body_length.eq(body_length)
        if self.lean:
            # The body's last byte: the serialiser's send index need not count the body
            # (ReplySerialiser(short_index=True)). A body is never empty (a TRAIN
            # trains a sample at least, a READ reads a word at least).
            m.d.comb += replies.body_last.eq(equals(bytes_left, 1) & equals(words_left, 1))

        def answer_body(kind, *, read: bool, first, count, length) -> None:
            # ``length`` None: body_length holds it already (a lean READ's, _decide_read).
            answer(kind)
            if length is not None:
                m.d.sync += body_length.eq(length)
            m.d.sync += [body_read.eq(int(read)), body_addr.eq(first), words_left.eq(count),
                         fetching.eq(1), wait.eq(0)]

        tr.record_write, tr.trained, tr.t_sample = record_write, trained, t_sample
        tr.t_label, tr.raddr, tr.read_length = t_label, raddr, read_length
        tr.answer_body, tr.body_addr, tr.body_length = answer_body, body_addr, body_length

    def _record_into_buffer(self, m: Module, done, image_write, address: Signal) -> Signal:
        """Lean (:class:`HostLink`'s ``lean``): while ``done`` offers a record, write its
        bytes (label, wrong, cycles little-endian: the reply's) into the sample buffer at
        ``address`` on, one a cycle, ``address`` counting; the byte being written, from 0
        (the record is taken with its last)."""
        record_byte = Signal(range(_RECORD.size // 8))
        payload = done.payload
        cycles = payload.cycles
        items = [payload.label, payload.wrong, *(cycles[8 * j:8 * j + 8] for j in range(4))]
        with m.If(done.valid):
            # Over the parser's write: the parser holds the frame, so it writes nothing.
            m.d.comb += [image_write.en.eq(1),
                         image_write.addr.eq(address[:len(image_write.addr)]),
                         image_write.data.eq(select(items, record_byte))]
            m.d.sync += [address.eq(address + 1),
                         record_byte.eq(Mux(record_byte == len(items) - 1, 0,
                                            record_byte + 1))]
        return record_byte

    def _training_steps(self, m: Module, step: Signal, pixels_in, image_read, image_write,
                        pixel: Signal, tr: _Train) -> None:
        """The steps of a TRAIN (the buffered samples one after the other) and of a READ
        (a sample classified, then the stored words streamed): cases of
        :meth:`_sequence`'s switch."""
        D, done = self.identity.input_size, self.core.done
        raddr, t_label, t_sample, t_count = tr.raddr, tr.t_label, tr.t_sample, tr.t_count
        record_write, trained, answer_body = tr.record_write, tr.trained, tr.answer_body
        r_addr, r_count, read_length = tr.r_addr, tr.r_count, tr.read_length
        with m.Case(_Step.TRAIN_PRIME):
            # Sample t_sample starts at raddr with its label.
            m.d.comb += image_read.addr.eq(raddr)
            m.d.sync += step.eq(_Step.TRAIN_LABEL)

        with m.Case(_Step.TRAIN_LABEL):
            m.d.comb += image_read.addr.eq(raddr + 1)
            m.d.sync += [t_label.eq(image_read.data), raddr.eq(raddr + 1),
                         pixel.eq(0), step.eq(_Step.TRAIN_STREAM)]

        with m.Case(_Step.TRAIN_STREAM):
            m.d.comb += [pixels_in.valid.eq(1), pixels_in.payload.label.eq(t_label),
                         pixels_in.payload.train.eq(1),
                         image_read.addr.eq(Mux(pixels_in.ready, raddr + 1, raddr))]
            with m.If(pixels_in.ready):
                # After the last pixel raddr is the next sample's label.
                m.d.sync += [pixel.eq(pixel + 1), raddr.eq(raddr + 1)]
                with m.If(equals(pixel, D - 1)):
                    m.d.sync += step.eq(_Step.TRAIN_DONE)

        with m.Case(_Step.TRAIN_DONE):
            # The sample's updates are made once its record is offered.
            taken = done.valid
            if self.lean:
                record_byte = self._record_into_buffer(m, done, image_write, tr.body_addr)
                taken = done.valid & equals(record_byte, _RECORD.size // 8 - 1)
            with m.If(taken):
                m.d.comb += done.ready.eq(1)
                if not self.lean:
                    m.d.comb += record_write.en.eq(1)
                m.d.sync += [trained.eq(trained + 1), t_sample.eq(t_sample + 1),
                             step.eq(_Step.TRAIN_PRIME)]
                with m.If(t_sample == t_count - 1):
                    if self.lean:
                        # The records are the body, a byte a word, from buffer address 0.
                        size = Signal(16)
                        m.d.comb += size.eq(t_count * (_RECORD.size // 8))
                        answer_body(ReplyFrame.TRAIN, read=False, first=0, count=size,
                                    length=size)
                    else:
                        answer_body(ReplyFrame.TRAIN, read=False, first=0, count=t_count,
                                    length=t_count * (_RECORD.size // 8))

        with m.Case(_Step.READ_PRIME):
            # Classify whatever the buffer holds (a sample that does not train
            # changes nothing): the training core serves reads while it offers
            # that sample's record.
            m.d.comb += pixels_in.valid.eq(1)
            with m.If(pixels_in.ready):
                m.d.sync += pixel.eq(pixel + 1)
                with m.If(equals(pixel, D - 1)):
                    m.d.sync += step.eq(_Step.READ_WAIT)

        with m.Case(_Step.READ_WAIT):
            with m.If(done.valid):
                answer_body(ReplyFrame.READ, read=True, first=r_addr, count=r_count,
                            length=read_length)
