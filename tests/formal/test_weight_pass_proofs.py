# amaranth: UnusedElaboratable=no
"""Formal proof (SymbiYosys + Boolector, bounded) that the W/V pass never reads a weight
word in the cycle a write takes its SPRAM.

``rtl.weight_pass.WeightPass`` on SPRAM: one bank (``port="single"``) reads in every
other cycle and writes in the others; two banks (``port="banked"``) read a word in its
bank's slot, its write landing in the other bank's. The simulation tests show it on the
configurations they train; here every input of the pass is free (run, the layer's tiles,
neurons, W and V columns, the first words' addresses, the d, rho, v and products), so
the solver looks for any layer shape and any moment that breaks it. The read issued in
cycle t - 1 meets the store in cycle t (its address register), with the write of cycle
t: the two must not share a bank (one bank: must not both happen).
"""

from __future__ import annotations

import pytest
from amaranth import Signal
from amaranth.hdl import Assert

from golden.config import ModelConfig
from golden.inttrain import TrainRule
from rtl.program import SIDE_LATENCY
from rtl.weight_pass import WeightPass
from sim.formal import internal_signal, module_variant, prove
from sim.properties import StreamContract
from tests.formal.test_proofs import _tiny_model


def _no_read_meets_a_write_of_its_bank(m, wpass: WeightPass, fragment) -> None:
    # A word is read exactly when the replay generator gives its kappa (the pass drives
    # the generator's ready with its issue), which names no signal of its own.
    issue = internal_signal(fragment, "words__ready")
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
    # register's, which must still be the word's in its write's cycle. (Not with
    # late_replay: the harness finds the reads by the replay's ready, then the lane's.)
    wpass = _pass(port, lanes, serial=True, held_addresses=True)
    harness = StreamContract(wpass, extra=_no_read_meets_a_write_of_its_bank)
    result = prove(harness, name=f"wpass_held_{port}_p{lanes}", depth=SERIAL_DEPTH,
                   folder=tmp_path)
    assert result.passed, f"{result.status}: see {result.log}"


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


@pytest.mark.parametrize("bug", list(BUGS) + [pytest.param(bug, marks=pytest.mark.slow)
                                              for bug in SERIAL_BUGS])
def test_the_bank_harness_catches(bug, tmp_path):
    serial = bug in SERIAL_BUGS
    port, lanes, replacements = (SERIAL_BUGS if serial else BUGS)[bug]
    wpass = _pass(port, lanes, module=module_variant("rtl.weight_pass", replacements),
                  serial=serial)
    harness = StreamContract(wpass, extra=_no_read_meets_a_write_of_its_bank)
    result = prove(harness, name=f"wpass_{bug}", depth=SERIAL_DEPTH if serial else DEPTH,
                   folder=tmp_path)
    assert result.status == "FAIL", f"{result.status}: see {result.log}"
