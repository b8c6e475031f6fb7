"""FeedbackBuffer against a dict of (bank, address) -> value, ``read_data`` checked each cycle."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import pytest

from rtl.feedback_buffer import FeedbackBuffer
from tests.rtl.helpers import simulate, unsigned_max

SEED = 4242


@dataclass(frozen=True)
class Step:
    """The inputs of one cycle."""

    read_bank: int = 0
    read_addr: int = 0
    write_en: int = 0
    write_bank: int = 0
    write_addr: int = 0
    write_data: int = 0


class BufferModel:
    """Two banks as a dict, one ``step`` per clock cycle.

    A read given at cycle c shows in ``read_data`` at c + ``latency``. It returns the entry
    as it was before the write of cycle c: a write to the entry being read in the same
    cycle is seen by the next read only (Amaranth's default, non-transparent read port).
    """

    def __init__(self, latency: int) -> None:
        self.entries: dict[tuple[int, int], int] = {}
        # Values read in the last latency - 1 cycles, oldest first.
        self.pipe: deque[int | None] = deque([None] * (latency - 1))

    def step(self, step: Step) -> int | None:
        """Advance one cycle; return ``read_data`` after the clock edge, or None while no
        read has had time to arrive (the value is then not checked)."""
        self.pipe.append(self.entries.get((step.read_bank, step.read_addr), 0))
        if step.write_en:
            self.entries[step.write_bank, step.write_addr] = step.write_data
        return self.pipe.popleft()


def run_buffer(dut: FeedbackBuffer, steps: list[Step], seed: int) -> list[int]:
    """Drive ``steps`` one per cycle; compare ``read_data`` with the model after each.

    Returns ``read_data`` as observed after every cycle.
    """
    model = BufferModel(dut.latency)
    observed: list[int] = []

    async def testbench(ctx) -> None:
        for cycle, step in enumerate(steps):
            for name in ("read_bank", "read_addr", "write_en", "write_bank", "write_addr",
                         "write_data"):
                ctx.set(getattr(dut, name), getattr(step, name))
            # A synchronous read: the address just given must not show before the edge.
            before = int(ctx.get(dut.read_data))
            expected = model.step(step)
            await ctx.tick()
            got = int(ctx.get(dut.read_data))
            if expected is not None:
                assert got == expected, (
                    f"seed {seed}, read_data after cycle {cycle} ({step}): got {got}, "
                    f"expected {expected}")
            if observed:
                assert before == observed[-1], (
                    f"seed {seed}, cycle {cycle}: read_data changed between clock edges")
            observed.append(got)

    simulate(dut, testbench)
    assert len(observed) == len(steps), f"seed {seed}: testbench ended early"
    return observed


def random_steps(rng: np.random.Generator, depth: int, width: int, cycles: int) -> list[Step]:
    """Random reads and writes over both banks, with writes in about half the cycles."""
    def addr() -> int:
        return int(rng.integers(0, depth))

    return [Step(read_bank=int(rng.integers(0, 2)), read_addr=addr(),
                 write_en=int(rng.random() < 0.5), write_bank=int(rng.integers(0, 2)),
                 write_addr=addr(),
                 write_data=int(rng.integers(0, unsigned_max(width), endpoint=True)))
            for _ in range(cycles)]


@pytest.mark.parametrize("width", [1, 8, 16])
@pytest.mark.parametrize("depth", [1, 3, 16, 100])
def test_random_traffic(depth: int, width: int) -> None:
    seed = SEED + 1000 * depth + width
    rng = np.random.default_rng(seed)
    dut = FeedbackBuffer(depth=depth, width=width)
    steps = random_steps(rng, depth, width, cycles=600)
    observed = run_buffer(dut, steps, seed)
    # Reads must have returned written data, not only the zeros of an empty memory.
    assert any(observed), f"seed {seed}"


@pytest.mark.parametrize("depth", [1, 5, 16])
def test_ping_pong_iterations(depth: int) -> None:
    # Iteration t writes bank t mod 2 while reading back, address by address, what
    # iteration t - 1 wrote into the other bank: the FFCL loop.
    dut = FeedbackBuffer(depth=depth, width=16)

    def value(iteration: int, address: int) -> int:
        return (iteration * 1000 + address * 7 + 1) & 0xFFFF

    steps = []
    for iteration in range(5):
        bank = iteration % 2
        steps += [Step(read_bank=1 - bank, read_addr=a, write_en=1, write_bank=bank,
                       write_addr=a, write_data=value(iteration, a)) for a in range(depth)]
    observed = run_buffer(dut, steps, seed=0)
    # Beyond the model: iteration t read exactly iteration t - 1's values, one cycle late.
    for iteration in range(1, 5):
        for a in range(depth):
            cycle = iteration * depth + a + dut.latency - 1
            assert observed[cycle] == value(iteration - 1, a), (iteration, a)


@pytest.mark.parametrize("depth", [1, 4, 7])
def test_banks_independent(depth: int) -> None:
    # The same address in both banks holds two values; filling one bank leaves the other.
    dut = FeedbackBuffer(depth=depth, width=8)
    steps = [Step(write_en=1, write_bank=b, write_addr=a, write_data=(0x10 * b + a + 1))
             for b in (0, 1) for a in range(depth)]
    steps += [Step(read_bank=b, read_addr=a) for b in (0, 1) for a in range(depth)]
    steps += [Step()] * dut.latency
    observed = run_buffer(dut, steps, seed=0)
    reads = observed[2 * depth + dut.latency - 1:][:2 * depth]
    assert reads == [0x10 * b + a + 1 for b in (0, 1) for a in range(depth)]


def test_read_during_write_returns_old_entry() -> None:
    # Reading the entry written in the same cycle returns the value before the write;
    # the next read sees the new value.
    dut = FeedbackBuffer(depth=4, width=8)
    steps = [Step(write_en=1, write_bank=1, write_addr=2, write_data=11),
             Step(read_bank=1, read_addr=2, write_en=1, write_bank=1, write_addr=2,
                  write_data=22),
             Step(read_bank=1, read_addr=2),
             Step(read_bank=0, read_addr=2)]
    assert run_buffer(dut, steps, seed=0) == [0, 11, 22, 0]
