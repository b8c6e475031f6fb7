"""The random regression (sim/regression.py): its draws, a slice of it in the default run,
and the whole of it opt-in.

The default run simulates two cases of the regression's seed with a few images each (the
corners first); ``pytest -m slow -k regression`` runs the full regression, as
``ffcl-hw regress`` does (FFCL_REGRESS_SEED, FFCL_REGRESS_CONFIGS and
FFCL_REGRESS_INFERENCES set its size; default seed 1, 50 configurations, 200 inferences).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from sim.regression import draw_case, replay_command, run_case, run_regression
from sim.runner import available_simulators

SEED = int(os.environ.get("FFCL_REGRESS_SEED", "1"))
CONFIGS = int(os.environ.get("FFCL_REGRESS_CONFIGS", "50"))
INFERENCES = int(os.environ.get("FFCL_REGRESS_INFERENCES", "200"))
#: Cases of seed 1: FFCL (adjacent, T = 3, last-iteration readout) on shared multipliers
#: with two banks, loaded and switched (the default run); FFL of three layers on dedicated
#: multipliers with its weights loaded into SPRAM (``-m slow``; the SPRAM loads run by
#: default in the netlist and host-link benches). Both have widths that are not
#: multiples of their lane counts.
SLICE = (53, 13)
SLICE_INFERENCES = 8

needs_verilator = pytest.mark.skipif("verilator" not in available_simulators(),
                                     reason="Verilator not installed")


def test_a_case_is_drawn_again_from_its_seed_and_index_alone():
    a, b = draw_case(SEED, 7, 12), draw_case(SEED, 7, 12)
    assert a.describe() == b.describe()
    assert np.array_equal(a.images, b.images)
    assert all(np.array_equal(x.W, y.W) for x, y in zip(a.expected.layers, b.expected.layers,
                                                        strict=True))
    assert draw_case(SEED, 8, 12).describe() != a.describe()
    # More images extend the same case: its first images do not change.
    assert np.array_equal(draw_case(SEED, 7, 20).images[:12], a.images)


def test_the_first_50_cases_reach_every_parameter_the_core_has():
    cases = [draw_case(1, i, 4).describe() for i in range(50)]
    seen = {key: {str(c[key]) for c in cases} for key in cases[0]}
    assert seen["algo"] == {"ffl", "ffdl", "ffcl"}
    assert seen["loops"] == {"1", "2", "3"}
    ffcl = [c for c in cases if c["algo"] == "ffcl"]
    assert {c["topology"] for c in ffcl} == {"adjacent", "top"}
    assert {c["readout"] for c in ffcl} == {"sum", "last"}
    # The core has one feedback mode (it refuses "goodness").
    assert {c["feedback"] for c in ffcl} == {"state"}
    assert seen["multipliers"] == {"shared", "dedicated"}
    assert seen["weights"] == {"rom", "loadable", "spram"}
    assert seen["banks"] == {"1", "2"}
    assert seen["load"] == {"True", "False"}
    assert seen["widths_not_multiple_of_lanes"] == {"True", "False"}
    assert any(c["label_lanes"] < c["num_classes"] for c in cases)
    assert {"1", "12"} <= seen["lanes"]
    assert any(1 in c["hidden"] for c in cases)


def test_images_start_with_the_corners():
    case = draw_case(SEED, 0, 5)
    X = case.expected.fmt.input_max
    assert not case.images[0].any()
    assert (case.images[1] == X).all()
    assert case.images.min() >= 0 and case.images.max() <= X


@pytest.mark.parametrize(("arg", "value", "message"), [
    ("seed", -1, "Seed must be an integer of at least 0, not -1"),
    ("index", -2, "Case index must be an integer of at least 0, not -2"),
    ("inferences", 0, "Inference count must be an integer of at least 1, not 0"),
])
def test_draw_case_refuses_bad_arguments(arg, value, message):
    kwargs = {"seed": 1, "index": 0, "inferences": 1, arg: value}
    with pytest.raises(ValueError, match=message):
        draw_case(**kwargs)


@needs_verilator
@pytest.mark.parametrize("index", [SLICE[0], *(pytest.param(i, marks=pytest.mark.slow)
                                              for i in SLICE[1:])])
def test_a_slice_of_the_regression_is_bit_exact(index, build_root):
    case = draw_case(SEED, index, SLICE_INFERENCES)
    result = run_case(case, build_root / "regression", keep=True)
    assert result.passed, (f"case {index} of seed {SEED}: {result.first_error}; replay with "
                           f"`{replay_command(SEED, index, SLICE_INFERENCES)}`; log "
                           f"{result.log}")
    assert result.inferences == SLICE_INFERENCES


@needs_verilator
def test_a_load_that_never_reached_the_core_is_caught(build_root):
    # The checks must be able to fail on the load path too: the bench is told the answers
    # come from the loaded model, but nothing is loaded (so the two-bank core answers
    # with the model it was built with, and bank 1 still holds that model as well).
    case = draw_case(SEED, SLICE[0], SLICE_INFERENCES)
    assert case.load and case.banks == 2
    result = run_case(dataclasses.replace(case, load=False), build_root / "regression",
                      keep=True)
    assert not result.passed
    assert result.mismatches >= SLICE_INFERENCES // 2, result.first_error


@pytest.mark.slow
@needs_verilator
def test_the_full_regression_is_bit_exact(tmp_path, build_root):
    out = tmp_path / "regression.json"
    summary = run_regression(SEED, CONFIGS, INFERENCES, build_root / "regression-full",
                             out=out)
    totals = json.loads(out.read_text())
    assert totals["configs"] == CONFIGS
    assert totals["inferences"] == CONFIGS * INFERENCES
    assert not totals["failed_configs"], totals["failed_configs"][:3]
    assert summary.mismatches == 0


def test_the_command_refuses_bad_input(tmp_path, capsys):
    from ffcl_hw.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["regress", "--only", "-1"])
    assert exit_info.value.code == 2
    assert "'-1' is not a non-negative integer" in capsys.readouterr().err
    assert main(["regress", "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_command_names_the_replay_of_a_failed_case(tmp_path, capsys, monkeypatch):
    # A case that failed (here a stand-in for the simulation): exit 1, the totals count
    # its mismatches, and the replay command runs that case alone.
    import sim.regression
    from ffcl_hw.cli import main
    from sim.regression import CaseResult

    def failed(case, root, **kwargs):
        return CaseResult(case=case.describe(), inferences=3, mismatches=2, passed=False,
                          first_error="inference 1: cycles is 9 in the hardware, 8",
                          cycles_per_inference=8, build_seconds=0, sim_seconds=0, log="x")

    monkeypatch.setattr(sim.regression, "run_case", failed)
    out = tmp_path / "summary.json"
    assert main(["regress", "--seed", "4", "--only", "2", "--inferences", "3",
                 "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "FAILED (2 mismatches): inference 1: cycles is 9" in captured.out
    assert "replay: ffcl-hw regress --seed 4 --only 2 --inferences 3" in captured.err
    totals = json.loads(out.read_text())
    assert (totals["configs"], totals["inferences"], totals["mismatches"]) == (1, 3, 2)
    assert totals["failed_configs"][0]["index"] == 2
