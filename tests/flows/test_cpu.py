"""CPU baselines (ffcl_hw.cpu): the generated C against IntModel.run, bit for bit.

Small random models of every structural variant and several number formats, compiled for
the host at -O2 and -O3 and for RV32IM (run in unicorn); plus the failure paths: a wrong
result is caught and named, a missing compiler says how to install it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import numpy as np
import pytest

from ffcl_hw.cpu import (
    CompilerMissing,
    CrossCompilerMissing,
    GoldenMismatch,
    generate_c,
    measure_host_c,
    measure_numpy,
    measure_rv32im,
    nominal_clock,
)
from ffcl_hw.cpu import host as host_module
from ffcl_hw.cpu import rv32im as rv32im_module
from ffcl_hw.cpu.check import check_against_golden
from ffcl_hw.cpu.csource import c_types
from ffcl_hw.cpu.toolchain import CROSS_COMPILER, find_compiler
from golden.config import ModelConfig
from golden.intmodel import IntModel
from golden.quantize import quantize
from tests.golden.variants import VARIANTS, extreme, make_config, random_params, reweighted

HAVE_GCC = shutil.which("gcc") is not None
HAVE_CROSS = shutil.which(CROSS_COMPILER) is not None
needs_gcc = pytest.mark.skipif(not HAVE_GCC, reason="no gcc on PATH (apt-get install gcc)")
needs_cross = pytest.mark.skipif(
    not HAVE_CROSS,
    reason=f"{CROSS_COMPILER} is not on PATH; `apt-get install gcc-riscv64-unknown-elf`")

# Number formats that change the C types: w8s16 is the default (int8 weights, int16 states,
# int32 accumulator); w4s8 narrows everything; w12s20 needs int16 weights, int32 states,
# a 64-bit accumulator and 64-bit scan terms.
FORMATS = {"w8s16": (8, 16), "w4s8": (4, 8), "w12s20": (12, 20)}

# Feedback "goodness" has its own C (one forward pass and a rescan): both readouts and both
# topologies, beside VARIANTS' ffcl-goodness (adjacent, sum).
EXTRA = {
    "ffcl-goodness-last": dict(algo="ffcl", hidden=(7, 5), loops=2, feedback="goodness",
                               readout="last"),
    "ffcl-goodness-top-3layers": dict(algo="ffcl", hidden=(6, 5, 4), loops=2,
                                      feedback="goodness", topology="top"),
    "ffcl-goodness-last-top": dict(algo="ffcl", hidden=(6, 5, 4), loops=2,
                                   feedback="goodness", readout="last", topology="top"),
}


def _model(name: str, *, seed: int = 7, formats: str = "w8s16", input_max: int = 16,
           weights: str = "quantized") -> IntModel:
    weight_bits, state_bits = FORMATS[formats]
    config = (make_config(name) if name in VARIANTS
              else ModelConfig(input_size=9, num_classes=4, **EXTRA[name]))
    rng = np.random.default_rng(seed)
    model = quantize(config, random_params(config, seed), rng.random((64, config.input_size)),
                     input_max=input_max, weight_bits=weight_bits, state_bits=state_bits)
    if weights == "quantized":
        return model
    # Every weight at +-wmax and every bias at a state extreme: saturation everywhere, and
    # with all-positive weights every label ties (argmax must pick the lowest).
    return extreme(model, weights, rng)


def _images(model: IntModel, *, seed: int = 9, n: int = 12) -> np.ndarray:
    """Random images, then an all-zero and an all-maximum one."""
    rng = np.random.default_rng(seed)
    X, D = model.fmt.input_max, model.config.input_size
    return np.concatenate([rng.integers(0, X + 1, size=(n, D)), np.zeros((1, D), np.int64),
                           np.full((1, D), X)])


# (variant, formats, weights, input_max): every variant at the default formats, then the
# other formats and the extreme weights on a spread of variants.
CASES = [(name, "w8s16", "quantized", 16) for name in [*sorted(VARIANTS), *EXTRA]] + [
    ("ffl", "w4s8", "quantized", 16),
    ("ffcl-adjacent-T3", "w4s8", "signs", 16),
    ("ffdl-3layers", "w12s20", "quantized", 16),
    ("ffcl-goodness", "w12s20", "signs", 16),
    ("ffcl-goodness-last-top", "w4s8", "signs", 16),
    ("ffcl-top-T2", "w8s16", "positive", 16),
    ("ffl-3layers", "w8s16", "signs", 255),
    ("ffcl-last", "w8s16", "quantized", 1000),
]


def _case_id(case) -> str:
    return "-".join(str(part) for part in case)


def _case_model(case) -> IntModel:
    name, formats, weights, input_max = case
    return _model(name, formats=formats, weights=weights, input_max=input_max)


def test_the_cases_cover_every_c_type():
    # The cases above must exercise both choices of every C type, or a width bug in one
    # branch could pass unnoticed.
    seen: dict[str, set[str]] = {}
    for case in CASES:
        for field, value in vars(c_types(_case_model(case))).items():
            seen.setdefault(field, set()).add(value)
    assert all(len(values) == 2 for values in seen.values()), seen


@needs_gcc
@pytest.mark.parametrize("opt", ["-O2", "-O3"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_host_c_is_bit_exact(case, opt, tmp_path):
    model = _case_model(case)
    result = measure_host_c(model, _images(model), opt=opt, min_seconds=0.002, repeats=1,
                            build_dir=tmp_path)
    assert result["golden_check"].startswith("passed")
    assert result["ns_per_inference"] > 0
    assert result["flags"] == ["-std=c11", opt]
    # The counter is recorded either way; its absence is not a failure.
    assert result["hardware_cycles"].startswith(("cycles available", "cycles not available"))
    assert (result["hardware_cycles_per_inference"] is None) == \
        result["hardware_cycles"].startswith("cycles not available")
    # The build went where it was asked to, not into the source tree.
    assert (tmp_path / "model.c").is_file() and (tmp_path / "host_bench").is_file()


@needs_cross
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_rv32im_c_is_bit_exact(case):
    model = _case_model(case)
    result = measure_rv32im(model, _images(model, n=2))
    assert result["golden_check"].startswith("passed")
    counts = result["instructions_per_image"]
    assert len(counts) == 4
    # The inference does the same work for every image, up to data-dependent branches
    # (saturation, ReLU, 64-bit carries): within 1 %.
    assert max(counts) - min(counts) <= 0.01 * min(counts)
    assert result["instructions_per_mac"] == pytest.approx(
        result["instructions_per_inference"] / result["macs_per_inference"])


@needs_cross
@pytest.mark.parametrize("name", ["ffl", "ffcl-adjacent-T3"])
def test_rv32im_block_count_equals_the_per_instruction_count(name):
    # The cheap count (block sizes) must agree exactly with one hook per instruction.
    model = _model(name)
    x_q = _images(model, n=1)
    by_block = measure_rv32im(model, x_q, method="block")["instructions_per_image"]
    by_code = measure_rv32im(model, x_q, method="code")["instructions_per_image"]
    assert by_block == by_code


@needs_cross
def test_rv32im_at_o3_is_bit_exact_too():
    model = _model("ffcl-goodness")
    assert measure_rv32im(model, _images(model, n=2), opt="-O3")["golden_check"].startswith(
        "passed")


def test_generated_c_names_every_spec_step():
    source = generate_c(_model("ffcl-adjacent-T3"))
    for step in ("round_shift", "saturate", "rsqrt", "RSQRT_TABLE", "label_scan",
                 "Feedback F", "Readout", "ties to", "\"One product\"", "first"):
        assert step in source, step
    # Freestanding and integer-only: stdint.h is the one header, no floating-point type.
    assert re.findall(r"#include <([^>]+)>", source) == ["stdint.h"]
    assert not re.search(r"\b(float|double)\b", source)


# -- the check must be able to fail -------------------------------------------------------

def _swap_source(monkeypatch, module, other: IntModel) -> None:
    """Make ``module`` compile ``other``'s C while checking against the real model."""
    real = module.generate_c
    monkeypatch.setattr(module, "generate_c", lambda model: real(other))


@needs_gcc
def test_host_c_of_another_model_is_caught(monkeypatch):
    model = _model("ffdl")
    _swap_source(monkeypatch, host_module, reweighted(model, seed=1))
    with pytest.raises(GoldenMismatch, match=r"host C \(gcc -O2\) disagrees with "
                       r"IntModel.run on image 0: (label|scores\[\d\]) = "):
        measure_host_c(model, _images(model), min_seconds=0.001, repeats=1)


@needs_cross
def test_rv32im_c_of_another_model_is_caught(monkeypatch):
    model = _model("ffcl-last")
    _swap_source(monkeypatch, rv32im_module, reweighted(model, seed=2))
    with pytest.raises(GoldenMismatch, match=r"RV32IM C \(-O2\) disagrees with IntModel.run "
                       r"on image 0"):
        measure_rv32im(model, _images(model, n=1))


def test_one_wrong_score_is_named_with_its_image_and_index():
    model = _model("ffcl-top-T2")
    golden = model.run(_images(model))
    scores, goodness = golden.scores.copy(), golden.goodness.copy()
    check_against_golden("x", golden, labels=golden.labels, scores=scores, goodness=goodness)
    scores[5, 2] += 1
    with pytest.raises(GoldenMismatch, match=r"^x disagrees with IntModel.run on image 5: "
                       r"scores\[2\] = \d+ \(CPU\) != \d+ \(golden\)$"):
        check_against_golden("x", golden, labels=golden.labels, scores=scores)
    goodness[3, 1, 0] -= 1
    with pytest.raises(GoldenMismatch, match=r"image 3: goodness\[1\]\[0\]"):
        check_against_golden("x", golden, labels=golden.labels, scores=golden.scores,
                             goodness=goodness)
    with pytest.raises(GoldenMismatch, match=r"image 0: label = "):
        check_against_golden("x", golden, labels=golden.labels + 1, scores=golden.scores)


# -- missing compilers, bad arguments -----------------------------------------------------

def test_a_missing_cross_compiler_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CrossCompilerMissing,
                       match=r"riscv64-unknown-elf-gcc is not on PATH; .*"
                             r"`apt-get install gcc-riscv64-unknown-elf`"):
        find_compiler(CROSS_COMPILER)
    model = _model("ffdl")
    with pytest.raises(CrossCompilerMissing, match="apt-get install gcc-riscv64-unknown-elf"):
        measure_rv32im(model, _images(model, n=1))


def test_a_missing_host_compiler_is_named():
    model = _model("ffdl")
    with pytest.raises(CompilerMissing, match="the C compiler 'no-such-cc' is not on PATH"):
        measure_host_c(model, _images(model), compiler="no-such-cc")


@pytest.mark.parametrize("kwargs, message", [
    (dict(opt="-O9"), "opt must be one of -O0, -O1, -O2, -O3, -Os, not '-O9'"),
    (dict(min_seconds=0), "min_seconds must be a positive number, not 0"),
    (dict(repeats=0), "repeats must be a positive integer, not 0"),
])
def test_host_arguments_are_validated(kwargs, message):
    model = _model("ffdl")
    with pytest.raises(ValueError, match=f"^{message}$".replace("(", r"\(")):
        measure_host_c(model, _images(model), **kwargs)


def test_images_are_validated():
    model = _model("ffdl")
    with pytest.raises(ValueError, match=r"images must have shape \(n, 9\), not \(2, 8\)"):
        measure_rv32im(model, np.zeros((2, 8), np.int64))
    with pytest.raises(ValueError, match=r"pixels must lie in 0..16, not 0..17"):
        measure_host_c(model, np.eye(1, 9, dtype=np.int64) * 17)
    with pytest.raises(ValueError, match="method must be one of block, code, not 'x'"):
        measure_rv32im(model, _images(model), method="x")


# -- clock and NumPy ----------------------------------------------------------------------

@pytest.mark.parametrize("text, hz, source", [
    ("model name\t: Intel(R) Core(TM) i7-8550U CPU @ 1.80GHz\ncpu MHz\t\t: 3400.1\n",
     1.8e9, '"model name" (@ 1.80GHz)'),
    ("model name\t: Intel(R) Xeon(R) Processor\ncpu MHz\t\t: 2299.998\n", 2299.998e6,
     '"cpu MHz" (2299.998)'),
    ("processor\t: 0\nisa\t\t: rv64imafdc\n", None, 'not available: '),
])
def test_the_nominal_clock_comes_from_cpuinfo(tmp_path, text, hz, source):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    clock = nominal_clock(path)
    assert clock.hz == (pytest.approx(hz) if hz else None)
    assert source in clock.source


def test_no_cpuinfo_gives_no_clock(tmp_path):
    clock = nominal_clock(tmp_path / "missing")
    assert clock.hz is None and clock.source.startswith("not available: cannot read")


def test_numpy_timing_reports_batched_and_single():
    model = _model("ffcl-adjacent-T3")
    result = measure_numpy(model, _images(model), min_seconds=0.01, repeats=2)
    assert 0 < result["ns_per_inference_batched"] < result["ns_per_inference_single"]
    assert "batched" in result["method"] and "single" in result["method"]
    assert "1 thread(s)" in result["blas"] or result["blas"] == "none found by threadpoolctl"
    with pytest.raises(ValueError, match="blas_threads must be a positive integer or None, "
                       "not 0"):
        measure_numpy(model, _images(model), blas_threads=0)


def test_a_refused_model_is_refused_before_compiling():
    model = _model("ffdl")
    bad = dataclasses.replace(model, fmt=dataclasses.replace(model.fmt, rsqrt_frac_bits=4,
                                                            frac_bits=30))
    with pytest.raises(ValueError, match="scaler shift .* is negative"):
        generate_c(bad)


@needs_gcc
def test_the_module_command_prints_every_cpu_row(tmp_path, capsys):
    from ffcl_hw.cpu.__main__ import main
    from golden.intmodelio import save_int_model

    # A small random FFDL model on the digits' shape, saved as a run.
    config = ModelConfig(algo="ffdl", input_size=64, num_classes=10, hidden=(8, 6))
    rng = np.random.default_rng(0)
    model = quantize(config, random_params(config, 0), rng.random((32, 64)), input_max=16)
    save_int_model(tmp_path / "model.int.npz", model, data={"dataset": "digits"})
    assert main([str(tmp_path), "--images", "3", "--rv32-images", "1", "--seconds",
                 "0.01"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["host_c"]) == {"-O2", "-O3"}
    assert report["numpy"]["images"] == 3
    if HAVE_CROSS:
        assert report["rv32im"]["images"] == 1
    else:
        assert "apt-get install gcc-riscv64-unknown-elf" in report["rv32im"]["skipped"]


@needs_gcc
def test_the_compile_cache_reuses_only_an_identical_compile(tmp_path, monkeypatch):
    # The bench's cache of compiled programs (RUN/sim_build/c): the same sources, flags
    # and compiler give the cached program without running the compiler; a changed
    # source, header or flag compiles again.
    import subprocess

    from ffcl_hw.cpu import toolchain

    compiles = []
    real_run = subprocess.run

    def recording(command, *args, **kwargs):
        if "-o" in command:
            compiles.append(command)
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(toolchain.subprocess, "run", recording)
    gcc, cache = find_compiler("gcc"), tmp_path / "cache"

    def build(folder, source, header="#define EXTRA 0\n", flags=("-O2",)):
        folder.mkdir(exist_ok=True)
        (folder / "prog.c").write_text(source)
        (folder / "extra.h").write_text(header)
        before = len(compiles)
        toolchain.compile_c(gcc, [*flags, "-o", "prog", "prog.c"], cwd=folder, cache=cache)
        status = real_run([str(folder / "prog")], check=False).returncode
        return status, len(compiles) - before

    three = '#include "extra.h"\nint main(void) { return 3 + EXTRA; }\n'
    assert build(tmp_path / "a", three) == (3, 1)
    assert build(tmp_path / "b", three) == (3, 0)       # from the cache
    assert build(tmp_path / "c", three.replace("3 +", "4 +")) == (4, 1)
    assert build(tmp_path / "d", three, header="#define EXTRA 2\n") == (5, 1)
    assert build(tmp_path / "e", three, flags=("-O1",)) == (3, 1)
    assert build(tmp_path / "f", three, flags=("-O1",)) == (3, 0)
