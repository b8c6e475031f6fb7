# amaranth: UnusedElaboratable=no
"""``ffcl-hw sim RUN --train``: the simulated training core against the golden trainer."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import sim.train_check
from ffcl_hw.cli import main
from ffcl_hw.flows.train_sim import train_order
from ffcl_hw.runs import RunError
from golden.datasets import load_dataset
from golden.intmodelio import load_int_model
from golden.inttrain import IntTrainer, TrainRule, train_int
from rtl.training_core import TRAINING_PHASES, TrainingCore
from sim.runner import available_simulators
from sim.train_check import TrainingChecker, check_points, phase_name
from tests.flows.conftest import TINY


def _saved_model_and_rule(run):
    """The run's saved integer model and the rule it was trained with."""
    saved = load_int_model(run / "model.int.npz")
    rule = TrainRule(**{k: v for k, v in saved.source["trained"]["rule"].items()
                        if k in TrainRule.__dataclass_fields__})
    return saved, rule


def _sim_train(capsys, run, *argv, lanes=3):
    """``sim RUN --train`` on ``lanes`` lanes: (status, out, err); argparse's exit too."""
    (run / "train_sim.json").unlink(missing_ok=True)
    try:
        status = main(["sim", str(run), "--train", "--lanes", str(lanes), "--quiet", *argv])
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


def test_amaranth_trains_bit_exact_in_train_int_order(tiny_int_run, capsys, monkeypatch):
    # The samples the golden side trains on, in order, with their lambda...
    seen = []
    train_sample = IntTrainer.train_sample

    def spy(self, x, y, lr_shift):
        seen.append((np.array(x), int(y), lr_shift))
        if len(seen) > limit:
            raise StopIteration
        return train_sample(self, x, y, lr_shift)

    limit = 3
    monkeypatch.setattr(IntTrainer, "train_sample", spy)
    status, out, _ = _sim_train(capsys, tiny_int_run, "--simulator", "amaranth", "--samples",
                                "3")
    assert status == 0, out
    assert "the rule this integer run was trained with" in out
    assert "every stored word after every sample (3 checks)" in out
    assert re.search(r"cycles per phase  matrix vector [\d,]+, .*weight pass [\d,]+, "
                     r"bias label pass [\d,]+ \(the first sample\)", out), out
    flow, seen[:] = list(seen), []
    # ... are the first three train_int takes in its first epoch (its own order generator).
    saved, rule = _saved_model_and_rule(tiny_int_run)
    data = load_dataset("digits")
    limit = 2
    with pytest.raises(StopIteration):
        train_int(saved.model, rule, saved.model.quantize_input(data.x_train), data.y_train,
                  fast=False)
    assert len(flow) == 3
    for (x_a, y_a, lam_a), (x_b, y_b, lam_b) in zip(flow, seen, strict=True):
        assert np.array_equal(x_a, x_b) and y_a == y_b and lam_a == lam_b

    report = json.loads((tiny_int_run / "train_sim.json").read_text())
    assert report["samples"] == report["samples_trained"] == report["checked_samples"] == 3
    assert report["weight_mismatches"] == 0 and report["mismatch"] is None
    c = report["cycles_per_sample"]
    assert c["min"] == c["max"] == report["cycles_formula"] > 0
    _assert_phases_counted(report)
    assert report["test_accuracy"] == report["golden_test_accuracy"]
    assert report["simulator"] == "amaranth" and report["wall_seconds"] > 0


def test_check_points_are_every_kth_sample_and_the_last():
    assert check_points(5, 1) == [0, 1, 2, 3, 4]
    assert check_points(250, 100) == [99, 199, 249]
    assert check_points(200, 100) == [99, 199]
    assert check_points(3, 10) == [2]
    with pytest.raises(ValueError, match="Check interval must be a positive integer, not 0"):
        check_points(3, 0)


def _perturb(name, layer, index):
    """An IntTrainer whose stored ``name`` of ``layer`` starts one fine step off at
    ``index`` (the forward bits unchanged, so only the stored word can tell)."""
    class Seeded(IntTrainer):
        def __init__(self, model, rule):
            super().__init__(model, rule)
            self.stored[layer][name][index] += 1
    return Seeded


# (memory, layer, index) -> the address and entry the message must name. The tiny net on
# 3 lanes: layer 1 W is 2 tiles x 64 words, layer 2 W starts at 128 (tile 1 of W[4, 3] is
# word 6 + 3 of the layer: lane 1); b and U have one word per neuron (layer 2 from 6).
MISMATCHES = {
    "W1": (("W", 0, (0, 0)), "stored W of layer 1 at address 0 (word 0 of the layer's W), "
                             "entry W[0, 0] (lane 0),"),
    "W2": (("W", 1, (4, 3)), "stored W of layer 2 at address 137 (word 9 of the layer's W), "
                             "entry W[4, 3] (lane 1),"),
    "b2": (("b", 1, 2), "stored b of layer 2 at address 8 (word 2 of the layer's b), entry b[2],"),
    "U1": (("U", 0, (3, 7)), "stored U of layer 1 at address 3 (word 3 of the layer's U), "
                             "entry U[3, 7],"),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_a_wrong_stored_word_exits_1_naming_sample_memory_address_and_values(
        tiny_int_run, capsys, monkeypatch, case):
    (name, layer, index), where = MISMATCHES[case]
    monkeypatch.setattr(sim.train_check, "IntTrainer", _perturb(name, layer, index))
    status, out, err = _sim_train(capsys, tiny_int_run, "--simulator", "amaranth",
                                  "--samples", "2")
    assert status == 1
    message = err.split("MISMATCH with the golden trainer after 1 sample: ")[1]
    found = re.match(rf"sample 0: {re.escape(where)} is (-?\d+) in the hardware, (-?\d+) in "
                     "the golden trainer", message)
    assert found, message
    # The golden value is the hardware's plus the seeded step (no saturation here).
    assert int(found[2]) == int(found[1]) + 1, message
    assert message.endswith("; 1 stored word differs)\n"), message
    report = json.loads((tiny_int_run / "train_sim.json").read_text())
    assert report["weight_mismatches"] == 1 and report["mismatch"] == message.strip()
    assert report["test_accuracy"] is None and report["cycles_per_sample"] is None


def test_a_wrong_cycle_count_exits_1(tiny_int_run, capsys, monkeypatch):
    formula = TrainingCore.training_cycles
    monkeypatch.setattr(TrainingCore, "training_cycles", lambda self: formula(self) + 1)
    status, _, err = _sim_train(capsys, tiny_int_run, "--simulator", "amaranth",
                                "--samples", "2")
    assert status == 1
    # The counter's value and the (shifted) closed form's, one apart.
    found = re.search(r"sample 0: cycles is (\d+) in the hardware, (\d+) by the closed form", err)
    assert found and int(found[2]) == int(found[1]) + 1


def _assert_phases_counted(report: dict) -> None:
    """The first sample's cycles per phase, counted from the core's phase output, are in
    the report, equal to the closed form, and add up to the sample's cycles (the flow
    stops at a mismatch, so a run that passed has them equal; this checks the report)."""
    assert report["phase_cycles"] == report["phase_cycles_formula"]
    assert sum(report["phase_cycles"].values()) == report["cycles_formula"]
    assert report["phase_cycles"]["weight_pass"] > 0 and report["phase_cycles"]["prepare"] > 0


def test_the_checker_names_a_wrong_phase_count(tiny_int_run):
    saved = load_int_model(tiny_int_run / "model.int.npz")
    core = TrainingCore(saved.model, TrainRule(epochs=1), lanes=3)
    checker = TrainingChecker(core, check_every=1, samples=2)
    want = core.training_phase_cycles()
    assert checker.phases(0, dict(want)) is None and checker.run.phase_cycles == want
    # A cycle of the W pass shown as PREPARE: the first phase that differs is named.
    shifted = {**want, "prepare": want["prepare"] + 1, "weight_pass": want["weight_pass"] - 1}
    assert str(checker.phases(1, shifted)) == (
        f"sample 1: cycles of phase prepare is {want['prepare'] + 1} in the hardware, "
        f"{want['prepare']} by the closed form (TrainingCore.training_phase_cycles)")
    # A code no phase has is counted under its own name, and is a mismatch.
    assert phase_name(TRAINING_PHASES["bias_label_pass"]) == "bias_label_pass"
    unnamed = {**want, "weight_pass": 0, phase_name(15): want["weight_pass"]}
    assert "cycles of phase weight_pass is 0 in the hardware" in str(checker.phases(1, unnamed))
    assert "cycles of phase code 15 is" in str(checker.phases(1, {**want, "code 15": 2}))


def test_the_checker_names_a_wrong_record(tiny_int_run):
    saved = load_int_model(tiny_int_run / "model.int.npz")
    core = TrainingCore(saved.model, TrainRule(epochs=1), lanes=3)
    checker = TrainingChecker(core, check_every=1, samples=2)
    x = np.zeros(64, dtype=np.int64)
    label = int(saved.model.run(x[None]).labels[0])
    mismatch = checker.record(0, x, 1, (label + 1) % 10, 0, 0)
    assert str(mismatch).startswith(f"sample 0: predicted label (weights before the update) "
                                    f"is {(label + 1) % 10} in the hardware, {label} in")


@pytest.fixture(scope="module")
def ffcl_int_run(tmp_path_factory):
    # Two epochs, lambda one step up in the second: the core's range has two lambdas.
    run = tmp_path_factory.mktemp("trainsim") / "ffcl-int"
    assert main(["train", "--arith", "int", "--algo", "ffcl", "--loops", "2", *TINY,
                 "--epochs", "2", "--lr-steps", "1", "--out", str(run)]) == 0
    return run


def _lr_range(run):
    rule = load_int_model(run / "model.int.npz").source["trained"]["rule"]
    return TrainRule(**{k: v for k, v in rule.items()
                        if k in TrainRule.__dataclass_fields__}).lr_range


@pytest.mark.parametrize("argv, message", [
    (["--samples", "0"], "'0' is not a positive integer"),
    (["--samples", "1348"], "--samples 1348 is more than the 1347 training samples of "
                            "digits; use --samples 1347 or fewer"),
    (["--simulator", "modelsim"], "invalid choice: 'modelsim'"),
    # A training netlist's core is the board's training build's; what cannot work is
    # refused before any tool runs. The iCEBreaker's: at least 3 lanes, an SPRAM word of
    # at most 64 bits, its weights in SPRAM.
    (["--netlist", "icebreaker", "--lanes", "2"],
     "A training core for icebreaker needs at least 3 lanes, not 2: its forward pass scales "
     "on two MAC lanes' multipliers and squares on a third"),
    (["--netlist", "icebreaker", "--lanes", "5"], "5 lanes x 16 stored bits = 80 bits"),
    (["--netlist", "icebreaker", "--weights", "loadable"],
     "--weights loadable does not go with --train --netlist icebreaker (its training build "
     "keeps its weights in SPRAM); leave out --weights"),
    (["--netlist", "icebreaker", "--label-lanes", "2"],
     "--label-lanes does not go with --train --netlist"),
    (["--netlist", "ulx3s-85f", "--check-every", "2"],
     "--check-every does not go with --train --netlist (the netlist is read back once"),
    (["--netlist", "ulx3s-85f", "--weights", "spram"],
     "--weights spram does not go with --train --netlist ulx3s-85f (its training build "
     "keeps its weights in block RAM); leave out --weights"),
    (["--netlist", "ulx3s-85f", "--simulator", "icarus"],
     "--simulator does not go with --train --netlist"),
    (["--netlist", "ulx3s-85f", "--samples", "1348"],
     "--samples 1348 is more than the 1347 training samples of digits"),
    (["--multipliers", "banana"], "invalid choice: 'banana'"),
    (["--lanes", "7", "--simulator", "amaranth"], "--lanes 7 is more than the widest "
                                                  "layer's 6 neurons"),
    # The run's 16-bit stored weights: 4 lanes fill an SPRAM word, and 5 lanes' 12 bits
    # hold the 8 forward ones.
    (["--weights", "spram", "--lanes", "5", "--simulator", "amaranth"],
     "--weights spram: 5 lanes x 16-bit stored weights = 80 bits, more than an SPRAM "
     "word's 64; use --lanes 4 or a run trained with `train --arith int --store-bits 12`"),
    (["--weights", "rom"], "--weights rom does not go with --train (the training core "
                           "writes its weights, a ROM cannot change); use --weights "
                           "loadable (block RAM, the default) or spram"),
    (["--weights", "flash"], "invalid choice: 'flash'"),
    # The core a board's training build makes: its own memory, at least 3 lanes on SPRAM.
    (["--board", "icebreaker", "--weights", "spram"],
     "--weights does not go with --board (the board's training build decides where its "
     "weights live)"),
    (["--board", "icebreaker", "--lanes", "2", "--simulator", "amaranth"],
     "A training core for icebreaker needs at least 3 lanes, not 2"),
    # The core's own refusal, not a traceback: 5 x 16 bits is wider than an SPRAM word.
    (["--board", "icebreaker", "--lanes", "5", "--simulator", "amaranth"],
     "5 lanes x 16 stored bits = 80 bits"),
    (["--netlist", "ulx3s-85f", "--board", "icebreaker"],
     "--board does not go with --train --netlist (--netlist names the board)"),
])
def test_bad_input_exits_2_and_writes_nothing(tiny_int_run, capsys, argv, message):
    status, _, err = _sim_train(capsys, tiny_int_run, *argv)
    assert status == 2 and message in err
    assert not (tiny_int_run / "train_sim.json").exists()


@pytest.mark.parametrize("multipliers", [None, "dedicated"])
def test_ffcl_trains_bit_exact_at_the_last_epochs_lambda_by_default(ffcl_int_run, capsys,
                                                                     multipliers):
    # FFCL T = 2 (V read back with W) at a lambda other than the first: the driver must
    # put it on lr_shift_in (the core resets to the first) and the golden side use it.
    # The update lanes on the MAC lanes' multipliers (default) or their own.
    low, high = _lr_range(ffcl_int_run)
    assert high == low + 1
    option = [] if multipliers is None else ["--multipliers", multipliers]
    status, out, err = _sim_train(capsys, ffcl_int_run, "--simulator", "amaranth",
                                  "--samples", "2", *option)
    assert status == 0, out + err
    assert f"lr 2^-{high} (range 2^-{low}..2^-{high})" in out
    assert f"update lanes on {multipliers or 'shared'} multipliers), weights in block RAM" in out
    report = json.loads((ffcl_int_run / "train_sim.json").read_text())
    assert report["multipliers"] == (multipliers or "shared")
    assert report["weights"] == "loadable"
    assert report["lr_shift"] == high and report["checked_samples"] == 2
    assert report["weight_mismatches"] == 0
    assert report["cycles_per_sample"]["max"] == report["cycles_formula"]
    assert report["test_accuracy"] == report["golden_test_accuracy"]


def _trains_bit_exact_as(capsys, run, argv, message: str, **options) -> dict:
    """``sim RUN --train --simulator amaranth --samples 2`` with ``argv``: exit 0,
    ``message`` printed, both samples checked without a mismatch, the counter at the
    closed form of ``TrainingCore(model, rule, lanes=3, **options)``, the golden
    trainer's accuracy. Returns the report."""
    status, out, err = _sim_train(capsys, run, "--simulator", "amaranth", "--samples", "2",
                                  *argv)
    assert status == 0, out + err
    assert message in out
    report = json.loads((run / "train_sim.json").read_text())
    assert report["checked_samples"] == 2 and report["weight_mismatches"] == 0
    saved, rule = _saved_model_and_rule(run)
    core = TrainingCore(saved.model, rule, lanes=3, **options)
    assert report["cycles_per_sample"]["max"] == report["cycles_formula"] \
        == core.training_cycles()
    assert report["test_accuracy"] == report["golden_test_accuracy"]
    return report


def test_an_spram_core_loads_its_words_then_trains_bit_exact(tiny_int_run, capsys):
    # SPRAM comes up empty: the bench must load the starting words through the core's
    # load port before sample 0, or the first check fails. One word a cycle is slower on
    # 3 lanes than block RAM's: the closed form says by how much.
    report = _trains_bit_exact_as(
        capsys, tiny_int_run, ["--weights", "spram"],
        "3 lanes (update lanes on shared multipliers), weights in SPRAM (loaded through the "
        "load port), 2 training samples", weights="spram")
    assert report["weights"] == "spram"
    saved, rule = _saved_model_and_rule(tiny_int_run)
    spram = TrainingCore(saved.model, rule, lanes=3, weights="spram")
    bram = TrainingCore(saved.model, rule, lanes=3)
    assert spram.training_cycles() > bram.training_cycles()


def test_the_icebreaker_builds_core_trains_bit_exact(tiny_int_run, capsys):
    # --board icebreaker: the core `synth --train --board icebreaker` builds (its lane
    # choice: 3 for 16-bit stored weights), SPRAM loaded first, one b/U lane, every
    # multiplier a MAC lane's, 3 of the 10 labels a word (4 label words a neuron), the
    # update's input norms from the forward pass, the layers' norms kept from one unit,
    # the sweep's tags in block RAM.
    report = _trains_bit_exact_as(
        capsys, tiny_int_run, ["--board", "icebreaker"],
        "as icebreaker's training build makes it: 3 label weights a word, 1 b/U lane, "
        "the forward pass on shared multipliers, the learning signal on shared, the "
        "update's input norms from the forward pass, compact update lanes, the lean "
        "learning signal (compact), the lean forward datapath, one W/V update lane, one "
        "network for the word generators, the b/U lane a W lane, one norm unit, the norms "
        "kept, the sweep tags in block RAM, the scores read through the argmax, the W/V "
        "write addresses held a word, kappa from the replay, the lane's stored values in "
        "block RAM, its rounding a cycle late, the b/U kappa in a ring\n",
        weights="spram", bias_label_lanes=1, forward_multipliers="shared",
        signal_multipliers="shared", label_lanes=3, input_norm="forward", compact_lanes=True,
        lean_signal=True, lean_forward=True, serial_weight_pass=True,
        shared_word_network=True, shared_update_lane=True, stored_norms=True,
        tag_memory=True, compact_signal=True)
    assert (report["board"], report["lanes"], report["weights"], report["label_lanes"],
            report["bias_label_lanes"], report["input_norm"], report["compact_lanes"],
            report["lean_signal"], report["lean_forward"], report["serial_weight_pass"],
            report["shared_word_network"], report["shared_update_lane"],
            report["stored_norms"], report["tag_memory"], report["compact_signal"]) == (
                "icebreaker", 3, "spram", 3, 1, "forward", True, True, True, True, True,
                True, True, True, True)


def test_board_needs_train(tiny_int_run, capsys):
    assert main(["sim", str(tiny_int_run), "--board", "icebreaker", "--quiet"]) == 2
    assert "--board goes with --train only" in capsys.readouterr().err


def test_a_wrong_stored_v_word_is_named(ffcl_int_run, capsys, monkeypatch):
    # Layer 1 hears layer 2 (5 neurons) through V: on 3 lanes, its 2 tiles x 64 W words
    # come first, then V[4, 2] is tile 1, column 2: word 5 + 2 of its V, address 135.
    monkeypatch.setattr(sim.train_check, "IntTrainer", _perturb("V", 0, (4, 2)))
    status, out, err = _sim_train(capsys, ffcl_int_run, "--simulator", "amaranth",
                                  "--samples", "1", "--lr-shift", str(_lr_range(ffcl_int_run)[0]))
    assert status == 1, out
    assert ("sample 0: stored V of layer 1 at address 135 (word 7 of the layer's V), entry "
            "V[4, 2] (lane 1),") in err


@pytest.mark.parametrize("offset", [-1, 2])
def test_a_lambda_outside_the_cores_range_exits_2(ffcl_int_run, capsys, offset):
    low, high = _lr_range(ffcl_int_run)
    lam = low + offset if offset < 0 else high + offset - 1
    status, _, err = _sim_train(capsys, ffcl_int_run, "--simulator", "amaranth",
                                "--samples", "1", "--lr-shift", str(lam))
    assert status == 2
    assert (f"--lr-shift {lam} is outside the training core's range {low}..{high} (lambda "
            f"of the rule's first to last epoch); use --lr-shift {low} to {high}") in err
    assert not (ffcl_int_run / "train_sim.json").exists()


@pytest.mark.parametrize("option", ["--check-every", "--lr-shift"])
def test_train_options_need_train(tiny_int_run, capsys, option):
    assert main(["sim", str(tiny_int_run), option, "2", "--quiet"]) == 2
    assert f"{option} goes with --train only" in capsys.readouterr().err


def test_a_quantized_float_run_trains_with_the_default_rule(tmp_path, capsys):
    run = tmp_path / "ffdl"
    assert main(["train", "--algo", "ffdl", "--hidden", "6,5", "--epochs", "1", "--out",
                 str(run), "--quiet"]) == 0
    assert main(["quantize", str(run)]) == 0
    status, out, _ = _sim_train(capsys, run, "--simulator", "amaranth", "--samples", "2")
    assert status == 0, out
    assert "the default rule of `train --arith int` (a quantized float run)" in out
    report = json.loads((run / "train_sim.json").read_text())
    assert report["rule"]["seed"] == 0 and report["rule"]["epochs"] == 30
    assert report["test_accuracy"] == report["golden_test_accuracy"]


def test_train_order_is_train_ints_first_epoch():
    rule = TrainRule(epochs=1, seed=3)
    assert np.array_equal(train_order(rule, 10), np.random.default_rng(3).permutation(10))


_ICARUS = pytest.mark.skipif("icarus" not in available_simulators(), reason="Icarus missing")


@pytest.mark.parametrize(("simulator", "weights", "lanes"), [
    pytest.param("icarus", "loadable", 3, marks=_ICARUS),
    # Opt-in: the iCEBreaker's core (test_the_icebreaker_builds_core_trains_bit_exact_in_
    # icarus) is this run's 3 lanes x 16 bits in one SPRAM bank too, loaded and trained by
    # the same bench; [icarus-spram-2] runs SPRAM under the default options.
    pytest.param("icarus", "spram", 3, marks=[_ICARUS, pytest.mark.slow]),
    # 2 lanes x 16 bits: two SPRAM banks, a read beside a write every cycle of the passes.
    pytest.param("icarus", "spram", 2, marks=_ICARUS),
    pytest.param("verilator", "loadable", 3, marks=pytest.mark.slow),
    pytest.param("verilator", "spram", 3, marks=pytest.mark.slow),
])
def test_the_verilog_trains_bit_exact_under_cocotb(ffcl_int_run, capsys, simulator, weights,
                                                   lanes):
    # Verilator's build of the training core takes one to two minutes: opt-in. FFCL at
    # its last epoch's lambda: the bench drives lr_shift_in and reads V back; on SPRAM
    # it first loads the starting words through the load port.
    status, out, err = _sim_train(capsys, ffcl_int_run, "--simulator", simulator,
                                  "--samples", "2", "--weights", weights, lanes=lanes)
    assert status == 0, out + err
    report = json.loads((ffcl_int_run / "train_sim.json").read_text())
    assert report["simulator"] == simulator and report["checked_samples"] == 2
    assert report["weights"] == weights
    # 2 lanes x 16 bits in two SPRAM banks, 3 x 16 in one.
    assert report["weight_banks"] == (2 if weights == "spram" and lanes == 2 else 1)
    assert (" in two banks " in out) == (report["weight_banks"] == 2)
    assert report["lr_shift"] == _lr_range(ffcl_int_run)[1]
    assert report["cycles_per_sample"]["max"] == report["cycles_formula"]
    _assert_phases_counted(report)
    assert report["test_accuracy"] == report["golden_test_accuracy"]


@_ICARUS
def test_the_icebreaker_builds_core_trains_bit_exact_in_icarus(ffcl_int_run, capsys):
    # The cocotb bench rebuilds its description of the core (starting loads, read-back
    # layout, closed form) from train.json: every option of the board's core must reach
    # it, or the bench loads and reads another layout than the Verilog's (FFCL, 3 lanes,
    # 3 of 10 labels a word: 4 label words a neuron).
    status, out, err = _sim_train(capsys, ffcl_int_run, "--simulator", "icarus",
                                  "--samples", "2", "--board", "icebreaker")
    assert status == 0, out + err
    report = json.loads((ffcl_int_run / "train_sim.json").read_text())
    assert (report["label_lanes"], report["bias_label_lanes"],
            report["forward_multipliers"], report["input_norm"], report["compact_lanes"]) == (
                3, 1, "shared", "forward", True)
    assert report["checked_samples"] == 2 and report["weight_mismatches"] == 0
    assert report["cycles_per_sample"]["max"] == report["cycles_formula"]
    _assert_phases_counted(report)
    # 3 lanes x 16 bits: one SPRAM bank, as [icarus-spram-3] (opt-in) checks.
    assert report["weights"] == "spram" and report["weight_banks"] == 1
    assert " in two banks " not in out


@pytest.mark.slow
def test_verilator_trains_a_full_digits_epoch_bit_exact(tmp_path, capsys):
    # Issue 14's proof: one epoch (1,347 samples) of a digits FFDL 64-64 run on 8 lanes.
    run = tmp_path / "digits-ffdl"
    assert main(["train", "--arith", "int", "--algo", "ffdl", "--out", str(run),
                 "--quiet"]) == 0
    status, out, err = _sim_train(capsys, run, "--simulator", "verilator", "--samples",
                                  "1347", lanes=8)
    assert status == 0, out + err
    report = json.loads((run / "train_sim.json").read_text())
    assert report["samples_trained"] == 1347 and report["weight_mismatches"] == 0
    assert report["checked_samples"] == 14          # every 100th and the last
    assert report["test_accuracy"] == report["golden_test_accuracy"]
    print(out)


def test_a_stored_memory_the_read_back_does_not_know_is_refused(tiny_int_run, monkeypatch):
    # FFCL's V, once the core stores it, must be read back and checked, not skipped.
    images = TrainingCore.stored_images
    monkeypatch.setattr(TrainingCore, "stored_images",
                        lambda self, stored: {**images(self, stored), "V": []})
    core = TrainingCore(load_int_model(tiny_int_run / "model.int.npz").model,
                        TrainRule(epochs=1), lanes=3)
    with pytest.raises(ValueError, match="the checker reads back W, b, U; this core stores "
                                         "U, V, W, b"):
        TrainingChecker(core, check_every=1, samples=1)


def test_the_model_rebuilt_from_the_words_is_the_golden_trainers(ffcl_int_run):
    # The accuracy of the chip-trained model is measured on this rebuild: every array,
    # V included, must be the trained one (not the starting one).
    saved, rule = _saved_model_and_rule(ffcl_int_run)
    core = TrainingCore(saved.model, rule, lanes=3)
    checker = TrainingChecker(core, check_every=1, samples=1)
    trainer = IntTrainer(saved.model, rule)
    data = load_dataset("digits")
    for x, y in zip(saved.model.quantize_input(data.x_train[:3]), data.y_train[:3],
                    strict=True):
        trainer.train_sample(x.astype(np.int64), int(y), rule.lr_range[1])
    rebuilt = checker.model_from_words(core.stored_images(trainer.stored))
    for got, want in zip(rebuilt.layers, trainer.model.layers, strict=True):
        for name in ("W", "b", "U", "V"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), name
        assert got.v_exp == want.v_exp
    assert not np.array_equal(trainer.model.layers[0].V, saved.model.layers[0].V)


def test_ffcl_labels_come_from_the_training_pass(ffcl_int_run, capsys):
    # With every iteration trained, iteration 2 runs on the weights iteration 1 updated:
    # the core's label is that pass's, which the golden trainer reports. At the first
    # epoch's lambda, sample 1's differs from the label of the weights before the sample
    # (5), so a checker expecting that one fails here.
    low, _ = _lr_range(ffcl_int_run)
    saved, rule = _saved_model_and_rule(ffcl_int_run)
    trainer = IntTrainer(saved.model, rule)
    order = train_order(rule, 1347)[:2]
    data = load_dataset("digits")
    x = saved.model.quantize_input(data.x_train[order]).astype(np.int64)
    trainer.train_sample(x[0], int(data.y_train[order[0]]), low)
    before = int(trainer.model.run(x[1][None]).labels[0])
    assert trainer.train_sample(x[1], int(data.y_train[order[1]]), low).label != before
    status, out, err = _sim_train(capsys, ffcl_int_run, "--simulator", "amaranth",
                                  "--samples", "2", "--lr-shift", str(low))
    assert status == 0, out + err


def test_an_spram_memory_deeper_than_an_spram_is_refused_with_the_lanes_that_fit(
        monkeypatch):
    # The SPRAM's depth cut to what this small model needs on 4 lanes: 2 lanes (more
    # tiles, more words) are refused naming 4 (3 needs more words too); cut one word
    # lower, no lane count up to the 4 that 16-bit words allow fits.
    from ffcl_hw.flows import train_sim
    from rtl.program import build_program
    from tests.flows.test_synth import _model

    model = _model(64, (64, 64))
    words = {p: len(build_program(model, lanes=p).weight_words) for p in (2, 3, 4)}
    assert words[2] > words[3] > words[4]
    monkeypatch.setattr(train_sim, "SPRAM_DEPTH", words[4])
    train_sim._check_spram_depth(model, 4, 16)
    with pytest.raises(RunError, match=rf"^--weights spram: on 2 lanes the weight memory "
                                       rf"is {words[2]:,} words, more than an SPRAM's "
                                       rf"{words[4]:,}; use --lanes 4$"):
        train_sim._check_spram_depth(model, 2, 16)
    monkeypatch.setattr(train_sim, "SPRAM_DEPTH", words[4] - 1)
    with pytest.raises(RunError, match=r"no lane count up to the 4 an SPRAM word holds "
                                       r"fits: simulate it in block RAM \(--weights "
                                       r"loadable\)$"):
        train_sim._check_spram_depth(model, 2, 16)
