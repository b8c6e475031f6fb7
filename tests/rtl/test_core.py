# amaranth: UnusedElaboratable=no
"""The core against the golden integer model, bit for bit, in Amaranth's simulator.

Every result record (label, every per-label score, cycle count) is compared with
IntModel.run and with the closed-form cycle count of rtl.program.Program.cycles, and the
cycles the core's ``phase`` output spent on each phase with Program.phase_cycles.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import numpy as np
import pytest
from amaranth.back import rtlil

from ffcl_hw.flows.simulate import check_results
from golden.config import ModelConfig, TrainConfig
from golden.datasets import load_dataset
from golden.intmodel import IntModel
from golden.quantize import quantize
from golden.training import train
from rtl.core import Core
from rtl.program import LAYER, MAC_DRAIN, SRC_CACHE, SRC_IMAGE, build_program
from sim.amaranth_sim import run_core
from tests.golden.variants import make_config, random_params, reweighted


def _random_model(name: str, seed: int, **overrides) -> IntModel:
    config = make_config(name, **overrides)
    params = random_params(config, seed)
    rng = np.random.default_rng(seed + 100)
    return quantize(config, params, rng.uniform(0, 1, size=(64, config.input_size)),
                    input_max=16)


def _check(model: IntModel, images: np.ndarray, lanes: int, label_lanes=None,
           shared: bool = False, lean: bool = False, **options) -> Core:
    core = Core(model, lanes=lanes, label_lanes=label_lanes, shared=shared, lean=lean,
                **options)
    results = run_core(core, images)
    golden = model.run(images)
    phases = core.program.phase_cycles()
    assert sum(phases.values()) == core.cycles_per_inference()
    mismatches = check_results(results, golden, core.cycles_per_inference(), phases)
    assert not mismatches, [str(m) for m in mismatches[:3]]
    assert len(results) == len(images)
    assert all(r.phase_cycles is not None for r in results)
    return core


# Layer widths 7, 5 and 6, 5, 4 are not multiples of 2, 3 or 8: partial tiles everywhere.
@pytest.mark.parametrize("lanes", [1, 2, 3, 8])
@pytest.mark.parametrize("name", ["ffl", "ffdl", "ffdl-3layers", "ffcl-adjacent-T3",
                                  "ffcl-top-T2", "ffcl-last"])
def test_core_matches_the_integer_model(name, lanes):
    seed = 17 * lanes + len(name)
    model = _random_model(name, seed)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, model.fmt.input_max + 1, size=(3, model.config.input_size))
    _check(model, images, lanes)


# Passes shorter than the tile before them, so the sweep holds them: (hidden widths, lanes).
# (12, 3) on 8 lanes: layer 1's two tiles (8 and 4 neurons) have only 3-element feedback
# passes at iterations 2 and 3. (5, 12, 3): layer 2 alternates 5-element feed-forward and
# 3-element feedback passes over tiles of 8 and 4. (7, 2) on 3 lanes: 2-element feedback
# passes after 3-lane tiles.
HELD = [((12, 3), 8), ((5, 12, 3), 8), ((7, 2), 3)]


@pytest.mark.parametrize(("hidden", "lanes"), HELD)
def test_held_passes_match_the_integer_model(hidden, lanes):
    config = ModelConfig(algo="ffcl", input_size=9, num_classes=4, hidden=hidden, loops=3,
                         theta=0.5)
    rng = np.random.default_rng(len(hidden) + lanes)
    model = quantize(config, random_params(config, lanes), rng.uniform(0, 1, (64, 9)),
                     input_max=16)
    program = build_program(model, lanes=lanes)
    held = sum(max(0, a[1] - b[0]) for op in program.ops if op.kind == LAYER
               for a, b in itertools.pairwise(program.passes(op)))
    assert held > 0
    _check(model, rng.integers(0, 17, size=(3, 9)), lanes)


@pytest.mark.parametrize(("name", "loops"), [("ffcl-adjacent-T3", 2), ("ffcl-adjacent-T3", 3),
                                             ("ffcl-top-T2", 3)])
@pytest.mark.parametrize("label_lanes", [1, 3])
def test_loop_counts_and_label_lanes(name, loops, label_lanes):
    config = dataclasses.replace(make_config(name), loops=loops)
    params = random_params(config, 5)
    model = quantize(config, params, np.random.default_rng(1).uniform(0, 1, (32, 9)),
                     input_max=16)
    images = np.random.default_rng(2).integers(0, 17, size=(2, 9))
    _check(model, images, lanes=3, label_lanes=label_lanes)


def _extreme_model(name: str) -> IntModel:
    """Every weight at full magnitude (random signs), biases at the state extremes."""
    model = _random_model(name, 3)
    rng = np.random.default_rng(4)
    wmax, smax = model.fmt.weight_max, model.fmt.act_max
    for layer in model.layers:
        layer.W = rng.choice([-wmax, wmax], size=layer.W.shape)
        layer.b = rng.choice([-smax - 1, smax], size=layer.b.shape)
        if layer.U is not None:
            layer.U = rng.choice([-wmax, wmax], size=layer.U.shape)
        if layer.V is not None:
            layer.V = rng.choice([-wmax, wmax], size=layer.V.shape)
    return model


@pytest.mark.parametrize("name", ["ffl", "ffdl", "ffcl-adjacent-T3", "ffcl-top-T2"])
def test_extremes_do_not_overflow(name):
    # All-zero and all-maximum images on maximum-magnitude weights: the derived widths
    # must hold every intermediate, and saturation must agree with the golden model.
    for model in (_random_model(name, 9), _extreme_model(name)):
        D, X = model.config.input_size, model.fmt.input_max
        images = np.stack([np.zeros(D, dtype=np.int64), np.full(D, X)])
        _check(model, images, lanes=3)


@pytest.fixture(scope="module")
def digits_model():
    data = load_dataset("digits")
    config = ModelConfig(algo="ffcl", input_size=64, num_classes=10, hidden=(64, 64),
                         loops=3, theta=0.25)
    result = train(config, TrainConfig(epochs=120, batch_size=64, lr=1e-2, seed=0),
                   data.x_train, data.y_train)
    model = quantize(config, result.params, data.x_train[:1000], input_max=data.pixel_max)
    return model, data


@pytest.mark.parametrize("count", [pytest.param(40, marks=pytest.mark.slow),
                                   pytest.param(200, marks=pytest.mark.slow)])
def test_core_matches_on_digits_test_images(digits_model, count):
    # The demo configuration: FFCL 64x64, T = 3, 8 MAC lanes, in Amaranth's simulator
    # (about a second per image: opt-in, to keep the default run well under 15 minutes;
    # the default run has the demo's sim of this core in Verilator, bit-exact, and 8
    # digits images through the shared-multiplier core below).
    model, data = digits_model
    images = model.quantize_input(data.x_test[:count])
    _check(model, images, lanes=8)
    accuracy = (model.run(images).labels == data.y_test[:count]).mean()
    assert accuracy > 0.95


def test_lanes_are_busy_at_least_96_percent_of_the_matrix_phases(digits_model):
    program = build_program(digits_model[0], lanes=8)
    # MAC cycles times lanes is exactly the cost model's multiply-accumulate count.
    assert program.mac_cycles() * 8 == 64 * 64 + 3 * 64 * 64 + 2 * 64 * 64
    # Per layer op: 512 MAC cycles, then the last tile's drain, sweep and sweep pipeline:
    # 4 + 8 + 8 cycles with the operand stage and the pipelined lanes and scaler.
    assert (MAC_DRAIN, program.sweep_drain) == (4, 8)
    assert program.matrix_cycles() == 6 * (512 + 20)
    # 3,072 / 3,192 = 96.2% (97.3% before the pipelining for the FPGA clocks: 3,072 / 3,156).
    assert program.mac_cycles() / program.matrix_cycles() >= 0.962


def test_cycle_formula_in_closed_form_for_ffdl():
    # docs/cycles.md, FFDL with L layers and n_in >= P: per layer
    # 2 + MAC_DRAIN + sweep drain + 1 + ceil(N/P) n_in + n_last, per scan
    # 2 + N ceil(K/G) + 4 (the scan drain), and 2 + K for the argmax.
    model = _random_model("ffdl", 1)
    P, K = 3, 4
    program = build_program(model, lanes=P, label_lanes=2)
    expected = 0
    for n_in, n in ((9, 7), (7, 5)):
        tiles = -(-n // P)
        expected += (2 + tiles * n_in + MAC_DRAIN + (n - (tiles - 1) * P)
                     + program.sweep_drain + 1)
        expected += 2 + n * 2 + 4
    expected += 2 + K
    assert program.scan_drain == 4
    assert program.cycles() == expected
    assert sum(program.phase_cycles().values()) == expected


def test_a_pass_shorter_than_the_previous_sweep_is_held():
    # FFCL (top feedback, widths 6, 5, 4) on 8 lanes: layer 1 (one tile of 6 neurons) at
    # iteration 2 has only a feedback pass over layer 3's 4 outputs (its W_1 x products
    # are cached). With a feed-forward pass in front, the 4-element feedback pass would
    # have to wait 6 - 4 = 2 cycles for the feed-forward sweep; held cycles count as
    # normalisation, issued ones as matrix-vector or feedback. The simulations of
    # ffcl-top-T2 on 8 lanes check a held pass in hardware (layer 2 at iteration 2).
    model = _random_model("ffcl-top-T2", 2)
    program = build_program(model, lanes=8)
    layer1_t2 = [op for op in program.ops if op.kind == LAYER and op.layer == 0][1]
    assert program.passes(layer1_t2) == [(4, 6, True)]
    layer1_ff_fb = dataclasses.replace(layer1_t2, ff_src=SRC_IMAGE)
    assert program.passes(layer1_ff_fb) == [(9, 6, False), (4, 6, True)]
    assert program.op_phases(layer1_ff_fb) == {
        "matrix_vector": 9, "loop_feedback": 4,
        "normalisation": 2 + MAC_DRAIN + 6 + program.sweep_drain + 1, "label_scan": 0,
        "control": 2}


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"lanes": 0}, TypeError, "Lane count must be a positive integer, not 0"),
    ({"lanes": 2, "label_lanes": 5}, ValueError, "at most the label count 4, not 5"),
])
def test_core_refuses_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        Core(_random_model("ffdl", 1), **kwargs)


def test_core_refuses_goodness_feedback_with_the_alternative():
    with pytest.raises(ValueError, match="feedback 'state' only"):
        Core(_random_model("ffcl-goodness", 1), lanes=2)


def test_a_loadable_core_runs_the_model_loaded_at_run_time():
    # Weights in writable block RAM: the core is built with model A and then loaded with
    # model B (same formats and exponents, other integers) through the load port.
    model_a = _random_model("ffcl-adjacent-T3", 21)
    model_b = reweighted(model_a, 22)
    rng = np.random.default_rng(22)
    core = Core(model_a, lanes=3, weights="loadable")
    images = rng.integers(0, 17, size=(3, 9))
    results = run_core(core, images, load=core.load_words_for(model_b))
    golden_b = model_b.run(images)
    assert not check_results(results, golden_b, core.cycles_per_inference())
    assert [r.scores for r in results] != [tuple(s) for s in model_a.run(images).scores]


def test_a_model_that_needs_other_widths_cannot_be_loaded():
    core = Core(_random_model("ffdl", 1), lanes=2, weights="loadable")
    with pytest.raises(ValueError, match="another configuration"):
        core.load_words_for(_random_model("ffl", 1))
    with pytest.raises(ValueError, match="Weight memory must be one of rom, loadable, spram, "
                                         "not 'flash'"):
        Core(_random_model("ffdl", 1), lanes=2, weights="flash")


# -- shared multipliers: the scaler and the squares on the MAC lanes (the iCE40 mapping) --

@pytest.mark.parametrize(("lanes", "label_lanes"), [(3, 1), (3, 3), (8, 4)])
@pytest.mark.parametrize("name", ["ffl", "ffdl", "ffdl-3layers", "ffcl-adjacent-T3",
                                  "ffcl-top-T2", "ffcl-last"])
def test_shared_multipliers_match_the_integer_model(name, lanes, label_lanes):
    seed = 13 * lanes + len(name)
    model = _random_model(name, seed)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, model.fmt.input_max + 1, size=(3, model.config.input_size))
    _check(model, images, lanes, label_lanes, shared=True)


@pytest.mark.parametrize(("hidden", "lanes"), HELD)
def test_shared_multipliers_wait_for_the_sweep_between_passes(hidden, lanes):
    # The passes that the overlapped core holds: here every pass but a layer's last
    # waits for its sweep instead, MAC_DRAIN + swept + scale latency cycles.
    config = ModelConfig(algo="ffcl", input_size=9, num_classes=4, hidden=hidden, loops=3,
                         theta=0.5)
    rng = np.random.default_rng(len(hidden) + lanes)
    model = quantize(config, random_params(config, lanes), rng.uniform(0, 1, (64, 9)),
                     input_max=16)
    shared = build_program(model, lanes=lanes, label_lanes=3, shared=True)
    overlapped = build_program(model, lanes=lanes)
    gaps = sum(shared.pass_gap(swept) for op in shared.ops if op.kind == LAYER
               for _, swept, _ in shared.passes(op)[:-1])
    assert shared.mac_cycles() == overlapped.mac_cycles()
    assert gaps > 0
    _check(model, rng.integers(0, 17, size=(3, 9)), lanes, label_lanes=3, shared=True)


@pytest.mark.parametrize("name", ["ffl", "ffdl", "ffcl-adjacent-T3", "ffcl-top-T2"])
def test_shared_multipliers_hold_the_extremes(name):
    # Full-magnitude weights and state-extreme biases: the widest accumulators, the
    # largest h = pre + U (above 2^15, so h^2 needs the odd part) and saturated states.
    for model in (_random_model(name, 9), _extreme_model(name)):
        D, X = model.config.input_size, model.fmt.input_max
        images = np.stack([np.zeros(D, dtype=np.int64), np.full(D, X)])
        _check(model, images, lanes=3, label_lanes=3, shared=True)


def test_shared_multipliers_on_digits_test_images(digits_model):
    # The iCEBreaker configuration: 8 lanes whose multipliers also scale and square.
    model, data = digits_model
    images = model.quantize_input(data.x_test[:4])
    core = _check(model, images, lanes=8, label_lanes=5, shared=True)
    # docs/cycles.md: 48 passes of 8 neurons, each but a layer op's last followed by a
    # gap of the lanes' latency + 8 + scale latency + 2 = 3 + 8 + 5 + 2 cycles (the
    # operand stage delays both passes alike), the last by MAC_DRAIN + 8 + sweep drain
    # (5 + 3 + 2) + 1 = 4 + 8 + 10 + 1.
    program = core.program
    assert program.mac_cycles() == build_program(model, lanes=8).mac_cycles() == 3072
    assert (program.scale_latency, program.sweep_drain) == (5, 10)
    assert program.pass_gap(8) == 18
    assert program.phase_cycles()["normalisation"] == 6 * (7 * 18 + 4 + 8 + 10 + 1)


# -- the lean forward datapath (Core(lean=True), the small part's) ---------------------

@pytest.mark.parametrize(("shared", "lanes", "label_lanes"), [(False, 2, None), (True, 3, 3),
                                                              (True, 3, 2)])
@pytest.mark.parametrize("name", ["ffl", "ffdl", "ffdl-3layers", "ffcl-adjacent-T3",
                                  "ffcl-top-T2", "ffcl-last"])
def test_the_lean_forward_datapath_matches_the_integer_model(name, shared, lanes,
                                                             label_lanes):
    # The sweep's bias read late, FFCL's kept feed-forward parts biased (the later
    # iterations' layer 1 reads them again: the cache), the scan's lean squares on the
    # borrowed multipliers: the same results in the closed form's cycles (_check).
    seed = 11 * lanes + len(name) + shared
    model = _random_model(name, seed)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, model.fmt.input_max + 1, size=(3, model.config.input_size))
    core = _check(model, images, lanes, label_lanes, shared=shared, lean=True)
    assert core.lean


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("name", ["ffl", "ffdl", "ffcl-adjacent-T3", "ffcl-top-T2"])
def test_the_lean_forward_datapath_holds_the_extremes(name, shared):
    # Full-magnitude weights and state-extreme biases: the largest h = pre + U, whose
    # halves are the widest the borrowed multipliers take, and saturated states.
    for model in (_random_model(name, 9), _extreme_model(name)):
        D, X = model.config.input_size, model.fmt.input_max
        images = np.stack([np.zeros(D, dtype=np.int64), np.full(D, X)])
        _check(model, images, lanes=3, label_lanes=3 if shared else None, shared=shared,
               lean=True)


def test_lean_is_a_bool():
    with pytest.raises(TypeError, match=r"^Lean must be True or False, not 1$"):
        Core(_random_model("ffdl", 1), lanes=3, lean=1)


@pytest.mark.parametrize("shared", [False, True])
def test_a_lean_core_builds_the_lean_sweep_and_scan(shared):
    # The same results either way, so only the netlist tells whether the option reached
    # the units: the sweep's bias line and (shared) the scan's second operand.
    model = _random_model("ffcl-adjacent-T3", 3)
    texts = {lean: rtlil.convert(Core(model, lanes=3, label_lanes=3 if shared else None,
                                      shared=shared, lean=lean), name="top")
             for lean in (False, True)}
    assert ["\\bias_0" in texts[lean] for lean in (False, True)] == [True, False]
    assert ["cofactor" in texts[lean] for lean in (False, True)] == [False, shared]
    # Shared: the lanes' shift-out without its top entry (MacLanes(held_sums=True)).
    lanes = {lean: texts[lean].split("module \\top.lanes\n")[1].split("\nend\n")[0]
             for lean in (False, True)}
    assert ["\\shift_1" in lanes[lean] for lean in (False, True)] == [True, not shared]
    # Shared: the scan's fused ReLU (GoodnessDatapath(fused_relu=True)), no z register.
    scan = {lean: texts[lean].split("module \\top.goodness\n")[1].split("\nend\n")[0]
            for lean in (False, True)}
    assert ["connect \\Q \\z_0" in scan[lean] for lean in (False, True)] == [False, False]


# -- the stored norms (Core(stored_norms=True), the small part's) -----------------------

@pytest.mark.parametrize(("shared", "lanes", "label_lanes"), [(False, 2, None), (True, 3, 3)])
@pytest.mark.parametrize("name", ["ffl", "ffdl", "ffdl-3layers", "ffcl-adjacent-T3",
                                  "ffcl-top-T2", "ffcl-last"])
def test_stored_norms_match_the_integer_model(name, shared, lanes, label_lanes):
    # One reciprocal square root of each finished layer's sum, kept per layer read: FFL's
    # label passes, FFDL's three layers (two feed-forward norms kept), FFCL's feedback
    # (the previous iteration's) from the top layer or the next one: the same
    # results in the closed form's cycles (_check), with and without the lean datapath.
    seed = 13 * lanes + len(name) + shared
    model = _random_model(name, seed)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, model.fmt.input_max + 1, size=(3, model.config.input_size))
    core = _check(model, images, lanes, label_lanes, shared=shared, lean=shared,
                  stored_norms=True)
    assert core.stored_norms


@pytest.mark.parametrize("shared", [False, True])
def test_stored_norms_of_three_adjacent_layers_match_the_integer_model(shared):
    # FFCL adjacent on three layers: layers 0 and 1 hear layers 1 and 2, so two feedback
    # norms (and two feed-forward ones) are kept and each op picks its own source's.
    seed = 23 + shared
    config = ModelConfig(algo="ffcl", input_size=9, num_classes=4, hidden=(6, 5, 4), loops=3,
                         topology="adjacent", theta=0.5)
    model = quantize(config, random_params(config, seed),
                     np.random.default_rng(seed).uniform(0, 1, (64, 9)), input_max=16)
    ff, fb = build_program(model, lanes=3).norm_reads
    assert (ff, fb) == ({0, 1}, {1, 2})
    rng = np.random.default_rng(seed)
    images = rng.integers(0, model.fmt.input_max + 1, size=(3, model.config.input_size))
    _check(model, images, 3, 3 if shared else None, shared=shared, lean=shared,
           stored_norms=True, tag_memory=True)


@pytest.mark.parametrize("algo", ["ffdl", "ffl"])
def test_stored_norms_of_one_layer_keep_none(algo):
    # One layer: no op reads a norm (its input is the image), so none is kept.
    config = ModelConfig(algo=algo, input_size=9, num_classes=4, hidden=(6,), theta=0.5)
    model = quantize(config, random_params(config, 3),
                     np.random.default_rng(3).uniform(0, 1, (64, 9)), input_max=16)
    images = np.random.default_rng(1).integers(0, model.fmt.input_max + 1, size=(3, 9))
    core = _check(model, images, 3, 3, shared=True, lean=True, stored_norms=True,
                  tag_memory=True)
    assert core.program.norm_reads == (frozenset(), frozenset())


@pytest.mark.parametrize("name", ["ffdl", "ffcl-adjacent-T3"])
def test_stored_norms_hold_the_extremes(name):
    # Full-magnitude weights and state-extreme biases: the widest sums of squares (the
    # longest bit_length) and zero ones (r = 0) into the kept registers.
    for model in (_random_model(name, 9), _extreme_model(name)):
        D, X = model.config.input_size, model.fmt.input_max
        images = np.stack([np.zeros(D, dtype=np.int64), np.full(D, X),
                           np.zeros(D, dtype=np.int64)])
        _check(model, images, lanes=3, label_lanes=3, shared=True, lean=True,
               stored_norms=True)


def test_stored_norms_is_a_bool():
    with pytest.raises(TypeError, match=r"^Stored norms must be True or False, not 1$"):
        Core(_random_model("ffdl", 1), lanes=3, stored_norms=1)


@pytest.mark.parametrize(("name", "kept"), [
    # FFDL, two layers: only layer 1's input norm, layer 0's; no feedback. One norm: the
    # unit's output registers keep it (Rsqrt(keep=True)), no register of its own.
    ("ffdl", []),
    # FFDL, three layers: layers 0 and 1 (the inputs of layers 1 and 2), not the top.
    ("ffdl-3layers", [0, 1]),
    # FFCL T = 3, two layers, adjacent: layer 0 (layer 1's input) and layer 1 (layer
    # 0's feedback source), each its latest (no per-bank copies).
    ("ffcl-adjacent-T3", [0, 1])])
def test_stored_norms_keep_only_what_the_program_reads(name, kept):
    model = _random_model(name, 3)
    core = Core(model, lanes=3, stored_norms=True)
    text = rtlil.convert(core, name="top")
    assert sorted({int(i) for i in re.findall(r"norm_r_l(\d)", text)}) == kept
    assert ("\\update" in text) == (not kept)
    assert "rsqrt_ff" not in text and "rsqrt_fb" not in text
    assert "sq_b0_l0" not in text
    plain = rtlil.convert(Core(model, lanes=3), name="top")
    assert "sq_b0_l0" in plain and "norm_r_" not in plain and "\\update" not in plain


#: Names only the small-part options stored_norms and tag_memory put in the RTLIL.
_OPTION_NAMES = ("norm_strobe", "norm_r_", "\\update", "tag_mem", "tag_valid_", "\\finish")


@pytest.mark.parametrize("name", ["rom_ffcl", "spram_shared_lean_ffdl", "training_small_part"])
def test_without_stored_norms_or_tag_memory_the_netlist_has_nothing_of_them(name):
    # Off, nothing of either option is built (a port nothing reads stays in the RTLIL as
    # a named wire), so every other netlist is the one it was: byte for byte, src
    # attributes aside, these cores' RTLIL equals main's before the options.
    from golden.inttrain import TrainRule
    from rtl.training_core import TrainingCore

    model = _random_model("ffcl-adjacent-T3" if name == "rom_ffcl" else "ffdl", 3)
    make = {
        "rom_ffcl": lambda **kw: Core(model, lanes=3, **kw),
        "spram_shared_lean_ffdl": lambda **kw: Core(model, lanes=3, weights="spram",
                                                    shared=True, label_lanes=3, lean=True,
                                                    **kw),
        "training_small_part": lambda **kw: TrainingCore(
            model, TrainRule(epochs=1, store_bits=8), lanes=3, weights="spram",
            bias_label_lanes=1, forward_multipliers="shared", signal_multipliers="shared",
            label_lanes=3, input_norm="forward", lean_forward=True, **kw),
    }[name]
    text = rtlil.convert(make(), name="top")
    assert [n for n in _OPTION_NAMES if n in text] == []
    assert "rsqrt_fb" in text and "tag_0" in text
    with_options = rtlil.convert(make(stored_norms=True, tag_memory=True), name="top")
    expected = [n for n in _OPTION_NAMES if n != ("norm_r_" if "ffdl" in name or
                                                  name.startswith("training") else "\\update")]
    assert [n for n in _OPTION_NAMES if n in with_options] == expected
    assert "rsqrt_fb" not in with_options and "tag_0" not in with_options


def test_a_norm_read_of_the_other_bank_is_refused():
    # Program.norm_reads proves that each read finds its bank's norm as the layer's
    # latest; an order in which it would not (a layer's feedback source run before it
    # in the iteration) is refused rather than built wrong.
    program = build_program(_random_model("ffcl-adjacent-T3", 3), lanes=3)
    ff, fb = program.norm_reads
    assert (ff, fb) == ({0}, {1})
    layers = [i for i, op in enumerate(program.ops) if op.kind == LAYER]
    ops = list(program.ops)
    # Iteration 2: layer 1 (the source) before layer 0, which would read the previous
    # iteration's layer 0 as its input.
    ops[layers[2]], ops[layers[3]] = ops[layers[3]], ops[layers[2]]
    with pytest.raises(RuntimeError, match=r"^op 4 \(layer 1, bank 1\) reads layer 0's norm "
                                           r"of bank 1, but the layer last wrote bank 0$"):
        _ = dataclasses.replace(program, ops=ops).norm_reads
    # Nor may an op read a norm before its layer ran in the inference (a kept norm's
    # reset value, or the last inference's, is never read): here layer 0's first op gone.
    with pytest.raises(RuntimeError, match=r"^op 1 \(layer 1, bank 0\) reads layer 0's norm "
                                           r"before the layer ran$"):
        _ = dataclasses.replace(program, ops=program.ops[1:]).norm_reads


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lanes": 2}, "at least 3 MAC lanes"),
    ({"lanes": 3, "label_lanes": 4}, "4 label lanes need as many MAC lanes"),
    ({"lanes": 3, "shared": 1}, None),
])
def test_shared_multipliers_refuse_what_they_cannot_do(kwargs, message):
    kwargs = {"shared": True, **kwargs}
    model = _random_model("ffdl", 1)
    if message is None:
        with pytest.raises(TypeError, match="Shared multipliers must be True or False"):
            Core(model, **kwargs)
    else:
        with pytest.raises(ValueError, match=message):
            Core(model, **kwargs)


def test_shared_multipliers_refuse_values_wider_than_the_lanes_multipliers():
    config = make_config("ffdl")
    model = quantize(config, random_params(config, 1),
                     np.random.default_rng(1).uniform(0, 1, (16, 9)), input_max=16,
                     state_bits=20)
    with pytest.raises(ValueError, match="state width 20 exceeds 16; use dedicated"):
        Core(model, lanes=3, label_lanes=1, shared=True)


@pytest.mark.parametrize("lanes", [1, 3])
def test_a_one_neuron_feedback_source_keeps_its_sweeps_apart(lanes):
    # Layer 2 (3 neurons) of an adjacent FFCL hears layer 3 of 1 neuron, and computes its
    # feed-forward and feedback passes in the same op (layer 1 reuses its kept products,
    # so it never does): the feedback passes are one element long, and with one-neuron
    # tiles (one lane) a neuron's feedback sweep would follow its feed-forward sweep by
    # one cycle, before the kept part it reads two cycles ahead is written.
    # SWEEP_SPACING holds such a pass, and the closed form counts the held cycle.
    config = ModelConfig(algo="ffcl", hidden=(4, 3, 1), loops=3, input_size=9,
                         num_classes=4, theta=0.5)
    params = random_params(config, 5)
    model = quantize(config, params, np.random.default_rng(6).uniform(0, 1, size=(64, 9)),
                     input_max=16)
    program = build_program(model, lanes=lanes)
    assert any(op.kind == LAYER and op.fb_en and op.fb_n_in == 1 and op.ff_src != SRC_CACHE
               for op in program.ops)
    images = np.random.default_rng(7).integers(0, 17, size=(3, 9))
    _check(model, images, lanes)


def test_a_core_on_a_deep_weight_store_matches_the_integer_model():
    # 784 x 21 weights on one lane: 16,527 words, past one ECP5 block RAM's 16,384, so the
    # weight store reads in 3 cycles and the element takes a second operand stage (the
    # cheapest model that deep; MNIST 784-256-256 on 9 lanes is 30,160 words).
    config = ModelConfig(algo="ffdl", input_size=784, num_classes=4, hidden=(21, 3),
                         theta=0.5)
    rng = np.random.default_rng(3)
    model = quantize(config, random_params(config, 3), rng.uniform(0, 1, (16, 784)),
                     input_max=16)
    core = _check(model, rng.integers(0, 17, size=(1, 784)), lanes=1)
    assert (len(core.program.weight_words), core.program.weight_latency) == (16527, 3)
    assert (core.program.operand_stages, core.program.mac_drain) == (2, MAC_DRAIN + 1)
