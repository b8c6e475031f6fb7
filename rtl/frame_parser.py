"""The host link's receiving side: bytes from the UART receiver into frames.

A frame is ``0xA5, cmd, tag, length (LE16), payload, crc`` (docs/host-link.md); the parser
checks the crc, passes the payload bytes on as they arrive, and gives up on a frame whose
next byte does not start within the idle timeout.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.crc_tree import crc_tree
from rtl.protocol import FRAME_CRC, SYNC
from rtl.select import is_zero

__all__ = ["FRAME_LAYOUT", "PAYLOAD_LAYOUT", "FrameParser"]

#: What the parser says of a frame: its command, its tag (which the reply echoes), its
#: length field, and whether its crc byte matched.
FRAME_LAYOUT = data.StructLayout({"cmd": 8, "tag": 8, "length": 16, "crc_ok": 1})
#: One payload byte and its index in the payload.
PAYLOAD_LAYOUT = data.StructLayout({"data": 8, "index": 16})


class _State(enum.Enum, shape=4):
    # No state is 0: a test for 0 lowers to a lint-unclean multi-bit NOT (rtl.select).
    SYNC = 1          # discard bytes until 0xA5
    CMD = 2
    TAG = 3           # the host's tag for this command, echoed by its reply
    LEN_LO = 4
    LEN_HI = 5
    PAYLOAD = 6
    CRC = 7           # the frame's last byte: compare it with the crc
    HELD = 8          # a complete frame, until the link has answered it


class FrameParser(wiring.Component):
    """Frames from a byte stream: sync byte, cmd, tag, length, payload, crc, idle timeout.

    Bytes other than 0xA5 between frames are discarded. From a frame's crc byte until
    ``frame.ready`` the parser takes no bytes (they wait in the UART receiver, where a
    later one overwrites an earlier one). Once a frame has started, silence of
    ``timeout_cycles`` between two bytes abandons it: the parser waits for 0xA5 again and
    says nothing of the fragment.

    Parameters
    ----------
    timeout_cycles : int
        Clock cycles of silence (``rx_busy`` low and no byte waiting) after which a frame
        is abandoned; at least 2.
    crc_in_payload : bool
        The small part's parser (a lean :class:`rtl.host_link.HostLink`'s): the crc byte
        is the byte taken in the payload state when the payload's index equals the
        length (both registers), instead of a byte of a crc state entered when the index
        equals the length minus one, a register of its own made by a subtractor at the
        length's second byte (16 flip-flops and a 16-bit carry chain on the iCE40). The
        same bytes taken, passed on and compared; the comparison now gates
        ``payload.valid``. Default False.

    Members
    -------
    rx : In(stream.Signature(8))
        Bytes from the UART receiver.
    rx_busy : In(1)
        The receiver is in the middle of a byte (silence is counted only without it).
    header : Out(1)
        Pulses when the length's second byte is taken: payload bytes (if any) follow.
    payload : Out(stream.Signature(PAYLOAD_LAYOUT, always_ready=True))
        Each payload byte with its index, as it is taken, whatever the command; whether
        it is kept is the consumer's decision.
    frame : Out(stream.Signature(FRAME_LAYOUT))
        A complete frame, valid from the cycle after its crc byte until ``ready`` (the
        link has answered it), when the parser goes back to waiting for 0xA5.
        ``payload.cmd``, ``payload.tag`` and ``payload.length`` are registers that hold
        from their bytes on, ahead of ``valid``: the link compares them a cycle before it
        decides, and the reply echoes the tag.
    """

    def __init__(self, *, timeout_cycles: int, crc_in_payload: bool = False) -> None:
        if (not isinstance(timeout_cycles, int) or isinstance(timeout_cycles, bool)
                or timeout_cycles < 2):
            raise ValueError(f"Timeout must be an integer of at least 2 cycles, not "
                             f"{timeout_cycles!r}")
        if not isinstance(crc_in_payload, bool):
            raise TypeError(f"Crc in payload must be True or False, not {crc_in_payload!r}")
        self.timeout_cycles = timeout_cycles
        self.crc_in_payload = crc_in_payload
        super().__init__({
            "rx": In(stream.Signature(8)),
            "rx_busy": In(1),
            "header": Out(1),
            "payload": Out(stream.Signature(PAYLOAD_LAYOUT, always_ready=True)),
            "frame": Out(stream.Signature(FRAME_LAYOUT)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        state = Signal(_State, init=_State.SYNC)
        byte = self.rx.payload
        got = Signal()                     # a byte is taken from the receiver this cycle
        m.d.comb += got.eq(self.rx.valid & self.rx.ready)
        cmd, tag, length = (self.frame.payload.cmd, self.frame.payload.tag,
                            self.frame.payload.length)
        count = self.payload.payload.index
        # length - 1, computed once per frame: the payload's end is then an equality test,
        # not an increment and a compare in one cycle (an iCE40 critical path).
        if not self.crc_in_payload:
            last_count = Signal(16)
        crc = Signal(8)
        crc_next = crc_tree(FRAME_CRC, crc, byte)
        m.d.comb += [self.payload.payload.data.eq(byte),
                     self.frame.valid.eq(state == _State.HELD)]

        # -- idle timeout: a frame that stops mid-way must not swallow the next one ------
        mid_frame = Signal()
        quiet = Signal(range(self.timeout_cycles))
        timed_out = Signal()
        # Only silence counts: the time from the middle of a byte's stop bit to the next
        # start edge, so that the rule does not depend on the byte time.
        silent = mid_frame & ~self.rx_busy & ~self.rx.valid
        with m.If(silent):
            m.d.sync += quiet.eq(quiet + 1)
        with m.Else():
            m.d.sync += quiet.eq(0)
        m.d.comb += timed_out.eq(silent & (quiet == self.timeout_cycles - 1))

        with m.Switch(state):
            with m.Case(_State.SYNC):
                m.d.comb += self.rx.ready.eq(1)
                # Anything but the sync byte between frames is noise.
                with m.If(got & (byte == SYNC)):
                    m.d.sync += [crc.eq(0), state.eq(_State.CMD)]

            with m.Case(_State.CMD):
                m.d.comb += [self.rx.ready.eq(1), mid_frame.eq(1)]
                with m.If(got):
                    m.d.sync += [cmd.eq(byte), crc.eq(crc_next), state.eq(_State.TAG)]

            with m.Case(_State.TAG):
                m.d.comb += [self.rx.ready.eq(1), mid_frame.eq(1)]
                with m.If(got):
                    m.d.sync += [tag.eq(byte), crc.eq(crc_next), state.eq(_State.LEN_LO)]

            with m.Case(_State.LEN_LO):
                m.d.comb += [self.rx.ready.eq(1), mid_frame.eq(1)]
                with m.If(got):
                    m.d.sync += [length[:8].eq(byte), crc.eq(crc_next),
                                 state.eq(_State.LEN_HI)]

            with m.Case(_State.LEN_HI):
                m.d.comb += [self.rx.ready.eq(1), mid_frame.eq(1)]
                with m.If(got):
                    m.d.comb += self.header.eq(1)
                    if self.crc_in_payload:
                        # The payload state takes the crc byte too (an empty payload's
                        # first byte).
                        m.d.sync += [length[8:].eq(byte), crc.eq(crc_next), count.eq(0),
                                     state.eq(_State.PAYLOAD)]
                    else:
                        m.d.sync += [length[8:].eq(byte), crc.eq(crc_next), count.eq(0),
                                     last_count.eq(Cat(length[:8], byte) - 1)]
                        # An empty payload goes straight to the crc byte.
                        m.d.sync += state.eq(Mux(is_zero(Cat(length[:8], byte)),
                                                 _State.CRC, _State.PAYLOAD))

            with m.Case(_State.PAYLOAD):
                m.d.comb += [self.rx.ready.eq(1), mid_frame.eq(1)]
                if self.crc_in_payload:
                    with m.If(got & (count == length)):
                        # ``length`` bytes passed on: this is the crc byte (as in CRC).
                        m.d.sync += [self.frame.payload.crc_ok.eq(byte == crc),
                                     state.eq(_State.HELD)]
                    with m.Elif(got):
                        m.d.comb += self.payload.valid.eq(1)
                        m.d.sync += [count.eq(count + 1), crc.eq(crc_next)]
                else:
                    with m.If(got):
                        # Every byte is passed on; a wrong length is refused later, after
                        # the crc, so that the whole frame is consumed first.
                        m.d.comb += self.payload.valid.eq(1)
                        m.d.sync += [count.eq(count + 1), crc.eq(crc_next)]
                        with m.If(count == last_count):
                            m.d.sync += state.eq(_State.CRC)

            with m.Case(_State.CRC):
                m.d.comb += [self.rx.ready.eq(1), mid_frame.eq(1)]
                with m.If(got):
                    # Compared here, acted on in the next cycle: the comparison and the
                    # command's decision tree in one cycle were the iCE40 build's slowest
                    # path (the next byte is a UART frame away).
                    m.d.sync += [self.frame.payload.crc_ok.eq(byte == crc),
                                 state.eq(_State.HELD)]

            with m.Case(_State.HELD):
                with m.If(self.frame.ready):
                    m.d.sync += state.eq(_State.SYNC)

        with m.If(timed_out):
            m.d.sync += state.eq(_State.SYNC)
        return m
