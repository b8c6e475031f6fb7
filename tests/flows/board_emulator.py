# amaranth: UnusedElaboratable=no
"""A board double for `ffcl-hw run`: the host link protocol in Python on the golden model.

:class:`EmulatedBoard` answers frames as docs/host-link.md says a HostLink does, with
``IntModel.run`` in place of the core (the RTL's equality with it is what the rtl and sim
tests show), and parses them byte by byte as the RTL does, idle timeout included: the
fault table (sim/link_faults.py) gets the same answers from it as from the gateware.
:func:`serve_pty` puts it behind a pseudo-terminal, a real serial device path for
pyserial; :func:`serve_socket` behind a ``socket://`` URL. A board that never answers is
``EmulatedBoard(None)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np

from ffcl_hw.device import crc8, encode_frame
from golden.intmodel import IntModel
from golden.inttrain import IntTrainer, TrainRule
from rtl.core import LOAD_TARGETS, load_words
from rtl.host_link import (
    link_identity,
    link_program,
    load_data_bytes,
)
from rtl.program import build_program
from rtl.protocol import (
    LOAD_BEGIN_SIZE,
    LOAD_CHECKSUM,
    READ_SIZE,
    SYNC,
    Command,
    ErrorCode,
    Reply,
)
from rtl.stored_words import STORED_MEMORIES, stored_words


class UnknownWords(ValueError):
    """A load committed words of no model the double knows (``known=``). The gateware
    would answer LOAD_COMMIT and run them; the double cannot, so the test fails with this,
    naming the first word that differs (:func:`serve_pty` and :func:`serve_socket`
    raise it when the test leaves them, instead of letting the host time out)."""


class EmulatedBoard:
    """Bytes in, reply bytes out, as a board with ``model`` built in would answer.

    The frames are parsed byte by byte as :class:`rtl.frame_parser.FrameParser` does
    (sync byte, cmd, tag, length, exactly ``length`` payload bytes, crc), so that every
    fault gets the RTL's answer: a length field one too long takes the next byte as
    payload and waits, a frame that stops mid-way is abandoned after ``timeout_bits`` of
    silence (:meth:`idle`), a byte with a framing error is dropped (:meth:`framing_error`).
    What it cannot model is time: it answers at once, so it never loses a byte that
    arrives while the hardware would still be computing or replying (the protocol has the
    host wait for each reply), and it has no baud rate.

    Parameters
    ----------
    model : IntModel or None
        The built-in model; None makes a silent board that answers nothing.
    lanes, label_lanes : int
        The core's P and G.
    loadable, initialised, shared : bool
        As ``Core(weights="loadable")``, ``HostLink(initialised=...)`` and
        ``Core(shared=True)`` (the cycle count of a core on borrowed multipliers). With
        ``rule``, ``loadable=True, initialised=False`` is an SPRAM training core
        (``TrainingCore(weights="spram")``): it trains once a load of stored words
        commits, and every commit restarts its generators from the seed.
    banks : {1, 2}
        As ``Core(banks=...)``: with two, a load writes the bank not in use, so the model
        in use stays in use until a good commit (and after a failed one).
    timeout_bits : int
        The idle timeout, as ``HostLink(timeout_bits=...)``.
    known : list of IntModel
        Models a load may bring (a commit is recognised by the words it leaves; words of
        none of them raise :class:`UnknownWords`).
    faulty : bool
        Add 1 to the score of label 0 of every second image (a broken board).
    rule : TrainRule, optional
        A training board (``HostLink(TrainingCore(model, rule, lanes=...))``): TRAIN and
        READ answered from :class:`golden.inttrain.IntTrainer`, its stored words packed
        as the core's memories hold them; each record carries the trainer's report for
        the sample (:class:`golden.inttrain.SampleResult`: the label of the training pass,
        the wrong label) and the closed form
        :meth:`rtl.training_core.TrainingCore.training_cycles` as its cycles.
    train_block : int
        Most samples a TRAIN frame may carry.
    """

    def __init__(self, model: IntModel | None, *, lanes: int = 2, label_lanes: int | None = None,
                 loadable: bool = True, initialised: bool = True,
                 known: tuple[IntModel, ...] = (), faulty: bool = False,
                 shared: bool = False, banks: int = 1, timeout_bits: int = 200,
                 rule: TrainRule | None = None, train_block: int = 4) -> None:
        self.faulty = faulty
        self.images = 0
        self.received = 0
        self.timeout_bits = timeout_bits
        self.banked = banks == 2
        # The parser's state: the bytes of the frame so far (from cmd on), or None
        # between frames (waiting for the sync byte).
        self._frame: bytearray | None = None
        if model is None:
            return
        self.identity = dataclasses.replace(
            link_identity(model, lanes=lanes, label_lanes=label_lanes, loadable=loadable,
                          shared=shared, rule=rule, train_block=train_block if rule else 0),
            model_loaded=initialised)
        self.program = build_program(model, lanes=lanes, label_lanes=label_lanes, shared=shared)
        self.rule = rule
        self.trainer = None if rule is None else IntTrainer(model, rule)
        self.trained = 0
        # What a load writes: a training board's are stored words (IDENT's stored_bits).
        shape = dict(lanes=lanes, label_lanes=label_lanes, shared=shared,
                     store_bits=None if rule is None else rule.store_bits)
        self.n = load_data_bytes(link_program(model, **shape))
        # The model memories as (target, address) -> word, one dict per bank; a commit
        # puts in use the known model whose words the bank holds.
        self.known = [(m, self._words(m, shape)) for m in (model, *known)]
        if rule is not None:
            from rtl.training_core import TrainingCore

            self.train_cycles = TrainingCore(model, rule, lanes=lanes).training_cycles()
            # The forward model the trainer keeps current is what IMAGE classifies with.
            model = self.trainer.model
        built_in = dict(self.known[0][1]) if initialised else {}
        self.memory = [dict(built_in) for _ in range(banks)]
        self.bank = 0
        self.model = model if initialised else None
        self.weights_checksum = self.identity.weights_checksum
        self.loading = False
        self.written, self.announced = b"", 0

    @staticmethod
    def _words(model: IntModel, shape: dict) -> dict[tuple[int, int], int]:
        return {(target, addr): word
                for target, addr, word in load_words(link_program(model, **shape))}

    # -- the line ------------------------------------------------------------------
    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the host, back to back; returns the replies now due."""
        self.received += len(data)
        if not hasattr(self, "identity"):
            return b""
        return b"".join(self._byte(byte) for byte in data)

    def idle(self, bits: float) -> None:
        """The line was quiet for ``bits`` bit times: a frame under way is abandoned if
        that is the idle timeout or more, without a reply."""
        if bits >= self.timeout_bits:
            self._frame = None

    def framing_error(self) -> None:
        """A byte arrived with its stop bit low: the UART drops it, the parser never
        sees it (the frame goes on with the next byte)."""

    def _byte(self, byte: int) -> bytes:
        if self._frame is None:
            # Between frames, anything but the sync byte is noise.
            if byte == SYNC:
                self._frame = bytearray()
            return b""
        frame = self._frame
        frame.append(byte)
        if len(frame) < 4 or len(frame) < 5 + int.from_bytes(frame[2:4], "little"):
            return b""
        # The crc byte: exactly `length` payload bytes after the header, whatever follows.
        self._frame = None
        self.tag = frame[1]
        if crc8(frame[:-1]) != frame[-1]:
            return self._error(ErrorCode.CRC)
        return self._answer(frame[0], bytes(frame[4:-1]))

    def _reply(self, code: int, payload: bytes = b"") -> bytes:
        # Every reply echoes the tag of the command it answers.
        return encode_frame(code, payload, tag=self.tag)

    def _error(self, code: int) -> bytes:
        return self._reply(Reply.ERROR, bytes([code]))

    def _answer(self, cmd: int, payload: bytes) -> bytes:
        ident = self.identity
        if cmd == Command.IDENT:
            if payload:
                return self._error(ErrorCode.LENGTH)
            now = dataclasses.replace(ident, model_loaded=self.model is not None,
                                      weights_checksum=self.weights_checksum,
                                      trained=self.trained & 0xFFFFFFFF)
            return self._reply(Reply.IDENT, now.to_bytes())
        if cmd == Command.IMAGE:
            if len(payload) != ident.input_size:
                return self._error(ErrorCode.LENGTH)
            if self.model is None:
                return self._error(ErrorCode.NO_MODEL)
            result = self.model.run(np.frombuffer(payload, dtype=np.uint8)[None].astype(int))
            self.images += 1
            if self.faulty and self.images % 2 == 0:
                result.scores[0, 0] += 1
            scores = b"".join(int(s).to_bytes(ident.score_bytes, "little")
                              for s in result.scores[0])
            return self._reply(Reply.RESULT, bytes([int(result.labels[0])]) + scores
                                + self.program.cycles().to_bytes(4, "little"))
        if cmd in (Command.TRAIN, Command.READ):
            if self.trainer is None:
                return self._error(ErrorCode.TRAIN)
            return self._train(payload) if cmd == Command.TRAIN else self._read(payload)
        if cmd not in (Command.LOAD, Command.LOAD_BEGIN, Command.LOAD_COMMIT):
            return self._error(ErrorCode.COMMAND)
        if not ident.loadable:
            return self._error(ErrorCode.LOAD)
        if cmd == Command.LOAD_BEGIN:
            if len(payload) != LOAD_BEGIN_SIZE:
                return self._error(ErrorCode.LENGTH)
            if int.from_bytes(payload[:4], "little") != ident.model_hash:
                return self._error(ErrorCode.MODEL)
            self.loading, self.written = True, b""
            if not self.banked:
                # One bank: from here until a good commit it holds no complete model.
                self.model = None
            self.announced = int.from_bytes(payload[4:], "little")
            return self._reply(Reply.LOAD_BEGIN)
        if cmd == Command.LOAD:
            if len(payload) != 3 + self.n:
                return self._error(ErrorCode.LENGTH)
            if not self.loading:
                return self._error(ErrorCode.SEQUENCE)
            if payload[0] not in LOAD_TARGETS.values():
                return self._error(ErrorCode.LOAD)
            if int.from_bytes(payload[1:3], "little") >= ident.depths[payload[0] - 1]:
                return self._error(ErrorCode.ADDRESS)
            self.written += payload
            # Two banks: the write goes to the bank not in use.
            bank = 1 - self.bank if self.banked else 0
            addr = int.from_bytes(payload[1:3], "little")
            self.memory[bank][payload[0], addr] = int.from_bytes(payload[3:], "little")
            return self._reply(Reply.LOAD)
        if payload:
            return self._error(ErrorCode.LENGTH)
        if not self.loading:
            return self._error(ErrorCode.SEQUENCE)
        self.loading = False
        # The checksum of the writes made, as the device keeps it, from the reference.
        if LOAD_CHECKSUM.compute(self.written) != self.announced:
            return self._error(ErrorCode.CHECKSUM)
        if self.banked:
            self.bank = 1 - self.bank
        held = self.memory[self.bank]
        models = [m for m, words in self.known if words == held]
        if not models:
            # The gateware commits any words whose checksum matches; the double can only
            # run a model it knows, so the test fails here, naming the word.
            raise UnknownWords(self._unknown_word(held))
        self.model = models[0]
        if self.trainer is not None:
            # The stored words are the model's as a trainer starts, and the commit
            # restarts the generators from the seed (TrainingCore's restart): the board
            # trains as IntTrainer(model, rule) fresh. ``trained`` counts on.
            self.trainer = IntTrainer(self.model, self.rule)
            self.model = self.trainer.model
        self.weights_checksum = self.announced
        return self._reply(Reply.LOAD_COMMIT)

    def _unknown_word(self, held: dict[tuple[int, int], int]) -> str:
        """What :class:`UnknownWords` says: the first word held that differs from the
        known model nearest the words held (the fewest words differ)."""
        names = {code: name for name, code in LOAD_TARGETS.items()}

        def differing(words: dict) -> list[tuple[int, int]]:
            return sorted(k for k in words.keys() | held.keys() if words.get(k) != held.get(k))

        nearest = min((words for _, words in self.known), key=lambda w: len(differing(w)))
        wrong = differing(nearest)
        target, addr = wrong[0]
        got, want = held.get((target, addr)), nearest.get((target, addr))
        return (f"the double knows no model with the words committed: {names[target]} word "
                f"{addr} "
                + ("was never written" if got is None else f"is 0x{got:X}")
                + ", " + ("none" if want is None else f"0x{want:X}")
                + f" in the nearest known model ({len(wrong)} word"
                + ("s differ" if len(wrong) != 1 else " differs")
                + "); pass the model the load brings in known=")

    # -- training (the checks in the gateware's order) -------------------------------
    def _train(self, payload: bytes) -> bytes:
        ident, D = self.identity, self.identity.input_size
        n, rest = divmod(len(payload) - 1, D + 1)
        if len(payload) < 1 or rest or not 1 <= n <= ident.train_block:
            return self._error(ErrorCode.LENGTH)
        if self.model is None or self.loading:
            return self._error(ErrorCode.NO_MODEL)
        lam = payload[0]
        if not ident.lr_first <= lam <= ident.lr_last:
            return self._error(ErrorCode.LAMBDA)
        samples = [payload[1 + i * (D + 1):1 + (i + 1) * (D + 1)] for i in range(n)]
        if any(sample[0] >= ident.labels for sample in samples):
            return self._error(ErrorCode.LABEL)
        records = b""
        trainer = self.trainer
        for sample in samples:
            x = np.frombuffer(sample[1:], dtype=np.uint8).astype(np.int64)
            y = sample[0]
            result = trainer.train_sample(x, y, lam)
            self.trained += 1
            records += (bytes([result.label, result.wrong])
                        + self.train_cycles.to_bytes(4, "little"))
        return self._reply(Reply.TRAIN, records)

    def stored_words(self) -> dict[str, list[int]]:
        """The words of the stored W (with FFCL's V), b and U memories now."""
        ident = self.identity
        return stored_words(self.trainer.stored, lanes=ident.lanes,
                            store_bits=ident.stored_bits, bias_bits=ident.stored_bias_bits,
                            label_lanes=ident.label_lanes)

    def _read(self, payload: bytes) -> bytes:
        ident = self.identity
        if len(payload) != READ_SIZE:
            return self._error(ErrorCode.LENGTH)
        if self.model is None or self.loading:
            return self._error(ErrorCode.NO_MODEL)
        target = payload[0]
        addr, count = (int.from_bytes(payload[i:i + 2], "little") for i in (1, 3))
        names = {LOAD_TARGETS[memory]: name for name, memory in STORED_MEMORIES.items()}
        if (target not in names or count == 0
                or addr + count > ident.depths[target - 1]):
            return self._error(ErrorCode.ADDRESS)
        if count * ident.read_bytes > 0xFFFF:
            return self._error(ErrorCode.LENGTH)
        words = self.stored_words()[names[target]][addr:addr + count]
        return self._reply(Reply.READ, b"".join(w.to_bytes(ident.read_bytes, "little")
                                                for w in words))


def _answer(board: EmulatedBoard, data: bytes, failures: list[Exception]) -> bytes | None:
    """``board.receive(data)``, or None once the double has failed (kept in
    ``failures``): the serving thread stops answering, and the context manager raises
    the failure when the test leaves it."""
    try:
        return board.receive(data)
    except Exception as error:      # re-raised in the test's thread
        failures.append(error)
        return None


def _raise_failure(failures: list[Exception]) -> None:
    if failures:
        raise failures[0]


@contextlib.contextmanager
def serve_pty(board: EmulatedBoard, *, baud: int = 115200) -> Iterator[str]:
    """Yield the path of a pseudo-terminal whose far end is ``board`` (the time between
    two reads counts as silence on a line of ``baud``, for the idle timeout)."""
    master, slave = os.openpty()
    stop = threading.Event()

    def serve() -> None:
        last = time.monotonic()
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    return
                now = time.monotonic()
                board.idle((now - last) * baud)
                last = now
                reply = _answer(board, data, failures)
                if reply is None:
                    return
                if reply:
                    os.write(master, reply)

    failures: list[Exception] = []
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave)
    finally:
        stop.set()
        thread.join()
        os.close(master)
        os.close(slave)
        _raise_failure(failures)


@contextlib.contextmanager
def serve_socket(board: EmulatedBoard, *, baud: int = 115200) -> Iterator[str]:
    """Yield a pyserial ``socket://`` URL whose far end is ``board`` (silence between
    reads counted as on a line of ``baud``)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.05)
                last = time.monotonic()
                while not stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    now = time.monotonic()
                    board.idle((now - last) * baud)
                    last = now
                    reply = _answer(board, data, failures)
                    if reply is None:
                        return
                    if reply:
                        conn.sendall(reply)

    failures: list[Exception] = []
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"socket://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        server.close()
        _raise_failure(failures)
