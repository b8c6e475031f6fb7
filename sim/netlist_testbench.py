"""cocotb: the host library against a board's synthesised netlist (gate-level simulation).

The design is the board top as ``ffcl-hw synth`` builds it (PLL, reset synchroniser, pin
buffers, ``HostLink(Core)``), synthesised by Yosys and simulated with the vendor cells'
models (:mod:`sim.netlist`), behind the harness's ``clk``/``rst``/``rx``/``tx``. A UART
source and sink at the link's bit time give the unchanged host library's ``Device`` a
serial port (:class:`sim.uart.SimulatedSerial`, through :func:`cocotb.task.bridge`).

One test, ``load_and_classify``: after reset, if the weights are loadable (SPRAM on the
iCEBreaker) the device must report no model, and ``Device.load_model`` loads it over the
link; then every image is classified and each RESULT checked against ``IntModel.run``
(label, every score) and the closed-form cycle count. The per-image results go to
FFCL_REPORT for the flow's own check.

Set by :mod:`ffcl_hw.flows.netlist` through :mod:`sim.runner`:

- FFCL_HOST_LIBRARY: the host library's module (``ffcl_hw.device``), named by the
  caller so that sim/ does not import the floor above it
- FFCL_MODEL, FFCL_CORE (lanes, label lanes, shared), FFCL_IMAGES, FFCL_SAMPLES,
  FFCL_REPORT
- FFCL_LINK: JSON ``{"divisor": ..., "load": ..., "empty": ...}``: the UART bit time in
  cycles, whether to load the model over the link, whether the design starts without one
"""

from __future__ import annotations

import importlib
import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles
from cocotb.utils import get_sim_time

from golden.intmodelio import load_int_model
from rtl.program import build_program
from sim.uart import SimulatedSerial, UartSink, UartSource

#: The bench's clock period (the PLL stub passes it through).
CLOCK_NS = 10
#: Cycles of reset: the PLL stub is unlocked while it lasts.
RESET_CYCLES = 4
#: Cycles after reset before the first byte: the reset synchroniser and the rx
#: synchronisers settle.
SETTLE_CYCLES = 8


def cycles_now() -> int:
    """Clock cycles of simulated time so far."""
    return round(get_sim_time("ns")) // CLOCK_NS


async def run_and_report(scenario, report: dict, path: str) -> None:
    """Run the blocking ``scenario`` (the host library's calls) beside the simulator,
    then write ``report`` to ``path`` with its wall ``seconds`` and ``sim_cycles``, even
    when the scenario fails, so the flow can say how far it got."""
    start = time.perf_counter()
    try:
        await bridge(scenario)()
    finally:
        report["seconds"] = time.perf_counter() - start
        report["sim_cycles"] = cycles_now()
        with open(path, "w") as stream:
            json.dump(report, stream)


@cocotb.test()
async def load_and_classify(dut) -> None:
    host = importlib.import_module(os.environ["FFCL_HOST_LIBRARY"])
    with open(os.environ["FFCL_CORE"]) as stream:
        core = json.load(stream)
    link = json.loads(os.environ["FFCL_LINK"])
    model = load_int_model(os.environ["FFCL_MODEL"]).model
    images = np.load(os.environ["FFCL_IMAGES"])[:int(os.environ["FFCL_SAMPLES"])]
    program = build_program(model, lanes=core["lanes"], label_lanes=core["label_lanes"],
                            shared=core["shared"])
    divisor = link["divisor"]

    dut.rx.value = 1
    dut.rst.value = 1
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    await ClockCycles(dut.clk, RESET_CYCLES)
    dut.rst.value = 0
    await ClockCycles(dut.clk, SETTLE_CYCLES)
    # Started after the reset, so that tx's first rise is not read as a byte.
    source = UartSource(dut.rx, dut.clk, divisor=divisor, period_ns=CLOCK_NS)
    sink = UartSink(dut.tx, dut.clk, divisor=divisor, period_ns=CLOCK_NS)
    port = SimulatedSerial(source, sink,
                           timeout_cycles=program.cycles() + 64 * 10 * divisor)
    golden = model.run(images)
    report = {"samples": len(images), "labels": [], "scores": [], "cycles": [],
              "load_cycles": None, "errors": 0, "first_error": None}

    def scenario() -> None:
        device = host.Device(port)
        identity = device.identify()
        if link["empty"]:
            # SPRAM comes up empty: the link must refuse images until a load commits.
            assert not identity.model_loaded, "the design reports a model before any load"
        if link["load"]:
            start = cycles_now()
            device.load_model(model)
            report["load_cycles"] = cycles_now() - start
            assert device.identify().model_loaded, "the load did not commit"
        step = max(1, len(images) // 10)
        for i, image in enumerate(images):
            label, scores, cycles = device.classify(image)
            report["labels"].append(label)
            report["scores"].append(list(scores))
            report["cycles"].append(cycles)
            want = (int(golden.labels[i]), [int(s) for s in golden.scores[i]])
            problem = None
            if (label, list(scores)) != want:
                problem = f"image {i}: netlist ({label}, {list(scores)}), golden {want}"
            elif cycles != program.cycles():
                problem = f"image {i}: {cycles} cycles, closed form {program.cycles()}"
            if problem:
                report["errors"] += 1
                report["first_error"] = report["first_error"] or problem
                dut._log.error(problem)
            if (i + 1) % step == 0 or i + 1 == len(images):
                dut._log.info("sent %d/%d images, %d errors", i + 1, len(images),
                              report["errors"])

    await run_and_report(scenario, report, os.environ["FFCL_REPORT"])
    assert report["errors"] == 0, report["first_error"]
