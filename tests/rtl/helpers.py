"""Shared simulation plumbing of the gateware tests (Amaranth 0.5 testbench API only)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from amaranth.sim import Simulator

from sim.amaranth_sim import classify as sim_classify

__all__ = ["PERIOD", "get_array", "one_by_default", "run_pipeline", "signed_range", "simulate",
           "unsigned_max"]

#: The clock period given to every simulation (100 MHz; only cycle counts matter here).
PERIOD = 1e-8


def simulate(dut: Any, testbench: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
    """Run ``testbench`` (an ``async def tb(ctx)``) against ``dut`` on one sync clock.

    The testbench runs to completion; any assertion it raises propagates out of here.
    """
    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    sim.add_testbench(testbench)
    sim.run()


def one_by_default(params: list, *keep: str) -> list:
    """``params`` (case names, or tuples that start with one) with every case but those
    in ``keep`` opt-in (``pytest -m slow``), to keep the default run under 15 minutes.

    For the tests of one small-part option (or one arrangement of the update engine) on
    top of the options before it: the builds' own cores run every case by default
    (test_training_spram's iCEBreaker core test, test_training_core's main cases), and
    such a test keeps the case where its option differs most.
    """
    return [p if (p[0] if isinstance(p, tuple) else p) in keep
            else pytest.param(*(p if isinstance(p, tuple) else (p,)),
                              marks=pytest.mark.slow)
            for p in params]


def get_array(ctx: Any, view: Any, length: int) -> list[int]:
    """The elements of an ``ArrayLayout`` signal as Python ints (data.Const is not iterable)."""
    value = ctx.get(view)
    return [int(value[i]) for i in range(length)]


def signed_range(bits: int) -> tuple[int, int]:
    """Most negative and most positive value of a ``bits``-bit two's complement number."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def unsigned_max(bits: int) -> int:
    """Largest value of a ``bits``-bit unsigned number."""
    return (1 << bits) - 1


def run_pipeline(dut: Any, inputs: list[dict[str, int]], outputs: tuple[str, ...],
                 latency: int) -> list[dict[str, int]]:
    """Give ``inputs[c]`` at cycle c, back to back, and read ``outputs`` at c + ``latency``.

    Returns one dict of output values per input, in order: what the component produced
    for that input, taken exactly ``latency`` cycles after it (not earlier, not later).
    Inputs keep their last value after the stream ends.
    """
    if latency < 1:
        raise ValueError(f"latency must be at least 1, not {latency}")
    observed: list[dict[str, int]] = []

    async def testbench(ctx: Any) -> None:
        # The output of input c is read after the clock edge that ends cycle
        # c + latency - 1, i.e. in the loop pass t = c + latency - 1.
        for t in range(len(inputs) + latency - 1):
            if t < len(inputs):
                for name, value in inputs[t].items():
                    ctx.set(getattr(dut, name), value)
            await ctx.tick()
            if t + 1 >= latency:
                observed.append({name: int(ctx.get(getattr(dut, name))) for name in outputs})

    simulate(dut, testbench)
    assert len(observed) == len(inputs)
    return observed


async def classify(ctx: Any, core: Any, image) -> tuple[int, tuple[int, ...], int]:
    """One image into an :class:`rtl.core.Core`, its result record (label, scores,
    cycles) out (:func:`sim.amaranth_sim.classify`, as a tuple)."""
    result = await sim_classify(ctx, core, image)
    return result.label, result.scores, result.cycles
