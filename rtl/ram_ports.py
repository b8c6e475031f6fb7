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
the flat build's LUTs can absorb). In simulation the port behaves exactly as
``read_port()``: the word of the address at the clock edge, before that edge's write,
held while ``en`` is low.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Module, Signal
from amaranth.lib import memory

__all__ = ["NO_RW_CHECK", "unchecked_read_port"]

#: The memory attribute that tells Yosys a read never needs the word written in its cycle.
NO_RW_CHECK = {"no_rw_check": 1}


def unchecked_read_port(m: Module, mem: memory.Memory, domain: str = "sync") -> SimpleNamespace:
    """A registered read port of ``mem`` (made with ``attrs=NO_RW_CHECK``) for a design
    that never uses a word read in the cycle its address is written.

    Returns ``addr`` (In), ``en`` (In, init 1) and ``data`` (Out, a reset-less register:
    the word at ``addr`` one cycle after a cycle with ``en`` high), as
    ``mem.read_port()``'s members.
    """
    if mem.attrs.get("no_rw_check") != 1:
        raise ValueError(f"An unchecked read port needs a memory made with "
                         f"attrs=NO_RW_CHECK, not attrs={dict(mem.attrs)!r}")
    port = mem.read_port(domain="comb")
    addr = Signal.like(port.addr, name="unchecked_addr")
    en = Signal(init=1, name="unchecked_en")
    # Reset-less: a reset would be one more multiplexer a bit after the block RAM.
    data = Signal(mem.shape, reset_less=True, name="unchecked_data")
    m.d.comb += port.addr.eq(addr)
    with m.If(en):
        m.d[domain] += data.eq(port.data)
    return SimpleNamespace(addr=addr, en=en, data=data)
