"""`ffcl-hw bench`: accelerator cycles against CPUs, checked and written all at once."""

from __future__ import annotations

import json
import math

import pytest

from ffcl_hw import cpu
from ffcl_hw.cli import main
from ffcl_hw.flows import bench as bench_flow
from ffcl_hw.flows import bench_training as bench_training_flow
from ffcl_hw.flows.bench import bench_run
from ffcl_hw.runs import RunError
from golden.costs import inference_cost
from golden.intmodelio import load_int_model
from rtl.program import build_program
from rtl.training_estimate import estimate_training
from sim.runner import available_simulators

pytestmark = pytest.mark.skipif("verilator" not in available_simulators(),
                                reason="the bench measures the RTL in Verilator")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def benched(tmp_path_factory):
    """A small FFCL digits run, benched once through the command line."""
    run = tmp_path_factory.mktemp("bench") / "ffcl"
    assert main(["train", "--algo", "ffcl", "--loops", "2", "--epochs", "3", "--hidden",
                 "16,12", "--out", str(run), "--quiet"]) == 0
    assert main(["quantize", str(run)]) == 0
    assert main(["bench", str(run), "--samples", "3", "--cpu-samples", "5",
                 "--rv32im-samples", "2", "--cpu-seconds", "0.2", "--lanes", "4",
                 "--quiet"]) == 0
    return run, json.loads((run / "bench.json").read_text())


def test_accelerator_section_is_the_checked_rtl_count(benched):
    run, report = benched
    model = load_int_model(run / "model.int.npz").model
    program = build_program(model, lanes=4, label_lanes=None)
    acc = report["accelerator"]
    # The hardware counter (checked against the golden model) equals the closed form.
    assert acc["cycles_per_inference"] == acc["cycles_closed_form"] == program.cycles()
    assert acc["samples"] == 3 and "passed on 3 of 3" in acc["golden_check"]
    macs = inference_cost(model.config).macs
    assert acc["macs_per_inference"] == macs
    assert acc["ideal_cycles"] == math.ceil(macs / 4)
    assert acc["lane_utilization"] == program.mac_cycles() / program.matrix_cycles()
    assert 0 < acc["ideal_fraction"] <= 1
    if acc["phase_cycles"] is not None:
        assert sum(acc["phase_cycles"].values()) == acc["cycles_per_inference"]
    assert acc["latency_us"] is None          # no --board, no synthesis report


def test_cpu_sections_and_speedups_are_consistent(benched):
    _, report = benched
    for opt in ("-O2", "-O3", "-O3 -march=native"):
        host = report["host_c"][opt]
        assert host["ns_per_inference"] > 0 and "passed" in host["golden_check"]
    fastest = min(report["host_c"], key=lambda k: report["host_c"][k]["ns_per_inference"])
    assert report["speedup"]["host_c_build"] == fastest
    assert report["numpy"]["ns_per_inference_batched"] > 0
    assert report["numpy"]["ns_per_inference_single"] > 0
    cycles = report["accelerator"]["cycles_per_inference"]
    rv = report["rv32im"]
    speedup = report["speedup"]
    if "skipped" in rv:
        assert "gcc-riscv64-unknown-elf" in rv["skipped"]
        assert speedup["vs_rv32im_instructions"] is None
    else:
        assert rv["instructions_per_inference"] > report["model"]["macs_per_inference"]
        assert speedup["vs_rv32im_instructions"] == pytest.approx(
            rv["instructions_per_inference"] / cycles)


def test_variants_compare_the_three_algorithms_of_the_same_shape(benched):
    _, report = benched
    rows = {row["algo"]: row for row in report["variants"]}
    assert set(rows) == {"ffl", "ffdl", "ffcl"}
    assert rows["ffdl"]["macs_vs_ffdl"] == 1.0 and rows["ffdl"]["cycles_vs_ffdl"] == 1.0
    # FFL runs the network once per label: K times the label-free work at least.
    assert rows["ffl"]["macs_per_inference"] > 5 * rows["ffdl"]["macs_per_inference"]
    assert rows["ffl"]["accelerator_cycles"] > rows["ffdl"]["accelerator_cycles"]
    assert rows["ffcl"]["loops"] == 2


def test_training_rows_of_an_ffcl_run(benched):
    run, report = benched
    training, speedup = report["training"], report["speedup"]
    for key in ("cycles_per_sample", "ideal_cycles", "lane_utilization",
                "rv32im_instructions_per_sample", "host_ns_per_sample", "samples_per_second"):
        assert key in training
    model = load_int_model(run / "model.int.npz").model
    # The design's figure for the measured configuration (no board: block RAM).
    assert training["ideal_cycles"] == estimate_training(
        model, lanes=4, label_lanes=None, shared=False, memory="bram").total
    assert training["host_ns_per_sample"] == training["host_c"]["ns_per_sample"] > 0
    assert training["samples_per_second"] is None     # no --board: no clock
    table = (run / "bench.md").read_text()
    if training["cycles_per_sample"] is None:
        # The training core is FFDL-only: the row says so, the bench does not fail.
        assert "FFCL" in training["accelerator"]["not_available"]
        assert speedup["training_vs_rv32im_instructions"] is None
        assert "| accelerator (training core) | cycles | not available |" in table
    rv = training["rv32im"]
    if "skipped" in rv:
        # No cross compiler on this machine: the row says how to get one, no speedup.
        assert "gcc-riscv64-unknown-elf" in rv["skipped"]
        assert training["rv32im_instructions_per_sample"] is None
        assert speedup["training_vs_rv32im_instructions"] is None
        assert speedup["training_design_vs_rv32im_instructions"] is None
        return
    assert rv["golden_check"].startswith("passed") and rv["samples"] == 2
    assert training["rv32im_instructions_per_sample"] == rv["instructions_per_sample"]
    if training["cycles_per_sample"] is not None:
        assert speedup["training_vs_rv32im_instructions"] == pytest.approx(
            rv["instructions_per_sample"] / training["cycles_per_sample"])
    assert speedup["training_design_vs_rv32im_instructions"] == pytest.approx(
        rv["instructions_per_sample"] / training["ideal_cycles"])


def test_outputs_are_a_table_and_real_plots(benched):
    run, report = benched
    table = (run / "bench.md").read_text()
    assert "| accelerator (4 MAC lanes" in table and "RV32IM" in table and "FFDL" in table
    assert len(report["plots"]) >= 2
    for path in report["plots"]:
        data = open(path, "rb").read()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_a_golden_mismatch_reports_no_cycle_count(benched, monkeypatch):
    run, _ = benched
    before = (run / "bench.json").read_text()

    def disagreeing(*args, **kwargs):
        return {"mismatches": 1, "first_mismatch": "sample 0: label is 3 in the hardware, "
                "5 in the golden model"}

    monkeypatch.setattr(bench_flow, "simulate_run", disagreeing)
    with pytest.raises(RunError, match="disagrees with the golden model.*sample 0"):
        bench_run(run, samples=1, lanes=4)
    # Nothing was replaced.
    assert (run / "bench.json").read_text() == before


def _missing_cross_compiler(*args, **kwargs):
    raise cpu.CrossCompilerMissing("no riscv64-unknown-elf-gcc: install it with "
                                   "`apt-get install gcc-riscv64-unknown-elf`")


@pytest.fixture(scope="module")
def benched_for_a_board_without_rv32im(benched):
    """The benched run benched again, once for two tests: for the iCEBreaker, which has no
    synthesis report in the run, on a machine without the RV32IM cross compiler (both
    rows fall back without failing the bench; one bench run instead of two)."""
    run, _ = benched
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cpu, "measure_rv32im", _missing_cross_compiler)
        patch.setattr(bench_training_flow, "measure_training_rv32im", _missing_cross_compiler)
        report = bench_run(run, board="icebreaker", samples=1, lanes=4, cpu_samples=2,
                           cpu_seconds=0.1, rv32im_samples=1)
    return run, report


def test_a_missing_rv32im_compiler_skips_the_row_with_the_how_to(
        benched_for_a_board_without_rv32im):
    _, report = benched_for_a_board_without_rv32im
    assert "apt-get install gcc-riscv64-unknown-elf" in report["rv32im"]["skipped"]
    assert all(row["rv32im_instructions"] is None for row in report["variants"])
    assert report["speedup"]["vs_rv32im_instructions"] is None
    assert "apt-get install" in report["training"]["rv32im"]["skipped"]
    assert report["training"]["rv32im_instructions_per_sample"] is None
    assert report["speedup"]["training_design_vs_rv32im_instructions"] is None


@pytest.mark.parametrize(("setup", "argv", "message"), [
    (None, ["bench", "{tmp}/nope"], "no run folder"),
    ("empty", ["bench", "{tmp}/run"], "no integer model"),
])
def test_bad_input_is_refused_with_the_fix(tmp_path, capsys, setup, argv, message):
    if setup == "empty":
        (tmp_path / "run").mkdir()
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert message in capsys.readouterr().err


def test_board_without_synthesis_says_how_to_get_the_latency(
        benched_for_a_board_without_rv32im):
    run, report = benched_for_a_board_without_rv32im
    acc = report["accelerator"]
    assert acc["latency_us"] is None
    assert f"ffcl-hw synth {run} --board icebreaker" in acc["latency_note"]


def test_board_latency_comes_from_the_synthesis_report(benched):
    run, _ = benched
    report_path = run / "synth" / "ulx3s-25f" / "report.json"
    report_path.parent.mkdir(parents=True)
    # The build had 4 MAC lanes, 2 label lanes and shared multipliers: the bench measures
    # that core.
    report_path.write_text(json.dumps({"fmax_mhz": 50.0, "clock_mhz": 40.0,
                                       "meets_timing": True, "lanes": 4, "label_lanes": 2,
                                       "multipliers": "shared"}))
    try:
        report = bench_run(run, board="ulx3s-25f", samples=1, lanes=4, cpu_samples=2,
                           cpu_seconds=0.1, rv32im_samples=1)
    finally:
        report_path.unlink()
    acc = report["accelerator"]
    assert (acc["lanes"], acc["label_lanes"]) == (4, 2) and acc["synthesis_matches_lanes"]
    assert acc["shared_multipliers"]
    assert acc["cycles_per_inference"] == acc["cycles_closed_form"] == build_program(
        load_int_model(run / "model.int.npz").model, lanes=4, label_lanes=2,
        shared=True).cycles()
    assert "scaler and squares on the lanes' multipliers" in (run / "bench.md").read_text()
    assert acc["latency_us"] == pytest.approx(acc["cycles_per_inference"] / 50.0)
    assert acc["latency_at_clock_us"] == pytest.approx(acc["cycles_per_inference"] / 40.0)
    # Training: the design for that build (ECP5: block RAM), per second at its Fmax.
    training = report["training"]
    assert training["design"]["shared_multipliers"] and training["design"]["label_lanes"] == 2
    assert training["design"]["memory"] == "bram" and training["clock_mhz"] == 50.0
    assert training["design_samples_per_second"] == pytest.approx(
        50e6 / training["ideal_cycles"])


def test_a_malformed_synthesis_report_is_refused(benched):
    run, _ = benched
    report_path = run / "synth" / "ulx3s-45f" / "report.json"
    report_path.parent.mkdir(parents=True)
    report_path.write_text("{not json")
    try:
        with pytest.raises(RunError, match="not readable JSON.*ffcl-hw synth"):
            bench_run(run, board="ulx3s-45f", samples=1, lanes=4)
    finally:
        report_path.unlink()
