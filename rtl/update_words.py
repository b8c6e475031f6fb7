"""The rounding words of one layer update, taken from the rounding generator in spec order.

docs/training-engine.md ("The random words, in the spec's order"): a layer update
consumes kappa^W_1..n_in, kappa^V_1..N_src (its columns), kappa^b, kappa^+, kappa^-
and rho_1..N (its rows). This step takes them all, one per cycle, so the generator ends
where the golden trainer's does; it keeps what the passes cannot regenerate: the first
column word (the replay generator is restored to it), the three scalar words, and the
row words, written into the rho buffer. The other column words are dropped (replayed).
"""

from __future__ import annotations

from amaranth import Cat, Module, Shape, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.lfsr import LFSR_WIDTH
from rtl.params import check_positive_int
from rtl.select import is_zero

__all__ = ["UpdateWords"]


class UpdateWords(wiring.Component):
    """Takes the ``columns + 3 + rows`` rounding words of one layer update.

    Parameters
    ----------
    max_columns : int
        The most column words of a layer (n_in + N_src).
    max_rows : int
        The most neurons of a layer (rho buffer depth).
    kept_scalars : bool, optional
        Keep kappa^b, kappa^+ and kappa^- in registers of their own (default True).
        False (a small-part option, ``rtl.bias_label_pass.BiasLabelPass(kappa_ring=True)``
        keeps them): say when each is taken instead (``scalar``).

    Members
    -------
    run : In(1)
        Held high while the step runs; the step starts with the first cycle of ``run``.
    done : Out(1)
        The step takes its last word this cycle (and is ready to start again next cycle).
    columns : In(range(max_columns + 1))
        The layer's column words (n_in + N_src), stable while ``run``.
    rows : In(range(max_rows + 1))
        The layer's neurons N, stable while ``run``.
    words : In(stream.Signature(unsigned(32)))
        The rounding generator; a word is taken whenever one is offered during ``run``.
    first : Out(unsigned(32))
        kappa^W_1, held until the next step.
    kappa_b, kappa_pos, kappa_neg : Out(unsigned(32))
        kappa^b, kappa^+, kappa^-, held until the next step (only with
        ``kept_scalars``).
    scalar : Out(3)
        Only without ``kept_scalars``: bit i is high in the cycle kappa^b, kappa^+ or
        kappa^- (i = 0, 1, 2) is taken (``words.payload``).
    rho : In(memory.WritePort.Signature(addr_width=..., shape=unsigned(32)))
        rho_i is written at address i - 1 of the rho buffer.
    """

    def __init__(self, *, max_columns: int, max_rows: int, kept_scalars: bool = True) -> None:
        self.max_columns = check_positive_int("Column count", max_columns)
        self.max_rows = check_positive_int("Row count", max_rows)
        if not isinstance(kept_scalars, bool):
            raise TypeError(f"Kept scalars must be True or False, not {kept_scalars!r}")
        self.kept_scalars = kept_scalars
        word = LFSR_WIDTH
        super().__init__({
            "run": In(1), "done": Out(1),
            "columns": In(range(max_columns + 1)), "rows": In(range(max_rows + 1)),
            "words": In(stream.Signature(word)),
            "first": Out(word),
            **({"kappa_b": Out(word), "kappa_pos": Out(word), "kappa_neg": Out(word)}
               if kept_scalars else {"scalar": Out(3)}),
            "rho": In(memory.WritePort.Signature(
                addr_width=Shape.cast(range(max(2, max_rows))).width, shape=word)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        count = Signal(range(self.max_columns + self.max_rows + 4))
        columns, rows = self.columns, self.rows
        word = self.words.payload
        m.d.comb += [self.words.ready.eq(self.run), self.rho.data.eq(word),
                     self.rho.addr.eq(count - columns - 3)]
        with m.If(self.run & self.words.valid):
            m.d.sync += count.eq(count + 1)
            # Spec order: kappa^W_1..., kappa^V..., kappa^b, kappa^+, kappa^-, rho_1..N.
            with m.If(is_zero(count)):
                m.d.sync += self.first.eq(word)
            if self.kept_scalars:
                with m.If(count == columns):
                    m.d.sync += self.kappa_b.eq(word)
                with m.If(count == columns + 1):
                    m.d.sync += self.kappa_pos.eq(word)
                with m.If(count == columns + 2):
                    m.d.sync += self.kappa_neg.eq(word)
            else:
                m.d.comb += self.scalar.eq(Cat(count == columns + i for i in range(3)))
            m.d.comb += self.rho.en.eq(count >= columns + 3)
            with m.If(count == columns + 2 + rows):
                m.d.sync += count.eq(0)
                m.d.comb += self.done.eq(1)
        return m
