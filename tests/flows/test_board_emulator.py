"""The board double against the faults the RTL answers in its own way.

The whole fault table runs against the double and the gateware alike
(tests/flows/test_link_faults.py, tests/rtl/test_link_faults.py and the cocotb bench);
these are the two cases the double used to get wrong, spelled out, and the one it cannot
answer as the RTL would: a load of words of no model it knows fails the test by name.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from ffcl_hw.device import Device, FrameReader, crc8, encode_frame
from ffcl_hw.flows.board_run import open_port
from golden.random_model import reweighted
from rtl.core import LOAD_TARGETS, load_words
from rtl.program import build_program
from rtl.protocol import SYNC, Command, ErrorCode, Reply
from tests.flows.board_emulator import EmulatedBoard, UnknownWords, serve_socket
from tests.flows.test_link_training import BoardPort
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


def test_a_load_of_words_no_known_model_has_fails_the_test_naming_the_word(model):
    # The gateware commits any words whose checksum matches and runs them; the double
    # runs only models it knows (``known=``). It used to raise in its serving thread, so
    # the host saw a timeout; now the commit's failure names the first word that
    # differs from the nearest known model, and the serving context raises it.
    other = reweighted(model, 5)
    words = [{(t, a): w for t, a, w in load_words(build_program(m, lanes=2))}
             for m in (model, other)]
    differ = sorted(k for k in words[0] if words[0][k] != words[1][k])
    target, addr = differ[0]
    name = {code: n for n, code in LOAD_TARGETS.items()}[target]
    message = (f"the double knows no model with the words committed: {name} word {addr} "
               f"is 0x{words[1][target, addr]:X}, 0x{words[0][target, addr]:X} in the "
               f"nearest known model ({len(differ)} words differ); pass the model the load "
               f"brings in known=")
    with pytest.raises(UnknownWords, match=f"^{re.escape(message)}$"):
        with serve_socket(EmulatedBoard(model)) as url:
            port = open_port(url, baud=115200, timeout=0.5)
            try:
                # No reply to the commit: the host's own error gives way to the double's.
                Device(port).load_model(other)
            finally:
                port.close()
    # Fed directly, the failure comes out of receive(); known, the load commits.
    with pytest.raises(UnknownWords, match=f"^{re.escape(message)}$"):
        Device(BoardPort(EmulatedBoard(model))).load_model(other)
    board = EmulatedBoard(model, known=(other,))
    Device(BoardPort(board)).load_model(other)
    assert board.model is other

