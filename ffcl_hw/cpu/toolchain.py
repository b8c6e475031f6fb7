"""Finding and running the C compilers of the CPU baselines, and their errors."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "CROSS_COMPILER",
    "CompileError",
    "CompilerMissing",
    "CrossCompilerMissing",
    "compile_c",
    "compiler_version",
    "find_compiler",
]

#: The RV32IM cross compiler: Debian's ``gcc-riscv64-unknown-elf`` (multilib, rv32im/ilp32).
CROSS_COMPILER = "riscv64-unknown-elf-gcc"

_CROSS_HINT = ("install Debian's bare-metal RISC-V GCC: "
               "`apt-get install gcc-riscv64-unknown-elf`")


class CompilerMissing(RuntimeError):
    """The C compiler a baseline needs is not on PATH; the message says how to get it."""


class CrossCompilerMissing(CompilerMissing):
    """The RV32IM cross compiler is not on PATH; the message says how to get it."""


class CompileError(RuntimeError):
    """The compiler refused the generated source; the message holds its command and output."""


def find_compiler(name: str) -> str:
    """Absolute path of compiler ``name``.

    Raises
    ------
    CrossCompilerMissing
        For the RV32IM cross compiler, with the ``apt-get`` command that installs it.
    CompilerMissing
        For any other compiler.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    if Path(name).name == CROSS_COMPILER:
        raise CrossCompilerMissing(
            f"the RV32IM cross compiler {name} is not on PATH; {_CROSS_HINT}"
        )
    raise CompilerMissing(
        f"the C compiler {name!r} is not on PATH; install one (Debian: `apt-get install gcc`) "
        "or name another with compiler=..."
    )


def compiler_version(path: str) -> str:
    """First line of ``path --version``, e.g. ``gcc (Debian 12.2.0-14+deb12u1) 12.2.0``."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    lines = out.stdout.splitlines()
    return lines[0].strip() if lines else f"{path} (version unknown)"


def compile_c(compiler: str, args: Sequence[str], *, cwd: Path) -> None:
    """Run ``compiler args`` in ``cwd``.

    Raises
    ------
    CompileError
        With the command line and the compiler's output, if it fails.
    """
    command = [compiler, *args]
    out = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise CompileError(
            f"`{' '.join(command)}` failed in {cwd} (exit {out.returncode}):\n"
            f"{out.stderr.strip()}"
        )
