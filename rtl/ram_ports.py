"""A block RAM read port without the read-first logic Yosys adds around a synchronous one.

A synchronous, non-transparent read port (``Memory.read_port()``) promises the old word
when it reads the address written in the same cycle. iCE40 block RAM does not promise it,
so ``synth_ice40`` emulates it: every write is delayed a cycle through registers (data,
address, enable) and the read data goes through a bypass multiplexer and a register of its
own. On the 48-bit error buffer that is 104 flip-flops and 53 LUTs beside the three block
RAMs (measured by ``synth_ice40 -noabc`` on a lone 48 x 64 memory), most of the
flip-flops fed by flip-flops, so each costs a whole logic cell of the UP5K.

A buffer whose reads and writes never meet on one address in a cycle that matters can
say so: :func:`unchecked_read_port` reads combinationally and registers the word in the
same module, and marks the memory ``no_rw_check``, which lets Yosys merge that register
into the block RAM's output as a read port with an undefined read-during-write word.
Only the register's zero start is left to emulate (a flip-flop and an AND a bit, which
the flat build's LUTs can absorb). The port answers as ``read_port()`` does (the word
of the address at the clock edge, held while ``en`` is low), except for a read of the
address written in its cycle: elaborated for no platform (simulation) it answers
:data:`POISON` then, since the block RAM's answer is undefined, so a design that uses
such a word fails its simulated tests instead of working by luck.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, Value
from amaranth.lib import memory

__all__ = ["NO_RW_CHECK", "POISON", "unchecked_read_port"]

#: The memory attribute that tells Yosys a read never needs the word written in its cycle.
NO_RW_CHECK = {"no_rw_check": 1}
#: What the simulated port answers for a read of the address written in its cycle (all
#: ones, cut to the word).
POISON = -1


def unchecked_read_port(m: Module, mem: memory.Memory, write: memory.WritePort,
                        platform, domain: str = "sync") -> memory.ReadPort:
    """A registered read port of ``mem`` (made with ``attrs=NO_RW_CHECK``) for a design
    that never uses a word read in the cycle its address is written through ``write``.

    Returns an interface with ``mem.read_port()``'s signature (``addr``, ``en`` with
    init 1, and ``data``: the word at ``addr`` one cycle after a cycle with ``en`` high,
    from a reset-less register), so ``wiring.connect`` takes it as it takes a read port.
    With ``platform`` None (simulation) a read meeting a write of its address answers
    :data:`POISON`.
    """
    if mem.attrs.get("no_rw_check") != 1:
        raise ValueError(f"An unchecked read port needs a memory made with "
                         f"attrs=NO_RW_CHECK, not attrs={dict(mem.attrs)!r}")
    comb = mem.read_port(domain="comb")
    port = memory.ReadPort.Signature(addr_width=len(comb.addr), shape=mem.shape).create(
        path=("unchecked",))
    # Reset-less: a reset would be one more multiplexer a bit after the block RAM.
    word = Signal(mem.shape, reset_less=True, name="unchecked_word")
    m.d.comb += comb.addr.eq(port.addr)
    with m.If(port.en):
        m.d[domain] += word.eq(comb.data)
    if platform is not None:
        port.data = word
        return port
    met = Signal(name="unchecked_met")
    with m.If(port.en):
        m.d[domain] += met.eq(write.en.any() & (write.addr == port.addr))
    m.d.comb += port.data.eq(Mux(met, POISON, Value.cast(word)))
    return port
