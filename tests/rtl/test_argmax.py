# amaranth: UnusedElaboratable=no
"""Argmax against golden.intformat.argmax, with ``done`` checked on every cycle."""

from __future__ import annotations

import numpy as np
import pytest

from golden.intformat import argmax
from rtl.argmax import Argmax
from tests.rtl.helpers import simulate, unsigned_max

SEED = 2718


def run_searches(dut: Argmax, searches: list[list[int]], gaps: list[int], seed: int) -> list[int]:
    """Run one search per score list; ``gaps[i]`` idle cycles come before search i.

    A gap of 0 starts the search in the very cycle the previous one reports ``done``
    (back to back). ``done`` is checked on every cycle: low everywhere except exactly
    ``cycles`` cycles after each ``start``, where ``label`` must equal the golden argmax.
    Returns the labels found.
    """
    assert len(gaps) == len(searches)
    labels: list[int] = []

    async def testbench(ctx) -> None:
        # Out of reset: no result.
        assert ctx.get(dut.done) == 0, f"seed {seed}: done out of reset"
        for index, (scores, gap) in enumerate(zip(searches, gaps, strict=True)):
            for _ in range(gap):
                await ctx.tick()
                assert ctx.get(dut.done) == 0, f"seed {seed}: done while idle before {index}"
            ctx.set(dut.scores, scores)
            ctx.set(dut.start, 1)
            for elapsed in range(1, dut.cycles + 1):
                await ctx.tick()
                # start is a one-cycle pulse; scores stay stable until done.
                ctx.set(dut.start, 0)
                done = ctx.get(dut.done)
                assert done == (elapsed == dut.cycles), (
                    f"seed {seed}: search {index} {scores}: done={done} {elapsed} cycles "
                    f"after start, expected only at {dut.cycles}")
            label = int(ctx.get(dut.label))
            expected = int(argmax(np.array(scores)))
            assert label == expected, (
                f"seed {seed}: search {index} {scores}: label {label}, golden {expected}")
            labels.append(label)
        # done is a one-cycle pulse.
        await ctx.tick()
        assert ctx.get(dut.done) == 0, f"seed {seed}: done held after the last search"

    simulate(dut, testbench)
    assert len(labels) == len(searches), f"seed {seed}: testbench ended early"
    return labels


@pytest.mark.parametrize("score_bits", [1, 3, 20])
@pytest.mark.parametrize("labels", [2, 3, 10, 16])
def test_random_scores(labels: int, score_bits: int) -> None:
    seed = SEED + 100 * labels + score_bits
    rng = np.random.default_rng(seed)
    searches = [[int(v) for v in rng.integers(0, unsigned_max(score_bits), size=labels,
                                              endpoint=True)] for _ in range(40)]
    # Half back to back, half after a random pause.
    gaps = [0 if rng.random() < 0.5 else int(rng.integers(1, 4)) for _ in searches]
    dut = Argmax(labels=labels, score_bits=score_bits)
    found = run_searches(dut, searches, gaps, seed)
    # With narrow scores ties are common; the set must contain results other than 0.
    assert any(found), f"seed {seed}"


def special_cases(labels: int, score_bits: int) -> dict[str, tuple[list[int], int]]:
    """Named score lists and the label each must give."""
    top = unsigned_max(score_bits)
    cases = {
        "all zero": ([0] * labels, 0),
        "all equal at the maximum": ([top] * labels, 0),
        "maximum at the last label": ([1] * (labels - 1) + [top], labels - 1),
        "maximum at the first label only": ([top] + [top - 1] * (labels - 1), 0),
        "rising": (list(range(labels)), labels - 1),
        "falling": (list(range(labels, 0, -1)), 0),
    }
    if labels >= 3:
        # Ties between later labels: the lowest of them wins, earlier labels are smaller.
        cases["tie between later labels"] = ([0] + [top] * (labels - 1), 1)
        cases["tie between the last two"] = ([1] * (labels - 2) + [top, top], labels - 2)
        cases["tie after a smaller peak"] = (
            [top - 1] + [0] * (labels - 3) + [top, top], labels - 2)
    return cases


@pytest.mark.parametrize("labels", [2, 3, 10])
def test_special_cases(labels: int) -> None:
    score_bits = 8
    cases = special_cases(labels, score_bits)
    searches = [scores for scores, _ in cases.values()]
    # The expected labels are stated by hand; golden must agree with them too.
    for name, (scores, label) in cases.items():
        assert int(argmax(np.array(scores))) == label, name
    dut = Argmax(labels=labels, score_bits=score_bits)
    found = run_searches(dut, searches, [0] * len(searches), seed=0)
    assert found == [label for _, label in cases.values()]


@pytest.mark.parametrize("labels", [2, 10])
def test_cycles_is_label_count(labels: int) -> None:
    # The documented cost of one search: one cycle per label.
    dut = Argmax(labels=labels, score_bits=4)
    assert dut.cycles == labels
    run_searches(dut, [[0] * labels], [5], seed=0)


def read_between_searches(dut: Argmax, searches: list[list[int]], seed: int) -> None:
    """Each search with ``read.addr`` random in every cycle (the search owns the select
    and must not see it), then every address (those beyond the last label too) read
    in a random order, one a cycle: ``read.data`` must be the score of the address of
    the cycle before, scores[0] beyond the last label."""
    rng = np.random.default_rng(seed)
    addresses = 1 << len(dut.read.addr)

    async def testbench(ctx) -> None:
        for index, scores in enumerate(searches):
            ctx.set(dut.scores, scores)
            ctx.set(dut.start, 1)
            for _ in range(dut.cycles):
                ctx.set(dut.read.addr, int(rng.integers(addresses)))
                await ctx.tick()
                ctx.set(dut.start, 0)
            assert ctx.get(dut.done), f"seed {seed}: search {index} not done"
            expected = int(argmax(np.array(scores)))
            assert ctx.get(dut.label) == expected, (
                f"seed {seed}: search {index} {scores}: label {ctx.get(dut.label)}, golden "
                f"{expected} (the read port's addresses reached the search)")
            # The reads start in the cycle done is high (the core's result.valid rises
            # later); the last address is read twice (a held address keeps its score).
            order = [int(a) for a in rng.permutation(addresses)]
            reads = [*order, order[-1]]
            ctx.set(dut.read.addr, reads[0])
            for i, previous in enumerate(reads):
                await ctx.tick()
                # The next address is given before the data is looked at: a read that
                # is not registered shows.
                ctx.set(dut.read.addr, reads[i + 1] if i + 1 < len(reads)
                        else (previous + 1) % addresses)
                want = scores[previous] if previous < dut.labels else scores[0]
                got = ctx.get(dut.read.data)
                assert got == want, (f"seed {seed}: search {index} {scores}: read "
                                     f"{previous} gave {got}, not {want}")

    simulate(dut, testbench)


@pytest.mark.parametrize("labels", [2, 3, 10, 16])
def test_the_read_port_reads_the_scores_between_searches(labels: int) -> None:
    seed = SEED + labels
    rng = np.random.default_rng(seed)
    searches = [[int(v) for v in rng.integers(0, unsigned_max(12), size=labels,
                                              endpoint=True)] for _ in range(6)]
    dut = Argmax(labels=labels, score_bits=12, read_port=True)
    read_between_searches(dut, searches, seed)
    # The search itself, under the harness without the port (back to back, pauses).
    run_searches(dut, searches, [0, 2, 0, 1, 0, 3], seed)


def test_the_read_port_is_asked_for_by_a_bool() -> None:
    with pytest.raises(TypeError, match=r"^Read port must be True or False, not 1$"):
        Argmax(labels=3, score_bits=4, read_port=1)
    assert not hasattr(Argmax(labels=3, score_bits=4), "read")
    assert len(Argmax(labels=10, score_bits=4, read_port=True).read.addr) == 4
