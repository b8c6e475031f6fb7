"""``ffcl-hw quantize`` end to end, in-process, on fast digits runs."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from ffcl_hw.cli import main
from golden.datasets import load_dataset
from golden.intmodelio import load_int_model, save_int_model
from golden.modelio import ModelFileError, load_model, model_digest

FAST = ["--epochs", "3", "--hidden", "16,16", "--quiet"]
ADDED = {"int_test_accuracy", "float_test_accuracy", "int_per_layer_test_accuracy",
         "int_format"}
WIDTHS = {"acc_bits", "layer_acc_bits", "feedback_acc_bits", "sq_bits", "score_bits"}


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One fast run per algorithm (and a resized one), trained once for the module."""
    root = tmp_path_factory.mktemp("trained")
    runs = {}
    for key, extra in (("ffl", ["--algo", "ffl"]), ("ffdl", ["--algo", "ffdl"]),
                       ("ffcl", ["--algo", "ffcl", "--loops", "2"]),
                       ("resized", ["--algo", "ffdl", "--resize", "4"])):
        runs[key] = root / key
        assert main(["train", *FAST, *extra, "--out", str(runs[key])]) == 0
    return runs


@pytest.fixture
def run_of(trained, tmp_path):
    """A private copy of a trained run, so a test may change it."""
    def copy(key: str):
        return shutil.copytree(trained[key], tmp_path / key)
    return copy


@pytest.mark.parametrize("algo", ["ffl", "ffdl", "ffcl"])
def test_quantize_writes_the_int_model_and_adds_metrics(run_of, capsys, algo):
    run = run_of(algo)
    before = json.loads((run / "metrics.json").read_text())
    status, out, _ = _run(capsys, "quantize", run)
    assert status == 0
    assert sorted(p.name for p in run.iterdir()) == ["metrics.json", "model.int.npz",
                                                    "model.npz"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == set(before) | ADDED
    assert {k: metrics[k] for k in before} == before
    # The float figure is the training run's own evaluation, recomputed.
    assert metrics["float_test_accuracy"] == before["test_accuracy"]
    fmt = metrics["int_format"]
    assert WIDTHS <= set(fmt)
    assert (fmt["weight_bits"], fmt["state_bits"], fmt["input_max"]) == (8, 16, 16)
    assert len(metrics["int_per_layer_test_accuracy"]) == 2
    for line in (f"{100 * metrics['int_test_accuracy']:.2f}%",
                 f"{100 * metrics['float_test_accuracy']:.2f}%", "model.int.npz",
                 f"score {fmt['score_bits']} bits"):
        assert line in out

    # The file holds the model that was measured.
    saved = load_int_model(run / "model.int.npz")
    assert saved.data["dataset"] == "digits" and saved.data["calibration_images"] == 1000
    data = load_dataset("digits")
    result = saved.model.run(saved.model.quantize_input(data.x_test))
    assert float((result.labels == data.y_test).mean()) == metrics["int_test_accuracy"]


def test_requantizing_replaces_the_int_model_and_its_metrics(run_of, capsys):
    run = run_of("ffdl")
    assert _run(capsys, "quantize", run)[0] == 0
    assert _run(capsys, "quantize", run, "--weight-bits", "4", "--state-bits", "12")[0] == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["int_format"]["weight_bits"], metrics["int_format"]["state_bits"]) == (4, 12)
    assert load_int_model(run / "model.int.npz").model.fmt.weight_bits == 4


def test_a_resized_run_takes_8_bit_pixels(run_of, capsys):
    # Resized pixels are averages of the raw ones, re-quantized to 0..255.
    run = run_of("resized")
    assert _run(capsys, "quantize", run)[0] == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["int_format"]["input_max"] == 255
    assert load_int_model(run / "model.int.npz").model.config.input_size == 16


def test_a_failure_leaves_neither_file_changed(run_of, capsys, monkeypatch):
    import ffcl_hw.flows.quantize as flow

    run = run_of("ffdl")
    assert _run(capsys, "quantize", run)[0] == 0
    int_before = (run / "model.int.npz").read_bytes()
    metrics_before = (run / "metrics.json").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    # Fails after the new integer model was written to its temporary file.
    monkeypatch.setattr(flow, "evaluate", broken)
    with pytest.raises(RuntimeError):
        main(["quantize", str(run), "--weight-bits", "4"])
    assert (run / "model.int.npz").read_bytes() == int_before
    assert (run / "metrics.json").read_bytes() == metrics_before
    assert sorted(p.name for p in run.iterdir()) == ["metrics.json", "model.int.npz",
                                                    "model.npz"]


def test_missing_runs_and_models_exit_2(tmp_path, capsys):
    status, _, err = _run(capsys, "quantize", tmp_path / "nothing")
    assert status == 2 and "no run folder at" in err and "ffcl-hw train" in err
    (tmp_path / "empty").mkdir()
    status, _, err = _run(capsys, "quantize", tmp_path / "empty")
    assert status == 2 and "no model file at" in err
    assert list((tmp_path / "empty").iterdir()) == []


def test_broken_metrics_exit_2_before_any_work(run_of, capsys):
    run = run_of("ffdl")
    (run / "metrics.json").write_text("{truncated")
    status, _, err = _run(capsys, "quantize", run)
    assert status == 2 and "metrics.json is not readable JSON" in err
    assert not (run / "model.int.npz").exists()


def test_unrepresentable_formats_exit_2(run_of, capsys):
    # 16-bit weights on 24-bit state: the accumulator times the reciprocal passes 2**53.
    run = run_of("ffdl")
    status, _, err = _run(capsys, "quantize", run, "--weight-bits", "16", "--state-bits", "24")
    assert status == 2 and "cannot quantize" in err and "formats too wide" in err
    assert not (run / "model.int.npz").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--weight-bits", "1"], "'1' is not a width in 2..16 bits"),
    (["--weight-bits", "x"], "'x' is not a width in 2..16 bits"),
    (["--state-bits", "25"], "'25' is not a width in 4..24 bits"),
    (["--calibration", "0"], "'0' is not a positive integer"),
])
def test_bad_widths_exit_2_naming_the_range(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["quantize", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_float_model_is_refused_where_an_int_model_is_expected(run_of, capsys):
    run = run_of("ffdl")
    with pytest.raises(ModelFileError, match="model.npz is a float model file, not an integer"):
        load_int_model(run / "model.npz")
    # Nor is a float model accepted under the integer model's name.
    shutil.copy(run / "model.npz", run / "model.int.npz")
    with pytest.raises(ModelFileError, match="float model file"):
        load_int_model(run / "model.int.npz")
    assert np.load(run / "model.npz")["W1"].dtype.kind == "f"


# -- model identity: an integer model belongs to the float model it was quantized from ---

def test_the_int_model_records_the_float_model_it_was_quantized_from(run_of, capsys):
    run = run_of("ffcl")
    assert _run(capsys, "quantize", run)[0] == 0
    source = load_int_model(run / "model.int.npz").source
    assert set(source) == {"quantized_from"}
    origin = source["quantized_from"]
    assert origin["digest"] == model_digest(load_model(run / "model.npz"))
    assert origin["run"] == str(run.resolve()) and origin["seed"] == 0


@pytest.fixture
def swapped(run_of, tmp_path, capsys):
    """Run ``ffdl`` (seed 0) holding the integer model of a run of the same shape trained
    with seed 1: what copying ``model.int.npz`` between runs gives."""
    run = run_of("ffdl")
    other = tmp_path / "other"
    assert _run(capsys, "train", *FAST, "--algo", "ffdl", "--seed", "1", "--out", other)[0] == 0
    assert _run(capsys, "quantize", run)[0] == 0
    assert _run(capsys, "quantize", other)[0] == 0
    shutil.copy(other / "model.int.npz", run / "model.int.npz")
    (run / "sim.json").write_text('{"kept": true}\n')
    return run, other


@pytest.mark.parametrize("argv", [
    ["sim", "{run}", "--simulator", "amaranth", "--samples", "1", "--quiet"],
    ["export-verilog", "{run}", "--out", "{tmp}/verilog"],
    ["synth", "{run}", "--board", "ulx3s-25f"],
    ["run", "{run}", "--port", "{tmp}/no-such-port", "--quiet"],
    ["bench", "{run}", "--quiet"],
])
def test_every_pairing_command_refuses_an_int_model_of_another_run(swapped, tmp_path, capsys,
                                                                   argv):
    run, other = swapped
    status, _, err = _run(capsys, *[a.format(run=run, tmp=tmp_path) for a in argv])
    assert status == 2, err
    # Which run each model came from, and the fix.
    assert f"{run / 'model.int.npz'} was quantized from the float model of {other.resolve()}" \
        in err
    assert "trained with seed 1" in err and "seed 0" in err
    assert f"`ffcl-hw quantize {run}`" in err
    assert (run / "sim.json").read_text() == '{"kept": true}\n'
    assert not (tmp_path / "verilog").exists() and not (run / "synth").exists()
    assert not (run / "bench.json").exists() and not (run / "board.json").exists()


def test_an_int_model_that_does_not_say_where_it_came_from_is_refused(run_of, capsys, tmp_path):
    # An integer model written before models recorded their source.
    run = run_of("ffdl")
    assert _run(capsys, "quantize", run)[0] == 0
    with np.load(run / "model.int.npz") as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays["__meta__"]))
    del meta["source"]
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(run / "model.int.npz", **arrays)
    for argv in (["sim", run, "--simulator", "amaranth", "--quiet"],
                 ["export-verilog", run, "--out", tmp_path / "v"]):
        status, _, err = _run(capsys, *argv)
        assert status == 2
        assert "does not record the float model it was quantized from" in err
        assert f"run `ffcl-hw quantize {run}` again" in err


def test_a_trained_int_model_needs_no_float_model(run_of, tmp_path, capsys):
    # An integer model trained as such (not quantized) pairs with no float model.
    run = run_of("ffdl")
    assert _run(capsys, "quantize", run)[0] == 0
    saved = load_int_model(run / "model.int.npz")
    alone = tmp_path / "alone"
    alone.mkdir()
    save_int_model(alone / "model.int.npz", saved.model, data=saved.data,
                   source={"trained": {"seed": 0}})
    assert _run(capsys, "export-verilog", alone, "--out", tmp_path / "v")[0] == 0
    assert (tmp_path / "v" / "ffcl_core.v").is_file()
