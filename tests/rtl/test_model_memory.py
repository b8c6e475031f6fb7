# amaranth: UnusedElaboratable=no
"""The model memories: initial contents, the bank bit, and which loads write what."""

from __future__ import annotations

import pytest

from rtl.model_memory import (
    LOAD_TARGETS,
    READ_LATENCY,
    ModelMemory,
    load_words,
    memory_images,
)
from rtl.program import build_program
from tests.rtl.helpers import simulate
from tests.rtl.test_core import _random_model

NAMES = ("ops", "weights", "bias", "labels")


@pytest.fixture(scope="module")
def program():
    return build_program(_random_model("ffcl-adjacent-T3", 3), lanes=2, label_lanes=3)


def _other(program, name: str, addr: int) -> int:
    """A word unlike the model's at ``addr`` (and unlike every other written word)."""
    bits = ModelMemory(program, weights="loadable").word_bits[name]
    return (memory_images(program)[name][addr] ^ (0x5A5A5A5A5A5A5A5A * (addr + 3))
            ^ (1 << (bits - 1))) & ((1 << bits) - 1) or 1


async def _read(ctx, dut, name: str, addr: int) -> int:
    """The word at ``addr`` of memory ``name``, after the port's latency."""
    port = getattr(dut, name)
    ctx.set(port.addr, addr)
    latency = dut.weight_latency if name == "weights" else READ_LATENCY
    await ctx.tick().repeat(latency)
    return ctx.get(port.data)


async def _write(ctx, dut, name: str, addr: int, word: int, *, accept: int = 1,
                 valid: int = 1, target: str | None = None) -> None:
    ctx.set(dut.accept, accept)
    ctx.set(dut.load.payload, {"target": LOAD_TARGETS[target or name], "addr": addr,
                               "data": word})
    ctx.set(dut.load.valid, valid)
    await ctx.tick()
    ctx.set(dut.load.valid, 0)
    ctx.set(dut.accept, 0)


@pytest.mark.parametrize(("weights", "banks"), [("rom", 1), ("loadable", 1), ("loadable", 2)])
def test_reads_give_the_model_images_up_to_the_last_word(program, weights, banks):
    # Every word, the last one included (depth - 1 of each bank): an address cut a bit
    # short or a bank bit in the wrong place reads another word.
    dut = ModelMemory(program, weights=weights, banks=banks)
    images = memory_images(program)

    async def bench(ctx):
        for bank in range(banks):
            if banks == 2:
                ctx.set(dut.bank, bank)
            for name in NAMES:
                for addr in (0, len(images[name]) - 1, len(images[name]) // 2):
                    assert await _read(ctx, dut, name, addr) == images[name][addr], \
                        (bank, name, addr)

    simulate(dut, bench)


def test_reads_see_bank_bank_and_loads_write_the_other(program):
    dut = ModelMemory(program, weights="loadable", banks=2)
    images = memory_images(program)

    async def bench(ctx):
        ctx.set(dut.bank, 0)
        for name in NAMES:
            last = len(images[name]) - 1
            for addr in (0, last):
                await _write(ctx, dut, name, addr, _other(program, name, addr))
        for name in NAMES:
            last = len(images[name]) - 1
            for addr in (0, last):
                # Bank 0 is in use: untouched.
                assert await _read(ctx, dut, name, addr) == images[name][addr], (name, addr)
        ctx.set(dut.bank, 1)
        for name in NAMES:
            last = len(images[name]) - 1
            for addr in (0, last):
                assert await _read(ctx, dut, name, addr) == _other(program, name, addr), \
                    (name, addr)
            if last > 1:
                # A word not loaded keeps the model's (no write beside the address).
                assert await _read(ctx, dut, name, 1) == images[name][1], name
        # Now loads go to bank 0, which bank 1's readers do not see.
        await _write(ctx, dut, "bias", 0, 7)
        assert await _read(ctx, dut, "bias", 0) == _other(program, "bias", 0)
        ctx.set(dut.bank, 0)
        assert await _read(ctx, dut, "bias", 0) == 7

    simulate(dut, bench)


@pytest.mark.parametrize("target", NAMES)
def test_a_load_writes_only_its_target_and_only_when_taken(program, target):
    dut = ModelMemory(program, weights="loadable")
    images = memory_images(program)
    assert dut.load.payload.shape().size >= max(dut.word_bits.values())

    async def bench(ctx):
        # Offered but not accepted (the core is busy), and accepted but not offered:
        # neither writes.
        await _write(ctx, dut, target, 0, _other(program, target, 0), accept=0)
        assert not ctx.get(dut.load.ready)
        await _write(ctx, dut, target, 0, _other(program, target, 0), valid=0)
        for name in NAMES:
            assert await _read(ctx, dut, name, 0) == images[name][0], name
        # Taken: written to the target named, and to no other memory.
        await _write(ctx, dut, target, 0, _other(program, target, 0))
        for name in NAMES:
            expected = _other(program, target, 0) if name == target else images[name][0]
            assert await _read(ctx, dut, name, 0) == expected, name

    simulate(dut, bench)


def test_a_full_width_word_is_written_whole(program):
    # Every bit of the widest memory's word: a write port narrower than the word, or a
    # data field cut short, loses the top bits.
    dut = ModelMemory(program, weights="loadable")
    ones = (1 << dut.word_bits["weights"]) - 1

    async def bench(ctx):
        await _write(ctx, dut, "weights", 1, ones)
        assert await _read(ctx, dut, "weights", 1) == ones

    simulate(dut, bench)


def test_an_spram_store_starts_empty_and_keeps_its_program(program):
    dut = ModelMemory(program, weights="spram")
    images = memory_images(program)
    words = {(t, a): w for t, a, w in load_words(program)}

    async def bench(ctx):
        assert await _read(ctx, dut, "weights", 0) == 0
        await _write(ctx, dut, "weights", 0, words[(LOAD_TARGETS["weights"], 0)])
        await _write(ctx, dut, "ops", 0, _other(program, "ops", 0))
        assert await _read(ctx, dut, "weights", 0) == images["weights"][0]
        # The program is a ROM: a write to it changes nothing.
        assert await _read(ctx, dut, "ops", 0) == images["ops"][0]

    simulate(dut, bench)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"weights": "flash"}, "Weight memory must be one of rom, loadable, spram, not 'flash'"),
    ({"weights": "loadable", "banks": 3}, "Weight banks must be 1 or 2, not 3"),
    ({"weights": "rom", "banks": 2}, "Two weight banks need weights='loadable'"),
])
def test_model_memory_refuses_bad_mappings(program, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelMemory(program, **kwargs)


def test_a_rom_has_no_load_port(program):
    assert not hasattr(ModelMemory(program, weights="rom"), "load")
    assert "bank" not in ModelMemory(program, weights="loadable").signature.members
