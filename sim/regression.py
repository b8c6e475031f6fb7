"""The random regression: many random core configurations under Verilator, every
inference bit for bit against the golden integer model.

A regression is named by its seed. Configuration ``i`` of seed ``S`` is drawn from
``numpy.random.default_rng([S, i])`` alone (:func:`draw_case`), so any one of them is
replayed without the others, and a longer run extends a shorter one. Each :class:`Case`
is a random network (:func:`golden.random_model.random_config`: FFL, FFDL, FFCL of either
topology and readout, T = 1..3, widths from 1 up, so rarely multiples of the lane count;
random formats, one in four with every weight at full magnitude), a random core for it
(lanes, label lanes, shared or dedicated multipliers, weights in ROM, loadable block RAM
in one or two banks, or SPRAM) and random images that start with the corners (all zero,
all maximum). A loadable or SPRAM core is built with one model and, before its images,
loaded with another through its ``load`` port (always for SPRAM, which starts empty, and
for two banks, whose ``bank`` input then selects the loaded copy; half the time
otherwise), so the answers must come from the loaded model. FFCL's ``"goodness"``
feedback is never drawn: the core refuses it (:func:`rtl.program.build_program`).

:func:`run_case` exports the core, builds it once with Verilator
(:func:`sim.runner.build_core`) and runs :mod:`sim.regression_testbench`, which checks
every result in the simulation (label, scores, cycle count against the closed form,
cycles per phase) under seeded random idle and back-pressure; the results it reports are
compared with :meth:`golden.intmodel.IntModel.run` here a second time.
:func:`run_regression` runs a seed's first N cases and sums them up (the JSON that
``ffcl-hw regress`` writes).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from golden.intmodel import IntModel
from golden.intmodelio import save_int_model
from golden.random_model import (
    extreme,
    random_config,
    random_images,
    random_int_model,
    reweighted,
)
from rtl.core import Core, load_layout
from rtl.program import build_program
from rtl.weight_store import SPRAM_WIDTH

__all__ = ["Case", "CaseResult", "Summary", "draw_case", "replay_command", "run_case",
           "run_regression"]

#: The core's FFCL feedback modes (the golden model has "goodness" too).
CORE_FEEDBACKS = ("state",)
#: Largest lane count drawn: past the widest layer (24) it only adds idle lanes.
MAX_LANES = 12
#: An SPRAM weight word is at most four SPRAMs side by side.
SPRAM_WORD_BITS = 4 * SPRAM_WIDTH
#: Probabilities of an idle source cycle and of a refused result.
IDLE_PROBABILITIES = (0.0, 0.2, 0.5)
BACKPRESSURE_PROBABILITIES = (0.0, 0.3, 0.7)


@dataclass
class Case:
    """One random configuration of the regression and its images.

    Attributes
    ----------
    seed, index : int
        The regression's seed and the case's index: ``draw_case(seed, index, n)``
        draws it again.
    model : IntModel
        The model the core is built with (memory initial contents, widths).
    expected : IntModel
        The model the answers must come from: ``model``, or the one loaded at run time.
    lanes, label_lanes, shared, weights, banks
        The core's parameters (:class:`rtl.core.Core`).
    load : bool
        Whether ``expected`` is written through ``load`` before the images.
    images : ndarray, shape (n, D)
    pauses : dict
        ``{"idle": p, "backpressure": q}`` for the bench's random pause patterns.
    """

    seed: int
    index: int
    model: IntModel
    expected: IntModel
    lanes: int
    label_lanes: int | None
    shared: bool
    weights: str
    banks: int
    load: bool
    images: np.ndarray
    pauses: dict[str, float]

    def core(self) -> Core:
        """The core of this case, built with :attr:`model`."""
        return Core(self.model, lanes=self.lanes, label_lanes=self.label_lanes,
                    shared=self.shared, weights=self.weights, banks=self.banks)

    def load_payloads(self, core: Core) -> list[int]:
        """The ``load`` port payloads (packed as the port lays them out) that write
        :attr:`expected` into ``core``."""
        layout = load_layout(core.program)
        return [int(layout.const({"target": target, "addr": addr, "data": word})
                    .as_value().value)
                for target, addr, word in core.load_words_for(self.expected)]

    def describe(self) -> dict[str, Any]:
        """What the case is, as JSON: network, formats, core, load, images, pauses."""
        config, fmt = self.model.config, self.model.fmt
        return {
            "index": self.index,
            "algo": config.algo, "input_size": config.input_size,
            "num_classes": config.num_classes, "hidden": list(config.hidden),
            "loops": config.loops, "topology": config.topology,
            "feedback": config.feedback, "readout": config.readout,
            "scoring": config.scoring,
            "input_max": fmt.input_max, "weight_bits": fmt.weight_bits,
            "state_bits": fmt.state_bits,
            "lanes": self.lanes, "label_lanes": self.label_lanes or config.num_classes,
            "multipliers": "shared" if self.shared else "dedicated",
            "weights": self.weights, "banks": self.banks, "load": self.load,
            "widths_not_multiple_of_lanes": any(w % self.lanes for w in config.hidden),
            "images": len(self.images), "pauses": self.pauses,
        }


def draw_case(seed: int, index: int, inferences: int) -> Case:
    """Case ``index`` of the regression ``seed``, with ``inferences`` images.

    Raises
    ------
    ValueError
        If ``seed`` or ``index`` is negative or ``inferences`` is not positive.
    """
    for name, value, low in (("Seed", seed, 0), ("Case index", index, 0),
                             ("Inference count", inferences, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer of at least {low}, not {value!r}")
    rng = np.random.default_rng([seed, index])
    config = random_config(rng, feedbacks=CORE_FEEDBACKS)
    model = random_int_model(config, rng)
    K = config.num_classes
    weights = str(rng.choice(["rom", "loadable", "spram"]))
    banks = int(rng.integers(1, 3)) if weights == "loadable" else 1
    shared = bool(rng.random() < 0.4)
    # SPRAM holds at most 64-bit weight words: P weights side by side.
    most = min(MAX_LANES, SPRAM_WORD_BITS // model.fmt.weight_bits) \
        if weights == "spram" else MAX_LANES
    lanes = int(rng.integers(3 if shared else 1, most + 1))
    label_lanes = None if rng.random() < 0.3 else \
        int(rng.integers(1, min(K, lanes if shared else K) + 1))
    if shared:
        # Values wider than the lanes' multipliers take: the core refuses sharing them.
        try:
            build_program(model, lanes=lanes, label_lanes=label_lanes, shared=True)
        except ValueError:
            shared = False
    load = weights == "spram" or banks == 2 or (weights == "loadable" and rng.random() < 0.5)
    expected = model
    if load:
        # One loaded model in four at full magnitude, like the built ones.
        expected = (extreme(model, "mixed", rng) if rng.random() < 0.25
                    else reweighted(model, int(rng.integers(1 << 31))))
    images = random_images(expected, inferences, rng)
    pauses = {"idle": float(rng.choice(IDLE_PROBABILITIES)),
              "backpressure": float(rng.choice(BACKPRESSURE_PROBABILITIES))}
    return Case(seed=seed, index=index, model=model, expected=expected, lanes=lanes,
                label_lanes=label_lanes, shared=shared, weights=weights, banks=banks,
                load=load, images=images, pauses=pauses)


def replay_command(seed: int, index: int, inferences: int) -> str:
    """The command that runs case ``index`` of ``seed`` alone."""
    return f"ffcl-hw regress --seed {seed} --only {index} --inferences {inferences}"


@dataclass
class CaseResult:
    """What one case's simulation showed.

    Attributes
    ----------
    case : dict
        :meth:`Case.describe`.
    inferences : int
        Results the hardware returned.
    mismatches : int
        Inferences whose label, scores or cycle count differ from the golden model and
        the closed form (or that never came back).
    passed : bool
        No mismatch, and every check of the bench held (stream rules, phases, nothing
        pending).
    first_error : str or None
    cycles_per_inference : int
    build_seconds, sim_seconds : float
    log : str
        The bench's log (kept when the case failed).
    """

    case: dict[str, Any]
    inferences: int
    mismatches: int
    passed: bool
    first_error: str | None
    cycles_per_inference: int
    build_seconds: float
    sim_seconds: float
    log: str


def _compare(case: Case, report: dict[str, Any], cycles: int) -> tuple[int, str | None]:
    """Mismatched inferences between the bench's report and the golden model, and the
    first one described."""
    golden = case.expected.run(case.images)
    labels, scores = report.get("labels", []), report.get("scores", [])
    got = report.get("cycles", [])
    mismatches, first = 0, None
    for i in range(len(case.images)):
        if i >= len(labels):
            problem = "no result"
        elif labels[i] != int(golden.labels[i]):
            problem = f"label is {labels[i]} in the hardware, {int(golden.labels[i])} golden"
        elif scores[i] != [int(v) for v in golden.scores[i]]:
            problem = f"scores are {scores[i]} in the hardware, {golden.scores[i].tolist()} golden"
        elif got[i] != cycles:
            problem = f"cycles is {got[i]} in the hardware, {cycles} by the closed form"
        else:
            continue
        mismatches += 1
        first = first or f"inference {i}: {problem}"
    return mismatches, first


@contextlib.contextmanager
def _build_jobs(jobs: int) -> Iterator[None]:
    """Let cocotb's runner give ``make`` at most ``jobs`` jobs while the block runs (it
    takes every core otherwise; the regression shares its machine)."""
    import cocotb_tools.runner as runner

    saved = runner.MAX_PARALLEL_BUILD_JOBS
    runner.MAX_PARALLEL_BUILD_JOBS = jobs
    try:
        yield
    finally:
        runner.MAX_PARALLEL_BUILD_JOBS = saved


def run_case(case: Case, root: Path, *, simulator: str = "verilator", build_jobs: int = 1,
             keep: bool = False) -> CaseResult:
    """Build ``case``'s core under ``root`` and run its images through the regression
    bench; the build folder is removed afterwards unless the case failed or ``keep``.
    Verilator builds share their run-time library objects, as every build does
    (:class:`sim.runner.SharedRuntime`).

    Raises
    ------
    ToolMissing
        If the simulator is not installed.
    """
    from sim.runner import build_core, run_testbench

    core = case.core()
    start = time.perf_counter()
    with _build_jobs(build_jobs):
        built = build_core(core, simulator, root)
    build_seconds = time.perf_counter() - start
    name = f"regress-{case.seed}-{case.index}"
    work = built.build_dir / name
    work.mkdir(exist_ok=True)
    expected_file = work / "expected.int.npz"
    save_int_model(expected_file, case.expected)
    env = {"FFCL_MODEL": str(expected_file), "FFCL_PAUSES": json.dumps(case.pauses)}
    if case.load:
        (work / "load.json").write_text(json.dumps(case.load_payloads(core)))
        env["FFCL_LOAD"] = str(work / "load.json")
    if case.banks == 2:
        # Loads wrote bank 1 while bank 0 was read: switch to it.
        env["FFCL_BANK"] = "1"
    bench = run_testbench(built, case.images, seed=case.seed * 1000 + case.index, name=name,
                          module="sim.regression_testbench", env=env)
    cycles = core.cycles_per_inference()
    mismatches, first = _compare(case, bench.report, cycles)
    passed = bench.tests == 1 and bench.failed == 0 and mismatches == 0
    if not passed and first is None:
        first = bench.report.get("first_error") or f"the bench failed; see {bench.log}"
    result = CaseResult(case=case.describe(), inferences=len(bench.report.get("labels", [])),
                        mismatches=mismatches, passed=passed, first_error=first,
                        cycles_per_inference=cycles, build_seconds=build_seconds,
                        sim_seconds=bench.seconds, log=str(bench.log))
    if passed and not keep:
        shutil.rmtree(built.build_dir, ignore_errors=True)
    return result


@dataclass
class Summary:
    """The totals of a regression (what :meth:`to_json` writes)."""

    seed: int
    inferences_per_case: int
    results: list[CaseResult] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def inferences(self) -> int:
        return sum(r.inferences for r in self.results)

    @property
    def mismatches(self) -> int:
        return sum(r.mismatches for r in self.results)

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    def coverage(self) -> dict[str, dict[str, int]]:
        """How many cases had each value of the drawn parameters."""
        keys = ("algo", "loops", "topology", "readout", "multipliers", "weights", "banks",
                "load", "lanes", "widths_not_multiple_of_lanes")
        out = {}
        for key in keys:
            counts = Counter(str(r.case[key]) for r in self.results
                             if key not in ("topology", "readout") or r.case["algo"] == "ffcl")
            out[key] = dict(sorted(counts.items()))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "configs": len(self.results),
            "inferences_per_config": self.inferences_per_case,
            "inferences": self.inferences,
            "mismatches": self.mismatches,
            "failed_configs": [{"index": r.case["index"], "first_error": r.first_error,
                                "log": r.log,
                                "replay": replay_command(self.seed, r.case["index"],
                                                         self.inferences_per_case)}
                               for r in self.failed],
            "wall_seconds": round(self.wall_seconds, 1),
            "build_seconds": round(sum(r.build_seconds for r in self.results), 1),
            "sim_seconds": round(sum(r.sim_seconds for r in self.results), 1),
            "coverage": self.coverage(),
            "cases": [{**r.case, "passed": r.passed, "mismatches": r.mismatches,
                       "cycles_per_inference": r.cycles_per_inference,
                       "build_seconds": round(r.build_seconds, 1),
                       "sim_seconds": round(r.sim_seconds, 1)} for r in self.results],
        }


def run_regression(seed: int, configs: int, inferences: int, root: Path, *,
                   only: int | None = None, out: Path | None = None,
                   simulator: str = "verilator", build_jobs: int = 1, keep: bool = False,
                   progress: Callable[[CaseResult], None] | None = None) -> Summary:
    """Run cases 0..``configs``-1 of ``seed`` (or case ``only`` alone), ``inferences``
    each, building under ``root``; write the summary JSON to ``out`` after every case (a
    run cut short still leaves its totals so far). ``progress`` gets each case's result.
    """
    if not isinstance(configs, int) or isinstance(configs, bool) or configs < 1:
        raise ValueError(f"Configuration count must be a positive integer, not {configs!r}")
    indices = [only] if only is not None else list(range(configs))
    summary = Summary(seed=seed, inferences_per_case=inferences)
    start = time.perf_counter()
    for index in indices:
        case = draw_case(seed, index, inferences)
        result = run_case(case, root, simulator=simulator, build_jobs=build_jobs, keep=keep)
        summary.results.append(result)
        summary.wall_seconds = time.perf_counter() - start
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            partial = out.with_name(out.name + ".partial")
            partial.write_text(json.dumps(summary.to_json(), indent=1))
            partial.replace(out)
        if progress is not None:
            progress(result)
    return summary
