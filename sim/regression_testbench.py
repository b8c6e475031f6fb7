"""cocotb bench of the random regression (:mod:`sim.regression`): one configuration, many
inferences, seeded random idle and back-pressure, and a model loaded at run time.

It reuses :class:`sim.testbench.TB` (source, monitors, sink, the golden model fed from
the monitored pixels, the in-order checker, the phase monitor and the closed-form cycle
count) and adds what a random configuration may need before its images:

- FFCL_LOAD (optional): a JSON list of packed ``load`` payloads
  (:func:`rtl.core.load_words` as the port's layout lays them out). They are driven
  through the core's ``load`` port with the same random idle pattern as the images, after
  reset and before the first image; FFCL_MODEL then names the *loaded* model, the one
  the answers must come from.
- FFCL_BANK (optional): the value of a two-bank core's ``bank`` input after the load
  (loads write the bank that ``bank`` does not select, so 1 makes the loaded model the
  one inferences read).
- FFCL_PAUSES: JSON ``{"idle": p, "backpressure": q}``, the probabilities of an idle
  source cycle and a refused result (:class:`sim.streams.RandomPause`, seeded from
  FFCL_SEED).

Per-sample results go to FFCL_REPORT as in :func:`sim.testbench.run_samples` (both end with
:func:`sim.testbench.run_and_report`).
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.triggers import with_timeout

from sim.streams import RandomPause, StreamSource
from sim.testbench import PERIOD_NS, TB, _images, _seed, run_and_report

__all__ = ["random_configuration"]


async def _load(tb: TB, words: list[int], pause: RandomPause) -> None:
    """Drive the load writes through ``load`` and wait until the core took the last."""
    dut = tb.dut
    source = StreamSource(dut, "load", dut.clk, reset=dut.rst, pause=pause)
    source.send_nowait(words)
    # Each write takes a cycle when offered; the pattern pauses some of them.
    await with_timeout(source.wait(), (len(words) * 20 + 100) * PERIOD_NS, "ns")
    assert source.sent == len(words), f"the core took {source.sent} of {len(words)} loads"


@cocotb.test()
async def random_configuration(dut) -> None:
    """Load (if asked), then the images of FFCL_IMAGES back to back under random idle and
    back-pressure; every result checked against the golden model and the closed form."""
    seed = _seed()
    pauses = json.loads(os.environ["FFCL_PAUSES"])
    dut._log.info("regression bench with seed %d (FFCL_SEED), pauses %s", seed, pauses)
    images = _images()
    start = time.perf_counter()
    tb = TB(dut)
    if hasattr(dut, "bank"):
        dut.bank.value = 0
    await tb.start()
    idle = RandomPause(pauses["idle"], seed=seed)
    tb.source.set_pause(idle)
    tb.sink.set_pause(RandomPause(pauses["backpressure"], seed=seed + 1))
    if "FFCL_LOAD" in os.environ:
        with open(os.environ["FFCL_LOAD"]) as stream:
            await _load(tb, json.load(stream), RandomPause(pauses["idle"], seed=seed + 2))
    if "FFCL_BANK" in os.environ:
        dut.bank.value = int(os.environ["FFCL_BANK"])
    await run_and_report(tb, images, start=start)
