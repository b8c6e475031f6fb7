"""The embedded-CPU baseline: the generated C on RV32IM, counted in an instruction-set simulator.

:func:`measure_rv32im` compiles the model's C (ffcl_hw.cpu.csource) with Debian's bare-metal
GCC (``riscv64-unknown-elf-gcc -march=rv32im -mabi=ilp32 -ffreestanding -nostdlib``, plus
the compiler's own libgcc for any 64-bit helper it calls), with the tiny start-up code and
linker script below, and runs ``model_infer`` once per image in Unicorn (QEMU's RISC-V
interpreter as a library). Every image's label, scores and goodness are checked against
``IntModel.run`` bit for bit; the instructions retired by each call are counted.

Counting: a ``UC_HOOK_BLOCK`` callback adds the size of every basic block as it is entered;
RV32IM has no compressed instructions, so a block of b bytes is b / 4 instructions. That
costs one Python call per block instead of one per instruction. ``method="code"`` counts
with a per-instruction ``UC_HOOK_CODE`` instead (slow; the tests use it to check the block
count). Instructions retired are a lower bound on the cycles of any in-order RV32IM core
(one instruction per cycle at best; loads, multiplies and taken branches cost more on most
small cores).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ffcl_hw.cpu.check import check_against_golden, check_images
from ffcl_hw.cpu.csource import c_types, generate_c
from ffcl_hw.cpu.elf32 import Elf32
from ffcl_hw.cpu.toolchain import CROSS_COMPILER, compile_c, compiler_version, find_compiler
from golden.costs import inference_cost
from golden.intmodel import IntModel

__all__ = ["COUNT_METHODS", "CRT0", "HARNESS", "LINKER_SCRIPT", "RV32_FLAGS", "Machine",
           "measure_rv32im"]

#: Flags of every RV32IM build (the optimisation level is added separately).
RV32_FLAGS = ("-march=rv32im", "-mabi=ilp32", "-ffreestanding", "-nostdlib", "-std=c11")

#: How instructions are counted (module docstring).
COUNT_METHODS = ("block", "code")

#: Start-up code: set the stack, run the harness, stop at ``_halt`` (an ebreak loop). The
#: simulator calls ``model_infer`` directly and uses ``_halt`` as the return address.
CRT0 = r"""/* Bare-metal start-up code of the RV32IM baseline (ffcl_hw.cpu.rv32im). */
    .section .text.start
    .globl _start
_start:
    la sp, __stack_top
    call harness_main
    .globl _halt
_halt:
    ebreak
    j _halt
"""

#: One RAM region holds code, constants, data and a 64 KiB stack.
LINKER_SCRIPT = r"""/* Linker script of the RV32IM baseline (ffcl_hw.cpu.rv32im). */
ENTRY(_start)
MEMORY { RAM (rwx) : ORIGIN = 0x80000000, LENGTH = 256M }
SECTIONS
{
    .text : { __text_start = .; *(.text.start) *(.text .text.*) __text_end = .; } > RAM
    .rodata : { *(.rodata .rodata.* .srodata .srodata.*) } > RAM
    .data : { *(.data .data.* .sdata .sdata.*) } > RAM
    .bss : { *(.bss .bss.* .sbss .sbss.* COMMON) } > RAM
    . = ALIGN(16);
    . += 0x10000;
    __stack_top = .;
}
"""

#: The harness: buffers the simulator fills and reads, and a main for a real core.
HARNESS = r"""/* RV32IM harness of the CPU baseline (ffcl_hw.cpu.rv32im). */
#include "model.c"

pixel_t harness_image[MODEL_D];             /* written by the simulator */
int64_t harness_goodness[MODEL_L][MODEL_K];  /* read back by it */
int64_t harness_scores[MODEL_K];
volatile int harness_label;

void harness_main(void)
{
    harness_label = model_infer(harness_image, harness_goodness, harness_scores);
}
"""

_PAGE = 0x1000
# Guards against a program that never returns: no inference of a supported model comes
# near this many seconds in the simulator.
_TIMEOUT_S = 600


def _build(model: IntModel, folder: Path, opt: str, extra: Sequence[str],
           cache_dir: str | Path | None = None) -> tuple[str, list[str], Path]:
    path = find_compiler(CROSS_COMPILER)
    (folder / "model.c").write_text(generate_c(model))
    (folder / "rv32_harness.c").write_text(HARNESS)
    (folder / "crt0.S").write_text(CRT0)
    (folder / "rv32.ld").write_text(LINKER_SCRIPT)
    flags = [*RV32_FLAGS, opt, *extra]
    compile_c(path, [*flags, "-T", "rv32.ld", "-o", "model.elf", "crt0.S", "rv32_harness.c",
                     "-lgcc"], cwd=folder, cache=cache_dir)
    return path, flags, folder / "model.elf"


class Machine:
    """Unicorn with a bare-metal program loaded and an instruction counter.

    :meth:`call` runs one function of the program (by address) to its return, with a
    fresh stack, and counts the instructions it retires (``method``: module docstring).
    """

    def __init__(self, elf: Elf32, method: str, *, timeout_s: float = _TIMEOUT_S):
        import unicorn
        from unicorn import riscv_const

        self.rc = riscv_const
        self.uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)
        low = min(s.address for s in elf.segments) & ~(_PAGE - 1)
        top = elf.symbol("__stack_top")
        high = (max([top, *(s.address + s.size for s in elf.segments)]) + _PAGE - 1) \
            & ~(_PAGE - 1)
        self.uc.mem_map(low, high - low)
        for segment in elf.segments:
            self.uc.mem_write(segment.address, segment.data)
        self.stack_top, self.halt = top, elf.symbol("_halt")
        self.timeout_s = timeout_s
        self.count = 0
        if method == "block":
            self.uc.hook_add(unicorn.UC_HOOK_BLOCK, self._block)
        else:
            self.uc.hook_add(unicorn.UC_HOOK_CODE, self._code)

    def _block(self, uc, address, size, user_data):
        self.count += size

    def _code(self, uc, address, size, user_data):
        self.count += 4

    def call(self, entry: int, a0: int = 0, a1: int = 0, a2: int = 0) -> tuple[int, int]:
        """The function at ``entry`` with arguments a0..a2: its return value (a0) and the
        instructions retired, in bytes (4 per instruction)."""
        rc = self.rc
        for reg, value in ((rc.UC_RISCV_REG_SP, self.stack_top), (rc.UC_RISCV_REG_RA, self.halt),
                           (rc.UC_RISCV_REG_A0, a0), (rc.UC_RISCV_REG_A1, a1),
                           (rc.UC_RISCV_REG_A2, a2)):
            self.uc.reg_write(reg, value)
        self.count = 0
        self.uc.emu_start(entry, self.halt, timeout=int(self.timeout_s * 1_000_000))
        pc = self.uc.reg_read(rc.UC_RISCV_REG_PC)
        if pc != self.halt:
            raise RuntimeError(f"the function at {entry:#x} did not return in the simulator "
                               f"(stopped at pc {pc:#x}, not _halt {self.halt:#x})")
        return self.uc.reg_read(rc.UC_RISCV_REG_A0), self.count


def measure_rv32im(model: IntModel, images: np.ndarray, *, opt: str = "-O2",
                   method: str = "block", flags: Sequence[str] = (),
                   build_dir: str | Path | None = None,
                   cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Run the model's C on RV32IM in Unicorn: check it bit-exact, count instructions.

    Parameters
    ----------
    model : IntModel
        The integer model.
    images : ndarray of int, shape (n, D)
        Integer pixels 0..X; each is one simulated inference (the digits FFCL model, 250k
        instructions, takes about 0.05 s each with ``method="block"``).
    opt : str
        Optimisation level: ``-O2`` (the reference), ``-O3`` or ``-Os``.
    method : {"block", "code"}
        How instructions are counted (module docstring).
    flags : sequence of str
        Extra compiler flags (e.g. ``("-funroll-loops",)``), recorded in the result.
    build_dir : path, optional
        Where to write the sources and model.elf (kept); default a temporary folder.
    cache_dir : path, optional
        Reuse the program an identical compile left there (and leave this one):
        :func:`ffcl_hw.cpu.toolchain.compile_c`. It is still checked and counted.

    Returns
    -------
    dict
        JSON-ready: ``instructions_per_inference`` (the mean), its ``_min`` and ``_max``
        over the images, ``instructions_per_mac``, and how they were obtained.

    Raises
    ------
    ValueError
        For a bad ``opt``, ``method`` or images.
    CrossCompilerMissing
        If ``riscv64-unknown-elf-gcc`` is not on PATH; the message says how to install it.
    CompileError
        If the compiler refuses the source.
    GoldenMismatch
        If any image's label, score or goodness differs from ``IntModel.run``.
    """
    if opt not in ("-O2", "-O3", "-Os"):
        raise ValueError(f"opt must be one of -O2, -O3, -Os, not {opt!r}")
    if method not in COUNT_METHODS:
        raise ValueError(f"method must be one of {', '.join(COUNT_METHODS)}, not {method!r}")
    x_q = check_images(model, images)
    golden = model.run(x_q)
    config = model.config
    L, K, n = config.num_layers, config.num_classes, x_q.shape[0]
    pixel = np.uint8 if c_types(model).pixel == "uint8_t" else np.uint16
    import unicorn  # noqa: F401 (fail early, before compiling, if it is missing)

    with tempfile.TemporaryDirectory(prefix="ffcl-rv32im-") as tmp:
        folder = Path(build_dir) if build_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path, flags, elf_path = _build(model, folder, opt, [str(f) for f in flags],
                                       cache_dir)
        elf = Elf32(elf_path)
    if elf.machine != 243:
        raise RuntimeError(f"{elf_path} is not a RISC-V program (e_machine {elf.machine})")
    text_bytes = elf.symbol("__text_end") - elf.symbol("__text_start")
    machine = Machine(elf, method)
    entry = elf.symbol("model_infer")
    image_at = elf.symbol("harness_image")
    goodness_at, scores_at = elf.symbol("harness_goodness"), elf.symbol("harness_scores")
    labels = np.zeros(n, dtype=np.int64)
    scores = np.zeros((n, K), dtype=np.int64)
    goodness = np.zeros((n, L, K), dtype=np.int64)
    counts = []
    start = time.perf_counter()
    for i in range(n):
        machine.uc.mem_write(image_at, x_q[i].astype(pixel).tobytes())
        label, count = machine.call(entry, image_at, goodness_at, scores_at)
        labels[i] = np.int32(np.uint32(label))
        goodness[i] = np.frombuffer(machine.uc.mem_read(goodness_at, 8 * L * K),
                                    dtype="<i8").reshape(L, K)
        scores[i] = np.frombuffer(machine.uc.mem_read(scores_at, 8 * K), dtype="<i8")
        counts.append(count // 4)
    seconds = time.perf_counter() - start
    check_against_golden(f"RV32IM C ({opt})", golden, labels=labels, scores=scores,
                         goodness=goodness)
    import unicorn as uc_module

    cost = inference_cost(config)
    mean = statistics.fmean(counts)
    return {
        "what": "embedded CPU, generated C on RV32IM in an instruction-set simulator",
        "compiler": compiler_version(path),
        "compiler_path": path,
        "flags": [*flags, "-T", "rv32.ld", "crt0.S", "-lgcc"],
        "opt": opt,
        "simulator": f"unicorn {uc_module.__version__} (UC_ARCH_RISCV, UC_MODE_RISCV32)",
        "method": ("instructions retired by one call of model_infer per image, counted "
                   + ("per basic block (UC_HOOK_BLOCK, block bytes / 4; RV32IM has no "
                      "compressed instructions)" if method == "block"
                      else "per instruction (UC_HOOK_CODE)")),
        "golden_check": f"passed: label, scores and per-layer goodness of {n} images "
                        "bit-exact against IntModel.run",
        "images": n,
        "instructions_per_inference": mean,
        "instructions_per_inference_min": min(counts),
        "instructions_per_inference_max": max(counts),
        "instructions_per_image": counts,
        "macs_per_inference": cost.macs,
        "instructions_per_mac": mean / cost.macs,
        "code_bytes": text_bytes,
        "simulation_seconds": seconds,
    }
