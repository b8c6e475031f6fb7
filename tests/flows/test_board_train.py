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
from ffcl_hw.device import Device
from ffcl_hw.flows.board_train import run_rule
from golden.datasets import load_dataset
from golden.intmodelio import load_int_model
from golden.inttrain import train_int
from tests.flows.board_emulator import EmulatedBoard, serve_pty
from tests.flows.test_link_training import BoardPort

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
    return EmulatedBoard(model, lanes=LANES, rule=rule, **{"loadable": False, **kwargs})


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


def test_an_spram_board_is_loaded_with_the_starting_model_then_trained(run, model, capsys):
    # An SPRAM training core comes up empty: IDENT says loadable, no model, and TRAIN is
    # refused (error 8) until the run's stored words have committed.
    board = _board(run, model, loadable=True, initialised=False)
    with serve_pty(board) as port:
        assert _cli(run, port, "--train") == 0
    captured = capsys.readouterr()
    assert "loading" in captured.err and "starting model into the device" in captured.err
    assert "every record and every stored word equal the golden trainer's" in captured.out
    assert "starting model    loaded first" in captured.out
    report = json.loads((run / "board_train.json").read_text())
    assert report["mismatches"] == 0 and report["model_equal"]
    # Every stored word (W, b, U) and the sequencer program's words, which count in the
    # checksum (rtl.host_link.link_program).
    assert report["loaded"] == sum(board.identity.depths)
    assert report["device"]["weights_checksum"] == board.identity.weights_checksum


def test_an_spram_board_that_has_trained_is_loaded_again_and_trains_as_a_fresh_one(
        run, model, capsys):
    # Loaded with the run's model and trained on a few samples, the board's IDENT still
    # has the run's checksum (the last commit's), but its weights and generators have
    # moved on: --train loads the run's model again, whose commit restarts the
    # generators, and the board then trains as train_int does.
    board = _board(run, model, loadable=True, initialised=False)
    device = Device(BoardPort(board))
    device.load_model(model)
    data = load_dataset("digits")
    device.train(model.quantize_input(data.x_train[:3]), data.y_train[:3],
                 board.rule.lr_shift_at(0))
    assert device.identify().weights_checksum == board.identity.weights_checksum
    with serve_pty(board) as port:
        assert _cli(run, port, "--train") == 0
    captured = capsys.readouterr()
    assert ("it has trained 3 samples: the load's commit restarts it from the rule's seed"
            in captured.err)
    report = json.loads((run / "board_train.json").read_text())
    assert report["mismatches"] == 0 and report["model_equal"]
    assert report["loaded"] == sum(board.identity.depths)


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
    # Block RAM: no load takes it back (an SPRAM board is loaded again, below).
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


@pytest.fixture(scope="module")
def ffcl_run(tmp_path_factory):
    # FFCL T = 2 trained at every iteration (the rule's default): the tiny case of
    # tests/flows/test_train_sim.py -k training_pass, whose second sample's label on the
    # board is its training pass's, not the one of the weights before the sample.
    run = tmp_path_factory.mktemp("board_train") / "ffcl"
    assert main(["train", "--arith", "int", "--algo", "ffcl", "--loops", "2", "--hidden",
                 "6,5", "--epochs", "2", "--lr-steps", "1", "--quiet", "--out", str(run)]) == 0
    return run


def test_an_ffcl_run_trains_on_the_board_as_the_golden_trainer(ffcl_run, capsys):
    model = load_int_model(ffcl_run / "model.int.npz").model
    board = _board(ffcl_run, model)
    assert board.trainer.rule.loss_iterations == "all"
    with serve_pty(board) as port:
        assert _cli(ffcl_run, port, "--train") == 0
    assert "every record and every stored word equal the golden trainer's" in \
        capsys.readouterr().out
    report = json.loads((ffcl_run / "board_train.json").read_text())
    data = load_dataset("digits")
    rule = run_rule(ffcl_run, 1, data.x_train)
    golden = train_int(model, rule, model.quantize_input(data.x_train), data.y_train)
    assert report["samples"] == len(data.y_train) == board.trained
    assert report["mismatches"] == 0 and report["model_equal"]
    assert report["cycles_per_sample"]["mean"] == report["cycles_formula"] == board.train_cycles
    # The board's V (layer 1 hears layer 2) is train_int's: the double ran the same rule.
    got, want = board.trainer.stored[0], golden.trainer.stored[0]
    assert np.array_equal(got["V"], want["V"])
    assert report["accuracy"] == report["golden_int_accuracy"]


@pytest.mark.parametrize("wrong", ["label of the weights before the sample", "V"])
def test_an_ffcl_board_that_parts_from_the_trainer_is_caught(ffcl_run, wrong, capsys):
    model = load_int_model(ffcl_run / "model.int.npz").model
    board = _board(ffcl_run, model)
    trainer = board.trainer
    train_sample = trainer.train_sample
    if wrong == "V":
        # One fine step off in a stored V entry: only the read-back can see it.
        trainer.stored[0]["V"][0, 0] += 1
    else:
        # A core whose record reports the weights before the sample (as for FFDL).
        def before_update(x, y, lam):
            label = int(trainer.model.run(x[None]).labels[0])
            return dataclasses.replace(train_sample(x, y, lam), label=label)

        trainer.train_sample = before_update
    with serve_pty(board) as port:
        assert _cli(ffcl_run, port, "--train") == 1
    assert "MISMATCH with the golden trainer" in capsys.readouterr().err
    report = json.loads((ffcl_run / "board_train.json").read_text())
    if wrong == "V":
        assert report["mismatches"] == 0
        assert report["first_difference"].startswith("layer 1 stored V[0, 0] is ")
    else:
        # The tiny case's second sample: training stops at its block.
        assert report["first_mismatch"].startswith("epoch 1 sample 1 ")
        assert report["samples"] == board.identity.train_block


def test_an_ffl_run_is_refused(tmp_path, capsys):
    run = tmp_path / "ffl"
    assert main(["train", "--algo", "ffl", "--hidden", "6", "--epochs", "1", "--quiet",
                 "--out", str(run)]) == 0
    assert main(["quantize", str(run)]) == 0
    assert _cli(run, "/dev/null-port", "--train") == 2
    assert ("is an FFL model; training over the host link takes FFDL and FFCL runs"
            in capsys.readouterr().err)
