"""cocotb: the host library trains a training link through the UART pins and reads the
model back, checked bit for bit against the golden trainer.

Two designs share this bench, both behind ``clk``/``rst``/``rx``/``tx``: the host link's
Verilog, ``HostLink(TrainingCore(model, rule, lanes=P), train_block=B)`` exported as the
top (tests/sim/test_hostlink_cocotb.py), and the gate-level netlist of a training
bitstream, the board top with PLL, reset synchroniser and pin buffers around the same
link, synthesised for ECP5 or the iCEBreaker and simulated with the vendor cells' models
(:func:`ffcl_hw.flows.netlist.simulate_training_netlist`). As in
:mod:`sim.hostlink_testbench`, a UART source and sink on ``rx``/``tx`` at the link's bit
time stand behind a pyserial-like port, and the unchanged, blocking ``Device`` runs in a
:func:`cocotb.task.bridge` thread. The reset is the netlist bench's
(:mod:`sim.netlist_testbench`): long enough for the board top's reset synchroniser.

Three tests, each in order, because the device's state is the point:

``train_read_back_and_refusals`` (the RTL)
    Every TRAIN record (the label of the training pass, wrong label drawn, cycles) and
    every stored word read back (W, FFCL's V, b, U) must equal what
    :class:`golden.inttrain.IntTrainer` reports and holds after the same samples; refused
    frames (bad crc, another lambda, a label out of range, too many samples, a READ
    beyond a memory) must change nothing, which the next sample's record and a second
    read-back show; an image is classified with the trained weights.
``load_then_train`` (the RTL of a link over ``TrainingCore(..., weights="spram")``)
    The weights come up empty: TRAIN, IMAGE and READ are refused with error 8 before any
    load, inside an open one and after one void for its checksum (error 7); then
    ``Device.load_model`` loads the starting model's stored words, IDENT's checksum is
    :func:`rtl.host_link.link_identity`'s, and the records, every stored word read back
    and an image classified follow the golden trainer; the model loaded again, the same
    samples train as on a fresh trainer (the commit restarts the generators).
``train_and_read_back`` (the netlist: each byte costs thousands of gate-level events)
    An SPRAM core (the iCEBreaker's) first reports no model and is loaded with the
    starting stored words (``Device.load_model``); then the given samples trained in
    TRAIN frames of up to B, every record checked, every stored word read back once at
    the end and compared, an image classified with the trained weights; the outcome goes
    to FFCL_REPORT.

Set through :mod:`sim.runner`:

- FFCL_HOST_LIBRARY: the host library's module (``ffcl_hw.device``), named by the runner so
  that sim/ does not import the floor above it.
- FFCL_TRAIN: JSON ``{"model": path, "rule": TrainRule fields, "lanes": P, "block": B,
  "divisor": ..., "timeout_bits": ..., "seed": ...}``, ``"weights": "spram"`` for
  ``load_then_train`` and ``"options"`` (TrainingCore keyword parameters, as
  :attr:`rtl.training_core.TrainingCore.options` gives them); for ``train_and_read_back`` also
  ``"images"``, ``"labels"`` (.npy paths), ``"lr_shift"`` and ``"report"`` (a JSON path:
  ``records``, ``error`` (the first disagreement, or null), ``trained``, ``read_back``,
  ``entries_differing`` (stored entries unlike the trainer's, null before the read-back),
  ``load_writes`` and ``load_cycles`` (null without a load), ``sim_cycles``, ``seconds``).
"""

from __future__ import annotations

import dataclasses
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
from rtl.core import LOAD_TARGETS, load_words
from rtl.host_link import link_identity, link_program, load_checksum, load_payload
from rtl.protocol import Command, ErrorCode, Reply
from rtl.training_core import TrainingCore
from sim.netlist_testbench import (
    CLOCK_NS,
    RESET_CYCLES,
    SETTLE_CYCLES,
    cycles_now,
    run_and_report,
)
from sim.train_check import first_stored_difference
from sim.uart import SimulatedSerial, UartSink, UartSource

_host = importlib.import_module(os.environ["FFCL_HOST_LIBRARY"])
Device, FrameReader, encode_frame = _host.Device, _host.FrameReader, _host.encode_frame


def golden_records(trainer: IntTrainer, x, y, lam: int) -> list[tuple[int, int]]:
    """(label of the training pass, wrong label) per sample, as ``trainer`` reports them
    training on it."""
    return [((r := trainer.train_sample(xi, int(yi), lam)).label, r.wrong)
            for xi, yi in zip(x, y, strict=True)]


async def _link(dut, setup: dict, core: TrainingCore) -> SimulatedSerial:
    """Reset the design and return a serial port on its UART pins."""
    divisor, block = setup["divisor"], setup["block"]
    dut.rx.value = 1
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    # A netlist's PLL stub stays unlocked while rst is high; the board top's reset
    # synchroniser and the rx synchronisers then settle before the first start bit.
    dut.rst.value = 1
    await ClockCycles(dut.clk, RESET_CYCLES)
    dut.rst.value = 0
    await ClockCycles(dut.clk, SETTLE_CYCLES)
    # Started after the reset, so that tx's first rise is not read as a byte.
    source = UartSource(dut.rx, dut.clk, divisor=divisor, period_ns=CLOCK_NS)
    sink = UartSink(dut.tx, dut.clk, divisor=divisor, period_ns=CLOCK_NS)
    # A read waits for a block of training samples and a reply of up to 64 bytes.
    return SimulatedSerial(source, sink, timeout_cycles=block * core.training_cycles()
                           + 64 * 10 * divisor)


def _setup() -> tuple[dict, object, TrainRule, TrainingCore]:
    setup = json.loads(os.environ["FFCL_TRAIN"])
    model = load_int_model(setup["model"]).model
    rule = TrainRule(**setup["rule"])
    # ``options`` may be a core's own (TrainingCore.options, weights included).
    options = {"weights": setup.get("weights", "loadable"), **setup.get("options", {})}
    return setup, model, rule, TrainingCore(model, rule, lanes=setup["lanes"], **options)


def _check_identity(device, model, rule: TrainRule, setup: dict, *, loaded: bool = True):
    """IDENT as :func:`rtl.host_link.link_identity` says; an SPRAM core is loadable and,
    until a load commits, holds no model."""
    identity = device.identify()
    options = setup.get("options", {})
    spram = options.get("weights", setup.get("weights")) == "spram"
    want = dataclasses.replace(
        link_identity(model, lanes=setup["lanes"], label_lanes=options.get("label_lanes"),
                      shared=options.get("forward_multipliers") == "shared", rule=rule,
                      train_block=setup["block"], loadable=spram), model_loaded=loaded)
    assert identity == want, (identity, want)
    return identity


def _exchange(port, frame: bytes) -> list[tuple[int, bytes]]:
    """Send ``frame`` as it is (the host library would refuse to send a bad one) and
    return the reply frames as (cmd, payload)."""
    port.write(frame)
    reader, frames = FrameReader(), []
    while not frames and (byte := port.read(1)):
        frames += reader.frames(byte)
    return [(f.cmd, f.payload) for f in frames]


def _check_stored(device, model, trainer: IntTrainer, where: str) -> None:
    """Every stored word read back equals the trainer's."""
    _, stored = device.read_model(model)
    # FFCL's V comes back with W (the weight memory holds both).
    difference = first_stored_difference(stored, trainer.stored, where="in the design")
    assert difference is None, f"{where}: {difference}"


def _train_frame(lam: int, xs, ys) -> bytes:
    return encode_frame(Command.TRAIN, bytes([lam]) + b"".join(
        bytes([int(v)]) + bytes(int(p) for p in xi) for xi, v in zip(xs, ys, strict=True)))


def _check_classify(device, trainer: IntTrainer, image, core: TrainingCore) -> None:
    """One image classified with the trained weights, as the trainer's model does."""
    label, scores, cycles = device.classify(image)
    golden = trainer.model.run(image[None])
    want = (int(golden.labels[0]), [int(s) for s in golden.scores[0]])
    assert (label, scores) == want, \
        f"classified ({label}, {scores}) with the trained weights, golden {want}"
    assert cycles == core.core.cycles_per_inference(), \
        f"classified in {cycles} cycles, closed form {core.core.cycles_per_inference()}"


async def _start(dut):
    """The bench's setup, its random generator (seed logged), the link to ``dut`` and the
    host library's device on it."""
    setup, model, rule, core = _setup()
    rng = np.random.default_rng(setup["seed"])
    dut._log.info("seed %d", setup["seed"])
    port = await _link(dut, setup, core)
    return setup, model, rule, core, rng, port, Device(port)


@cocotb.test()
async def train_read_back_and_refusals(dut) -> None:
    setup, model, rule, core, rng, port, device = await _start(dut)
    block = setup["block"]
    D, K = model.config.input_size, model.config.num_classes

    def exchange(frame: bytes) -> list[tuple[int, bytes]]:
        return _exchange(port, frame)

    def check_stored(trainer: IntTrainer, where: str) -> None:
        _check_stored(device, model, trainer, where)

    def scenario() -> None:
        identity = _check_identity(device, model, rule, setup)
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
        _check_classify(device, trainer, x[0], core)

        train_frame = _train_frame

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


@cocotb.test()
async def load_then_train(dut) -> None:
    """An SPRAM training core (``weights="spram"``, ``HostLink(initialised=False)``): its
    weights come up empty. Nothing trains, classifies or reads before a load of the
    stored words commits (error 8: before any load, inside an open one, after one void
    for its checksum); ``Device.load_model`` then loads the starting model's stored
    words, and the records and every stored word follow the golden trainer; loaded
    again, the board trains the same samples as a fresh golden trainer (the commit
    restarts the generators)."""
    setup, model, rule, core, rng, port, device = await _start(dut)
    D, K = model.config.input_size, model.config.num_classes
    lam = rule.lr_shift_at(0)
    x = rng.integers(0, model.fmt.input_max + 1, (3, D))
    y = rng.integers(0, K, 3)
    no_model = [(Reply.ERROR, bytes([ErrorCode.NO_MODEL]))]

    def refused_without_a_model(where: str) -> None:
        for name, frame in (
                ("TRAIN", _train_frame(lam, x[:1], y[:1])),
                ("IMAGE", encode_frame(Command.IMAGE, bytes(int(p) for p in x[0]))),
                ("READ", encode_frame(Command.READ, bytes([LOAD_TARGETS["weights"], 0, 0,
                                                          1, 0])))):
            got = _exchange(port, frame)
            assert got == no_model, (where, name, got)

    def scenario() -> None:
        identity = _check_identity(device, model, rule, setup, loaded=False)
        writes = load_words(link_program(model, lanes=identity.lanes,
                                         label_lanes=identity.label_lanes,
                                         shared=identity.shared,
                                         store_bits=identity.stored_bits))
        refused_without_a_model("before any load")
        # A transaction open after its first write, then void for its checksum.
        n = identity.load_data_bytes
        begin = (identity.model_hash.to_bytes(4, "little")
                 + load_checksum(writes, n).to_bytes(4, "little"))
        assert _exchange(port, encode_frame(Command.LOAD_BEGIN, begin)) == \
            [(Reply.LOAD_BEGIN, b"")]
        assert _exchange(port, encode_frame(Command.LOAD, load_payload(*writes[0], n))) == \
            [(Reply.LOAD, b"")]
        refused_without_a_model("inside an open load")
        assert _exchange(port, encode_frame(Command.LOAD_COMMIT)) == \
            [(Reply.ERROR, bytes([ErrorCode.CHECKSUM]))]
        refused_without_a_model("after a void load")
        assert device.load_model(model) == len(writes)
        identity = _check_identity(device, model, rule, setup)
        trainer = IntTrainer(model, rule)
        expected = golden_records(trainer, x, y, lam)
        records = device.train(x, y, lam)
        assert [(r.label, r.wrong) for r in records] == expected, (records, expected)
        assert [r.cycles for r in records] == [core.training_cycles()] * 3, records
        _check_stored(device, model, trainer, "after the load and 3 samples")
        assert device.identify().trained == 3
        _check_classify(device, trainer, x[0], core)
        # Loaded again, the board trains from the seed: the commit restarts both
        # generators, so the same samples give a fresh trainer's records and words, not
        # those of generators gone on from the first run. ``trained`` counts on.
        assert device.load_model(model) == len(writes)
        trainer = IntTrainer(model, rule)
        expected = golden_records(trainer, x[:2], y[:2], lam)
        records = device.train(x[:2], y[:2], lam)
        assert [(r.label, r.wrong) for r in records] == expected, \
            ("after the second load", records, expected)
        _check_stored(device, model, trainer, "after the second load and 2 samples")
        assert device.identify().trained == 5

    await bridge(scenario)()


@cocotb.test()
async def train_and_read_back(dut) -> None:
    setup, model, rule, core = _setup()
    images = np.load(setup["images"])
    labels = np.load(setup["labels"])
    lam = setup["lr_shift"]
    port = await _link(dut, setup, core)
    device = Device(port)
    trainer = IntTrainer(model, rule)
    report = {"records": [], "error": None, "trained": 0, "read_back": False,
              "entries_differing": None, "load_writes": None, "load_cycles": None}

    def fail(problem: str) -> None:
        raise AssertionError(problem)

    def scenario() -> None:
        try:
            steps()
        except Exception as error:
            # The flow names the first problem; the log holds the traceback.
            report["error"] = f"{type(error).__name__}: {error}"
            raise

    def steps() -> None:
        if core.weights == "spram":
            # SPRAM comes up empty: the starting stored words go in over the link first,
            # as ``ffcl-hw run --train`` loads a board.
            _check_identity(device, model, rule, setup, loaded=False)
            start = cycles_now()
            report["load_writes"] = device.load_model(model)
            report["load_cycles"] = cycles_now() - start
            dut._log.info("loaded %d words in %d cycles", report["load_writes"],
                          report["load_cycles"])
        _check_identity(device, model, rule, setup)
        step = max(1, len(images) // 10)
        for first in range(0, len(images), setup["block"]):
            x, y = images[first:first + setup["block"]], labels[first:first + setup["block"]]
            records = device.train(x, y, lam)
            for n, (record, xi, yi) in enumerate(zip(records, x, y, strict=True)):
                report["records"].append(list(record))
                report["trained"] += 1
                result = trainer.train_sample(xi, int(yi), lam)
                want = (result.label, result.wrong, core.training_cycles())
                if tuple(record) != want:
                    fail(f"sample {first + n}: record (label, wrong, cycles) {tuple(record)} "
                         f"in the design, {want} from the golden trainer and the closed form")
            if report["trained"] % step < len(x) or report["trained"] == len(images):
                dut._log.info("trained %d/%d samples", report["trained"], len(images))
        _, stored = device.read_model(model)
        report["read_back"] = True
        report["entries_differing"] = sum(
            int(np.sum(got[name] != want[name])) if np.shape(got.get(name)) == np.shape(want[name])
            else int(np.size(want[name]))
            for got, want in zip(stored, trainer.stored, strict=True) for name in want)
        difference = first_stored_difference(stored, trainer.stored, where="in the design")
        if difference is not None:
            fail(f"after {len(images)} samples: {difference}")
        _check_classify(device, trainer, images[0], core)

    await run_and_report(scenario, report, setup["report"])
