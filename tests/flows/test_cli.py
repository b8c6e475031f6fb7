"""The ``ffcl-hw`` command end to end, in-process, on the built-in digits."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

from ffcl_hw.cli import main
from golden.modelio import load_model

FAST = ["--epochs", "3", "--hidden", "16,16"]
METRIC_KEYS = {"dataset", "algo", "hidden", "test_accuracy", "per_layer_test_accuracy",
               "macs_per_inference", "train_seconds"}


def _run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(("algo", "extra", "layers"), [
    ("ffl", [], 2), ("ffdl", [], 2), ("ffcl", ["--loops", "2"], 2),
    ("ffcl", ["--hidden", "12,10,8", "--topology", "top"], 3),
])
def test_train_writes_a_complete_run(tmp_path, capsys, algo, extra, layers):
    run = tmp_path / "run"
    status, out, _ = _run(capsys, "train", "--algo", algo, *FAST, *extra, "--out", str(run),
                          "--quiet")
    assert status == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["algo"] == algo and metrics["dataset"] == "digits"
    assert len(metrics["per_layer_test_accuracy"]) == layers
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["macs_per_inference"] > 0
    model = load_model(run / "model.npz")
    assert model.config.algo == algo and len(model.config.hidden) == layers
    assert f"{100 * metrics['test_accuracy']:.2f}%" in out
    # Nothing but the two result files, no staging leftovers beside the run.
    assert sorted(p.name for p in run.iterdir()) == ["metrics.json", "model.npz"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_evaluate_reproduces_the_training_metrics(tmp_path, capsys):
    run = tmp_path / "run"
    assert _run(capsys, "train", "--algo", "ffdl", *FAST, "--out", str(run), "--quiet")[0] == 0
    metrics = json.loads((run / "metrics.json").read_text())
    status, out, _ = _run(capsys, "evaluate", str(run), "--json")
    assert status == 0
    result = json.loads(out)
    assert result["test_accuracy"] == metrics["test_accuracy"]
    assert result["per_layer_test_accuracy"] == metrics["per_layer_test_accuracy"]


def test_an_existing_run_is_kept_without_force(tmp_path, capsys):
    run = tmp_path / "run"
    assert _run(capsys, "train", *FAST, "--out", str(run), "--quiet")[0] == 0
    before = (run / "model.npz").read_bytes()
    status, _, err = _run(capsys, "train", *FAST, "--seed", "3", "--out", str(run), "--quiet")
    assert status == 2 and "already exists" in err and "--force" in err
    assert (run / "model.npz").read_bytes() == before
    status, _, _ = _run(capsys, "train", *FAST, "--seed", "3", "--out", str(run), "--quiet",
                        "--force")
    assert status == 0 and (run / "model.npz").read_bytes() != before


def test_a_failed_training_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    import ffcl_hw.flows.train as flow

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(flow, "train", broken)
    with pytest.raises(RuntimeError):
        main(["train", *FAST, "--out", str(tmp_path / "run"), "--quiet"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--dataset", "cifar", "--out", "x"],
     "digits, mnist, fashion-mnist, idx:DIR, not 'cifar'"),
    (["train", "--algo", "backprop", "--out", "x"], "backprop.*ffl.*ffdl.*ffcl"),
    (["train", "--hidden", "64,x", "--out", "x"], "64,x.*positive integers"),
    (["train", "--hidden", "0,64", "--out", "x"], "0,64.*positive integers"),
    (["train", "--epochs", "-1", "--out", "x"], "not a positive integer"),
    (["train", "--resize", "0", "--out", "x"], "not a positive integer"),
    (["train", "--topology", "ring", "--out", "x"], "ring.*adjacent.*top"),
    (["compare", "--dataset", "idx", "--out", "x"], "idx"),
    # Non-finite hyper-parameters are refused when parsed, not trained into a NaN model.
    (["train", "--lr", "inf", "--out", "x"], "'inf' is not a finite positive number"),
    (["train", "--theta", "inf", "--out", "x"], "'inf' is not a finite positive number"),
    (["train", "--lr", "1e400", "--out", "x"], "'1e400' is not a finite positive number"),
    (["train", "--theta", "nan", "--out", "x"], "'nan' is not a finite positive number"),
    (["compare", "--lr", "Infinity", "--out", "x"], "'Infinity' is not a finite positive"),
])
def test_bad_options_exit_2_naming_the_value_and_the_choices(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--algo", "ffdl", "--loops", "3"], "--loops is FFCL's"),
    (["train", "--algo", "ffcl", "--loops", "1"], "loops .T. of at least 2"),
    (["train", "--algo", "ffcl", "--feedback", "goodness"], "goodness.*T. = 2"),
    (["train", "--resize", "9"], "resize 9 is out of range"),
    (["train", "--dataset", "idx:/nonexistent/dir"], "/nonexistent/dir"),
])
def test_impossible_configurations_exit_2_before_training(tmp_path, capsys, argv, message):
    status, _, err = _run(capsys, *argv, "--out", str(tmp_path / "run"), "--quiet")
    assert status == 2
    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()


def test_evaluate_refuses_missing_and_malformed_models(tmp_path, capsys):
    status, _, err = _run(capsys, "evaluate", str(tmp_path / "nothing"))
    assert status == 2 and "no model file" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.npz").write_bytes(b"not a zip")
    status, _, err = _run(capsys, "evaluate", str(tmp_path / "bad"))
    assert status == 2 and "not a readable .npz model file" in err


def test_evaluate_refuses_a_model_whose_weights_do_not_match_its_configuration(tmp_path, capsys):
    run = tmp_path / "run"
    assert _run(capsys, "train", *FAST, "--algo", "ffdl", "--out", str(run), "--quiet")[0] == 0
    with np.load(run / "model.npz") as archive:
        arrays = dict(archive)
    arrays["W2"] = arrays["W2"][:, :5]
    np.savez(run / "model.npz", **arrays)
    status, _, err = _run(capsys, "evaluate", str(run))
    assert status == 2 and "W2 has shape (16, 5)" in err and "(16, 16)" in err


def test_evaluate_refuses_images_of_another_size(tmp_path, capsys):
    run = tmp_path / "run"
    assert _run(capsys, "train", *FAST, "--algo", "ffdl", "--out", str(run), "--quiet")[0] == 0
    status, _, err = _run(capsys, "evaluate", str(run), "--dataset", "digits", "--resize", "4")
    assert status == 2 and "16 pixels" in err and "takes 64" in err


def test_compare_trains_all_three_with_the_same_budget(tmp_path, capsys):
    out = tmp_path / "cmp"
    status, stdout, _ = _run(capsys, "compare", *FAST, "--seed", "2", "--out", str(out),
                             "--quiet")
    assert status == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["dataset"] == "digits"
    assert [r["algo"] for r in report["results"]] == ["ffl", "ffdl", "ffcl"]
    for r in report["results"]:
        assert {"algo", "test_accuracy", "per_layer_test_accuracy", "macs_per_inference",
                "train_seconds"} <= set(r)
        assert r["hidden"] == [16, 16] and r["epochs"] == 3 and r["seed"] == 2
        assert (out / r["algo"] / "model.npz").is_file()
    assert "| FFDL |" in stdout and stdout.count("\n|") >= 5
    assert (out / "compare.md").read_text() in stdout


@pytest.mark.slow
def test_demo_trains_an_accurate_ffcl_model_on_digits(tmp_path, capsys):
    # The digits target: the default FFCL model reaches at least 96%. Opt-in: the
    # default run's demo test (test_hardware_flows.py) checks the same accuracy, so the
    # demo's training runs once in the default run, which stays well under 15 minutes.
    status, out, _ = _run(capsys, "demo", "--out", str(tmp_path / "demo"), "--quiet",
                          "--train-samples", "0")
    assert status == 0
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["algo"] == "ffcl" and metrics["loops"] == 3
    assert metrics["test_accuracy"] >= 0.96
    assert not (tmp_path / "demo-int" / "train_sim.json").exists()


@pytest.mark.slow
def test_demo_replaces_its_own_previous_output(tmp_path, capsys):
    # Two whole demos (about a minute each on 2 cores): opt-in, to keep the default run
    # well under 15 minutes.
    for _ in range(2):
        assert _run(capsys, "demo", "--out", str(tmp_path / "demo"), "--quiet",
                    "--train-samples", "0")[0] == 0
    assert json.loads((tmp_path / "demo" / "metrics.json").read_text())["algo"] == "ffcl"


def test_train_creates_missing_parent_folders(tmp_path, capsys):
    # `ffcl-hw demo` writes runs/demo; a fresh checkout has no runs/ folder.
    run = tmp_path / "runs" / "nested" / "run"
    assert _run(capsys, "train", *FAST, "--out", str(run), "--quiet")[0] == 0
    assert (run / "model.npz").is_file()


def test_a_file_in_the_way_of_the_run_folder_is_refused(tmp_path, capsys):
    (tmp_path / "runs").write_text("not a folder")
    status, _, err = _run(capsys, "train", *FAST, "--out", str(tmp_path / "runs" / "r"),
                          "--quiet")
    assert status == 2 and "is not a folder" in err


def test_synth_refuses_two_banks_without_loadable_weights(capsys, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--algo", "ffdl", *FAST, "--out", str(run), "--quiet"]) == 0
    assert main(["quantize", str(run)]) == 0
    capsys.readouterr()
    # Refused before any tool runs: nothing is written under RUN/synth.
    assert main(["synth", str(run), "--board", "ulx3s-25f", "--banks", "2"]) == 2
    err = capsys.readouterr().err
    assert "--banks 2 needs --weights loadable (loads write the second bank), not " \
        "--weights rom" in err
    assert not (run / "synth").exists() or not any((run / "synth").iterdir())


def test_training_that_diverges_stops_and_writes_no_model(tmp_path, capsys):
    # A finite learning rate large enough to overflow float32 in the first steps.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, out, err = _run(capsys, "train", *FAST, "--lr", "1e38", "--out",
                                str(tmp_path / "run"), "--quiet")
    assert status == 2, err
    assert "training diverged in epoch 1" in err and "lower --lr (now 1e+38)" in err
    # The message, not a screen of NumPy overflow warnings.
    assert [w.message for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert "test accuracy" not in out
    assert list(tmp_path.iterdir()) == []


def _idx_folder(path, *, test_images):
    from golden.idx import write_idx

    rng = np.random.default_rng(0)
    path.mkdir()
    write_idx(path / "train-images-idx3-ubyte", rng.integers(0, 256, (30, 4, 4), np.uint8))
    write_idx(path / "train-labels-idx1-ubyte", (np.arange(30) % 3).astype(np.uint8))
    write_idx(path / "t10k-images-idx3-ubyte",
              rng.integers(0, 256, (test_images, 4, 4), np.uint8))
    write_idx(path / "t10k-labels-idx1-ubyte", (np.arange(test_images) % 3).astype(np.uint8))
    return path


def test_an_idx_folder_without_test_images_is_refused_before_training(tmp_path, capsys):
    data = _idx_folder(tmp_path / "data", test_images=0)
    status, _, err = _run(capsys, "train", *FAST, "--dataset", f"idx:{data}", "--out",
                          str(tmp_path / "run"), "--quiet")
    assert status == 2
    assert "the test split has no images" in err and "t10k-images-idx3-ubyte" in err
    assert not (tmp_path / "run").exists()


def test_a_float_model_of_integer_arrays_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert _run(capsys, "train", *FAST, "--algo", "ffdl", "--out", str(run), "--quiet")[0] == 0
    with np.load(run / "model.npz") as archive:
        arrays = {name: (archive[name] if name == "__meta__"
                         else np.round(archive[name] * 10).astype(np.int64))
                  for name in archive.files}
    np.savez(run / "model.npz", **arrays)
    for command in ("evaluate", "quantize"):
        status, _, err = _run(capsys, command, str(run))
        assert status == 2, err
        assert "array W1 has dtype int64" in err and "floating-point" in err
        assert "ffcl-hw train" in err
    assert not (run / "model.int.npz").exists()
