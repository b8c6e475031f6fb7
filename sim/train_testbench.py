# amaranth: UnusedElaboratable=no
"""cocotb bench of the exported training core, checked against the golden trainer.

Drives :class:`rtl.training_core.TrainingCore`'s Verilog through its ports: the pixels of
each labelled sample into ``samples`` (the label and ``train`` with the last; an SPRAM
core's starting words into ``load`` before the first sample), the ``done``
record taken when it appears, and at the check points every stored word read back through
``read``/``read_data`` while the record is offered. The golden side is
:class:`sim.train_check.TrainingChecker`, the same one the Amaranth simulation uses; the
run stops at the first mismatch. Python runs per cycle only while pixels or read-back
addresses move, and through the first sample, whose cycles per ``phase`` it counts: the
bench sleeps on ``done__valid`` through the thousands of cycles of the other samples'
updates, so Verilator sets the pace.

Everything comes from environment variables set by :mod:`ffcl_hw.flows.train_sim`:

- FFCL_MODEL: the starting integer model; FFCL_TRAIN: a JSON of the rule, lanes, the
  core's other parameters (``TrainingCore.options``), check interval and lambda
  (``lr_shift``, driven on ``lr_shift_in``)
- FFCL_IMAGES, FFCL_LABELS: .npy files of the training samples in the order to train
- FFCL_REPORT: where ``train_samples`` writes the :class:`sim.train_check.TrainingRun`
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import (
    ClockCycles,
    FallingEdge,
    ReadOnly,
    RisingEdge,
    SimTimeoutError,
    with_timeout,
)

from golden.intmodelio import load_int_model
from golden.inttrain import TrainRule
from rtl.core import load_layout
from rtl.training_core import TRAINING_PHASES, TrainingCore, done_layout, sample_layout
from sim.train_check import TrainingChecker, TrainMismatch, phase_name

#: The clock period in nanoseconds.
PERIOD_NS = 10


def _fields(layout) -> dict[str, tuple[int, int]]:
    """``name: (offset, width)`` of a struct layout's fields (the flat Verilog port)."""
    return {name: (part.offset, part.width) for name, part in layout}


class TB:
    """Clock, reset, the sample driver, the record and read-back port, the checker."""

    def __init__(self, dut) -> None:
        self.dut = dut
        with open(os.environ["FFCL_TRAIN"]) as stream:
            setup = json.load(stream)
        model = load_int_model(os.environ["FFCL_MODEL"]).model
        rule = TrainRule(**setup["rule"])
        # The core object is only a description here (no elaboration): widths, read
        # layout and the closed form of the counter.
        self.core = TrainingCore(model, rule, lanes=setup["lanes"], **setup["options"])
        self.images = np.load(os.environ["FFCL_IMAGES"])
        self.labels = np.load(os.environ["FFCL_LABELS"])
        self.checker = TrainingChecker(self.core, check_every=setup["check_every"],
                                       samples=len(self.images), lr_shift=setup["lr_shift"])
        config = model.config
        self.sample_fields = _fields(sample_layout(model.fmt.input_bits, config.num_classes))
        self.done_fields = _fields(done_layout(config.num_classes))
        self.load_fields = _fields(load_layout(self.core.core.program))

    async def start(self) -> None:
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
        dut.rst.value = 1
        dut.samples__valid.value = 0
        dut.done__ready.value = 0
        dut.read__target.value = 0
        dut.read__addr.value = 0
        if self.core.weights == "spram":
            dut.load__valid.value = 0
            # The bench trains from the starting words it loads: no restart (the
            # generators start at the seed from reset).
            dut.restart.value = 0
        # Driven throughout: an undriven input is X under Icarus.
        dut.lr_shift_in.value = self.checker.lr_shift
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        await FallingEdge(dut.clk)

    def _sample_word(self, pixel: int, label: int) -> int:
        word = int(pixel) << self.sample_fields["pixel"][0]
        word |= label << self.sample_fields["label"][0]
        return word | 1 << self.sample_fields["train"][0]

    def _done_field(self, word: int, name: str) -> int:
        offset, width = self.done_fields[name]
        return (word >> offset) & ((1 << width) - 1)

    async def load(self) -> None:
        """Offer the starting stored words on ``load`` (an SPRAM core: SPRAM comes up
        empty), one a cycle, each held until ``ready`` (read once the inputs settle)."""
        words = []
        for write in self.core.starting_loads():
            word = 0
            for name, value in zip(("target", "addr", "data"), write, strict=True):
                word |= value << self.load_fields[name][0]
            words.append(word)
        await self._offer("load", words)

    async def send(self, image: np.ndarray, label: int) -> None:
        """Offer the pixels on falling edges; each moves at the rising edge that sees
        ``ready`` (read once the inputs have settled)."""
        await self._offer("samples", [self._sample_word(pixel, label) for pixel in image])

    async def _offer(self, port: str, words: list[int]) -> None:
        """Offer ``words`` on the stream ``port`` one after another, from falling edges,
        each held until the rising edge that sees ``ready`` (read once the inputs have
        settled)."""
        valid, payload, ready = (getattr(self.dut, f"{port}__{name}")
                                 for name in ("valid", "payload", "ready"))
        valid.value = 1
        for word in words:
            payload.value = word
            while True:
                await ReadOnly()
                taken = bool(ready.value)
                await FallingEdge(self.dut.clk)
                if taken:
                    break
        valid.value = 0

    @property
    def timeout(self) -> int:
        """Cycles to wait for a record before calling the core hung."""
        return 4 * self.checker.expected_cycles + 1000

    async def record(self) -> tuple[int, int, int]:
        """Sleep until the ``done`` record appears; return its fields.

        Raises
        ------
        SimTimeoutError
            If none appears within :attr:`timeout` cycles.
        """
        dut = self.dut
        if not dut.done__valid.value:
            await with_timeout(RisingEdge(dut.done__valid), self.timeout * PERIOD_NS, "ns")
        await FallingEdge(dut.clk)
        word = int(dut.done__payload.value)
        return tuple(self._done_field(word, name) for name in ("label", "wrong", "cycles"))

    async def phases(self) -> dict[str, int]:
        """From the falling edge after a sample's last pixel, one a cycle until the
        ``done`` record appears: the cycles the ``phase`` output spent on each phase
        (:func:`sim.train_check.phase_name`). Python wakes every cycle here, so the bench
        counts the first sample's only.

        Raises
        ------
        SimTimeoutError
            If no record appears within :attr:`timeout` cycles.
        """
        dut = self.dut
        counted = dict.fromkeys(TRAINING_PHASES, 0)
        for _ in range(self.timeout):
            if dut.done__valid.value:
                return counted
            code = int(dut.phase.value)
            if code:
                name = phase_name(code)
                counted[name] = counted.get(name, 0) + 1
            await FallingEdge(dut.clk)
        raise SimTimeoutError(f"no done record within {self.timeout} cycles")

    async def read_back(self) -> dict[str, list[int]]:
        """Every stored word through ``read`` (one address a cycle, read_latency deep)."""
        dut = self.dut
        words = {}
        for name, target, count in self.checker.read_plan():
            dut.read__target.value = target
            got = []
            latency = self.core.read_latency
            for t in range(count + latency - 1):
                if t < count:
                    dut.read__addr.value = t
                await FallingEdge(dut.clk)
                if t >= latency - 1:
                    got.append(int(dut.read_data.value))
            words[name] = got
        return words

    async def take(self) -> None:
        """Take the record: the core goes back to waiting for pixels."""
        self.dut.done__ready.value = 1
        await FallingEdge(self.dut.clk)
        self.dut.done__ready.value = 0


@cocotb.test()
async def train_samples(dut) -> None:
    """Train on FFCL_IMAGES/FFCL_LABELS, checking as FFCL_TRAIN says; report to FFCL_REPORT."""
    tb = TB(dut)
    await tb.start()
    if tb.core.weights == "spram":
        await tb.load()
    checker = tb.checker
    count = len(tb.images)
    step = max(1, count // 20)
    for i, (image, label) in enumerate(zip(tb.images, tb.labels, strict=True)):
        await tb.send(image, int(label))
        try:
            phases = await tb.phases() if i == 0 else None
            mismatch = checker.record(i, image, int(label), *await tb.record())
            if mismatch is None and phases is not None:
                mismatch = checker.phases(i, phases)
        except SimTimeoutError:
            # A hung core is a mismatch of the counter: reported like one, exit 1.
            mismatch = checker.run.mismatch = TrainMismatch(
                i, "cycles", tb.timeout, checker.expected_cycles,
                "by the closed form (TrainingCore.training_cycles)",
                detail=f"no done record within {tb.timeout} cycles of the last pixel")
        if mismatch is None and checker.due(i):
            mismatch = checker.compare(i, await tb.read_back())
        if mismatch is not None:
            dut._log.error(str(mismatch))
            break
        await tb.take()
        if (i + 1) % step == 0 or i + 1 == count:
            dut._log.info("trained %d/%d samples", i + 1, count)
    run = checker.finish()
    with open(os.environ["FFCL_REPORT"], "w") as stream:
        json.dump(run.to_json(), stream)
    assert run.mismatch is None, str(run.mismatch)
