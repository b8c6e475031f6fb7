"""Flip-flops that cannot share an iCE40 logic cell with a LUT, by where they are.

    python docs/packing.py RUN/synth/icebreaker-train.failed/ffcl_top.json [DEPTH]

An iCE40 logic cell holds a LUT4 and a flip-flop, and nextpnr packs a flip-flop into its
LUT's cell only when that LUT drives the flip-flop's D input and nothing else. Any other
flip-flop (fed by a flip-flop, a block RAM, a DSP, a carry, a constant, or a LUT with other
loads) takes a logic cell of its own: on the UP5K, where logic cells are what runs out
(docs/training-engine.md, "Logic of the components"), such flip-flops are where a delay
line or a register after a memory costs most. This reads Yosys's JSON netlist of a build
(``ffcl-hw synth`` leaves it in the synth folder, placed or not) and prints those
flip-flops grouped by the first DEPTH parts (default 4) of their output net's
hierarchical name, beside all flip-flops of the group, and what drives them.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def unpaired_flip_flops(netlist: dict, top: str = "ffcl_top",
                        depth: int = 4) -> tuple[Counter, Counter, Counter]:
    """(unpaired flip-flops by group, all flip-flops by group, unpaired by driver type)
    of module ``top`` of a Yosys JSON netlist (``write_json``)."""
    module = netlist["modules"][top]
    cells = module["cells"]
    driver, loads = {}, Counter()
    for cell in cells.values():
        for port, bits in cell["connections"].items():
            output = cell["port_directions"].get(port) == "output"
            for bit in bits:
                if isinstance(bit, str):      # a constant
                    continue
                if output:
                    driver[bit] = cell["type"]
                else:
                    loads[bit] += 1
    names = {}
    for name, net in module["netnames"].items():
        for bit in net["bits"]:
            # Prefer a name a designer gave over one Yosys made up.
            if not isinstance(bit, str) and (bit not in names or names[bit].startswith("$")):
                names[bit] = name
    unpaired, every, drivers = Counter(), Counter(), Counter()
    for cell in cells.values():
        if not cell["type"].startswith("SB_DFF"):
            continue
        q, d = cell["connections"]["Q"][0], cell["connections"]["D"][0]
        group = ".".join(names.get(q, "?").split("[")[0].split(".")[:depth])
        every[group] += 1
        source = "constant" if isinstance(d, str) else driver.get(d, "?")
        if source == "SB_LUT4" and loads[d] == 1:
            continue
        unpaired[group] += 1
        drivers[source + (" with other loads" if source == "SB_LUT4" else "")] += 1
    return unpaired, every, drivers


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.split("\n\n")[1])
    path = Path(sys.argv[1])
    if not path.is_file():
        sys.exit(f"{path}: no such netlist (ffcl-hw synth writes ffcl_top.json into the "
                 f"run's synth folder)")
    depth = int(sys.argv[2]) if len(sys.argv) == 3 else 4
    unpaired, every, drivers = unpaired_flip_flops(json.loads(path.read_text()),
                                                   depth=depth)
    print(f"{sum(unpaired.values()):,} of {sum(every.values()):,} flip-flops take a logic "
          f"cell of their own; their drivers: "
          + ", ".join(f"{kind} {n:,}" for kind, n in drivers.most_common()))
    print("\n| group | unpaired / all flip-flops |\n|---|---|")
    for group, n in unpaired.most_common(30):
        print(f"| `{group}` | {n:,} / {every[group]:,} |")


if __name__ == "__main__":
    main()
