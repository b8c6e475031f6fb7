# amaranth: UnusedElaboratable=no
"""Formal proof (SymbiYosys + Boolector, bounded) that the W/V pass never reads a weight
word in the cycle a write takes its SPRAM.

``rtl.weight_pass.WeightPass`` on SPRAM: one bank (``port="single"``) reads in every
other cycle and writes in the others; two banks (``port="banked"``) read a word in its
bank's slot, its write landing in the other bank's. The simulation tests show it on the
configurations they train; here every input of the pass is free (run, the layer's tiles,
neurons, W and V columns, the first words' addresses, the d, rho, v and products), so
the solver looks for any layer shape and any moment that breaks it. The read issued in
cycle t - 1 (the pass's ``issue``, in every configuration) meets the store in cycle t
(its address register), with the write of cycle t: the two must not share a bank (one
bank: must not both happen).

The iCEBreaker training build's own pass is proved as the build makes it
(``ffcl_hw.flows.synth_training.training_core``, P = 3, two banks or one by the word's
width): serial with held addresses, a late replay, the c memory and late rounding in a
compact lane lent to the b and U pass, kappa from the shared network. The harness keys
on ``issue``, not the replay's ready, which with ``late_replay`` the lane drives (a
word's last entry, a cycle later with ``late_rounding``): keyed on that, the build's
seeded bugs below passed.
"""

from __future__ import annotations

import pytest
from amaranth import Signal
from amaranth.hdl import Assert, Assume

from ffcl_hw.flows.synth_training import ice40_lane_candidates, training_core
from golden.config import ModelConfig
from golden.inttrain import TrainRule
from rtl.program import SIDE_LATENCY
from rtl.weight_pass import WeightPass
from sim.formal import internal_signal, module_variant, prove
from sim.properties import StreamContract
from tests.formal.test_proofs import _tiny_model


def _no_read_meets_a_write_of_its_bank(m, wpass: WeightPass, fragment) -> None:
    # A word is read exactly when the pass issues it: its ``issue``, which puts the word's
    # address on weights.addr and advances the schedule in every configuration. (Not the
    # replay's ready: that is the issue only without late_replay, with it the lane's
    # step, a word's last entry.) The address is the one the store's address register
    # takes with the issue, so the SPRAM's in the next cycle (with held_addresses also
    # the first held register's, held_addr_0, loaded by the same issue).
    issue = internal_signal(fragment, "issue")
    issued, address = Signal(), Signal.like(wpass.weights.addr)
    m.d.sync += [issued.eq(issue), address.eq(wpass.weights.addr)]
    meets = issued & wpass.write.valid
    if wpass.port == "banked":
        meets &= address[0] == wpass.write.addr[0]
    m.d.comb += Assert(~meets)


def _pass(port: str, lanes: int, *, module=None, serial: bool = False,
          **options) -> WeightPass:
    # FFCL, two layers, feedback: W and V columns; the ports range over every shape up
    # to its widths (3 inputs, 3 neurons).
    model = _tiny_model("ffcl", hidden=(3, 3), loops=2)
    assert isinstance(model.config, ModelConfig)
    rule = TrainRule(epochs=1, lr_shift=4, store_bits=16)
    cls = WeightPass if module is None else module.WeightPass
    return cls(model, rule, lanes=lanes, words=24, product_latency=SIDE_LATENCY,
               weight_latency=2, port=port, serial=serial, **options)


#: Depth: the first write comes 8 cycles after the first read, P + 1 after run; 24
#: cycles see tiles of one column back to back and the slots' waits.
DEPTH = 24


# The builds' SPRAM cores take the serial pass with held addresses (its proof below runs
# every case); the other arrangements keep one case each by default.
@pytest.mark.parametrize(("port", "lanes"), [
    pytest.param("banked", 1, marks=pytest.mark.slow), ("banked", 2),
    pytest.param("single", 3, marks=pytest.mark.slow)])
def test_no_read_meets_a_write_of_its_spram_bank(port, lanes, tmp_path):
    wpass = _pass(port, lanes)
    harness = StreamContract(wpass, extra=_no_read_meets_a_write_of_its_bank)
    result = prove(harness, name=f"wpass_{port}_p{lanes}", depth=DEPTH, folder=tmp_path)
    assert result.passed, f"{result.status}: see {result.log}"


#: Depth of a serial pass's proofs: its first write comes P - 1 (+ 1) cycles later, and
#: its reads every P cycles (3 here: the small part's), so 30 cycles see the writes of a
#: tile's words meet the reads of the next tile's.
SERIAL_DEPTH = 30


@pytest.mark.parametrize(("port", "lanes"), [
    ("banked", 3), pytest.param("banked", 2, marks=pytest.mark.slow),
    pytest.param("single", 3, marks=pytest.mark.slow)])
def test_no_read_of_a_serial_pass_meets_a_write_of_its_spram_bank(port, lanes, tmp_path):
    # One lane: a word every P cycles (two banks: odd P keeps the slots' alternation, an
    # even one waits a cycle more; one bank: the slots every P cycles), its write P - 1
    # cycles later than P lanes', a cycle more where the slots need it.
    wpass = _pass(port, lanes, serial=True)
    assert (wpass.spacing, wpass.write_pad) == {("banked", 3): (3, 0), ("banked", 2): (2, 1),
                                                ("single", 3): (3, 1)}[port, lanes]
    harness = StreamContract(wpass, extra=_no_read_meets_a_write_of_its_bank)
    result = prove(harness, name=f"wpass_serial_{port}_p{lanes}", depth=SERIAL_DEPTH,
                   folder=tmp_path)
    assert result.passed, f"{result.status}: see {result.log}"


@pytest.mark.parametrize(("port", "lanes"), [("banked", 3), ("banked", 2), ("single", 3)])
def test_no_read_of_a_serial_pass_with_held_addresses_meets_a_write_of_its_bank(
        port, lanes, tmp_path):
    # The serial pass with held_addresses: the written address is the last held
    # register's, which must still be the word's in its write's cycle.
    wpass = _pass(port, lanes, serial=True, held_addresses=True)
    harness = StreamContract(wpass, extra=_no_read_meets_a_write_of_its_bank)
    result = prove(harness, name=f"wpass_held_{port}_p{lanes}", depth=SERIAL_DEPTH,
                   folder=tmp_path)
    assert result.passed, f"{result.status}: see {result.log}"


#: The options the iCEBreaker training build gives its W/V pass
#: (``ffcl_hw.flows.synth_training.training_core``: one serial lane, compact, lent to the
#: b and U pass, its stored values in a block RAM, its rho and kappa a cycle late, kappa
#: the replay's own, from the shared leap-ahead network, the written addresses held).
BUILD_OPTIONS = dict(serial=True, held_addresses=True, late_replay=True, c_memory=True,
                     late_rounding=True, compact_lanes=True, lend_lane=True,
                     replay_network=False)
#: B_m of the build's rule on each SPRAM arrangement: P x B_m <= 32 bits take two banks.
BUILD_STORE_BITS = {"banked": 8, "single": 16}
#: The build's FFCL layers here (two, with feedback): the other proofs' 3 neurons, a
#: layer one tile of P = 3 lanes, and 4, two tiles (the second ragged), so that a tile's
#: writes meet the next tile's reads; the ports range over every shape up to these widths.
BUILD_HIDDEN = [(3, 3), (4, 4)]


def _options(wpass: WeightPass) -> dict[str, bool]:
    return dict(serial=wpass.serial, held_addresses=wpass.held_addresses,
                late_replay=wpass.late_replay, c_memory=wpass.c_memory,
                late_rounding=wpass.late_rounding, compact_lanes=wpass.lanes[0].compact,
                lend_lane=wpass.lend_lane, replay_network=wpass.replay.network)


def _build_model(hidden: tuple[int, int]):
    return _tiny_model("ffcl", hidden=hidden, loops=2)


def _build_pass(port: str, hidden: tuple[int, int]) -> WeightPass:
    # The pass of the core the iCEBreaker training build makes (its default lanes, the
    # first it tries), itself: its words, latencies and options as built.
    rule = TrainRule(epochs=1, lr_shift=4, store_bits=BUILD_STORE_BITS[port])
    lanes = ice40_lane_candidates(rule.store_bits)[0]
    wpass = training_core(_build_model(hidden), rule, "icebreaker", lanes).weight_pass
    assert (wpass.port, wpass.P) == (port, 3)
    assert _options(wpass) == BUILD_OPTIONS
    return wpass


#: Depth of the build's proofs: its pass reads a word every P = 3 cycles (two banks: a
#: cycle more to reach its slot) from cycle 1 (run at 0) and writes it write_delay = 10
#: (one bank: 11, its pad) cycles later, a tile being 1 to 8 words (4 W and 4 V), so 36
#: cycles see every tile's writes meet the next tile's reads: a tile of 8 words has its
#: last read by cycle 24 (two slot waits), the next tile's first by 28 and its own last
#: write by 34 (the reach test below: steps 32 and 33).
BUILD_DEPTH = 36


# The 4-neuron layers' ports range over every shape the 3-neuron ones do (the default
# run's cases); the 3-neuron cores, sized for 3, are slow.
@pytest.mark.parametrize("hidden", [pytest.param(BUILD_HIDDEN[0], marks=pytest.mark.slow),
                                    BUILD_HIDDEN[1]],
                         ids=lambda hidden: f"{hidden[0]}-neurons")
@pytest.mark.parametrize("port", ["banked", "single"])
def test_no_read_of_the_icebreaker_builds_pass_meets_a_write_of_its_bank(port, hidden,
                                                                         tmp_path):
    # The build's exact option set: the reads are found by the pass's issue, whatever
    # drives the replay (late_replay: the lane, a cycle later with late_rounding); the
    # lane's other inputs (its guest's, the shared network's word) are free too.
    wpass = _build_pass(port, hidden)
    assert (wpass.spacing, wpass.write_pad, wpass.write_delay) == \
        {"banked": (3, 0, 10), "single": (3, 1, 11)}[port]
    harness = StreamContract(wpass, extra=_no_read_meets_a_write_of_its_bank)
    result = prove(harness, name=f"wpass_build_{port}_{hidden[0]}", depth=BUILD_DEPTH,
                   folder=tmp_path)
    assert result.passed, f"{result.status}: see {result.log}"


def _first_tiles_last_write_after_the_next_tiles_read(m, wpass: WeightPass, fragment) -> None:
    # A layer of two full-width tiles (4 W and 4 V words each): the first tile's last
    # (8th) write never comes after a read of the second tile. The solver must refute
    # it within the depth, so the proofs above see the tiles' words meet.
    issue, tile = internal_signal(fragment, "issue"), internal_signal(fragment, "tile")
    written, second_read = Signal(4), Signal()
    with m.If(wpass.write.valid):
        m.d.sync += written.eq(written + 1)
    with m.If(issue & (tile != 0)):
        m.d.sync += second_read.eq(1)
    m.d.comb += Assume((wpass.ff_columns == 4) & (wpass.fb_columns == 4)
                       & (wpass.tiles == 2) & (wpass.neurons == 4))
    m.d.comb += Assert(~(second_read & wpass.write.valid & (written == 7)))


@pytest.mark.parametrize("port", ["banked", pytest.param("single", marks=pytest.mark.slow)])
def test_the_builds_proofs_are_deep_enough_to_see_the_tiles_meet(port, tmp_path):
    wpass = _build_pass(port, BUILD_HIDDEN[-1])
    harness = StreamContract(wpass, extra=_first_tiles_last_write_after_the_next_tiles_read)
    result = prove(harness, name=f"wpass_build_reach_{port}", depth=BUILD_DEPTH,
                   folder=tmp_path)
    assert result.status == "FAIL", f"{result.status}: see {result.log}"


#: Seeded schedule bugs, each a read that can meet a write of its bank.
BUGS = {
    # Two banks: the read issued whatever its slot.
    "banked-ignores-slot": ("banked", 2, {
        "issue.eq(can_issue & (self.weights.addr[0] == slot))": "issue.eq(can_issue)"}),
    # Two banks: the slot flips only when a word is read, not every cycle.
    "banked-slot-per-read": ("banked", 1, {
        "                    m.d.sync += slot.eq(~slot)":
            "                    m.d.sync += slot.eq(slot ^ issue)"}),
    # One bank: a read in every cycle, as on block RAM.
    "single-reads-every-cycle": ("single", 3, {
        "m.d.comb += issue.eq(can_issue & ~write_slot)": "m.d.comb += issue.eq(can_issue)"}),
}

#: Seeded bugs of a serial pass, each a read that can meet a write of its bank.
#: (The constructor refuses such a distance itself: each bug takes that check away too.)
_UNCHECKED = {"if not self._slots_apart(self.write_delay):": "if False:"}
SERIAL_BUGS = {
    # One bank: no cycle's pad before the write (its distance a multiple of the slots').
    "serial-single-no-pad": ("single", 3, {
        "return 0 if self._slots_apart(unpadded) else 1": "return 0", **_UNCHECKED}),
    # Two banks, even P: the pad's cycle forgotten (the write lands in its own bank's slot).
    "serial-banked-no-pad": ("banked", 2, {
        "return 0 if self._slots_apart(unpadded) else 1": "return 0", **_UNCHECKED}),
    # Two banks: reads every cycle of their slot, as P lanes read (the lane still busy).
    "serial-banked-unspaced": ("banked", 3, {
        "can_issue &= spaced": "can_issue &= 1"}),
}


@pytest.mark.parametrize("bug", [
    bug if bug != "banked-slot-per-read"
    # Opt-in (-m slow): [banked-ignores-slot] keeps a banked case by default, and the
    # default proof test_no_read_meets_a_write_of_its_spram_bank[banked-2] fails on it.
    else pytest.param(bug, marks=pytest.mark.slow) for bug in BUGS]
    + [pytest.param(bug, marks=pytest.mark.slow) for bug in SERIAL_BUGS])
def test_the_bank_harness_catches(bug, tmp_path):
    serial = bug in SERIAL_BUGS
    port, lanes, replacements = (SERIAL_BUGS if serial else BUGS)[bug]
    wpass = _pass(port, lanes, module=module_variant("rtl.weight_pass", replacements),
                  serial=serial)
    harness = StreamContract(wpass, extra=_no_read_meets_a_write_of_its_bank)
    result = prove(harness, name=f"wpass_{bug}", depth=SERIAL_DEPTH if serial else DEPTH,
                   folder=tmp_path)
    assert result.status == "FAIL", f"{result.status}: see {result.log}"


#: Seeded bugs of the build's pass, each a read that can meet a write of its bank.
BUILD_BUGS = {
    # One bank: the held address's pad dropped (the write a cycle early, the distance
    # from its read 9 = 3 P: in a read's cycle), the address still the word's.
    "build-single-held-no-pad": ("single", {
        'write_addr, valid = out_addr, Signal(name="write_valid")\n'
        '            m.d.sync += valid.eq(last_entry)':
            "write_addr, valid = out_addr, last_entry"}),
    # Two banks: the read issued whatever its slot, every P cycles (a V word, or a tile's
    # first, after a word of its own bank's parity is read in the other slot).
    "build-banked-ignores-slot": ("banked", {
        "issue.eq(can_issue & (self.weights.addr[0] == slot))": "issue.eq(can_issue)"}),
}


@pytest.mark.parametrize("bug", list(BUILD_BUGS))
def test_the_bank_harness_catches_in_the_builds_pass(bug, tmp_path):
    port, replacements = BUILD_BUGS[bug]
    build = _build_pass(port, BUILD_HIDDEN[-1])
    model = _build_model(BUILD_HIDDEN[-1])
    rule = TrainRule(epochs=1, lr_shift=4, store_bits=BUILD_STORE_BITS[port])
    wpass = module_variant("rtl.weight_pass", replacements).WeightPass(
        model, rule, lanes=build.P, words=build.words, product_latency=build.product_latency,
        weight_latency=build.weight_latency, port=port, **BUILD_OPTIONS)
    assert _options(wpass) == BUILD_OPTIONS
    assert (wpass.spacing, wpass.write_delay) == (build.spacing, build.write_delay)
    harness = StreamContract(wpass, extra=_no_read_meets_a_write_of_its_bank)
    result = prove(harness, name=f"wpass_{bug}", depth=BUILD_DEPTH, folder=tmp_path)
    assert result.status == "FAIL", f"{result.status}: see {result.log}"
