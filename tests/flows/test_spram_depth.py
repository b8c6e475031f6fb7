# amaranth: UnusedElaboratable=no
"""``sim RUN --train --weights spram`` with a weight memory deeper than an SPRAM, for real.

The models are digits-shaped FFDL nets (64 inputs, two hidden layers of H) just big enough:
their weight memory is one word per tile of P neurons and input column, ceil(H / P) x
(64 + H) words, against an SPRAM's 16,384. No SPRAM depth is patched: the refusals come
from the real configurations, and the training core's own constructor agrees with them
(the lanes a message names build; the lanes it refuses do not).
"""

from __future__ import annotations

import numpy as np
import pytest

from ffcl_hw.cli import main
from ffcl_hw.flows.train_sim import _check_spram_depth, model_and_rule
from ffcl_hw.runs import RunError
from golden.config import ModelConfig
from golden.inttrain import TrainRule
from golden.quantize import quantize
from rtl.training_core import TrainingCore
from tests.golden.variants import random_params


def _ffdl(hidden: int):
    """A random digits-shaped FFDL integer model, 64-``hidden``-``hidden``."""
    config = ModelConfig(input_size=64, num_classes=10, algo="ffdl", hidden=(hidden, hidden))
    calibration = np.random.default_rng(0).uniform(0, 1, size=(64, 64))
    return quantize(config, random_params(config, 0), calibration, input_max=16)


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory):
    """digits FFDL 64-193-193, integer-trained for one epoch (2 s): on 3 lanes its weight
    memory is 65 x 257 = 16,705 words, the smallest 64-H-H over an SPRAM on 3 lanes
    (H = 192 takes 64 x 256 = 16,384 exactly); on 4 lanes 49 x 257 = 12,593."""
    run = tmp_path_factory.mktemp("spram-depth") / "ffdl-193"
    assert main(["train", "--arith", "int", "--algo", "ffdl", "--hidden", "193,193",
                 "--epochs", "1", "--quiet", "--out", str(run)]) == 0
    return run


DEEP = ("--weights spram: on 3 lanes the weight memory is 16,705 words, more than an "
        "SPRAM's 16,384; use --lanes 4")


def test_the_cli_refuses_it_naming_the_lanes_that_fit_and_writes_nothing(deep_run, capsys):
    before = sorted(p.name for p in deep_run.iterdir())
    status = main(["sim", str(deep_run), "--train", "--weights", "spram", "--lanes", "3",
                   "--simulator", "amaranth", "--samples", "1", "--quiet"])
    _, err = capsys.readouterr()
    assert status == 2
    assert err.strip().endswith(DEEP)
    # No report, no simulation build: the check runs before anything is built.
    assert sorted(p.name for p in deep_run.iterdir()) == before


def test_the_lanes_it_names_build_and_the_lanes_it_refuses_do_not(deep_run):
    model, rule, _, _ = model_and_rule(deep_run)
    assert rule.store_bits == 16
    with pytest.raises(RunError, match=f"^{DEEP}$"):
        _check_spram_depth(model, 3, rule.store_bits)
    _check_spram_depth(model, 4, rule.store_bits)
    # The core agrees: its SPRAM weight store refuses 16,705 words and takes 12,593.
    with pytest.raises(ValueError, match=r"holds at most 16384 words.*, not 16705$"):
        TrainingCore(model, rule, lanes=3, weights="spram")
    core = TrainingCore(model, rule, lanes=4, weights="spram")
    assert len(core.core.program.weight_words) == 12_593


def test_a_memory_of_exactly_an_sprams_depth_is_taken():
    # 64-192-192 on 3 lanes: 64 x 256 = 16,384 words, every one of the SPRAM's.
    model, rule = _ffdl(192), TrainRule(epochs=1, lr_shift=6, seed=0)
    _check_spram_depth(model, 3, rule.store_bits)
    core = TrainingCore(model, rule, lanes=3, weights="spram")
    assert len(core.core.program.weight_words) == 16_384


def test_with_no_lane_count_fitting_it_names_block_ram():
    # 64-226-226: 57 x 290 = 16,530 words on 4 lanes, the most 16-bit stored weights an
    # SPRAM word holds; 22,040 on 3, 32,770 on 2, 65,540 on 1. The core refuses them all.
    model, rule = _ffdl(226), TrainRule(epochs=1, lr_shift=6, seed=0)
    with pytest.raises(RunError, match=r"^--weights spram: on 4 lanes the weight memory is "
                                       r"16,530 words, more than an SPRAM's 16,384; no lane "
                                       r"count up to the 4 an SPRAM word holds fits: "
                                       r"simulate it in block RAM \(--weights loadable\)$"):
        _check_spram_depth(model, 4, rule.store_bits)
    for lanes, words in ((1, 65_540), (2, 32_770), (3, 22_040), (4, 16_530)):
        with pytest.raises(ValueError, match=rf"holds at most \d+ words.*, not {words}$"):
            TrainingCore(model, rule, lanes=lanes, weights="spram")
