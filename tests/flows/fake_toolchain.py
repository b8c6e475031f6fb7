"""A stand-in for the YoWASP tools, so the synthesis flow's steps around them (the seed
sweep, the kept seed, the report) are tested in a second rather than minutes.

Run as ``python fake_toolchain.py TOOL ARGS...`` through the environment variables the
flow reads (YOSYS, NEXTPNR_ICE40, ICEPACK, ...): Yosys writes an empty netlist, nextpnr
a report whose Fmax is :data:`FMAX` of its ``--seed`` and a text bitstream naming the
seed, the packer copies that text into the bitstream.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: Fmax (MHz) nextpnr reports per seed: the best seed is neither the first nor the last.
FMAX = {1: 25.0, 2: 33.5, 3: 31.0, 4: 29.0, 5: 18.0, 6: 19.0}


def _value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def main(tool: str, args: list[str]) -> int:
    if args in (["-V"], ["--version"]):
        print(f"fake {tool}")
        return 0
    if tool == "yosys":
        netlist = {"modules": {"ffcl_top": {"cells": {"m": {"type": "SB_MAC16"}},
                                            "netnames": {}}}}
        Path("ffcl_top.json").write_text(json.dumps(netlist))
        return 0
    if tool.startswith("nextpnr"):
        seed = int(_value(args, "--seed"))
        if seed < 0:
            print("fake nextpnr: no placement for a negative seed")
            return 1
        assert Path(_value(args, "--json")).is_file()
        report = {"fmax": {"clk": {"achieved": FMAX[seed], "constraint": 30.0}},
                  "utilization": {"ICESTORM_LC": {"used": 100, "available": 5280}},
                  "critical_paths": []}
        Path(_value(args, "--report")).write_text(json.dumps(report))
        out = _value(args, "--asc" if "--asc" in args else "--textcfg")
        Path(out).write_text(f"placed at seed {seed}\n")
        return 0
    # The packers: icepack IN OUT, ecppack --input IN --bit OUT.
    source, target = (args[-2], args[-1]) if tool == "icepack" else (
        _value(args, "--input"), _value(args, "--bit"))
    Path(target).write_text(Path(source).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
