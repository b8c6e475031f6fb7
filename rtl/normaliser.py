"""The integer length normaliser: reciprocal square root and the per-neuron scaler.

W n(a) = (W a) / ||a||: the MAC lanes accumulate W a on raw integer activations, the
:class:`Rsqrt` turns sum(a^2) into (r, sh) with 1/||a|| ~= r 2^-(Q + sh/2), and the
:class:`Scaler` computes round_shift(acc * r, shift) once per output neuron. Both follow
golden.intformat bit for bit.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from golden.intformat import rsqrt_table
from rtl.params import check_positive_int

__all__ = ["Rsqrt", "Scaler"]


class Rsqrt(wiring.Component):
    """1/sqrt(sq) as a table look-up after an even normalising shift.

    sh = bit_length(sq) - index_bits, rounded up to even and at least 0; the table is
    addressed by sq >> sh. A zero ``sq`` gives r = 0.

    Parameters
    ----------
    sq_bits : int
        Width of the unsigned sum of squares.
    index_bits, frac_bits : int
        The table's index width and the precision Q of its entries.

    Members
    -------
    sq : In(unsigned(sq_bits))
    r : Out(unsigned(frac_bits + 1))
        Valid ``latency`` cycles after ``sq``.
    sh : Out(range(sq_bits + 2))
        The even shift, aligned with ``r``.
    """

    def __init__(self, *, sq_bits: int, index_bits: int, frac_bits: int) -> None:
        self.sq_bits = check_positive_int("Sum-of-squares width", sq_bits)
        self.index_bits = check_positive_int("Table index width", index_bits, minimum=2)
        self.frac_bits = check_positive_int("Table precision", frac_bits)
        self.table = [int(v) for v in rsqrt_table(index_bits, frac_bits)]
        super().__init__({
            "sq": In(unsigned(sq_bits)),
            "r": Out(unsigned(frac_bits + 1)),
            "sh": Out(range(sq_bits + 2)),
        })

    #: Cycles from ``sq`` to ``r`` and ``sh``: bit_length, then the normalising shift, then
    #: the table look-up, each in its own cycle (on iCE40 all three in one cycle were the
    #: core's slowest path).
    LATENCY = 3

    @property
    def latency(self) -> int:
        """Cycles from ``sq`` to ``r`` and ``sh`` (:attr:`LATENCY`)."""
        return self.LATENCY

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.rom = rom = memory.Memory(
            shape=unsigned(self.frac_bits + 1), depth=len(self.table), init=self.table)
        port = rom.read_port()
        # Stage 1: bit_length(sq), by a tree of halves (log2(sq_bits) multiplexers deep).
        length = Signal(range(self.sq_bits + 1))
        sq = Signal.like(self.sq)
        m.d.sync += [length.eq(_bit_length(self.sq)), sq.eq(self.sq)]
        # Stage 2: the even shift and the table address sq >> shift (index_bits wide by
        # construction).
        excess = Signal(range(self.sq_bits + 2))
        m.d.comb += excess.eq(Mux(length > self.index_bits, length - self.index_bits, 0))
        shift = Signal(range(self.sq_bits + 2))
        m.d.comb += shift.eq(excess + excess[0])
        addr = Signal.like(port.addr)
        early_sh = Signal.like(self.sh)
        m.d.sync += [addr.eq(sq >> shift), early_sh.eq(shift)]
        # Stage 3: the table (the read port's register is the stage's); sh waits for it.
        m.d.comb += [port.addr.eq(addr), self.r.eq(port.data)]
        m.d.sync += self.sh.eq(early_sh)
        return m


def _bit_length(value: Value) -> Value:
    """bit_length of an unsigned value: the upper half's plus the lower half's width if
    the upper half is nonzero, else the lower half's (a priority encoder as a tree)."""
    width = len(value)
    if width == 1:
        return value
    low_width = 1 << ((width - 1).bit_length() - 1)     # a power of two below width
    high = value[low_width:]
    return Mux(high.any(), _bit_length(high) + low_width, _bit_length(value[:low_width]))


class Scaler(wiring.Component):
    """round_shift(acc * r, shift): one multiply and a rounding right shift, pipelined.

    round_shift(v, k) = (v + 2^(k-1)) >> k for k > 0, computed as
    ((v >> (k-1)) + 1) >> 1, which is the same number and needs no wide constant adder.

    Parameters
    ----------
    acc_bits : int
        Width of the signed accumulator.
    r_bits : int
        Width of the unsigned reciprocal.
    shift_bits : int
        Width of the unsigned shift amount.

    Members
    -------
    acc : In(signed(acc_bits))
    r : In(unsigned(r_bits))
    shift : In(unsigned(shift_bits))
    out : Out(signed(acc_bits + r_bits + 1))
        The scaled value, ``latency`` cycles after the inputs.
    """

    def __init__(self, *, acc_bits: int, r_bits: int, shift_bits: int) -> None:
        self.acc_bits = check_positive_int("Accumulator width", acc_bits, minimum=2)
        self.r_bits = check_positive_int("Reciprocal width", r_bits)
        self.shift_bits = check_positive_int("Shift width", shift_bits)
        super().__init__({
            "acc": In(signed(acc_bits)),
            "r": In(unsigned(r_bits)),
            "shift": In(unsigned(shift_bits)),
            "out": Out(signed(acc_bits + r_bits + 1)),
        })

    #: Cycles from the inputs to ``out``: input registers, the product, the rounding
    #: shift. The input registers keep the multiplexers and memories that feed the
    #: Scaler (the reciprocal tables, the accumulators) off the multiplier's path; without
    #: them a table read into the product was the ULX3S-25F build's slowest path.
    LATENCY = 3

    @property
    def latency(self) -> int:
        """Cycles from the inputs to ``out`` (:attr:`LATENCY`)."""
        return self.LATENCY

    def elaborate(self, platform) -> Module:
        m = Module()
        acc = Signal.like(self.acc)
        r = Signal.like(self.r)
        # shift - 1 and whether shift is nonzero are prepared at the inputs, so the last
        # stage is only the shift, the increment and the choice. shift - 1 wraps for
        # shift = 0; that case takes the other arm of the Mux.
        shift_less = [Signal.like(self.shift, name=f"shift_less_{i}") for i in range(2)]
        rounding = [Signal(name=f"rounding_{i}") for i in range(2)]
        m.d.sync += [acc.eq(self.acc), r.eq(self.r), shift_less[0].eq(self.shift - 1),
                     rounding[0].eq(self.shift.any())]
        product = Signal(signed(self.acc_bits + self.r_bits + 1))
        m.d.sync += [product.eq(acc * r), shift_less[1].eq(shift_less[0]),
                     rounding[1].eq(rounding[0])]
        halved = Signal.like(product)
        m.d.comb += halved.eq(product >> shift_less[1])
        m.d.sync += self.out.eq(Mux(rounding[1], (halved + 1) >> 1, product))
        return m
