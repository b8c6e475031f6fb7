"""``verilator --lint-only -Wall`` on the exported Verilog, with documented waivers.

docs/toolchain.md lists four waivers that Amaranth's output needs in general. A design with an
Amaranth FSM needs two more, both about how Amaranth lowers its own constructs, never about
this design's arithmetic:

- CASEINCOMPLETE: every ``Switch``/FSM becomes a ``casez`` per driven signal that lists
  only the states driving it (the others keep the signal's default).
- WIDTHTRUNC on each FSM's own "state == 0" test, which Amaranth emits as a logical NOT of
  the multi-bit state register, ``! (* src = ".../amaranth/hdl/_dsl.py:N" *) name_state``:
  waived, by a Verilator control file, on exactly those lines (found by that ``src``
  attribute, which only Amaranth's FSM lowering writes), so that any other truncation,
  the design's own tests for 0 included, is still reported. Verilog exported without
  ``src`` attributes gets no waiver.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from sim.tools import verilator_env

__all__ = ["WAIVERS", "fsm_zero_test_lines", "lint_verilog"]

#: The -Wno options: docs/toolchain.md's four, then CASEINCOMPLETE (see the module docstring).
WAIVERS = ("-Wno-UNUSEDSIGNAL", "-Wno-WIDTHEXPAND", "-Wno-PROCASSINIT", "-Wno-DECLFILENAME",
           "-Wno-CASEINCOMPLETE")

#: An FSM's test for its state 0, as Amaranth writes it: a logical NOT of the state
#: register (named ``<fsm name>_state``) whose source location is Amaranth's FSM builder.
_FSM_ZERO_TEST = re.compile(
    r'= ! \(\* src = "[^"]*amaranth/hdl/_dsl\.py:\d+" \*\) \\?[\w$.]*_state ?;')


def fsm_zero_test_lines(verilog: str) -> list[int]:
    """The (1-based) lines of ``verilog`` where an Amaranth FSM tests its state for 0."""
    return [number for number, line in enumerate(verilog.splitlines(), start=1)
            if _FSM_ZERO_TEST.search(line)]


def lint_verilog(path: Path) -> tuple[int, str]:
    """Lint ``path``; returns Verilator's exit status and its messages."""
    path = Path(path)
    waived = "".join(f'lint_off -rule WIDTHTRUNC -file "*{path.name}" -lines {line}\n'
                     for line in fsm_zero_test_lines(path.read_text()))
    with tempfile.TemporaryDirectory() as tmp:
        control = Path(tmp) / "waivers.vlt"
        control.write_text("`verilator_config\n" + waived)
        done = subprocess.run(
            ["verilator", "--lint-only", "-Wall", *WAIVERS, str(control), str(path)],
            capture_output=True, text=True, env=verilator_env(), check=False)
    return done.returncode, done.stdout + done.stderr
