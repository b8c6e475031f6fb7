"""Floorplan of the MAC lane array on ECP5: each lane's multiplier and weight slices in
one block column, next to each other.

Left to nextpnr's placer, the lanes of the ULX3S-85F build (86 lanes, 172 weight slices)
have their multipliers spread over the whole width of the DSP rows while their
accumulators stay in a cluster on one side: the worst path runs from a lane group's
input register to a multiplier 50 columns away and back to the lane's product register
(15.8 ns, 63.3 MHz), and router2 needs seven and a half minutes for the congestion around
that cluster. Given each lane's sites, the placer puts the lane's registers beside them:
the same build (seed 1) routes in 80 s and reaches 80.0 MHz, and its slowest path is a
block RAM read into the operand register (``ffcl-hw synth`` reports it).

The ECP5 parts repeat one pattern along their width: a *block* of 9 columns holds, in
each DSP row, 4 MULT18X18D (columns +0, +1, +4, +5 of the block) and, in each block RAM
row, 4 DP16KD (columns +0, +2, +4, +6). :data:`ECP5_GRIDS` lists each part's block
columns and rows, read off nextpnr's placement of a design that uses every multiplier
and block RAM of the part (the site counts match :data:`rtl.board.BOARDS`).

The plan leaves the middle block free for the rest of the core (its control, scaler,
label scan and memories sit there, between the lanes' halves) and fills the blocks to
its left from the middle outwards, then the blocks to its right from the edge inwards,
so that lane p + 1, whose finished sum shifts into lane p's register, is almost always a
neighbour. Within a block, each multiplier takes the block RAM sites nearest to it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ECP5_GRIDS", "FLOORPLAN_MIN_LANES", "Grid", "LaneSites", "apply_floorplan",
           "plan_lanes", "wants_floorplan"]

#: Lane count from which a build is floorplanned unless told otherwise. Measured at seed 1:
#: the ULX3S-85F's 86 lanes reach 63.3 MHz placed freely and 80.0 MHz pinned, the
#: ULX3S-25F's 8 lanes 75.6 MHz placed freely and 74.0 pinned (an array within two block
#: columns gains nothing, and the other units lose the sites next to it).
FLOORPLAN_MIN_LANES = 32


def wants_floorplan(lanes: int) -> bool:
    """Whether a build of ``lanes`` MAC lanes is floorplanned by default."""
    return lanes >= FLOORPLAN_MIN_LANES


@dataclass(frozen=True)
class Grid:
    """The block columns and the rows of hard multipliers and block RAMs of one part.

    Attributes
    ----------
    blocks : tuple of int
        X of each block's first column, left to right.
    dsp_rows, bram_rows : tuple of int
        Y of the rows of MULT18X18D and of DP16KD.
    """

    blocks: tuple[int, ...]
    dsp_rows: tuple[int, ...]
    bram_rows: tuple[int, ...]

    #: Column offset in a block -> MULT18X18D site suffix, and the same for DP16KD.
    MULT_SITES = ((0, "MULT18_0"), (1, "MULT18_1"), (4, "MULT18_4"), (5, "MULT18_5"))
    BRAM_SITES = ((0, "EBR0"), (2, "EBR1"), (4, "EBR2"), (6, "EBR3"))

    def multipliers(self, block: int) -> list[tuple[int, int, str]]:
        """(x, y, BEL) of the block's MULT18X18D, row by row."""
        base = self.blocks[block]
        return [(base + dx, y, f"X{base + dx}/Y{y}/{name}")
                for y in self.dsp_rows for dx, name in self.MULT_SITES]

    def block_rams(self, block: int) -> list[tuple[int, int, str]]:
        """(x, y, BEL) of the block's DP16KD, row by row."""
        base = self.blocks[block]
        return [(base + dx, y, f"X{base + dx}/Y{y}/{name}")
                for y in self.bram_rows for dx, name in self.BRAM_SITES]


#: nextpnr's sites of the ULX3S parts (LFE5U-25F, -45F, -85F in CABGA381).
ECP5_GRIDS = {
    "25k": Grid(blocks=(4, 13, 22, 33, 42, 51, 60), dsp_rows=(13,), bram_rows=(25, 37)),
    "45k": Grid(blocks=(4, 13, 22, 31, 42, 51, 60, 69, 78), dsp_rows=(22, 46),
                bram_rows=(10, 34, 58)),
    "85k": Grid(blocks=(4, 13, 22, 31, 40, 49, 58, 69, 78, 87, 96, 105, 114),
                dsp_rows=(10, 34, 58), bram_rows=(22, 46, 70, 82)),
}


@dataclass(frozen=True)
class LaneSites:
    """Where one lane goes: its multiplier and its weight slices' block RAMs."""

    multiplier: str
    block_rams: tuple[str, ...]


def plan_lanes(grid: Grid, *, lanes: int, rams_per_lane: list[int]) -> list[LaneSites]:
    """Sites for the first lanes of the array, in lane order.

    Parameters
    ----------
    grid : Grid
        The part.
    lanes : int
        P.
    rams_per_lane : list of int
        DP16KD blocks each lane's weight slices take (``lanes`` entries).

    Returns
    -------
    list of LaneSites
        One per lane, for as many lanes as the part's blocks can hold with their block
        RAMs beside them (the middle block last); lanes beyond that are left to the
        placer.
    """
    if len(rams_per_lane) != lanes:
        raise ValueError(f"rams_per_lane must have one entry per lane ({lanes}), not "
                         f"{len(rams_per_lane)}")
    middle = len(grid.blocks) // 2
    order = [*range(middle - 1, -1, -1), *range(len(grid.blocks) - 1, middle, -1), middle]
    plan: list[LaneSites] = []
    for block in order:
        rams = grid.block_rams(block)
        need = max(rams_per_lane[len(plan):] or [0])

        def distance(y: int, need: int = need) -> int:
            """How far a multiplier row is from the block RAM rows its lane needs."""
            return sum(sorted(abs(y - ry) for ry in grid.bram_rows)[:max(1, need)])

        # The rows closest to their block RAMs first (on the 85F the two between block
        # RAM rows), each in turn left to right and right to left, so consecutive lanes
        # are neighbours.
        rows = sorted(grid.dsp_rows, key=lambda y: (distance(y), y))
        sites = grid.multipliers(block)
        for turn, row in enumerate(rows):
            in_row = sorted((s for s in sites if s[1] == row), key=lambda s: s[0],
                            reverse=bool(turn % 2))
            for x, y, bel in in_row:
                if len(plan) == lanes:
                    return plan
                count = rams_per_lane[len(plan)]
                if count > len(rams):
                    break
                rams.sort(key=lambda site, x=x, y=y: (abs(site[1] - y) + abs(site[0] - x),
                                                      site[1], site[0]))
                taken, rams = rams[:count], rams[count:]
                plan.append(LaneSites(multiplier=bel,
                                      block_rams=tuple(site[2] for site in taken)))
    return plan


_LANE_WEIGHT = re.compile(r"(?:^|\.)lanes\.w_(\d+)$")
_WEIGHT_SLICE = re.compile(r"(?:^|\.)weight_rom\.slice_(\d+)\.")


def apply_floorplan(netlist: Path, *, grid: Grid, lanes: int, weight_bits: int,
                    slices: list[int], top: str) -> dict[str, int]:
    """Pin the lane array of a Yosys JSON netlist to :func:`plan_lanes`' sites.

    A lane's multiplier is the MULT18X18D whose inputs come from that lane's weight
    register (``...lanes.w_P``); its slices are the DP16KD of the weight store's slices
    (``...weight_rom.slice_I``) whose middle bit is one of the lane's weight bits. Each
    gets nextpnr's ``BEL`` attribute; the netlist is rewritten in place.

    Parameters
    ----------
    netlist : Path
        The netlist Yosys wrote (``write_json``).
    grid : Grid
        The part.
    lanes, weight_bits : int
        P and the width of one weight.
    slices : list of int
        Widths of the weight store's slices, in order (:func:`rtl.weight_store.bram_slices`).
    top : str
        The top module's name.

    Returns
    -------
    dict
        ``lanes`` (lanes placed), ``multipliers`` and ``block_rams`` (cells pinned).
    """
    design = json.loads(Path(netlist).read_text())
    cells = design["modules"][top]["cells"]
    bit_lane: dict[int, int] = {}
    for name, net in design["modules"][top]["netnames"].items():
        found = _LANE_WEIGHT.search(name)
        if found:
            bit_lane.update({bit: int(found[1]) for bit in net["bits"] if isinstance(bit, int)})
    slice_lane = []
    low = 0
    for bits in slices:
        slice_lane.append(min(lanes - 1, (low + bits // 2) // weight_bits))
        low += bits
    multipliers: dict[int, list[str]] = {}
    rams: dict[int, list[str]] = {}
    for name, cell in cells.items():
        if cell["type"] == "MULT18X18D":
            owners = {bit_lane[bit] for port, bits in cell["connections"].items()
                      if port[0] in "AB" for bit in bits if bit in bit_lane}
            if len(owners) == 1:
                multipliers.setdefault(owners.pop(), []).append(name)
        elif cell["type"] == "DP16KD":
            found = _WEIGHT_SLICE.search(name)
            if found and int(found[1]) < len(slice_lane):
                rams.setdefault(slice_lane[int(found[1])], []).append(name)
    plan = plan_lanes(grid, lanes=lanes,
                      rams_per_lane=[len(rams.get(p, [])) for p in range(lanes)])
    pinned = {"lanes": 0, "multipliers": 0, "block_rams": 0}
    for p, sites in enumerate(plan):
        # A lane of one multiplier only: wider products are left to the placer.
        if len(multipliers.get(p, [])) != 1:
            continue
        cells[multipliers[p][0]]["attributes"]["BEL"] = sites.multiplier
        for name, bel in zip(sorted(rams.get(p, [])), sites.block_rams, strict=True):
            cells[name]["attributes"]["BEL"] = bel
        pinned["lanes"] += 1
        pinned["multipliers"] += 1
        pinned["block_rams"] += len(sites.block_rams)
    Path(netlist).write_text(json.dumps(design))
    return pinned
