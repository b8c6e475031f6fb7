"""Placement seeds: nextpnr once per seed, in parallel, through any executor.

nextpnr's placer starts from a seed, and on a full part the seed decides a few MHz (the
iCEBreaker digits build: 28.9 MHz at seed 1, 32.4 at seed 2). Synthesis runs once; this
module places and routes the same netlist at several seeds, each in a folder of its own
(``seeds/S``), and the flow keeps the fastest.

The placements run through a :class:`concurrent.futures.Executor`: a local
:class:`~concurrent.futures.ProcessPoolExecutor` by default, or a Dask cluster's
(``dask.distributed.Client(address).get_executor()``), whose workers must see the run
folder at the same path (the same machine, or a shared file system). Each placement
waits on its nextpnr process, so a worker per core is what the machine can use.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffcl_hw.flows.toolchain import run_step
from ffcl_hw.runs import RunError

__all__ = ["PNR_LOG", "PNR_REPORT", "Placement", "best_placement", "executor_for",
           "fmax_of", "place_and_route", "sweep_seeds"]

#: nextpnr's JSON report (``--report``) and the log of its output, in each seed's folder.
PNR_REPORT = "nextpnr.json"
PNR_LOG = "nextpnr.log"
#: The iCE40 packer's pseudo-clock for constant nets: not a clock of the design.
_PSEUDO_CLOCK = "$PACKER_GND_NET_$glb_clk"


@dataclass(frozen=True)
class Placement:
    """One seed's place and route.

    Attributes
    ----------
    seed : int
    fmax_mhz : float or None
        The slowest clock's Fmax (None if nextpnr reported no clock).
    clocks : dict of str to float
        Fmax per clock.
    seconds : float
        nextpnr's time.
    folder : str
        Where its outputs are.
    """

    seed: int
    fmax_mhz: float | None
    clocks: dict[str, float]
    seconds: float
    folder: str

    def summary(self, clock_mhz: float) -> dict[str, Any]:
        """``{seed, fmax_mhz, meets_timing, seconds}`` against ``clock_mhz``."""
        return {"seed": self.seed, "fmax_mhz": self.fmax_mhz,
                "meets_timing": self.fmax_mhz is not None and self.fmax_mhz >= clock_mhz,
                "seconds": round(self.seconds, 2)}


def fmax_of(report: dict[str, Any]) -> tuple[float | None, dict[str, float]]:
    """The slowest clock's Fmax in a nextpnr report, and every clock's."""
    clocks = {name: float(v["achieved"]) for name, v in report.get("fmax", {}).items()
              if name != _PSEUDO_CLOCK}
    return (min(clocks.values()) if clocks else None), clocks


def place_and_route(stage: str, seed: int, command: list[str], inputs: list[str],
                    env: dict[str, str]) -> Placement:
    """Place and route the netlist in ``stage`` at ``seed``, in ``stage/seeds/SEED``.

    The worker of a sweep: ``command`` is the build plan's nextpnr command; the seed and
    the report are added here. ``inputs`` (the netlist, the constraint file) are linked
    into the seed's folder, since the YoWASP tools see only their working folder.
    """
    import json

    folder = Path(stage) / "seeds" / str(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in inputs:
        target = folder / name
        if not target.exists():
            try:
                os.link(Path(stage) / name, target)
            except OSError:
                shutil.copyfile(Path(stage) / name, target)
    seconds = run_step([*command, "--seed", str(seed), "--report", PNR_REPORT], folder,
                       PNR_LOG, env)
    fmax, clocks = fmax_of(json.loads((folder / PNR_REPORT).read_text()))
    return Placement(seed=seed, fmax_mhz=fmax, clocks=clocks, seconds=seconds,
                     folder=str(folder))


def best_placement(placements: list[Placement]) -> Placement:
    """The fastest placement; among equals, the lowest seed."""
    return min(placements, key=lambda p: (-(p.fmax_mhz or 0.0), p.seed))


def _stop_on_sigterm() -> None:
    """In a worker: SIGTERM unwinds, so that subprocess.run kills its nextpnr."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)


@contextlib.contextmanager
def executor_for(*, scheduler: str | None = None, workers: int = 2) -> Iterator[Executor]:
    """The executor a sweep runs on: a Dask cluster's at ``scheduler`` (its address,
    ``tcp://host:8786``), else a local pool of ``workers`` processes.

    Raises
    ------
    RunError
        If ``scheduler`` is given and Dask's ``distributed`` package is missing, naming
        the extra that installs it.
    """
    if scheduler is not None:
        try:
            from dask.distributed import Client
        except ImportError:
            raise RunError("--scheduler runs the placements on a Dask cluster, which needs "
                           "the distributed package: pip install \"ffcl-hw[dask]\"") from None
        with Client(scheduler) as client:
            yield client.get_executor()
        return
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise RunError(f"--workers must be a positive integer, not {workers!r}")
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_stop_on_sigterm)
    try:
        yield pool
    except BaseException:
        # Interrupted: stop the placements still running rather than leave them to
        # finish for nobody (the pool has no public way to stop its workers).
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        raise
    else:
        pool.shutdown(wait=True)


def sweep_seeds(seeds: list[int], *, stage: Path, command: list[str], inputs: list[str],
                env: dict[str, str], executor: Executor | None = None) -> list[Placement]:
    """Place and route at every seed of ``seeds``; return the placements in seed order.

    With ``executor`` None the placements run one after the other in this process (a
    single seed needs no pool). The worker is :func:`place_and_route`.

    Raises
    ------
    SynthError
        The first placement that failed, once every placement has ended.
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"Seeds must be distinct and at least one, not {seeds!r}")
    args = (str(stage), command, list(inputs), dict(env))
    if executor is None:
        return [place_and_route(args[0], seed, *args[1:]) for seed in seeds]
    futures = [executor.submit(place_and_route, args[0], seed, *args[1:]) for seed in seeds]
    try:
        placements = [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return placements
