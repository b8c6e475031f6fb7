"""The host side of the board's UART link (docs/host-link.md).

Frames are encoded and parsed here; :class:`Device` speaks the protocol over any port
object with ``write(bytes)`` and ``read(n)``, such as ``serial.Serial(port, 115200,
timeout=1)`` from pyserial or a test double. The wire codes come from :mod:`rtl.protocol`,
the identity (what the IDENT reply carries) and the whole-model checksum of a load from
:mod:`rtl.host_link`, so both ends share one definition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from golden.intmodel import IntModel
from rtl.core import LOAD_TARGETS, Core, load_words
from rtl.host_link import (
    LinkIdentity,
    link_identity,
    link_program,
    load_checksum,
    load_data_bytes,
    load_payload,
)
from rtl.host_link import model_hash as hash_of_model
from rtl.protocol import (
    FRAME_CRC,
    PROTOCOL_VERSION,
    SYNC,
    TRAIN_RECORD_SIZE,
    Command,
    ErrorCode,
    Reply,
)
from rtl.stored_words import STORED_MEMORIES, forward_model, unpack_stored

__all__ = ["Device", "Frame", "FrameReader", "HostLinkError", "HostLinkTimeout", "Port",
           "TrainRecord", "crc8", "encode_frame", "lambdas"]

MAX_PAYLOAD = 0xFFFF


class HostLinkError(RuntimeError):
    """The device did not answer as the protocol says; the message says how."""


class HostLinkTimeout(HostLinkError):
    """No (complete) reply before the port's timeout: the device is silent."""


class Port(Protocol):
    """What :class:`Device` needs of a serial port."""

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int) -> bytes: ...


def crc8(data: bytes | Iterable[int]) -> int:
    """The frame crc: CRC-8, polynomial 0x07, init 0x00, no reflection, no final xor
    (:data:`rtl.protocol.FRAME_CRC`, the library's CRC-8/SMBus)."""
    return FRAME_CRC.compute(bytes(data))


def encode_frame(cmd: int, payload: bytes = b"", *, tag: int = 0) -> bytes:
    """``0xA5, cmd, tag, length (LE16), payload, crc8(cmd, tag, length, payload)``."""
    for name, value in (("command", cmd), ("tag", tag)):
        if not isinstance(value, int) or not 0 <= value <= 0xFF:
            raise ValueError(f"{name} must be a byte 0..255, not {value!r}")
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload must be at most {MAX_PAYLOAD} bytes, not {len(payload)}")
    body = bytes([cmd, tag]) + len(payload).to_bytes(2, "little") + payload
    return bytes([SYNC]) + body + bytes([crc8(body)])


class TrainRecord(NamedTuple):
    """One trained sample as the TRAIN reply reports it."""

    label: int      #: the label of the training pass (golden.inttrain.SampleResult)
    wrong: int      #: the wrong label the device's generator drew
    cycles: int     #: the core's cycles from the sample's last pixel to its record


class Frame(NamedTuple):
    """A frame as :class:`FrameReader` parses it."""

    cmd: int
    tag: int
    payload: bytes


class FrameReader:
    """Incremental frame parser: bytes in (any split), :class:`Frame` (cmd, tag, payload)
    out.

    Bytes before a 0xA5 are skipped. A candidate frame whose crc does not match raises
    :class:`HostLinkError` from :meth:`next_frame`; only its 0xA5 is dropped, so parsing
    resumes at the next 0xA5 after it (the bad candidate may have been a 0xA5 in noise).

    Parameters
    ----------
    max_length : int
        Longest payload expected; a candidate announcing more is treated as noise.
    """

    def __init__(self, *, max_length: int = MAX_PAYLOAD) -> None:
        self.max_length = max_length
        self._buffer = bytearray()
        #: Bytes skipped while looking for a frame (noise, or sync bytes of bad frames).
        self.skipped = 0

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buffer += data

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None if more bytes are needed."""
        buf = self._buffer
        while True:
            start = buf.find(SYNC)
            if start < 0:
                self.skipped += len(buf)
                buf.clear()
                return None
            self.skipped += start
            del buf[:start]
            if len(buf) < 5:
                return None
            length = int.from_bytes(buf[3:5], "little")
            if length > self.max_length:
                del buf[:1]
                self.skipped += 1
                continue
            if len(buf) < 6 + length:
                return None
            cmd, tag, payload, crc = buf[1], buf[2], bytes(buf[5:5 + length]), buf[5 + length]
            expected = crc8(buf[1:5 + length])
            if crc != expected:
                del buf[:1]
                self.skipped += 1
                raise HostLinkError(f"reply frame with a bad crc: got 0x{crc:02X}, "
                                    f"computed 0x{expected:02X} (command 0x{cmd:02X})")
            del buf[:6 + length]
            return Frame(cmd, tag, payload)

    def clear(self) -> int:
        """Forget the bytes received and not yet parsed; returns how many."""
        count = len(self._buffer)
        self._buffer.clear()
        return count

    def frames(self, data: bytes = b"") -> list[Frame]:
        """Feed ``data`` and return every frame now complete (raises on a bad crc)."""
        self.feed(data)
        out = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out


#: Device errors that say the line garbled a frame (its crc, its command or its length):
#: what follows it on the line may be a fragment, so the host resynchronises.
_LINE_ERRORS = (ErrorCode.CRC, ErrorCode.COMMAND, ErrorCode.LENGTH)



def lambdas(identity: LinkIdentity) -> str:
    """The lambdas a training device takes, as IDENT says (``4`` or ``4..6``)."""
    first, last = identity.lr_first, identity.lr_last
    return str(first) if first == last else f"{first}..{last}"

class Device:
    """A board running :class:`rtl.host_link.HostLink`, over ``port``.

    Every command carries a tag (a counter, one byte) and only a reply with that tag is
    taken as its answer: a reply with another tag is a late answer to an earlier command
    (whose read timed out) and is skipped (counted in :attr:`stale`). After a timeout, a
    reply frame that does not parse, or an ERROR that says the line garbled the frame
    (error 1, 2 or 3), the next command first drains the line: it reads until the port
    times out with nothing, which also leaves the device's receiver quiet for as long,
    so that it abandons any frame it had started (its idle timeout, docs/host-link.md).
    The port's timeout must therefore be longer than the device's idle timeout
    (``timeout_bits`` bit times: 1.7 ms at 115200 baud by default).

    Parameters
    ----------
    port : Port
        Anything with ``write(bytes)`` and ``read(n)``; ``read`` returning fewer bytes
        than asked (``b""``) means the port's timeout passed.

    Attributes
    ----------
    stale : int
        Replies skipped because their tag was not the command's.
    drained : int
        Bytes read and dropped while resynchronising.
    """

    def __init__(self, port: Port) -> None:
        self.port = port
        self._reader = FrameReader()
        self._identity: LinkIdentity | None = None
        self._tag = 0
        self._resync = False
        self.stale = 0
        self.drained = 0

    # -- transport -----------------------------------------------------------------
    def _drain(self) -> None:
        """Read until the line is quiet for a whole port timeout, dropping it all."""
        self.drained += self._reader.clear()
        while data := self.port.read(256):
            self.drained += len(data)
        self._resync = False

    def _receive(self, what: str, tag: int) -> Frame:
        while True:
            while (frame := self._reader.next_frame()) is None:
                data = self.port.read(1)
                if not data:
                    raise HostLinkTimeout(f"no reply to {what} before the port's timeout")
                self._reader.feed(data)
            if frame.tag == tag:
                return frame
            # A late reply to an earlier command: never the answer to this one.
            self.stale += 1

    def _transact(self, cmd: int, payload: bytes, expect: int, what: str) -> bytes:
        if self._resync:
            self._drain()
        self._tag = tag = (self._tag + 1) & 0xFF
        self.port.write(encode_frame(cmd, payload, tag=tag))
        try:
            code, _, reply = self._receive(what, tag)
        except HostLinkError:
            # A timeout or a reply that does not parse: the rest of it, or the late
            # reply itself, may still come.
            self._resync = True
            raise
        if code == Reply.ERROR:
            err = reply[0] if len(reply) == 1 else None
            try:
                reason = ErrorCode(err).message
            except ValueError:
                reason = "unknown error code"
            self._resync = err in _LINE_ERRORS
            raise HostLinkError(f"device refused {what}: error {err} ({reason})")
        if code != expect:
            self._resync = True
            raise HostLinkError(f"device answered {what} with reply 0x{code:02X}, "
                                f"expected 0x{expect:02X}")
        return reply

    # -- commands ------------------------------------------------------------------
    def identify(self) -> LinkIdentity:
        """Ask the device what it is (IDENT)."""
        reply = self._transact(Command.IDENT, b"", Reply.IDENT, "IDENT")
        if reply[:1] != bytes([PROTOCOL_VERSION]):
            version = reply[0] if reply else "none"
            raise HostLinkError(f"device speaks protocol version {version}; this host speaks "
                                f"{PROTOCOL_VERSION} (rebuild the bitstream from this "
                                "version of ffcl-hw)")
        try:
            identity = LinkIdentity.from_bytes(reply)
        except ValueError as error:
            raise HostLinkError(f"malformed IDENT reply: {error}") from None
        self._identity = identity
        return identity

    @property
    def identity(self) -> LinkIdentity:
        """The device's identity (asked once, then remembered)."""
        return self._identity if self._identity is not None else self.identify()

    def check(self, int_model: IntModel, lanes: int,
              label_lanes: int | None = None) -> LinkIdentity:
        """Raise :class:`HostLinkError` naming the first difference between the device
        and a core for ``int_model`` with ``lanes`` (and ``label_lanes``)."""
        expected = link_identity(int_model, lanes=lanes, label_lanes=label_lanes)
        actual = self.identify()
        for field in ("labels", "input_size", "lanes", "label_lanes", "input_bits",
                      "score_bits", "model_hash"):
            have, want = getattr(actual, field), getattr(expected, field)
            if have != want:
                show = (lambda v: f"0x{v:08X}") if field == "model_hash" else str
                raise HostLinkError(f"device has {field} = {show(have)}, the model needs "
                                    f"{show(want)}")
        return actual

    def classify(self, image: Sequence[int] | np.ndarray) -> tuple[int, list[int], int]:
        """Send one image (D integer pixels); returns (label, scores, cycles)."""
        ident = self.identity
        pixels = np.asarray(image).reshape(-1)
        if pixels.size != ident.input_size:
            raise ValueError(f"image must have {ident.input_size} pixels, not {pixels.size}")
        top = (1 << ident.input_bits) - 1
        if pixels.size and (pixels.min() < 0 or pixels.max() > top):
            raise ValueError(f"pixels must lie in 0..{top}, not {pixels.min()}..{pixels.max()}")
        reply = self._transact(Command.IMAGE, bytes(int(p) for p in pixels), Reply.RESULT, "IMAGE")
        if len(reply) != ident.result_size:
            raise HostLinkError(f"RESULT reply has {len(reply)} bytes, expected "
                                f"{ident.result_size}")
        n = ident.score_bytes
        scores = [int.from_bytes(reply[1 + k * n:1 + (k + 1) * n], "little")
                  for k in range(ident.labels)]
        return reply[0], scores, int.from_bytes(reply[-4:], "little")

    def load_model(self, model: IntModel | Core | Iterable[tuple[int, int, int]], *,
                   model_hash: int | None = None) -> int:
        """Load a model into a loadable core in one transaction (docs/host-link.md):
        LOAD_BEGIN with the model's hash and whole-model checksum, one acknowledged LOAD
        frame per memory write, LOAD_COMMIT.

        On a training device (IDENT's trains flag: an SPRAM training core) an integer
        model goes in as the stored words it starts training from, B_m bits a weight,
        (w << f) + 2^(f-1) (:func:`rtl.host_link.link_program` with IDENT's
        ``stored_bits``), not the inference words: after the commit IDENT's checksum is
        that of ``link_identity(model, ..., rule=...)``, and the device trains as
        ``IntTrainer(model, rule)`` fresh (the commit restarts its generators).

        Parameters
        ----------
        model : IntModel, Core or iterable of (target, address, word)
            An integer model (its writes for the device's lane counts and, training, its
            stored width), a Core (its own model, :func:`rtl.core.load_words`) or the
            writes themselves (:meth:`Core.load_words_for`).
        model_hash : int, optional
            Only with writes: the hash to announce (default: the device's own).

        Returns
        -------
        int
            The number of writes.

        Raises
        ------
        ValueError
            If a write's target is not one of :data:`rtl.core.LOAD_TARGETS` or its
            address is at or beyond that memory's depth (IDENT's ``depths``), which the
            device would refuse with error 4 or 9, or a Core of other stored widths is
            given for a training device; nothing is sent.
        HostLinkError
            If the device is not loadable or refuses a frame; in particular error 5 for
            weights of another configuration (nothing written, the old model kept) and
            error 7 when the checksum does not match at the commit (then the device
            refuses images until a load commits).
        """
        ident = self.identity
        if not ident.loadable:
            raise HostLinkError(
                "device's training core keeps its weights in block RAM, which the bitstream "
                "initialises: it takes no load (build it with weights='spram' to load)"
                if ident.trains else "device's core is not loadable (built with weights='rom')")
        n = ident.load_data_bytes
        if isinstance(model, IntModel | Core):
            if model_hash is not None:
                raise ValueError("model_hash is given only with a list of writes")
            int_model = model if isinstance(model, IntModel) else model.model
            if (ident.trains and isinstance(model, Core)
                    and model.store_bits != ident.stored_bits):
                raise ValueError(f"the training device holds {ident.stored_bits}-bit stored "
                                 f"weights; pass the IntModel (its stored words are made "
                                 f"for the device) or a Core built with store_bits="
                                 f"{ident.stored_bits}")
            # A training device holds stored words: the model as its trainer starts.
            program = model.program if isinstance(model, Core) else link_program(
                model, lanes=ident.lanes, label_lanes=ident.label_lanes, shared=ident.shared,
                store_bits=ident.stored_bits if ident.trains else None)
            writes, n_model = load_words(program), load_data_bytes(program)
            announced = hash_of_model(int_model)
        else:
            writes, n_model = list(model), n
            announced = ident.model_hash if model_hash is None else model_hash
        _check_writes(writes, ident)
        checksum = load_checksum(writes, n_model)
        self._transact(Command.LOAD_BEGIN, announced.to_bytes(4, "little")
                       + checksum.to_bytes(4, "little"), Reply.LOAD_BEGIN, "LOAD_BEGIN")
        # The device checked the hash: a model of its own configuration has its widths.
        if n_model != n:
            raise HostLinkError(f"the model's load words have {n_model} bytes, the "
                                f"device's {n}")
        for target, addr, word in writes:
            self._transact(Command.LOAD, load_payload(target, addr, word, n), Reply.LOAD,
                           f"LOAD of target {target} address {addr}")
        self._transact(Command.LOAD_COMMIT, b"", Reply.LOAD_COMMIT, "LOAD_COMMIT")
        self._identity = dataclasses.replace(ident, model_loaded=True,
                                             weights_checksum=checksum)
        return len(writes)


    # -- training ---------------------------------------------------------------------
    def _training_identity(self) -> LinkIdentity:
        ident = self.identity
        if not ident.trains:
            raise HostLinkError("the device's bitstream does not train (IDENT's trains flag "
                                "is 0); build it with the training core")
        return ident

    def train(self, images: Sequence[Sequence[int]] | np.ndarray, labels: Sequence[int],
              lr_shift: int) -> list[TrainRecord]:
        """Train the device on ``images`` with their ``labels``, in order, at learning
        rate 2^-``lr_shift``: TRAIN frames of up to IDENT's ``train_block`` samples.

        Returns
        -------
        list of TrainRecord
            Per sample, the label of its training pass (the prediction of the weights
            before its update, but for FFCL trained at every iteration), the wrong label
            drawn and the cycles.

        Raises
        ------
        ValueError
            If an image, label or lambda cannot be sent (nothing is sent): pixels that do
            not fit, labels outside 0..K-1, a lambda outside 0..254 or other than the one
            the device trains with (IDENT's ``lr_shift``, unless it takes any).
        HostLinkError
            If the device does not train or refuses a frame; the samples of earlier frames
            have been trained.
        """
        ident = self._training_identity()
        pixels = np.asarray(images, dtype=np.int64).reshape(-1, ident.input_size) \
            if np.size(images) else np.zeros((0, ident.input_size), np.int64)
        labels = [int(y) for y in labels]
        if len(labels) != len(pixels):
            raise ValueError(f"{len(pixels)} images but {len(labels)} labels")
        top = (1 << ident.input_bits) - 1
        if pixels.size and (pixels.min() < 0 or pixels.max() > top):
            raise ValueError(f"pixels must lie in 0..{top}, not {pixels.min()}..{pixels.max()}")
        if any(not 0 <= y < ident.labels for y in labels):
            raise ValueError(f"labels must lie in 0..{ident.labels - 1}")
        if not isinstance(lr_shift, int) or not 0 <= lr_shift <= 0xFF:
            raise ValueError(f"lr_shift must be an integer in 0..255 (one byte), "
                             f"not {lr_shift!r}")
        if not ident.lr_first <= lr_shift <= ident.lr_last:
            raise ValueError(f"the device trains with lambda {lambdas(ident)} only (the "
                             f"schedule its bitstream was built for), not {lr_shift}")
        records: list[TrainRecord] = []
        block = max(1, ident.train_block)
        for start in range(0, len(labels), block):
            chunk = range(start, min(start + block, len(labels)))
            payload = bytes([lr_shift]) + b"".join(
                bytes([labels[i]]) + bytes(int(p) for p in pixels[i]) for i in chunk)
            what = f"TRAIN of samples {chunk.start}..{chunk.stop - 1}"
            reply = self._transact(Command.TRAIN, payload, Reply.TRAIN, what)
            if len(reply) != TRAIN_RECORD_SIZE * len(chunk):
                self._resync = True
                raise HostLinkError(f"TRAIN reply has {len(reply)} bytes, expected "
                                    f"{TRAIN_RECORD_SIZE * len(chunk)}")
            for i in range(len(chunk)):
                r = reply[TRAIN_RECORD_SIZE * i:TRAIN_RECORD_SIZE * (i + 1)]
                records.append(TrainRecord(r[0], r[1], int.from_bytes(r[2:6], "little")))
        self._identity = dataclasses.replace(
            ident, trained=(ident.trained + len(labels)) & 0xFFFFFFFF)
        return records

    def read_words(self, target: int, addr: int, count: int) -> list[int]:
        """``count`` stored words of memory ``target`` (a :data:`rtl.core.LOAD_TARGETS`
        code: weights, bias or labels) from ``addr`` on, in READ frames of at most 65535
        bytes.

        Raises
        ------
        ValueError
            If the words lie beyond the memory (IDENT's depths) or the target cannot be
            read (ops); nothing is sent.
        """
        ident = self._training_identity()
        names = {code: name for name, code in LOAD_TARGETS.items()}
        readable = {LOAD_TARGETS[name]: name for name in STORED_MEMORIES.values()}
        if target not in readable:
            raise ValueError(f"target {target} cannot be read; READ takes "
                             + ", ".join(f"{code} ({name})" for code, name in readable.items()))
        depth = ident.depths[target - 1]
        if not (0 <= addr and count >= 0 and addr + count <= depth):
            raise ValueError(f"words {addr}..{addr + count - 1} lie beyond the device's "
                             f"{names[target]} memory of {depth} words")
        n = ident.read_bytes
        most = MAX_PAYLOAD // n
        words: list[int] = []
        while count:
            take = min(count, most)
            payload = (bytes([target]) + addr.to_bytes(2, "little")
                       + take.to_bytes(2, "little"))
            reply = self._transact(Command.READ, payload, Reply.READ,
                                   f"READ of {names[target]} words {addr}..{addr + take - 1}")
            if len(reply) != n * take:
                self._resync = True
                raise HostLinkError(f"READ reply has {len(reply)} bytes, expected {n * take}")
            words += [int.from_bytes(reply[i * n:(i + 1) * n], "little") for i in range(take)]
            addr += take
            count -= take
        return words

    def read_model(self, model: IntModel) -> tuple[IntModel, list[dict]]:
        """The model the device holds now, for ``model``'s configuration, formats and
        exponents: every stored word read back and reassembled.

        Returns
        -------
        (IntModel, list of dict)
            The forward model (the stored weights' top bits) and the stored arrays per
            layer (``W``, ``b``, ``U`` and FFCL's ``V``, as :class:`golden.inttrain.IntTrainer`
            keeps them).
        """
        ident = self._training_identity()
        if hash_of_model(model) != ident.model_hash:
            raise HostLinkError(f"the device holds another configuration than the model "
                                f"(model hash 0x{ident.model_hash:08X}, the model's "
                                f"0x{hash_of_model(model):08X})")
        words = {}
        for name, memory in STORED_MEMORIES.items():
            target = LOAD_TARGETS[memory]
            words[name] = self.read_words(target, 0, ident.depths[target - 1])
        try:
            stored = unpack_stored(words, model, lanes=ident.lanes,
                                   store_bits=ident.stored_bits,
                                   bias_bits=ident.stored_bias_bits,
                                   label_lanes=ident.label_lanes)
        except ValueError as error:
            raise HostLinkError(f"the device's memories do not hold this configuration: "
                                f"{error}") from None
        return forward_model(model, stored, store_bits=ident.stored_bits), stored


def _check_writes(writes: Sequence[tuple[int, int, int]], identity: LinkIdentity) -> None:
    """Refuse, before anything is sent, a write the device would refuse for its target
    or address (error 4 or 9)."""
    names = {code: name for name, code in LOAD_TARGETS.items()}
    for i, (target, addr, _) in enumerate(writes):
        if target not in names:
            raise ValueError(f"write {i}: target {target} is not one of "
                             f"{sorted(names)} ({', '.join(LOAD_TARGETS)})")
        depth = identity.depths[target - 1]
        if not 0 <= addr < depth:
            raise ValueError(f"write {i}: address {addr} is beyond the device's "
                             f"{names[target]} memory of {depth} words (0..{depth - 1})")
