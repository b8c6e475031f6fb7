"""The board double against the faults the RTL answers in its own way.

The whole fault table runs against the double and the gateware alike
(tests/flows/test_link_faults.py, tests/rtl/test_link_faults.py and the cocotb bench);
these are the two cases the double used to get wrong, spelled out.
"""

from __future__ import annotations

import numpy as np
import pytest

from ffcl_hw.device import FrameReader, crc8, encode_frame
from rtl.protocol import SYNC, Command, ErrorCode, Reply
from tests.flows.board_emulator import EmulatedBoard
from tests.rtl.test_core import _random_model

TIMEOUT_BITS = 24


@pytest.fixture(scope="module")
def model():
    return _random_model("ffdl", 3)


def replies(board: EmulatedBoard, data: bytes) -> list[tuple[int, int, bytes]]:
    return [tuple(frame) for frame in FrameReader().frames(board.receive(data))]


def image_frame(model, tag: int) -> bytes:
    return encode_frame(Command.IMAGE, bytes(model.config.input_size), tag=tag)


@pytest.mark.parametrize("silence", [TIMEOUT_BITS - 1, TIMEOUT_BITS])
def test_a_truncated_frame_is_abandoned_after_the_idle_timeout(model, silence):
    board = EmulatedBoard(model, timeout_bits=TIMEOUT_BITS)
    assert replies(board, image_frame(model, 1)[:7]) == []
    board.idle(silence)
    answer = replies(board, encode_frame(Command.IDENT, tag=2))
    if silence >= TIMEOUT_BITS:
        assert [(cmd, tag) for cmd, tag, _ in answer] == [(Reply.IDENT, 2)]
    else:
        # Within the timeout the IDENT's bytes are pixels of the truncated frame.
        assert answer == []


def test_a_length_field_one_too_long_gets_one_error_and_swallows_the_next_frame(model):
    # The RTL takes the crc byte as the last pixel and the next frame's sync byte as
    # the crc: one ERROR (the first frame's tag), and the next frame is noise. The
    # double used to answer an ERROR and then the next frame's RESULT.
    board = EmulatedBoard(model, timeout_bits=TIMEOUT_BITS)
    pixels = bytes(model.config.input_size)
    body = bytes([Command.IMAGE, 1]) + (len(pixels) + 1).to_bytes(2, "little") + pixels
    assert replies(board, bytes([SYNC]) + body + bytes([crc8(body)])) == []
    assert replies(board, image_frame(model, 2)) == [(Reply.ERROR, 1, bytes([ErrorCode.CRC]))]
    result = replies(board, image_frame(model, 3))
    assert [(cmd, tag) for cmd, tag, _ in result] == [(Reply.RESULT, 3)]
    assert result[0][2][0] == int(model.run(np.zeros((1, len(pixels)), dtype=int)).labels[0])
