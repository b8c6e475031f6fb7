"""The cost model against hand counts, and the K-fold saving of the label scan."""

from __future__ import annotations

import pytest

from golden.config import ModelConfig
from golden.costs import inference_cost


def _config(algo, hidden=(64, 64), D=64, K=10, **options):
    loops = options.pop("loops", 3 if algo == "ffcl" else 1)
    return ModelConfig(algo=algo, input_size=D, num_classes=K, hidden=hidden, loops=loops,
                       **options)


# (config, fair, macs, scan_steps, norm_steps, passes), counted by hand from the
# definitions in golden/costs.py for D = 64, K = 10, hidden 64, 64.
CASES = {
    # 10 passes of 64*(64+10) + 64*64; goodness of layer 2 per pass; one normalisation.
    "ffl": (_config("ffl"), False, 10 * (64 * 74 + 64 * 64), 10 * 64, 10 * 128, 10),
    "ffl-fair": (_config("ffl"), True, 64 * 64 + 10 * 64 * 64, 10 * 64, 10 * 128, 10),
    "ffl-all-layers": (_config("ffl", scoring="all"), False, 10 * (64 * 74 + 64 * 64),
                       10 * 128, 10 * 128, 10),
    "ffdl": (_config("ffdl"), False, 2 * 64 * 64, 10 * 128, 128, 1),
    # W1 x once, W2 three times, V1 on iterations 2 and 3.
    "ffcl-adjacent-T3": (_config("ffcl"), False, 64 * 64 * (1 + 3 + 2), 3 * 10 * 128,
                         3 * 128 + 2 * 128, 3),
    "ffcl-last": (_config("ffcl", readout="last"), False, 6 * 64 * 64, 10 * 128,
                  3 * 128 + 2 * 128, 3),
    "ffcl-top-3layers": (_config("ffcl", hidden=(32, 16, 8), topology="top", loops=2),
                         False, 32 * 64 + 2 * (16 * 32 + 8 * 16) + 32 * 8,
                         2 * 10 * 56, 2 * (48 + 24) + (8 + 32), 2),
    # Feedback once; iteration 2 rescans layer 1 only.
    "ffcl-goodness": (_config("ffcl", feedback="goodness", loops=2), False,
                      2 * 64 * 64 + 64 * 64, 10 * 128 + 10 * 64, 128 + 128, 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_counts_match_hand_counts(name):
    config, fair, macs, scan, norm, passes = CASES[name]
    cost = inference_cost(config, fair=fair)
    assert (cost.macs, cost.scan_steps, cost.norm_steps, cost.passes) == (
        macs, scan, norm, passes)
    assert cost.multiplies == macs + scan + norm
    assert cost.to_dict()["multiplies"] == cost.multiplies


def test_ffdl_needs_at_most_three_tenths_of_ffl_macs_on_digits():
    ratio = inference_cost(_config("ffdl")).macs / inference_cost(_config("ffl")).macs
    assert ratio <= 0.3


@pytest.mark.parametrize("hidden", [(256, 256), (500, 500)])
def test_ffdl_saves_about_k_fold_on_mnist(hidden):
    ffl = inference_cost(_config("ffl", hidden=hidden, D=784))
    ffdl = inference_cost(_config("ffdl", hidden=hidden, D=784))
    assert 9 <= ffl.macs / ffdl.macs <= 11
