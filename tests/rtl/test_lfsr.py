# amaranth: UnusedElaboratable=no
"""WordGenerator against golden.lfsr: documented first words, long runs, back-pressure,
seeding, and the mutants these checks must catch (Glasgow's habit: the reference runs
beside the hardware and every transferred word is compared with it)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from amaranth import Cat, Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

import rtl.lfsr
from golden.inttrain import LABEL_SEED_OFFSET
from golden.lfsr import LFSR_WIDTH, Lfsr
from rtl.lfsr import WordGenerator, seed_state, word_columns
from tests.rtl.helpers import simulate

SEED = 3141

#: docs/integer-training.md, "The generators": the first words for seed 0.
ROUNDING_FIRST = [0x8A0F3DB5, 0x90BD2FA6, 0x44C38D95, 0x972542A4]
LABEL_FIRST = [0x704D077B, 0x1EB3C1BE, 0xB54B19C1]


def always(_: int) -> bool:
    return True


def collect(dut: wiring.Component, count: int, ready: Callable[[int], bool] = always,
            loads: dict[int, int] | None = None) -> list[tuple[int, int]]:
    """Run ``dut`` with ``ready`` a function of the cycle until ``count`` words transfer.

    ``loads`` maps a cycle to a seed loaded in it. Returns (cycle, word) per transfer.
    Checks along the way that an offered word stays put while it is not taken.
    """
    loads = loads or {}
    got: list[tuple[int, int]] = []

    async def testbench(ctx) -> None:
        held = None
        cycle = 0
        while len(got) < count:
            load = cycle in loads
            ctx.set(dut.load, load)
            if load:
                ctx.set(dut.seed, loads[cycle])
            take = ready(cycle)
            ctx.set(dut.words.ready, take)
            valid, word = ctx.get(dut.words.valid), ctx.get(dut.words.payload)
            if held is not None and valid and not load:
                # The word offered but not taken in the cycle before must be offered again.
                assert word == held, f"cycle {cycle}: word {word:#x} replaced held {held:#x}"
            held = None
            if valid and take and not load:
                got.append((cycle, word))
            elif valid and not load:
                held = word
            await ctx.tick()
            cycle += 1
            assert cycle < 20 * count + 100, "the generator stopped offering words"
        ctx.set(dut.load, 0)

    simulate(dut, testbench)
    return got


def golden_words(seed: int, offset: int, count: int) -> list[int]:
    lfsr = Lfsr(0)
    lfsr.state = seed_state(seed, offset)
    return [lfsr.word() for _ in range(count)]


def test_golden_seeding_is_the_documented_one() -> None:
    # seed_state must be the generators' own seeding, not a copy that could drift.
    for seed in (0, 1, 12345, (1 << 32) - 2, (1 << 32) - 1, (1 << 63) - 1):
        assert seed_state(seed, 0) == Lfsr(seed).state
        assert seed_state(seed, LABEL_SEED_OFFSET) == Lfsr(seed + LABEL_SEED_OFFSET).state


def test_word_columns_are_32_golden_steps() -> None:
    # Column b must be A e_b: checked through linearity on random states.
    rng = np.random.default_rng(SEED)
    columns = word_columns()
    for state in rng.integers(1, 1 << 32, size=50):
        lfsr = Lfsr(0)
        lfsr.state = int(state)
        want = lfsr.word()
        got = 0
        for b in range(LFSR_WIDTH):
            if int(state) >> b & 1:
                got ^= columns[b]
        assert got == want


@pytest.mark.parametrize(("offset", "first"), [(0, ROUNDING_FIRST),
                                                (LABEL_SEED_OFFSET, LABEL_FIRST)])
def test_documented_first_words_after_reset(offset: int, first: list[int]) -> None:
    dut = WordGenerator(offset=offset)
    got = collect(dut, len(first))
    assert [w for _, w in got] == first
    # One word per cycle from the first cycle: nothing to wait for after reset.
    assert [c for c, _ in got] == list(range(len(first)))


@pytest.mark.parametrize(("offset", "first"), [(0, ROUNDING_FIRST),
                                                (LABEL_SEED_OFFSET, LABEL_FIRST)])
def test_documented_first_words_after_load(offset: int, first: list[int]) -> None:
    # Reset with another seed, then load seed 0: the load must replace the state.
    dut = WordGenerator(offset=offset, reset_seed=99)
    got = collect(dut, 2 + len(first), loads={2: 0})
    assert [w for _, w in got[2:]] == first
    # The first word of the loaded seed comes LOAD_LATENCY cycles after the load.
    assert got[2][0] == 2 + dut.load_latency


def test_long_run_equals_golden() -> None:
    dut = WordGenerator(offset=0, reset_seed=7)
    got = [w for _, w in collect(dut, 1500)]
    want = [int(w) for w in Lfsr(7).words(1500)]
    assert got == want


def ready_patterns() -> dict[str, Callable[[int], bool]]:
    rng = np.random.default_rng(SEED)
    random_ready = rng.random(4000) < 0.4
    return {
        "never_then_always": lambda c: c >= 5,
        "every_third": lambda c: c % 3 == 0,
        "random_40pct": lambda c: bool(random_ready[c % 4000]),
        "bursts": lambda c: (c // 7) % 2 == 1,
    }


@pytest.mark.parametrize("pattern", sorted(ready_patterns()))
def test_back_pressure_skips_and_repeats_nothing(pattern: str) -> None:
    dut = WordGenerator(offset=LABEL_SEED_OFFSET, reset_seed=5)
    got = [w for _, w in collect(dut, 300, ready_patterns()[pattern])]
    assert got == [int(w) for w in Lfsr(5 + LABEL_SEED_OFFSET).words(300)]


LOAD_CASES = {
    # Residues at and around 2^32 - 1 (the fold's final subtraction) and the widest sums.
    64: [0, 1, (1 << 32) - 2, (1 << 32) - 1, 1 << 32, (1 << 64) - 1,
         (1 << 63) - 1 - LABEL_SEED_OFFSET, (1 << 32) - 1 - LABEL_SEED_OFFSET],
    16: [0xFFFF, 0],
    33: [(1 << 33) - 1],
    96: [(1 << 96) - 1, (1 << 64) + 5],
}


@pytest.mark.parametrize("seed_bits", sorted(LOAD_CASES))
@pytest.mark.parametrize("offset", [0, LABEL_SEED_OFFSET])
def test_load_seeds_like_golden(seed_bits: int, offset: int) -> None:
    # Each seed is loaded while the previous one's words are being taken; the seed input
    # changes right after the load cycle (only the load cycle's value may count).
    dut = WordGenerator(offset=offset, seed_bits=seed_bits)
    seeds = LOAD_CASES[seed_bits]
    got: list[list[int]] = []

    async def testbench(ctx) -> None:
        ctx.set(dut.words.ready, 1)
        for seed in seeds:
            ctx.set(dut.load, 1)
            ctx.set(dut.seed, seed)
            await ctx.tick()
            ctx.set(dut.load, 0)
            ctx.set(dut.seed, seed ^ 0x5A5A5A5A)
            words = []
            while len(words) < 3:
                if ctx.get(dut.words.valid):
                    words.append(ctx.get(dut.words.payload))
                await ctx.tick()
            got.append(words)

    simulate(dut, testbench)
    assert got == [golden_words(seed, offset, 3) for seed in seeds]


@pytest.mark.parametrize("seed_bits", [64, 0], ids=["seedable", "replay_only"])
def test_restore_replays_the_sequence(seed_bits: int) -> None:
    # Capture the offered word, take 5 words, restore it: the same words follow, and the
    # sequence goes on past them as golden's does (the replay of kappa for every tile).
    dut = WordGenerator(offset=0, reset_seed=11, seed_bits=seed_bits)
    taken: list[int] = []

    async def testbench(ctx) -> None:
        ctx.set(dut.words.ready, 1)
        saved = ctx.get(dut.words.payload)
        for _ in range(5):
            taken.append(ctx.get(dut.words.payload))
            await ctx.tick()
        ctx.set(dut.words.ready, 0)
        ctx.set(dut.restore, 1)
        ctx.set(dut.restore_word, saved)
        await ctx.tick()
        ctx.set(dut.restore, 0)
        ctx.set(dut.words.ready, 1)
        for _ in range(8):
            assert ctx.get(dut.words.valid)
            taken.append(ctx.get(dut.words.payload))
            await ctx.tick()

    simulate(dut, testbench)
    want = [int(w) for w in Lfsr(11).words(8)]
    assert taken == want[:5] + want


def test_parameters_are_validated() -> None:
    with pytest.raises(TypeError,
                       match=r"^Seed offset must be an integer in 0\.\.4294967295, not -1$"):
        WordGenerator(offset=-1)
    with pytest.raises(TypeError, match=r"^Seed width must be an integer of at least 0, "
                                        r"not -1$"):
        WordGenerator(offset=0, seed_bits=-1)
    with pytest.raises(TypeError, match=r"^Reset seed must be an integer in "
                                        r"0\.\.18446744073709551615, not -1$"):
        WordGenerator(offset=0, reset_seed=-1)


class _SharedNetwork(wiring.Component):
    """Two generators without a network of their own (``network=False``) and the one
    network they share: it steps the word of whichever takes a word (never both)."""

    def __init__(self, *, first_seed: int, second_seed: int) -> None:
        super().__init__({"take": In(2), "words": Out(64)})
        self.first = WordGenerator(offset=0, reset_seed=first_seed, seed_bits=0,
                                   network=False)
        self.second = WordGenerator(offset=LABEL_SEED_OFFSET, reset_seed=second_seed,
                                    seed_bits=0, network=False)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.first, m.submodules.second = first, second = self.first, self.second
        following = rtl.lfsr.next_word(Mux(self.take[0], first.words.payload,
                                           second.words.payload))
        m.d.comb += [first.words.ready.eq(self.take[0]), second.words.ready.eq(self.take[1]),
                     first.following.eq(following), second.following.eq(following),
                     self.words.eq(Cat(first.words.payload, second.words.payload))]
        return m


def test_generators_sharing_a_network_keep_their_own_sequences() -> None:
    # Two generators take words in turns of random length (one at a time, or neither):
    # each gives its golden sequence, the other's steps in between changing nothing.
    dut = _SharedNetwork(first_seed=11, second_seed=12)
    rng = np.random.default_rng(SEED)
    turns = rng.integers(0, 3, 600)
    got = ([], [])

    async def testbench(ctx) -> None:
        for turn in turns:
            take = int(turn)        # 0 neither, 1 the first, 2 the second
            ctx.set(dut.take, take)
            word = ctx.get(dut.words)
            if take:
                got[take - 1].append(word >> (32 * (take - 1)) & 0xFFFFFFFF)
            await ctx.tick()

    simulate(dut, testbench)
    assert got[0] == [int(w) for w in Lfsr(11).words(len(got[0]))]
    assert got[1] == [int(w) for w in Lfsr(12 + LABEL_SEED_OFFSET).words(len(got[1]))]
    assert min(map(len, got)) > 150


def test_a_generator_without_its_network_is_validated() -> None:
    with pytest.raises(TypeError, match=r"^Network must be a bool, not 0$"):
        WordGenerator(offset=0, seed_bits=0, network=0)
    with pytest.raises(ValueError, match=r"^A generator without its own network cannot be "
                                         r"seeded \(seed_bits=0\)"):
        WordGenerator(offset=0, network=False)
    assert "following" not in WordGenerator(offset=0, seed_bits=0).signature.members


# -- mutants: each must make one of the checks above fail ----------------------------------

def _columns_of(mask: int, steps: int) -> tuple[int, ...]:
    def step(s: int) -> int:
        return (s >> 1) ^ mask if s & 1 else s >> 1
    columns = []
    for b in range(LFSR_WIDTH):
        s = 1 << b
        for _ in range(steps):
            s = step(s)
        columns.append(s)
    return tuple(columns)


class _ReadyIgnored(wiring.Component):
    """A generator that advances every cycle whatever the consumer says."""

    def __init__(self) -> None:
        super().__init__({"words": Out(stream.Signature(32)), "load": In(1), "seed": In(64)})
        self.inner = WordGenerator(offset=0)
        self.load_latency = self.inner.load_latency

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.inner = inner = self.inner
        m.d.comb += [self.words.payload.eq(inner.words.payload),
                     self.words.valid.eq(inner.words.valid), inner.words.ready.eq(1),
                     inner.load.eq(self.load), inner.seed.eq(self.seed)]
        return m


def test_mutant_columns_of_the_golden_helper_are_right() -> None:
    # The mutant builder with the real tap and 32 steps is the real matrix, so the
    # mutants below differ from it only in what they name.
    assert _columns_of(0x80200003, 32) == word_columns()


@pytest.mark.parametrize(("mask", "steps"), [(0x80200005, 32), (0x80200003, 31)],
                         ids=["wrong_tap", "31_steps"])
def test_mutant_matrix_fails_the_first_words(monkeypatch, mask: int, steps: int) -> None:
    monkeypatch.setattr(rtl.lfsr, "word_columns", lambda: _columns_of(mask, steps))
    got = [w for _, w in collect(WordGenerator(offset=0), len(ROUNDING_FIRST))]
    assert got != ROUNDING_FIRST


def test_mutant_advancing_while_not_ready_fails_back_pressure() -> None:
    with pytest.raises(AssertionError, match="replaced held"):
        collect(_ReadyIgnored(), 50, ready_patterns()["every_third"])
