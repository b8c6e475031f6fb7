# amaranth: UnusedElaboratable=no
"""No read of the training core's memories that meets a write of its address is used.

Amaranth's memories return the old word when a synchronous read meets a write of the same
address in one cycle; an iCE40 block RAM promises nothing then, so Yosys builds, for every
such read port, a register of the write data, an address comparison and a multiplexer
(about 480 flip-flops in the iCEBreaker training build, each a logic cell of its own).
The training build tells Yosys the data of such a read may be anything
(``ffcl_hw.flows.synth.ignore_marked_collisions`` for the memories marked
``rtl.collisions.COLLISIONS_UNUSED``), which holds only if no such read is used.

These tests make that a checked fact: every marked memory's synchronous read that meets
a write of its address returns its word with every bit flipped (``flipped_collisions``),
and the small part's training core, and a host link over a training core, must still
train and read back bit-exact. A use of such a read is a mismatch.
"""

from __future__ import annotations

import pytest
from amaranth import Module, Mux, Signal, Value
from amaranth.hdl import MemoryInstance
from amaranth.lib import memory
from amaranth.sim import Simulator

import tests.rtl.test_training_core as training_core_tests
from golden.config import ModelConfig
from golden.inttrain import TrainRule
from rtl.collisions import COLLISIONS_UNUSED
from tests.rtl.helpers import PERIOD
from tests.rtl.test_host_link_training import (
    test_the_link_trains_like_the_golden_trainer_and_reads_the_model_back as link_trains,
)
from tests.rtl.test_training_core import LABEL_GROUP_CASES, D, K, check_case, make_model
from tests.rtl.test_training_spram import CASES, _train

#: The flip registers of the memories elaborated since the fixture was set up: high in
#: a cycle whose read data is a collided read's (flipped).
_FLIPS: list[Signal] = []


def _flipping_elaborate(self: memory.Memory, platform) -> Module:
    """``Memory.elaborate`` whose marked memories' (:data:`rtl.collisions.COLLISIONS_UNUSED`)
    synchronous reads return every bit flipped when they met a write of their address
    (what an iCE40 block RAM may return then)."""
    m = Module()
    instance = MemoryInstance(data=self._data, attrs=self.attrs, src_loc=self.src_loc)
    writes = {port: instance.write_port(domain=port.domain, addr=port.addr, data=port.data,
                                        en=port.en)
              for port in self.write_ports}
    for port in self.read_ports:
        transparent_for = tuple(writes[write] for write in port.transparent_for)
        if (port.domain == "comb" or not self.write_ports or transparent_for
                or self.attrs.get("no_rw_check") != 1):
            # A transparent read is meant to see the write, and an unmarked memory keeps
            # the old word: Yosys keeps their bypass.
            instance.read_port(domain=port.domain, data=port.data, addr=port.addr,
                               en=port.en, transparent_for=transparent_for)
            continue
        raw = Signal(len(Value.cast(port.data)))
        instance.read_port(domain=port.domain, data=raw, addr=port.addr, en=port.en,
                           transparent_for=())
        collides = 0
        for write in self.write_ports:
            collides = collides | ((write.en != 0) & (write.addr == port.addr))
        flipped = Signal()
        _FLIPS.append(flipped)
        # Held with the data while the port is not enabled.
        with m.If(port.en):
            m.d[port.domain] += flipped.eq(collides)
        m.d.comb += Value.cast(port.data).eq(Mux(flipped, ~raw, raw))
    m.submodules.instance = instance
    return m


@pytest.fixture
def flipped_collisions(monkeypatch):
    """Memories flip collided reads; returns a list the simulations add the cycles with a
    flipped read to (so a test can show its run had some)."""
    monkeypatch.setattr(memory.Memory, "elaborate", _flipping_elaborate)
    _FLIPS.clear()
    counts: list[int] = []

    def simulate(dut, testbench):
        sim = Simulator(dut)        # elaborates: the memories' flip registers exist now
        sim.add_clock(PERIOD)
        flips = list(_FLIPS)

        async def count(ctx):
            counts.append(0)
            async for _, _, *values in ctx.tick().sample(*flips):
                counts[-1] += sum(int(v) for v in values)

        sim.add_process(count)
        sim.add_testbench(testbench)
        sim.run()

    monkeypatch.setattr(training_core_tests, "simulate", simulate)
    return counts


def test_a_used_collided_read_is_flipped(flipped_collisions):
    # The flipping itself: a word written at 3 while 3 is read comes out flipped (the old
    # 0 as all ones) in the next cycle, and read again without the write, as written.
    mem = memory.Memory(shape=8, depth=4, init=[], attrs=COLLISIONS_UNUSED)
    write, read = mem.write_port(), mem.read_port()
    seen = []

    async def testbench(ctx):
        ctx.set(write.addr, 3)
        ctx.set(write.data, 0x5A)
        ctx.set(write.en, 1)
        ctx.set(read.addr, 3)
        await ctx.tick()
        ctx.set(write.en, 0)
        seen.append(ctx.get(read.data))
        await ctx.tick()
        seen.append(ctx.get(read.data))

    m = Module()
    m.submodules.mem = mem
    training_core_tests.simulate(m, testbench)
    assert seen == [0xFF, 0x5A]
    assert flipped_collisions == [1]


#: The small part's options (ffcl_hw.flows.synth_training.training_core), on FFDL with
#: two SPRAM banks (B_m = 8, 4 lanes, as the iCEBreaker digits build), and on FFCL with
#: every iteration trained in one bank (B_m = 16, 3 lanes, G = 3 of K = 4: two label
#: words a neuron; the loop-feedback buffer).
SMALL_PART = dict(bias_label_lanes=1, forward_multipliers="shared",
                  signal_multipliers="shared", compact_lanes=True, input_norm="forward",
                  lean_signal=True, lean_forward=True, serial_weight_pass=True,
                  shared_word_network=True, shared_update_lane=True, compact_signal=True)


@pytest.mark.parametrize("name", ["ffdl_p4_b8", "ffcl_all_t2_p3_b16"])
def test_the_small_part_core_uses_no_collided_read(flipped_collisions, name):
    fields, rule_fields, lanes = CASES[name]
    config = ModelConfig(input_size=D, num_classes=K, theta=0.5, **fields)
    rule = TrainRule(epochs=1, seed=7, lr_shift=4, **rule_fields)
    # Bit-exact after every sample (run_samples), whatever the collided reads returned.
    _train(name, config, rule, lanes, label_lanes=min(lanes, K), **SMALL_PART)
    # The run had collided reads (the test is not vacuous): reads the design ignores.
    assert sum(flipped_collisions) > 0


def test_label_words_in_several_words_use_no_collided_read_of_a_marked_memory(
        flipped_collisions):
    # G = 3 of K = 4 with block RAM weights, the case whose label words are read in the
    # cycle a write of them lands (and used): the label memory is not marked, and with
    # it marked this case fails. Every marked memory's collided reads go unused here too.
    case, multipliers, label_lanes, forward, samples = LABEL_GROUP_CASES["ffdl_p3_g3"]
    check_case("ffdl_p3_g3", multipliers, 1, forward_multipliers=forward, case=case,
               label_lanes=label_lanes, samples=samples)
    assert sum(flipped_collisions) > 0


def test_a_training_host_link_uses_no_collided_read(flipped_collisions):
    # The link's own memory (the sample buffer, which the lean link the iCE40 build
    # makes also writes the TRAIN records into) beside a core's: the link test's model
    # and checks (records, read-back, refused frames).
    link_trains(make_model(ModelConfig(algo="ffdl", input_size=D, num_classes=K,
                                       hidden=(7, 5), theta=0.5), 11), lean=True)
