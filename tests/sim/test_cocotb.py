"""The exported Verilog under cocotb, on every simulator this machine has.

Each (simulator, configuration) is built once in its own folder under
build/cocotb/<xdist worker> and reused by later runs. One bench run covers every scenario
of sim/testbench.py: data-set or random images, each crossed with no-idle / idle /
back-pressure patterns, back-to-back inferences without reset, and a reset in the middle
of an inference.

Environment: FFCL_SEED seeds the random weights and images (default 0; logged);
FFCL_SIM_SAMPLES sets the images per scenario for long runs (default 3).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from golden.config import ModelConfig, TrainConfig
from golden.datasets import load_dataset
from golden.quantize import quantize
from golden.training import train
from rtl.core import Core
from sim.runner import available_simulators, build_core, run_testbench
from tests.golden.variants import make_config, random_params

SEED = int(os.environ.get("FFCL_SEED", "0"))
SAMPLES = int(os.environ.get("FFCL_SIM_SAMPLES", "3"))
SIMULATORS = available_simulators()

# (variant, MAC lanes, label lanes[, shared]): FFL, FFDL and FFCL with both topologies, lane
# counts that do not divide the layer widths, and a label datapath narrower than K; shared:
# the scaler and squares on the lanes' multipliers (the iCE40 mapping). A variant is a
# name of tests/golden/variants.py or a dict of ModelConfig fields.
CONFIGS = {
    "ffl-p3": ("ffl", 3, None),
    "ffdl-p2": ("ffdl-3layers", 2, None),
    "ffcl-adjacent-T3-p3": ("ffcl-adjacent-T3", 3, 2),
    "ffcl-top-T2-p8": ("ffcl-top-T2", 8, None),
    # Passes shorter than the tile before them: the sweep holds them (docs/cycles.md).
    "ffcl-held-p8": ({"algo": "ffcl", "hidden": (5, 12, 3), "loops": 3}, 8, None),
    "ffcl-held-p8-shared": ({"algo": "ffcl", "hidden": (5, 12, 3), "loops": 3}, 8, 3, True),
}


def _random_model(variant: str | dict, seed: int):
    if isinstance(variant, dict):
        config = ModelConfig(input_size=9, num_classes=4, theta=0.5, **variant)
    else:
        config = make_config(variant)
    rng = np.random.default_rng(seed)
    return quantize(config, random_params(config, seed), rng.uniform(0, 1, (64, 9)),
                    input_max=16)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    config = ModelConfig(algo="ffcl", input_size=64, num_classes=10, hidden=(32, 32),
                         loops=2, theta=0.25)
    params = train(config, TrainConfig(epochs=30, batch_size=64, lr=1e-2, seed=SEED),
                   data.x_train, data.y_train).params
    model = quantize(config, params, data.x_train[:500], input_max=data.pixel_max)
    return model, model.quantize_input(data.x_test[:SAMPLES])


def _run(simulator: str, core: Core, images: np.ndarray, root: Path) -> None:
    built = build_core(core, simulator, root)
    bench = run_testbench(built, images, seed=SEED, samples=len(images))
    assert bench.tests >= 10, f"only {bench.tests} scenarios ran; see {bench.log}"
    assert bench.failed == 0, (f"{bench.failed} of {bench.tests} scenarios failed "
                               f"(FFCL_SEED={SEED}); see {bench.log}")


pytestmark = pytest.mark.skipif(not SIMULATORS, reason="no cocotb simulator installed")


#: Icarus (the slower simulator) runs every configuration with ``-m slow``; the default
#: run keeps three of them there (the iCE40 mapping's shared multipliers; ``ffcl-held-p8``,
#: whose passes wait for the sweep: its shared-multiplier twin passes with a sweep that
#: never holds a pass, tried, and this one fails; and FFCL adjacent T = 3 with label lanes
#: G = 2 < K), and in Verilator FFL and FFDL. The scenarios of 3 images simulate in well
#: under a second: the cost is the build, a few seconds in Icarus and 13 or more in
#: Verilator; so each FFCL configuration runs by default under one simulator only,
#: Icarus. Opt-in in Verilator: ``ffcl-top-T2-p8`` (the top topology on 8 lanes: the
#: regression's random cases and the Amaranth simulator's tests cover it) and the three
#: that Icarus runs by default (FFCL adjacent T = 3 under Verilator by default too: the
#: regression slice's case 53, tests/sim/test_regression.py, and the same model on 3 MAC
#: and 2 label lanes behind the host link, tests/sim/test_hostlink_cocotb.py).
ICARUS_DEFAULT = ("ffcl-held-p8-shared", "ffcl-held-p8", "ffcl-adjacent-T3-p3")
VERILATOR_SLOW = ("ffcl-top-T2-p8", *ICARUS_DEFAULT)


@pytest.mark.parametrize(("config", "simulator"), [
    pytest.param(config, simulator, marks=pytest.mark.slow)
    if (simulator == "icarus" and config not in ICARUS_DEFAULT)
    or (simulator == "verilator" and config in VERILATOR_SLOW) else (config, simulator)
    for config in sorted(CONFIGS) for simulator in SIMULATORS])
def test_random_weights_on_every_scenario(simulator, config, build_root):
    core = _scenario_core(config)
    model = core.model
    rng = np.random.default_rng(SEED)
    images = rng.integers(0, model.fmt.input_max + 1, size=(SAMPLES, model.config.input_size))
    _run(simulator, core, images, build_root / f"{config}-seed{SEED}")


def _scenario_core(config: str) -> Core:
    """The core of ``CONFIGS[config]``, its random model drawn from the config's seed (so
    a test that takes the same config builds the same design, into the same folder)."""
    variant, lanes, label_lanes, *shared = CONFIGS[config]
    model = _random_model(variant, SEED + len(config))
    return Core(model, lanes=lanes, label_lanes=label_lanes, shared=bool(shared))


# Under Verilator opt-in: test_digits_test_images_on_every_scenario[icarus] runs the same
# design and images (a digits core under Verilator by default: test_hardware_flows.py's
# demo test).
@pytest.mark.parametrize("simulator", [
    pytest.param(simulator, marks=pytest.mark.slow) if simulator == "verilator" else simulator
    for simulator in SIMULATORS])
def test_digits_test_images_on_every_scenario(simulator, digits, build_root):
    model, images = digits
    _run(simulator, Core(model, lanes=8), images, build_root / f"digits-ffcl-p8-seed{SEED}")


def test_icarus_is_installed_in_ci():
    # .ci/run installs Icarus; a CI run without it would silently test one simulator.
    if os.environ.get("CI"):
        assert "icarus" in SIMULATORS, "CI must run both simulators (apt-get install iverilog)"
    assert "verilator" in SIMULATORS


@pytest.mark.skipif("verilator" not in SIMULATORS, reason="Verilator not installed")
def test_the_bench_fails_when_hardware_model_or_phases_disagree(build_root, tmp_path):
    # The checker must be able to fail: give the bench a golden model whose last label
    # weights differ from the ones baked into the hardware (a copy: the build folder's
    # own files stay as built, for the next test that reuses it). One build for both
    # checks, and the design is test_random_weights_on_every_scenario's ffdl-p2 (the
    # same model, lanes and folder): a pytest-xdist worker that runs both builds it once.
    import json

    from golden.intmodelio import load_int_model, save_int_model

    core = _scenario_core("ffdl-p2")
    images = np.random.default_rng(SEED).integers(0, 17, size=(2, 9))
    built = build_core(core, "verilator", build_root / f"ffdl-p2-seed{SEED}")
    tampered = load_int_model(built.model_file).model
    tampered.layers[-1].U[:, 0] += 1
    save_int_model(tmp_path / "tampered.int.npz", tampered)
    bench = run_testbench(built, images, testcase="run_samples", samples=2, name="tampered",
                          env={"FFCL_MODEL": str(tmp_path / "tampered.int.npz")})
    assert bench.failed == 1
    assert bench.report["errors"] == 2
    assert "score[0]" in bench.report["first_error"]
    # The phase check must be able to fail too: tell the bench the design has one lane
    # more than it has, so its closed form (cycles and phases) is another program's.
    description = tmp_path / "core.json"
    description.write_text(json.dumps(built.description | {"lanes": 3}))
    bench = run_testbench(built, images, testcase="run_samples", samples=2,
                          name="tampered-phases", env={"FFCL_CORE": str(description)})
    assert bench.failed == 1
    # Per sample one cycle-count error, and one phase error.
    assert bench.report["errors"] == 4
    assert "phase_cycles[" in bench.log.read_text()
    assert len(bench.report["phase_cycles"]) == 2
