"""Memories that never use a word read in the cycle that writes its address.

Amaranth's memories return the old word when a synchronous read meets a write of the same
address in one cycle. An iCE40 block RAM promises nothing then, so to keep the old word
Yosys builds, for every such read port, a register of the write data, an address
comparison and a multiplexer: in the iCEBreaker training build about 480 flip-flops, each
a logic cell of its own. A memory whose design never uses such a read carries
:data:`COLLISIONS_UNUSED`, Yosys's own ``no_rw_check`` attribute ("a read that meets a
write returns anything"). Amaranth writes synchronous read ports that Yosys's
``memory_dff`` (the pass that honours the attribute) never sees, so the iCE40 training
build applies it itself (:func:`ffcl_hw.flows.synth.ignore_marked_collisions`).

The mark is a checked claim: tests/rtl/test_memory_collisions.py flips every bit of a
marked memory's collided reads and trains the small part's core, and a host link over a
training core, bit-exact. The label weights are not marked: with two label words a
neuron (G < K) a word is read in the cycle a write of it lands and used (marked, the
test's G = 3 of K = 4 case fails).
"""

from __future__ import annotations

__all__ = ["COLLISIONS_UNUSED"]

#: ``attrs`` of a :class:`amaranth.lib.memory.Memory` none of whose reads that meet a
#: write of their address is used.
COLLISIONS_UNUSED = {"no_rw_check": 1}
