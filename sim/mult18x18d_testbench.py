"""cocotb: this project's MULT18X18D model (sim/cells/mult18x18d.v) against arithmetic.

Driven through ``mult18x18d_probe`` (:func:`sim.netlist.mult18x18d_probe_verilog`). What
Lattice documents for the combinational configuration: P is the 36-bit product of the
operands, each two's complement when its SIGNEDA/SIGNEDB is high, else unsigned;
SIGNEDP = SIGNEDA | SIGNEDB; ROA/ROB/ROC and SROA/SROB show the operands; SOURCEA/SOURCEB
take the shift inputs instead. Corner operands (0, 1, the largest positive, the most
negative, all ones) in every signedness, then seeded random ones (FFCL_SEED, logged).
"""

from __future__ import annotations

import os
import random

import cocotb
from cocotb.triggers import Timer

BITS = 18
CORNERS = (0, 1, 2, (1 << (BITS - 1)) - 1, 1 << (BITS - 1), (1 << BITS) - 1, 0x2AAAA)
RANDOM_VECTORS = 400


def _value(operand: int, signed: int) -> int:
    return operand - (1 << BITS) if signed and operand >> (BITS - 1) else operand


def expected_product(a: int, b: int, signed_a: int, signed_b: int) -> int:
    """The 36-bit product the guide describes."""
    return (_value(a, signed_a) * _value(b, signed_b)) % (1 << 36)


async def _check(dut, a: int, b: int, signed_a: int, signed_b: int, *, source: int = 0,
                 c: int = 0) -> None:
    dut.a.value, dut.b.value, dut.c.value = (a, b, c) if not source else (0x15555, 0x0AAAA, c)
    dut.sria.value, dut.srib.value = (a, b) if source else (0x15555, 0x0AAAA)
    dut.signed_a.value, dut.signed_b.value = signed_a, signed_b
    dut.source_a.value = dut.source_b.value = source
    await Timer(1, unit="ns")
    want = expected_product(a, b, signed_a, signed_b)
    got = int(dut.p.value)
    assert got == want, (f"{a:#07x} ({'s' if signed_a else 'u'}) x {b:#07x} "
                         f"({'s' if signed_b else 'u'}): P = {got:#011x}, expected {want:#011x}")
    assert int(dut.signed_p.value) == (signed_a | signed_b)
    assert (int(dut.roa.value), int(dut.rob.value), int(dut.roc.value)) == (a, b, c)
    assert (int(dut.sroa.value), int(dut.srob.value)) == (a, b)


@cocotb.test()
async def corners_in_every_signedness(dut) -> None:
    for signed_a in (0, 1):
        for signed_b in (0, 1):
            for a in CORNERS:
                for b in CORNERS:
                    await _check(dut, a, b, signed_a, signed_b, c=a ^ b)


@cocotb.test()
async def random_operands(dut) -> None:
    seed = int(os.environ.get("FFCL_SEED", "0"))
    dut._log.info("random operands with seed %d (FFCL_SEED)", seed)
    rng = random.Random(seed)
    for _ in range(RANDOM_VECTORS):
        await _check(dut, rng.getrandbits(BITS), rng.getrandbits(BITS), rng.getrandbits(1),
                     rng.getrandbits(1), c=rng.getrandbits(BITS))


@cocotb.test()
async def shift_inputs_as_operands(dut) -> None:
    # SOURCEA/SOURCEB high: the operands come from SRIA/SRIB, not A/B.
    for a, b in ((3, 5), (0x3FFFF, 0x20000), (0x1F0F0, 0x00F0F)):
        await _check(dut, a, b, 1, 0, source=1)
