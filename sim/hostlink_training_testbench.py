"""cocotb: the host library trains the host link's Verilog over a training core and reads
the model back, through the UART pins.

The design is ``HostLink(TrainingCore(model, rule, lanes=P), train_block=B)`` exported as
the top. As in :mod:`sim.hostlink_testbench`, a UART source and sink on ``rx``/``tx`` at the
link's bit time stand behind a pyserial-like port, and the unchanged, blocking ``Device``
runs in a :func:`cocotb.task.bridge` thread. One test, in order, because the device's
state is the point: every TRAIN record (the label of the training pass, wrong label drawn,
cycles) and every stored word read back (W, FFCL's V, b, U) must equal what
:class:`golden.inttrain.IntTrainer` reports and holds after the same samples; refused
frames (bad crc, another lambda, a label out of range, too many samples, a READ beyond a
memory) must change nothing, which the next sample's record and a second read-back show;
an image is classified with the trained weights.

Set by tests/sim/test_hostlink_cocotb.py through :mod:`sim.runner`:

- FFCL_HOST_LIBRARY: the host library's module (``ffcl_hw.device``), named by the runner so
  that sim/ does not import the floor above it.
- FFCL_TRAIN: JSON ``{"model": path, "rule": TrainRule fields, "lanes": P, "block": B,
  "divisor": ..., "timeout_bits": ..., "seed": ...}``.
"""

from __future__ import annotations

import importlib
import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles

from golden.intmodelio import load_int_model
from golden.inttrain import IntTrainer, TrainRule
from rtl.core import LOAD_TARGETS
from rtl.host_link import link_identity
from rtl.protocol import Command, ErrorCode, Reply
from rtl.training_core import TrainingCore
from sim.uart import SimulatedSerial, UartSink, UartSource

CLOCK_NS = 10

_host = importlib.import_module(os.environ["FFCL_HOST_LIBRARY"])
Device, FrameReader, encode_frame = _host.Device, _host.FrameReader, _host.encode_frame


def golden_records(trainer: IntTrainer, x, y, lam: int) -> list[tuple[int, int]]:
    """(label of the training pass, wrong label) per sample, as ``trainer`` reports them
    training on it."""
    return [((r := trainer.train_sample(xi, int(yi), lam)).label, r.wrong)
            for xi, yi in zip(x, y, strict=True)]


@cocotb.test()
async def train_read_back_and_refusals(dut) -> None:
    setup = json.loads(os.environ["FFCL_TRAIN"])
    model = load_int_model(setup["model"]).model
    rule = TrainRule(**setup["rule"])
    lanes, block, divisor = setup["lanes"], setup["block"], setup["divisor"]
    config = model.config
    D, K = config.input_size, config.num_classes
    core = TrainingCore(model, rule, lanes=lanes)
    rng = np.random.default_rng(setup["seed"])
    dut._log.info("seed %d", setup["seed"])

    dut.rx.value = 1
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    source = UartSource(dut.rx, dut.clk, divisor=divisor, period_ns=CLOCK_NS)
    sink = UartSink(dut.tx, dut.clk, divisor=divisor, period_ns=CLOCK_NS)
    # A read waits for a block of training samples and a reply of up to 64 bytes.
    port = SimulatedSerial(source, sink, timeout_cycles=block * core.training_cycles()
                           + 64 * 10 * divisor)
    device = Device(port)

    def exchange(frame: bytes) -> list[tuple[int, bytes]]:
        port.write(frame)
        reader, frames = FrameReader(), []
        while not frames and (byte := port.read(1)):
            frames += reader.frames(byte)
        return [(f.cmd, f.payload) for f in frames]

    def check_stored(trainer: IntTrainer, where: str) -> None:
        forward, stored = device.read_model(model)
        for layer, (got, want) in enumerate(zip(stored, trainer.stored, strict=True)):
            # FFCL's V comes back with W (the weight memory holds both).
            assert set(got) == set(want), f"{where}: layer {layer} holds {set(got)}"
            for name in want:
                assert np.array_equal(got[name], want[name]), f"{where}: layer {layer} {name}"

    def scenario() -> None:
        identity = device.identify()
        assert identity == link_identity(model, lanes=lanes, rule=rule, train_block=block), \
            identity
        lam = rule.lr_shift_at(0)
        x = rng.integers(0, model.fmt.input_max + 1, (3, D))
        y = rng.integers(0, K, 3)
        trainer = IntTrainer(model, rule)
        expected = golden_records(trainer, x, y, lam)
        records = device.train(x, y, lam)
        assert [(r.label, r.wrong) for r in records] == expected, (records, expected)
        assert [r.cycles for r in records] == [core.training_cycles()] * 3, records
        check_stored(trainer, "after 3 samples")
        assert device.identify().trained == 3
        image = x[0]
        label, scores, cycles = device.classify(image)
        golden = trainer.model.run(image[None])
        assert (label, scores) == (int(golden.labels[0]), [int(s) for s in golden.scores[0]])
        assert cycles == core.core.cycles_per_inference()

        def train_frame(lam_, xs, ys) -> bytes:
            return encode_frame(Command.TRAIN, bytes([lam_]) + b"".join(
                bytes([int(v)]) + bytes(int(p) for p in xi) for xi, v in zip(xs, ys, strict=True)))

        bias_depth = identity.depths[LOAD_TARGETS["bias"] - 1]
        for name, frame, code in (
                ("bad crc", train_frame(lam, x[:1], y[:1])[:-1]
                 + bytes([train_frame(lam, x[:1], y[:1])[-1] ^ 1]), ErrorCode.CRC),
                ("lambda", train_frame(lam + 1, x[:1], y[:1]), ErrorCode.LAMBDA),
                ("label", train_frame(lam, x[:2], [0, K]), ErrorCode.LABEL),
                ("too many", train_frame(lam, [x[0]] * (block + 1), [0] * (block + 1)),
                 ErrorCode.LENGTH),
                ("a pixel short", encode_frame(Command.TRAIN, bytes([lam, 0]) + bytes(D - 1)),
                 ErrorCode.LENGTH),
                ("read beyond", encode_frame(Command.READ, bytes([LOAD_TARGETS["bias"]])
                                             + (bias_depth - 1).to_bytes(2, "little")
                                             + (2).to_bytes(2, "little")), ErrorCode.ADDRESS),
                ("load", encode_frame(Command.LOAD_BEGIN, bytes(8)), ErrorCode.LOAD)):
            got = exchange(frame)
            assert got == [(Reply.ERROR, bytes([code]))], (name, got)
        # The last bias word, and nothing changed: the next sample and the model follow
        # the golden trainer still.
        assert device.read_words(LOAD_TARGETS["bias"], bias_depth - 1, 1) == \
            device.read_words(LOAD_TARGETS["bias"], 0, bias_depth)[-1:]
        expected = golden_records(trainer, x[1:2], y[1:2], lam)
        records = device.train(x[1:2], y[1:2], lam)
        assert [(r.label, r.wrong) for r in records] == expected, (records, expected)
        check_stored(trainer, "after the refused frames and one more sample")

    await bridge(scenario)()
