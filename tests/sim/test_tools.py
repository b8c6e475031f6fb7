"""Where the simulation and synthesis tools are found (sim/tools.py)."""

from __future__ import annotations

import sys

import pytest

from sim.tools import ToolMissing, console_script, require_console_script


def _script(folder, name: str):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def beside_and_on_path(tmp_path, monkeypatch):
    """A fake interpreter in ``env/bin`` and a PATH of ``elsewhere``: each holding a
    ``tool``, and one ``only-on-path``."""
    env_bin, elsewhere = tmp_path / "env" / "bin", tmp_path / "elsewhere"
    monkeypatch.setattr(sys, "executable", str(_script(env_bin, "python")))
    monkeypatch.setenv("PATH", str(elsewhere))
    _script(elsewhere, "tool")
    _script(elsewhere, "only-on-path")
    return _script(env_bin, "tool"), elsewhere / "only-on-path"


def test_a_console_script_beside_this_python_wins_over_path(beside_and_on_path):
    # A virtual environment that was not activated is not on PATH; its scripts still count,
    # and before any other install of the same tool.
    beside, on_path = beside_and_on_path
    assert console_script("tool") == str(beside)
    assert console_script("only-on-path") == str(on_path)
    assert console_script("nowhere") is None


def test_a_missing_tool_is_named_with_how_to_install_it(beside_and_on_path):
    assert require_console_script("tool") == str(beside_and_on_path[0])
    with pytest.raises(ToolMissing, match="^nowhere is not installed; `pip install -e .` "
                                          "installs it with ffcl-hw's dependencies$"):
        require_console_script("nowhere")
