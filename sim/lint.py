"""``verilator --lint-only -Wall`` on the exported Verilog, with documented waivers.

docs/toolchain.md lists four waivers that Amaranth's output needs in general. A design with an
Amaranth FSM needs two more, both about how Amaranth lowers its own constructs, never about
this design's arithmetic:

- CASEINCOMPLETE: every ``Switch``/FSM becomes a ``casez`` per driven signal that lists
  only the states driving it (the others keep the signal's default).
- WIDTHTRUNC on the FSM's own "state == 0" test, which Amaranth emits as a logical NOT of
  the multi-bit state register: waived for that register only, by a Verilator control
  file, so that any other truncation is still reported.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from sim.tools import verilator_env

__all__ = ["WAIVERS", "lint_verilog"]

#: The -Wno options: docs/toolchain.md's four, then CASEINCOMPLETE (see the module docstring).
WAIVERS = ("-Wno-UNUSEDSIGNAL", "-Wno-WIDTHEXPAND", "-Wno-PROCASSINIT", "-Wno-DECLFILENAME",
           "-Wno-CASEINCOMPLETE")

_CONTROL = """`verilator_config
lint_off -rule WIDTHTRUNC -file "*" -match "*LOGNOT*VARREF '{state}'*"
"""


def lint_verilog(path: Path, *, fsm_state: str = "sequencer_state") -> tuple[int, str]:
    """Lint ``path``; returns Verilator's exit status and its messages."""
    with tempfile.TemporaryDirectory() as tmp:
        control = Path(tmp) / "waivers.vlt"
        control.write_text(_CONTROL.format(state=fsm_state))
        done = subprocess.run(
            ["verilator", "--lint-only", "-Wall", *WAIVERS, str(control), str(path)],
            capture_output=True, text=True, env=verilator_env(), check=False)
    return done.returncode, done.stdout + done.stderr
