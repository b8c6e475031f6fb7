"""cocotb: the SPRAM weight store as it is synthesised for iCE40, on Yosys's own
SB_SPRAM256KA model.

``rtl.weight_store.WeightStore(kind="spram")`` elaborated for an iCE40 platform is
SB_SPRAM256KA instances, side by side, in one bank or (a word of at most 32 bits) two,
even and odd words. Amaranth's simulator cannot run those instances, so every RTL test
runs the store's simulation model instead; this bench runs the instances themselves, on
the model in Yosys's ice40/cells_sim.v, to hold the two to the same contract:

- a word written is read back, :attr:`~rtl.weight_store.WeightStore.latency` (2) cycles
  after its read address;
- a read whose address reaches the SPRAMs in a cycle that writes its bank gets no word
  (the cell model's DATAOUT is x; the simulation model's poison);
- with two banks, a read of one bank in a cycle that writes the other gets its word: the
  training core's W and V passes rely on it.

Seeded random cycles (FFCL_SEED, logged) offer a read address every cycle and a write in
about half of them, some to the bank being read; every cycle's output is compared with a
reference of the contract. FFCL_SPRAM holds the store's configuration (JSON: ``width``,
``depth``, ``banks``).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

CYCLES = 400


class Reference:
    """The store's contract, cycle by cycle: the registered read address, the words."""

    #: What a read gets that meets a write of its bank.
    LOST = "lost"

    def __init__(self, banks: int) -> None:
        self.banks = banks
        self.words: dict[int, int] = {}
        self.address: int | None = None

    def bank(self, addr: int) -> int:
        return addr % self.banks

    def clock(self, read: int, write: tuple[int, int] | None) -> int | str | None:
        """One clock edge: the read registered a cycle ago meets ``write`` (address,
        word) in the memory. Returns the word read, :data:`LOST` (a write of its bank in
        that cycle) or None (no read yet)."""
        out = None
        if self.address is not None:
            collides = write is not None and self.bank(write[0]) == self.bank(self.address)
            out = self.LOST if collides else self.words[self.address]
        if write is not None:
            self.words[write[0]] = write[1]
        self.address = read
        return out


@cocotb.test()
async def the_instances_keep_the_store_contract(dut):
    config = json.loads(os.environ["FFCL_SPRAM"])
    seed = int(os.environ.get("FFCL_SEED", "1"))
    dut._log.info("seed %d, %s", seed, config)
    rng = random.Random(seed)
    width, depth, banks = config["width"], config["depth"], config["banks"]
    reference = Reference(banks)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 0
    dut.write__en.value = 0
    dut.read__addr.value = 0
    await FallingEdge(dut.clk)
    # Every word first, one a cycle (reading word 0 meanwhile), so that later reads have
    # one; then random reads and writes.
    plan = [(0, (addr, rng.getrandbits(width))) for addr in range(depth)]
    for _ in range(CYCLES):
        write = None
        if rng.random() < 0.5:
            write = (rng.randrange(depth), rng.getrandbits(width))
        plan.append((rng.randrange(depth), write))
    seen = {"words": 0, "lost": 0, "beside_a_write": 0}
    for cycle, (read, write) in enumerate(plan):
        dut.read__addr.value = read
        dut.write__en.value = int(write is not None)
        if write is not None:
            dut.write__addr.value, dut.write__data.value = write
        await RisingEdge(dut.clk)
        expected = reference.clock(read, write)
        # The output settles after the edge: look at it mid-cycle.
        await FallingEdge(dut.clk)
        got = dut.read__data.value
        if cycle < depth + 1:
            continue                                # the words are still going in
        if expected == Reference.LOST:
            # The cell's DATAOUT is x for the whole word in a cycle that writes it.
            assert not got.is_resolvable, f"cycle {cycle}: {got} in a write of its bank"
            seen["lost"] += 1
        else:
            assert got.is_resolvable and got.to_unsigned() == expected, \
                f"cycle {cycle}: {got}, expected {expected:#x}"
            seen["words"] += 1
            seen["beside_a_write"] += write is not None
    dut._log.info("checked %s", seen)
    # The random plan met every case the contract names.
    assert seen["words"] > 0 and seen["lost"] > 0
    assert (seen["beside_a_write"] > 0) == (banks == 2)
