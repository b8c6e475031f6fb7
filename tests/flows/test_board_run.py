"""`ffcl-hw run` against board doubles on a pseudo-terminal and a socket:// URL.

The doubles (tests/flows/board_emulator.py) speak the host link protocol over the golden
integer model; the command opens them with pyserial exactly as it opens a real board.
"""

from __future__ import annotations

import json

import pytest

from ffcl_hw.cli import main
from ffcl_hw.device import encode_frame
from golden.intmodelio import load_int_model
from rtl.protocol import Command
from tests.flows.board_emulator import EmulatedBoard, serve_pty, serve_socket
from tests.golden.variants import reweighted
from tests.rtl.test_core import _random_model

FAST = ["--epochs", "3", "--hidden", "12,10", "--loops", "2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("board") / "ffcl"
    assert main(["train", "--algo", "ffcl", *FAST, "--out", str(run), "--quiet"]) == 0
    assert main(["quantize", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def model(run):
    return load_int_model(run / "model.int.npz").model


def _run(run, port, *extra) -> int:
    return main(["run", str(run), "--port", port, "--samples", "6", "--quiet",
                 "--timeout", "0.5", *extra])


@pytest.mark.parametrize("serve", [serve_pty, serve_socket])
def test_run_classifies_bit_exactly_and_writes_board_json(run, model, serve, capsys):
    (run / "board.json").unlink(missing_ok=True)
    board = EmulatedBoard(model, lanes=3)
    with serve(board) as port:
        assert _run(run, port) == 0
    out = capsys.readouterr().out
    assert "bit-exact with the golden integer model on every sample" in out
    report = json.loads((run / "board.json").read_text())
    golden = model.run(model.quantize_input(_test_images(run)))
    assert report["samples"] == 6 and report["mismatches"] == 0 and report["agreement"] == 1
    assert report["cycles_per_inference"]["mean"] == report["cycles_formula"] == \
        board.program.cycles()
    assert report["device"]["lanes"] == 3 and not report["loaded"]
    assert report["golden_int_accuracy"] == report["accuracy"]
    assert report["accuracy"] == float((golden.labels == _test_labels(run)).mean())
    assert report["inferences_per_second"] > 0
    assert board.images == 6


def test_run_expects_the_cycle_count_of_a_core_on_shared_multipliers(run, model):
    # IDENT's flags say the core borrows its lanes' multipliers (the iCEBreaker build):
    # the expected cycle count is that core's closed form, not the overlapped core's.
    board = EmulatedBoard(model, lanes=3, label_lanes=1, shared=True)
    with serve_pty(board) as port:
        assert _run(run, port) == 0
    report = json.loads((run / "board.json").read_text())
    assert report["device"]["shared"] is True
    overlapped = EmulatedBoard(model, lanes=3, label_lanes=1).program.cycles()
    assert report["cycles_formula"] == board.program.cycles() != overlapped
    assert report["cycles_per_inference"]["mean"] == board.program.cycles()


def _test_images(run):
    from ffcl_hw.flows.evaluate import load_run_dataset
    from golden.modelio import load_model

    data, _ = load_run_dataset(load_model(run / "model.npz"), None, None)
    return data.x_test[:6]


def _test_labels(run):
    from ffcl_hw.flows.evaluate import load_run_dataset
    from golden.modelio import load_model

    data, _ = load_run_dataset(load_model(run / "model.npz"), None, None)
    return data.y_test[:6]


@pytest.mark.parametrize("case", ["empty-memories", "other-weights"])
def test_run_needs_load_for_a_board_without_the_runs_weights(run, model, case, capsys):
    def board():
        if case == "empty-memories":
            return EmulatedBoard(model, initialised=False)
        return EmulatedBoard(reweighted(model, 5), known=(model,))

    with serve_socket(board()) as port:
        assert _run(run, port) == 2
    err = capsys.readouterr().err
    message = {"empty-memories": "holds no complete model",
               "other-weights": "holds other weights than"}[case]
    assert message in err and "pass --load" in err
    with serve_socket(board()) as port:
        assert _run(run, port, "--load") == 0
    assert "weights loaded" in capsys.readouterr().out
    report = json.loads((run / "board.json").read_text())
    assert report["loaded"] and report["mismatches"] == 0


def test_run_refuses_a_board_with_another_model(run, capsys):
    other = _random_model("ffdl", 1)
    with serve_pty(EmulatedBoard(other)) as port:
        assert _run(run, port, "--load") == 2
    err = capsys.readouterr().err
    assert f"ffcl-hw run: error: the device on {port} holds another model than {run}" in err
    assert "device has labels = 4, the model needs 10" in err
    assert "ffcl-hw synth" in err


def test_run_reports_a_silent_device(run, capsys):
    board = EmulatedBoard(None)
    with serve_pty(board) as port:
        assert _run(run, port) == 2
    err = capsys.readouterr().err
    assert f"no answer from a device on {port} at 115200 baud within 0.5 s (asked twice)" in err
    assert board.received == 2 * len(encode_frame(Command.IDENT))        # two IDENT frames arrived


def test_run_reports_a_port_that_does_not_exist(run, capsys):
    assert _run(run, "/dev/ttyNOSUCHPORT") == 2
    err = capsys.readouterr().err
    assert "cannot open serial port /dev/ttyNOSUCHPORT" in err and "ls /dev/ttyUSB*" in err


def test_run_refuses_load_on_a_rom_board(run, model, capsys):
    with serve_pty(EmulatedBoard(model, loadable=False)) as port:
        assert _run(run, port, "--load") == 2
    assert "cannot load weights" in capsys.readouterr().err


def test_run_exits_1_naming_the_first_mismatch(run, model, capsys):
    with serve_pty(EmulatedBoard(model, faulty=True)) as port:
        assert _run(run, port) == 1
    assert "MISMATCH with the golden integer model: 3 samples; first: sample 1: score[0]" in \
        capsys.readouterr().err
    report = json.loads((run / "board.json").read_text())
    assert report["agreement"] == 0.5 and report["cycles_per_inference"] is None


@pytest.mark.parametrize(("argv", "message"), [
    (["--samples", "0"], "not a positive integer"),
    (["--baud", "x"], "not a positive integer"),
    (["--timeout", "0"], "not a finite positive number"),
    (["--timeout", "inf"], "not a finite positive number"),
])
def test_run_refuses_bad_options(run, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(run), "--port", "loop://", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
