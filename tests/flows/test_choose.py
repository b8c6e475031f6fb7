"""The core a board gets by default: the fewest cycles per inference that fit."""

from __future__ import annotations

import pytest

from ffcl_hw.flows.choose import choose_core, lane_candidates
from ffcl_hw.flows.synth import FitError, check_fit
from rtl.program import build_program
from tests.flows.test_synth import _model


def test_lane_candidates_are_where_a_layer_needs_one_pass_fewer():
    # 256 neurons: 1 pass at 256 lanes, 2 at 128, 3 at 86, 4 at 64 ...
    assert lane_candidates([256], 156)[:4] == [128, 86, 64, 52]
    assert lane_candidates([10], 10) == [10, 5, 4, 3, 2, 1]
    assert lane_candidates([10], 2) == [2, 1]
    # Two layers: either one's pass counts.
    assert set(lane_candidates([64, 48], 64)) >= {64, 48, 32, 24, 22, 16}


def test_icebreaker_gets_every_multiplier_as_a_lane_and_two_label_lanes():
    choice = choose_core(_model(64, (64, 64)), "icebreaker")
    assert (choice.lanes, choice.label_lanes, choice.multipliers, choice.weights) == \
        (8, 2, "shared", "spram")
    assert set(choice.chosen) == {"lanes", "label_lanes", "multipliers", "weights"}
    # What it chose fits, and one lane more does not.
    check_fit(_model(64, (64, 64)), "icebreaker", lanes=8, label_lanes=2, weights="spram",
              shared=True)
    with pytest.raises(FitError):
        check_fit(_model(64, (64, 64)), "icebreaker", lanes=9, label_lanes=2,
                  weights="spram", shared=True)


def test_the_85f_gets_the_widest_array_its_block_ram_holds():
    # MNIST 784-256-256: 128 lanes (2 passes per layer) need more block RAM than the 85F
    # has, 86 (3 passes) fit, and every label lane has a multiplier of its own.
    model = _model(784, (256, 256))
    choice = choose_core(model, "ulx3s-85f")
    assert (choice.lanes, choice.label_lanes, choice.multipliers, choice.weights) == \
        (86, 10, "dedicated", "rom")
    assert choice.cycles == build_program(model, lanes=86, label_lanes=10).cycles()
    with pytest.raises(FitError, match="block RAMs"):
        check_fit(model, "ulx3s-85f", lanes=128, label_lanes=10)


def test_an_unpinned_ecp5_core_gets_at_most_eight_lanes():
    # Digits on the 25F: 13 lanes would fit the multipliers and take the fewest cycles,
    # but missed 75 MHz without the floorplan; 8 met it.
    model = _model(64, (64, 64))
    choice = choose_core(model, "ulx3s-25f")
    assert (choice.lanes, choice.label_lanes, choice.multipliers) == (8, 10, "dedicated")
    check_fit(model, "ulx3s-25f", lanes=13, label_lanes=10)
    # Given, 13 lanes are built as asked.
    assert choose_core(model, "ulx3s-25f", lanes=13).lanes == 13


def test_a_given_option_is_kept_and_the_rest_chosen_around_it():
    model = _model(64, (64, 64))
    choice = choose_core(model, "ulx3s-25f", lanes=4)
    assert choice.lanes == 4 and "lanes" not in choice.chosen
    # 4 lanes leave 21 of the 25F's 28 multipliers: every label gets a lane.
    assert choice.label_lanes == 10 and choice.multipliers == "dedicated"
    # Fewer cycles than any other label-lane count with those 4 lanes.
    for g in (1, 2, 5):
        assert choice.cycles < build_program(model, lanes=4, label_lanes=g).cycles()


def test_a_model_that_fits_nowhere_is_refused_with_the_numbers():
    with pytest.raises(FitError, match="does not fit icebreaker"):
        choose_core(_model(784, (512, 512)), "icebreaker")
