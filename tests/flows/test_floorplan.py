"""The ECP5 lane floorplan: sites that exist, side by side, and the netlist cells it pins."""

from __future__ import annotations

import json

import pytest

from ffcl_hw.flows.floorplan import ECP5_GRIDS, apply_floorplan, plan_lanes
from rtl.board import BOARDS


def _x(bel: str) -> int:
    return int(bel.split("/")[0][1:])


def _y(bel: str) -> int:
    return int(bel.split("/")[1][1:])


@pytest.mark.parametrize("board", ["ulx3s-25f", "ulx3s-45f", "ulx3s-85f"])
def test_grids_hold_every_multiplier_and_block_ram_of_the_part(board):
    info = BOARDS[board]
    grid = ECP5_GRIDS[info.nextpnr_device]
    blocks = range(len(grid.blocks))
    mults = [s[2] for b in blocks for s in grid.multipliers(b)]
    rams = [s[2] for b in blocks for s in grid.block_rams(b)]
    assert len(set(mults)) == len(mults) == info.multipliers
    assert len(set(rams)) == len(rams) == info.bram_bits // (18 * 1024)


@pytest.mark.parametrize(("device", "lanes", "rams", "placed"), [
    # The 85F build: 86 lanes of two 4096 x 4 slices each, 8 lanes a block (two
    # multiplier rows, four block RAM rows): 11 of the 13 blocks.
    ("85k", 86, 2, 86),
    # Digits on the 25F: 8 lanes with one 2048 x 9 slice each, 4 a block.
    ("25k", 8, 1, 8),
    ("45k", 40, 2, 40),
    # Lanes without block RAM slices (a small ROM in LUTs) still get multipliers.
    ("25k", 28, 0, 28),
    # More lanes than the part's multipliers: the rest are left to the placer.
    ("25k", 30, 0, 28),
    # Only as many lanes as there are block RAMs for: 56 / 2.
    ("25k", 28, 2, 28),
    ("25k", 28, 3, 14),
])
def test_plan_puts_each_lane_beside_its_block_rams(device, lanes, rams, placed):
    grid = ECP5_GRIDS[device]
    plan = plan_lanes(grid, lanes=lanes, rams_per_lane=[rams] * lanes)
    assert len(plan) == placed
    sites = [p.multiplier for p in plan] + [r for p in plan for r in p.block_rams]
    assert len(set(sites)) == len(sites)
    for lane in plan:
        assert len(lane.block_rams) == rams
        # The lane's block RAMs are in its multiplier's block column.
        base = max(b for b in grid.blocks if b <= _x(lane.multiplier))
        assert all(base <= _x(r) <= base + 6 for r in lane.block_rams)
    if device == "85k":
        # The middle block is left to the rest of the core.
        middle = grid.blocks[len(grid.blocks) // 2]
        assert all(not middle <= _x(s) <= middle + 6 for s in sites)
        # Lanes sit in the two multiplier rows between block RAM rows, each next to the
        # block RAM rows above and below it.
        assert {_y(p.multiplier) for p in plan} == {34, 58}
        for lane in plan:
            assert all(abs(_y(r) - _y(lane.multiplier)) <= 24 for r in lane.block_rams)
        # Consecutive lanes (a finished sum shifts from lane p + 1 into lane p) are
        # neighbours but for the step from the left half to the right one.
        far = [p for p in range(placed - 1)
               if abs(_x(plan[p].multiplier) - _x(plan[p + 1].multiplier)) > 9]
        assert len(far) <= 1


def test_plan_wants_one_entry_per_lane():
    with pytest.raises(ValueError, match="one entry per lane \\(3\\), not 2"):
        plan_lanes(ECP5_GRIDS["25k"], lanes=3, rams_per_lane=[1, 1])


def _netlist(lanes: int, slices: int) -> dict:
    """A Yosys JSON netlist with what the floorplan looks for: per lane a weight register
    net and a multiplier reading it, per slice a DP16KD, plus cells it must not touch."""
    netnames, cells = {}, {}
    for p in range(lanes):
        bits = list(range(100 + 10 * p, 108 + 10 * p))
        netnames[f"design.core.lanes.w_{p}"] = {"bits": bits}
        cells[f"mul{p}"] = {"type": "MULT18X18D", "attributes": {},
                            "connections": {"A0": [bits[0]], "B0": [7], "P0": [9]}}
    for i in range(slices):
        cells[f"design.core.weight_rom.slice_{i}.0.0"] = {"type": "DP16KD", "attributes": {},
                                                          "connections": {}}
    cells["scaler_mul"] = {"type": "MULT18X18D", "attributes": {},
                           "connections": {"A0": [3], "B0": [4]}}
    cells["design.core.pre_mem.0.0"] = {"type": "DP16KD", "attributes": {}, "connections": {}}
    return {"modules": {"top": {"cells": cells, "netnames": netnames}}}


def test_apply_pins_the_lane_cells_and_nothing_else(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(json.dumps(_netlist(lanes=5, slices=10)))
    pinned = apply_floorplan(path, grid=ECP5_GRIDS["25k"], lanes=5, weight_bits=8,
                             slices=[4] * 10, top="top")
    assert pinned == {"lanes": 5, "multipliers": 5, "block_rams": 10}
    cells = json.loads(path.read_text())["modules"]["top"]["cells"]
    plan = plan_lanes(ECP5_GRIDS["25k"], lanes=5, rams_per_lane=[2] * 5)
    for p in range(5):
        assert cells[f"mul{p}"]["attributes"]["BEL"] == plan[p].multiplier
        # Slices 2p and 2p + 1 hold lane p's two nibbles.
        got = {cells[f"design.core.weight_rom.slice_{i}.0.0"]["attributes"]["BEL"]
               for i in (2 * p, 2 * p + 1)}
        assert got == set(plan[p].block_rams)
    assert "BEL" not in cells["scaler_mul"]["attributes"]
    assert "BEL" not in cells["design.core.pre_mem.0.0"]["attributes"]
