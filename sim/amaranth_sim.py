"""Running the core in Amaranth's own simulator, image by image.

This is the fast-to-start path (no Verilog, no compiler): the testbench streams each
image's pixels into the core, waits for the result record and collects it. Checking
against the golden model is the caller's business (:mod:`ffcl_hw.flows.simulate` and the
tests), so that one driver serves both. A second process counts, for every inference, the
cycles the core's ``phase`` output spends on each phase.

:func:`run_training` drives the training core the same way, sample by sample, and hands
each record and read-back to a :class:`sim.train_check.TrainingChecker` (the one the cocotb
bench :mod:`sim.train_testbench` uses too); :func:`count_training_phases` counts a training
sample's cycles per phase of the training core's ``phase`` output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from rtl.core import Core
from rtl.program import PHASES
from rtl.training_core import TRAINING_PHASES, TrainingCore
from sim.train_check import TrainingChecker, TrainingRun, phase_name

__all__ = ["CoreResult", "classify", "count_training_phases", "run_core", "run_training"]


@dataclass(frozen=True)
class CoreResult:
    """One result record as the hardware reported it, and the cycles of its inference
    per phase (:data:`rtl.program.PHASES`) as the ``phase`` output showed them."""

    label: int
    scores: tuple[int, ...]
    cycles: int
    phase_cycles: dict[str, int] | None = None


@contextlib.contextmanager
def _interrupts_deferred(interrupted: list[int]) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into a note in ``interrupted`` while the block runs.

    An exception raised wherever the signal lands would leave the simulator's coroutines
    suspended mid-step; closing them later fails ("Exception ignored ... RuntimeError:
    aclose(): asynchronous generator is already running"). The testbench instead checks
    the note between images and ends, and the caller raises ``KeyboardInterrupt``. A
    second signal, from a user who will not wait for the image in flight, stops at once.
    """
    if threading.current_thread() is not threading.main_thread():
        # Signal handlers can only be set in the main thread; elsewhere nothing changes.
        yield
        return

    def note(signum: int, frame: object) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(signum)

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, note)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _wide_integers() -> Iterator[None]:
    """Lift Python's limit on converting integers to decimal text while the block runs.

    Amaranth's simulator compiles every signal's mask into Python source as a decimal
    literal; a core of many lanes has signals of thousands of bits (the lanes' shift-out
    bank), whose masks pass the default 4300 digits.
    """
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(limit)


def _run(sim: Simulator, vcd, interrupted: list[int]) -> None:
    """Run ``sim`` to its end (writing ``vcd`` if given) with SIGINT/SIGTERM deferred;
    KeyboardInterrupt afterwards if one came (the testbenches stop at the next sample)."""
    with _interrupts_deferred(interrupted), _wide_integers():
        if vcd:
            with sim.write_vcd(vcd):
                sim.run()
        else:
            sim.run()
    if interrupted:
        raise KeyboardInterrupt


async def classify(ctx, core: Core, image) -> CoreResult:
    """In an Amaranth testbench: one image into ``core``'s ``image`` stream, each pixel
    held until taken, and the result record it answers with (``result.ready`` is the
    caller's)."""
    for value in image:
        ctx.set(core.image.payload, int(value))
        ctx.set(core.image.valid, 1)
        await ctx.tick().until(core.image.ready)
    ctx.set(core.image.valid, 0)
    payload, = await ctx.tick().sample(core.result.payload).until(core.result.valid)
    return CoreResult(label=int(payload.label),
                      scores=tuple(int(payload.scores[k])
                                   for k in range(core.model.config.num_classes)),
                      cycles=int(payload.cycles))


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

    Raises
    ------
    KeyboardInterrupt
        After Ctrl-C (or SIGTERM): the simulation ends after the image in flight.
    """
    results: list[CoreResult] = []
    # Phase counts of finished inferences, in order; an inference finishes when the phase
    # returns to 0 (the result is offered), in the same cycle its record appears.
    names = {code: name for name, code in PHASES.items()}
    finished: list[dict[str, int]] = []
    with _wide_integers():
        # The simulator compiles the design here, and signals again as they are added.
        sim = Simulator(core)
    sim.add_clock(1e-8)

    async def count_phases(ctx) -> None:
        counts = dict.fromkeys(PHASES, 0)
        async for _, _, phase in ctx.tick().sample(core.phase):
            if phase:
                counts[names[phase]] += 1
            elif any(counts.values()):
                finished.append(counts)
                counts = dict.fromkeys(PHASES, 0)

    interrupted: list[int] = []

    async def testbench(ctx) -> None:
        ctx.set(core.result.ready, 1)
        for target, addr, word in load or []:
            ctx.set(core.load.payload, {"target": target, "addr": addr, "data": word})
            ctx.set(core.load.valid, 1)
            await ctx.tick().until(core.load.ready)
        if load:
            ctx.set(core.load.valid, 0)
        for image in images:
            if interrupted:
                # Ctrl-C: end here, between images, so that the simulator unwinds with
                # no coroutine suspended inside it (see _interrupts_deferred).
                return
            results.append(await classify(ctx, core, image))
            if progress is not None:
                progress(len(results))
        # One more cycle, so the phase process has seen the last result's too.
        await ctx.tick()

    sim.add_testbench(testbench)
    sim.add_process(count_phases)
    _run(sim, vcd, interrupted)
    if len(finished) != len(results):
        raise RuntimeError(f"the phase output showed {len(finished)} inferences for "
                           f"{len(results)} results")
    return [dataclasses.replace(result, phase_cycles=phases)
            for result, phases in zip(results, finished, strict=True)]


async def count_training_phases(ctx, core: TrainingCore) -> dict[str, int]:
    """Tick until ``core`` offers its ``done`` record (from the cycle after a sample's
    last pixel): the cycles its ``phase`` output spent on each phase of
    :data:`rtl.training_core.TRAINING_PHASES` meanwhile (:func:`phase_name` names a
    code it does not have)."""
    phases = dict.fromkeys(TRAINING_PHASES, 0)
    async for _, _, code, valid in ctx.tick().sample(core.phase, core.done.valid):
        if valid:
            return phases
        if code:
            name = phase_name(code)
            phases[name] = phases.get(name, 0) + 1
    raise AssertionError("a simulation's ticks do not end")


def run_training(core: TrainingCore, checker: TrainingChecker, images: np.ndarray,
                 labels: np.ndarray, *, progress: Callable[[int], None] | None = None,
                 vcd: str | None = None) -> TrainingRun:
    """Train ``core`` on ``images`` (shape (n, D)) with ``labels`` in simulation; an
    SPRAM core is first given its starting words through ``load``.

    Each sample's record goes to ``checker`` (which trains the golden trainer on it), and
    at its check points every stored word is read back through ``read`` while the record
    is offered. The run stops at the first mismatch (``checker.run.mismatch``).

    Raises
    ------
    KeyboardInterrupt
        After Ctrl-C (or SIGTERM): the simulation ends after the sample in flight.
    """
    with _wide_integers():
        sim = Simulator(core)
    sim.add_clock(1e-8)
    interrupted: list[int] = []

    async def read_back(ctx) -> dict[str, list[int]]:
        words = {}
        for name, target, count in checker.read_plan():
            ctx.set(core.read.target, target)
            got = []
            latency = core.read_latency
            for t in range(count + latency - 1):
                if t < count:
                    ctx.set(core.read.addr, t)
                await ctx.tick()
                if t >= latency - 1:
                    got.append(int(ctx.get(core.read_data)))
            words[name] = got
        return words

    async def testbench(ctx) -> None:
        # lambda for every sample (sampled with each last pixel).
        ctx.set(core.lr_shift_in, checker.lr_shift)
        if core.weights == "spram":
            # SPRAM comes up empty: the starting words go in through the load port.
            for target, addr, word in core.starting_loads():
                ctx.set(core.load.payload, {"target": target, "addr": addr, "data": word})
                ctx.set(core.load.valid, 1)
                await ctx.tick().until(core.load.ready)
            ctx.set(core.load.valid, 0)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            if interrupted:
                return
            for pixel in image:
                ctx.set(core.samples.payload, {"pixel": int(pixel), "label": int(label),
                                               "train": 1})
                ctx.set(core.samples.valid, 1)
                await ctx.tick().until(core.samples.ready)
            ctx.set(core.samples.valid, 0)
            # The first sample's phases, cycle by cycle; the others' records only.
            phases = None
            if i == 0:
                phases = await count_training_phases(ctx, core)
                record = ctx.get(core.done.payload)    # offered until it is taken
            else:
                record, = await ctx.tick().sample(core.done.payload).until(core.done.valid)
            mismatch = checker.record(i, image, int(label), int(record.label),
                                      int(record.wrong), int(record.cycles))
            if mismatch is None and phases is not None:
                mismatch = checker.phases(i, phases)
            if mismatch is None and checker.due(i):
                mismatch = checker.compare(i, await read_back(ctx))
            if mismatch is not None:
                return
            ctx.set(core.done.ready, 1)
            await ctx.tick()
            ctx.set(core.done.ready, 0)
            if progress is not None:
                progress(i + 1)

    sim.add_testbench(testbench)
    _run(sim, vcd, interrupted)
    return checker.finish()
