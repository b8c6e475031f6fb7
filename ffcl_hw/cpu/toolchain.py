"""Finding and running the C compilers of the CPU baselines, and their errors."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
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


#: What a compile reads from its folder besides the compiler: sources, headers, linker
#: scripts (the key of :func:`compile_c`'s cache holds every such file of the folder).
_COMPILE_INPUTS = (".c", ".h", ".S", ".s", ".ld", ".inc")
#: The environment variables that change where GCC looks for headers, libraries and its
#: own programs (also in the key).
_COMPILER_ENVIRONMENT = ("CPATH", "C_INCLUDE_PATH", "LIBRARY_PATH", "COMPILER_PATH",
                         "GCC_EXEC_PREFIX")


def _this_cpu() -> str:
    """This machine's architecture and, on Linux, its CPU's model and feature flags (what
    ``-march=native`` compiles for)."""
    lines = [platform.machine()]
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return lines[0]
    for name in ("model name", "flags"):
        lines += [line for line in text.splitlines() if line.startswith(name)][:1]
    return "\n".join(lines)


def _cache_key(compiler: str, args: Sequence[str], cwd: Path) -> str:
    """A digest of everything a compile's output depends on: the compiler's path and its
    full ``--version`` text, this machine's CPU (``-march=native``), GCC's search-path
    variables, the arguments, and the name and bytes of every source, header and linker
    script in ``cwd``."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                             check=False)
    digest = hashlib.sha256()
    search = [f"{name}={os.environ.get(name, '')}" for name in _COMPILER_ENVIRONMENT]
    for part in (str(Path(compiler).resolve()), version.stdout, version.stderr,
                 str(version.returncode), _this_cpu(), *search, *args):
        digest.update(part.encode() + b"\0")
    for path in sorted(cwd.iterdir()):
        if path.is_file() and path.suffix in _COMPILE_INPUTS:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def compile_c(compiler: str, args: Sequence[str], *, cwd: Path,
              cache: str | Path | None = None) -> None:
    """Run ``compiler args`` in ``cwd``.

    With ``cache`` (a folder), the output (``-o NAME``) is taken from
    ``cache/KEY/NAME`` when an identical compile put it there, and put there otherwise.
    ``KEY`` (:func:`_cache_key`) digests the compiler's resolved path and ``--version``,
    this machine's CPU, GCC's search-path variables, the arguments and every source,
    header and linker script in ``cwd``: a change to any of them is a new key, and so a
    new compile. Entries are written aside and renamed, so concurrent processes may
    share a cache; deleting the folder empties it.

    Raises
    ------
    CompileError
        With the command line and the compiler's output, if it fails.
    """
    command = [compiler, *args]
    cwd = Path(cwd)
    output = args[list(args).index("-o") + 1] if cache is not None and "-o" in args else None
    entry = None
    if output is not None:
        entry = Path(cache) / _cache_key(compiler, args, cwd) / output
        if entry.is_file():
            shutil.copy2(entry, cwd / output)
            return
    out = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise CompileError(
            f"`{' '.join(command)}` failed in {cwd} (exit {out.returncode}):\n"
            f"{out.stderr.strip()}"
        )
    if entry is not None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        handle, aside = tempfile.mkstemp(dir=entry.parent, prefix=f".{output}.")
        os.close(handle)
        shutil.copy2(cwd / output, aside)
        os.replace(aside, entry)
