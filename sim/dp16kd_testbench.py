"""cocotb: this project's DP16KD model (sim/cells/dp16kd.v) against a reference of
Lattice's documented behaviour.

Driven through ``dp16kd_probe`` (:func:`sim.netlist.dp16kd_probe_verilog`), one clock for
both ports. FFCL_DP16KD holds the configuration the probe was built with (JSON: per port
``width`` 18 or 9, or 36 on both, ``regmode``, ``writemode``, ``csdecode``;
``resetmode``; ``init``, the first 32 words of 18 bits). Seeded random cycles
(FFCL_SEED, logged) read, write with byte enables, deselect, disable and reset both
ports; each port's output is compared with :class:`Reference` after every clock edge.
The two ports never touch the same word in one cycle (the guide leaves such collisions
undefined).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer

CYCLES = 600
#: Words the random addresses cover: the initialised ones and a few beyond.
WORDS = 40


class Port:
    """One port's reference: its configuration, output latch and output register."""

    def __init__(self, config: dict) -> None:
        self.width = config["width"]
        self.regmode = config["regmode"]
        self.writemode = config["writemode"]
        self.csdecode = int(config["csdecode"][2:], 2)
        self.latch = 0
        self.out = 0

    def word(self, ad: int) -> int:
        return ad >> 4

    def output(self) -> int:
        return self.out if self.regmode == "OUTREG" else self.latch


class Reference:
    """The block's 1,024 words of 18 bits and both ports, clocked together.

    Both ports 36 bits wide is the pseudo dual-port mode: A writes word AD[13:5] (18-bit
    words 2r and 2r + 1, from DIA and DIB) with byte enables AD[3:0], B reads it (DOA the
    low half, DOB the high one).
    """

    def __init__(self, config: dict) -> None:
        self.mem = [0] * 1024
        self.mem[:len(config["init"])] = config["init"]
        self.ports = {x: Port(config[x]) for x in "ab"}
        self.resetmode = config["resetmode"]
        self.wide = config["a"]["width"] == config["b"]["width"] == 36
        self.wide_latch = self.wide_reg = 0

    def output(self, x: str) -> int:
        if not self.wide:
            return self.ports[x].output()
        word = self.wide_reg if self.ports["b"].regmode == "OUTREG" else self.wide_latch
        return word & 0x3FFFF if x == "a" else word >> 18

    def _wide_edge(self, inputs: dict[str, dict[str, int]]) -> None:
        a, b = inputs["a"], inputs["b"]
        pa, pb = self.ports["a"], self.ports["b"]
        latch = self.wide_latch
        if b["rst"]:
            self.wide_latch = 0
        elif b["ce"] and b["cs"] == pb.csdecode:
            r = (b["ad"] >> 5) * 2
            self.wide_latch = self.mem[r + 1] << 18 | self.mem[r]
        if b["rst"]:
            self.wide_reg = 0
        elif b["oce"]:
            self.wide_reg = latch
        if a["ce"] and a["cs"] == pa.csdecode and a["we"]:
            w = (a["ad"] >> 5) * 2
            data = a["di"] | b["di"] << 18
            for byte in range(4):
                if a["ad"] >> byte & 1:
                    index, shift = w + byte // 2, 9 * (byte % 2)
                    value = data >> (9 * byte) & 0x1FF
                    self.mem[index] = self.mem[index] & ~(0x1FF << shift) | value << shift

    def _read(self, port: Port, ad: int) -> int:
        word = self.mem[port.word(ad)]
        if port.width == 18:
            return word
        return (word >> 9) & 0x1FF if ad >> 3 & 1 else word & 0x1FF

    def _written(self, port: Port, ad: int, di: int) -> int:
        """The word after a write of ``di``: the enabled bytes (x18: AD[1:0]) or the
        addressed half (x9: AD[3])."""
        word = self.mem[port.word(ad)]
        if port.width == 18:
            low = di & 0x1FF if ad & 1 else word & 0x1FF
            high = di >> 9 & 0x1FF if ad >> 1 & 1 else word >> 9 & 0x1FF
            return high << 9 | low
        if ad >> 3 & 1:
            return (di & 0x1FF) << 9 | (word & 0x1FF)
        return (word & 0x3FE00) | (di & 0x1FF)

    def edge(self, inputs: dict[str, dict[str, int]]) -> None:
        if self.wide:
            self._wide_edge(inputs)
            return
        writes = []
        for x, port in self.ports.items():
            i = inputs[x]
            selected = i["ce"] and i["cs"] == port.csdecode
            latch = port.latch
            if i["rst"]:
                port.latch = 0
            elif selected:
                if not i["we"] or port.writemode == "READBEFOREWRITE":
                    port.latch = self._read(port, i["ad"])
                elif port.writemode == "WRITETHROUGH":
                    new = self._written(port, i["ad"], i["di"])
                    port.latch = new if port.width == 18 else (
                        new >> 9 if i["ad"] >> 3 & 1 else new & 0x1FF)
            if i["rst"]:
                port.out = 0
            elif i["oce"]:
                port.out = latch
            if selected and i["we"]:
                writes.append((port.word(i["ad"]), self._written(port, i["ad"], i["di"])))
        for word, value in writes:
            self.mem[word] = value


def _inputs(rng: random.Random, config: dict, ref: Reference) -> dict[str, dict[str, int]]:
    inputs = {}
    for x, port in ref.ports.items():
        word = rng.randrange(WORDS)
        # Byte enables (x18) or half select (x9) and address in the port's width.
        ad = word << 4 | rng.getrandbits(4)
        inputs[x] = {"di": rng.getrandbits(18), "ad": ad,
                     # Mostly selected: a wrong CS decode shows at once.
                     "cs": port.csdecode if rng.random() < 0.85 else rng.getrandbits(3),
                     "ce": int(rng.random() < 0.9), "oce": int(rng.random() < 0.8),
                     "we": int(rng.random() < 0.4),
                     "rst": int(config["resetmode"] == "SYNC" and rng.random() < 0.05)}
    # No collisions: port b keeps off the word port a uses.
    shift = 5 if ref.wide else 4
    if inputs["b"]["ad"] >> shift == inputs["a"]["ad"] >> shift:
        inputs["b"]["ad"] ^= 1 << shift
    return inputs


@cocotb.test()
async def random_cycles_match_the_reference(dut) -> None:
    config = json.loads(os.environ["FFCL_DP16KD"])
    seed = int(os.environ.get("FFCL_SEED", "0"))
    dut._log.info("random cycles with seed %d (FFCL_SEED)", seed)
    rng = random.Random(seed)
    ref = Reference(config)
    for x in "ab":
        for name in ("di", "ad", "cs", "ce", "oce", "we", "rst"):
            getattr(dut, f"{name}_{x}").value = 0
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await Timer(1, unit="ns")
    previous = None
    for cycle in range(CYCLES):
        await FallingEdge(dut.clk)
        inputs = _inputs(rng, config, ref)
        for x, values in inputs.items():
            for name, value in values.items():
                getattr(dut, f"{name}_{x}").value = value
        ref.edge(inputs)
        await RisingEdge(dut.clk)
        await ReadOnly()
        for x, port in ref.ports.items():
            mask = (1 << min(port.width, 18)) - 1
            got, want = int(getattr(dut, f"do_{x}").value) & mask, ref.output(x)
            assert got == want, (f"cycle {cycle}, port {x.upper()} ({inputs[x]}; the cycle "
                                 f"before {previous and previous[x]}): DO = {got:#07x}, "
                                 f"the guide says {want:#07x}")
        previous = inputs


@cocotb.test()
async def asynchronous_reset_clears_the_output_at_once(dut) -> None:
    config = json.loads(os.environ["FFCL_DP16KD"])
    if config["resetmode"] != "ASYNC" or config["a"]["width"] == 36:
        return
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    # Write a word on port A (both byte enables), read it back, then reset between edges.
    await FallingEdge(dut.clk)
    dut.ce_a.value, dut.cs_a.value = 1, int(config["a"]["csdecode"][2:], 2)
    dut.rst_a.value, dut.oce_a.value = 0, 1
    dut.ad_a.value, dut.di_a.value, dut.we_a.value = 1 << 4 | 0b11, 0x2AAAA, 1
    await FallingEdge(dut.clk)
    dut.we_a.value = 0
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert int(dut.do_a.value) == 0x2AAAA
    await FallingEdge(dut.clk)
    dut.rst_a.value = 1
    await Timer(1, unit="ns")
    assert int(dut.do_a.value) == 0, "RESETMODE ASYNC: RST must clear the output at once"
