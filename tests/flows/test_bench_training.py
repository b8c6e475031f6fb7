# amaranth: UnusedElaboratable=no
"""The bench's training rows (ffcl_hw.flows.bench_training), without the Verilator part.

The accelerator's figure is the training core's closed form (FFDL), the ideal the
design's estimate for the board's memory, samples/s at the synthesized Fmax or the
board's target clock, for FFDL and FFCL runs; an FFL run gets rows that say why not.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ffcl_hw.cpu.toolchain import CROSS_COMPILER
from ffcl_hw.flows.bench_report import _training_lines
from ffcl_hw.flows.bench_training import (
    bench_training,
    run_rule,
    training_speedups,
)
from golden.inttrain import TrainRule
from rtl.training_core import TrainingCore
from rtl.training_estimate import estimate_training
from tests.golden.test_inttrain import D, K, X, _random_model

pytestmark = [
    pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on PATH"),
    pytest.mark.skipif(shutil.which(CROSS_COMPILER) is None,
                       reason=f"{CROSS_COMPILER} is not on PATH"),
]


@pytest.fixture(scope="module")
def compiled_programs(tmp_path_factory):
    """One cache of compiled CPU programs for this module's bench runs: the FFDL tests
    train the same model on the same samples, so their programs compile once
    (:func:`ffcl_hw.cpu.toolchain.compile_c` keys each on its sources, flags, compiler
    and CPU; every run still checks and times its programs)."""
    return tmp_path_factory.mktemp("compiled")


@pytest.fixture(autouse=True)
def _shared_compile_cache(tmp_path, compiled_programs):
    """``tmp_path / "run"``'s compiled-program cache (RUN/sim_build/c) is the module's."""
    cache = tmp_path / "run" / "sim_build" / "c"
    cache.parent.mkdir(parents=True)
    cache.symlink_to(compiled_programs, target_is_directory=True)


def _bench(tmp_path, name: str, *, lanes: int = 3, board: str | None = None,
           synth: dict | None = None, shared: bool = False):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    rng = np.random.default_rng(4)
    x = rng.integers(0, X + 1, (4, D))
    y = rng.integers(0, K, 4)
    model = _random_model(name, seed=11)
    section = bench_training(run, model, x, y, x_train_float=x / X, lanes=lanes,
                             label_lanes=None, shared=shared, board=board, synth=synth,
                             rv32im_samples=2, cpu_samples=4, cpu_seconds=0.02,
                             build=tmp_path / "build")
    return model, section


def test_ffdl_rows_are_the_closed_form_and_the_design(tmp_path):
    model, t = _bench(tmp_path, "ffdl", board="icebreaker")
    # A run without a recorded rule trains with train --arith int's defaults.
    assert t["rule_source"].startswith("train --arith int's defaults")
    rule = TrainRule(epochs=1, lr_shift=t["rule"]["lr_shift"])
    assert rule.to_dict() == t["rule"]
    # The training core's counter, in closed form, for the run's lanes and the core the
    # iCEBreaker's training build makes: its weights in SPRAM (3 x 16 bits fit one 64-bit
    # word), read and written on one port (a word every other cycle: more cycles than
    # block RAM), one b and U lane, every multiplier a MAC lane's, 3 label weights a word,
    # the update's input norms from the forward pass, one W/V update lane, the compact
    # learning signal (an error every other cycle).
    core = TrainingCore(model, rule, lanes=3, weights="spram", bias_label_lanes=1,
                        forward_multipliers="shared", signal_multipliers="shared",
                        label_lanes=3, input_norm="forward", serial_weight_pass=True,
                        lean_signal=True, compact_signal=True)
    assert t["cycles_per_sample"] == core.training_cycles()
    assert t["accelerator"]["phase_cycles"] == core.training_phase_cycles()
    assert t["cycles_per_sample"] > TrainingCore(model, rule, lanes=3,
                                                 weights="spram").training_cycles()
    assert t["accelerator"]["lanes"] == 3 and t["accelerator"]["weights"] == "spram"
    assert (t["accelerator"]["label_lanes"], t["accelerator"]["bias_label_lanes"],
            t["accelerator"]["forward_multipliers"], t["accelerator"]["input_norm"],
            t["accelerator"]["compact_lanes"], t["accelerator"]["shared_update_lane"],
            t["accelerator"]["compact_signal"]) == (3, 1, "shared", "forward", True, True, True)
    # The design's figure for the iCEBreaker's memory (single-port SPRAM).
    design = estimate_training(model, lanes=3, label_lanes=None, shared=False,
                               memory="spram", store_bits=rule.store_bits)
    assert t["ideal_cycles"] == design.total and t["design"]["memory"] == "spram"
    assert t["design"]["lane_utilization"] == design.utilisation
    # W passes of 5x6 and 4x5 entries on one update lane, 2 tiles each back to back: the
    # first tile's shadow load (3 + 1), a single-port read every 3 cycles (the lane takes
    # a word's 3 entries in turn; the last tile's reads 3 (n_in - 1) + 1) and the drain.
    assert t["lane_utilization"] == core.pass_lane_utilization()
    assert t["lane_utilization"] == (5 * 6 + 4 * 5) / (core.weight_pass.cycles(5, 6)
                                                       + core.weight_pass.cycles(4, 5))
    # No synthesis report: the board's target clock, said so.
    assert t["clock_mhz"] == 30.0 and "target clock" in t["clock_source"]
    assert t["samples_per_second"] == pytest.approx(30e6 / t["cycles_per_sample"])
    assert t["design_samples_per_second"] == pytest.approx(30e6 / t["ideal_cycles"])
    # The CPU rows are the checked measurements.
    assert t["rv32im"]["golden_check"].startswith("passed") and t["rv32im"]["samples"] == 2
    assert t["rv32im_instructions_per_sample"] == t["rv32im"]["instructions_per_sample"]
    assert t["host_ns_per_sample"] == t["host_c"]["ns_per_sample"] > 0
    speedup = training_speedups(t)
    assert speedup["training_vs_rv32im_instructions"] == pytest.approx(
        t["rv32im_instructions_per_sample"] / t["cycles_per_sample"])
    assert speedup["training_design_vs_rv32im_instructions"] == pytest.approx(
        t["rv32im_instructions_per_sample"] / t["ideal_cycles"])


def test_a_core_whose_spram_word_is_too_wide_is_not_available_and_says_why(tmp_path):
    # 5 lanes x 16 stored bits = 80: the iCEBreaker's SPRAM word holds 64.
    _, t = _bench(tmp_path, "ffdl", lanes=5, board="icebreaker")
    assert t["cycles_per_sample"] is None and t["samples_per_second"] is None
    assert "5 lanes x 16 stored bits = 80 bits; SPRAM words hold 64" \
        in t["accelerator"]["not_available"]
    assert training_speedups(t)["training_vs_rv32im_instructions"] is None


def test_samples_per_second_use_the_synthesized_fmax(tmp_path):
    _, t = _bench(tmp_path, "ffdl", board="ulx3s-85f", synth={"fmax_mhz": 80.0})
    assert t["clock_mhz"] == 80.0 and "Fmax" in t["clock_source"]
    assert "the inference build; no training build" in t["clock_source"]
    assert t["design"]["memory"] == "bram" and t["accelerator"]["weights"] == "loadable"
    assert t["samples_per_second"] == pytest.approx(80e6 / t["cycles_per_sample"])
    # Block RAM: a word read and one written every cycle of a pass (5x6 and 4x5 entries on
    # 3 lanes: the first tile's shadow load 3 + 1, 2 tiles of n_in back to back, the
    # drain of 9).
    assert t["lane_utilization"] == (5 * 6 + 4 * 5) / (3 * ((4 + 2 * 6 + 9) + (4 + 2 * 5 + 9)))


def test_samples_per_second_prefer_the_training_build_s_fmax(tmp_path):
    # A training build (synth --train) beside the inference build: its Fmax, named.
    report = tmp_path / "run" / "synth" / "ulx3s-85f-train" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"fmax_mhz": 61.5, "lanes": 2}))
    model, t = _bench(tmp_path, "ffdl", board="ulx3s-85f", synth={"fmax_mhz": 80.0})
    assert t["clock_mhz"] == 61.5 and "the training build, 2 lanes" in t["clock_source"]
    assert t["clock_report"] == str(report)
    # The rows take the training build's lanes (2), not the bench's (3): its cycles are
    # what its Fmax turns into samples per second.
    rule = TrainRule(epochs=1, lr_shift=t["rule"]["lr_shift"])
    assert t["accelerator"]["lanes"] == t["design"]["lanes"] == 2
    assert t["cycles_per_sample"] == TrainingCore(model, rule, lanes=2).training_cycles()
    assert t["samples_per_second"] == pytest.approx(61.5e6 / t["cycles_per_sample"])


def test_an_ffcl_run_gets_the_training_core_s_closed_form(tmp_path):
    model, t = _bench(tmp_path, "ffcl-adjacent-T2")
    rule = TrainRule(epochs=1, lr_shift=t["rule"]["lr_shift"])
    assert "not_available" not in t["accelerator"]
    assert t["cycles_per_sample"] == TrainingCore(model, rule, lanes=3).training_cycles()
    assert t["ideal_cycles"] > 0 and t["rv32im_instructions_per_sample"] > 0
    speedup = training_speedups(t)
    assert speedup["training_vs_rv32im_instructions"] == pytest.approx(
        t["rv32im_instructions_per_sample"] / t["cycles_per_sample"])


def test_the_run_s_own_rule_is_used(tmp_path):
    rule = TrainRule(epochs=3, lr_shift=5, rounding="nearest", seed=7)
    (tmp_path / "metrics.json").write_text(json.dumps({"rule": rule.to_dict()}))
    got, source = run_rule(tmp_path, np.zeros((2, D)))
    assert got == rule and "metrics.json" in source


def test_the_table_shows_the_training_rows():
    training = {"rule_source": "x", "accelerator": {"cycles_per_sample": None,
                                                     "not_available": "FFCL not built"},
                "design": {"cycles_per_sample": 1000, "lanes": 8, "shared_multipliers": True,
                           "memory": "spram", "lane_utilization": 0.25},
                "clock_mhz": 30.0, "clock_source": "target", "samples_per_second": None,
                "design_samples_per_second": 30000.0,
                "rv32im": {"skipped": "no cross compiler"},
                "host_c": {"flags": ["-std=c11", "-O3", "-march=native"], "ns_per_sample": 5.0,
                           "compiler": "gcc", "repeats": 10}}
    text = "\n".join(_training_lines(training, training_speedups(training)))
    assert "| accelerator (training core) | cycles | not available | FFCL not built |" in text
    assert "SPRAM) | cycles | 1,000 |" in text and "lane utilisation 25.0%" in text
    assert "| accelerator (design) at 30.0 MHz | samples/s | 30,000 | target |" in text
    assert "| RV32IM | instructions | skipped | no cross compiler |" in text
    assert "| RV32IM instructions / training core cycles | n/a |" in text
    assert "training core phase" not in text
    # A built core's cycles, split by its phase output (phases with no cycles left out).
    training["accelerator"] = {"cycles_per_sample": 300, "lanes": 3, "weights": "spram",
                               "lane_utilization": 0.5, "phase_cycles": {
                                   "matrix_vector": 100, "loop_feedback": 0,
                                   "weight_pass": 200}}
    text = "\n".join(_training_lines(training, training_speedups(training)))
    assert "| training core phase | cycles | share |" in text
    assert "| matrix vector | 100 | 33.3% |" in text and "| weight pass | 200 | 66.7% |" in text
    assert "loop feedback" not in text


def test_an_ffl_run_gets_rows_that_say_why_not(tmp_path):
    from golden.config import ModelConfig
    from golden.intformat import IntFormat
    from golden.intmodel import IntLayer, IntModel

    config = ModelConfig(algo="ffl", input_size=D, num_classes=K, hidden=(4,))
    model = IntModel(config=config, fmt=IntFormat(frac_bits=6, input_max=X), layers=[
        IntLayer(W=np.zeros((4, D + K), np.int64), w_exp=0, b=np.zeros(4, np.int64))])
    x = np.zeros((2, D), np.int64)
    t = bench_training(tmp_path, model, x, np.zeros(2, np.int64), x_train_float=x + 0.5,
                       lanes=3, label_lanes=None, shared=False, board=None, synth=None,
                       rv32im_samples=1, cpu_samples=2, cpu_seconds=0.01,
                       build=tmp_path / "build")
    assert "FFL" in t["not_available"] and t["cycles_per_sample"] is None
    assert training_speedups(t) == {"training_vs_rv32im_instructions": None,
                                    "training_design_vs_rv32im_instructions": None}
    assert "| all | | not available | the integer rule cannot train this model" in \
        "\n".join(_training_lines(t, training_speedups(t)))
