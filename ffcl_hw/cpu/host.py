"""The host-CPU baseline: the generated C, compiled with the system compiler and timed.

:func:`measure_host_c` writes the model's C (ffcl_hw.cpu.csource) and a small harness into
a build folder, compiles them at one optimisation level, runs every image once and checks
label, per-label scores and per-layer goodness against ``IntModel.run`` bit for bit, then
times ``model_infer`` over the same images for at least ``min_seconds``: nanoseconds per
inference, cycles estimated from the nominal clock (ffcl_hw.cpu.clock), and real cycles
from the hardware counter (Linux ``perf_event_open``, user-space cycles of the timed loop)
where the machine exposes one; virtual machines usually do not, and the result says so.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ffcl_hw.cpu.check import check_against_golden, check_images
from ffcl_hw.cpu.clock import nominal_clock
from ffcl_hw.cpu.csource import c_types, generate_c
from ffcl_hw.cpu.toolchain import compile_c, compiler_version, find_compiler
from golden.costs import inference_cost
from golden.intmodel import IntModel

__all__ = ["HOST_HARNESS", "OPT_LEVELS", "check_timing", "measure_host_c"]

#: Optimisation levels :func:`measure_host_c` accepts.
OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os")

#: The host harness: includes the generated model.c. Usage:
#: ``host_bench IMAGES N RESULTS SECONDS REPEATS``; IMAGES holds N x MODEL_D pixel_t in the
#: machine's byte order, RESULTS receives per image int64 label, goodness[L][K], scores[K].
HOST_HARNESS = r"""/* Host harness of the CPU baseline (ffcl_hw.cpu.host). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "model.c"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The user-space CPU-cycle counter of this thread, or -1 (and why on stdout). */
static int open_cycles(void)
{
#ifdef __linux__
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = PERF_TYPE_HARDWARE;
    attr.size = sizeof attr;
    attr.config = PERF_COUNT_HW_CPU_CYCLES;
    attr.disabled = 1;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    attr.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
    long fd = syscall(__NR_perf_event_open, &attr, 0, -1, -1, 0);
    if (fd < 0) {
        printf("cycles not available: perf_event_open(PERF_COUNT_HW_CPU_CYCLES): %s\n",
               strerror(errno));
        return -1;
    }
    printf("cycles available: perf_event_open(PERF_COUNT_HW_CPU_CYCLES), user space\n");
    return (int)fd;
#else
    printf("cycles not available: no perf_event_open on this system\n");
    return -1;
#endif
}

/* Cycles of the last enabled period, -1 when unavailable or multiplexed (not exact). */
static long long read_cycles(int fd)
{
#ifdef __linux__
    unsigned long long v[3];
    if (fd < 0 || read(fd, v, sizeof v) != (ssize_t)sizeof v || v[1] != v[2])
        return -1;
    return (long long)v[0];
#else
    (void)fd;
    return -1;
#endif
}

static void counter(int fd, int on)
{
#ifdef __linux__
    if (fd >= 0) {
        if (on)
            ioctl(fd, PERF_EVENT_IOC_RESET, 0);
        ioctl(fd, on ? PERF_EVENT_IOC_ENABLE : PERF_EVENT_IOC_DISABLE, 0);
    }
#else
    (void)fd;
    (void)on;
#endif
}

static int64_t goodness[MODEL_L][MODEL_K], scores[MODEL_K];
volatile int64_t sink;  /* keeps the timed results live */

static void passes(const pixel_t *images, long n, long rounds)
{
    int64_t sum = 0;
    for (long r = 0; r < rounds; r++)
        for (long i = 0; i < n; i++)
            sum += model_infer(images + i * MODEL_D, goodness, scores) + scores[0];
    sink = sum;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s IMAGES N RESULTS SECONDS REPEATS\n", argv[0]);
        return 2;
    }
    const long n = atol(argv[2]);
    const double seconds = atof(argv[4]);
    const int repeats = atoi(argv[5]);
    pixel_t *images = malloc(sizeof(pixel_t) * MODEL_D * (size_t)n);
    FILE *f = fopen(argv[1], "rb");
    if (!images || !f || fread(images, sizeof(pixel_t) * MODEL_D, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %ld images from %s\n", n, argv[1]);
        return 1;
    }
    fclose(f);

    /* The golden check's input: every image once. */
    FILE *out = fopen(argv[3], "wb");
    if (!out) {
        fprintf(stderr, "cannot write %s\n", argv[3]);
        return 1;
    }
    for (long i = 0; i < n; i++) {
        const int64_t label = model_infer(images + i * MODEL_D, goodness, scores);
        fwrite(&label, sizeof label, 1, out);
        fwrite(goodness, sizeof goodness, 1, out);
        fwrite(scores, sizeof scores, 1, out);
    }
    fclose(out);

    /* Calibrate: double the rounds until one measurement takes seconds / repeats. */
    long rounds = 1;
    for (;;) {
        const double t0 = now_ns();
        passes(images, n, rounds);
        if (now_ns() - t0 >= seconds * 1e9 / repeats || rounds >= (1L << 40))
            break;
        rounds *= 2;
    }
    const int fd = open_cycles();
    for (int m = 0; m < repeats; m++) {
        counter(fd, 1);
        const double t0 = now_ns();
        passes(images, n, rounds);
        const double t1 = now_ns();
        counter(fd, 0);
        printf("measurement %ld %.0f %lld\n", rounds * n, t1 - t0, read_cycles(fd));
    }
    return 0;
}
"""


def _parse(stdout: str) -> tuple[list[tuple[int, float, int]], str, bool]:
    """Measurements (inferences, ns, cycles), the counter's status line, and availability."""
    measurements, status, available = [], "cycles not available: no status line", False
    for line in stdout.splitlines():
        if line.startswith("measurement "):
            _, inferences, ns, cycles = line.split()
            measurements.append((int(inferences), float(ns), int(cycles)))
        elif line.startswith("cycles "):
            status = line
            available = line.startswith("cycles available")
    return measurements, status, available


def check_timing(min_seconds: float, repeats: int) -> None:
    """Refuse, by name, a timed host measurement's ``min_seconds`` or ``repeats`` that
    is not a positive number / integer."""
    if isinstance(min_seconds, bool) or not isinstance(min_seconds, int | float) \
            or not min_seconds > 0:
        raise ValueError(f"min_seconds must be a positive number, not {min_seconds!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, not {repeats!r}")


def _compile_and_run(path: str, source: str, x_q: np.ndarray, pixel: type[np.integer],
                     opt: str, flags: list[str], min_seconds: float, repeats: int,
                     build_dir: str | Path | None,
                     cache_dir: str | Path | None = None) -> tuple[np.ndarray, str]:
    """Write model.c, the harness and the images into ``build_dir`` (default a temporary
    folder, removed), compile and run the harness; return the numbers it wrote to
    results.bin and its stdout."""
    n = x_q.shape[0]
    with tempfile.TemporaryDirectory(prefix="ffcl-host-c-") as tmp:
        folder = Path(build_dir) if build_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.c").write_text(source)
        (folder / "host_bench.c").write_text(HOST_HARNESS)
        x_q.astype(pixel).tofile(folder / "images.bin")
        args = ["-std=c11", opt, *flags, "-o", "host_bench", "host_bench.c"]
        compile_c(path, args, cwd=folder, cache=cache_dir)
        run = subprocess.run(
            ["./host_bench", "images.bin", str(n), "results.bin", repr(float(min_seconds)),
             str(repeats)],
            cwd=folder, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"the host C harness failed (exit {run.returncode}): "
                               f"{run.stderr.strip()}")
        raw = np.fromfile(folder / "results.bin", dtype=np.int64)
    return raw, run.stdout


def _check_results(what: str, raw: np.ndarray, golden: Any, n: int, L: int, K: int) -> None:
    """Refuse results.bin of the wrong size, or any label, goodness or score that differs
    from the golden model's (``raw``: per image label, goodness[L][K], scores[K])."""
    record = 1 + L * K + K
    if raw.size != n * record:
        raise RuntimeError(f"the host C harness wrote {raw.size} numbers, not {n * record}")
    raw = raw.reshape(n, record)
    check_against_golden(what, golden, labels=raw[:, 0],
                         goodness=raw[:, 1:1 + L * K].reshape(n, L, K),
                         scores=raw[:, 1 + L * K:])


def _timings(stdout: str, repeats: int) -> tuple[list[tuple[int, float, int]], str,
                                                  float | None]:
    """The harness's measurements, the counter's status and the fewest hardware cycles
    per inference (None when the counter is missing, read 0 or was multiplexed)."""
    measurements, status, available = _parse(stdout)
    if len(measurements) != repeats:
        raise RuntimeError(f"the host C harness reported {len(measurements)} measurements, "
                           f"not {repeats}: {stdout!r}")
    hardware = None
    if available:
        cycles = [c / count for count, _, c in measurements if c >= 0]
        if len(cycles) == repeats and min(cycles) > 0:
            hardware = min(cycles)
        else:
            status += " (but it read 0 or was multiplexed; not used)"
    return measurements, status, hardware


def _host_c_result(path: str, compiler: str, opt: str, flags: list[str], n: int,
                   measurements: list[tuple[int, float, int]], status: str,
                   hardware: float | None, min_seconds: float, repeats: int,
                   cpuinfo: str | Path, config: Any) -> dict[str, Any]:
    """:func:`measure_host_c`'s result from the checked run's measurements: the fastest
    and median ns per inference, the cycles estimated from the nominal clock and read from
    the counter, and how each was obtained."""
    per = [ns / count for count, ns, _ in measurements]
    clock = nominal_clock(cpuinfo)
    best = min(per)
    cost = inference_cost(config)
    return {
        "what": "host CPU, generated C",
        "compiler": compiler_version(path),
        "compiler_path": path,
        "flags": ["-std=c11", opt, *flags],
        "opt": opt,
        "golden_check": f"passed: label, scores and per-layer goodness of {n} images "
                        "bit-exact against IntModel.run",
        "images": n,
        "method": (f"model_infer over the {n} images in a loop, {measurements[0][0]} "
                   f"inferences per measurement, {repeats} measurements of at least "
                   f"{min_seconds / repeats:.3g} s each (CLOCK_MONOTONIC), single thread; "
                   "ns_per_inference is the fastest measurement"),
        "inferences_per_measurement": measurements[0][0],
        "repeats": repeats,
        "ns_per_inference": best,
        "ns_per_inference_median": statistics.median(per),
        "ns_per_inference_all": per,
        **clock.to_dict(),
        "estimated_cycles_per_inference": best * clock.hz / 1e9 if clock.hz else None,
        "estimated_cycles_method": ("ns_per_inference x nominal clock" if clock.hz
                                    else "not available: no nominal clock"),
        "hardware_cycles_per_inference": hardware,
        "hardware_cycles": status,
        "macs_per_inference": cost.macs,
    }


def measure_host_c(model: IntModel, images: np.ndarray, *, opt: str = "-O2",
                   min_seconds: float = 2.0, repeats: int = 10, compiler: str = "gcc",
                   flags: Sequence[str] = (), build_dir: str | Path | None = None,
                   cpuinfo: str | Path = "/proc/cpuinfo",
                   cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Compile the model's C for the host, check it bit-exact and time it.

    Parameters
    ----------
    model : IntModel
        The integer model.
    images : ndarray of int, shape (n, D)
        Integer pixels 0..X; all are checked against the golden model, and all are cycled
        through in the timed loop.
    opt : str
        Optimisation level, one of :data:`OPT_LEVELS`.
    min_seconds : float
        Total time of the timed measurements (split over ``repeats``), > 0.
    repeats : int
        Timed measurements; the fastest gives ``ns_per_inference`` (the one least disturbed
        by other processes), the median ``ns_per_inference_median``.
    compiler : str
        The C compiler (default the system's ``gcc``).
    flags : sequence of str
        Extra compiler flags (e.g. ``("-march=native",)``), recorded in the result.
    build_dir : path, optional
        Where to write model.c, the harness and the binary (kept); default a temporary
        folder that is removed.
    cpuinfo : path
        Read for the nominal clock.
    cache_dir : path, optional
        Reuse the harness binary an identical compile left there (and leave this one):
        :func:`ffcl_hw.cpu.toolchain.compile_c`. It is still checked and timed.

    Returns
    -------
    dict
        JSON-ready: ``ns_per_inference``, ``estimated_cycles_per_inference``,
        ``hardware_cycles_per_inference`` (None when no counter) and how each was obtained
        (compiler version and flags, method, runs, clock source, golden check).

    Raises
    ------
    ValueError
        For a bad ``opt``, ``min_seconds``, ``repeats`` or images.
    CompilerMissing
        If ``compiler`` is not on PATH.
    CompileError
        If it refuses the source.
    GoldenMismatch
        If any image's label, score or goodness differs from ``IntModel.run``.
    RuntimeError
        If the compiled harness fails.
    """
    if opt not in OPT_LEVELS:
        raise ValueError(f"opt must be one of {', '.join(OPT_LEVELS)}, not {opt!r}")
    check_timing(min_seconds, repeats)
    flags = [str(flag) for flag in flags]
    x_q = check_images(model, images)
    golden = model.run(x_q)
    path = find_compiler(compiler)
    source = generate_c(model)
    pixel = np.uint8 if c_types(model).pixel == "uint8_t" else np.uint16
    config = model.config
    L, K, n = config.num_layers, config.num_classes, x_q.shape[0]

    raw, stdout = _compile_and_run(path, source, x_q, pixel, opt, flags, min_seconds,
                                   repeats, build_dir, cache_dir)
    _check_results(f"host C ({compiler} {opt})", raw, golden, n, L, K)
    measurements, status, hardware = _timings(stdout, repeats)
    return _host_c_result(path, compiler, opt, flags, n, measurements, status, hardware,
                          min_seconds, repeats, cpuinfo, config)
