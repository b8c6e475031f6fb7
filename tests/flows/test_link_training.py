# amaranth: UnusedElaboratable=no
"""TRAIN and READ through the host library against the board double (IntTrainer).

The double answers as docs/host-link.md says a HostLink over a TrainingCore does; the RTL
itself is checked against the same host library in tests/rtl/test_host_link_training.py
(Amaranth) and tests/sim/test_hostlink_cocotb.py (Verilator).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ffcl_hw.device import Device, FrameReader, HostLinkError, encode_frame
from golden.config import ModelConfig
from golden.inttrain import IntTrainer, TrainRule
from golden.random_model import reweighted
from rtl.core import LOAD_TARGETS, Core
from rtl.host_link import LinkIdentity, link_identity, model_hash
from rtl.protocol import Command, ErrorCode, Reply
from rtl.stored_words import forward_model, stored_words, unpack_stored
from rtl.training_core import TrainingCore
from tests.flows.board_emulator import EmulatedBoard
from tests.rtl.test_training_core import D, K, X, make_model

RULE = TrainRule(epochs=1, lr_shift=4, seed=7)


class BoardPort:
    """pyserial's write/read straight into an EmulatedBoard."""

    def __init__(self, board: EmulatedBoard) -> None:
        self.board, self.pending = board, b""

    def write(self, data: bytes) -> int:
        self.pending += self.board.receive(data)
        return len(data)

    def read(self, size: int) -> bytes:
        data, self.pending = self.pending[:size], self.pending[size:]
        return data


@pytest.fixture
def model():
    return make_model(ModelConfig(algo="ffdl", input_size=D, num_classes=K, hidden=(7, 5),
                                  theta=0.5), 11)


#: FFCL, T = 2, layer 1 hearing layer 2 (its V follows its W in the weight memory).
FFCL = ModelConfig(algo="ffcl", input_size=D, num_classes=K, hidden=(5, 4), loops=2,
                   topology="top", theta=0.5)


@pytest.fixture(params=["ffdl", "ffcl"])
def any_model(request, model):
    return model if request.param == "ffdl" else make_model(FFCL, 12)


def samples(n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, X + 1, (n, D)), rng.integers(0, K, n)


def replies(board: EmulatedBoard, frame: bytes):
    return [(f.cmd, f.payload) for f in FrameReader().frames(board.receive(frame))]


@pytest.mark.parametrize("block", [1, 2, 4])
def test_train_then_read_back_equals_the_golden_trainer(any_model, block):
    model = any_model
    board = EmulatedBoard(model, lanes=3, loadable=False, rule=RULE, train_block=block)
    device = Device(BoardPort(board))
    x, y = samples(5)
    trainer = IntTrainer(model, RULE)
    golden = [trainer.train_sample(xi, int(yi), RULE.lr_shift)
              for xi, yi in zip(x, y, strict=True)]
    records = device.train(x, y, RULE.lr_shift)
    assert [(r.label, r.wrong) for r in records] == [(g.label, g.wrong) for g in golden]
    assert all(r.wrong != yi for r, yi in zip(records, y, strict=True))
    assert {r.cycles for r in records} == {TrainingCore(model, RULE, lanes=3).training_cycles()}
    forward, stored = device.read_model(model)
    for got, want in zip(stored, trainer.stored, strict=True):
        # FFCL's V is read back with W (the weight memory holds both).
        assert set(got) == set(want)
        for name in want:
            assert np.array_equal(got[name], want[name]), name
    assert forward.run(x).labels.tolist() == trainer.model.run(x).labels.tolist()
    assert device.identify().trained == 5


# Label lanes G = K (a U row a word), and G = 3 < K = 4: two words a row, the second with
# one field and zeros (the small-part option, with one b and U lane).
@pytest.mark.parametrize("label_lanes", [None, 3])
def test_stored_words_are_the_training_cores_and_unpack_back(any_model, label_lanes):
    model = any_model
    trainer = IntTrainer(model, RULE)
    # Trained a little, so that no array is its starting one (V starts at random here).
    for xi, yi in zip(*samples(2), strict=True):
        trainer.train_sample(xi, int(yi), RULE.lr_shift)
    core = TrainingCore(model, RULE, lanes=3, label_lanes=label_lanes,
                        bias_label_lanes=3 if label_lanes is None else 1)
    words = stored_words(trainer.stored, lanes=3, store_bits=RULE.store_bits,
                         bias_bits=core.widths["bias"], label_lanes=label_lanes)
    assert words == core.stored_images(trainer.stored)
    back = unpack_stored(words, model, lanes=3, store_bits=RULE.store_bits,
                         bias_bits=core.widths["bias"], label_lanes=label_lanes)
    assert [set(a) for a in back] == [set(b) for b in trainer.stored]
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(back, trainer.stored, strict=True)
               for k in b)
    forward = forward_model(model, back, store_bits=RULE.store_bits)
    for got, want in zip(forward.layers, trainer.model.layers, strict=True):
        for name in ("W", "b", "U", "V"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), name
    assert forward.run(samples(4)[0]).labels.tolist() == \
        trainer.model.run(samples(4)[0]).labels.tolist()
    with pytest.raises(ValueError, match="weights memory of this configuration has"):
        unpack_stored({**words, "W": words["W"][:-1]}, model, lanes=3,
                      store_bits=RULE.store_bits, bias_bits=core.widths["bias"])


def test_read_words_reads_a_range_and_refuses_one_beyond_the_memory(model):
    board = EmulatedBoard(model, lanes=3, loadable=False, rule=RULE)
    device = Device(BoardPort(board))
    words = board.stored_words()
    assert device.read_words(LOAD_TARGETS["weights"], 2, 3) == words["W"][2:5]
    depth = device.identity.depths[LOAD_TARGETS["bias"] - 1]
    assert device.read_words(LOAD_TARGETS["bias"], depth - 1, 1) == words["b"][-1:]
    with pytest.raises(ValueError, match="beyond the device's bias memory"):
        device.read_words(LOAD_TARGETS["bias"], depth - 1, 2)
    with pytest.raises(ValueError, match="cannot be read"):
        device.read_words(LOAD_TARGETS["ops"], 0, 1)


def _train_frame(lam: int, x, y, tag: int = 5) -> bytes:
    return encode_frame(Command.TRAIN, bytes([lam]) + b"".join(
        bytes([int(yi)]) + bytes(int(p) for p in xi) for xi, yi in zip(x, y, strict=True)),
        tag=tag)


def _corrupt(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 1])


# Two banks: the model in use stays in use during a load, so only the open transaction
# refuses TRAIN (one bank: the model is gone from LOAD_BEGIN on).
@pytest.mark.parametrize("banks", [1, 2])
def test_refused_train_frames_change_nothing(model, banks):
    # Each refusal in the order the gateware checks them; after all of them the
    # memories and generators are the starting ones.
    board = EmulatedBoard(model, lanes=3, loadable=True, rule=RULE, train_block=2,
                          banks=banks)
    start = board.stored_words()
    x, y = samples(3)
    lam = RULE.lr_shift
    cases = [
        (_corrupt(_train_frame(lam, x[:1], y[:1])), ErrorCode.CRC),
        (_train_frame(lam, x[:3], y[:3]), ErrorCode.LENGTH),               # > train_block
        (_train_frame(lam, x[:1], y[:1])[:-2] + b"", None),                 # truncated: no reply
    ]
    for frame, code in cases:
        got = replies(board, frame)
        board.idle(board.timeout_bits)
        assert got == ([] if code is None else [(Reply.ERROR, bytes([code]))])
    bad_length = encode_frame(Command.TRAIN, bytes([lam]) + bytes(D + 1)[:-1])
    assert replies(board, bad_length) == [(Reply.ERROR, bytes([ErrorCode.LENGTH]))]
    assert replies(board, _train_frame(lam + 1, x[:1], y[:1])) == \
        [(Reply.ERROR, bytes([ErrorCode.LAMBDA]))]
    assert replies(board, _train_frame(lam, x[:1], [K])) == \
        [(Reply.ERROR, bytes([ErrorCode.LABEL]))]
    # Mid-load: a LOAD_BEGIN opens a transaction; TRAIN and READ wait for its commit.
    begin = model_hash(model).to_bytes(4, "little") + bytes(4)
    assert replies(board, encode_frame(Command.LOAD_BEGIN, begin)) == [(Reply.LOAD_BEGIN, b"")]
    assert replies(board, _train_frame(lam, x[:1], y[:1])) == \
        [(Reply.ERROR, bytes([ErrorCode.NO_MODEL]))]
    read = encode_frame(Command.READ, bytes([LOAD_TARGETS["bias"], 0, 0, 1, 0]))
    assert replies(board, read) == [(Reply.ERROR, bytes([ErrorCode.NO_MODEL]))]
    assert board.stored_words() == start and board.trained == 0
    trainer = IntTrainer(model, RULE)
    assert board.trainer.label_lfsr.state == trainer.label_lfsr.state
    assert board.trainer.rounding_lfsr.state == trainer.rounding_lfsr.state


def test_an_spram_training_board_trains_once_the_stored_words_are_loaded(model):
    # The double of HostLink(TrainingCore(..., weights="spram"), initialised=False).
    board = EmulatedBoard(model, lanes=3, rule=RULE, loadable=True, initialised=False)
    device = Device(BoardPort(board))
    x, y = samples(3)
    with pytest.raises(HostLinkError, match="error 8"):
        device.train(x, y, RULE.lr_shift)
    sent = board.received
    with pytest.raises(ValueError, match="holds 16-bit stored weights; pass the IntModel"):
        device.load_model(Core(model, lanes=3, weights="loadable"))
    assert board.received == sent
    device.load_model(model)
    ident = device.identify()
    assert ident.model_loaded and ident.weights_checksum == link_identity(
        model, lanes=3, rule=RULE, train_block=ident.train_block).weights_checksum
    _trains_as_a_fresh_trainer(device, model, x, y)
    # A block RAM training board is initialised by its bitstream: no load.
    with pytest.raises(HostLinkError, match="keeps its weights in block RAM"):
        Device(BoardPort(EmulatedBoard(model, lanes=3, loadable=False, rule=RULE))
               ).load_model(model)


def _trains_as_a_fresh_trainer(device: Device, start, x, y) -> None:
    """``device`` trains ``x``, ``y`` as IntTrainer(start, RULE) fresh: the records, then
    every stored word read back."""
    trainer = IntTrainer(start, RULE)
    assert [(r.label, r.wrong) for r in device.train(x, y, RULE.lr_shift)] == [
        ((r := trainer.train_sample(xi, int(yi), RULE.lr_shift)).label, r.wrong)
        for xi, yi in zip(x, y, strict=True)]
    _, stored = device.read_model(start)
    for got, want in zip(stored, trainer.stored, strict=True):
        assert all(np.array_equal(got[name], want[name]) for name in want)


def test_a_load_restarts_an_spram_training_board_from_the_seed(model):
    # As the gateware (TrainingCore's restart on the commit): trained, then loaded with
    # a model, the board trains as IntTrainer(that model, rule) fresh, its generators
    # back at the seed; ``trained`` counts on.
    board = EmulatedBoard(model, lanes=3, rule=RULE, loadable=True, initialised=False,
                          known=(reweighted(model, 5),))
    device = Device(BoardPort(board))
    x, y = samples(3)
    device.load_model(model)
    device.train(x, y, RULE.lr_shift)
    for start in (model, reweighted(model, 5)):
        device.load_model(start)
        _trains_as_a_fresh_trainer(device, start, x, y)
    assert device.identify().trained == 9


def test_a_board_that_does_not_train_refuses_train_and_read(model):
    board = EmulatedBoard(model, lanes=3)
    x, y = samples(1)
    for frame in (_train_frame(RULE.lr_shift, x, y), encode_frame(Command.TRAIN, bytes(3)),
                  encode_frame(Command.READ, bytes(5))):
        assert replies(board, frame)[-1:] == [(Reply.ERROR, bytes([ErrorCode.TRAIN]))]
    with pytest.raises(HostLinkError, match="does not train"):
        Device(BoardPort(board)).train(x, y, RULE.lr_shift)


def test_device_refuses_what_the_gateware_would_before_sending(model):
    board = EmulatedBoard(model, lanes=3, loadable=False, rule=RULE)
    device = Device(BoardPort(board))
    x, y = samples(2)
    with pytest.raises(ValueError, match="trains with lambda 4 only"):
        device.train(x, y, 5)
    with pytest.raises(ValueError, match="labels must lie in 0..3"):
        device.train(x, [0, K], 4)
    # A bitstream built for a two-epoch schedule (lambda 4, then 5) takes both.
    rule = dataclasses.replace(RULE, epochs=2, lr_steps=(1,))
    any_board = EmulatedBoard(model, lanes=3, loadable=False, rule=rule)
    with pytest.raises(ValueError, match=r"trains with lambda 4\.\.5 only"):
        Device(BoardPort(any_board)).train(x, y, 6)
    trainer = IntTrainer(model, rule)
    for xi, yi in zip(x, y, strict=True):
        trainer.train_sample(xi, int(yi), 5)
    device = Device(BoardPort(any_board))
    device.train(x, y, 5)
    assert all(np.array_equal(a["W"], b["W"])
               for a, b in zip(device.read_model(model)[1], trainer.stored, strict=True))


def test_the_training_ident_round_trips_and_refuses_what_does_not_fit(model):
    identity = dataclasses.replace(
        link_identity(model, lanes=3, rule=RULE, train_block=4), trained=123456)
    assert identity.trains and identity.stored_bits == 16
    assert (identity.lr_first, identity.lr_last) == (4, 4)
    assert LinkIdentity.from_bytes(identity.to_bytes()) == identity
    with pytest.raises(ValueError, match="weights memory has 70000 words, more than the host "
                                         "link's 16-bit addresses"):
        dataclasses.replace(identity, depths=(5, 70000, 5, 5)).to_bytes()
