"""The sharing of Verilator's run-time objects between builds (sim/runner.py), on a
stand-in for cocotb's Verilator runner and makefiles written here: what a build copies,
what it keeps, and what it refuses. Every real Verilator build of the suite goes through
the same code (sim.runner.build_design)."""

from __future__ import annotations

import pytest

from sim.runner import RUNTIME_CACHE_VARIABLE, SharedRuntime, verilator_runtime_cache

VTOP_MK = """\
default: {top}

VERILATOR_ROOT = /opt/verilator
VM_SC = 0
VM_USER_CFLAGS = \\
{cflags}
VM_USER_DIR = \\
  . \\
  {depth}/cocotb/share/lib/verilator \\

verilator.o: /cocotb/share/lib/verilator/verilator.cpp
\t$(CXX) $(CXXFLAGS) -c -o $@ $<

{top}: $(VK_USER_OBJS) $(VK_GLOBAL_OBJS) $(VM_PREFIX)__ALL.a
\t$(LINK) $^ -o $@
"""
CLASSES_MK = """\
VM_PARALLEL_BUILDS = {parallel}
VM_TRACE = {trace}
VM_CLASSES_FAST += \\
  Vtop \\
  {design} \\

VM_GLOBAL_FAST += \\
  verilated \\
  verilated_vpi \\
{more_globals}
"""


class StandIn:
    """The part of ``cocotb_tools.runner.Verilator`` that SharedRuntime uses."""

    def __init__(self, build_dir, top: str, options: list[str]) -> None:
        self.command = ["verilator", "-cc", "-Mdir", str(build_dir), "--top-module", top,
                        "-o", top, *options, f"/src/{top}.v"]
        self.build_dir = build_dir

    def _build_command(self) -> list[list[str]]:
        return [self.command, ["make", "-C", str(self.build_dir), "-f", "Vtop.mk"]]


def build(tmp_path, name: str, *, top: str = "ffcl_core", options=(), cflags: str = "",
          trace: int = 0, more_globals: str = "", build: bool = True):
    """Attach SharedRuntime to a stand-in runner and "build": write the makefiles and
    (unless the cache gave them) the run-time objects, named after the build."""
    build_dir = tmp_path / name
    build_dir.mkdir(exist_ok=True)
    runner = StandIn(build_dir, top, list(options))
    shared = SharedRuntime(tmp_path / "cache", build_dir,
                           {str(build_dir), top, f"/src/{top}.v"})
    shared.attach(runner)
    commands = runner._build_command()
    (build_dir / "Vtop.mk").write_text(VTOP_MK.format(top=top, cflags=cflags,
                                                       depth="../" * len(name)))
    (build_dir / "Vtop_classes.mk").write_text(CLASSES_MK.format(
        parallel=len(name) % 2, trace=trace, design=f"Vtop_{name}", more_globals=more_globals))
    if build and not shared.reused:
        for obj in ("verilated", "verilated_vpi"):
            (build_dir / f"{obj}.o").write_text(f"{obj} of {name}")
    return shared, commands


def test_a_second_design_copies_the_objects_the_first_kept(tmp_path):
    first, commands = build(tmp_path, "a")
    assert not first.reused and len(commands) == 2
    first.keep()
    kept = sorted(p.name for p in first.folder.iterdir())
    assert kept == ["flags.txt", "verilated.o", "verilated_vpi.o"]
    # Another design, top, folder depth and split: the same objects, copied between
    # Verilator and make.
    second, commands = build(tmp_path, "bb", top="uart_loop")
    assert second.reused and second.folder == first.folder
    assert commands[1] == ["cp", str(first.folder / "verilated.o"),
                           str(first.folder / "verilated_vpi.o"), str(tmp_path / "bb")]
    assert commands[0][0] == "verilator" and commands[2][0] == "make"
    second.keep()
    assert (first.folder / "verilated.o").read_text() == "verilated of a"


def test_a_folder_that_has_its_objects_keeps_them(tmp_path):
    build(tmp_path, "a")[0].keep()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "verilated.o").write_text("built before")
    again, commands = build(tmp_path, "b", build=False)
    assert not again.reused and len(commands) == 2


@pytest.mark.parametrize("other", [
    {"options": ["--trace"]},
    {"options": ["-CFLAGS", "-O0"]},
])
def test_other_options_get_other_objects(tmp_path, other):
    first = build(tmp_path, "a")[0]
    first.keep()
    second, commands = build(tmp_path, "b", **other)
    assert second.folder != first.folder and not second.reused and len(commands) == 2


@pytest.mark.parametrize("other", [
    {"cflags": "  -O0 \\"},
    {"trace": 1},
    {"more_globals": "  verilated_fst_c \\"},
])
def test_objects_built_with_other_flags_are_refused(tmp_path, other):
    # Flags the options did not predict (the makefiles are the word on them): the build
    # that took the kept objects is refused after the fact.
    build(tmp_path, "a")[0].keep()
    second = build(tmp_path, "b", **other)[0]
    assert second.reused
    with pytest.raises(RuntimeError, match="other flags or run-time files than the shared "
                                           "Verilator run-time objects in .*; delete that "
                                           "folder and build again"):
        second.keep()


def test_the_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(RUNTIME_CACHE_VARIABLE, str(tmp_path / "here"))
    assert verilator_runtime_cache() == tmp_path / "here"
    monkeypatch.setenv(RUNTIME_CACHE_VARIABLE, "")
    assert verilator_runtime_cache() is None
    monkeypatch.delenv(RUNTIME_CACHE_VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert verilator_runtime_cache() == tmp_path / "xdg" / "ffcl-hw" / "verilator-runtime"
