# amaranth: UnusedElaboratable=no
"""The training core with its stored weights in (simulated) iCE40 SPRAM, against IntTrainer.

SPRAM has one port and comes up empty: the testbench loads the starting words through
the core's ``load`` port before the first sample (as the host link would on the board;
one measurement writes them straight into the simulated memory instead), and the
simulated SPRAM returns poison for a read in a cycle that writes (``rtl.weight_store``),
so a W or V pass whose reads and writes overlap stores wrong words. After every sample
every stored W, V, b, U word and both generators must equal the golden trainer's, and
the counter its closed form. A load offered while the core is busy must wait, writing
nothing, until the sample's record is taken. A restart after a load (the host link's
commit) must make the core train as a fresh golden trainer of the model loaded.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from ffcl_hw.flows.synth_training import training_core
from golden.config import ModelConfig
from golden.datasets import load_dataset
from golden.inttrain import IntTrainer, TrainRule, initial_model
from rtl.core import LOAD_TARGETS, memory_images
from rtl.training_core import TrainingCore
from tests.rtl.helpers import PERIOD, one_by_default, simulate
from tests.rtl.test_training_core import (
    SEED,
    D,
    K,
    X,
    check_stored,
    make_model,
    read_stored,
    run_samples,
)


def write_starting_words(dut: TrainingCore):
    """An ``async def (ctx)`` that writes the starting stored words, (w << f) + 2^(f-1)
    as the block RAM core's initial contents, straight into the simulated SPRAM (what
    the loads would write, without their cycles)."""
    store = dut.core.memories.weight_store

    async def prepare(ctx):
        for addr, word in enumerate(memory_images(dut.core.program)["weights"]):
            ctx.set(store.simulated[addr], word)

    return prepare


async def load(ctx, dut: TrainingCore, writes) -> None:
    """Offer each (target, address, word) on ``load`` until it is taken."""
    for target, addr, word in writes:
        ctx.set(dut.load.payload, {"target": target, "addr": addr, "data": word})
        ctx.set(dut.load.valid, 1)
        await ctx.tick().until(dut.load.ready)
    ctx.set(dut.load.valid, 0)


def loading(dut: TrainingCore, writes):
    """``run_samples``'s ``prepare``: :func:`load` of ``writes``."""
    async def prepare(ctx):
        await load(ctx, dut, writes)
    return prepare


#: name: (config fields, rule fields, lanes). D = 9 inputs: no width is a multiple of the
#: lane count; every word fits SPRAM's 64 bits, those of at most 32 in two banks.
CASES = {
    # one layer on one lane, 16-bit stored weights: two banks
    "ffdl_p1_b16": (dict(algo="ffdl", hidden=(5,)), dict(store_bits=16), 1),
    # 4 x 8 = 32 bits, two banks, ragged tiles
    "ffdl_p4_b8": (dict(algo="ffdl", hidden=(10, 9)), dict(store_bits=8), 4),
    # FFCL on two banks: a tile's 9 W words and 4 V words are two runs, each starting in
    # its bank's slot (V's first word's parity changes from tile to tile)
    "ffcl_all_t2_p2_b16": (dict(algo="ffcl", hidden=(5, 4), loops=2, topology="adjacent"),
                           dict(store_bits=16, loss_iterations="all"), 2),
    # 3 x 16 = 48 bits, ragged tiles (7 and 5 neurons)
    "ffdl_p3_b16": (dict(algo="ffdl", hidden=(7, 5)), dict(store_bits=16), 3),
    # 8 x 8 = 64 bits (f = 0): the whole SPRAM word
    "ffdl_p8_b8": (dict(algo="ffdl", hidden=(10, 9)), dict(store_bits=8), 8),
    # FFCL T = 2, every iteration trained: the core infers between the updates, and the
    # V pass follows the W pass in the same tiles
    "ffcl_all_t2_p3_b16": (dict(algo="ffcl", hidden=(5, 4), loops=2, topology="adjacent"),
                           dict(store_bits=16, loss_iterations="all"), 3),
}


def _config_and_rule(fields: dict, rule_fields: dict) -> tuple[ModelConfig, TrainRule]:
    """A case's model configuration (D inputs, K labels) and the tests' rule."""
    return (ModelConfig(input_size=D, num_classes=K, theta=0.5, **fields),
            TrainRule(epochs=1, seed=7, lr_shift=4, **rule_fields))


def _train(name: str, config: ModelConfig, rule: TrainRule, lanes: int,
           weights: str = "spram", **options) -> TrainingCore:
    """Three training samples, then three classified, against IntTrainer (run_samples
    checks every stored word after every sample); the counter against the closed form.
    ``options``: more of TrainingCore's parameters."""
    model = make_model(config, SEED + len(name))
    trainer = IntTrainer(model, rule)
    if weights == "spram":
        # The core is built for another model of the same shape (its biases and label
        # weights in block RAM are that model's): it trains like the golden trainer of
        # ``model`` only if every load lands, the biases' and label weights' included,
        # in the memory and at the address its target and address name.
        other = make_model(config, SEED + len(name) + 1)
        dut = TrainingCore(other, rule, lanes=lanes, weights="spram", **options)
        # The words as this core lays them out (G label weights a word).
        writes = TrainingCore(model, rule, lanes=lanes, weights="spram",
                              **options).starting_loads()
        assert {target for target, _, _ in writes} == {
            LOAD_TARGETS[name] for name in ("weights", "bias", "labels")}
    else:
        dut = TrainingCore(model, rule, lanes=lanes, weights=weights, **options)
    rng = np.random.default_rng(SEED)
    samples = [(rng.integers(0, X + 1, D).astype(np.int64), int(rng.integers(0, K)))
               for _ in range(3)]
    test_images = rng.integers(0, X + 1, (3, D)).astype(np.int64)
    cycles, labels = run_samples(dut, trainer, samples, classify=test_images,
                                 prepare=loading(dut, writes) if weights == "spram"
                                 else None)
    assert labels == trainer.model.run(test_images).labels.tolist()
    assert cycles == [dut.training_cycles()] * len(cycles)
    return dut


@pytest.mark.parametrize("name", [
    name if name != "ffdl_p4_b8"
    # Opt-in (-m slow): the default
    # test_a_restart_after_a_load_trains_the_loaded_model_as_a_fresh_golden_trainer
    # [ffdl_p4_b8] trains this core (no options, loaded through ``load``) bit-exact in the
    # closed form's cycles; [ffdl_p1_b16] and [ffcl_all_t2_p2_b16] keep the two banks'
    # slot waits against block RAM.
    else pytest.param(name, marks=pytest.mark.slow) for name in sorted(CASES)])
def test_an_spram_training_core_trains_like_the_golden_trainer(name):
    fields, rule_fields, lanes = CASES[name]
    config, rule = _config_and_rule(fields, rule_fields)
    dut = _train(name, config, rule, lanes)
    bram = TrainingCore(dut.model, rule, lanes=lanes)
    columns = [(D if i == 0 else config.hidden[i - 1])
               + (0 if (s := config.feedback_source(i)) is None else config.hidden[s])
               for i in range(config.num_layers)]
    load = lanes + 1
    if lanes * rule.store_bits <= 32:
        # Two banks: as on block RAM, but for the cycles a word waits for its slot.
        assert dut.weight_pass.port == "banked"
        extra = _slot_waits(dut)
    else:
        # One word every other cycle, nothing else changes: a tile's reads take 2
        # columns cycles instead of columns (the last tile's 2 columns - 1), or the next
        # tile's shadow load (P lanes + 1: the store answers in 2 cycles; on SPRAM
        # rounded up to even) if longer.
        assert dut.weight_pass.port == "single"
        extra = sum((-(-n // lanes) - 1) * (max(2 * c, load + load % 2) - max(c, load))
                    + c - 1 for n, c in zip(config.hidden, columns, strict=True))
    assert dut.training_cycles() == bram.training_cycles() + dut.trained_iterations * extra


@pytest.mark.parametrize("name", one_by_default(["ffdl_p4_b8", "ffcl_all_t2_p2_b16"],
                                                "ffcl_all_t2_p2_b16"))
def test_an_spram_core_with_one_bias_label_lane_trains_like_the_golden_trainer(name):
    # The small part's engine: two SPRAM banks and one lane time-shared by b, U+ and U-
    # (its label word read again from block RAM while the W pass's writes go to SPRAM).
    fields, rule_fields, lanes = CASES[name]
    config, rule = _config_and_rule(fields, rule_fields)
    # Compact lanes, as the small part builds them: the same weights in the same cycles.
    dut = _train(name, config, rule, lanes, bias_label_lanes=1, compact_lanes=True)
    three = TrainingCore(dut.model, rule, lanes=lanes, weights="spram")
    assert len(dut.bias_label.lanes) == 1
    assert all(lane.compact for lane in (*dut.weight_pass.lanes, *dut.bias_label.lanes))
    assert (dut.training_cycles() - three.training_cycles()
            == dut.trained_iterations * sum(config.hidden))


#: The iCEBreaker build's core (ffcl_hw.flows.synth_training.training_core): one b and U
#: lane, every multiplier a MAC lane's, G = min(K, P) label weights a word, and the
#: update's input norms from the forward pass.
SMALL_PART = dict(bias_label_lanes=1, forward_multipliers="shared",
                  signal_multipliers="shared", input_norm="forward")


@pytest.mark.parametrize("name", one_by_default(["ffdl_p4_b8", "ffcl_all_t2_p3_b16"],
                                                "ffcl_all_t2_p3_b16"))
def test_an_spram_core_with_the_forward_passs_norms_trains_like_the_golden_trainer(name):
    # The small part's engine with (r, sh) of every layer input (and of the feedback
    # source) kept from the forward pass: FFDL on two banks, FFCL with every iteration
    # trained on one bank and G = 3 < K (each iteration's own r, the feedback's from
    # the other bank). Every stored word after every sample, the counter at the closed
    # form (_train).
    fields, rule_fields, lanes = CASES[name]
    config, rule = _config_and_rule(fields, rule_fields)
    options = dict(SMALL_PART, label_lanes=min(K, lanes))
    dut = _train(name, config, rule, lanes, **options)
    own = TrainingCore(dut.model, rule, lanes=lanes, weights="spram",
                       **{**options, "input_norm": "own"})
    assert dut.scaler.reciprocal == "given" and own.scaler.reciprocal == "own"
    assert dut.training_cycles() <= own.training_cycles()


#: One serial update lane (``serial_weight_pass``) with every other small-part option.
#: name: (case, spacing, pad). The iCEBreaker's digits words (3 x 8 bits, two banks: an
#: odd P keeps the slots' alternation, no pad); 4 x 8 bits in two banks (an even P: a
#: word every P + 1 cycles, the write a cycle later); one bank (3 x 16 bits, MNIST
#: 14x14's: slots every 3 cycles, a pad), FFCL with every iteration trained; and tiles
#: that wait for their shadow load (layer 3: 9 neurons over 2 columns) on both.
SERIAL_CASES = {
    "ffdl_p3_b8": ((dict(algo="ffdl", hidden=(7, 5)), dict(store_bits=8), 3), 3, 0),
    "ffdl_p4_b8": (CASES["ffdl_p4_b8"], 4, 1),
    "ffcl_all_t2_p3_b16": (CASES["ffcl_all_t2_p3_b16"], 3, 1),
    "narrow_p3_b8": ((dict(algo="ffdl", hidden=(9, 2, 9)), dict(store_bits=8), 3), 3, 0),
    "narrow_p3_b16": ((dict(algo="ffdl", hidden=(9, 2, 9)), dict(store_bits=16), 3), 3, 1),
}


#: FFCL T = 3 with the last iteration trained (layer 1's cache), three lanes.
LAST_T3 = (dict(algo="ffcl", hidden=(5, 4), loops=3, topology="adjacent"),
           dict(store_bits=16, loss_iterations="last"), 3)

#: Every case the small-part option tests use: the iCEBreaker core's test runs them all.
BUILD_CASES = {**CASES, **{name: case for name, (case, _, _) in SERIAL_CASES.items()},
               "ffcl_last_t3_p3_b16": LAST_T3}


@pytest.mark.parametrize("name", one_by_default(sorted(SERIAL_CASES), "ffcl_all_t2_p3_b16"))
def test_a_small_part_core_with_one_serial_weight_lane_trains_like_the_golden_trainer(name):
    # Every stored word after every sample and the counter at the closed form (_train):
    # entry p of a word takes neuron (its first) + p's d and rho, read from their buffers
    # the cycle before, the word's v and kappa held for its P entries, the new values
    # gathered in order, the last tile's padding entries written 0, the write in a cycle
    # no read of its bank takes.
    (fields, rule_fields, lanes), spacing, pad = SERIAL_CASES[name]
    config, rule = _config_and_rule(fields, rule_fields)
    # With every other option of the build (one network for the three generators too).
    options = dict(SMALL_PART, label_lanes=min(K, lanes), compact_lanes=True,
                   lean_signal=True, shared_word_network=True)
    dut = _train(name, config, rule, lanes, serial_weight_pass=True, **options)
    wpass = dut.weight_pass
    assert (len(wpass.lanes), wpass.spacing, wpass.write_pad) == (1, spacing, pad)
    parallel = TrainingCore(dut.model, rule, lanes=lanes, weights="spram", **options)
    assert wpass.write_delay == parallel.weight_pass.write_delay + lanes - 1 + pad
    assert dut.training_cycles() > parallel.training_cycles()



def _serial_build(lanes: int) -> dict:
    """The small part's options with one serial W/V lane, as the iCEBreaker build has them
    before the serial pass's own register cuts (held addresses, late replay)."""
    return dict(SMALL_PART, label_lanes=min(K, lanes), compact_lanes=True, lean_signal=True,
                shared_word_network=True, serial_weight_pass=True)


@pytest.mark.parametrize("name", one_by_default(
    ["ffdl_p3_b8", "ffdl_p4_b8", "ffcl_all_t2_p3_b16", "narrow_p3_b16"], "ffdl_p4_b8"))
def test_a_serial_pass_with_held_addresses_trains_like_the_golden_trainer(name):
    # The serial pass's written words' addresses held a register a word (held_addresses)
    # on two banks (P = 3: a read every 3 cycles, the write 10 after it, 4 registers;
    # P = 4: every 4, the write 12 after, 3, with a pad) and one bank (every 3, 11, 4,
    # with a pad; FFCL), tiles that wait: every stored word after every sample, so a
    # write to a word other than the one read (a register loaded a cycle early or late,
    # one too few) fails.
    (fields, rule_fields, lanes), spacing, pad = SERIAL_CASES[name]
    config, rule = _config_and_rule(fields, rule_fields)
    options = _serial_build(lanes)
    dut = _train(name, config, rule, lanes, held_addresses=True, **options)
    wpass = dut.weight_pass
    assert wpass.held_addresses and dut.options["held_addresses"]
    assert (wpass.spacing, wpass.write_pad) == (spacing, pad)
    assert wpass.write_delay == {"ffdl_p3_b8": 10, "ffdl_p4_b8": 12}.get(name, 11)
    # The same cycles as the delay line's.
    lined = TrainingCore(dut.model, rule, lanes=lanes, weights="spram", **options)
    assert not lined.weight_pass.held_addresses
    assert dut.training_cycles() == lined.training_cycles()


@pytest.mark.parametrize("name", one_by_default(
    ["ffdl_p3_b8", "ffdl_p4_b8", "ffcl_all_t2_p3_b16", "narrow_p3_b16"], "ffcl_all_t2_p3_b16"))
def test_a_serial_pass_with_a_late_replay_trains_like_the_golden_trainer(name):
    # The serial lane's kappa from the replay itself (late_replay), stepped at each
    # word's last entry and rewound at each tile's last word's: two banks (a word every
    # 3 cycles: the next word's first entry right after the last; every 5), one bank
    # (FFCL: the replay continues from the W columns' into the V columns'), tiles that
    # wait; every stored word after every sample, so a kappa a word early or late, or
    # not rewound for a tile, fails.
    (fields, rule_fields, lanes), spacing, pad = SERIAL_CASES[name]
    config, rule = _config_and_rule(fields, rule_fields)
    options = _serial_build(lanes)
    dut = _train(name, config, rule, lanes, late_replay=True, **options)
    assert dut.weight_pass.late_replay and dut.options["late_replay"]
    carried = TrainingCore(dut.model, rule, lanes=lanes, weights="spram", **options)
    assert not carried.weight_pass.late_replay
    assert dut.training_cycles() == carried.training_cycles()


def _slot_waits(dut: TrainingCore) -> int:
    """Cycles the W and V passes of two SPRAM banks wait for their words' slots, word by
    word: the pass's cycle c (from ``run`` at 0) reads only words of parity (c - 1) mod 2,
    the first tile's first read no sooner than P + 1, each next tile's no sooner than
    P + 1 after the one before (its shadow load); a wait is a cycle that could read but
    whose word is out of its slot."""
    config, lanes = dut.model.config, dut.lanes
    ops = dut.layer_ops
    waits = 0
    for i, n in enumerate(config.hidden):
        n_in = D if i == 0 else config.hidden[i - 1]
        n_src = dut.n_src[i]
        cycle = first = lanes + 1
        for tile in range(-(-n // lanes)):
            words = ([ops[i].ff_wbase + tile * n_in + j for j in range(n_in)]
                     + [ops[i].fb_wbase + tile * n_src + j for j in range(n_src)])
            for j, word in enumerate(words):
                while (cycle - 1) % 2 != word % 2:
                    cycle, waits = cycle + 1, waits + 1
                first = cycle if j == 0 else first
                cycle += 1
            cycle = max(cycle, first + lanes + 1)
    return waits


#: Where in a training sample the load is offered: right after the sample's first pixel
#: (the core then still takes pixels), after its last (the inference runs), or once the
#: first W pass runs (the engine writes through the inference core's load port, which
#: is ready then). FFCL with every iteration trained: the inference core is held, ready
#: for loads, between the iterations.
OFFERS = {
    "first_pixel": ("ffdl_p3_b16", lambda dut: None),
    "inference": ("ffdl_p3_b16", lambda dut: dut.busy),
    "pass": ("ffdl_p3_b16", lambda dut: dut.weight_pass.run),
    "pass_between_iterations": ("ffcl_all_t2_p3_b16", lambda dut: dut.weight_pass.run),
}


@pytest.mark.parametrize("offer", sorted(OFFERS))
def test_a_load_offered_while_busy_waits_until_the_record_is_taken(offer):
    name, start = OFFERS[offer]
    fields, rule_fields, lanes = CASES[name]
    config = ModelConfig(input_size=D, num_classes=K, theta=0.5, **fields)
    model = make_model(config, SEED)
    rule = TrainRule(epochs=1, seed=7, lr_shift=4, **rule_fields)
    trainer = IntTrainer(model, rule)
    dut = TrainingCore(model, rule, lanes=lanes, weights="spram")
    rng = np.random.default_rng(SEED + 1)
    x, y = rng.integers(0, X + 1, D).astype(np.int64), 2
    events = []
    addr = 1

    async def watch(ctx):
        # In order: every load taken and every record taken, by the clock edge.
        tick = 0
        async for _, _, load_valid, load_ready, done_valid, done_ready in ctx.tick().sample(
                dut.load.valid, dut.load.ready, dut.done.valid, dut.done.ready):
            tick += 1
            if load_valid and load_ready:
                events.append(("load", tick))
            if done_valid and done_ready:
                events.append(("record", tick))

    # A word the sample's updates never store: the stored word's lowest fine bit flipped
    # (the forward pass reads only the top bits).
    trainer.train_sample(x, y, dut.lr_shift)
    expected = dut.stored_images(trainer.stored)
    word = expected["W"][addr] ^ 1

    async def testbench(ctx):
        await load(ctx, dut, dut.starting_loads())
        # A cycle later the watcher has seen the last of those loads: forget them.
        await ctx.tick()
        del events[:]
        ctx.set(dut.load.payload, {"target": LOAD_TARGETS["weights"], "addr": addr,
                                   "data": word})
        for i, pixel in enumerate(x):
            ctx.set(dut.samples.payload, {"pixel": int(pixel), "label": y, "train": 1})
            ctx.set(dut.samples.valid, 1)
            await ctx.tick().until(dut.samples.ready)
            if i == 0 and offer == "first_pixel":
                ctx.set(dut.load.valid, 1)
        ctx.set(dut.samples.valid, 0)
        if offer != "first_pixel":
            await ctx.tick().until(start(dut))
            ctx.set(dut.load.valid, 1)
        await ctx.tick().until(dut.done.valid)
        # Nothing was taken or written while the sample ran.
        assert events == []
        await check_stored(ctx, dut, trainer, "with the load waiting")
        ctx.set(dut.done.ready, 1)
        await ctx.tick()
        ctx.set(dut.done.ready, 0)
        await ctx.tick().until(dut.load.ready)
        ctx.set(dut.load.valid, 0)
        await ctx.tick()
        # Taken in the first cycle after the record, once.
        [(first, taken), (second, loaded)] = events
        assert (first, second, loaded) == ("record", "load", taken + 1)
        # Classify a sample (nothing is trained) and read the loaded word back with the
        # rest unchanged.
        for pixel in x:
            ctx.set(dut.samples.payload, {"pixel": int(pixel), "label": 0, "train": 0})
            ctx.set(dut.samples.valid, 1)
            await ctx.tick().until(dut.samples.ready)
        ctx.set(dut.samples.valid, 0)
        await ctx.tick().until(dut.done.valid)
        expected["W"][addr] = word
        assert await read_stored(ctx, dut) == expected

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    sim.add_testbench(testbench)
    sim.add_testbench(watch, background=True)
    sim.run()


def test_starting_loads_are_an_spram_cores_only():
    model = make_model(ModelConfig(algo="ffdl", input_size=D, num_classes=K, hidden=(3,)),
                       SEED)
    rule = TrainRule(epochs=1)
    core = TrainingCore(model, rule, lanes=2, weights="spram")
    images = memory_images(core.core.program)
    assert core.starting_loads() == [
        (LOAD_TARGETS[name], a, word) for name in ("weights", "bias", "labels")
        for a, word in enumerate(images[name])]
    bram = TrainingCore(model, rule, lanes=2)
    assert "load" not in bram.signature.members
    # Nor a restart: it keeps its netlist (the generators start at the seed on reset).
    assert "restart" in core.signature.members and "restart" not in bram.signature.members
    with pytest.raises(ValueError, match=r"^Only an SPRAM training core takes starting loads; "
                                         r"this one holds its weights in 'loadable' block "
                                         r"RAM, initialised by the bitstream$"):
        bram.starting_loads()


@pytest.mark.parametrize(("weights", "store_bits"), [("spram", 16), ("spram", 8),
                                                    ("loadable", 16)])
def test_tiles_that_wait_for_their_shadow_load_train_like_the_golden_trainer(weights,
                                                                             store_bits):
    # Layer 3: 9 neurons on 4 lanes (three tiles, the last of one neuron) over 2 columns.
    # Each next tile's shadow load (4 + 1 cycles from the previous tile's first read)
    # takes longer than the tile's reads (2, on one SPRAM bank 4): the tile waits for it,
    # on one bank until 6 to keep the read slots, on two (4 x 8 bits) until its first
    # word's slot. With no cycle to spare between the bank switch and the load, a switch
    # or a load a cycle off takes the wrong neurons' d and rho, and a read out of its
    # slot meets a write (poison).
    config = ModelConfig(algo="ffdl", input_size=D, num_classes=K, theta=0.5,
                         hidden=(9, 2, 9))
    rule = TrainRule(epochs=1, seed=7, lr_shift=4, store_bits=store_bits)
    dut = _train("narrow", config, rule, 4, weights)
    wpass = dut.weight_pass
    if wpass.port == "banked":
        # Layer 3's words are 36 to 41 (27 and 9 before it). Its tiles could start in
        # cycles 5, 10 and 16 from run; words 36, 38 and 40 are read in the even words'
        # slots, the odd cycles: 5, 11 and 17. Two waits, then the drain.
        assert (wpass.tile_cycles(2), wpass.load_interval) == (5, 5)
        assert dut.layer_ops[2].ff_wbase == 36
        assert wpass.cycles(9, 2, ff_base=36) == 5 + (2 * 5 + 2) + 2 + 9
    else:
        assert wpass.tile_cycles(2) == wpass.load_interval == (6 if weights == "spram" else 5)
        assert wpass.cycles(9, 2) == 5 + 2 * wpass.load_interval + wpass.pass_cycles(2) + 9


def test_the_update_passes_keep_the_lanes_busy_as_the_closed_form_says():
    # Measured in simulation: the cycles the W passes take (weight_pass.run high) and the
    # words they write, for FFDL on 8 lanes (B_m 8) and 3 lanes (B_m 16), one SPRAM
    # bank, and on 4 lanes (B_m 8), two banks; ragged tiles.
    # Every entry is updated once per sample (N n_in per layer), so the lanes'
    # utilisation is N n_in over P x the measured cycles: the closed form's.
    config = ModelConfig(algo="ffdl", input_size=D, num_classes=K, theta=0.5, hidden=(10, 9))
    model = make_model(config, SEED)
    entries = 10 * D + 9 * 10
    # One serial lane too, on 3 x 16 bits (one bank) and 3 x 8 (two banks): its
    # utilisation is over the one lane.
    for lanes, store_bits, serial in ((8, 8, False), (3, 16, False), (4, 8, False),
                                      (3, 16, True), (3, 8, True)):
        rule = TrainRule(epochs=1, seed=7, lr_shift=4, store_bits=store_bits)
        words = -(-10 // lanes) * D + -(-9 // lanes) * 10
        dut = TrainingCore(model, rule, lanes=lanes, weights="spram",
                           serial_weight_pass=serial)
        written, cycles = _measure_passes(dut)
        assert written == words, lanes
        update_lanes = 1 if serial else lanes
        assert entries / (update_lanes * cycles) == dut.pass_lane_utilization(), lanes
    # 8 lanes on SPRAM: two tiles per layer (10 and 9 neurons) back to back: the first
    # tile's shadow load (8 + 1), its reads (2 x 9, then 2 x 10), the second tile's
    # (2 x 9 - 1, 2 x 10 - 1) and one drain (9).
    spram = TrainingCore(model, TrainRule(epochs=1, store_bits=8), lanes=8, weights="spram")
    assert spram.pass_lane_utilization() == entries / (8 * ((9 + 18 + 17 + 9)
                                                            + (9 + 20 + 19 + 9)))


def _measure_passes(dut: TrainingCore, pixels: int = D) -> tuple[int, int]:
    """Words written and cycles of the W passes of one training sample."""
    counts = {"written": 0, "cycles": 0}
    wpass = dut.weight_pass
    x = np.random.default_rng(SEED + 9).integers(0, X + 1, pixels)

    async def feed(ctx):
        if dut.weights == "spram":
            await write_starting_words(dut)(ctx)
        for pixel in x:
            ctx.set(dut.samples.payload, {"pixel": int(pixel), "label": 1, "train": 1})
            ctx.set(dut.samples.valid, 1)
            await ctx.tick().until(dut.samples.ready)
        ctx.set(dut.samples.valid, 0)

    async def count(ctx):
        async for _, _, run, valid, done in ctx.tick().sample(
                wpass.run, wpass.write.valid, dut.done.valid):
            if done:
                break
            counts["cycles"] += run
            counts["written"] += valid

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    sim.add_testbench(feed)
    sim.add_testbench(count)
    sim.run()
    return counts["written"], counts["cycles"]


#: (lanes, stored bits, weights, serial, cycles of a layer, utilisation %): see the test.
#: The iCEBreaker build's (one serial lane, two banks) and the two banks' parallel lanes
#: run by default, the one-bank and block RAM comparisons with ``-m slow``.
DIGITS_PASSES = [
    pytest.param(8, 8, "spram", False, 9 + 7 * 128 + 127 + 9, 49.2, marks=pytest.mark.slow),
    pytest.param(4, 16, "spram", False, 5 + 15 * 128 + 127 + 9, 49.7,
                 marks=pytest.mark.slow),
    (4, 8, "spram", False, 5 + 16 * 64 + 9, 98.7),
    pytest.param(8, 8, "loadable", False, 9 + 8 * 64 + 9, 96.6, marks=pytest.mark.slow),
    (3, 8, "spram", True, 1 + 21 * 192 + 190 + 11, 96.7)]


@pytest.mark.parametrize(("lanes", "store_bits", "weights", "serial", "layer", "percent"),
                         DIGITS_PASSES)
def test_digits_update_passes_on_spram_keep_the_lanes_busy_only_on_two_banks(
        lanes, store_bits, weights, serial, layer, percent):
    # The figures of docs/training-engine.md, counted in simulation: digits FFDL 64-64 on
    # 8 lanes x 8 bits and 4 lanes x 16 bits (both 64-bit words, one bank), a word every
    # other cycle, so at most 50 %, less the first tile's shadow load (P + 1) and the
    # drain (9) of each layer; on 4 lanes x 8 bits (32-bit words, two banks) a word a
    # cycle, each in its slot (both layers' first words are even and read in the even
    # slot, cycle P + 1 = 5); block RAM on 8 lanes for comparison. A layer: the shadow
    # load, the tiles' reads back to back (2 x 64 cycles each on one bank, the last
    # 2 x 64 - 1; 64 on two banks and on block RAM), the drain.
    # One serial lane on 3 x 8 bits in two banks (the iCEBreaker build's): no shadow
    # load, 22 tiles of 64 words, a word every 3 cycles (the first in cycle 1, its even
    # word's slot), each next tile's first 3 cycles after the last's, the drain of
    # 2 + 6 + 2 + 1.
    config = ModelConfig(algo="ffdl", input_size=64, num_classes=10, hidden=(64, 64),
                         theta=0.5)
    model = initial_model(config, load_dataset("digits").x_train[:50], input_max=16, seed=0)
    entries = 2 * 64 * 64
    dut = TrainingCore(model, TrainRule(epochs=1, store_bits=store_bits), lanes=lanes,
                       weights=weights, serial_weight_pass=serial)
    tiles = -(-64 // lanes) * 2
    written, cycles = _measure_passes(dut, pixels=64)
    assert (written, cycles) == (tiles * 64, 2 * layer), (lanes, weights)
    update_lanes = 1 if serial else lanes
    assert entries / (update_lanes * cycles) == dut.pass_lane_utilization()
    # 49.2 %, 49.7 %, 98.7 %, 96.6 % and 96.7 % in the order of DIGITS_PASSES.
    assert round(100 * entries / (update_lanes * cycles), 1) == percent


@pytest.mark.parametrize(("lanes", "store_bits", "message"), [
    (8, 16, "8 lanes x 16 stored bits = 128 bits; SPRAM words hold 64: use store_bits 8 "
            "(rule.store_bits) or at most 4 lanes"),
    (5, 16, "5 lanes x 16 stored bits = 80 bits; SPRAM words hold 64: use store_bits 12 "
            "(rule.store_bits) or at most 4 lanes"),
    # No stored width of at least the forward 8 bits fits 9 lanes.
    (9, 8, "9 lanes x 8 stored bits = 72 bits; SPRAM words hold 64: use at most 8 lanes"),
])
def test_an_spram_training_core_refuses_words_wider_than_spram(lanes, store_bits, message):
    model = make_model(ModelConfig(algo="ffdl", input_size=D, num_classes=K, hidden=(3,)),
                       SEED)
    with pytest.raises(ValueError, match=rf"^{message}$".replace("(", r"\(").replace(")", r"\)")):
        TrainingCore(model, TrainRule(epochs=1, store_bits=store_bits), lanes=lanes,
                     weights="spram")
    # Block RAM takes any width.
    TrainingCore(model, TrainRule(epochs=1, store_bits=store_bits), lanes=lanes)
    with pytest.raises(ValueError, match=r"^Weights must be one of loadable, spram, "
                                         r"not 'rom'$"):
        TrainingCore(model, TrainRule(epochs=1), lanes=2, weights="rom")


#: name: (case of CASES, TrainingCore options): the restart on two SPRAM banks, and on
#: FFCL with every iteration trained (the core held between iterations, ready for loads
#: and so a place a restart could slip in) on one bank with the small part's options
#: (ffcl_hw.flows.synth_training.training_core; G = 3 of K = 4: two label words).
RESTARTS = {
    "ffdl_p4_b8": ("ffdl_p4_b8", {}),
    "ffcl_all_t2_p3_b16_small_part": ("ffcl_all_t2_p3_b16", dict(
        bias_label_lanes=1, forward_multipliers="shared", signal_multipliers="shared",
        label_lanes=3, input_norm="forward", compact_lanes=True)),
}


@pytest.mark.parametrize("name", sorted(RESTARTS))
def test_a_restart_after_a_load_trains_the_loaded_model_as_a_fresh_golden_trainer(name):
    # The board's use: trained from a model A, then loaded with a model M and restarted
    # (the host link's commit), it must train as IntTrainer(M, rule) from the seed, not
    # go on with A's generators. The restart comes in the cycle that takes the next
    # sample's first pixel (the earliest a sample can follow it); later, one held high
    # through a whole sample (inference, passes, held between iterations) must change
    # nothing of that sample.
    case, options = RESTARTS[name]
    fields, rule_fields, lanes = CASES[case]
    config, rule = _config_and_rule(fields, rule_fields)
    first, loaded = make_model(config, SEED + 3), make_model(config, SEED + 4)
    dut = TrainingCore(first, rule, lanes=lanes, weights="spram", **options)
    trainers = [IntTrainer(first, rule), IntTrainer(loaded, rule)]
    rng = np.random.default_rng(SEED + 5)
    samples = [(rng.integers(0, X + 1, D).astype(np.int64), int(rng.integers(0, K)))
               for _ in range(4)]
    # The restart in each sample: before it (with its first pixel), or held through it.
    plan = [(0, None), (0, None), (1, "with_first_pixel"), (1, "held_through")]

    async def testbench(ctx):
        await load(ctx, dut, dut.starting_loads())
        for number, ((x, y), (which, restart)) in enumerate(zip(samples, plan, strict=True)):
            if restart == "with_first_pixel":
                await load(ctx, dut, TrainingCore(loaded, rule, lanes=lanes, weights="spram",
                                                  **options).starting_loads())
            for i, pixel in enumerate(x):
                ctx.set(dut.samples.payload, {"pixel": int(pixel), "label": y, "train": 1})
                ctx.set(dut.samples.valid, 1)
                if i == 0 and restart == "with_first_pixel":
                    # Taken in this very cycle, the pixel too.
                    assert ctx.get(dut.samples.ready)
                    ctx.set(dut.restart, 1)
                await ctx.tick().until(dut.samples.ready)
                ctx.set(dut.restart, int(restart == "held_through"))
            ctx.set(dut.samples.valid, 0)
            await ctx.tick().until(dut.done.valid)
            ctx.set(dut.restart, 0)
            record = ctx.get(dut.done.payload)
            result = trainers[which].train_sample(x, y, dut.lr_shift)
            assert (record.label, record.wrong) == (result.label, result.wrong), \
                f"sample {number}"
            assert record.cycles == dut.training_cycles(), f"sample {number}"
            await check_stored(ctx, dut, trainers[which], f"sample {number} ({restart})")
            ctx.set(dut.done.ready, 1)
            await ctx.tick()
            ctx.set(dut.done.ready, 0)

    simulate(dut, testbench)


@pytest.mark.parametrize(("name", "label_lanes"), one_by_default([
    # G = K = 4: one label word a neuron (the scan's one-word path).
    ("ffdl_p4_b8", 4),
    # G = 3 of K = 4: two label words a neuron, FFCL with every iteration trained (the
    # scan's two-word path without its waiting registers).
    ("ffcl_all_t2_p3_b16", 3)], "ffcl_all_t2_p3_b16"))
def test_a_small_part_core_with_the_lean_learning_signal_trains_like_the_golden_trainer(
        name, label_lanes):
    # lean_signal: h centred in the borrowed multipliers and read back from its buffer
    # for the squares, no square or output copy register, sigma from the table's
    # register, the two-word scan without its waiting registers: the same weights in
    # the same cycles as without it.
    fields, rule_fields, lanes = CASES[name]
    config, rule = _config_and_rule(fields, rule_fields)
    dut = _train(name, config, rule, lanes, **SMALL_PART, label_lanes=label_lanes,
                 lean_signal=True)
    full = TrainingCore(dut.model, rule, lanes=lanes, weights="spram", **SMALL_PART,
                        label_lanes=label_lanes)
    assert dut.scan.lean and dut.scan.signal.lean and not full.scan.lean
    assert dut.training_cycles() == full.training_cycles()
    with pytest.raises(TypeError, match=r"^Lean signal must be a bool, not 1$"):
        TrainingCore(dut.model, rule, lanes=lanes, lean_signal=1)


@pytest.mark.parametrize(("name", "label_lanes"), one_by_default([
    # The iCEBreaker digits build's kind: FFDL on two banks, G = K = 4.
    ("ffdl_p4_b8", 4),
    # FFCL with every iteration trained: the core infers between the updates, its
    # feedback sweeps read the kept feed-forward parts (biased in the lean sweep); G = 3
    # of K = 4 (two label words a neuron).
    ("ffcl_all_t2_p3_b16", 3),
    # FFCL T = 3 with the last iteration trained: layer 1's kept parts (with the bias
    # they now include) serve the later iterations (the cache), and the bias changes
    # between samples.
    ("ffcl_last_t3_p3_b16", 3)], "ffcl_last_t3_p3_b16"))
def test_a_small_part_core_with_the_lean_forward_datapath_trains_like_the_golden_trainer(
        name, label_lanes):
    # lean_forward: the sweep reads its bias (and the kept parts) as the scaled sum
    # arrives, the scan squares h as 4 f (f + e) + e on the borrowed multipliers: the
    # same weights, labels and cycles as the small part without it (every other option
    # of the iCEBreaker build on).
    fields, rule_fields, lanes = BUILD_CASES[name]
    config, rule = _config_and_rule(fields, rule_fields)
    options = dict(SMALL_PART, label_lanes=label_lanes, compact_lanes=True,
                   lean_signal=True)
    dut = _train(name, config, rule, lanes, **options, lean_forward=True)
    full = TrainingCore(dut.model, rule, lanes=lanes, weights="spram", **options)
    assert dut.core.lean and not full.core.lean and dut.options["lean_forward"]
    assert dut.scaler.lean and not full.scaler.lean
    if name == "ffcl_last_t3_p3_b16":
        assert dut.core.program.layer1_cache and dut.trained_iterations == 1
    assert dut.training_cycles() == full.training_cycles()
    with pytest.raises(TypeError, match=r"^Lean forward must be a bool, not 1$"):
        TrainingCore(dut.model, rule, lanes=lanes, lean_forward=1)


@pytest.mark.parametrize(("name", "label_lanes"), [
    # G = K = 4 on two SPRAM banks: one label word a neuron, a neuron every third cycle.
    ("ffdl_p4_b8", 4),
    # G = 3 of K = 4 on one bank, FFCL with every iteration trained: two label words a
    # neuron, every fourth cycle, the b and U pass between the iterations too.
    ("ffcl_all_t2_p3_b16", 3),
    # The iCEBreaker's digits words (3 x 8 bits on two banks: an odd P, no pad).
    ("ffdl_p3_b8", 3),
    # Tiles that wait for their shadow load (a layer of 9 over one of 2), one bank.
    ("narrow_p3_b16", 3),
    # FFCL T = 3 with the last iteration trained: layer 1's cache, every (bank, layer)
    # norm kept.
    ("ffcl_last_t3_p3_b16", 3)])
def test_the_icebreaker_core_with_b_and_u_on_a_weight_pass_lane_trains_like_the_golden_trainer(
        name, label_lanes):
    # Every option the iCEBreaker build takes (ffcl_hw.flows.synth_training.training_core),
    # shared_update_lane among them: the b and U pass's entries on the W pass's compact
    # lane 0, -d through MAC lane 0's multiplier (v = 1), which the learning signal
    # borrows in PREPARE: the same weights in the same cycles as on a lane of its own.
    # Every case of the option tests below runs here (they keep one each by default).
    fields, rule_fields, lanes = BUILD_CASES[name]
    config, rule = _config_and_rule(fields, rule_fields)
    options = dict(SMALL_PART, label_lanes=label_lanes, compact_lanes=True, lean_signal=True,
                   lean_forward=True, serial_weight_pass=True, shared_word_network=True,
                   stored_norms=True, tag_memory=True, compact_signal=True)
    # (score_port: the build's core has the score read port for its link; it changes
    # no weight and no cycle.)
    # (held_addresses, late_replay, c_memory, late_rounding, kappa_ring: the serial
    # pass's write addresses held a register a word, its kappa the replay's own, its
    # lane's c in a block RAM, its rho and kappa a cycle after their entry; the b and U
    # pass's kappa words in its own ring.)
    dut = _train(name, config, rule, lanes, **options, shared_update_lane=True,
                 score_port=True, held_addresses=True, late_replay=True, c_memory=True,
                 late_rounding=True, kappa_ring=True)
    assert dut.options == training_core(dut.model, rule, "icebreaker", lanes).options
    own = TrainingCore(dut.model, rule, lanes=lanes, weights="spram", **options)
    assert dut.bias_label.lanes == (dut.weight_pass.lanes[0],)
    assert dut.weight_pass.lanes[0].compact and dut.weight_pass.lend_lane
    assert not own.weight_pass.lend_lane and not own.shared_update_lane
    assert dut.training_cycles() == own.training_cycles()


@pytest.mark.parametrize(("name", "label_lanes"), one_by_default([
    # G = K = 4 on two SPRAM banks: one label word a neuron (a neuron every cycle).
    ("ffdl_p4_b8", 4),
    # G = 3 of K = 4, FFCL with every iteration trained: two label words a neuron.
    ("ffcl_all_t2_p3_b16", 3)], "ffcl_all_t2_p3_b16"))
def test_a_small_part_core_with_the_compact_learning_signal_trains_like_the_golden_trainer(
        name, label_lanes):
    # compact_signal: the errors every other cycle through one sum and one rounding
    # shifter, -sigma+ through MAC lane 0's multiplier, g kept to Theta's width: the
    # same weights as the lean signal, the counter as the closed form says (_train), the
    # scan 3 N cycles longer a layer of N (the maxima pass 2 N + 1, the errors N - 1).
    fields, rule_fields, lanes = CASES[name]
    config, rule = _config_and_rule(fields, rule_fields)
    options = dict(SMALL_PART, label_lanes=label_lanes, lean_signal=True)
    dut = _train(name, config, rule, lanes, **options, compact_signal=True)
    lean = TrainingCore(dut.model, rule, lanes=lanes, weights="spram", **options)
    assert dut.scan.signal.compact and not lean.scan.signal.compact
    assert dut.options["compact_signal"] and not lean.options["compact_signal"]
    for n in config.hidden:
        assert dut.scan.cycles(n) == lean.scan.cycles(n) + 3 * n
    with pytest.raises(TypeError, match=r"^Compact signal must be True or False, not 1$"):
        TrainingCore(dut.model, rule, lanes=lanes, compact_signal=1)
    with pytest.raises(ValueError, match=r"^The compact learning signal is the lean one on "
                                         r"borrowed multipliers: it needs lean_signal=True "
                                         r"and signal_multipliers='shared'$"):
        TrainingCore(dut.model, rule, lanes=lanes, **{**options, "lean_signal": False},
                     compact_signal=True)


@pytest.mark.parametrize(("name", "label_lanes"), one_by_default([
    # The iCEBreaker digits build's kind: FFDL on two banks (no feedback norm kept).
    ("ffdl_p4_b8", 4),
    # FFCL with every iteration trained: the feedback norms of both banks, the core
    # inferring between the updates (the held FETCH between the norm's FINISH and its
    # next read).
    ("ffcl_all_t2_p3_b16", 3),
    # FFCL T = 3 with the last iteration trained and layer 1's cache: every (bank,
    # layer) kept, read as feed-forward and as feedback norms.
    ("ffcl_last_t3_p3_b16", 3)], "ffcl_last_t3_p3_b16"))
def test_a_small_part_core_with_stored_norms_trains_like_the_golden_trainer(name,
                                                                            label_lanes):
    # stored_norms: one reciprocal square root of each finished layer's sum of squares,
    # kept per layer an op reads (FFDL's one in the unit's output registers), the
    # update's input norms taken from them (the norms port); tag_memory: the sweep's
    # tags through a block RAM. The same weights, labels and cycles as the small part
    # without them (every other option of the iCEBreaker build on).
    fields, rule_fields, lanes = BUILD_CASES[name]
    config, rule = _config_and_rule(fields, rule_fields)
    options = dict(SMALL_PART, label_lanes=label_lanes, compact_lanes=True,
                   lean_signal=True, lean_forward=True, serial_weight_pass=True,
                   shared_word_network=True, shared_update_lane=True)
    dut = _train(name, config, rule, lanes, **options, stored_norms=True, tag_memory=True)
    plain = TrainingCore(dut.model, rule, lanes=lanes, weights="spram", **options)
    assert dut.core.stored_norms and not plain.core.stored_norms
    assert dut.core.tag_memory and not plain.core.tag_memory
    assert [dut.options[k] for k in ("stored_norms", "tag_memory")] == [True, True]
    assert [plain.options[k] for k in ("stored_norms", "tag_memory")] == [False, False]
    assert dut.training_cycles() == plain.training_cycles()
    with pytest.raises(TypeError, match=r"^Stored norms must be a bool, not 1$"):
        TrainingCore(dut.model, rule, lanes=lanes, stored_norms=1)
    with pytest.raises(TypeError, match=r"^Tag memory must be a bool, not 1$"):
        TrainingCore(dut.model, rule, lanes=lanes, tag_memory=1)
