"""The training step's CPU baselines (ffcl_hw.cpu.training) against IntTrainer, bit for bit.

golden/inttrain.c, built freestanding, on RV32IM in Unicorn and on the host; small
random models of the trainer's variants. The checks must be able to fail: seeded
mutants of the C (the rounding words drawn in the wrong order, the forward weights not
refreshed, the block exponent off by one) are each caught and named.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ffcl_hw.cpu import GoldenMismatch
from ffcl_hw.cpu import training as training_module
from ffcl_hw.cpu.toolchain import CROSS_COMPILER
from ffcl_hw.cpu.training import (
    measure_training_host,
    measure_training_rv32im,
    state_layout,
    training_source,
    updates_per_sample,
)
from golden.config import ModelConfig
from golden.inttrain import IntTrainer, TrainRule
from tests.golden.test_inttrain import RULES, D, K, X, _random_model

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on PATH")
needs_cross = pytest.mark.skipif(
    shutil.which(CROSS_COMPILER) is None,
    reason=f"{CROSS_COMPILER} is not on PATH; `apt-get install gcc-riscv64-unknown-elf`")

# (variant of tests/golden/test_inttrain.py, rule): both topologies, T = 1..3, both
# roundings, the last-iteration loss, B_m = 12 with k <= 0.
CASES = [("ffdl", "default"), ("ffcl-adjacent-T3", "nearest"), ("ffcl-top-T2", "last"),
         ("ffdl-3layers", "store12-fast")]

# Seeded mutants of golden/inttrain.c: (name, original text, mutated text).
MUTANTS = [
    ("rounding words: rho drawn before kappa",
     "    for (int c = 0; c < n_cols; c++) w->kappa[c] = word(lfsr);\n"
     "    for (int i = 0; i < N; i++) w->rho[i] = word(lfsr);",
     "    for (int i = 0; i < N; i++) w->rho[i] = word(lfsr);\n"
     "    for (int c = 0; c < n_cols; c++) w->kappa[c] = word(lfsr);"),
    ("forward W not refreshed from the stored W", "            frow[j] = c >> f;\n", "\n"),
    ("block exponent z one too small", "int z = bitlen((u64)largest) - 14;",
     "int z = bitlen((u64)largest) - 15;"),
]


def _rule(name: str) -> TrainRule:
    return TrainRule(epochs=1, seed=9, **{"lr_shift": 4, **RULES[name]})


def _samples(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, X + 1, (n, D)), rng.integers(0, K, n)


@pytest.fixture
def mutate(tmp_path, monkeypatch):
    """Point the baselines at a mutated copy of golden/inttrain.c."""
    def apply(old: str, new: str) -> None:
        source = training_module.RULE_SOURCE.read_text()
        assert source.count(old) == 1, f"mutant anchor not found once: {old!r}"
        path = tmp_path / "inttrain.c"
        path.write_text(source.replace(old, new))
        monkeypatch.setattr(training_module, "RULE_SOURCE", path)
    return apply


@needs_cross
@pytest.mark.parametrize(("name", "rule"), CASES, ids=[f"{n}-{r}" for n, r in CASES])
def test_rv32im_training_step_equals_the_golden_trainer(name, rule, tmp_path):
    model = _random_model(name, seed=11)
    x, y = _samples(3)
    result = measure_training_rv32im(model, _rule(rule), x, y, build_dir=tmp_path)
    assert result["golden_check"].startswith("passed") and result["samples"] == 3
    counts = result["instructions_per_sample_all"]
    assert len(counts) == 3 and min(counts) > result["updates_per_sample"]
    # Built the way the inference baseline is: RV32IM, ilp32, freestanding, -O2.
    assert {"-march=rv32im", "-mabi=ilp32", "-ffreestanding", "-nostdlib", "-O2"} \
        <= set(result["flags"])
    assert (tmp_path / "train.elf").is_file()


@needs_cross
@pytest.mark.parametrize(("name", "old", "new"), MUTANTS, ids=[m[0] for m in MUTANTS])
def test_rv32im_check_catches_a_mutated_step(name, old, new, mutate):
    mutate(old, new)
    x, y = _samples(3)
    with pytest.raises(GoldenMismatch, match=r"after sample \d: (stored|forward) [WbUV]_\d"):
        measure_training_rv32im(_random_model("ffcl-adjacent-T2", seed=11), _rule("default"),
                                x, y)


@needs_cross
def test_rv32im_training_block_count_equals_the_per_instruction_count():
    model, rule = _random_model("ffcl-adjacent-T2", seed=11), _rule("default")
    x, y = _samples(1)
    block = measure_training_rv32im(model, rule, x, y)["instructions_per_sample_all"]
    code = measure_training_rv32im(model, rule, x, y, method="code")
    assert code["instructions_per_sample_all"] == block


@needs_gcc
def test_host_training_step_is_checked_then_timed(tmp_path):
    model, rule = _random_model("ffcl-adjacent-T2", seed=11), _rule("default")
    x, y = _samples(6)
    result = measure_training_host(model, rule, x, y, check_samples=4, min_seconds=0.05,
                                   repeats=2, build_dir=tmp_path)
    assert "after 4 samples" in result["golden_check"]
    assert result["ns_per_sample"] > 0 and result["repeats"] == 2
    assert result["flags"] == ["-std=c11", "-O3", "-march=native"]


@needs_gcc
def test_host_check_catches_a_mutated_step(mutate):
    mutate(*MUTANTS[0][1:])
    x, y = _samples(4)
    with pytest.raises(GoldenMismatch, match="host C training step"):
        measure_training_host(_random_model("ffdl", seed=11), _rule("default"), x, y,
                              min_seconds=0.01, repeats=1)


def test_state_layout_covers_every_array_once():
    trainer = IntTrainer(_random_model("ffcl-top-T2", seed=11), _rule("default"))
    layout = state_layout(trainer)
    # Contiguous, stored and forward of W, b, U per layer and V where feedback arrives.
    assert [a.offset for a in layout] == list(np.cumsum([0] + [a.size for a in layout])[:-1])
    for i, stored in enumerate(trainer.stored):
        names = sorted(a.name for a in layout if a.layer == i and a.kind == "stored")
        assert names == sorted(stored)
        assert names == sorted(a.name for a in layout if a.layer == i and a.kind == "forward")
    source = training_source(trainer, 4)
    assert f"#define STATE_WORDS ({layout[-1].offset + layout[-1].size})" in source
    assert "#define INTTRAIN_FREESTANDING 1" in source


def test_a_mismatch_names_the_array_word_and_generator():
    trainer = IntTrainer(_random_model("ffdl", seed=11), _rule("default"))
    layout = state_layout(trainer)
    expected = training_module._state(trainer, layout)
    w2 = next(a for a in layout if a.kind == "forward" and a.name == "W" and a.layer == 1)
    got = expected.copy()
    got[w2.offset + w2.shape[1] + 2] += 1
    with pytest.raises(GoldenMismatch, match=r"after sample 5: forward W_2\[1\]\[2\] = "):
        training_module._compare("x", 5, expected, got, layout)
    got = expected.copy()
    got[-1] ^= 1
    with pytest.raises(GoldenMismatch, match="the label generator's state"):
        training_module._compare("x", 0, expected, got, layout)


def test_updates_per_sample_counts_every_trained_layer():
    model = _random_model("ffcl-adjacent-T3", seed=11)   # hidden 5, 4, 3
    config = model.config
    per_iteration = sum(n * (n_in + n_src) + 3 * n for n, n_in, n_src in
                        [(5, D, 4), (4, 5, 3), (3, 4, 0)])
    assert config.feedback_source(0) == 1 and config.feedback_source(2) is None
    assert updates_per_sample(model, _rule("default")) == 3 * per_iteration
    assert updates_per_sample(model, _rule("last")) == per_iteration


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(images=np.zeros((2, D + 1), int)), "shape"),
    (dict(images=np.full((2, D), X + 1)), "pixels"),
    (dict(labels=np.array([0, K])), "labels"),
    (dict(check_samples=3), "check_samples"),
])
def test_bad_arguments_are_refused(kwargs, message):
    args = dict(images=np.zeros((2, D), int), labels=np.array([0, 1]), check_samples=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        measure_training_host(_random_model("ffdl", seed=11), _rule("default"),
                              args["images"], args["labels"],
                              check_samples=args["check_samples"])


def test_ffl_is_refused_by_the_trainer():
    from golden.intformat import IntFormat
    from golden.intmodel import IntLayer, IntModel

    config = ModelConfig(algo="ffl", input_size=D, num_classes=K, hidden=(4,))
    model = IntModel(config=config, fmt=IntFormat(frac_bits=6, input_max=X), layers=[
        IntLayer(W=np.zeros((4, D + K), np.int64), w_exp=0, b=np.zeros(4, np.int64))])
    with pytest.raises(ValueError, match="FFL"):
        measure_training_rv32im(model, _rule("default"), np.zeros((1, D), int),
                                np.zeros(1, int))
