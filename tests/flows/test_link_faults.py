"""The host link's fault table (sim/link_faults.py) against the board double.

The same rows run against the gateware in Amaranth's simulator
(tests/rtl/test_link_faults.py) and under cocotb (sim/hostlink_testbench.py); the double
must give every answer the hardware gives.
"""

from __future__ import annotations

import contextlib

import pytest

from ffcl_hw.device import Device, FrameReader, HostLinkTimeout
from sim.link_faults import FAULTS, check_replies, fault_table, late_reply
from tests.flows.board_emulator import EmulatedBoard
from tests.rtl.test_link_faults import TIMEOUT_BITS, link_case, models

LANES = 8


def play(board: EmulatedBoard, fault) -> None:
    case, golden = link_case(board.banked)
    for i, (send, expected) in enumerate(fault.steps):
        # The double has no line: a gap is silence, a skew nothing, a framing error a
        # byte that never reaches the parser.
        board.idle(send.gap_bits)
        out = b""
        for j, byte in enumerate(send.data):
            if j == send.framing_error_at:
                board.framing_error()
            else:
                out += board.receive(bytes([byte]))
        check_replies(f"{fault.name}, step {i}", expected, FrameReader().frames(out),
                      identity=case.identity, golden=golden)


@pytest.mark.parametrize("banks", [1, 2])
@pytest.mark.parametrize("name", FAULTS)
def test_the_double_answers_every_fault_as_the_hardware(name, banks):
    case, _ = link_case(banks == 2)
    fault = next(f for f in fault_table(case) if f.name == name)
    model_a, model_b = models()
    play(EmulatedBoard(model_a, lanes=LANES, banks=banks, timeout_bits=TIMEOUT_BITS,
                       known=(model_b,)), fault)


class _DelayedPort:
    """A port on the double whose reads can be made to time out while a reply is on its
    way (it arrives at the next read)."""

    def __init__(self, board: EmulatedBoard) -> None:
        self.board, self.pending, self.short = board, bytearray(), False

    def write(self, data: bytes) -> int:
        self.pending += self.board.receive(data)
        return len(data)

    def read(self, size: int) -> bytes:
        if self.short:
            self.short = False
            return b""
        out = bytes(self.pending[:size])
        del self.pending[:size]
        return out


def test_a_late_reply_from_the_double_is_never_taken_for_the_next():
    model_a, _ = models()
    case, golden = link_case(False)
    port = _DelayedPort(EmulatedBoard(model_a, lanes=LANES, timeout_bits=TIMEOUT_BITS))

    @contextlib.contextmanager
    def short_reads():
        port.short = True
        yield

    late_reply(Device(port), case.images,
               [golden["a"][i][:2] for i in range(2)], short_reads=short_reads,
               timeout_error=HostLinkTimeout)
