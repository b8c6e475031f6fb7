"""quantize -> export-verilog -> sim, end to end through the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ffcl_hw.cli import main
from sim.lint import fsm_zero_test_lines, lint_verilog
from sim.runner import available_simulators

FAST = ["--epochs", "3", "--hidden", "12,10"]


@pytest.fixture(scope="module", params=["ffl", "ffdl", "ffcl"])
def quantized_run(request, tmp_path_factory):
    run = tmp_path_factory.mktemp("hw") / request.param
    extra = ["--loops", "2"] if request.param == "ffcl" else []
    assert main(["train", "--algo", request.param, *FAST, *extra, "--out", str(run),
                 "--quiet"]) == 0
    assert main(["quantize", str(run)]) == 0
    return run


def test_export_verilog_writes_lint_clean_verilog_and_its_description(quantized_run, capsys,
                                                                      tmp_path):
    out = tmp_path / "v"
    assert main(["export-verilog", str(quantized_run), "--lanes", "3", "--out", str(out)]) == 0
    verilog = (out / "ffcl_core.v").read_text()
    assert "module ffcl_core" in verilog
    description = json.loads((out / "ffcl_core.json").read_text())
    ports = {p["name"]: p for p in description["ports"]}
    assert ports["image__payload"]["width"] == 5          # pixels 0..16
    assert ports["image__payload"]["direction"] == "input"
    assert ports["result__valid"]["direction"] == "output"
    fields = {f["name"]: f for f in description["result_fields"]}
    assert fields["cycles"]["width"] == 32
    assert ports["result__payload"]["width"] == sum(f["width"] for f in fields.values())
    assert description["parameters"]["lanes"] == 3
    assert description["cycles_per_inference"] > 0
    assert sum(description["phase_cycles"].values()) == description["cycles_per_inference"]
    for port in description["ports"]:
        assert f" {port['name']}" in verilog or f" {port['name']};" in verilog
    status, messages = lint_verilog(out / "ffcl_core.v")
    assert status == 0, messages
    assert "%Warning" not in messages and "%Error" not in messages, messages


def test_export_verilog_of_a_core_on_shared_multipliers(quantized_run, capsys, tmp_path):
    # The iCE40 mapping: lint-clean too, and its description says which core it is.
    out = tmp_path / "v"
    assert main(["export-verilog", str(quantized_run), "--lanes", "3", "--label-lanes", "2",
                 "--multipliers", "shared", "--out", str(out)]) == 0
    description = json.loads((out / "ffcl_core.json").read_text())
    assert description["parameters"]["shared_multipliers"] is True
    dedicated = main(["export-verilog", str(quantized_run), "--lanes", "3", "--label-lanes",
                      "2", "--out", str(tmp_path / "d")])
    assert dedicated == 0
    other = json.loads((tmp_path / "d" / "ffcl_core.json").read_text())
    assert description["cycles_per_inference"] > other["cycles_per_inference"]
    status, messages = lint_verilog(out / "ffcl_core.v")
    assert status == 0 and "%Warning" not in messages, messages


def test_lint_still_reports_real_problems(tmp_path):
    # The waivers must not hide a genuine truncation in the design.
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input [7:0] a, output [3:0] y);\n  assign y = a;\nendmodule\n")
    status, messages = lint_verilog(bad)
    assert status != 0 and "WIDTHTRUNC" in messages


class _ThreeStates(wiring.Component):
    """An Amaranth FSM of three states (a 2-bit state register), with or without a test
    of its own 3-bit counter for 0."""

    def __init__(self, *, own_zero_test: bool) -> None:
        self.own_zero_test = own_zero_test
        super().__init__({"go": In(1), "busy": Out(1), "first": Out(1)})

    def elaborate(self, platform):
        m = Module()
        count = Signal(3)
        m.d.sync += count.eq(count + 1)
        m.d.comb += self.first.eq(count == 0 if self.own_zero_test else count == 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.go):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                m.next = "DONE"
            with m.State("DONE"):
                m.next = "IDLE"
        return m


def test_lint_waives_only_the_fsms_own_test_for_state_0(tmp_path):
    # Amaranth writes the FSM's "state == 0" as a logical NOT of the 2-bit register: waived
    # on that line only, so the design's own "count == 0", written the same way, is not.
    path = tmp_path / "fsm.v"
    path.write_text(verilog.convert(_ThreeStates(own_zero_test=False), name="fsm"))
    assert len(fsm_zero_test_lines(path.read_text())) == 1
    status, messages = lint_verilog(path)
    assert status == 0 and "%Warning" not in messages, messages
    path.write_text(verilog.convert(_ThreeStates(own_zero_test=True), name="fsm"))
    status, messages = lint_verilog(path)
    warnings = [line for line in messages.splitlines() if line.startswith("%Warning")]
    assert status != 0 and len(warnings) == 1, messages
    assert "WIDTHTRUNC" in warnings[0] and "'count'" in warnings[0], messages


@pytest.mark.parametrize("simulator", ["amaranth", *available_simulators()])
def test_sim_is_bit_exact_and_writes_its_report(quantized_run, capsys, simulator, tmp_path):
    waves = tmp_path / ("w.vcd" if simulator == "amaranth" else "w.fst")
    status = main(["sim", str(quantized_run), "--simulator", simulator, "--samples", "3",
                   "--lanes", "2", "--quiet", "--waves", str(waves)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert waves.stat().st_size > 1000
    report = json.loads((quantized_run / "sim.json").read_text())
    assert report["simulator"] == simulator and report["samples"] == 3
    assert report["inferences_per_second"] > 0
    assert report["mismatches"] == 0
    cycles = report["cycles_per_inference"]
    assert cycles["min"] == cycles["max"] == report["cycles_formula"]
    # Cycles per phase from the core's phase output: the closed form, adding up to it.
    assert report["phase_cycles"] == report["phase_cycles_formula"]
    assert sum(report["phase_cycles"].values()) == report["cycles_formula"]
    assert report["phase_cycles"]["matrix_vector"] > 0
    assert "cycles per phase  matrix vector" in out
    assert 0 <= report["accuracy"] <= 1
    assert report["macs_per_inference"] > 0
    assert "bit-exact" in out


def test_sim_exits_non_zero_naming_the_first_mismatch(quantized_run, capsys, monkeypatch):
    import golden.intmodel as intmodel

    real_run = intmodel.IntModel.run

    def off_by_one(self, images):
        result = real_run(self, images)
        result.scores[1, 2] += 1
        return result

    monkeypatch.setattr(intmodel.IntModel, "run", off_by_one)
    status = main(["sim", str(quantized_run), "--simulator", "amaranth", "--samples", "2",
                   "--lanes", "2", "--quiet"])
    err = capsys.readouterr().err
    assert status == 1
    assert "sample 1: score[2]" in err
    report = json.loads((quantized_run / "sim.json").read_text())
    assert report["mismatches"] == 1 and report["cycles_per_inference"] is None


@pytest.mark.parametrize(("argv", "message"), [
    (["export-verilog", "{run}", "--lanes", "0", "--out", "x"], "not a positive integer"),
    (["sim", "{run}", "--simulator", "modelsim"], "invalid choice: 'modelsim'"),
    (["sim", "{run}", "--samples", "0"], "not a positive integer"),
])
def test_bad_hardware_options_exit_2(quantized_run, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main([a.format(run=quantized_run) for a in argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_sim_names_the_waveform_format_it_writes(quantized_run, capsys):
    assert main(["sim", str(quantized_run), "--simulator", "verilator", "--waves", "x.vcd",
                 "--quiet"]) == 2
    assert "verilator writes FST waveforms" in capsys.readouterr().err


def test_hardware_flows_refuse_a_run_without_an_integer_model(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--algo", "ffdl", *FAST, "--out", str(run), "--quiet"]) == 0
    assert main(["export-verilog", str(run), "--out", str(tmp_path / "v")]) == 2
    assert "ffcl-hw quantize" in capsys.readouterr().err
    assert main(["sim", str(run), "--quiet"]) == 2
    assert "ffcl-hw quantize" in capsys.readouterr().err


def test_sim_refuses_an_integer_model_from_another_run(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "--algo", "ffdl", *FAST, "--out", str(a), "--quiet"]) == 0
    assert main(["train", "--algo", "ffdl", "--epochs", "3", "--hidden", "8,8", "--out",
                 str(b), "--quiet"]) == 0
    assert main(["quantize", str(b)]) == 0
    (a / "model.int.npz").write_bytes((b / "model.int.npz").read_bytes())
    assert main(["sim", str(a), "--quiet"]) == 2
    assert f"{a / 'model.int.npz'} was quantized from the float model of {b.resolve()}" \
        in capsys.readouterr().err


def test_demo_trains_quantizes_and_simulates(tmp_path, capsys, monkeypatch):
    # The simulated training core's Verilator build takes one to two minutes: the default
    # run has the demo's last step train one sample in Amaranth's simulator instead
    # (test_demo_trains_on_the_simulated_chip_in_verilator runs it as shipped). The
    # bench's CPU timings (2 s each by default, 25 of the demo's 60 s) get 0.1 s each:
    # what they time, not how long, is what the demo's result depends on.
    monkeypatch.setattr("ffcl_hw.cli.DEMO_TRAIN_SIMULATOR", "amaranth")
    monkeypatch.setattr("ffcl_hw.cli.BENCH_CPU_SECONDS", 0.1)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--samples", "2", "--quiet",
                 "--train-samples", "1"]) == 0
    run = tmp_path / "demo"
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"int_test_accuracy", "float_test_accuracy"} <= set(metrics)
    # The digits target: the default FFCL model reaches at least 96 %.
    assert metrics["algo"] == "ffcl" and metrics["loops"] == 3
    assert metrics["test_accuracy"] >= 0.96
    report = json.loads((run / "sim.json").read_text())
    assert report["mismatches"] == 0 and report["samples"] == 2
    assert np.isclose(report["lane_utilization"], 3072 / report["matrix_cycles"])
    # The demo's last step trains the same network with the on-chip integer rule.
    trained = json.loads((tmp_path / "demo-int" / "metrics.json").read_text())
    assert trained["arith"] == "int" and trained["int_test_accuracy"] >= 0.96
    # Then the simulated training core continues that FFCL run.
    chip = json.loads((tmp_path / "demo-int" / "train_sim.json").read_text())
    assert chip["samples"] == 1 and chip["mismatch"] is None
    assert chip["lr_shift"] == chip["lr_range"][1]
    assert chip["test_accuracy"] == chip["golden_test_accuracy"] >= 0.9
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_trains_on_the_simulated_chip_in_verilator(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--samples", "2", "--quiet",
                 "--train-samples", "5"]) == 0
    chip = json.loads((tmp_path / "demo-int" / "train_sim.json").read_text())
    assert chip["simulator"] == "verilator" and chip["samples"] == 5
    assert chip["mismatch"] is None
    assert chip["test_accuracy"] == chip["golden_test_accuracy"]


def test_synth_refuses_a_design_that_does_not_fit_before_any_tool_runs(quantized_run, capsys):
    status = main(["synth", str(quantized_run), "--board", "icebreaker", "--lanes", "16"])
    err = capsys.readouterr().err
    assert status == 2
    assert "does not fit icebreaker" in err and "has 8" in err
    assert not (quantized_run / "synth" / "icebreaker").exists()


def test_synth_refuses_an_unknown_board(quantized_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", str(quantized_run), "--board", "de10"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'de10'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One quantized FFDL run (hidden 12,10) for the refusals that need no algorithm sweep."""
    run = tmp_path_factory.mktemp("small") / "ffdl"
    assert main(["train", "--algo", "ffdl", *FAST, "--out", str(run), "--quiet"]) == 0
    assert main(["quantize", str(run)]) == 0
    return run


def test_export_verilog_refuses_an_out_that_is_a_file(small_run, tmp_path, capsys):
    for out in (tmp_path / "file", tmp_path / "file" / "below"):
        (tmp_path / "file").write_text("mine")
        assert main(["export-verilog", str(small_run), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / 'file'} is a file, not a folder" in err
        assert "choose another --out" in err
        assert (tmp_path / "file").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.parametrize("command", ["sim", "export-verilog"])
def test_more_lanes_than_the_widest_layer_are_refused(small_run, tmp_path, capsys, command):
    extra = ["--simulator", "amaranth", "--quiet"] if command == "sim" else [
        "--out", str(tmp_path / "v")]
    assert main([command, str(small_run), "--lanes", "1000", *extra]) == 2
    err = capsys.readouterr().err
    assert "--lanes 1000 is more than the widest layer's 12 neurons" in err
    assert "use --lanes 12 or fewer" in err
    assert not (tmp_path / "v").exists()


def test_the_amaranth_simulator_takes_a_core_of_wide_signals():
    # 160 lanes: the lanes' shift-out bank is a signal of thousands of bits, whose mask
    # has more decimal digits than Python converts by default (4300; 640 here, the least
    # it may be set to, so that a small core shows it).
    import sys

    from golden.quantize import quantize
    from rtl.core import Core
    from sim.amaranth_sim import run_core
    from tests.golden.variants import make_config, random_params

    config = make_config("ffdl", num_classes=3)
    config = type(config)(**{**config.to_dict(), "hidden": (160,)})
    rng = np.random.default_rng(0)
    model = quantize(config, random_params(config, 1), rng.random((32, 9)), input_max=16)
    images = model.quantize_input(rng.random((1, 9)))
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        result, = run_core(Core(model, lanes=160), images)
        assert sys.get_int_max_str_digits() == 640
    finally:
        sys.set_int_max_str_digits(limit)
    golden = model.run(images)
    assert result.label == int(golden.labels[0])
    assert list(result.scores) == [int(v) for v in golden.scores[0]]


def test_ctrl_c_in_the_amaranth_simulation_stops_it_cleanly(small_run, monkeypatch):
    import gc
    import os
    import signal
    import sys
    import threading

    from ffcl_hw.flows.simulate import simulate_run

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    done_images = []

    def progress(done):
        done_images.append(done)
        if done == 1:
            # Ctrl-C lands at whatever the simulator is doing a moment later.
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()

    (small_run / "sim.json").unlink(missing_ok=True)
    with pytest.raises(KeyboardInterrupt):
        simulate_run(small_run, simulator="amaranth", samples=200, lanes=2,
                     progress=progress)
    gc.collect()
    assert unraisable == []
    assert len(done_images) < 200 and not (small_run / "sim.json").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--netlist", "icebreaker", "--simulator", "icarus"],
     "--simulator does not go with --netlist"),
    (["--netlist", "ulx3s-25f", "--waves", "w.fst"], "--waves does not go with --netlist"),
    (["--weights", "rom"], "--weights goes with --netlist BOARD or --train only"),
])
def test_sim_refuses_options_the_netlist_simulation_does_not_take(small_run, capsys, argv,
                                                                  message):
    (small_run / "sim.json").unlink(missing_ok=True)
    assert main(["sim", str(small_run), *argv, "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (small_run / "sim.json").exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """FFL on 4x4 digits with one hidden layer of 4: a netlist that simulates in seconds."""
    run = tmp_path_factory.mktemp("tiny") / "ffl"
    assert main(["train", "--algo", "ffl", "--resize", "4", "--hidden", "4", "--epochs", "2",
                 "--out", str(run), "--quiet"]) == 0
    assert main(["quantize", str(run)]) == 0
    return run


# Slow (about a minute with its synthesis): tests/sim/test_netlist.py runs both boards'
# netlists in the default run; this one checks the command line around them.
@pytest.mark.slow
@pytest.mark.skipif("icarus" not in available_simulators(), reason="Icarus missing")
def test_sim_netlist_simulates_the_ulx3s_netlist_bit_exact(tiny_run, capsys):
    # The ULX3S's weights are in DP16KD initialised by the bitstream: no load, so the
    # shortest gate-level run through the command line (iCE40 with its SPRAM load:
    # tests/sim/test_netlist.py, and opt-in below).
    assert main(["sim", str(tiny_run), "--netlist", "ulx3s-25f", "--samples", "2",
                 "--quiet"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    report = json.loads((tiny_run / "sim.json").read_text())
    assert report["simulator"] == "netlist-ulx3s-25f" and report["samples"] == 2
    assert report["mismatches"] == 0 and report["load_cycles"] is None
    assert report["cycles_per_inference"]["max"] == report["cycles_formula"]
    assert report["phase_cycles"] is None
    assert report["netlist"]["cells"]["MULT18X18D"] > 0
    assert report["weights"] == "rom" and report["netlist"]["divisor"] == 4
    assert "gate-level simulation of the ulx3s-25f netlist" in out and "bit-exact" in out


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """FFCL 64-16-16, T=2 on the digits: the opt-in gate-level runs' model."""
    run = tmp_path_factory.mktemp("digits") / "ffcl"
    assert main(["train", "--algo", "ffcl", "--hidden", "16,16", "--loops", "2", "--epochs",
                 "20", "--out", str(run), "--quiet"]) == 0
    assert main(["quantize", str(run)]) == 0
    return run


# About 5 minutes of CPU on iCE40 (393 LOAD writes: the weights into SPRAM over the link),
# under a minute on ECP5, plus 20-60 s of synthesis each.
@pytest.mark.slow
@pytest.mark.skipif("icarus" not in available_simulators(), reason="Icarus missing")
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-25f"])
def test_sim_netlist_on_digits_test_images(digits_run, board, capsys):
    assert main(["sim", str(digits_run), "--netlist", board, "--samples", "5",
                 "--quiet"]) == 0, capsys.readouterr().err
    report = json.loads((digits_run / "sim.json").read_text())
    assert report["simulator"] == f"netlist-{board}" and report["samples"] == 5
    assert report["mismatches"] == 0
    if board == "icebreaker":
        assert report["weights"] == "spram" and report["load_cycles"] > 0
        assert report["netlist"]["cells"]["SB_SPRAM256KA"] == 4
        assert report["netlist"]["cells"]["SB_MAC16"] == report["lanes"] == 8
        assert "weights loaded over the host link" in capsys.readouterr().out
    else:
        assert report["netlist"]["cells"]["MULT18X18D"] > 0
        assert report["netlist"]["cells"]["DP16KD"] > 0
