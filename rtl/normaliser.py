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
from rtl.resources import MemoryShape, Product

__all__ = ["ROUND_STAGES", "Rsqrt", "Scaler", "SplitScaler"]

#: Cycles of the rounding shift after a product (:func:`_round_shift_stages`).
ROUND_STAGES = 2


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
    held : bool, optional
        The small-part form (default False), for a ``sq`` that holds for
        :attr:`LATENCY` cycles or more (the core's: an op's input sums change only
        between ops): the normalising shift takes the input register's value instead of
        a copy of it carried beside bit_length (on iCE40 a flip-flop fed by a flip-flop
        takes a logic cell of its own: the copy is ``sq_bits`` of them). ``r`` and
        ``sh`` are right from :attr:`LATENCY` cycles after ``sq`` settles while it holds,
        not for a ``sq`` that changes every cycle.
    input_register : bool, optional
        Register ``sq`` before bit_length (default True). False, for a ``sq`` that is a
        register's output (nothing to keep off the bit_length path): bit_length reads
        the port, one flip-flop per bit fewer (on iCE40 each a logic cell of its own,
        fed by a flip-flop) and :attr:`latency` one cycle shorter. With ``held`` the
        port must then hold for ``latency - 1`` cycles.
    keep : bool, optional
        Add the ``update`` input (default False): ``r`` and ``sh`` take a new result
        only in the cycle after one with ``update`` high and keep it otherwise (the
        table's read port and the ``sh`` register are enabled by it), so the unit's
        output registers keep a result, for a core that keeps one norm
        (``Core(stored_norms=True)``): on iCE40 a register fed by the table's block RAM
        takes a logic cell a bit.

    Members
    -------
    sq : In(unsigned(sq_bits))
    r : Out(unsigned(frac_bits + 1))
        Valid :attr:`latency` cycles after ``sq``.
    sh : Out(range(sq_bits + 2))
        The even shift, aligned with ``r``.
    update : In(1)
        Only with ``keep``: take the result of ``sq`` given :attr:`latency` - 1 cycles
        before (``r`` and ``sh`` have it in the next cycle, and keep it).
    """

    def __init__(self, *, sq_bits: int, index_bits: int, frac_bits: int,
                 held: bool = False, input_register: bool = True,
                 keep: bool = False) -> None:
        if not isinstance(held, bool):
            raise TypeError(f"Held must be True or False, not {held!r}")
        if not isinstance(input_register, bool):
            raise TypeError(f"Input register must be True or False, not {input_register!r}")
        if not isinstance(keep, bool):
            raise TypeError(f"Keep must be True or False, not {keep!r}")
        self.held = held
        self.input_register = input_register
        self.keep = keep
        self.sq_bits = check_positive_int("Sum-of-squares width", sq_bits)
        self.index_bits = check_positive_int("Table index width", index_bits, minimum=2)
        self.frac_bits = check_positive_int("Table precision", frac_bits)
        self.table = [int(v) for v in rsqrt_table(index_bits, frac_bits)]
        members = {
            "sq": In(unsigned(sq_bits)),
            "r": Out(unsigned(frac_bits + 1)),
            "sh": Out(range(sq_bits + 2)),
        }
        if keep:
            members["update"] = In(1)
        super().__init__(members)

    #: Cycles from ``sq`` to ``r`` and ``sh``: an input register (the caller's multiplexer
    #: of stored sums stays out of the next stage), bit_length, then the normalising
    #: shift, then the table look-up, each in its own cycle (on iCE40 the three in one
    #: cycle were the core's slowest path, and then the multiplexer and bit_length).
    LATENCY = 4

    @property
    def latency(self) -> int:
        """Cycles from ``sq`` to ``r`` and ``sh`` (:attr:`LATENCY`, one fewer without the
        input register)."""
        return self.LATENCY if self.input_register else self.LATENCY - 1

    def memories(self) -> list[MemoryShape]:
        """The reciprocal square root table."""
        return [MemoryShape("rsqrt_table", len(self.table), self.frac_bits + 1, rom=True)]

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.rom = rom = memory.Memory(
            shape=unsigned(self.frac_bits + 1), depth=len(self.table), init=self.table)
        port = rom.read_port()
        # Stage 1: bit_length(sq), by a tree of halves (log2(sq_bits) multiplexers deep).
        if self.input_register:
            given = Signal.like(self.sq)
            m.d.sync += given.eq(self.sq)
        else:
            # sq is a register already: bit_length reads it.
            given = self.sq
        length = Signal(range(self.sq_bits + 1))
        if self.held:
            # The input holds: stage 2 takes the register stage 1 read.
            sq = given
            m.d.sync += length.eq(_bit_length(given))
        else:
            sq = Signal.like(self.sq)
            m.d.sync += [length.eq(_bit_length(given)), sq.eq(given)]
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
        if self.keep:
            m.d.comb += port.en.eq(self.update)
            with m.If(self.update):
                m.d.sync += self.sh.eq(early_sh)
        else:
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
    ((2 v >> k) + 1) >> 1, which is the same number for every k >= 0 and needs no wide
    constant adder.

    Parameters
    ----------
    acc_bits : int
        Width of the signed accumulator.
    r_bits : int
        Width of the unsigned reciprocal.
    shift_bits : int
        Width of the unsigned shift amount.
    no_reset : bool, optional
        A small-part option (default False): the input and product registers have no
        reset (what they hold before the first input is never used: the caller times its
        use of ``out``). Measured in the digits training build (the input scaler's,
        ``InputScaler(lean=True)``): Yosys then maps the product onto one SB_MAC16
        instead of two, and the build packs into 51 logic cells fewer; the registers
        stay flip-flops there. The same values in the same cycles.
    held_r : bool, optional
        Another small-part option (default False): the caller holds ``r`` for as long as
        the scaler takes inputs (and a cycle after the last), so it goes into the product
        unregistered: no copy of a register the caller keeps anyway (on iCE40 a
        flip-flop fed by a flip-flop takes a logic cell of its own). The same values in
        the same cycles.

    Members
    -------
    acc : In(signed(acc_bits))
    r : In(unsigned(r_bits))
    shift : In(unsigned(shift_bits))
    out : Out(signed(acc_bits + r_bits + 1))
        The scaled value, ``latency`` cycles after the inputs.
    """

    def __init__(self, *, acc_bits: int, r_bits: int, shift_bits: int,
                 no_reset: bool = False, held_r: bool = False) -> None:
        self.acc_bits = check_positive_int("Accumulator width", acc_bits, minimum=2)
        self.r_bits = check_positive_int("Reciprocal width", r_bits)
        self.shift_bits = check_positive_int("Shift width", shift_bits)
        if not isinstance(no_reset, bool):
            raise TypeError(f"No reset must be True or False, not {no_reset!r}")
        self.no_reset = no_reset
        if not isinstance(held_r, bool):
            raise TypeError(f"Held r must be True or False, not {held_r!r}")
        self.held_r = held_r
        super().__init__({
            "acc": In(signed(acc_bits)),
            "r": In(unsigned(r_bits)),
            "shift": In(unsigned(shift_bits)),
            "out": Out(signed(acc_bits + r_bits + 1)),
        })

    #: Cycles from the inputs to ``out``: input registers, the product, the rounding
    #: shift (:data:`ROUND_STAGES`). The input registers keep the multiplexers and
    #: memories that feed the Scaler (the reciprocal tables, the accumulators) off the
    #: multiplier's path; without them a table read into the product was the ULX3S-25F
    #: build's slowest path.
    LATENCY = 2 + ROUND_STAGES

    @property
    def latency(self) -> int:
        """Cycles from the inputs to ``out`` (:attr:`LATENCY`)."""
        return self.LATENCY

    def products(self) -> list[Product]:
        """acc times r (the unsigned reciprocal widened by a sign bit)."""
        return [Product("scaler", self.acc_bits, self.r_bits + 1)]

    def elaborate(self, platform) -> Module:
        m = Module()
        # No reset: what they hold before the first input is never used.
        plain = {"reset_less": True} if self.no_reset else {}
        acc = Signal.like(self.acc, **plain)
        # Held r: the product reads it as given (it holds), no register.
        r = self.r if self.held_r else Signal.like(self.r, **plain)
        shift = Signal.like(self.shift)
        m.d.sync += [acc.eq(self.acc), *([] if self.held_r else [r.eq(self.r)]),
                     shift.eq(self.shift)]
        product = Signal(signed(self.acc_bits + self.r_bits + 1), **plain)
        m.d.sync += product.eq(acc * r)
        _round_shift_stages(m, product, shift, self.out)
        return m


def _round_shift_stages(m: Module, product, shift, out) -> None:
    """Register ``out`` = round_shift(``product``, shift) :data:`ROUND_STAGES` cycles
    after the caller registers ``product`` in the cycle ``shift`` is given."""
    # round_shift(v, k) = ((2 v >> k) + 1) >> 1 for every k >= 0 (k = 0: (2 v + 1) >> 1 =
    # v), so no choice between a rounded and an unshifted value, and no copy of the
    # product, is needed. The shift, then the increment, each in a cycle of its own (both
    # in one cycle were the iCE40 builds' slowest path).
    shift_d = Signal.like(shift, name="shift_d")
    m.d.sync += shift_d.eq(shift)
    doubled = Signal(signed(len(product) + 1), name="doubled")
    m.d.comb += doubled.eq(product << 1)
    halved = Signal.like(doubled, name="halved")
    m.d.sync += halved.eq(doubled >> shift_d)
    m.d.sync += out.eq((halved + 1) >> 1)


class SplitScaler(wiring.Component):
    """round_shift(acc * r, shift) on two borrowed multipliers, pipelined.

    The accumulator is split as acc = hi 2^s + lo (lo unsigned, s = ``operand_bits`` - 1
    bits; hi signed), so both halves and r fit signed ``operand_bits`` multiplier
    inputs. The caller multiplies ``lo * factor`` and ``hi * factor`` (on iCE40: two MAC
    lanes' SB_MAC16 while the lanes are idle) and returns the products
    ``product_latency`` cycles later; the scaler adds them, (hi r) 2^s + lo r = acc r
    exactly, and rounds as :class:`Scaler` does.

    Parameters
    ----------
    acc_bits, r_bits, shift_bits : int
        As for :class:`Scaler`; acc_bits at most 2 ``operand_bits`` - 1 and r_bits below
        ``operand_bits``.
    operand_bits : int
        Width of a signed multiplier input (16 for SB_MAC16).
    product_latency : int
        Cycles from ``lo``/``hi``/``factor`` to ``lo_product``/``hi_product``.

    Members
    -------
    acc, r, shift : In
        As for :class:`Scaler`.
    lo, hi, factor : Out(signed(operand_bits))
        The multiplier inputs, combinational from ``acc`` and ``r``.
    lo_product, hi_product : In(signed(2 * operand_bits))
    out : Out(signed(acc_bits + r_bits + 1))
        The scaled value, ``latency`` cycles after the inputs.
    """

    def __init__(self, *, acc_bits: int, r_bits: int, shift_bits: int, operand_bits: int,
                 product_latency: int) -> None:
        self.acc_bits = check_positive_int("Accumulator width", acc_bits, minimum=2)
        self.r_bits = check_positive_int("Reciprocal width", r_bits)
        self.shift_bits = check_positive_int("Shift width", shift_bits)
        self.operand_bits = check_positive_int("Operand width", operand_bits, minimum=2)
        self.product_latency = check_positive_int("Product latency", product_latency)
        if acc_bits > 2 * operand_bits - 1 or r_bits >= operand_bits:
            raise ValueError(f"A {acc_bits}-bit accumulator times a {r_bits}-bit "
                             f"reciprocal does not split onto {operand_bits}-bit signed "
                             f"multipliers (at most {2 * operand_bits - 1} and "
                             f"{operand_bits - 1} bits)")
        operand = signed(operand_bits)
        super().__init__({
            "acc": In(signed(acc_bits)),
            "r": In(unsigned(r_bits)),
            "shift": In(unsigned(shift_bits)),
            "lo": Out(operand), "hi": Out(operand), "factor": Out(operand),
            "lo_product": In(signed(2 * operand_bits)),
            "hi_product": In(signed(2 * operand_bits)),
            "out": Out(signed(acc_bits + r_bits + 1)),
        })

    @staticmethod
    def latency_for(product_latency: int) -> int:
        """Cycles from the inputs to ``out`` with products ``product_latency`` cycles
        away: the products, their sum, the rounding."""
        return product_latency + 1 + ROUND_STAGES

    @property
    def latency(self) -> int:
        """Cycles from the inputs to ``out`` (:meth:`latency_for`)."""
        return self.latency_for(self.product_latency)

    def elaborate(self, platform) -> Module:
        m = Module()
        split = self.operand_bits - 1
        # An accumulator no wider than lo is sign-extended first: hi is then its sign
        # (0 or -1), and lo its low bits in two's complement (a small model's 13-bit
        # accumulator has no bits above the split at all).
        acc = Signal(signed(max(self.acc_bits, split + 1)))
        m.d.comb += acc.eq(self.acc)
        m.d.comb += [self.lo.eq(acc[:split]), self.hi.eq(acc[split:].as_signed()),
                     self.factor.eq(self.r)]
        # The shift travels beside the products.
        shift = self.shift
        for i in range(self.product_latency):
            delayed = Signal.like(self.shift, name=f"shift_{i}")
            m.d.sync += delayed.eq(shift)
            shift = delayed
        product = Signal(signed(self.acc_bits + self.r_bits + 1))
        m.d.sync += product.eq((self.hi_product << split) + self.lo_product)
        _round_shift_stages(m, product, shift, self.out)
        return m
