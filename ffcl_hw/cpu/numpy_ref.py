"""The NumPy golden model as a baseline: the time of ``IntModel.run`` per inference.

Two figures, because NumPy's cost is mostly per call, not per image: ``batched`` runs all
images in one call (the model's intended use; per inference = call time / n) and
``single`` calls it once per image (what one inference at a time costs).

The BLAS library behind NumPy's matrix products is limited to one thread by default (via
threadpoolctl, which scikit-learn installs), like the single-threaded C baselines: on a
shared machine, BLAS threads that wait for busy cores made the batched figure for 450
images up to three times slower than one thread.
"""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from ffcl_hw.cpu.check import check_images
from ffcl_hw.cpu.clock import nominal_clock
from golden.intmodel import IntModel

__all__ = ["measure_numpy"]


def _time(step, count: int, min_seconds: float, repeats: int) -> tuple[list[float], int]:
    """ns per inference of ``repeats`` measurements of ``rounds`` calls of ``step``."""
    rounds = 1
    while True:
        start = time.perf_counter_ns()
        for _ in range(rounds):
            step()
        if time.perf_counter_ns() - start >= min_seconds * 1e9 / repeats or rounds >= 1 << 30:
            break
        rounds *= 2
    per = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(rounds):
            step()
        per.append((time.perf_counter_ns() - start) / (rounds * count))
    return per, rounds


def measure_numpy(model: IntModel, images: np.ndarray, *, min_seconds: float = 2.0,
                  repeats: int = 5, blas_threads: int | None = 1,
                  cpuinfo: str = "/proc/cpuinfo") -> dict[str, Any]:
    """Time ``IntModel.run`` on ``images``, batched and one image per call.

    Parameters
    ----------
    model : IntModel
    images : ndarray of int, shape (n, D)
        Integer pixels 0..X.
    min_seconds : float
        Time spent on each of the two figures (split over ``repeats``), > 0.
    repeats : int
        Measurements per figure; the fastest is reported, the median beside it.
    blas_threads : int or None
        Threads the BLAS library may use; None leaves its default.

    Returns
    -------
    dict
        JSON-ready: ``ns_per_inference_batched``, ``ns_per_inference_single``, their
        estimated cycles at the nominal clock and how they were obtained.
    """
    if isinstance(min_seconds, bool) or not isinstance(min_seconds, int | float) \
            or not min_seconds > 0:
        raise ValueError(f"min_seconds must be a positive number, not {min_seconds!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, not {repeats!r}")
    x_q = check_images(model, images)
    n = x_q.shape[0]
    singles = [x_q[i:i + 1] for i in range(n)]
    state = {"i": 0}

    def one() -> None:
        model.run(singles[state["i"]])
        state["i"] = (state["i"] + 1) % n

    if blas_threads is not None and (isinstance(blas_threads, bool)
                                     or not isinstance(blas_threads, int) or blas_threads < 1):
        raise ValueError(f"blas_threads must be a positive integer or None, not {blas_threads!r}")
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        blas = [f"{pool['internal_api']} {pool['version']}, {pool['num_threads']} thread(s)"
                for pool in threadpool_info() if pool["user_api"] == "blas"]
        batched, batch_rounds = _time(lambda: model.run(x_q), n, min_seconds, repeats)
        single, single_rounds = _time(one, 1, min_seconds, repeats)
    clock = nominal_clock(cpuinfo)

    def cycles(ns: float) -> float | None:
        return ns * clock.hz / 1e9 if clock.hz else None

    return {
        "what": "NumPy golden model (golden/intmodel.py IntModel.run)",
        "numpy": np.__version__,
        "python": platform.python_version(),
        "blas": "; ".join(blas) or "none found by threadpoolctl",
        "method": (f"batched: IntModel.run on all {n} images in one call, {batch_rounds} calls "
                   f"per measurement; single: one image per call, {single_rounds} calls per "
                   f"measurement; {repeats} measurements of each (time.perf_counter_ns), "
                   "the fastest reported"),
        "images": n,
        "repeats": repeats,
        "ns_per_inference_batched": min(batched),
        "ns_per_inference_batched_median": statistics.median(batched),
        "ns_per_inference_single": min(single),
        "ns_per_inference_single_median": statistics.median(single),
        **clock.to_dict(),
        "estimated_cycles_per_inference_batched": cycles(min(batched)),
        "estimated_cycles_per_inference_single": cycles(min(single)),
        "estimated_cycles_method": ("ns per inference x nominal clock" if clock.hz
                                    else "not available: no nominal clock"),
    }
