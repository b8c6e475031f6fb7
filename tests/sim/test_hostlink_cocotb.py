"""The host library end to end against the host link's Verilog, under cocotb + Verilator.

The cocotb side is :mod:`sim.hostlink_testbench`; this builds ``HostLink(Core(A,
weights="loadable", banks=...))`` with :mod:`sim.runner` (one build folder per Verilog hash
under build/cocotb/<xdist worker>), names the host library it drives (ffcl_hw.device) and
hands the bench model B (A's configuration, other weights) to load
at run time and model C (another configuration) whose load must be refused. The default
run builds the two-bank core (everything the one-bank core does, and a failed load keeps
the model in use); the one-bank core's Verilog is opt-in (``pytest -m slow``): its
protocol differences are covered in Amaranth's simulator (tests/rtl/test_host_link.py).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from golden.config import ModelConfig
from golden.intmodelio import save_int_model
from golden.inttrain import TrainRule
from rtl.core import Core
from rtl.host_link import HostLink
from rtl.training_core import TrainingCore
from sim.link_faults import FAULTS
from sim.runner import (
    available_simulators,
    build_core,
    build_design,
    run_testbench,
    run_tests,
)
from tests.golden.variants import reweighted
from tests.rtl.test_core import _random_model
from tests.rtl.test_training_core import D, K, make_model

SEED = int(os.environ.get("FFCL_SEED", "0"))
SAMPLES = int(os.environ.get("FFCL_SIM_SAMPLES", "3"))
#: Small divisor and timeout: the line runs at the UART's real bit timing, just few cycles.
#: 8, not 4: at 4 a clock cycle is a quarter bit, too coarse for the fault table's
#: senders 3 % fast (tests/rtl/test_link_faults.py).
LINK = {"divisor": 8, "timeout_bits": 24}
#: The scenarios, the fault table's rows and the late reply.
SCENARIOS = 5 + len(FAULTS) + 1


@pytest.mark.skipif("verilator" not in available_simulators(), reason="Verilator missing")
@pytest.mark.parametrize("banks", [2, pytest.param(1, marks=pytest.mark.slow)])
def test_the_host_library_drives_the_host_link_verilog(banks, tmp_path, build_root):
    model_a = _random_model("ffcl-adjacent-T3", 40 + SEED)
    model_b = reweighted(model_a, 41 + SEED)
    model_c = _random_model("ffdl", 42 + SEED)
    core = Core(model_a, lanes=3, label_lanes=2, weights="loadable", banks=banks)
    top = HostLink(core, **LINK)
    built = build_core(core, "verilator", build_root / "host-link", top=top,
                       toplevel="ffcl_host_link")
    save_int_model(tmp_path / "b.int.npz", model_b)
    save_int_model(tmp_path / "c.int.npz", model_c)
    rng = np.random.default_rng(SEED)
    images = rng.integers(0, model_a.fmt.input_max + 1, size=(SAMPLES, model_a.config.input_size))
    env = {"FFCL_LINK": json.dumps({**LINK, "banks": banks}),
           "FFCL_LOAD_MODEL": str(tmp_path / "b.int.npz"),
           "FFCL_OTHER_MODEL": str(tmp_path / "c.int.npz"),
           "FFCL_HOST_LIBRARY": "ffcl_hw.device"}
    bench = run_testbench(built, images, module="sim.hostlink_testbench",
                          name=f"link-banks{banks}-seed{SEED}", seed=SEED, env=env)
    assert bench.tests == SCENARIOS, f"{bench.tests} scenarios ran; see {bench.log}"
    assert bench.failed == 0, f"{bench.failed} of {bench.tests} failed; see {bench.log}"


#: The training link's models: a tiny FFDL (9-7-5, K = 4) and an FFCL T = 2 whose layer 1
#: hears layer 2 (V read back with W), trained at every iteration (the rule's default:
#: records carry the training pass's label), both on 3 lanes (ragged tiles).
TRAINING_MODELS = {
    "ffdl": ModelConfig(algo="ffdl", input_size=D, num_classes=K, hidden=(7, 5), theta=0.5),
    "ffcl": ModelConfig(algo="ffcl", input_size=D, num_classes=K, hidden=(5, 4), loops=2,
                        topology="top", theta=0.5),
}


@pytest.mark.skipif("verilator" not in available_simulators(), reason="Verilator missing")
# FFCL's first run took 106 s here, its Verilator build included (13 s with the build
# reused; FFDL's first run 62 s): opt-in; the default run checks FFCL over the link on
# the board double (tests/flows/test_link_training.py, test_board_train.py).
@pytest.mark.parametrize("algo", ["ffdl", pytest.param("ffcl", marks=pytest.mark.slow)])
def test_the_host_library_trains_the_training_link_verilog(algo, tmp_path, build_root):
    # TRAIN frames of 2 samples.
    model = make_model(TRAINING_MODELS[algo], 11 + SEED)
    rule = TrainRule(epochs=1, lr_shift=4, seed=7 + SEED)
    top = HostLink(TrainingCore(model, rule, lanes=3), train_block=2, **LINK)
    folder = "host-link-training" + ("" if algo == "ffdl" else f"-{algo}")
    built = build_design(top, "verilator", build_root / folder,
                         toplevel="ffcl_host_link_training")
    save_int_model(tmp_path / "model.int.npz", model)
    setup = {"model": str(tmp_path / "model.int.npz"),
             "rule": {"epochs": 1, "lr_shift": rule.lr_shift, "seed": rule.seed},
             "lanes": 3, "block": 2, "seed": SEED, **LINK}
    # The bench's other test is the gate-level one (tests/sim/test_netlist_training.py).
    run = run_tests(built, "sim.hostlink_training_testbench", name=f"train-{algo}-seed{SEED}",
                    testcase="train_read_back_and_refusals",
                    env={"FFCL_TRAIN": json.dumps(setup), "FFCL_HOST_LIBRARY": "ffcl_hw.device"})
    assert run.tests == 1, f"{run.tests} tests ran; see {run.log}"
    assert run.failed == 0, f"see {run.log}"


#: SPRAM training links on a 9-5-4 FFDL model: (lanes, store_bits, TrainingCore options).
#: 2 lanes of 16 bits make a 32-bit word, kept in two banks (even and odd words); 4 a
#: 64-bit word in one; the small-part options (every multiplier on the MAC lanes, label
#: lanes G = 2 < K, one b and U lane, the update's input norms from the forward pass, a
#: RESULT's scores read through the argmax's select) with 4 lanes of 8 bits, two banks.
SPRAM_CORES = {
    "banked": (2, 16, {}),
    "single": (4, 16, {}),
    "small-part": (4, 8, {"forward_multipliers": "shared", "signal_multipliers": "shared",
                          "label_lanes": 2, "bias_label_lanes": 1,
                          "input_norm": "forward", "score_port": True}),
}
#: Their line: 4 cycles a bit (no skewed sender here), since the load's bytes are most of
#: the simulated time (Icarus: 42 s of simulation at divisor 8).
SPRAM_LINK = {"divisor": 4, "timeout_bits": 24}


@pytest.mark.parametrize("simulator", [
    "icarus", pytest.param("verilator", marks=pytest.mark.slow)])
@pytest.mark.parametrize("case", ["banked", pytest.param("single", marks=pytest.mark.slow),
                                  pytest.param("small-part", marks=pytest.mark.slow)])
def test_the_host_library_loads_then_trains_an_spram_training_link(case, simulator, tmp_path,
                                                                   build_root):
    if simulator not in available_simulators():
        pytest.skip(f"{simulator} missing")
    config = ModelConfig(algo="ffdl", input_size=D, num_classes=K, hidden=(5, 4), theta=0.5)
    model = make_model(config, 13 + SEED)
    lanes, store_bits, options = SPRAM_CORES[case]
    rule = TrainRule(epochs=1, lr_shift=4, seed=7 + SEED, store_bits=store_bits)
    core = TrainingCore(model, rule, lanes=lanes, weights="spram", **options)
    assert core.core.memories.weight_store.port == ("single" if case == "single" else "banked")
    # SPRAM comes up empty: the link refuses TRAIN, IMAGE and READ until a load commits.
    # The link is lean, as the one the flows build around an SPRAM core
    # (ffcl_hw.flows.synth_training.training_link: the TRAIN records in the sample
    # buffer).
    top = HostLink(core, train_block=2, initialised=False, lean=True, **SPRAM_LINK)
    built = build_design(top, simulator, build_root / f"host-link-training-spram-{case}",
                         toplevel="ffcl_host_link_training")
    save_int_model(tmp_path / "model.int.npz", model)
    setup = {"model": str(tmp_path / "model.int.npz"),
             "rule": {"epochs": 1, "lr_shift": rule.lr_shift, "seed": rule.seed,
                      "store_bits": store_bits},
             "lanes": lanes, "block": 2, "seed": SEED, "weights": "spram",
             "options": options, **SPRAM_LINK}
    run = run_tests(built, "sim.hostlink_training_testbench",
                    name=f"train-spram-{case}-{simulator}-seed{SEED}", testcase="load_then_train",
                    env={"FFCL_TRAIN": json.dumps(setup), "FFCL_HOST_LIBRARY": "ffcl_hw.device"})
    assert run.tests == 1, f"{run.tests} tests ran; see {run.log}"
    assert run.failed == 0, f"see {run.log}"
