# amaranth: UnusedElaboratable=no
"""The training core against IntTrainer, sample by sample, in Amaranth's simulator.

After every training sample every stored W, b, U (fine bits included) and both
generators must equal the golden trainer's; classifying afterwards must equal the golden
IntModel of the trained weights; the cycle counter must equal the closed form.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from amaranth.sim import Simulator

from ffcl_hw.flows.synth_training import training_core
from golden.config import ModelConfig
from golden.datasets import load_dataset
from golden.intformat import IntFormat
from golden.intmodel import IntLayer, IntModel
from golden.inttrain import IntTrainer, TrainRule, default_lr_shift, initial_model
from golden.lfsr import Lfsr
from rtl.bias_label_pass import BiasLabelPass
from rtl.core import LOAD_TARGETS, Core, memory_images
from rtl.host_link import HostLink
from rtl.input_scaler import SQUARE_STAGES, InputScaler
from rtl.label_groups import LabelGroups
from rtl.normaliser import Rsqrt, Scaler
from rtl.training_core import TrainingCore
from rtl.update_lane import UpdateLane
from rtl.update_words import UpdateWords
from rtl.weight_pass import WeightPass
from sim.amaranth_sim import count_training_phases
from sim.lint import lint_verilog
from tests.rtl.helpers import PERIOD, one_by_default, simulate

SEED = 2024
D, K, X = 9, 4, 16


def make_model(config: ModelConfig, seed: int) -> IntModel:
    fmt = IntFormat(weight_bits=8, state_bits=16, frac_bits=6, input_max=X)
    rng = np.random.default_rng(seed)
    layers = []
    for i, n in enumerate(config.hidden):
        n_in = config.input_size if i == 0 else config.hidden[i - 1]
        layer = IntLayer(W=rng.integers(-40, 41, (n, n_in)), w_exp=7 if i == 0 else 8,
                         b=rng.integers(-300, 300, n), U=rng.integers(-40, 41, (n, K)))
        source = config.feedback_source(i)
        if source is not None:
            layer.V = rng.integers(-40, 41, (n, config.hidden[source]))
            layer.v_exp = 8
        layers.append(layer)
    model = IntModel(config=config, fmt=fmt, layers=layers)
    model.check()
    return model


def _next_word(lfsr: Lfsr) -> int:
    """The word a generator in ``lfsr``'s state offers next (without advancing it)."""
    copy = Lfsr(0)
    copy.state = lfsr.state
    return copy.word()


async def read_stored(ctx, dut: TrainingCore) -> dict[str, list[int]]:
    """Every stored word through the read-back port (while ``done`` is offered)."""
    images = dut.stored_images(dut.trainer.stored)   # only for the word counts
    words = {}
    for name, target in (("W", LOAD_TARGETS["weights"]), ("b", LOAD_TARGETS["bias"]),
                         ("U", LOAD_TARGETS["labels"])):
        count = len(images[name])
        got = []
        for t in range(count + dut.read_latency):
            if t < count:
                ctx.set(dut.read.target, target)
                ctx.set(dut.read.addr, t)
            await ctx.tick()
            if t >= dut.read_latency - 1 and len(got) < count:
                got.append(int(ctx.get(dut.read_data)))
        words[name] = got
    return words


async def check_stored(ctx, dut: TrainingCore, trainer: IntTrainer, where: str) -> None:
    """The stored words and both generators' next words equal ``trainer``'s."""
    expected = dut.stored_images(trainer.stored)
    for name, words in (await read_stored(ctx, dut)).items():
        assert words == expected[name], f"{where}: stored {name}"
    assert (ctx.get(dut.words_gen.words.payload)
            == _next_word(trainer.rounding_lfsr)), f"{where}: rounding generator"
    assert (ctx.get(dut.labels_gen.words.payload)
            == _next_word(trainer.label_lfsr)), f"{where}: label generator"


def run_samples(dut: TrainingCore, trainer: IntTrainer, samples, *, classify=(),
                lambdas=None, prepare=None, labels_drawn=None):
    """Feed ``samples`` (x, y) for training, then ``classify`` images (train 0).

    ``prepare``: an ``async def (ctx)`` run before the first pixel (an SPRAM core's
    starting words are written in there).

    ``lambdas``: per sample, (the value set on ``lr_shift_in`` with its pixels, the lambda
    the golden trainer takes); the port changes to another value right after the last
    pixel, which the sample must not see. Default: lambda_0 throughout.
    ``labels_drawn``: a list to which each training sample's (y, wrong label) is added.
    Returns the cycles of every training sample and the labels of the classified ones.
    Compares the stored memories and generators with ``trainer`` after every sample.
    """
    if lambdas is None:
        lambdas = [(dut.lr_shift, dut.lr_shift)] * len(samples)
    cycles, labels = [], []

    async def feed(ctx, x, y, train, lam=None):
        if lam is not None:
            ctx.set(dut.lr_shift_in, lam)
        for pixel in x:
            ctx.set(dut.samples.payload, {"pixel": int(pixel), "label": y, "train": train})
            ctx.set(dut.samples.valid, 1)
            await ctx.tick().until(dut.samples.ready)
        ctx.set(dut.samples.valid, 0)
        if lam is not None:
            # Sampled with the last pixel: a change now is the next sample's.
            low, high = dut.lr_range
            ctx.set(dut.lr_shift_in, high if lam <= low else low)
        phases = await count_training_phases(ctx, dut)
        record = ctx.get(dut.done.payload)
        # The phase output is a counted code exactly while the counter counts; for the
        # sample the closed forms describe (the callers hold the cycles to it) each phase
        # takes the cycles training_phase_cycles says.
        assert sum(phases.values()) == record.cycles, (phases, record.cycles)
        if train and record.cycles == dut.training_cycles():
            assert phases == dut.training_phase_cycles(), phases
        if not train:
            ctx.set(dut.done.ready, 1)
            await ctx.tick()
            ctx.set(dut.done.ready, 0)
        return record

    async def testbench(ctx):
        if prepare is not None:
            await prepare(ctx)
        for number, ((x, y), (lam_set, lam)) in enumerate(zip(samples, lambdas, strict=True)):
            record = await feed(ctx, x, int(y), 1, lam_set)
            # The record is the golden trainer's report: the label of the training pass
            # (with every iteration trained, iterations after the first see the updates)
            # and the wrong label drawn.
            result = trainer.train_sample(x, int(y), lam)
            assert (record.label, record.wrong) == (result.label, result.wrong), \
                f"sample {number}"
            if labels_drawn is not None:
                labels_drawn.append((int(y), result.wrong))
            cycles.append(int(record.cycles))
            await check_stored(ctx, dut, trainer, f"sample {number}")
            ctx.set(dut.done.ready, 1)
            await ctx.tick()
            ctx.set(dut.done.ready, 0)
        for x in classify:
            record = await feed(ctx, x, 0, 0)
            labels.append(int(record.label))

    simulate(dut, testbench)
    return cycles, labels


CASES = {
    # one layer, one lane
    "one_layer_p1": (dict(hidden=(5,)), dict(), 1),
    # two layers of 7 and 5 on 3 lanes (ragged tiles), stochastic, table
    "two_layers_p3": (dict(hidden=(7, 5)), dict(), 3),
    # nearest rounding, piecewise sigmoid, B_m = 12 with saturation (lr_shift 0)
    "two_layers_p3_b12": (dict(hidden=(4, 5)),
                          dict(store_bits=12, lr_shift=0, rounding="nearest",
                               sigmoid="piecewise"), 3),
}


#: FFCL (the rule's loss_iterations 'last': T iterations, then one update per layer, its
#: V pass reading v of iteration T - 1's activations of the feedback source).
FFCL_CASES = {
    # every iteration trained (loss_iterations 'all'): updates between the iterations
    "ffcl_all_adjacent_t2_p3": (dict(hidden=(5, 4), loops=2, topology="adjacent"),
                                dict(loss_iterations="all"), 3),
    "ffcl_all_top_t3_p2": (dict(hidden=(4, 3, 5), loops=3, topology="top"),
                           dict(loss_iterations="all"), 2),
    # adjacent, T = 2, two layers of 5 and 4 on 3 lanes
    "ffcl_adjacent_t2_p3": (dict(hidden=(5, 4), loops=2, topology="adjacent"), dict(), 3),
    # top (layer 1 hears layer 3), T = 3, on 1 lane
    "ffcl_top_t3_p1": (dict(hidden=(3, 4, 2), loops=3, topology="top"), dict(), 1),
    # adjacent, T = 3, three layers on 8 lanes (two with feedback), nearest, B_m 12
    "ffcl_adjacent_t3_p8": (dict(hidden=(6, 9, 3), loops=3, topology="adjacent"),
                            dict(store_bits=12, rounding="nearest"), 8),
    # top, T = 2, on 2 lanes, the piecewise sigmoid (the core builds feedback 'state'
    # only: 'goodness' runs in the golden models). Layer 2's 5 neurons are 3 tiles of 2
    # lanes (so are layer 3's in ffcl_all_top_t3_p2): they hold WeightPass's running
    # first neuron (a step of P - 1 fails both, and test_lambda's 2-tile layer)
    "ffcl_top_t2_p2": (dict(hidden=(3, 5), loops=2, topology="top"),
                       dict(sigmoid="piecewise"), 2),
}


#: The cases also run with a multiplier per update lane (the default borrows the MAC
#: lanes'), and with the learning signal on MAC lanes 0 and 1 too: one FFDL and one FFCL
#: case with updates between iterations.
OTHER_MULTIPLIER_CASES = ("two_layers_p3", "ffcl_all_adjacent_t2_p3")


@pytest.mark.parametrize(("name", "multipliers"),
                         [(name, "shared") for name in sorted(CASES) + sorted(FFCL_CASES)]
                         + [(name, setting) for name in OTHER_MULTIPLIER_CASES
                            for setting in ("dedicated", "signal")])
def test_training_core_trains_like_the_golden_trainer(name, multipliers):
    check_case(name, multipliers)


#: One lane time-shared by b, U+ and U- (``bias_label_lanes=1``): a neuron every third
#: cycle, its label word read again before the write. Layers of 1 to 9 neurons on 1 to 8
#: MAC lanes, FFDL and FFCL with updates between iterations, B_m 12 and 16, K = 4 labels
#: so the two updated fields sit beside two kept ones.
ONE_LANE_CASES = ("one_layer_p1", "two_layers_p3_b12", "ffcl_all_adjacent_t2_p3",
                  "ffcl_adjacent_t3_p8")


@pytest.mark.parametrize("name", one_by_default(list(ONE_LANE_CASES), "ffcl_all_adjacent_t2_p3"))
def test_one_time_shared_bias_label_lane_trains_like_the_golden_trainer(name):
    check_case(name, "shared", bias_label_lanes=1)


#: The inference core's sweep and label scan on its MAC lanes too (``Core(shared=True)``,
#: at least 3 lanes), the small part's arrangement, with one or three b and U lanes and
#: the learning signal on the lanes or not: every multiplier of the core is a MAC lane's.
#: The label scan of a shared core takes a lane per label: K = 4 labels, 4 lanes or more.
SHARED_FORWARD_CASES = {
    "ffdl_p4": ((dict(hidden=(7, 5)), dict(), 4), "shared", 3),
    "ffdl_p4_b12_one_lane": ((dict(hidden=(4, 9)),
                              dict(store_bits=12, lr_shift=0, rounding="nearest",
                                   sigmoid="piecewise"), 4), "dedicated", 1),
    "ffcl_all_adjacent_t2_p5": ((dict(hidden=(6, 4), loops=2, topology="adjacent"),
                                 dict(loss_iterations="all"), 5), "signal", 1),
    "ffcl_adjacent_t3_p8": (FFCL_CASES["ffcl_adjacent_t3_p8"], "signal", 3),
}


#: G < K label weights a word (one time-shared b and U lane): U[i, y] and U[i, y'] in
#: two words, or in one when both labels share it. name: (case, multipliers, G, forward
#: multipliers, samples). K = 4: G = 2 (two full words), 3 (a word of 3 and one of 1 and
#: two zeros), 1 (a word per label).
LABEL_GROUP_CASES = {
    "ffdl_p4_g2_shared": (SHARED_FORWARD_CASES["ffdl_p4"][0], "signal", 2, "shared", 8),
    "ffdl_p3_g3": (CASES["two_layers_p3_b12"], "shared", 3, "dedicated", 6),
    "ffcl_all_p5_g1_shared": (SHARED_FORWARD_CASES["ffcl_all_adjacent_t2_p5"][0], "shared",
                              1, "shared", 3),
    "ffcl_top_p2_g2": (FFCL_CASES["ffcl_top_t2_p2"], "dedicated", 2, "dedicated", 6),
}


@pytest.mark.parametrize("name", one_by_default(sorted(LABEL_GROUP_CASES), "ffdl_p3_g3"))
def test_label_weights_in_several_words_train_like_the_golden_trainer(name):
    case, multipliers, label_lanes, forward, samples = LABEL_GROUP_CASES[name]
    drawn = []
    dut = check_case(name, multipliers, 1, forward_multipliers=forward, case=case,
                     label_lanes=label_lanes, samples=samples, labels_drawn=drawn)
    assert dut.label_groups.count == -(-K // label_lanes) > 1
    if label_lanes > 1:
        # Both ways of the two labels were trained: in one word and in two.
        same = [y // label_lanes == wrong // label_lanes for y, wrong in drawn]
        assert any(same) and not all(same), drawn
    # Two reads a neuron in the scan, four cycles a neuron in the b and U pass (against
    # one read and three cycles with every label in one word).
    one_word = TrainingCore(dut.model, dut.rule, lanes=dut.lanes, bias_label_lanes=1,
                            multipliers=dut.multipliers,
                            signal_multipliers=dut.signal_multipliers,
                            forward_multipliers=forward)
    assert dut.scan.cycles(5) == one_word.scan.cycles(5) + 5
    assert dut.bias_label.cycles(5) == one_word.bias_label.cycles(5) + 5


@pytest.mark.parametrize("name", one_by_default(sorted(SHARED_FORWARD_CASES),
                                                "ffcl_all_adjacent_t2_p5"))
def test_a_training_core_on_a_shared_core_trains_like_the_golden_trainer(name):
    case, multipliers, bias_label_lanes = SHARED_FORWARD_CASES[name]
    check_case(name, multipliers, bias_label_lanes, forward_multipliers="shared", case=case)


#: The update's normalised inputs with (r, sh) kept from the forward pass
#: (``input_norm="forward"``): FFDL; FFCL with 'last' (adjacent on 8 lanes: two layers
#: hear the loop; top on 1 lane: layer 1 hears layer 3, through its cached-product op)
#: and with 'all' (updates between the iterations: each one's r, not the previous
#: iteration's); and the small part's arrangement (every multiplier a MAC lane's, one b
#: and U lane, G = 2 < K); and a layer of 2 neurons over 16, whose v step stays
#: PREPARE's longest even when it only scales (so the counter times that step). Each
#: name: (case, multipliers, b/U lanes, forward multipliers, G).
FORWARD_NORM_CASES = {
    "two_layers_p3": (CASES["two_layers_p3"], "shared", 3, "dedicated", None),
    "wide_then_narrow_p3": ((dict(hidden=(16, 2)), dict(), 3), "shared", 3, "dedicated",
                            None),
    "ffcl_adjacent_t3_p8": (FFCL_CASES["ffcl_adjacent_t3_p8"], "shared", 3, "dedicated",
                            None),
    "ffcl_top_t3_p1": (FFCL_CASES["ffcl_top_t3_p1"], "shared", 3, "dedicated", None),
    "ffcl_all_adjacent_t2_p3": (FFCL_CASES["ffcl_all_adjacent_t2_p3"], "shared", 3,
                                "dedicated", None),
    "ffcl_all_top_t3_p2": (FFCL_CASES["ffcl_all_top_t3_p2"], "shared", 3, "dedicated", None),
    "ffcl_all_adjacent_t2_p5_small_part": (SHARED_FORWARD_CASES["ffcl_all_adjacent_t2_p5"][0],
                                           "signal", 1, "shared", 2),
}


@pytest.mark.parametrize("name", one_by_default(sorted(FORWARD_NORM_CASES), "two_layers_p3",
                                                "wide_then_narrow_p3"))
def test_normalised_inputs_from_the_forward_pass_train_like_the_golden_trainer(name):
    case, multipliers, bias_label_lanes, forward, label_lanes = FORWARD_NORM_CASES[name]
    dut = check_case(name, multipliers, bias_label_lanes, forward_multipliers=forward,
                     case=case, label_lanes=label_lanes, input_norm="forward")
    assert dut.scaler.reciprocal == "given" and dut.core.norms_enabled
    # A v step is SCALE alone: n + the scaler's latency + 2 cycles, against the own
    # step's SQUARES (n + 4) and RSQRT (the table's latency + 1) before it. The counter
    # equals the closed form (check_case), which takes the shorter step; PREPARE runs
    # it beside the learning signal and the words, so a layer gains only where the v
    # steps were the longest of the three.
    own = TrainingCore(dut.model, dut.rule, lanes=dut.lanes,
                       **{**dut.options, "input_norm": "own"})
    for n in (1, 5, 9):
        assert dut.scaler.cycles(n) == n + Scaler.LATENCY + 2
        assert own.scaler.cycles(n) == (n + 2 + SQUARE_STAGES) + (Rsqrt.LATENCY + 1) \
            + dut.scaler.cycles(n)
    assert dut.training_cycles() <= own.training_cycles()
    if name == "two_layers_p3":
        # 7 inputs to layer 2: the own v step (2 x 7 + 15 = 29) was PREPARE's longest,
        # the learning signal's 2 x 5 + 14 = 24 is now: 5 cycles fewer.
        assert own.training_cycles() - dut.training_cycles() == 29 - 24
    if name == "wide_then_narrow_p3":
        # Layer 2's v step, 16 + 6 = 22 cycles, is longer than its words (16 + 3 + 2)
        # and its learning signal (2 x 2 + 14): the counter holds the step's length.
        assert dut.scaler.cycles(16) == 22 > max(16 + 3 + 2, dut.scan.cycles(2))
        assert own.training_cycles() - dut.training_cycles() == own.scaler.cycles(16) - 22


#: The b and U pass on the W pass's lane 0 (``shared_update_lane``), no lane of its own:
#: name: (case, multipliers, G). One MAC lane (lane 0 the W pass's only lane); a
#: multiplier per update lane (v = 1 into the lane's own multiplier's register), nearest
#: rounding, B_m 12 with saturation and k <= 0 (lr_shift 0); the learning signal on MAC
#: lanes 0 and 1 too (MAC lane 0 then serves the scan, the W pass and the b and U pass in
#: turn), FFCL with updates between the iterations; G = 2 < K (two label words, a neuron
#: every fourth cycle) on a shared core.
SHARED_LANE_CASES = {
    "one_layer_p1": (CASES["one_layer_p1"], "shared", None),
    "two_layers_p3_b12_dedicated": (CASES["two_layers_p3_b12"], "dedicated", None),
    "ffcl_all_adjacent_t2_p3_signal": (FFCL_CASES["ffcl_all_adjacent_t2_p3"], "signal", None),
    "ffdl_p4_g2_signal": (SHARED_FORWARD_CASES["ffdl_p4"][0], "signal", 2),
}


@pytest.mark.parametrize("name", one_by_default(sorted(SHARED_LANE_CASES),
                                                "ffcl_all_adjacent_t2_p3_signal"))
def test_the_bias_label_pass_on_a_weight_pass_lane_trains_like_the_golden_trainer(name):
    # Every stored word after every sample and the counter at the closed form
    # (check_case): the bias's range and the label weights' on the one lane, -d through
    # the W lane's multiplier with v = 1, and the W pass's writes quiet while the b and
    # U pass has its lane.
    case, multipliers, label_lanes = SHARED_LANE_CASES[name]
    forward = "shared" if label_lanes else "dedicated"
    dut = check_case(name, multipliers, 1, case=case, label_lanes=label_lanes,
                     forward_multipliers=forward, shared_update_lane=True)
    assert dut.shared_update_lane and dut.options["shared_update_lane"]
    assert dut.bias_label.lanes == (dut.weight_pass.lanes[0],)
    assert dut.bias_label.products() == []
    # The same cycles as on a lane of its own: the W lane's latency is a unit lane's.
    own = TrainingCore(dut.model, dut.rule, lanes=dut.lanes,
                       **{**dut.options, "shared_update_lane": False})
    assert own.bias_label.lanes[0] is not dut.weight_pass.lanes[0]
    assert dut.bias_label.drain == own.bias_label.drain
    assert dut.training_cycles() == own.training_cycles()
    assert dut.products() == own.products()


def test_a_shared_update_lane_refuses_what_it_cannot_do():
    model = make_model(ModelConfig(algo="ffdl", input_size=D, num_classes=K, hidden=(5, 4)),
                       SEED)
    rule = TrainRule(epochs=1)
    with pytest.raises(TypeError, match=r"^Shared update lane must be True or False, "
                                        r"not 1$"):
        TrainingCore(model, rule, lanes=2, bias_label_lanes=1, shared_update_lane=1)
    with pytest.raises(ValueError, match=r"^The b and U pass borrows one lane of the W pass: "
                                         r"a shared update lane needs bias_label_lanes=1, "
                                         r"not 3$"):
        TrainingCore(model, rule, lanes=2, shared_update_lane=True)
    with pytest.raises(TypeError, match=r"^Lend lane must be True or False, not 'yes'$"):
        WeightPass(model, rule, lanes=2, words=16, lend_lane="yes")
    lane = WeightPass(model, rule, lanes=2, words=16, lend_lane=True).lanes[0]
    BiasLabelPass(model, rule, lanes=1, borrowed_lane=lane)
    with pytest.raises(TypeError, match=r"^Borrowed lane must be an rtl.update_lane.UpdateLane, "
                                        r"not 3$"):
        BiasLabelPass(model, rule, lanes=1, borrowed_lane=3)
    with pytest.raises(ValueError, match=r"^A borrowed lane is one time-shared lane: build "
                                         r"the pass with lanes=1, not 3$"):
        BiasLabelPass(model, rule, lanes=3, borrowed_lane=lane)
    # A lane of another rule: stored widths (W's 13 bits), rounding, shifts.
    for other, what in ((TrainRule(epochs=1, store_bits=13), "stored ranges"),
                        (TrainRule(epochs=1, rounding="nearest"), "rounding"),
                        (TrainRule(epochs=1, lr_shift=2), "shift range")):
        stranger = UpdateLane.for_model(model, other, product_latency=2)
        with pytest.raises(ValueError, match=rf"^A borrowed lane must have the b and U "
                                             rf"lane's {what}, "):
            BiasLabelPass(model, rule, lanes=1, borrowed_lane=stranger)
    # A latency the time-shared schedule cannot take (the label word's second read
    # would fall in an issue slot: L mod 3 = 2).
    slow = UpdateLane.for_model(model, rule, product_latency=4)
    with pytest.raises(ValueError, match=r"^A time-shared lane of latency 8 would read a "
                                         r"label word again in an issue slot$"):
        BiasLabelPass(model, rule, lanes=1, borrowed_lane=slow)


#: The option's own names in the RTLIL (the W pass's ``guest`` port, the b and U pass's
#: ``lane`` port), and the b and U pass's own lane module, which only a core without it has.
_SHARED_LANE_NAMES = ("guest__", "lane__run")
_OWN_LANE_MODULE = "top.bias_label.lane"


@pytest.mark.parametrize("name", ["training_ffcl_all_one_lane", "training_small_part"])
def test_without_a_shared_update_lane_the_netlist_has_nothing_of_it(name):
    # Off, the ports and the muxes are not built at all (a port nothing reads stays in
    # the RTLIL as a named wire), so every other netlist is the one it was: byte for
    # byte, src attributes aside, these cores' RTLIL equals main's before the option.
    config = ModelConfig(algo="ffcl", input_size=D, num_classes=K, hidden=(5, 4), loops=2,
                         topology="adjacent")
    model = make_model(config, SEED)
    rule = TrainRule(epochs=1, store_bits=16, loss_iterations="all")
    small = dict(weights="spram", forward_multipliers="shared", signal_multipliers="shared",
                 label_lanes=3, compact_lanes=True, input_norm="forward", lean_signal=True)
    options = dict(bias_label_lanes=1, **(small if name == "training_small_part" else {}))
    if name == "training_small_part":
        # The same core as _small_part_rtlil's: its conversions, shared with the tests
        # after this one (a conversion takes seconds).
        text, with_option = _small_part_rtlil("shared_update_lane")
    else:
        text = rtlil.convert(TrainingCore(model, rule, lanes=3, **options), name="top")
        with_option = rtlil.convert(TrainingCore(model, rule, lanes=3, **options,
                                                 shared_update_lane=True), name="top")
    assert [n for n in _SHARED_LANE_NAMES if n in text] == []
    assert _OWN_LANE_MODULE in text
    assert [n for n in _SHARED_LANE_NAMES if n in with_option] == list(_SHARED_LANE_NAMES)
    assert _OWN_LANE_MODULE not in with_option



def _small_part_rtlil(option: str, **extra) -> tuple[str, str]:
    """The RTLIL of a small-part core (FFCL adjacent T = 2, every iteration trained, 3
    lanes, SPRAM, every multiplier a MAC lane's, G = 3, compact lanes, the forward pass's
    input norms, the lean signal, one b and U lane; plus ``extra``) without and with the
    boolean ``option``."""
    return _small_part_text(tuple(sorted(extra.items()))), _small_part_text(
        tuple(sorted({**extra, option: True}.items())))


@functools.cache
def _small_part_text(extra: tuple) -> str:
    """The RTLIL of :func:`_small_part_rtlil`'s core with the options ``extra`` (sorted
    (name, value) pairs), converted once a process: several tests take the same core
    without their option (a conversion takes seconds)."""
    config = ModelConfig(algo="ffcl", input_size=D, num_classes=K, hidden=(5, 4), loops=2,
                         topology="adjacent")
    model = make_model(config, SEED)
    rule = TrainRule(epochs=1, store_bits=16, loss_iterations="all")
    options = dict(weights="spram", forward_multipliers="shared", signal_multipliers="shared",
                   label_lanes=3, compact_lanes=True, input_norm="forward", lean_signal=True,
                   bias_label_lanes=1, **dict(extra))
    return rtlil.convert(TrainingCore(model, rule, lanes=3, **options), name="top")

#: The compact learning signal's own names in the RTLIL: the mark of a g beyond its kept
#: bits, the read port held for the second multiplier, -sigma+ into the first.
_COMPACT_SIGNAL_NAMES = ("beyond_pos", "holding", "minus_sigma")


@pytest.mark.parametrize("name", ["training_small_part", "training_icebreaker"])
def test_without_the_compact_learning_signal_the_netlist_has_nothing_of_it(name):
    # Off, the lean unit is built as before (byte for byte, src attributes aside, these
    # cores' RTLIL equals main's before the option); on, its names are there.
    extra = (dict(lean_forward=True, serial_weight_pass=True, shared_word_network=True,
                  shared_update_lane=True) if name == "training_icebreaker" else {})
    text, with_option = _small_part_rtlil("compact_signal", **extra)
    assert [n for n in _COMPACT_SIGNAL_NAMES if n in text] == []
    assert [n for n in _COMPACT_SIGNAL_NAMES if n in with_option] == list(_COMPACT_SIGNAL_NAMES)


#: One update lane in the W and V pass (``serial_weight_pass``), taking each word's P
#: entries in turn, on block RAM: 2, 3 and 8 lanes (ragged tiles), nearest rounding with
#: saturation, FFCL with V columns after the W columns of each tile (top: layer 1's V
#: words from layer 2; 'all': updates between the iterations).
SERIAL_CASES = ("two_layers_p3_b12", "ffcl_top_t2_p2", "ffcl_adjacent_t3_p8",
                "ffcl_all_adjacent_t2_p3")


@pytest.mark.parametrize("name", one_by_default(list(SERIAL_CASES), "two_layers_p3_b12",
                                                "ffcl_adjacent_t3_p8"))
def test_one_serial_weight_lane_trains_like_the_golden_trainer(name):
    dut = check_case(name, "shared", serial_weight_pass=True)
    parallel = TrainingCore(dut.model, dut.rule, lanes=dut.lanes)
    wpass, lanes = dut.weight_pass, dut.lanes
    assert len(wpass.lanes) == 1 and len(parallel.weight_pass.lanes) == lanes
    # A word every P cycles, written P - 1 cycles later than P lanes write it (block
    # RAM: no slots to pad for); each tile's reads take P columns cycles unless its
    # shadow load is longer.
    assert (wpass.spacing, wpass.write_pad) == (lanes, 0)
    assert wpass.write_delay == parallel.weight_pass.write_delay + lanes - 1
    for columns in (1, 5, 9):
        assert wpass.tile_cycles(columns) == max(lanes * columns, wpass.load_interval)
        assert wpass.pass_cycles(columns) == lanes * (columns - 1) + 1
    assert dut.training_cycles() > parallel.training_cycles()
    with pytest.raises(ValueError, match=r"^A serial pass takes the entries of a word of "
                                         r"at least 2 lanes, not 1"):
        TrainingCore(dut.model, dut.rule, lanes=1, serial_weight_pass=True)
    with pytest.raises(TypeError, match=r"^Serial must be a bool, not 1$"):
        TrainingCore(dut.model, dut.rule, lanes=lanes, serial_weight_pass=1)


@pytest.mark.parametrize("name", one_by_default(["ffcl_top_t2_p2", "ffcl_all_adjacent_t2_p3"],
                                                "ffcl_top_t2_p2"))
def test_a_serial_pass_with_held_addresses_on_block_ram_trains_like_the_golden_trainer(name):
    # The written words' addresses held a register a word (held_addresses) on block RAM
    # (a read every P cycles, no pad): P = 2 (the write 9 cycles after its read: 5
    # registers) and P = 3 (10 cycles: 4), FFCL with layer 1's V words from layer 2 and
    # with updates between the iterations; every stored word after every sample.
    dut = check_case(name, "shared", serial_weight_pass=True, held_addresses=True)
    wpass = dut.weight_pass
    assert wpass.held_addresses and dut.options["held_addresses"]
    assert (wpass.spacing, wpass.write_delay) == {"ffcl_top_t2_p2": (2, 9),
                                                  "ffcl_all_adjacent_t2_p3": (3, 10)}[name]
    assert TrainingCore(dut.model, dut.rule, lanes=dut.lanes).options[
        "held_addresses"] is False
    with pytest.raises(TypeError, match=r"^Held addresses must be a bool, not 1$"):
        TrainingCore(dut.model, dut.rule, lanes=dut.lanes, serial_weight_pass=True,
                     held_addresses=1)
    with pytest.raises(ValueError, match=r"^Held addresses are a serial pass's: they "
                                         r"need serial=True$"):
        TrainingCore(dut.model, dut.rule, lanes=dut.lanes, held_addresses=True)


@pytest.mark.parametrize("name", one_by_default(["ffcl_top_t2_p2", "ffcl_all_adjacent_t2_p3"],
                                                "ffcl_top_t2_p2"))
def test_a_serial_pass_with_a_late_replay_on_block_ram_trains_like_the_golden_trainer(name):
    # The serial lane's kappa from the replay itself (late_replay) on block RAM: FFCL
    # with V words from layer 2 and with updates between the iterations, P = 2 and 3
    # (a word every P cycles: its first entry right after the last of the word before).
    dut = check_case(name, "shared", serial_weight_pass=True, late_replay=True)
    assert dut.weight_pass.late_replay and dut.options["late_replay"]
    assert TrainingCore(dut.model, dut.rule, lanes=dut.lanes).options["late_replay"] is False
    with pytest.raises(TypeError, match=r"^Late replay must be a bool, not 1$"):
        TrainingCore(dut.model, dut.rule, lanes=dut.lanes, serial_weight_pass=True,
                     late_replay=1)
    with pytest.raises(ValueError, match=r"^A late replay is a serial pass's: it needs "
                                         r"serial=True$"):
        TrainingCore(dut.model, dut.rule, lanes=dut.lanes, late_replay=True)


def test_without_a_late_replay_the_netlist_has_nothing_of_it():
    # Off, the serial pass carries kappa with the word as before (byte for byte, src
    # attributes aside, the cores' RTLIL equals main's before the option); on, the
    # tile's-last-word bit the lane rewinds the replay with is there.
    text, with_option = _small_part_rtlil("late_replay", serial_weight_pass=True)
    assert "in_last_column" not in text
    assert "in_last_column" in with_option


def test_a_serial_lane_with_its_stored_values_in_a_memory_trains_like_the_golden_trainer():
    # c_memory: the serial lane's c through a block RAM, for the W and V words (a word's
    # P entries back to back) and, lent to the b and U pass, for b and U (b wider than
    # W: the memory is as wide as the widest); FFCL with V words from layer 2, P = 2,
    # two label weights a word (U[i, y] and U[i, y'] read in turn).
    dut = check_case("ffcl_top_t2_p2", "shared", bias_label_lanes=1, label_lanes=2,
                     serial_weight_pass=True, shared_update_lane=True, c_memory=True)
    assert dut.weight_pass.lanes[0].c_memory and dut.options["c_memory"]
    assert dut.bias_label.lanes[0] is dut.weight_pass.lanes[0]
    assert TrainingCore(dut.model, dut.rule, lanes=dut.lanes).options["c_memory"] is False
    with pytest.raises(TypeError, match=r"^C memory must be a bool, not 1$"):
        TrainingCore(dut.model, dut.rule, lanes=dut.lanes, serial_weight_pass=True,
                     c_memory=1)
    with pytest.raises(ValueError, match=r"^A lane's c memory is a serial pass's \(one "
                                         r"block RAM for its one lane\): it needs "
                                         r"serial=True$"):
        TrainingCore(dut.model, dut.rule, lanes=dut.lanes, c_memory=True)


def test_a_serial_lane_with_late_rounding_trains_like_the_golden_trainer():
    # late_rounding: the serial lane's rho and kappa a cycle after their entry (rho at
    # the entry's own neuron, the replay stepped and rewound a cycle later), lent to the
    # b and U pass, which gives them a cycle late too (kappa by the kind a cycle old), a
    # neuron every fourth cycle (G = 2); FFCL 'all' (updates between iterations), P = 3,
    # eight samples. A neuron every third cycle (rho's address kept a cycle): the kappa
    # ring's test, on this lane.
    dut = check_case("ffcl_all_adjacent_t2_p3", "shared", bias_label_lanes=1, label_lanes=2,
                     serial_weight_pass=True, shared_update_lane=True, late_replay=True,
                     late_rounding=True, samples=8)
    assert dut.bias_label.issue_period == 4
    assert dut.weight_pass.lanes[0].late_rounding and dut.options["late_rounding"]
    assert TrainingCore(dut.model, dut.rule, lanes=dut.lanes).options["late_rounding"] is False
    with pytest.raises(TypeError, match=r"^Late rounding must be a bool, not 1$"):
        TrainingCore(dut.model, dut.rule, lanes=dut.lanes, serial_weight_pass=True,
                     late_replay=True, compact_lanes=True, late_rounding=1)
    with pytest.raises(ValueError, match=r"^Late rounding takes kappa from a late replay "
                                         r"into a compact lane: it needs late_replay=True "
                                         r"and compact_lanes=True$"):
        TrainingCore(dut.model, dut.rule, lanes=dut.lanes, serial_weight_pass=True,
                     compact_lanes=True, late_rounding=True)


@pytest.mark.parametrize(("name", "label_lanes", "lent"), [("ffcl_top_t2_p2", None, True),
                                                           ("ffcl_all_adjacent_t2_p3", 2, False)])
def test_a_kappa_ring_trains_like_the_golden_trainer(name, label_lanes, lent):
    # kappa_ring: kappa^b, kappa^+, kappa^- loaded into the b and U pass's ring as the
    # update takes them, rotated with each entry: on the W pass's lane with its late
    # rounding (the ring turns a cycle after each entry's kind), a neuron every third
    # cycle (P = 2, FFCL with V words from layer 2), and on a lane of its own (the ring
    # turns with the kind), every fourth (G = 2, FFCL 'all': the pass between the
    # iterations too); eight samples, every stored word after every sample (with three,
    # no stored b depends on a neuron's R being its neighbour's: the late lane's rho).
    lent_options = (dict(serial_weight_pass=True, shared_update_lane=True, late_replay=True,
                         late_rounding=True) if lent else {})
    dut = check_case(name, "shared", bias_label_lanes=1, label_lanes=label_lanes,
                     kappa_ring=True, samples=8, **lent_options)
    assert dut.bias_label.issue_period == (3 if label_lanes is None else 4)
    assert dut.bias_label.kappa_ring and dut.options["kappa_ring"]
    assert not dut.words.kept_scalars and not hasattr(dut.words, "kappa_b")
    assert TrainingCore(dut.model, dut.rule, lanes=dut.lanes).options["kappa_ring"] is False
    with pytest.raises(TypeError, match=r"^Kappa ring must be True or False, not 1$"):
        TrainingCore(dut.model, dut.rule, lanes=dut.lanes, bias_label_lanes=1, kappa_ring=1)
    with pytest.raises(ValueError, match=r"^A kappa ring is a time-shared lane's: it needs "
                                         r"lanes=1$"):
        TrainingCore(dut.model, dut.rule, lanes=dut.lanes, kappa_ring=True)
    with pytest.raises(TypeError, match=r"^Kept scalars must be True or False, not 0$"):
        UpdateWords(max_columns=3, max_rows=3, kept_scalars=0)


def test_without_the_lane_options_the_netlist_has_nothing_of_them():
    # Off, the lane carries c and R in registers and the update keeps the three scalar
    # words (byte for byte, src attributes aside, the cores' RTLIL equals main's before
    # the options); on, each option's names are there and what it replaces is not:
    # c_memory the memory and no c line, late_rounding its registers, kappa_ring the
    # ring and not the update's registers.
    extra = dict(serial_weight_pass=True, shared_update_lane=True, late_replay=True)
    text, memory, late, ring = (
        _small_part_text(tuple(sorted({**extra, **flags}.items())))
        for flags in ({}, {"c_memory": True}, {"late_rounding": True}, {"kappa_ring": True}))
    late_names = ("k_first", "step_late", "rewind_late")
    assert [n for n in ("c_mem", "c_address", "kappa_ring_", *late_names) if n in text] == []
    assert "\\c_1\n" in text and "\\kappa_b\n" in text
    assert "c_mem" in memory and "c_address" in memory and "\\c_1\n" not in memory
    assert [n for n in late_names if n in late] == list(late_names)
    assert "kappa_ring_pos" in ring and "\\kappa_b\n" not in ring


#: The held addresses' own names in the RTLIL (the registers' loads, the first register).
_HELD_ADDRESS_NAMES = ("issued_late_1", "held_addr_0")


def test_without_held_addresses_the_netlist_has_nothing_of_them():
    # Off, the serial pass carries its addresses down the delay line as before (byte for
    # byte, src attributes aside, the cores' RTLIL equals main's before the option); on,
    # the held registers are there and the address delay line is not.
    text, with_option = _small_part_rtlil("held_addresses", serial_weight_pass=True)
    assert [n for n in _HELD_ADDRESS_NAMES if n in text] == []
    assert "w_addr_0" in text
    assert [n for n in _HELD_ADDRESS_NAMES if n in with_option] == list(_HELD_ADDRESS_NAMES)
    assert "w_addr_0" not in with_option


#: One leap-ahead network for the label, rounding and replay generators
#: (``shared_word_network``): FFDL, and FFCL with updates between the iterations (a label
#: draw per sample, rounding and replay words per layer and iteration). check_case
#: compares both generators' next words with the golden trainer's after every sample.
@pytest.mark.parametrize("name", one_by_default(["two_layers_p3", "ffcl_all_adjacent_t2_p3"],
                                                "ffcl_all_adjacent_t2_p3"))
def test_one_word_network_for_the_generators_trains_like_the_golden_trainer(name):
    dut = check_case(name, "shared", shared_word_network=True)
    assert not (dut.labels_gen.network or dut.words_gen.network
                or dut.weight_pass.replay.network)
    assert dut.options["shared_word_network"]
    assert TrainingCore(dut.model, dut.rule, lanes=dut.lanes).options[
        "shared_word_network"] is False
    with pytest.raises(TypeError, match=r"^Shared word network must be a bool, not 1$"):
        TrainingCore(dut.model, dut.rule, lanes=dut.lanes, shared_word_network=1)


def check_case(name: str, multipliers: str, bias_label_lanes: int = 3,
               forward_multipliers: str = "dedicated", case=None, label_lanes=None,
               samples: int = 3, labels_drawn=None, input_norm: str = "own",
               serial_weight_pass: bool = False,
               shared_word_network: bool = False,
               shared_update_lane: bool = False,
               held_addresses: bool = False, late_replay: bool = False,
               c_memory: bool = False, late_rounding: bool = False,
               kappa_ring: bool = False) -> TrainingCore:
    """``samples`` training samples of case ``name`` (or ``case``: config fields, rule
    fields, lanes) then three images classified, against IntTrainer; the counter against
    the closed form. Returns the core."""
    fields, rule_fields, lanes = case or (CASES[name] if name in CASES else FFCL_CASES[name])
    algo = "ffcl" if "loops" in fields else "ffdl"
    if algo == "ffcl":
        rule_fields = {"loss_iterations": "last", **rule_fields}
    config = ModelConfig(algo=algo, input_size=D, num_classes=K, theta=0.5, **fields)
    model = make_model(config, SEED + len(name))
    rule = TrainRule(epochs=1, seed=7, **{"lr_shift": 4, **rule_fields})
    trainer = IntTrainer(model, rule)
    signal = "shared" if multipliers == "signal" else "dedicated"
    dut = TrainingCore(model, rule, lanes=lanes, signal_multipliers=signal,
                       multipliers="shared" if multipliers == "signal" else multipliers,
                       bias_label_lanes=bias_label_lanes,
                       forward_multipliers=forward_multipliers, label_lanes=label_lanes,
                       input_norm=input_norm, serial_weight_pass=serial_weight_pass,
                       shared_word_network=shared_word_network,
                       shared_update_lane=shared_update_lane, held_addresses=held_addresses,
                       late_replay=late_replay, c_memory=c_memory,
                       compact_lanes=late_rounding, late_rounding=late_rounding,
                       kappa_ring=kappa_ring)
    rng = np.random.default_rng(SEED)
    samples = [(rng.integers(0, X + 1, D).astype(np.int64), int(rng.integers(0, K)))
               for _ in range(samples)]
    test_images = rng.integers(0, X + 1, (3, D)).astype(np.int64)
    cycles, labels = run_samples(dut, trainer, samples, classify=test_images,
                                 labels_drawn=labels_drawn)
    # Inference after training: the golden IntModel of the trained weights.
    assert labels == trainer.model.run(test_images).labels.tolist()
    start = IntTrainer(make_model(config, SEED + len(name)), rule).stored
    assert any(not np.array_equal(a[key], b[key])
               for a, b in zip(trainer.stored, start, strict=True) for key in a)
    assert cycles == [dut.training_cycles()] * len(cycles), (cycles, dut.training_cycles())
    if forward_multipliers == "shared":
        assert dut.core.program.shared and dut.core.lend_enabled == (multipliers != "dedicated")
    # Borrowed or own, the update lanes take the same cycles: one closed form; the
    # learning signal's borrowed multipliers add 2 L = 4 cycles to each scan.
    options = dict(forward_multipliers=forward_multipliers, bias_label_lanes=bias_label_lanes,
                   label_lanes=label_lanes, input_norm=input_norm,
                   serial_weight_pass=serial_weight_pass,
                   shared_update_lane=shared_update_lane, held_addresses=held_addresses,
                   late_replay=late_replay, c_memory=c_memory,
                   compact_lanes=late_rounding, late_rounding=late_rounding,
                   kappa_ring=kappa_ring)
    other = TrainingCore(model, rule, lanes=lanes,
                         multipliers="dedicated" if multipliers == "shared" else "shared",
                         **options)
    if multipliers == "signal":
        assert dut.scan.cycles(4) == other.scan.cycles(4) + 4
    else:
        assert other.training_cycles() == dut.training_cycles()
    if bias_label_lanes == 1:
        # A neuron every third cycle instead of every other: N cycles more per layer
        # and trained iteration (T - 1 updates between FFCL 'all' iterations, one after;
        # against P lanes in the W and V pass).
        if dut.label_groups.count == 1 and not serial_weight_pass:
            three = TrainingCore(model, rule, lanes=lanes, signal_multipliers=signal,
                                 multipliers="shared" if multipliers == "signal"
                                 else multipliers, forward_multipliers=forward_multipliers,
                                 input_norm=input_norm)
            assert (dut.training_cycles() - three.training_cycles()
                    == dut.trained_iterations * sum(config.hidden))
    return dut


def _stream(dut: TrainingCore, trainer: IntTrainer, samples, classify):
    """The samples back to back on ``samples`` (the next one offered while the core still
    updates: it must wait), the records taken by a second testbench, which compares the
    stored memories and both generators with ``trainer`` after every training sample."""
    lam = dut.lr_shift
    cycles, labels = [], []
    stream = [(x, int(y), 1) for x, y in samples] + [(x, 0, 0) for x in classify]

    async def producer(ctx):
        for x, y, train in stream:
            for pixel in x:
                ctx.set(dut.samples.payload, {"pixel": int(pixel), "label": y, "train": train})
                ctx.set(dut.samples.valid, 1)
                await ctx.tick().until(dut.samples.ready)
        ctx.set(dut.samples.valid, 0)

    async def consumer(ctx):
        for number, (x, y, train) in enumerate(stream):
            await ctx.tick().until(dut.done.valid)
            record = ctx.get(dut.done.payload)
            if not train:
                labels.append(int(record.label))
                ctx.set(dut.done.ready, 1)
                await ctx.tick()
                ctx.set(dut.done.ready, 0)
                continue
            # The record is offered until it is taken: the memories hold the update.
            result = trainer.train_sample(x, y, lam)
            assert (record.label, record.wrong) == (result.label, result.wrong), \
                f"sample {number}"
            cycles.append(int(record.cycles))
            await check_stored(ctx, dut, trainer, f"sample {number}")
            ctx.set(dut.done.ready, 1)
            await ctx.tick()
            ctx.set(dut.done.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return cycles, labels


@pytest.mark.parametrize("algo, samples", [
    ("ffdl", 6), pytest.param("ffdl", 200, marks=pytest.mark.slow),
    pytest.param("ffcl", 200, marks=pytest.mark.slow)])
def test_training_core_on_digits_samples(algo, samples):
    # A small digits net (64-10-7, 3 lanes: 10 and 7 are not multiples of 3),
    # initialised as `ffcl-hw train --int` does, with digits' learning rate; FFCL with
    # T = 2, adjacent feedback and every iteration trained.
    data = load_dataset("digits")
    loops = dict(loops=2) if algo == "ffcl" else {}
    config = ModelConfig(algo=algo, input_size=64, num_classes=10, hidden=(10, 7),
                         theta=0.5, **loops)
    model = initial_model(config, data.x_train, input_max=data.pixel_max, seed=0)
    rule = TrainRule(epochs=1, lr_shift=default_lr_shift(data.x_train), seed=5)
    trainer = IntTrainer(model, rule)
    dut = TrainingCore(model, rule, lanes=3)
    x_q = model.quantize_input(data.x_train[:samples])
    test_q = model.quantize_input(data.x_test[:8])
    cycles, labels = _stream(dut, trainer, list(zip(x_q, data.y_train[:samples],
                                                    strict=True)), test_q)
    assert labels == trainer.model.run(test_q).labels.tolist()
    assert cycles == [dut.training_cycles()] * samples


@pytest.mark.parametrize("shared_update_lane", [False, True], ids=["own", "shared_lane"])
def test_lambda_is_taken_per_sample_at_run_time(shared_update_lane):
    # The rule's schedule lambda 3..5 (epochs 0, 1, 2); the core takes lambda with each
    # sample's last pixel: changes between samples equal IntTrainer with that lambda,
    # values outside the schedule are clamped to it (the shifters are built for it; with
    # a shared update lane, the b and U pass's rho and kappa bits too, for the last
    # epoch's largest k).
    config = ModelConfig(algo="ffdl", input_size=D, num_classes=K, theta=0.5, hidden=(4, 3))
    model = make_model(config, SEED + 1)
    rule = TrainRule(epochs=3, lr_shift=3, lr_steps=(1, 2), seed=3)
    trainer = IntTrainer(model, rule)
    options = dict(bias_label_lanes=1, shared_update_lane=True) if shared_update_lane else {}
    dut = TrainingCore(model, rule, lanes=2, **options)
    assert dut.lr_range == (3, 5)
    if shared_update_lane:
        # b and U's largest k, lambda 5's (the last epoch's), is below a W lane's: the b
        # and U pass's rho and kappa are cut to it. (The samples below never reach it,
        # z > 0: a cut at lambda 3's survives them.)
        largest = trainer.base_shifts(0, 5)["b"]
        assert dut.bias_label.rounding_bits == largest < dut.weight_pass.lanes[0].max_shift
        assert largest == trainer.base_shifts(0, 3)["U"] + 2
    rng = np.random.default_rng(SEED + 2)
    samples = [(rng.integers(0, X + 1, D).astype(np.int64), int(rng.integers(0, K)))
               for _ in range(5)]
    lambdas = [(5, 5), (3, 3), (4, 4), (7, 5), (0, 3)]
    cycles, _ = run_samples(dut, trainer, samples, lambdas=lambdas)
    assert cycles == [dut.training_cycles()] * len(samples)


@pytest.mark.parametrize("offer_at", [1, 40, 150])
def test_a_sample_offered_while_the_core_updates_changes_nothing_until_taken(offer_at):
    # FFCL with every iteration trained (the core is held between iterations): a second
    # sample is offered ``offer_at`` cycles after the first one's last pixel, during its
    # forward pass or its updates, and kept offered. Nothing of it is taken until the
    # first record is; the first sample's weights and counter are as if it had not been
    # offered, and the second then trains as usual.
    config = ModelConfig(algo="ffcl", input_size=D, num_classes=K, theta=0.5, hidden=(3, 4),
                         loops=2)
    model = make_model(config, SEED + 3)
    rule = TrainRule(epochs=1, lr_shift=4, seed=1)
    trainer = IntTrainer(model, rule)
    dut = TrainingCore(model, rule, lanes=2)
    rng = np.random.default_rng(SEED + 4)
    (x1, x2), (y1, y2) = rng.integers(0, X + 1, (2, D)), (1, 3)
    lam = dut.lr_shift

    async def testbench(ctx):
        for pixel in x1:
            ctx.set(dut.samples.payload, {"pixel": int(pixel), "label": y1, "train": 1})
            ctx.set(dut.samples.valid, 1)
            await ctx.tick().until(dut.samples.ready)
        ctx.set(dut.samples.valid, 0)
        for _ in range(offer_at):
            await ctx.tick()
        ctx.set(dut.samples.payload, {"pixel": int(x2[0]), "label": y2, "train": 1})
        ctx.set(dut.samples.valid, 1)
        for _ in range(dut.training_cycles()):
            if ctx.get(dut.done.valid):
                break
            assert not ctx.get(dut.samples.ready), "a pixel was taken during the sample"
            await ctx.tick()
        assert ctx.get(dut.done.valid), "no record after the closed form's cycles"
        record = ctx.get(dut.done.payload)
        assert int(record.cycles) == dut.training_cycles()
        trainer.train_sample(x1, y1, lam)
        await check_stored(ctx, dut, trainer, "first sample")
        ctx.set(dut.done.ready, 1)
        await ctx.tick()
        ctx.set(dut.done.ready, 0)
        for pixel in x2:
            ctx.set(dut.samples.payload, {"pixel": int(pixel), "label": y2, "train": 1})
            ctx.set(dut.samples.valid, 1)
            await ctx.tick().until(dut.samples.ready)
        ctx.set(dut.samples.valid, 0)
        await ctx.tick().until(dut.done.valid)
        assert int(ctx.get(dut.done.payload).cycles) == dut.training_cycles()
        trainer.train_sample(x2, y2, lam)
        await check_stored(ctx, dut, trainer, "second sample")

    simulate(dut, testbench)


def test_training_core_and_stored_core_refuse_what_they_cannot_do():
    fmt_model = make_model(ModelConfig(algo="ffdl", input_size=D, num_classes=K,
                                       hidden=(3,)), SEED)
    for kwargs, message in (
            (dict(store_bits=7), "at least the forward weight width 8"),
            (dict(store_bits=True), "at least the forward weight width 8"),
            (dict(store_bits=12, weights="rom"), "weights='loadable' or 'spram' and one bank"),
            (dict(store_bits=12, weights="loadable", banks=2),
             "weights='loadable' or 'spram' and one bank")):
        with pytest.raises(ValueError, match=message):
            Core(fmt_model, lanes=2, **kwargs)
    goodness = make_model(ModelConfig(algo="ffcl", input_size=D, num_classes=K, hidden=(3, 2),
                                      loops=2, feedback="goodness"), SEED)
    with pytest.raises(ValueError, match="FFCL with feedback 'state' only"):
        TrainingCore(goodness, TrainRule(epochs=1), lanes=2)
    with pytest.raises(TypeError, match="Rule must be a golden.inttrain.TrainRule"):
        TrainingCore(fmt_model, {"epochs": 1}, lanes=2)
    with pytest.raises(ValueError, match=r"^Multipliers must be one of shared, dedicated, "
                                         r"not 'own'$"):
        TrainingCore(fmt_model, TrainRule(epochs=1), lanes=2, multipliers="own")
    with pytest.raises(ValueError, match=r"^2 label lanes of 4 labels put U\[i, y\] and "
                                         r"U\[i, y'\] in two words, which only one "
                                         r"time-shared b and U lane updates: build it with "
                                         r"lanes=1$"):
        TrainingCore(fmt_model, TrainRule(epochs=1), lanes=2, label_lanes=2)
    with pytest.raises(ValueError, match=r"^Label lane count must be at most the label "
                                         r"count 4, not 5$"):
        LabelGroups(4, 5)
    with pytest.raises(ValueError, match="Forward multipliers must be one of shared, "
                                         r"dedicated, not 'lent'$"):
        TrainingCore(fmt_model, TrainRule(epochs=1), lanes=4, forward_multipliers="lent")
    with pytest.raises(ValueError, match=r"^shared multipliers need at least 3 MAC lanes"):
        TrainingCore(fmt_model, TrainRule(epochs=1), lanes=2, forward_multipliers="shared")
    with pytest.raises(TypeError, match=r"^Lend must be True or False, not 1$"):
        Core(fmt_model, lanes=2, lend=1)
    for value in (2, 0, True, "1"):
        with pytest.raises(ValueError, match=r"^Bias and label lanes must be 3 \(one per "
                                             rf"stored value\) or 1 \(time-shared\), not "
                                             rf"{value!r}$"):
            TrainingCore(fmt_model, TrainRule(epochs=1), lanes=2, bias_label_lanes=value)
    with pytest.raises(ValueError, match=r"^Signal multipliers must be one of shared, "
                                         r"dedicated, not 'own'$"):
        TrainingCore(fmt_model, TrainRule(epochs=1), lanes=2, signal_multipliers="own")
    for kwargs, given in ((dict(lanes=1), "'shared' and 1"),
                          (dict(lanes=2, multipliers="dedicated"), "'dedicated' and 2")):
        with pytest.raises(ValueError, match=r"^The learning signal borrows MAC lanes 0 and "
                                             r"1: it needs multipliers='shared' and at least "
                                             rf"2 lanes, not {given}$"):
            TrainingCore(fmt_model, TrainRule(epochs=1), signal_multipliers="shared",
                         **kwargs)


def test_forward_norms_take_the_input_scalers_square_sum_and_table_away():
    # input_norm="forward": the InputScaler has no square multiplier and no Rsqrt table
    # (one product and one block RAM fewer for the fit check), the inference core a
    # norms port; with "own" (the default) neither changes.
    model = make_model(ModelConfig(algo="ffcl", input_size=D, num_classes=K, hidden=(5, 4),
                                   loops=2), SEED)
    own = TrainingCore(model, TrainRule(epochs=1), lanes=3)
    forward = TrainingCore(model, TrainRule(epochs=1), lanes=3, input_norm="forward")
    assert own.input_norm == "own" and own.options["input_norm"] == "own"
    assert forward.options["input_norm"] == "forward"
    square = [p for p in own.products()["input_scaler"] if p.unit == "square"]
    assert len(square) == 1
    assert forward.products()["input_scaler"] == [
        p for p in own.products()["input_scaler"] if p.unit != "square"]
    assert [s for s in own.memories() if s.name == "rsqrt_table"] == own.scaler.memories()
    assert len(own.scaler.memories()) == 1 and forward.scaler.memories() == []
    assert [s for s in own.memories() if s not in own.scaler.memories()] == forward.memories()
    assert forward.scaler.rsqrt is None and isinstance(own.scaler.rsqrt, Rsqrt)
    assert not own.core.norms_enabled and not hasattr(own.core, "norms")
    assert forward.core.norms_enabled and hasattr(forward.core, "norms")
    assert not hasattr(own.scaler, "r") and hasattr(forward.scaler, "r")
    with pytest.raises(ValueError, match=r"^Input norm must be one of own, forward, "
                                         r"not 'given'$"):
        TrainingCore(model, TrainRule(epochs=1), lanes=3, input_norm="given")
    with pytest.raises(ValueError, match=r"^Reciprocal must be one of own, given, "
                                         r"not 'forward'$"):
        InputScaler(model.fmt, sq_bits=10, activations=9, max_inputs=9, reciprocal="forward")
    with pytest.raises(TypeError, match=r"^Norms must be True or False, not 1$"):
        Core(model, lanes=3, norms=1)


#: The option's own names in the RTLIL (the core's ``norms`` port, the kept registers):
#: none may appear in a build without it.
_FORWARD_NORM_NAMES = ("norms__", "ff_r_", "fb_r_", "sh_half_")


@pytest.mark.parametrize("name", ["training_ffcl_all_own", "training_small_part_own",
                                  "inference_rom", "inference_spram_shared"])
def test_without_forward_norms_the_netlist_has_nothing_of_them(name):
    # A submodule's output that nothing reads stays in Amaranth's RTLIL as a named wire,
    # so a norms port built (or driven) always would change every netlist: the port and
    # the kept registers exist only with input_norm="forward". (Byte for byte: the RTLIL
    # of these cores, src attributes aside, equals main's before the option; the
    # "forward" core carries every name, so the test can tell.)
    config = ModelConfig(algo="ffcl", input_size=D, num_classes=K, hidden=(5, 4), loops=2,
                         topology="adjacent")
    model = make_model(config, SEED)
    rule = TrainRule(epochs=1, store_bits=16, loss_iterations="all")
    small = dict(weights="spram", bias_label_lanes=1, forward_multipliers="shared",
                 signal_multipliers="shared", label_lanes=3)
    make = {
        "training_ffcl_all_own": lambda **kw: TrainingCore(model, rule, lanes=3, **kw),
        "training_small_part_own": lambda **kw: TrainingCore(model, rule, lanes=3, **small,
                                                             **kw),
        "inference_rom": lambda **kw: Core(model, lanes=3, **kw),
        "inference_spram_shared": lambda **kw: Core(model, lanes=3, weights="spram",
                                                    shared=True, label_lanes=3, **kw),
    }[name]
    text = rtlil.convert(make(), name="top")
    assert [n for n in _FORWARD_NORM_NAMES if n in text] == []
    with_option = rtlil.convert(make(**({"norms": True} if name.startswith("inference")
                                        else {"input_norm": "forward"})), name="top")
    expected = _FORWARD_NORM_NAMES[:1] if name.startswith("inference") else _FORWARD_NORM_NAMES
    assert [n for n in expected if n in with_option] == list(expected)


def test_shared_update_lanes_borrow_the_mac_lanes_multipliers():
    # Shared (the default): the P update lanes have no multiplier of their own and the
    # core lends all P lanes; the b/U lanes never had one to borrow (v = 1). A core not
    # asked to lend keeps its ports (the inference builds' netlists).
    model = make_model(ModelConfig(algo="ffdl", input_size=D, num_classes=K, hidden=(5, 4)),
                       SEED)
    shared = TrainingCore(model, TrainRule(epochs=1), lanes=3)
    dedicated = TrainingCore(model, TrainRule(epochs=1), lanes=3, multipliers="dedicated")
    assert shared.multipliers == "shared" and shared.core.lend_enabled
    assert shared.products()["update_lanes"] == []
    assert len(dedicated.products()["update_lanes"]) == 3
    assert shared.products()["bias_label_lanes"] == dedicated.products()["bias_label_lanes"] == []
    assert not dedicated.core.lend_enabled and not hasattr(dedicated.core, "lend")
    assert not hasattr(Core(model, lanes=3), "lend")
    # The learning signal keeps its multipliers unless asked to borrow lanes 0 and 1.
    assert len(shared.products()["learning_signal"]) == 6
    signal = TrainingCore(model, TrainRule(epochs=1), lanes=3, signal_multipliers="shared")
    assert signal.products()["learning_signal"] == []


def test_a_stored_core_starts_at_the_middle_of_every_forward_code():
    # The memory images of a core with stored weights are IntTrainer's starting words.
    model = make_model(ModelConfig(algo="ffdl", input_size=D, num_classes=K, hidden=(5, 4)),
                       SEED)
    rule = TrainRule(epochs=1, store_bits=13)
    dut = TrainingCore(model, rule, lanes=3)
    images = memory_images(dut.core.program)
    expected = dut.stored_images(IntTrainer(model, rule).stored)
    assert images["weights"] == expected["W"]
    assert images["bias"] == expected["b"]
    assert images["labels"] == expected["U"]


# About 30 s of CPU for its one sample: opt-in (``-m slow``); the default run keeps the
# inference core on a deep store (tests/rtl/test_core.py) and the store's own tests.
@pytest.mark.slow
def test_a_training_core_on_a_deep_weight_store_trains_like_the_golden_trainer():
    # 784 x 21 weights on one lane: 16,464 words, past one ECP5 block RAM, so the store
    # reads in 3 cycles (its parts' output registers): the W pass's lanes, the forward
    # pass's operand and the read-back all wait a cycle more.
    config = ModelConfig(algo="ffdl", input_size=784, num_classes=K, theta=0.5, hidden=(21,))
    model = make_model(config, SEED)
    rule = TrainRule(epochs=1, seed=7, lr_shift=4)
    trainer = IntTrainer(model, rule)
    dut = TrainingCore(model, rule, lanes=1)
    assert (dut.core.program.weight_latency, dut.read_latency) == (3, 3)
    rng = np.random.default_rng(SEED)
    samples = [(rng.integers(0, X + 1, 784).astype(np.int64), int(rng.integers(0, K)))]
    # One sample (about 30 s of CPU): every stored word is compared after it.
    cycles, _ = run_samples(dut, trainer, samples)
    assert cycles == [dut.training_cycles()]


def _lint_model(algo: str, hidden: tuple[int, ...], **fields) -> IntModel:
    config = ModelConfig(algo=algo, input_size=D, num_classes=K, theta=0.5, hidden=hidden,
                         **fields)
    return make_model(config, SEED)


def _lint_rule(**fields) -> TrainRule:
    return TrainRule(epochs=1, seed=7, **{"lr_shift": 4, **fields})


#: The training core's Verilog, as the flows export it, linted like the inference core's
#: (sim.lint: verilator --lint-only -Wall with the waivers of docs/toolchain.md). Each
#: case builds what it names; the comment says which of its constructs once warned.
LINT_CASES = {
    # Block RAM, 3 lanes (the ECP5 builds): the generators' seeding with `load` tied
    # low (CASEOVERLAP), "== 0" tests of counters, labels and the learning signal's
    # phase (WIDTHTRUNC).
    "ffdl_block_ram_p3": lambda: TrainingCore(_lint_model("ffdl", (7, 5)), _lint_rule(),
                                              lanes=3),
    # FFCL, T = 3, every iteration trained: "layer == 0" and "iteration == 0" of a
    # 2-bit layer and iteration.
    "ffcl_all_t3_p3": lambda: TrainingCore(
        _lint_model("ffcl", (5, 4, 3), loops=3, topology="adjacent"),
        _lint_rule(loss_iterations="all"), lanes=3),
    # The iCEBreaker flow's small-part core (SPRAM, one b and U lane, every multiplier
    # a MAC lane's), B_m = 8: the one lane's kind chain, "pixel == 0", and the update
    # lanes' zero-width left shift (no k below 0).
    "ffdl_icebreaker_spram_p4_b8": lambda: training_core(
        _lint_model("ffdl", (7, 5)), _lint_rule(store_bits=8), "icebreaker", 4),
    # FFCL, T = 3, the last iteration trained, on the iCEBreaker flow's small-part core
    # (every option on: the lean sweep's biased kept parts, layer 1's cache).
    "ffcl_last_t3_icebreaker_spram_p3": lambda: training_core(
        _lint_model("ffcl", (5, 4), loops=3, topology="adjacent"),
        _lint_rule(loss_iterations="last"), "icebreaker", 3),
    # One lane, lambda 0 throughout: the one-lane sweep's counter and the lambda port
    # (zero-width: ASCRANGE), the clamp of lambda below 0 (UNSIGNED).
    "ffdl_p1_lambda_0": lambda: TrainingCore(_lint_model("ffdl", (4, 5)),
                                             _lint_rule(lr_shift=0, store_bits=12), lanes=1),
    # The host link over a training core (the training boards' top).
    "host_link_ffdl_p3": lambda: HostLink(
        TrainingCore(_lint_model("ffdl", (7, 5)), _lint_rule(), lanes=3), divisor=4,
        train_block=2),
    # The iCEBreaker build's link (lean: the TRAIN records written into the sample
    # buffer) over its small-part core.
    "host_link_icebreaker_lean": lambda: HostLink(
        training_core(_lint_model("ffdl", (7, 5)), _lint_rule(store_bits=8), "icebreaker",
                      4), divisor=4, train_block=2, initialised=False, lean=True),
}


#: A bare core that a default case's host link wraps as it is (the same model, rule and
#: options): opt-in (``-m slow``), the link case lints the same core's Verilog.
LINT_IN_A_LINK = {"ffdl_block_ram_p3": "host_link_ffdl_p3",
                  "ffdl_icebreaker_spram_p4_b8": "host_link_icebreaker_lean"}


@pytest.mark.parametrize("name", [
    name if name not in LINT_IN_A_LINK
    # covered by default by the case LINT_IN_A_LINK[name] (its link wraps this core)
    else pytest.param(name, marks=pytest.mark.slow) for name in sorted(LINT_CASES)])
def test_the_training_core_exports_lint_clean_verilog(name, tmp_path):
    path = tmp_path / f"{name}.v"
    path.write_text(verilog.convert(LINT_CASES[name](), name=name))
    status, messages = lint_verilog(path)
    assert status == 0, messages
    assert "%Warning" not in messages and "%Error" not in messages, messages
