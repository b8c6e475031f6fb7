"""The CPU baselines of a training sample: the integer rule's C on RV32IM and on the host.

Both run ``train_sample`` of golden/inttrain.c (the C fast path that
tests/golden/test_inttrain_fast.py holds equal to :class:`golden.inttrain.IntTrainer`),
built with ``INTTRAIN_FREESTANDING``: the rule alone, 64-bit integers throughout, no libc
and no floating point (the float local loss, a report only, is left out: the accelerator
does not compute it either). :func:`training_source` adds a small translation unit with
the model's constants, one array ``train_state`` that holds every stored and forward
weight (:func:`state_layout`), the two generators' states ``train_lfsr`` and the buffers.
The weights are written into ``train_state`` at run time, so the source does not grow
with the model.

- :func:`measure_training_rv32im`: compiled like the inference baseline
  (``riscv64-unknown-elf-gcc -march=rv32im -mabi=ilp32 -ffreestanding -nostdlib``, -O2,
  libgcc) and run in Unicorn, one call of ``train_step`` per sample; instructions
  retired per sample are counted per basic block (:mod:`ffcl_hw.cpu.rv32im`). After
  every sample the whole state is read back and compared with ``IntTrainer.train_sample``
  on the same sample.
- :func:`measure_training_host`: compiled with the system compiler (default ``-O3
  -march=native``), the check samples first (state compared as above, after the last),
  then ``train_step`` timed over the samples in a loop: nanoseconds per sample.

A count or a time is only returned when the check passed (:class:`GoldenMismatch`
otherwise, naming the sample, the array and both values).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffcl_hw.cpu.check import GoldenMismatch
from ffcl_hw.cpu.clock import nominal_clock
from ffcl_hw.cpu.elf32 import Elf32
from ffcl_hw.cpu.host import check_timing
from ffcl_hw.cpu.rv32im import COUNT_METHODS, CRT0, LINKER_SCRIPT, RV32_FLAGS, Machine
from ffcl_hw.cpu.toolchain import CROSS_COMPILER, compile_c, compiler_version, find_compiler
from golden.intmodel import IntModel
from golden.inttrain import IntTrainer, TrainRule, input_frac_bits

__all__ = ["RULE_SOURCE", "StateArray", "measure_training_host", "measure_training_rv32im",
           "state_layout", "training_source", "updates_per_sample"]

#: The rule's C, shared with golden/inttrain_fast.py.
RULE_SOURCE = Path(__file__).resolve().parents[2] / "golden" / "inttrain.c"

#: The RV32IM harness: the simulator writes ``harness_x`` and ``harness_label`` and calls
#: ``harness_step``; ``harness_main`` is what a real core would run.
RV32_HARNESS = r"""/* RV32IM harness of the training baseline (ffcl_hw.cpu.training). */
#include "train_model.c"

i64 harness_x[MODEL_D];  /* the sample's pixels, written by the simulator */
int harness_label;

void harness_init(void) { train_init(); }
void harness_step(void) { train_step(harness_x, harness_label); }
void harness_main(void)
{
    harness_init();
    harness_step();
}
"""

#: The host harness. Usage: ``train_bench STATE SAMPLES N CHECK OUT SECONDS REPEATS``:
#: STATE holds train_state then the two generator words (int64 each), SAMPLES N rows of
#: D pixels and the label (int64); the first CHECK samples are trained and the state is
#: written to OUT in the same layout, then train_step is timed over the N samples.
HOST_HARNESS = r"""/* Host harness of the training baseline (ffcl_hw.cpu.training). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "train_model.c"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int state_io(const char *path, int write)
{
    FILE *f = fopen(path, write ? "wb" : "rb");
    if (!f)
        return -1;
    i64 lfsr[2] = {train_lfsr[0], train_lfsr[1]};
    size_t n = write ? fwrite(train_state, sizeof(i64), STATE_WORDS, f)
                     : fread(train_state, sizeof(i64), STATE_WORDS, f);
    n += write ? fwrite(lfsr, sizeof(i64), 2, f) : fread(lfsr, sizeof(i64), 2, f);
    train_lfsr[0] = (u32)lfsr[0];
    train_lfsr[1] = (u32)lfsr[1];
    fclose(f);
    return n == STATE_WORDS + 2 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: %s STATE SAMPLES N CHECK OUT SECONDS REPEATS\n", argv[0]);
        return 2;
    }
    const long n = atol(argv[3]), check = atol(argv[4]);
    const double seconds = atof(argv[6]);
    const int repeats = atoi(argv[7]);
    i64 *samples = malloc(sizeof(i64) * (MODEL_D + 1) * (size_t)n);
    FILE *f = fopen(argv[2], "rb");
    if (state_io(argv[1], 0) || !samples || !f
            || fread(samples, sizeof(i64) * (MODEL_D + 1), (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read the state %s or %ld samples from %s\n", argv[1], n,
                argv[2]);
        return 1;
    }
    fclose(f);
    train_init();
    /* The golden check's input: the first samples once, in order. */
    for (long i = 0; i < check; i++)
        train_step(samples + i * (MODEL_D + 1), (int)samples[i * (MODEL_D + 1) + MODEL_D]);
    if (state_io(argv[5], 1)) {
        fprintf(stderr, "cannot write %s\n", argv[5]);
        return 1;
    }
    /* Calibrate: double the rounds until one measurement takes seconds / repeats. The
     * weights keep learning; the work per sample does not depend on their values. */
    long rounds = 1;
    for (;;) {
        const double t0 = now_ns();
        for (long r = 0; r < rounds; r++)
            for (long i = 0; i < n; i++)
                train_step(samples + i * (MODEL_D + 1),
                           (int)samples[i * (MODEL_D + 1) + MODEL_D]);
        if (now_ns() - t0 >= seconds * 1e9 / repeats || rounds >= (1L << 30))
            break;
        rounds *= 2;
    }
    for (int m = 0; m < repeats; m++) {
        const double t0 = now_ns();
        for (long r = 0; r < rounds; r++)
            for (long i = 0; i < n; i++)
                train_step(samples + i * (MODEL_D + 1),
                           (int)samples[i * (MODEL_D + 1) + MODEL_D]);
        printf("measurement %ld %.0f\n", rounds * n, now_ns() - t0);
    }
    return 0;
}
"""

# Guards against a program that never returns (the MNIST FFCL step is ~10^8 instructions).
_TIMEOUT_S = 1200


@dataclass(frozen=True)
class StateArray:
    """One array of ``train_state``: layer (0-based), ``stored`` or ``forward``, its name
    (W, b, U, V), its offset in int64 words and its shape."""

    layer: int
    kind: str
    name: str
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def label(self) -> str:
        """e.g. ``stored W_2``."""
        return f"{self.kind} {self.name}_{self.layer + 1}"


def state_layout(trainer: IntTrainer) -> list[StateArray]:
    """Where each stored and forward array lives in ``train_state``: layer by layer, the
    stored W, b, U (V) then the forward W, b, U (V), each row-major."""
    arrays, offset = [], 0
    for i, (stored, lay) in enumerate(zip(trainer.stored, trainer.model.layers, strict=True)):
        forward = {"W": lay.W, "b": lay.b, "U": lay.U, "V": lay.V}
        for kind, source in (("stored", stored), ("forward", forward)):
            for name in ("W", "b", "U", "V"):
                value = source.get(name)
                if value is None:
                    continue
                arrays.append(StateArray(i, kind, name, offset, tuple(value.shape)))
                offset += value.size
    return arrays


def _state(trainer: IntTrainer, layout: list[StateArray]) -> np.ndarray:
    """``train_state`` of ``trainer`` (int64 words) then the two generator words."""
    words = []
    for a in layout:
        value = trainer.stored[a.layer][a.name] if a.kind == "stored" else \
            getattr(trainer.model.layers[a.layer], a.name)
        words.append(np.asarray(value, dtype=np.int64).ravel())
    words.append(np.array([trainer.rounding_lfsr.state, trainer.label_lfsr.state],
                          dtype=np.int64))
    return np.concatenate(words)


def _compare(what: str, sample: int, expected: np.ndarray, got: np.ndarray,
             layout: list[StateArray]) -> None:
    """Raise :class:`GoldenMismatch` at the first differing word, named."""
    bad = np.flatnonzero(expected != got)
    if not bad.size:
        return
    word = int(bad[0])
    for a in layout:
        if a.offset <= word < a.offset + a.size:
            index = np.unravel_index(word - a.offset, a.shape)
            where = f"{a.label()}{''.join(f'[{i}]' for i in index)}"
            break
    else:
        where = ("the rounding generator's state", "the label generator's state")[
            word - layout[-1].offset - layout[-1].size]
    raise GoldenMismatch(f"{what} disagrees with IntTrainer.train_sample after sample "
                         f"{sample}: {where} = {int(got[word])} (CPU) != "
                         f"{int(expected[word])} (golden)")


def _c_ints(values: Sequence[int]) -> str:
    return ", ".join(str(int(v)) + ("LL" if not -(1 << 31) <= int(v) < 1 << 31 else "")
                     for v in values)


def training_source(trainer: IntTrainer, lr_shift: int) -> str:
    """The translation unit around golden/inttrain.c for ``trainer``'s model and rule.

    It ``#include``-s ``inttrain.c`` (copied next to it) and defines ``MODEL_D``,
    ``STATE_WORDS``, ``train_state``, ``train_lfsr``, ``train_init()`` and ``train_step(x,
    label)``; the caller writes the weights (:func:`state_layout`) and the generator
    words before ``train_init``.
    """
    model, rule = trainer.model, trainer.rule
    config, fmt = model.config, model.fmt
    L = config.num_layers
    layout = state_layout(trainer)
    at = {(a.layer, a.kind, a.name): a.offset for a in layout}
    words = layout[-1].offset + layout[-1].size
    width = max(config.input_size, *config.hidden)
    src = [-1 if config.feedback_source(i) is None else config.feedback_source(i)
           for i in range(L)]

    def pointers(kind: str, name: str) -> str:
        return ", ".join(f"train_state + {at[(i, kind, name)]}" if (i, kind, name) in at
                         else "0" for i in range(L))

    hidden = "x".join(map(str, config.hidden))
    lines = [
        "/* The integer training step of one model, generated by ffcl_hw.cpu.training:",
        f" * {config.algo.upper()} {config.input_size}-{hidden}"
        + (f", T = {config.loops}" if config.algo == "ffcl" else "")
        + f", stored weights {rule.store_bits} bits, lambda {lr_shift}, rounding "
        f"{rule.rounding}. */",
        "#define INTTRAIN_FREESTANDING 1",
        '#include "inttrain.c"',
        "",
        f"#define MODEL_D ({config.input_size})",
        f"#define MODEL_L ({L})",
        f"#define STATE_WORDS ({words})",
        f"#define WORK_WIDTH ({width})",
        "",
        "/* Stored then forward W, b, U (V) of every layer, row-major; written by the caller. */",
        "i64 train_state[STATE_WORDS];",
        "/* The rounding and the label generators' states. */",
        "u32 train_lfsr[2];",
        "",
        f"static const int hidden[MODEL_L] = {{{_c_ints(config.hidden)}}};",
        f"static const int src[MODEL_L] = {{{_c_ints(src)}}};",
        f"static const int w_exp[MODEL_L] = {{{_c_ints([lay.w_exp for lay in model.layers])}}};",
        "static const int v_exp[MODEL_L] = "
        f"{{{_c_ints([lay.v_exp or 0 for lay in model.layers])}}};",
        f"static const i64 theta[MODEL_L] = {{{_c_ints(trainer.thresholds)}}};",
        f"static const i64 sigmoid_table[] = {{{_c_ints(trainer.table)}}};",
        f"static const i64 rsqrt_table[] = {{{_c_ints(fmt.table)}}};",
    ]
    for kind, prefix in (("stored", "c"), ("forward", "")):
        for name in ("W", "b", "U", "V"):
            lines.append(f"static i64 *{name}{prefix}_of[MODEL_L] = {{{pointers(kind, name)}}};")
    wlo, whi = trainer.limits["W"]
    blo, bhi = trainer.limits["b"]
    fields = {
        "L": L, "T": config.loops, "K": config.num_classes, "D": config.input_size,
        "goodness_mode": int(config.algo == "ffcl" and config.feedback == "goodness"),
        "loss_last": int(rule.loss_iterations == "last"),
        "nearest": int(rule.rounding == "nearest"), "f": trainer.fine_bits,
        "state_bits": fmt.state_bits, "S": fmt.frac_bits, "Q": fmt.rsqrt_frac_bits,
        "rsq_k": fmt.rsqrt_index_bits, "P1": input_frac_bits(fmt, 0), "lam": lr_shift,
        "boost": rule.upper_lr_boost,
    }
    lines += [
        "",
        "static Net train_net = {",
        "    " + ", ".join(f".{k} = {v}" for k, v in fields.items()) + ",",
        "    .hidden = hidden, .src = src, .w_exp = w_exp, .v_exp = v_exp,",
        "    .Wc = Wc_of, .bc = bc_of, .Uc = Uc_of, .Vc = Vc_of,",
        "    .W = W_of, .b = b_of, .U = U_of, .V = V_of,",
        "    .theta = theta, .sig = sigmoid_table, .rsq = rsqrt_table,",
        f"    .wlo = {_c_ints([wlo])}, .whi = {_c_ints([whi])}, "
        f".blo = {_c_ints([blo])}, .bhi = {_c_ints([bhi])},",
        "};",
        "",
        "static i64 work_i64[WORK_I64(WORK_WIDTH, MODEL_L)];",
        "static u32 work_u32[WORK_U32(WORK_WIDTH)];",
        "static Work train_work;",
        "",
        "void train_init(void) { work_init(&train_net, &train_work, work_i64, work_u32); }",
        "",
        "/* One sample: x[MODEL_D] pixels, its label. */",
        "void train_step(const i64 *x, int label)",
        "{",
        "    train_sample(&train_net, &train_work, x, label, &train_lfsr[0], &train_lfsr[1]);",
        "}",
        "",
    ]
    return "\n".join(lines)


def updates_per_sample(model: IntModel, rule: TrainRule) -> int:
    """Stored entries read-modify-written per sample: N (n_in + n_src) + 3 N per trained
    layer and iteration (W, V, b and U's two columns)."""
    config = model.config
    trained = config.loops if rule.loss_iterations == "all" else 1
    total = 0
    for i, n in enumerate(config.hidden):
        n_in = config.input_size if i == 0 else config.hidden[i - 1]
        source = config.feedback_source(i)
        n_src = 0 if source is None else config.hidden[source]
        total += n * (n_in + n_src) + 3 * n
    return trained * total


def _samples(model: IntModel, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    x = np.asarray(images)
    y = np.asarray(labels)
    D, X, K = model.config.input_size, model.fmt.input_max, model.config.num_classes
    if x.ndim != 2 or x.shape[1] != D or x.shape[0] == 0:
        raise ValueError(f"images must have shape (n, {D}) with n >= 1, not {x.shape}")
    if not np.issubdtype(x.dtype, np.integer) or x.min() < 0 or x.max() > X:
        raise ValueError(f"images must be integer pixels 0..{X}")
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer) \
            or y.min() < 0 or y.max() >= K:
        raise ValueError(f"labels must be {x.shape[0]} integers in 0..{K - 1}")
    return x.astype(np.int64), y.astype(np.int64)


def _start(model: IntModel, rule: TrainRule, lr_shift: int | None
           ) -> tuple[IntTrainer, int, list[StateArray], np.ndarray]:
    """The golden trainer both measurements check against, the lambda they train with
    (default the rule's first), the state layout and the starting state."""
    golden = IntTrainer(model, rule)
    layout = state_layout(golden)
    return (golden, rule.lr_shift_at(0) if lr_shift is None else lr_shift, layout,
            _state(golden, layout))


def _write_sources(folder: Path, trainer: IntTrainer, lr_shift: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RULE_SOURCE, folder / "inttrain.c")
    (folder / "train_model.c").write_text(training_source(trainer, lr_shift))


def measure_training_rv32im(model: IntModel, rule: TrainRule, images: np.ndarray,
                            labels: np.ndarray, *, lr_shift: int | None = None,
                            opt: str = "-O2", method: str = "block",
                            build_dir: str | Path | None = None,
                            cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Train on ``images`` in order on RV32IM in Unicorn, checked after every sample.

    Parameters
    ----------
    model : IntModel
        The starting forward model (FFDL or FFCL); the stored weights start as
        :class:`IntTrainer`'s do.
    rule : TrainRule
        The rule (its seed starts the generators).
    images, labels : ndarray of int
        (n, D) integer pixels and n labels, trained in this order.
    lr_shift : int, optional
        lambda; default the rule's first epoch's.
    opt : {"-O2", "-O3", "-Os"}
    method : {"block", "code"}
        How instructions are counted (:mod:`ffcl_hw.cpu.rv32im`).
    build_dir : path, optional
        Where the sources and train.elf are written (kept); default a temporary folder.
    cache_dir : path, optional
        Reuse the program an identical compile left there (and leave this one):
        :func:`ffcl_hw.cpu.toolchain.compile_c`. It is still checked and counted.

    Returns
    -------
    dict
        JSON-ready: ``instructions_per_sample`` (the mean), its ``_min``, ``_max`` and
        per-sample values, ``instructions_per_update``, and how they were obtained.

    Raises
    ------
    ValueError
        For bad arguments, or a model or rule :class:`IntTrainer` refuses.
    CrossCompilerMissing, CompileError
        As :func:`ffcl_hw.cpu.measure_rv32im`.
    GoldenMismatch
        At the first word of any sample that differs from ``IntTrainer.train_sample``.
    """
    if opt not in ("-O2", "-O3", "-Os"):
        raise ValueError(f"opt must be one of -O2, -O3, -Os, not {opt!r}")
    if method not in COUNT_METHODS:
        raise ValueError(f"method must be one of {', '.join(COUNT_METHODS)}, not {method!r}")
    x, y = _samples(model, images, labels)
    golden, lam, layout, start_state = _start(model, rule, lr_shift)
    path = find_compiler(CROSS_COMPILER)
    import unicorn

    with tempfile.TemporaryDirectory(prefix="ffcl-rv32im-train-") as tmp:
        folder = Path(build_dir) if build_dir is not None else Path(tmp)
        _write_sources(folder, golden, lam)
        (folder / "rv32_harness.c").write_text(RV32_HARNESS)
        (folder / "crt0.S").write_text(CRT0)
        (folder / "rv32.ld").write_text(LINKER_SCRIPT)
        flags = [*RV32_FLAGS, opt]
        compile_c(path, [*flags, "-T", "rv32.ld", "-o", "train.elf", "crt0.S",
                         "rv32_harness.c", "-lgcc"], cwd=folder, cache=cache_dir)
        elf = Elf32(folder / "train.elf")
    machine = Machine(elf, method, timeout_s=_TIMEOUT_S)
    words = len(start_state) - 2
    state_at, lfsr_at = elf.symbol("train_state"), elf.symbol("train_lfsr")
    x_at, label_at = elf.symbol("harness_x"), elf.symbol("harness_label")
    machine.uc.mem_write(state_at, start_state[:words].astype("<i8").tobytes())
    machine.uc.mem_write(lfsr_at, start_state[words:].astype("<u4").tobytes())
    machine.call(elf.symbol("harness_init"))
    what = f"RV32IM training step ({opt})"
    counts = []
    begin = time.perf_counter()
    for i in range(x.shape[0]):
        machine.uc.mem_write(x_at, x[i].astype("<i8").tobytes())
        machine.uc.mem_write(label_at, int(y[i]).to_bytes(4, "little"))
        _, count = machine.call(elf.symbol("harness_step"))
        counts.append(count // 4)
        golden.train_sample(x[i], int(y[i]), lam)
        got = np.concatenate([
            np.frombuffer(machine.uc.mem_read(state_at, 8 * words), dtype="<i8"),
            np.frombuffer(machine.uc.mem_read(lfsr_at, 8), dtype="<u4").astype(np.int64)])
        _compare(what, i, _state(golden, layout), got, layout)
    seconds = time.perf_counter() - begin
    mean = statistics.fmean(counts)
    updates = updates_per_sample(model, rule)
    return {
        "what": "embedded CPU, the integer training step (golden/inttrain.c) on RV32IM in an "
                "instruction-set simulator",
        "compiler": compiler_version(path),
        "compiler_path": path,
        "flags": [*flags, "-T", "rv32.ld", "crt0.S", "-lgcc"],
        "opt": opt,
        "simulator": f"unicorn {unicorn.__version__} (UC_ARCH_RISCV, UC_MODE_RISCV32)",
        "method": "instructions retired by one call of train_step per sample, counted "
                  + ("per basic block (UC_HOOK_BLOCK, block bytes / 4)" if method == "block"
                     else "per instruction (UC_HOOK_CODE)"),
        "golden_check": f"passed: every stored and forward W, b, U, V word and both "
                        f"generator states equal IntTrainer.train_sample's after each of "
                        f"{x.shape[0]} samples",
        "samples": int(x.shape[0]),
        "lr_shift": lam,
        "instructions_per_sample": mean,
        "instructions_per_sample_min": min(counts),
        "instructions_per_sample_max": max(counts),
        "instructions_per_sample_all": counts,
        "updates_per_sample": updates,
        "instructions_per_update": mean / updates,
        "code_bytes": elf.symbol("__text_end") - elf.symbol("__text_start"),
        "simulation_seconds": seconds,
    }


def measure_training_host(model: IntModel, rule: TrainRule, images: np.ndarray,
                          labels: np.ndarray, *, check_samples: int = 3,
                          lr_shift: int | None = None, opt: str = "-O3",
                          flags: Sequence[str] = ("-march=native",), compiler: str = "gcc",
                          min_seconds: float = 2.0, repeats: int = 10,
                          build_dir: str | Path | None = None,
                          cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Time the training step on the host, after checking it bit-exact.

    The first ``check_samples`` samples are trained once and the state compared with
    ``IntTrainer.train_sample``'s; then ``train_step`` runs over all the samples in a loop
    for at least ``min_seconds`` (split over ``repeats`` measurements, the fastest kept).
    With ``cache_dir``, the harness binary an identical compile left there is reused (and
    this one left there): :func:`ffcl_hw.cpu.toolchain.compile_c`.

    Raises
    ------
    ValueError
        For bad arguments, or a model or rule :class:`IntTrainer` refuses.
    CompilerMissing, CompileError
        As :func:`ffcl_hw.cpu.measure_host_c`.
    GoldenMismatch
        If the state after the check samples differs from the golden trainer's.
    RuntimeError
        If the compiled harness fails.
    """
    x, y = _samples(model, images, labels)
    if isinstance(check_samples, bool) or not isinstance(check_samples, int) \
            or not 1 <= check_samples <= x.shape[0]:
        raise ValueError(f"check_samples must be an integer in 1..{x.shape[0]}, "
                         f"not {check_samples!r}")
    check_timing(min_seconds, repeats)
    flags = [str(flag) for flag in flags]
    golden, lam, layout, start_state = _start(model, rule, lr_shift)
    path = find_compiler(compiler)
    with tempfile.TemporaryDirectory(prefix="ffcl-host-train-") as tmp:
        folder = Path(build_dir) if build_dir is not None else Path(tmp)
        _write_sources(folder, golden, lam)
        (folder / "train_bench.c").write_text(HOST_HARNESS)
        start_state.tofile(folder / "state.bin")
        np.concatenate([x, y[:, None]], axis=1).tofile(folder / "samples.bin")
        args = ["-std=c11", opt, *flags]
        compile_c(path, [*args, "-o", "train_bench", "train_bench.c"], cwd=folder,
                  cache=cache_dir)
        run = subprocess.run(
            ["./train_bench", "state.bin", "samples.bin", str(x.shape[0]), str(check_samples),
             "checked.bin", repr(float(min_seconds)), str(repeats)],
            cwd=folder, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"the host training harness failed (exit {run.returncode}): "
                               f"{run.stderr.strip()}")
        got = np.fromfile(folder / "checked.bin", dtype=np.int64)
    what = f"host C training step ({compiler} {' '.join(args[1:])})"
    for i in range(check_samples):
        golden.train_sample(x[i], int(y[i]), lam)
    expected = _state(golden, layout)
    if got.shape != expected.shape:
        raise RuntimeError(f"the host training harness wrote {got.size} words, not "
                           f"{expected.size}")
    _compare(what, check_samples - 1, expected, got, layout)
    measurements = [line.split()[1:] for line in run.stdout.splitlines()
                    if line.startswith("measurement ")]
    if len(measurements) != repeats:
        raise RuntimeError(f"the host training harness reported {len(measurements)} "
                           f"measurements, not {repeats}: {run.stdout!r}")
    per = [float(ns) / int(count) for count, ns in measurements]
    clock = nominal_clock()
    best = min(per)
    return {
        "what": "host CPU, the integer training step (golden/inttrain.c)",
        "compiler": compiler_version(path),
        "compiler_path": path,
        "flags": args,
        "golden_check": f"passed: every stored and forward W, b, U, V word and both "
                        f"generator states equal IntTrainer.train_sample's after "
                        f"{check_samples} samples",
        "samples": int(x.shape[0]),
        "lr_shift": lam,
        "method": (f"train_step over the {x.shape[0]} samples in a loop (the weights keep "
                   f"learning), {measurements[0][0]} samples per measurement, {repeats} "
                   f"measurements of at least {min_seconds / repeats:.3g} s each "
                   "(CLOCK_MONOTONIC), single thread; ns_per_sample is the fastest"),
        "repeats": repeats,
        "ns_per_sample": best,
        "ns_per_sample_median": statistics.median(per),
        **clock.to_dict(),
        "estimated_cycles_per_sample": best * clock.hz / 1e9 if clock.hz else None,
        "updates_per_sample": updates_per_sample(model, rule),
    }
