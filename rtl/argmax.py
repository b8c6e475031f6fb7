"""Argmax over the per-label scores, ties to the lowest label."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from rtl.params import check_positive_int
from rtl.select import select

__all__ = ["Argmax"]


class Argmax(wiring.Component):
    """Walks the K scores one per cycle, keeping the first maximum.

    A strictly-greater comparison keeps the earlier label on a tie, as golden.intformat's
    argmax does. One comparator instead of a K-input tree: K cycles per inference is small
    beside the matrix phases and keeps the wide comparison off the critical path.

    Parameters
    ----------
    labels : int
        K.
    score_bits : int
        Width of an unsigned score.
    read_port : bool, optional
        Add the ``read`` port (default False, for a part as small as the UP5K): the
        K-way score select, idle between searches, reads the score ``read.addr`` names
        into the candidate register, so another unit (the host link's reply serialiser)
        needs no K-way select of its own over the same scores.

    Members
    -------
    start : In(1)
        Begin a search over ``scores`` (held stable until ``done``).
    scores : In(ArrayLayout(unsigned(score_bits), labels))
    done : Out(1)
        High for one cycle when ``label`` is valid.
    label : Out(range(labels))
    read : Out(memory.ReadPort.Signature(addr_width=..., shape=unsigned(score_bits)))
        Only with ``read_port``: ``read.data`` is ``scores[read.addr]`` of the cycle
        before (a synchronous read, ``read.en`` ignored), except in the cycle after a
        ``start`` and while a search runs (from ``start`` to ``done``), when the select
        is the search's; an address beyond the last label reads ``scores[0]``.
    """

    def __init__(self, *, labels: int, score_bits: int, read_port: bool = False) -> None:
        self.labels = check_positive_int("Label count", labels, minimum=2)
        self.score_bits = check_positive_int("Score width", score_bits)
        if not isinstance(read_port, bool):
            raise TypeError(f"Read port must be True or False, not {read_port!r}")
        self.read_port = read_port
        members = {
            "start": In(1),
            "scores": In(data.ArrayLayout(unsigned(score_bits), labels)),
            "done": Out(1),
            "label": Out(range(labels)),
        }
        if read_port:
            members["read"] = Out(memory.ReadPort.Signature(
                addr_width=(labels - 1).bit_length(), shape=unsigned(score_bits)))
        super().__init__(members)

    @property
    def cycles(self) -> int:
        """Cycles from ``start`` to ``done``."""
        return self.labels

    def elaborate(self, platform) -> Module:
        m = Module()
        # Two stages per score: a register takes the next candidate from the K-way select
        # while the comparator looks at the one selected the cycle before, so the select
        # and the wide comparison are never in one cycle (together they were the slowest
        # path of the iCE40 builds). ``start`` loads scores[1] as the first candidate, so
        # the search still takes K cycles.
        index = Signal(range(self.labels + 1))
        best = Signal(unsigned(self.score_bits))
        candidate = Signal(unsigned(self.score_bits))
        candidate_label = Signal(range(self.labels))
        busy = Signal()
        scores = [self.scores[k] for k in range(self.labels)]
        if self.read_port:
            # One select for both: the search's index while it runs, the port's between
            # searches. A select of its own in the reply serialiser (a RESULT's bytes
            # picked from the K scores) was the host link's largest multiplexer.
            chosen = select(scores, Mux(busy, index, self.read.addr))
            m.d.comb += self.read.data.eq(candidate)
        else:
            chosen = select(scores, index)
        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [busy.eq(1), index.eq(2), best.eq(self.scores[0]), self.label.eq(0),
                         candidate.eq(self.scores[1]), candidate_label.eq(1)]
        with m.Elif(busy):
            # Beyond the last label select() gives scores[0], which is never compared.
            m.d.sync += [candidate.eq(chosen),
                         candidate_label.eq(index[:len(candidate_label)]),
                         index.eq(index + 1)]
            with m.If(candidate > best):
                m.d.sync += [best.eq(candidate), self.label.eq(candidate_label)]
            with m.If(candidate_label == self.labels - 1):
                m.d.sync += [busy.eq(0), self.done.eq(1)]
        if self.read_port:
            with m.Else():
                # Idle: the candidate register is the port's read register.
                m.d.sync += candidate.eq(chosen)
        return m
