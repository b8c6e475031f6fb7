"""cocotb bench of the exported core, checked against the golden integer model.

The structure follows cocotb's matrix_multiplier example and Forencich's benches: a
``TB`` with clock, reset, an image :class:`~sim.streams.StreamSource`, a
:class:`~sim.streams.StreamMonitor` on the same port and a result
:class:`~sim.streams.StreamSink`; a model fed from the *monitored* image transfers (not
from what the test meant to send); an in-order checker whose error count must end at zero;
the stream rules checked on both ports; every scenario crossed with no-idle, idle and
back-pressure patterns (:data:`sim.streams.PAUSES`). A phase monitor counts, per inference, the
cycles the core's ``phase`` output spends on each phase; the checker compares them with
the closed form (:meth:`rtl.program.Program.phase_cycles`). Everything comes from
environment variables set by :mod:`sim.runner`:

- FFCL_MODEL: the integer model file; FFCL_CORE: the core's JSON (lanes, result fields)
- FFCL_IMAGES: a .npy of integer images; FFCL_SAMPLES: how many to use
- FFCL_SEED: seed of the random scenarios (logged); FFCL_REPORT: where ``run_samples``
  (through :func:`run_and_report`) writes its per-sample results (label, scores, cycles,
  cycles per phase)
"""

from __future__ import annotations

import json
import os
import time
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, ReadOnly, with_timeout
from cocotb.utils import get_sim_time

from golden.intmodelio import load_int_model
from rtl.program import PHASES, build_program
from sim.streams import PAUSES, StreamMonitor, StreamSink, StreamSource

#: The clock period in nanoseconds.
PERIOD_NS = 10


class TB:
    """Clock, reset, image source and monitor, result sink, phase monitor, model, checker."""

    def __init__(self, dut) -> None:
        self.dut = dut
        self.log = dut._log
        with open(os.environ["FFCL_CORE"]) as stream:
            self.core = json.load(stream)
        self.model = load_int_model(os.environ["FFCL_MODEL"]).model
        # The expected cycle count comes from the closed form for the lane counts the
        # design was built with, not from a number the export wrote down.
        program = build_program(self.model, lanes=self.core["lanes"],
                                label_lanes=self.core["label_lanes"],
                                shared=self.core["shared"])
        self.expected_cycles = program.cycles()
        self.expected_phases = program.phase_cycles()
        # Cycles per phase of every inference the phase output showed, in order.
        self.phase_records: list[dict[str, int]] = []
        self.phases_checked = False
        self.D = self.model.config.input_size
        self.K = self.model.config.num_classes
        self.fields = self.core["result_fields"]
        self.score_bits = self.fields["scores"]["width"] // self.K
        self.expected: deque[tuple[int, tuple[int, ...], int]] = deque()
        self.pixels: list[int] = []
        self.results: list[tuple[int, tuple[int, ...], int]] = []
        self.errors = 0
        self.first_error: str | None = None
        self.checked = 0
        self.target = 0
        self.done = Event()
        self.source: StreamSource | None = None

    # -- set-up ------------------------------------------------------------------------
    async def start(self, *, idle: str = "none", sink: str = "none") -> None:
        """Start the clock, the source, sink and monitors, and reset the design.

        ``idle`` and ``sink`` name the source's idle and the sink's back-pressure
        patterns (:data:`sim.streams.PAUSES`).
        """
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
        dut.rst.value = 1
        self.source = StreamSource(dut, "image", dut.clk, reset=dut.rst, pause=PAUSES[idle])
        # The model sees only pixels that really crossed the interface.
        self.image_monitor = StreamMonitor(dut, "image", dut.clk, reset=dut.rst,
                                           callback=self._on_pixel)
        self.sink = StreamSink(dut, "result", dut.clk, reset=dut.rst, pause=PAUSES[sink],
                               callback=self._on_result)
        await self.reset()
        cocotb.start_soon(self._monitor_phases())

    async def reset(self, cycles: int = 3) -> None:
        """Hold reset; whatever was in flight is forgotten by the source and model too."""
        self.dut.rst.value = 1
        self.source.clear()
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        self.pixels.clear()
        self.expected.clear()

    # -- stimulus ----------------------------------------------------------------------
    async def send(self, image: np.ndarray) -> None:
        """Drive one image's pixels (by the source's idle pattern) until all are taken."""
        await self.source.send(int(value) for value in image)

    # -- monitors ----------------------------------------------------------------------
    def _on_pixel(self, pixel: int) -> None:
        self.pixels.append(pixel)
        if len(self.pixels) == self.D:
            golden = self.model.run(np.array([self.pixels], dtype=np.int64))
            self.expected.append((int(golden.labels[0]),
                                  tuple(int(v) for v in golden.scores[0]),
                                  self.expected_cycles))
            self.pixels = []

    async def _monitor_phases(self) -> None:
        # The phase changes a few times per layer, not every cycle: the monitor wakes on
        # each change and charges the time since the last one to the phase that held.
        # Changes happen at clock edges, so the times are whole periods. An inference
        # ends when the phase returns to 0 (the result is offered); one cut short by a
        # reset is dropped.
        names = {code: name for name, code in PHASES.items()}
        counts = dict.fromkeys(PHASES, 0)
        current, since = 0, round(get_sim_time("ns"))
        while True:
            await self.dut.phase.value_change
            await ReadOnly()
            now = round(get_sim_time("ns"))
            if current:
                elapsed, rest = divmod(now - since, PERIOD_NS)
                if rest:
                    self._error(f"the phase changed {rest} ns off a clock edge")
                name = names.get(current, f"unknown phase {current}")
                counts[name] = counts.get(name, 0) + elapsed
            current, since = int(self.dut.phase.value), now
            if not current:
                if any(counts.values()) and not self.dut.rst.value:
                    self.phase_records.append(counts)
                counts = dict.fromkeys(PHASES, 0)

    def _field(self, word: int, name: str) -> int:
        field = self.fields[name]
        return (word >> field["offset"]) & ((1 << field["width"]) - 1)

    def _on_result(self, word: int) -> None:
        scores_word = self._field(word, "scores")
        bits = self.score_bits
        result = (self._field(word, "label"),
                  tuple((scores_word >> (k * bits)) & ((1 << bits) - 1) for k in range(self.K)),
                  self._field(word, "cycles"))
        self.results.append(result)
        self._check(result)

    # -- checker -----------------------------------------------------------------------
    def _check(self, result: tuple[int, tuple[int, ...], int]) -> None:
        index = self.checked
        self.checked += 1
        if self.checked >= self.target:
            self.done.set()
        if not self.expected:
            self._error(f"sample {index}: a result arrived that no image asked for")
            return
        label, scores, cycles = self.expected.popleft()
        if result[0] != label:
            self._error(f"sample {index}: label is {result[0]} in the hardware, {label} "
                        "in the golden model")
        elif result[1] != scores:
            k = next(k for k in range(self.K) if result[1][k] != scores[k])
            self._error(f"sample {index}: score[{k}] is {result[1][k]} in the hardware, "
                        f"{scores[k]} in the golden model")
        elif result[2] != cycles:
            self._error(f"sample {index}: cycles is {result[2]} in the hardware, {cycles} "
                        "by the closed-form count")

    def _error(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message
        self.log.error(message)

    async def wait_results(self, count: int) -> None:
        """Wait until ``count`` results have been checked (with a generous timeout)."""
        self.target = count
        if self.checked < count:
            self.done.clear()
            cycles = (count + 2) * (self.expected_cycles + 20 * self.D) * 4 + 1000
            await with_timeout(self.done.wait(), cycles * 10, "ns")

    def check_phases(self) -> None:
        """Every inference's cycles per phase must match the closed form (checked once)."""
        if self.phases_checked:
            return
        self.phases_checked = True
        if len(self.phase_records) != len(self.results):
            self._error(f"the phase output showed {len(self.phase_records)} inferences for "
                        f"{len(self.results)} results")
        for index, counts in enumerate(self.phase_records):
            if counts != self.expected_phases:
                name = next(n for n in self.expected_phases | counts
                            if counts.get(n) != self.expected_phases.get(n))
                self._error(f"sample {index}: phase_cycles[{name}] is {counts.get(name)} in "
                            f"the hardware, {self.expected_phases.get(name)} by the "
                            "closed-form count")

    async def finish(self) -> None:
        """The checker must end with no error, nothing expected and nothing pending, and
        both streams must have kept the stream rules."""
        await ClockCycles(self.dut.clk, 20)
        self.check_phases()
        assert self.errors == 0, self.first_error
        violations = self.image_monitor.violations + self.sink.violations
        assert not violations, violations[0]
        # The source's own count of transfers against the monitor's: a source that took a
        # pixel as sent without ready would count more.
        assert self.source.sent == self.image_monitor.received, \
            f"the source sent {self.source.sent} pixels, {self.image_monitor.received} crossed"
        assert not self.expected, f"{len(self.expected)} results never arrived"
        await ReadOnly()
        assert not self.dut.result__valid.value, "an unexpected result is pending"


def _images() -> np.ndarray:
    images = np.load(os.environ["FFCL_IMAGES"])
    count = int(os.environ.get("FFCL_SAMPLES", len(images)))
    return images[:count]


def _seed() -> int:
    return int(os.environ.get("FFCL_SEED", "0"))


async def _run(dut, images: np.ndarray, idle: str, sink: str) -> TB:
    tb = TB(dut)
    await tb.start(idle=idle, sink=sink)
    # Back to back, no reset between images.
    for image in images:
        await tb.send(image)
    await tb.wait_results(len(images))
    await tb.finish()
    return tb


async def run_and_report(tb: TB, images: np.ndarray, *, start: float) -> None:
    """Send ``images`` back to back, logging progress ("sent N/M images", which
    :mod:`sim.runner` follows); wait for every result; write the per-sample results to
    FFCL_REPORT; end with :meth:`TB.finish`'s checks.

    ``start`` is the ``time.perf_counter()`` the report's ``seconds`` count from.
    """
    step = max(1, len(images) // 10)
    for i, image in enumerate(images):
        await tb.send(image)
        if (i + 1) % step == 0 or i + 1 == len(images):
            tb.log.info("sent %d/%d images, %d checked, %d errors", i + 1, len(images),
                        tb.checked, tb.errors)
    await tb.wait_results(len(images))
    seconds = time.perf_counter() - start
    # The last inference's phase record is written at the edge its result appeared.
    await ClockCycles(tb.dut.clk, 2)
    tb.check_phases()
    report = {"samples": len(images), "errors": tb.errors, "first_error": tb.first_error,
              "labels": [r[0] for r in tb.results], "cycles": [r[2] for r in tb.results],
              "scores": [list(r[1]) for r in tb.results],
              "phase_cycles": tb.phase_records, "seconds": seconds}
    with open(os.environ["FFCL_REPORT"], "w") as stream:
        json.dump(report, stream)
    await tb.finish()


@cocotb.test()
async def run_samples(dut) -> None:
    """The images of FFCL_IMAGES, no idle cycles; per-sample results to FFCL_REPORT."""
    images = _images()
    start = time.perf_counter()
    tb = TB(dut)
    await tb.start()
    await run_and_report(tb, images, start=start)


@cocotb.test()
@cocotb.parametrize(idle=["none", "idle"], sink=["none", "backpressure"])
async def real_images(dut, idle: str, sink: str) -> None:
    """Data-set images, back to back, under each idle and back-pressure pattern."""
    await _run(dut, _images(), idle, sink)


@cocotb.test()
@cocotb.parametrize(idle=["none", "idle"], sink=["none", "backpressure"])
async def random_images(dut, idle: str, sink: str) -> None:
    """Seeded random images (the seed is logged; FFCL_SEED sets it)."""
    seed = _seed()
    dut._log.info("random images with seed %d (FFCL_SEED)", seed)
    tb_model = load_int_model(os.environ["FFCL_MODEL"]).model
    rng = np.random.default_rng(seed)
    count = min(4, len(_images())) or 4
    images = rng.integers(0, tb_model.fmt.input_max + 1,
                          size=(count, tb_model.config.input_size))
    # Corner images ride along: all zero and all maximum.
    images = np.vstack([images, np.zeros_like(images[:1]),
                        np.full_like(images[:1], tb_model.fmt.input_max)])
    await _run(dut, images, idle, sink)


@cocotb.test()
async def reset_mid_inference(dut) -> None:
    """Reset halfway through an inference; the inferences after it are all correct."""
    images = _images()
    tb = TB(dut)
    await tb.start()
    await tb.send(images[0])
    await ClockCycles(dut.clk, tb.expected_cycles // 2)
    assert tb.checked == 0, "the first inference finished before the reset"
    await tb.reset()
    again = images[: min(3, len(images))]
    for image in again:
        await tb.send(image)
    await tb.wait_results(len(again))
    await tb.finish()
