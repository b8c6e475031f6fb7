"""The host link's sending side: one reply frame, byte by byte, into the UART transmitter.

A reply is ``0xA5, code, tag, length (LE16), payload, crc`` (docs/host-link.md), its tag
the command's; its bytes are picked from constants (the identity), the load transaction's
registers and the core's result record, or (TRAIN and READ replies, whose length varies)
taken from a byte stream, and its crc is computed as they go out.
"""

from __future__ import annotations

import types

from amaranth import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.crc_tree import crc_tree
from rtl.protocol import FRAME_CRC, SYNC, Reply
from rtl.select import equals, is_zero, select

__all__ = ["HEADER_SIZE", "REQUEST_LAYOUT", "STREAMED", "ReplyFrame", "ReplySerialiser"]


def _reply_frame_body(namespace) -> None:
    namespace["__module__"] = __name__
    namespace["__doc__"] = """Which reply frame to send: a member per
    :class:`rtl.protocol.Reply`, of the same name, numbered from 1 in a register just wide
    enough; the wire code is :attr:`code`."""
    # No member is 0: a test for 0 lowers to a lint-unclean multi-bit NOT (rtl.select).
    for value, reply in enumerate(Reply, start=1):
        namespace[reply.name] = value
    namespace["code"] = property(lambda self: Reply[self.name],
                                 doc="The frame's ``cmd`` byte on the wire.")


#: Built from :class:`rtl.protocol.Reply` (one list of replies): a reply added there is a
#: frame here.
ReplyFrame = types.new_class("ReplyFrame", (enum.Enum,),
                             {"shape": len(Reply).bit_length()}, _reply_frame_body)


#: A reply to send: which frame, and for an ERROR its :class:`rtl.protocol.ErrorCode`.
REQUEST_LAYOUT = data.StructLayout({"reply": ReplyFrame, "error": 8})
#: The replies whose payload comes from the ``body`` stream (``body_length`` bytes).
STREAMED = (ReplyFrame.TRAIN, ReplyFrame.READ)
#: Bytes of a frame before its payload: sync, code, tag, length (2).
HEADER_SIZE = 5


class ReplySerialiser(wiring.Component):
    """One reply frame at a time out through a UART transmitter's byte stream.

    A request is taken once the previous reply is out. An IDENT reply reports
    ``identity`` with the model flag and checksum of the moment; a RESULT reply the record
    on ``result``, which is taken (``result.ready``) as its last byte goes out, so the
    core holds it until then. A TRAIN or READ reply's payload is ``body_length`` bytes
    taken from ``body`` in order; a serialiser whose identity does not train has no such
    replies (a request for one sends a single zero byte: the host link never makes it).

    Parameters
    ----------
    identity : rtl.host_link.LinkIdentity
        What IDENT reports, but for its model-loaded flag and weights checksum (from
        ``model_ok`` and ``checksum``); whether it ``trains`` decides whether the TRAIN and
        READ replies exist (:attr:`streamed`).
    result_layout : data.StructLayout
        The core's result record (``label``, ``scores``, ``cycles``).
    score_port : bool, optional
        Read a RESULT's scores through ``score`` (default False, for a part as small as
        the UP5K): a core's score read port (``Core(score_port=True)``, the argmax's
        K-way select) gives the score a byte is of, and the serialiser picks the byte
        within it, instead of a select of every score byte (60:1 on the digits build)
        over ``result.scores``, which is then not read. The same bytes on the wire.
    shared_header : bool, optional
        One header for every frame (default False, for a part as small as the UP5K):
        bytes 0-4 (sync, code, tag, length) are picked from one five-byte select, the
        code and the length chosen by the reply, instead of within each frame's own
        select (five frames, five copies of the tag and of the sync byte's constant).
        The same bytes on the wire.
    short_index : bool, optional
        The ``body`` stream's source marks its last byte (``body_last``; default False,
        for a part as small as the UP5K): a TRAIN or READ reply's payload is sent at one
        place of the frame, the send index held there until the body's last byte is
        taken, instead of at indices 5 to 4 + ``body_length``. The send index and the
        crc byte's index then count the frames' own bytes only (6 bits on the digits
        build, not 17), with no adder of the body length. Only a training identity has
        a body. The same bytes on the wire.

    Members
    -------
    request : In(stream.Signature(REQUEST_LAYOUT))
        Starts a reply; ready while no reply is going out (from the cycle after
        :attr:`done`).
    tag : In(8)
        The tag of the command being answered; the reply echoes it (held by the parser
        until the reply is out).
    model_ok : In(1)
        IDENT's "model loaded" flag.
    checksum : In(32)
        IDENT's weights checksum.
    trained : In(32)
        IDENT's count of samples trained.
    body : In(stream.Signature(8))
        The payload bytes of a TRAIN or READ reply, in order.
    body_length : In(16)
        Their count, from the cycle after the request until the reply is out.
    body_last : In(1)
        Only with ``short_index``: the byte on offer on ``body`` is the reply's last.
    result : In(stream.Signature(result_layout))
        The record a RESULT reply reports; taken when that reply's crc byte is.
    score : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(score_bits)))
        Only with ``score_port``: the record's scores, ``score.data`` that of label
        ``score.addr`` of the cycle before (a synchronous read; ``score.en`` stays 1).
        The address follows the byte being sent; a score is used two cycles after its
        address is given, at the earliest.
    tx : Out(stream.Signature(8))
        Bytes to the UART transmitter; a byte stays on offer until ``tx.ready``.
    done : Out(1)
        Pulses as the reply's last (crc) byte is taken.
    """

    def __init__(self, *, identity, result_layout: data.StructLayout,
                 score_port: bool = False, shared_header: bool = False,
                 short_index: bool = False) -> None:
        if not isinstance(result_layout, data.StructLayout):
            raise TypeError(f"Result layout must be a data.StructLayout, not {result_layout!r}")
        if not isinstance(score_port, bool):
            raise TypeError(f"Score port must be True or False, not {score_port!r}")
        if not isinstance(shared_header, bool):
            raise TypeError(f"Shared header must be True or False, not {shared_header!r}")
        if not isinstance(short_index, bool):
            raise TypeError(f"Short index must be True or False, not {short_index!r}")
        self.identity = identity
        self.result_layout = result_layout
        self.score_port = score_port
        self.shared_header = shared_header
        self.short_index = short_index
        members = {
            "request": In(stream.Signature(REQUEST_LAYOUT)),
            "tag": In(8),
            "model_ok": In(1),
            "checksum": In(32),
            "trained": In(32),
            "body": In(stream.Signature(8)),
            "body_length": In(16),
            "result": In(stream.Signature(result_layout)),
            "tx": Out(stream.Signature(8)),
            "done": Out(1),
        }
        if short_index:
            members["body_last"] = In(1)
        if score_port:
            members["score"] = In(memory.ReadPort.Signature(
                addr_width=(identity.labels - 1).bit_length(),
                shape=unsigned(identity.score_bits)))
        super().__init__(members)

    def _frames(self, reply, error_code, score_byte=None) -> list[tuple[tuple, list, Value]]:
        """The reply frames' bytes but the crc, as 8-bit values: (the replies that send
        them, the bytes, the crc byte's index). With ``score_port`` every score byte of a
        RESULT is ``score_byte`` (:meth:`_score_bytes`)."""
        def frame(code, payload: list) -> list:
            n = len(payload)
            return [Const(SYNC, 8), code, self.tag, Const(n & 0xFF, 8),
                    Const(n >> 8, 8), *payload]

        ident, result = self.identity, self.result.payload
        constant = ident.to_bytes()
        scores = []
        for k in range(ident.labels):
            if self.score_port:
                scores += [score_byte] * ident.score_bytes
                continue
            score = result.scores[k]
            scores += [score[8 * j:min(8 * j + 8, ident.score_bits)]
                       for j in range(ident.score_bytes)]
        words = {"cycles": result.cycles, "checksum": self.checksum, "trained": self.trained}
        le = {name: [word[8 * j:8 * j + 8] for j in range(4)] for name, word in words.items()}
        frames = []
        for kind, payload in (
                (ReplyFrame.IDENT, [
                    *(Const(b, 8) for b in constant[:14]), Cat(self.model_ok, Const(0, 7)),
                    *le["checksum"], *(Const(b, 8) for b in constant[19:-4]),
                    *le["trained"]]),
                (ReplyFrame.RESULT, [result.label, *scores, *le["cycles"]])):
            items = frame(Const(kind.code, 8), payload)
            frames.append(((kind,), items, Const(len(items))))
        # The three load acks and ERROR share one frame, their code byte chosen by the
        # reply and ERROR's code after the header: 0xA5, code, tag, (1 | 0), 0, error. One
        # picked register for four frames (three fewer, and their multiplexers) gives the
        # iCEBreaker inference build the logic cells the UP5K lacked.
        short = (ReplyFrame.LOAD, ReplyFrame.LOAD_BEGIN, ReplyFrame.LOAD_COMMIT,
                 ReplyFrame.ERROR)
        is_error = reply == ReplyFrame.ERROR
        code = Const(ReplyFrame.ERROR.code, 8)
        for kind in short[:-1]:
            code = Mux(reply == kind, kind.code, code)
        frames.append((short, [Const(SYNC, 8), code, self.tag, Cat(is_error, Const(0, 7)),
                               Const(0, 8), error_code], Mux(is_error, 6, 5)))
        for kind in self.streamed:
            # The header only: the payload follows from the body stream (with
            # ``short_index``, all of it at index 5, the crc at 6).
            frames.append(((kind,), [Const(SYNC, 8), Const(kind.code, 8), self.tag,
                                     self.body_length[:8], self.body_length[8:]],
                           Const(HEADER_SIZE + 1) if self.short_index
                           else HEADER_SIZE + self.body_length))
        return frames

    @property
    def streamed(self) -> tuple:
        """The streamed replies this serialiser sends: :data:`STREAMED` if the identity
        trains, else none (an inference link answers TRAIN and READ with an ERROR)."""
        return STREAMED if self.identity.trains else ()

    def _score_bytes(self, m: Module, send_index: Signal, score_byte: Signal) -> None:
        """With ``score_port``: drive ``score_byte``, the byte of a RESULT at
        ``send_index`` if it is a score's, and the port's address, the score it is of.

        Byte p of the scores (frame byte 6 + p, after the header and the label) is byte
        p mod S of score p div S, S = ``score_bytes``. Both come from tables over the
        index's low bits (a RESULT has fewer than 2^b bytes), nothing new to hold: the
        index is set as the previous byte is fetched, the port's data follows a cycle
        later, and the byte is picked the cycle after that at the earliest (the fetched
        byte takes a cycle in ``out_byte``, then ``picking`` one), so the picked byte is
        the score's read for this index, never the last one's."""
        ident = self.identity
        S, first = ident.score_bytes, HEADER_SIZE + 1
        positions = range(ident.labels * S)
        bits = (first + len(positions) - 1).bit_length()
        low = send_index[:bits]
        # Other bytes of the frame read label 0's byte 0: not picked.
        label = [0] * first + [p // S for p in positions]
        offset = [0] * first + [p % S for p in positions]
        m.d.comb += self.score.addr.eq(select([Const(k, len(self.score.addr)) for k in label],
                                              low))
        data = self.score.data
        # The last byte of a score may be short: zero above its top bit.
        m.d.comb += score_byte.eq(select(
            [data[8 * j:min(8 * j + 8, ident.score_bits)] for j in range(S)],
            select([Const(j, range(S)) for j in offset], low)))

    def _header(self, m: Module, reply, frames: list, send_index: Signal) -> tuple:
        """With ``shared_header``: a register that takes the header byte at
        ``send_index`` (the reply's code and length), as the frames' picked registers
        take theirs, and one that says whether that is a header byte; the frames' own
        header bytes become zero (so their selects shrink). Returns both registers."""
        # Every reply is some frame's: the starting values are never sent.
        code, length = Const(ReplyFrame.ERROR.code, 8), Const(0, 16)
        for kinds, items, _ in frames:
            for kind in kinds:
                code = Mux(reply == kind, kind.code, code)
                # The frame's length field, as its own header has it.
                length = Mux(reply == kind, Cat(items[3], items[4]), length)
        header = [Const(SYNC, 8), code, self.tag, length[:8], length[8:]]
        byte, in_header = Signal(8, name="picked_header"), Signal()
        m.d.sync += [byte.eq(select(header, send_index[:3])),
                     in_header.eq(send_index < HEADER_SIZE)]
        for i, (kinds, items, size) in enumerate(frames):
            frames[i] = (kinds, [Const(0, 8)] * HEADER_SIZE + list(items[HEADER_SIZE:]), size)
        return byte, in_header

    def elaborate(self, platform) -> Module:
        m = Module()
        reply = Signal(ReplyFrame, init=ReplyFrame.ERROR)
        error_code = Signal(8)
        score_byte = Signal(8) if self.score_port else None
        frames = self._frames(reply, error_code, score_byte)
        # Up to one past the crc byte's index, the frame's length (a streamed payload may
        # have 65535 bytes). Without streamed replies the index is 6 bits, not 17: the
        # wider counter, its compare and the body-length adder took 86 LUT4 and 27 carries
        # (hierarchical Yosys, the digits link), which the iCEBreaker inference build (5,279
        # of 5,280 logic cells before) has not.
        # With ``short_index`` a streamed reply's crc is at index 6, within the longest
        # frame's bytes: the 17-bit index, its compare and adder (some 70 LUT4, 22
        # flip-flops on the iCEBreaker training build) are not needed.
        long_body = bool(self.streamed) and not self.short_index
        longest = max(len(items) for _, items, _ in frames) + (0x10000 if long_body else 0)
        send_index = Signal(range(longest + 2))
        send_crc = Signal(8)
        if self.score_port:
            self._score_bytes(m, send_index, score_byte)
        if self.shared_header:
            header_byte, in_header = self._header(m, reply, frames, send_index)
        chosen = Const(0, 8)
        last = Const(0, 8)
        for kinds, items, size in frames:
            # Each frame's byte at send_index is picked into a register, and the reply's
            # own is chosen a cycle later: the byte select and the choice of frame in one
            # cycle were the iCE40 build's slowest path.
            picked = Signal(8, name=f"picked_{kinds[0].name.lower()}")
            m.d.sync += picked.eq(select(items, send_index))
            sent = Cat(*(reply == kind for kind in kinds)).any()
            chosen = Mux(sent, picked, chosen)
            # The crc goes out right after the frame's last byte.
            last = Mux(sent, size, last)
        if self.shared_header:
            # Bytes 0-4 from the one header register, whichever the frame.
            chosen = Mux(in_header, header_byte, chosen)
        # The crc's index is registered: reply and body_length are stable from the cycle
        # after the request is taken, and the first byte is fetched a cycle after that
        # (picking). The adder and the choice of frame before the compare, then the body
        # handshake into the host link's wide word register, were the ULX3S-85F FFCL
        # training build's slowest path (13.3 ns).
        last_index = Signal.like(send_index)
        m.d.sync += last_index.eq(last)
        is_last = Signal()
        m.d.comb += is_last.eq(send_index == last_index)
        # A streamed reply's payload bytes come from ``body``, not from the picked ones.
        from_body = Signal()
        if self.streamed and self.short_index:
            # The payload's one place: the index stays there until the body's last byte.
            m.d.comb += from_body.eq(((reply == ReplyFrame.TRAIN) | (reply == ReplyFrame.READ))
                                     & equals(send_index, HEADER_SIZE))
        elif self.streamed:
            m.d.comb += from_body.eq(((reply == ReplyFrame.TRAIN) | (reply == ReplyFrame.READ))
                                     & (send_index >= HEADER_SIZE) & ~is_last)
        # The reply goes out through a one-byte register: the byte for send_index is
        # fetched in one cycle and handed to the UART from the register, and the crc
        # absorbs the registered byte when the UART takes it. The frame multiplexer and the
        # crc are thus in separate cycles (together they were the iCE40 build's slowest
        # path); the UART needs many cycles per byte anyway.
        out_byte = Signal(8)
        out_full = Signal()               # out_byte holds the next byte to send
        out_first = Signal()              # ... which is the sync byte (not in the crc)
        # ... which is the crc byte; once it is taken (out_full low) the serialiser idles.
        out_last = Signal(init=1)
        picking = Signal()                # the picked bytes are for send_index now

        with m.If(out_last & ~out_full):
            # Idle: the last reply is out; a request starts the next. (Taking a request
            # only here, rather than before everything else, saved 5 LUT4s.)
            m.d.comb += self.request.ready.eq(1)
            with m.If(self.request.valid):
                m.d.sync += [reply.eq(self.request.payload.reply),
                             error_code.eq(self.request.payload.error), send_index.eq(0),
                             send_crc.eq(0), out_full.eq(0), out_last.eq(0), picking.eq(0)]
        with m.Elif(~out_full & ~picking):
            # The picked registers take send_index's bytes.
            m.d.sync += picking.eq(1)
        with m.Elif(~out_full & from_body):
            # A payload byte of a TRAIN or READ reply, once its source offers it.
            m.d.comb += self.body.ready.eq(1)
            with m.If(self.body.valid):
                next_index = send_index + 1
                if self.short_index:
                    next_index = Mux(self.body_last, next_index, send_index)
                m.d.sync += [out_byte.eq(self.body.payload), out_full.eq(1), out_first.eq(0),
                             out_last.eq(0), send_index.eq(next_index), picking.eq(0)]
        with m.Elif(~out_full):
            # Fetch the next byte; the crc byte is the crc of all before it.
            m.d.sync += [out_byte.eq(Mux(is_last, send_crc, chosen)), out_full.eq(1),
                         out_first.eq(is_zero(send_index)), out_last.eq(is_last),
                         send_index.eq(send_index + 1), picking.eq(0)]
        with m.Else():
            m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(out_byte)]
            with m.If(self.tx.ready):
                m.d.sync += out_full.eq(0)
                # The crc covers everything after the sync byte and before itself.
                with m.If(~out_first & ~out_last):
                    m.d.sync += send_crc.eq(crc_tree(FRAME_CRC, send_crc, out_byte))
                with m.If(out_last):
                    m.d.comb += self.done.eq(1)
                    # The record has been sent: the core may drop it now.
                    m.d.comb += self.result.ready.eq(reply == ReplyFrame.RESULT)
        return m
