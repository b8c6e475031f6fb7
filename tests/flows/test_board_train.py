# amaranth: UnusedElaboratable=no
"""`ffcl-hw run --train` and `--read` against the training board double on a pseudo-terminal.

The double (tests/flows/board_emulator.py with a rule) answers TRAIN and READ from
golden IntTrainer, as the RTL does (tests/sim/test_hostlink_cocotb.py); the command opens
it with pyserial exactly as it opens a real board.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json

import numpy as np
import pytest

from ffcl_hw.cli import main
from ffcl_hw.flows.board_train import run_rule
from golden.datasets import load_dataset
from golden.intmodelio import load_int_model
from golden.inttrain import train_int
from tests.flows.board_emulator import EmulatedBoard, serve_pty

LANES = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # A small integer FFDL run on digits: one epoch of 1,347 samples trains in seconds.
    run = tmp_path_factory.mktemp("board_train") / "ffdl"
    assert main(["train", "--arith", "int", "--algo", "ffdl", "--epochs", "2", "--hidden",
                 "8,6", "--quiet", "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def model(run):
    return load_int_model(run / "model.int.npz").model


def _board(run, model, epochs=1, lr_shift=None, **kwargs) -> EmulatedBoard:
    rule = run_rule(run, epochs, load_dataset("digits").x_train)
    if lr_shift is not None:
        rule = dataclasses.replace(rule, lr_shift=lr_shift)
    return EmulatedBoard(model, lanes=LANES, loadable=False, rule=rule, **kwargs)


def _cli(run, port, *extra) -> int:
    return main(["run", str(run), "--port", port, "--quiet", "--timeout", "0.5", *extra])


def test_train_and_read_give_train_ints_model(run, model, tmp_path, capsys):
    board = _board(run, model)
    out = tmp_path / "from-board"
    with serve_pty(board) as port:
        assert _cli(run, port, "--train", "--read", "--out", str(out)) == 0
    text = capsys.readouterr().out
    assert "every record and every stored word equal the golden trainer's" in text
    report = json.loads((run / "board_train.json").read_text())
    data = load_dataset("digits")
    rule = run_rule(run, 1, data.x_train)
    golden = train_int(model, rule, model.quantize_input(data.x_train), data.y_train).model
    assert report["samples"] == len(data.y_train) == board.trained
    assert report["mismatches"] == 0 and report["model_equal"]
    assert report["cycles_per_sample"]["mean"] == report["cycles_formula"] == board.train_cycles
    # The saved run is train_int's model, and the float tools take it.
    saved = load_int_model(out / "model.int.npz")
    assert saved.source["trained"]["on_board"]["samples_trained"] == len(data.y_train)
    for got, want in zip(saved.model.layers, golden.layers, strict=True):
        assert np.array_equal(got.W, want.W) and np.array_equal(got.U, want.U)
        assert np.array_equal(got.b, want.b)
    assert main(["evaluate", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["int_test_accuracy"] == report["accuracy"] == report["golden_int_accuracy"]


def test_read_alone_saves_the_boards_model(run, model, tmp_path, capsys):
    board = _board(run, model)
    with serve_pty(board) as port:
        assert _cli(run, port, "--read", "--out", str(tmp_path / "r")) == 0
    saved = load_int_model(tmp_path / "r" / "model.int.npz").model
    assert all(np.array_equal(a.W, b.W) for a, b in zip(saved.layers, model.layers, strict=True))
    # The folder exists now: not overwritten.
    with serve_pty(board) as port:
        assert _cli(run, port, "--read", "--out", str(tmp_path / "r")) == 2
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize(("case", "message"), [
    ("inference board", "does not train: its bitstream holds the inference core only"),
    ("lambda", "trains with lambda 3 only (the schedule its bitstream was built for)"),
    ("trained", "has trained 1 samples since it was configured"),
    ("faulty", None),
])
def test_train_refuses_a_board_it_cannot_train_as_the_golden_trainer(run, model, case,
                                                                     message, capsys):
    if case == "inference board":
        board = EmulatedBoard(model, lanes=LANES)
    elif case == "lambda":
        board = _board(run, model, lr_shift=3)
    elif case == "trained":
        board = _board(run, model)
        board.trained = 1
    else:
        # A board whose generator was seeded otherwise: its records differ (exit 1).
        board = _board(run, model)
        board.trainer.label_lfsr.state ^= 1
    with serve_pty(board) as port:
        status = _cli(run, port, "--train")
    err = capsys.readouterr().err
    if message is None:
        assert status == 1 and "MISMATCH with the golden trainer" in err
    else:
        assert status == 2 and message in err, err


def test_bad_options_are_refused_before_anything_is_sent(run, tmp_path, capsys):
    for extra, message in ((["--epochs", "0"], "is not a positive number of epochs"),
                           (["--epochs", "2"], "--epochs goes with --train"),
                           (["--out", str(tmp_path / "x")], "--out goes with --read"),
                           (["--train", "--load"], "--load goes without --train")):
        with pytest.raises(SystemExit) if "positive" in message else contextlib.nullcontext():
            assert _cli(run, "/dev/null-port", *extra) == 2
        assert message in capsys.readouterr().err


def test_an_ffcl_run_is_refused_while_the_core_trains_ffdl_only(tmp_path, capsys):
    run = tmp_path / "ffcl"
    assert main(["train", "--arith", "int", "--algo", "ffcl", "--loops", "2", "--epochs", "1",
                 "--hidden", "6,6", "--quiet", "--out", str(run)]) == 0
    assert _cli(run, "/dev/null-port", "--train") == 2
    assert "takes FFDL runs only so far" in capsys.readouterr().err
