# amaranth: UnusedElaboratable=no
"""The weight store: block RAM or SPRAM behind one read port, and a core whose weights
live in (simulated) SPRAM and arrive through the load port."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment

from ffcl_hw.flows.simulate import check_results
from rtl.board import BOARDS
from rtl.core import LOAD_TARGETS, Core
from rtl.weight_store import (
    PART_DEPTH,
    WeightStore,
    bram_slices,
    spram_banks,
    spram_blocks,
    store_port,
    weight_store_latency,
)
from sim.amaranth_sim import CoreResult, run_core
from tests.rtl.helpers import simulate
from tests.rtl.test_core import _random_model


async def _write(ctx, dut, words: dict[int, int]) -> None:
    """Store ``words`` (address: word) through the write port, one per cycle."""
    for addr, word in words.items():
        ctx.set(dut.write.en, 1)
        ctx.set(dut.write.addr, addr)
        ctx.set(dut.write.data, word)
        await ctx.tick()
    ctx.set(dut.write.en, 0)

@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(width=64, depth=16, kind="flash"), ValueError,
     "Weight store kind must be one of bram, spram, not 'flash'"),
    (dict(width=64, depth=1, kind="bram"), TypeError,
     "Weight store depth must be an integer of at least 2, not 1"),
    (dict(width=64, depth=4, kind="spram", init=[1]), ValueError, "cannot be initialised"),
    (dict(width=64, depth=2, kind="bram", init=[1, 2, 3]), ValueError, "at most 2 words"),
    (dict(width=80, depth=16, kind="spram"), ValueError, "at most 64 bits"),
    (dict(width=48, depth=16385, kind="spram"), ValueError, "at most 16384 words"),
    # Two banks, no more words: a deeper store would need the deep latency.
    (dict(width=16, depth=16385, kind="spram"), ValueError, "at most 16384 words"),
])
def test_weight_store_refuses_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        WeightStore(**kwargs)


# Side by side in each bank; words of at most 32 bits in two banks.
@pytest.mark.parametrize(("width", "blocks"), [(64, 4), (48, 3), (33, 3), (17, 4), (8, 2)])
def test_spram_blocks_side_by_side(width, blocks):
    assert spram_blocks(width=width, depth=1536) == blocks


@pytest.mark.parametrize("kind", ["bram", "spram"])
def test_written_words_read_back_two_cycles_later(kind):
    dut = WeightStore(width=64, depth=8, kind=kind, writable=True)
    words = [(0x0123_4567_89AB_CDEF * (i + 1)) & (2**64 - 1) for i in range(8)]

    async def bench(ctx):
        for addr, word in enumerate(words):
            ctx.set(dut.write.en, 1)
            ctx.set(dut.write.addr, addr)
            ctx.set(dut.write.data, word)
            await ctx.tick()
        ctx.set(dut.write.en, 0)
        for addr in reversed(range(8)):
            ctx.set(dut.read.addr, addr)
            await ctx.tick()
            # Not yet: the address is registered before the memory reads it.
            assert dut.latency == 2
            await ctx.tick()
            assert ctx.get(dut.read.data) == words[addr]

    simulate(dut, bench)


def test_a_bram_store_starts_with_its_initial_words():
    dut = WeightStore(width=8, depth=4, kind="bram", init=[5, 6, 7, 8])

    async def bench(ctx):
        for addr in (3, 0, 2):
            ctx.set(dut.read.addr, addr)
            await ctx.tick().repeat(dut.latency)
            assert ctx.get(dut.read.data) == 5 + addr

    simulate(dut, bench)


@pytest.mark.parametrize(("family", "depth", "width", "slices"), [
    # One block deep in the widest configuration that holds every word: the ULX3S-85F's
    # MNIST weights on 86 lanes in 4096 x 4, the digits' on 8 lanes in 2048 x 9 (8-bit
    # slices, not seven of 9 bits and one of 1).
    ("ecp5", 3888, 688, [4] * 172),
    ("ecp5", 1536, 64, [8] * 8),
    ("ecp5", 512, 70, [35, 35]),
    ("ecp5", 513, 37, [13, 12, 12]),
    # Deeper than any configuration: the deepest one's width.
    ("ecp5", 20000, 3, [1, 1, 1]),
    # iCE40 keeps Yosys's packing.
    ("ice40", 1536, 64, [64]),
])
def test_bram_slices_are_one_block_deep(family, depth, width, slices):
    assert bram_slices(family, depth=depth, width=width) == slices


def test_bram_slices_refuse_an_unknown_family():
    with pytest.raises(ValueError, match="family must be one of ice40, ecp5, not 'gowin'"):
        bram_slices("gowin", depth=16, width=8)


@pytest.mark.parametrize("writable", [False, True])
def test_a_sliced_store_reads_the_same_words(writable):
    # Elaborated for ECP5 the store is 8 memories of 9 bits (2048 deep); in simulation it
    # must read exactly the words of the whole-word memory, and take writes the same way.
    rng = np.random.default_rng(5)
    words = [int(v) for v in rng.integers(0, 2**62, size=2000)] + [2**70 - 1]
    dut = WeightStore(width=71, depth=2001, kind="bram", init=words, writable=writable)
    fragment = Fragment.get(dut, BOARDS["ulx3s-25f"].make_platform())
    # 8 slices and one copy of the read address (16 slices share a copy).
    names = sorted(name for _, name, _ in fragment.subfragments)
    assert names == ["replica_0", *(f"slice_{i}" for i in range(8))]
    replaced = {7: 2**71 - 1, 2000: 0x55 << 60}

    async def bench(ctx):
        for addr in (0, 1999, 2000, 7, 1024):
            ctx.set(dut.read.addr, addr)
            await ctx.tick().repeat(dut.latency)
            assert ctx.get(dut.read.data) == words[addr], addr
        if writable:
            await _write(ctx, dut, replaced)
            for addr, word in replaced.items():
                ctx.set(dut.read.addr, addr)
                await ctx.tick().repeat(dut.latency)
                assert ctx.get(dut.read.data) == word, addr

    simulate(fragment, bench)


def test_spram_becomes_sb_spram256ka_only_for_ice40_synthesis():
    def convert(platform):
        dut = WeightStore(width=64, depth=1536, kind="spram")
        return verilog.convert(dut, name="store", platform=platform)

    assert convert(BOARDS["icebreaker"].make_platform()).count("SB_SPRAM256KA ") == 4
    for platform in (None, BOARDS["ulx3s-85f"].make_platform()):
        assert "SB_SPRAM256KA" not in convert(platform)


def test_an_spram_core_runs_the_model_loaded_over_the_load_port():
    # SPRAM comes up empty: the whole model is loaded before the first image, and the
    # results are the integer model's, bit for bit.
    model = _random_model("ffcl-adjacent-T3", 31)
    core = Core(model, lanes=3, weights="spram")
    images = np.random.default_rng(31).integers(0, 17, size=(3, 9))
    results = run_core(core, images, load=core.load_words_for(model))
    assert not check_results(results, model.run(images), core.cycles_per_inference())


def test_an_spram_core_without_its_weights_gives_other_results():
    # The test above can fail: without the load the weights are zero in simulation.
    model = _random_model("ffcl-adjacent-T3", 31)
    core = Core(model, lanes=3, weights="spram")
    images = np.random.default_rng(31).integers(0, 17, size=(3, 9))
    results = run_core(core, images)
    assert check_results(results, model.run(images), core.cycles_per_inference())


def test_the_latency_follows_the_depth():
    # One block RAM deep (an ECP5 DP16KD as 16,384 x 1): 2, as every existing build.
    assert [weight_store_latency(d) for d in (2, PART_DEPTH, PART_DEPTH + 1)] == [2, 2, 3]
    with pytest.raises(ValueError, match="latency must be 2 or 3, not 4"):
        WeightStore(width=8, depth=4, kind="bram", latency=4)
    with pytest.raises(ValueError, match="SPRAM weight store reads with latency 2"):
        WeightStore(width=8, depth=4, kind="spram", latency=3)


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("platform", [None, "ulx3s-85f"])
def test_a_deep_store_reads_a_new_word_every_cycle_across_its_parts(platform, parts):
    # (parts - 1) x 16,384 + 6 words of 3 bits: the last part 6 words deep, three 1-bit
    # slices for ECP5. A new address every cycle, hopping between the parts, catches a
    # part select taken a cycle early or late; three parts catch one that reads only the
    # lowest bit of the part number (part 2 is 0b10); the writes must reach the right part.
    last = (parts - 1) * PART_DEPTH
    depth = last + 6
    rng = np.random.default_rng(7)
    words = [int(v) for v in rng.integers(0, 8, size=depth)]
    dut = WeightStore(width=3, depth=depth, kind="bram", init=words, writable=True,
                      latency=3)
    assert dut.latency == 3
    fragment = (Fragment.get(dut, BOARDS[platform].make_platform()) if platform else dut)
    if platform:
        names = sorted(name for _, name, _ in fragment.subfragments)
        assert names == ["replica_0", *(f"replica_slice_{i}" for i in range(3))]
    # Every part's first, last and a middle word, in an order where consecutive reads
    # change part.
    ends = [(j * PART_DEPTH, min((j + 1) * PART_DEPTH, depth) - 1) for j in range(parts)]
    reads = [0, depth - 1, 1, PART_DEPTH, PART_DEPTH - 1, depth - 2, 5, last + 1, last + 1,
             2, depth - 1, *(a for end in ends for a in (end[1], end[0] + 3, end[0]))]
    # Every part's same local address 3 with different words: only the part tells them
    # apart.
    replaced = {first + 3: words[first + 3] ^ (j + 5) for j, (first, _) in enumerate(ends)}
    replaced[PART_DEPTH - 1] = words[PART_DEPTH - 1] ^ 2

    async def read_all(ctx, expected):
        got = []
        for t in range(len(reads) + dut.latency):
            if t < len(reads):
                ctx.set(dut.read.addr, reads[t])
            await ctx.tick()
            if t >= dut.latency - 1 and len(got) < len(reads):
                got.append(ctx.get(dut.read.data))
        assert got == [expected[a] for a in reads]

    async def bench(ctx):
        await read_all(ctx, words)
        await _write(ctx, dut, replaced)
        reads.extend(replaced)
        await read_all(ctx, {**dict(enumerate(words)), **replaced})

    simulate(fragment, bench)


@pytest.mark.parametrize("kind", ["spram", "bram"])
def test_a_read_in_a_cycle_that_writes_gives_poison_on_spram_only(kind):
    # SB_SPRAM256KA has one port: with WREN high its DATAOUT takes no word. The read whose
    # registered address meets the memory in a write cycle (given the cycle before) is
    # all ones in simulation; the reads around it, and the written word, are intact. A
    # dual-port block RAM answers it.
    dut = WeightStore(width=48, depth=8, kind=kind, writable=True)
    words = {addr: 0x1111_2222_3333 * (addr + 1) for addr in range(4)}

    async def bench(ctx):
        await _write(ctx, dut, words)
        got = []
        for cycle, addr in enumerate((0, 1, 3, 2)):
            ctx.set(dut.read.addr, addr)
            # The read of address 1 reaches the memory in the next cycle, with a write.
            ctx.set(dut.write.en, cycle == 2)
            ctx.set(dut.write.addr, 5)
            ctx.set(dut.write.data, 0xABCD)
            await ctx.tick()
            got.append(ctx.get(dut.read.data))
        ctx.set(dut.write.en, 0)
        await ctx.tick()
        got.append(ctx.get(dut.read.data))
        # Data of the reads given in cycles 0, 1, 2, 3 (one cycle after each tick above).
        poison = (1 << 48) - 1 if kind == "spram" else words[1]
        assert got[1:] == [words[0], poison, words[3], words[2]]
        ctx.set(dut.read.addr, 5)
        await ctx.tick().repeat(dut.latency)
        assert ctx.get(dut.read.data) == 0xABCD

    simulate(dut, bench)


def test_two_spram_banks_lose_only_a_read_of_the_bank_being_written():
    # A word of 32 bits is kept in two banks, even and odd addresses (spram_banks): a read
    # meeting a write of the other bank gets its word, one meeting a write of its own bank
    # gets poison, as one SPRAM would give. The training core's W and V passes rely on
    # the first; a model with banks of no consequence would hide a schedule's collisions.
    dut = WeightStore(width=32, depth=8, kind="spram")
    assert (dut.banks, dut.port, dut.blocks) == (2, "banked", 4)
    words = {addr: 0x1111_1111 * (addr + 1) for addr in range(6)}

    async def bench(ctx):
        await _write(ctx, dut, words)
        got = []
        # Each read meets a write of address 5 (odd) in the memory a cycle later.
        for addr in (2, 3, 4, 1):
            ctx.set(dut.read.addr, addr)
            await ctx.tick()
            ctx.set(dut.write.en, 1)
            ctx.set(dut.write.addr, 5)
            ctx.set(dut.write.data, 0xABCD)
            await ctx.tick()
            ctx.set(dut.write.en, 0)
            got.append(ctx.get(dut.read.data))
        assert got == [words[2], 2**32 - 1, words[4], 2**32 - 1]
        ctx.set(dut.read.addr, 5)
        await ctx.tick().repeat(dut.latency)
        assert ctx.get(dut.read.data) == 0xABCD

    simulate(dut, bench)


@pytest.mark.parametrize(("width", "banks", "port"), [(64, 1, "single"), (33, 1, "single"),
                                                      (32, 2, "banked"), (8, 2, "banked")])
def test_spram_words_of_at_most_32_bits_take_two_banks(width, banks, port):
    assert spram_banks(width) == banks
    assert store_port("spram", width) == port
    assert spram_blocks(width=width, depth=16384) == banks * -(-width // 16)
    with pytest.raises(ValueError, match="holds at most 16384 words"):
        spram_blocks(width=width, depth=16385)


def test_a_load_offered_during_an_spram_inference_waits_for_the_core_to_idle():
    # A load offered while the core infers (here a weight word rewritten with its own
    # value, which a dual-port memory would not notice) is taken only once the core
    # idles: a write between the forward pass's reads would take their port, and the
    # simulated SPRAM answers such a read with poison.
    model = _random_model("ffdl", 32)
    core = Core(model, lanes=3, weights="spram")
    words = core.load_words_for(model)
    weight_word = next(w for w in words if w[0] == LOAD_TARGETS["weights"])
    images = np.random.default_rng(32).integers(0, 17, size=(2, 9))
    results = []

    async def bench(ctx):
        ctx.set(core.result.ready, 1)
        for target, addr, word in words:
            ctx.set(core.load.payload, {"target": target, "addr": addr, "data": word})
            ctx.set(core.load.valid, 1)
            await ctx.tick().until(core.load.ready)
        ctx.set(core.load.valid, 0)
        for image in images:
            for value in image:
                ctx.set(core.image.payload, int(value))
                ctx.set(core.image.valid, 1)
                await ctx.tick().until(core.image.ready)
            ctx.set(core.image.valid, 0)
            # Offered from the first cycle of the inference until it is taken.
            target, addr, word = weight_word
            ctx.set(core.load.payload, {"target": target, "addr": addr, "data": word})
            ctx.set(core.load.valid, 1)
            payload, = await ctx.tick().sample(core.result.payload).until(core.result.valid)
            results.append(CoreResult(label=int(payload.label),
                                      scores=tuple(int(s) for s in payload.scores),
                                      cycles=int(payload.cycles)))
            await ctx.tick().until(core.load.ready)
            ctx.set(core.load.valid, 0)

    simulate(core, bench)
    assert not check_results(results, model.run(images), core.cycles_per_inference())
