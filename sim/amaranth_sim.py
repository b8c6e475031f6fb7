"""Running the core in Amaranth's own simulator, image by image.

This is the fast-to-start path (no Verilog, no compiler): the testbench streams each
image's pixels into the core, waits for the result record and collects it. Checking
against the golden model is the caller's business (:mod:`ffcl_hw.flows.simulate` and the
tests), so that one driver serves both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from rtl.core import Core

__all__ = ["CoreResult", "run_core"]


@dataclass(frozen=True)
class CoreResult:
    """One result record as the hardware reported it."""

    label: int
    scores: tuple[int, ...]
    cycles: int


def run_core(core: Core, images: np.ndarray, *, progress: Callable[[int], None] | None = None,
             vcd: str | None = None,
             load: list[tuple[int, int, int]] | None = None) -> list[CoreResult]:
    """Classify ``images`` (shape (n, D), integers 0..X) on ``core`` in simulation.

    Images are sent back to back without reset, as a host would; the result stream is
    always ready.

    Parameters
    ----------
    core : Core
        The elaborated core.
    images : ndarray
        Integer pixels.
    progress : callable, optional
        Called with the number of images done after each one.
    vcd : str, optional
        Write a waveform (VCD) of the whole run to this path.
    load : list of (target, address, word), optional
        Memory writes sent through the core's ``load`` port before the first image
        (:func:`rtl.core.load_words`); needs a core built with ``weights="loadable"``.
    """
    K = core.model.config.num_classes
    results: list[CoreResult] = []
    sim = Simulator(core)
    sim.add_clock(1e-8)

    async def testbench(ctx) -> None:
        ctx.set(core.result.ready, 1)
        for target, addr, word in load or []:
            ctx.set(core.load.payload, {"target": target, "addr": addr, "data": word})
            ctx.set(core.load.valid, 1)
            await ctx.tick().until(core.load.ready)
        if load:
            ctx.set(core.load.valid, 0)
        for image in images:
            for value in image:
                ctx.set(core.image.payload, int(value))
                ctx.set(core.image.valid, 1)
                await ctx.tick().until(core.image.ready)
            ctx.set(core.image.valid, 0)
            payload, = await ctx.tick().sample(core.result.payload).until(core.result.valid)
            results.append(CoreResult(label=int(payload.label),
                                      scores=tuple(int(payload.scores[k]) for k in range(K)),
                                      cycles=int(payload.cycles)))
            if progress is not None:
                progress(len(results))

    sim.add_testbench(testbench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return results
