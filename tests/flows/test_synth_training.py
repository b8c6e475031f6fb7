# amaranth: UnusedElaboratable=no
"""``ffcl-hw synth RUN --train``: refusals before any tool, and the flow's report on the
stand-in toolchain (tests/flows/fake_toolchain.py; the real tools are exercised by
tests/flows/test_synth.py's Yosys cell counts of a training core)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pytest

from ffcl_hw.cli import _core_line, _print_synth, main
from ffcl_hw.flows.synth import (
    FitError,
    _build_command,
    check_fit,
    find_reports,
    synthesis_table,
)
from ffcl_hw.flows.synth_training import (
    choose_training_core,
    ice40_lane_candidates,
    synth_training_run,
    training_core,
    training_folder,
    training_lane_candidates,
)
from rtl.training_core import TrainingCore
from tests.flows.conftest import TINY
from tests.flows.fake_toolchain import FMAX
from tests.flows.test_sweep import fake_tools  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def int_run(tiny_int_run):
    return tiny_int_run


def _nothing_written(run) -> bool:
    return not (run / "synth").exists() or not any((run / "synth").iterdir())


@pytest.mark.parametrize(("argv", "message"), [
    # On the UP5K the forward pass borrows three MAC lanes; update lanes of their own
    # are too many multipliers for its 8.
    (["--board", "icebreaker", "--lanes", "2"],
     "needs at least 3 lanes, not 2: its forward pass scales on two MAC lanes' "
     "multipliers and squares on a third"),
    # (The input scaler only scales there: input_norm="forward", 2 multipliers.)
    (["--board", "icebreaker", "--multipliers", "dedicated"],
     "needs 13 multipliers (mac lanes 3, update lanes 1, learning signal 6, input scaler 2"),
    (["--board", "ulx3s-85f", "--weights", "rom"], "--weights does not go with --train"),
    (["--board", "ulx3s-85f", "--label-lanes", "2"], "--label-lanes does not go with --train"),
    (["--board", "ulx3s-85f", "--banks", "2"], "--banks does not go with --train"),
    (["--board", "ulx3s-85f", "--floorplan", "on"], "--floorplan does not go with --train"),
])
def test_refusals_exit_2_before_any_tool(int_run, capsys, argv, message):
    capsys.readouterr()
    assert main(["synth", str(int_run), "--train", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    if "dedicated" in argv:
        # Both SPRAM lane counts were tried (16-bit stored weights: 48 and 64-bit words);
        # the build is told to borrow the MAC lanes' multipliers.
        assert "icebreaker has 8" in err and "--multipliers shared" in err
        assert err.rstrip().endswith("Neither 3 nor 4 lanes fit")
    assert _nothing_written(int_run)


def test_an_ffl_run_is_refused_for_training(tmp_path, capsys):
    run = tmp_path / "ffl"
    assert main(["train", "--algo", "ffl", *TINY, "--out", str(run)]) == 0
    assert main(["quantize", str(run)]) == 0
    capsys.readouterr()
    assert main(["synth", str(run), "--board", "ulx3s-85f", "--train"]) == 2
    err = capsys.readouterr().err
    assert "FFL run: the training core trains FFDL and FFCL models" in err
    assert "without --train" in err
    assert _nothing_written(run)


@pytest.mark.usefixtures("fake_tools")
def test_the_training_build_reports_the_engine_and_the_cost_of_learning(int_run, capsys):
    report = synth_training_run(int_run, board="ulx3s-85f")
    # One placement seed unless asked (a sweep waits for its slowest router1 run).
    assert [s["seed"] for s in report["seeds"]] == [1]
    out = training_folder(int_run, "ulx3s-85f")
    assert out == int_run / "synth" / "ulx3s-85f-train"
    saved = json.loads((out / "report.json").read_text())
    assert saved == json.loads(json.dumps({k: v for k, v in report.items() if k != "report"}))
    # The default 8 lanes, capped at the widest layer (6 neurons), and said so.
    assert report["lanes"] == 6 and report["chosen"]["options"] == {"lanes": 6}
    assert "capped at the widest layer (6 neurons)" in report["chosen"]["why"]
    training = report["training"]
    # The update lanes on the MAC lanes' multipliers unless asked; no small-part option.
    assert training["multipliers"] == "shared" and training["lean_signal"] is False
    assert training["lean_link"] is False and training["score_port"] is False
    assert training["fit"]["update_multipliers"] == "shared"
    assert training["fit"]["multipliers"]["update_lanes"] == 0
    model, rule = _model_and_rule_of(int_run)
    core = TrainingCore(model, rule, lanes=6)
    assert training["cycles_per_sample"] == core.training_cycles()
    assert training["samples_per_second"] == round(FMAX[1] * 1e6 / core.training_cycles(), 1)
    assert training["rule"]["store_bits"] == rule.store_bits
    assert "trained with" in training["rule"]["source"]
    # The engine's counts and the inference-only core's, from the fit check.
    assert training["fit"] == report["fit"]["training"]
    assert sum(training["fit"]["multipliers"].values()) > 0
    assert training["fit"]["inference_core"]["multipliers"] \
        == (report["fit"]["multipliers"]["needed"] - sum(training["fit"]["multipliers"].values())
            - training["fit"]["link_multipliers"])
    assert report["floorplan"] is None
    # Routed with router1 (router2, the ECP5 default, did not converge on a training core).
    nextpnr = next(c for c in json.loads((out / "build_ffcl_top.json").read_text())["commands"]
                   if "nextpnr" in c[0])
    assert nextpnr[nextpnr.index("--router") + 1] == "router1" and "router2" not in nextpnr
    # synth-table finds it beside an inference build and names the command.
    assert find_reports([int_run]) == [out / "report.json"]
    page = synthesis_table(find_reports([int_run]), command="ffcl-hw synth-table RUN")
    # One seed is a training build's default: left out, as the user left it.
    assert f"`ffcl-hw synth {int_run} --board ulx3s-85f --train`" in page
    # The design space keeps a training core apart from an inference core of its lanes.
    assert "| loadable, training core |" in page
    # A dedicated build's command says so (shared is the default, left out).
    dedicated = {**saved, "training": {**saved["training"], "multipliers": "dedicated"}}
    assert _build_command(dedicated).endswith("--train --multipliers dedicated")
    two = {**saved, "seeds": [{**saved["seeds"][0], "seed": s} for s in (1, 2)]}
    assert _build_command(two).endswith("--train --seeds 2")
    # What synth prints of it: the MAC lanes lent to the update lanes.
    capsys.readouterr()
    _print_synth(argparse.Namespace(run=int_run), report)
    assert (f"  core           6 MAC lanes (the training engine's update lanes borrow their "
            f"multipliers), {report['label_lanes']} label lanes, the scaler and squares on "
            f"dedicated multipliers") in capsys.readouterr().out


@pytest.mark.parametrize(("training", "line"), [
    (None, "8 MAC lanes, 5 label lanes, shared multipliers, 5,530 cycles per inference"),
    ({"multipliers": "shared"},
     "8 MAC lanes (the training engine's update lanes borrow their multipliers), 5 label "
     "lanes, the scaler and squares on dedicated multipliers, 5,530 cycles per inference"),
    ({"multipliers": "dedicated"},
     "8 MAC lanes, 5 label lanes, the scaler and squares on dedicated multipliers, 5,530 "
     "cycles per inference"),
])
def test_the_core_line_says_who_uses_the_mac_lanes_multipliers(training, line):
    # synth's summary of an inference build names where the scaler and squares multiply;
    # a training build's core is "dedicated" there (the training report's multipliers)
    # while its update lanes may borrow the MAC lanes': the line says both.
    report = {"lanes": 8, "label_lanes": 5, "cycles_per_inference": 5530,
              "multipliers": "shared" if training is None else "dedicated"}
    if training is not None:
        report["training"] = training
    assert _core_line(report) == line


def _model_and_rule_of(run):
    from ffcl_hw.flows.train_sim import model_and_rule

    model, rule, _, _ = model_and_rule(run)
    return model, rule


def _mnist_256(store_bits: int):
    import numpy as np

    from golden.config import ModelConfig
    from golden.inttrain import TrainRule, initial_model

    config = ModelConfig(algo="ffdl", input_size=784, num_classes=10, hidden=(256, 256),
                         theta=0.25)
    model = initial_model(config, np.random.default_rng(0).random((20, 784)) * 16,
                          input_max=16, seed=0)
    return model, TrainRule(epochs=2, lr_shift=6, lr_steps=(1,), store_bits=store_bits)


def test_the_lane_candidates_start_at_the_default_then_wider_then_narrower():
    assert training_lane_candidates(256) == [8, *range(9, 17), *range(7, 0, -1)]
    assert training_lane_candidates(10) == [8, 9, 10, 7, 6, 5, 4, 3, 2, 1]
    assert training_lane_candidates(6) == [6, 5, 4, 3, 2, 1]


def test_the_icebreaker_lane_candidates_take_the_fewest_lanes_first():
    # At least 3 lanes, then up to the most whose word fits 64 bits (one bank).
    assert ice40_lane_candidates(8) == [3, 4, 5, 6, 7, 8]
    assert ice40_lane_candidates(10) == [3, 4, 5, 6]
    assert ice40_lane_candidates(16) == [3, 4]
    assert ice40_lane_candidates(21) == [3] and ice40_lane_candidates(22) == []


@pytest.mark.usefixtures("fake_tools")
def test_an_icebreaker_training_build_takes_the_small_part_core(int_run):
    # The UP5K: weights in SPRAM (loaded over the link), one b and U lane, every
    # multiplier a MAC lane's, G = min(K, P), the update's input norms from the forward
    # pass; its cycles are that core's closed form.
    report = synth_training_run(int_run, board="icebreaker")
    model, rule = _model_and_rule_of(int_run)
    assert rule.store_bits == 16 and report["lanes"] == 3 == report["label_lanes"]
    assert report["chosen"]["options"] == {"lanes": 3}
    assert "the first of [3, 4]" in report["chosen"]["why"]
    assert report["weights"] == "spram" and report["multipliers"] == "shared"
    training = report["training"]
    assert (training["bias_label_lanes"], training["forward_multipliers"],
            training["signal_multipliers"], training["input_norm"],
            training["compact_lanes"], training["lean_signal"],
            training["lean_forward"], training["serial_weight_pass"],
            training["shared_word_network"], training["shared_update_lane"],
            training["stored_norms"], training["tag_memory"],
            training["compact_signal"], training["held_addresses"],
            training["late_replay"], training["c_memory"], training["late_rounding"],
            training["kappa_ring"]) == (
                1, "shared", "shared", "forward", True, True, True, True, True, True, True,
                True, True, True, True, True, True, True)
    small = TrainingCore(model, rule, lanes=3, weights="spram", bias_label_lanes=1,
                         forward_multipliers="shared", signal_multipliers="shared",
                         label_lanes=3, input_norm="forward", compact_lanes=True,
                         lean_signal=True, lean_forward=True, serial_weight_pass=True,
                         shared_word_network=True, shared_update_lane=True,
                         stored_norms=True, tag_memory=True, compact_signal=True,
                         held_addresses=True, late_replay=True, c_memory=True,
                         late_rounding=True, kappa_ring=True)
    assert training["cycles_per_sample"] == small.training_cycles() \
        != TrainingCore(model, rule, lanes=3, weights="spram").training_cycles()
    assert report["fit"]["multipliers"]["needed"] <= 8
    # The link's small-part form too (the TRAIN records in its sample buffer), and its
    # RESULT scores through the core's score read port.
    assert training["lean_link"] is True and training["score_port"] is True


def test_forward_norms_need_one_multiplier_and_one_block_ram_fewer_on_the_icebreaker():
    # The fit check counts what the engine declares: without the input scaler's square
    # and Rsqrt table, one SB_MAC16 and one EBR fewer (the digits build: 7 -> 6 and
    # 25 -> 24); every other count the same.
    import numpy as np

    from golden.config import ModelConfig
    from golden.inttrain import TrainRule, initial_model

    config = ModelConfig(algo="ffdl", input_size=64, num_classes=10, hidden=(64, 64),
                         theta=0.5)
    model = initial_model(config, np.random.default_rng(0).random((50, 64)), input_max=16,
                          seed=0)
    rule = TrainRule(epochs=1, lr_shift=6, store_bits=8)
    core = training_core(model, rule, "icebreaker", 4)
    assert core.input_norm == "forward"
    own = TrainingCore(model, rule, lanes=4, **{**core.options, "input_norm": "own"})
    needs, own_needs = check_fit(core, "icebreaker"), check_fit(own, "icebreaker")
    assert own_needs["multipliers"]["needed"] - needs["multipliers"]["needed"] == 1
    assert own_needs["block_rams"]["needed"] - needs["block_rams"]["needed"] == 1
    assert (own_needs["multipliers"]["detail"]["input_scaler"]
            - needs["multipliers"]["detail"]["input_scaler"]) == 1
    assert "training_rsqrt_table" in own_needs["block_rams"]["detail"]
    assert "training_rsqrt_table" not in needs["block_rams"]["detail"]
    assert needs["multipliers"]["needed"] == 6 and needs["block_rams"]["needed"] == 24
    # The stored norms: one rsqrt table, not two; the tag memory one block more (the
    # digits build: 22 and 23 of 30 blocks, as packed).
    assert core.options["stored_norms"] and core.options["tag_memory"]
    plain = TrainingCore(model, rule, lanes=4, **{**core.options, "stored_norms": False,
                                                  "tag_memory": False})
    plain_needs = check_fit(plain, "icebreaker")
    assert plain_needs["block_rams"]["detail"]["rsqrt_tables"] == 2
    assert needs["block_rams"]["detail"]["rsqrt_tables"] == 1
    assert needs["block_rams"]["detail"]["sweep_tags"] == 1
    assert "sweep_tags" not in plain_needs["block_rams"]["detail"]
    assert plain_needs["block_rams"]["needed"] == needs["block_rams"]["needed"]


def test_the_default_lanes_move_to_a_count_whose_weights_fit():
    # MNIST 784-256-256 at B_m = 10: on 8 lanes the weight memory is 33,280 words, past
    # 2^15, and takes 3 deep columns of block RAMs (261 of 208); on 9 lanes 30,160 words,
    # 2 columns (201, as routed: the host link's buffer of 4 samples takes 2).
    model, rule = _mnist_256(10)
    with pytest.raises(FitError, match="estimated 261 block RAMs"):
        choose_training_core(model, rule, "ulx3s-85f", 8)
    core, needs = choose_training_core(model, rule, "ulx3s-85f")
    assert core.lanes == 9 and needs["block_rams"]["needed"] == 201
    assert needs["training"]["link_block_rams"] == {"sample_buffer": 2}


def test_a_stored_width_that_fits_on_the_given_lanes_is_named():
    # MNIST 784-256-256 at B_m = 12 on 4 lanes: 11 and 10 bits overflow too, 9 fit.
    model, rule = _mnist_256(12)
    with pytest.raises(FitError) as refused:
        choose_training_core(model, rule, "ulx3s-85f", 4)
    message = str(refused.value)
    assert message.startswith("The FFDL model 784-256-256 with 4 lanes trained on chip")
    # Only the given count was tried, and nothing is said of the others.
    assert "No lane count" not in message
    assert message.endswith("Trained with --store-bits 9 the core fits on 4 lanes")


def test_a_stored_width_on_fewer_than_half_the_lanes_is_named_last(monkeypatch):
    # The search's second pass: FFDL 300-6-5 (lanes tried 6, 5, 4, 3, then 2, 1) on a
    # ULX3S-85F cut to 7 block RAMs (one of them the host link's sample buffer). At
    # B_m = 10 every count takes 8 or more; at 9 and 8 the counts of at least half the
    # first (6 to 3) still take 8 or more, and 2 lanes take 7 at 9 bits: named only
    # because the narrow counts are tried at all.
    import numpy as np

    from golden.config import ModelConfig
    from golden.inttrain import TrainRule, initial_model
    from rtl.board import BOARDS

    monkeypatch.setitem(BOARDS, "ulx3s-85f",
                        replace(BOARDS["ulx3s-85f"], bram_bits=7 * 18 * 1024))
    config = ModelConfig(algo="ffdl", input_size=300, num_classes=10, hidden=(6, 5),
                         theta=0.25)
    model = initial_model(config, np.random.default_rng(0).random((20, 300)) * 16,
                          input_max=16, seed=0)
    rule = TrainRule(epochs=2, lr_shift=6, lr_steps=(1,), store_bits=10)
    with pytest.raises(FitError) as refused:
        choose_training_core(model, rule, "ulx3s-85f")
    message = str(refused.value)
    assert "estimated 8 block RAMs" in message and "ulx3s-85f has 7" in message
    assert "No lane count from 1 to 6 fits either" in message
    assert message.endswith("Trained with --store-bits 9 the core fits on 2 lanes")
    # What the message says holds: that core fits the cut board.
    narrow, needs = choose_training_core(model, replace(rule, store_bits=9), "ulx3s-85f")
    assert narrow.lanes == 2 and needs["block_rams"]["needed"] == 7


@pytest.mark.slow
def test_a_stored_width_that_fits_nowhere_names_one_that_does():
    # B_m = 12 fits no lane count from 1 to 16, nor does 11 (1 lane: 209 block RAMs of
    # 208, 2 of them the host link's); 10 fits on 9. About 30 fit checks of an MNIST core
    # (45 s on a busy machine).
    model, rule = _mnist_256(12)
    with pytest.raises(FitError) as refused:
        choose_training_core(model, rule, "ulx3s-85f")
    message = str(refused.value)
    assert message.startswith("The FFDL model 784-256-256 with 8 lanes trained on chip")
    assert "No lane count from 1 to 16 fits either" in message
    assert message.endswith("Trained with --store-bits 10 the core fits on 9 lanes")
    with pytest.raises(FitError, match="estimated 209 block RAMs"):
        choose_training_core(model, replace(rule, store_bits=11), "ulx3s-85f", 1)
