"""``ffcl-hw train --arith int`` (the on-chip rule) and ``--init``, end to end on digits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ffcl_hw.cli import main
from ffcl_hw.flows.quantize import load_quantized_run, load_run_int_model
from golden.datasets import load_dataset
from golden.intmodelio import load_int_model

FAST = ["--epochs", "3", "--hidden", "16,16", "--quiet"]


def _run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_int_training_writes_a_run_the_other_commands_accept(tmp_path, capsys):
    run = tmp_path / "run"
    status, out, _ = _run(capsys, "train", "--arith", "int", "--algo", "ffcl", "--loops", "2",
                          *FAST, "--out", str(run))
    assert status == 0 and "int test accuracy" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["arith"] == "int" and metrics["rule"]["epochs"] == 3
    assert len(metrics["loss_history"]) == 3 and metrics["train_seconds"] > 0
    assert metrics["rule"]["lr_steps"] == [1, 2] and metrics["lr_shift_history"] == [6, 7, 8]
    # The integer model file is measured as stored: rerun it and compare.
    model = load_int_model(run / "model.int.npz").model
    data = load_dataset("digits")
    accuracy = float((model.run(model.quantize_input(data.x_test)).labels == data.y_test).mean())
    assert accuracy == metrics["int_test_accuracy"] > 0.5
    # sim, bench and run read the pair of model files through load_quantized_run.
    saved, int_model = load_quantized_run(run)
    assert saved.config == int_model.config
    # It says it was trained, not quantized: the commands that pair a float model with
    # an integer one (sim, export-verilog, synth) take it without a float digest.
    source = load_int_model(run / "model.int.npz").source
    assert source["trained"]["rule"]["epochs"] == 3 and "quantized_from" not in source
    assert load_run_int_model(run).model.config == int_model.config
    status, out, _ = _run(capsys, "evaluate", str(run), "--json")
    assert status == 0
    assert abs(json.loads(out)["test_accuracy"] - metrics["dequantized_test_accuracy"]) < 1e-12


def test_init_continues_from_an_integer_model(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert _run(capsys, "train", "--arith", "int", "--algo", "ffdl", *FAST, "--out",
                str(first))[0] == 0
    status, out, _ = _run(capsys, "train", "--arith", "int", "--init", str(first), "--epochs",
                          "1", "--lr-shift", "8", "--lr-steps", "", "--quiet", "--out",
                          str(second))
    assert status == 0 and f"from {first}" in out
    before = json.loads((first / "metrics.json").read_text())
    after = json.loads((second / "metrics.json").read_text())
    # The stored weights start at the middle of each forward code: the model that enters
    # training classifies exactly as the saved one.
    assert after["initial_int_test_accuracy"] == before["int_test_accuracy"]
    assert after["init"] == str(first) and after["model"] == before["model"]
    a = load_int_model(first / "model.int.npz").model
    b = load_int_model(second / "model.int.npz").model
    assert a.fmt == b.fmt and [x.w_exp for x in a.layers] == [x.w_exp for x in b.layers]
    assert not np.array_equal(a.layers[0].W, b.layers[0].W)


def test_init_and_int_options_are_checked(tmp_path, capsys):
    status, _, err = _run(capsys, "train", "--arith", "int", "--init", str(tmp_path), *FAST,
                          "--out", str(tmp_path / "r"))
    assert status == 2 and "no model.int.npz" in err
    status, _, err = _run(capsys, "train", "--init", str(tmp_path), *FAST, "--out",
                          str(tmp_path / "r"))
    assert status == 2 and "--arith int" in err
    status, _, err = _run(capsys, "train", "--arith", "int", "--algo", "ffl", *FAST, "--out",
                          str(tmp_path / "r"))
    assert status == 2 and "not FFL" in err
    status, _, err = _run(capsys, "train", "--arith", "int", "--lr-shift", "40", *FAST,
                          "--out", str(tmp_path / "r"))
    assert status == 2 and "lower lr_shift" in err
    assert not (tmp_path / "r").exists()


def test_compare_puts_the_integer_rule_beside_the_float_models(tmp_path, capsys):
    out = tmp_path / "cmp"
    status, stdout, _ = _run(capsys, "compare", "--dataset", "digits", *FAST, "--with-int",
                             "--out", str(out))
    assert status == 0
    report = json.loads((out / "compare.json").read_text())
    arith = [(r["algo"], r["arith"]) for r in report["results"]]
    assert arith == [("ffl", "float"), ("ffdl", "float"), ("ffcl", "float"),
                     ("ffdl", "int"), ("ffcl", "int")]
    assert "| FFDL, int rule |" in stdout and "| FFCL, int rule |" in stdout
    assert (out / "ffcl-int" / "model.int.npz").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(("algo", "extra", "target"), [
    ("ffdl", [], 0.97), ("ffcl", ["--loops", "2"], 0.97),
])
def test_digits_reaches_the_target_with_the_defaults(tmp_path, capsys, algo, extra, target):
    run = tmp_path / "run"
    assert _run(capsys, "train", "--arith", "int", "--algo", algo, *extra, "--quiet",
                "--out", str(run))[0] == 0
    assert json.loads((run / "metrics.json").read_text())["int_test_accuracy"] >= target


@pytest.mark.slow
def test_mnist_14x14_reaches_95_percent(tmp_path, capsys):
    # The iCEBreaker size: 196-64-64, 15 epochs (about 10 minutes on a busy 2-core machine).
    pytest.importorskip("pureml")
    run = tmp_path / "run"
    assert _run(capsys, "train", "--arith", "int", "--dataset", "mnist", "--resize", "14",
                "--hidden", "64,64", "--algo", "ffdl", "--epochs", "15", "--quiet", "--out",
                str(run))[0] == 0
    assert json.loads((run / "metrics.json").read_text())["int_test_accuracy"] >= 0.95


@pytest.mark.slow
def test_mnist_784_256_256_ffdl_reaches_97_5_percent_with_the_defaults(tmp_path, capsys):
    # 30 epochs at lr 2^-9 (the defaults): 97.56 % (6.5 minutes of CPU, more on a busy
    # machine). The rule is deterministic, so this is the README's figure, not a sample.
    pytest.importorskip("pureml")
    run = tmp_path / "run"
    assert _run(capsys, "train", "--arith", "int", "--dataset", "mnist", "--algo", "ffdl",
                "--quiet", "--out", str(run))[0] == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["rule"]["epochs"] == 30 and metrics["int_test_accuracy"] >= 0.975


def test_float_twin_writes_a_float_run(tmp_path, capsys):
    run = tmp_path / "run"
    status, out, _ = _run(capsys, "train", "--arith", "float-sgd", "--algo", "ffdl", *FAST,
                          "--out", str(run))
    assert status == 0 and "float per-sample SGD" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["arith"] == "float-sgd" and len(metrics["loss_history"]) == 3
    assert metrics["rule"]["lr_shift"] == 6 and metrics["test_accuracy"] > 0.5
    status, out, _ = _run(capsys, "evaluate", str(run), "--json")
    assert status == 0 and json.loads(out)["test_accuracy"] == metrics["test_accuracy"]
