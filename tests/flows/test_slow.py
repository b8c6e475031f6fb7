"""Opt-in long runs (``pytest -m slow``): the MNIST accuracy targets, end to end.

About 10-15 minutes on 2 cores; the default test run skips them.
"""

from __future__ import annotations

import json

import pytest

from ffcl_hw.cli import main

pytestmark = pytest.mark.slow


def test_mnist_ffdl_and_ffcl_reach_98_percent_at_2x512(tmp_path, capsys):
    pytest.importorskip("pureml")
    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", "mnist", "--hidden", "512,512", "--out", str(out),
                 "--quiet"]) == 0
    results = {r["algo"]: r for r in json.loads((out / "compare.json").read_text())["results"]}
    assert results["ffdl"]["test_accuracy"] >= 0.98
    assert results["ffcl"]["test_accuracy"] >= 0.98
    # The single-pass label scan: about 1/K of FFL's multiply-accumulates.
    ratio = results["ffdl"]["macs_per_inference"] / results["ffl"]["macs_per_inference"]
    assert 0.09 <= ratio <= 0.11
    # The integer model loses at most half a point.
    for algo in ("ffdl", "ffcl"):
        assert main(["quantize", str(out / algo)]) == 0
        metrics = json.loads((out / algo / "metrics.json").read_text())
        assert metrics["int_test_accuracy"] >= metrics["float_test_accuracy"] - 0.005
