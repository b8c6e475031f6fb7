# amaranth: UnusedElaboratable=no
"""Rsqrt and Scaler against golden.intformat, one input per cycle, latency from the parts."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module, Signal, unsigned
from amaranth.back import rtlil
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from golden.intformat import IntFormat, round_shift, rsqrt, rsqrt_table, scale
from rtl.input_scaler import InputScaler
from rtl.normaliser import Rsqrt, Scaler, SplitScaler
from tests.rtl.helpers import PERIOD, run_pipeline, signed_range, simulate, unsigned_max

SEED = 1618


def rsqrt_inputs(sq_bits: int, rng: np.random.Generator) -> list[int]:
    """0, 1, every power of two with its neighbours, everything up to 2**12, random rest."""
    top = unsigned_max(sq_bits)
    values = list(range(min(1 << 12, top) + 1))
    for k in range(sq_bits + 1):
        values += [(1 << k) - 1, 1 << k, (1 << k) + 1]
    values += [int(v) for v in rng.integers(0, top, size=200, endpoint=True)]
    values = [v for v in values if 0 <= v <= top]
    # Twice: once in rising order, once shuffled, so that no output depends on the value
    # before it.
    return values + [int(v) for v in rng.permutation(values)]


@pytest.mark.parametrize(("sq_bits", "index_bits", "frac_bits"), [
    (24, 8, 12),     # IntFormat's default table on a 24-bit sum of squares
    (20, 4, 4),      # the smallest table IntFormat allows
    (13, 5, 7),      # odd index width: the shift's rounding to even matters
    (40, 12, 20),    # the largest table and precision IntFormat allows
    (6, 8, 10),      # a sum narrower than the table index: never shifted
])
def test_rsqrt_matches_golden(sq_bits: int, index_bits: int, frac_bits: int) -> None:
    seed = SEED + sq_bits * 100 + index_bits
    rng = np.random.default_rng(seed)
    dut = Rsqrt(sq_bits=sq_bits, index_bits=index_bits, frac_bits=frac_bits)
    sq = rsqrt_inputs(sq_bits, rng)
    r_expected, sh_expected = rsqrt(np.array(sq), rsqrt_table(index_bits, frac_bits),
                                    index_bits)
    got = run_pipeline(dut, [{"sq": v} for v in sq], ("r", "sh"), dut.latency)
    for v, out, r, sh in zip(sq, got, r_expected, sh_expected, strict=True):
        assert (out["r"], out["sh"]) == (r, sh), (
            f"seed {seed}: sq={v}: got r={out['r']} sh={out['sh']}, golden r={r} sh={sh}")


@pytest.mark.parametrize("input_register", [True, False])
@pytest.mark.parametrize(("sq_bits", "index_bits", "frac_bits"), [(33, 8, 12), (13, 5, 7)])
def test_a_held_rsqrt_matches_golden_while_its_input_holds(sq_bits, index_bits, frac_bits,
                                                           input_register):
    # Rsqrt(held=True), as the core's (an op's input sums hold for the op): every value
    # held LATENCY cycles or a few more; r and sh are golden's from LATENCY cycles after
    # the change to the end of the hold, whatever came before. Without the input
    # register (Core(stored_norms=True): the sweep's sum, a register, holds two cycles
    # after the op's FINISH) the latency is a cycle shorter and a value held latency - 1
    # cycles is enough.
    seed = SEED + sq_bits
    rng = np.random.default_rng(seed)
    dut = Rsqrt(sq_bits=sq_bits, index_bits=index_bits, frac_bits=frac_bits, held=True,
                input_register=input_register)
    assert dut.held and dut.latency == Rsqrt.LATENCY - (not input_register)
    values = [int(v) for v in rng.permutation(rsqrt_inputs(sq_bits, rng))[:300]]
    r_expected, sh_expected = rsqrt(np.array(values), rsqrt_table(index_bits, frac_bits),
                                    index_bits)
    checked = []
    # How long a value must hold: while the stages read it (the input register's
    # copy, one cycle later, with it).
    least = dut.latency if input_register else dut.latency - 1

    async def testbench(ctx):
        for v, r, sh in zip(values, r_expected, sh_expected, strict=True):
            ctx.set(dut.sq, v)
            hold = least + int(rng.integers(0, 3))
            for cycle in range(1, hold + 1):
                await ctx.tick()
                if cycle >= dut.latency:
                    got = (ctx.get(dut.r), ctx.get(dut.sh))
                    assert got == (r, sh), f"seed {seed}: sq={v}, {cycle} cycles held: {got}"
            if hold < dut.latency:
                # Held latency - 1 cycles only: r and sh are right in the next cycle
                # (the stored norms take them then), whatever the input is by then.
                ctx.set(dut.sq, int(rng.integers(0, 1 << sq_bits)))
                await ctx.tick()
                got = (ctx.get(dut.r), ctx.get(dut.sh))
                assert got == (r, sh), f"seed {seed}: sq={v}, held {hold} cycles: {got}"
            checked.append(v)

    simulate(dut, testbench)
    assert len(set(checked)) == len(set(values))
    # No copy of the input beside bit_length: one register of sq_bits (the input's), or
    # none without it.
    named = sorted(line.split()[-1] for line in rtlil.convert(dut, name="top").splitlines()
                   if line.startswith("  wire width ") and line.split()[2] == str(sq_bits)
                   and line.split()[-1].startswith("\\"))
    assert named == (["\\given", "\\sq"] if input_register else ["\\sq"])
    with pytest.raises(TypeError, match=r"^Held must be True or False, not 1$"):
        Rsqrt(sq_bits=sq_bits, index_bits=index_bits, frac_bits=frac_bits, held=1)


@pytest.mark.parametrize(("sq_bits", "index_bits", "frac_bits"), [(33, 8, 12), (13, 5, 7)])
def test_a_kept_rsqrt_keeps_the_result_it_was_told_to_take(sq_bits, index_bits, frac_bits):
    # Rsqrt(keep=True), as Core(stored_norms=True) uses it for its one kept norm: the
    # input changes every cycle (the sweep's running sum); in random cycles ``update``
    # takes the result of the input given latency - 1 cycles before, which r and sh
    # show from the next cycle until the next update, whatever the input does.
    seed = SEED + 7 * sq_bits
    rng = np.random.default_rng(seed)
    dut = Rsqrt(sq_bits=sq_bits, index_bits=index_bits, frac_bits=frac_bits, held=True,
                input_register=False, keep=True)
    assert dut.keep and dut.latency == Rsqrt.LATENCY - 1
    values = [int(v) for v in rng.permutation(rsqrt_inputs(sq_bits, rng))[:400]]
    table = rsqrt_table(index_bits, frac_bits)
    given, expected, checked = [], None, []

    async def testbench(ctx):
        nonlocal expected
        for cycle, v in enumerate(values):
            # A held rsqrt reads its input in two cycles: update takes a value given
            # latency - 1 cycles before that held since.
            update = cycle >= 2 and given[-1] == given[-2] and bool(rng.integers(0, 2))
            ctx.set(dut.update, update)
            v = given[-1] if cycle and rng.integers(0, 3) == 0 else v
            ctx.set(dut.sq, v)
            given.append(v)
            await ctx.tick()
            if update:
                r, sh = rsqrt(np.array([given[-3]]), table, index_bits)
                expected = (int(r[0]), int(sh[0]))
            if expected is not None:
                assert (ctx.get(dut.r), ctx.get(dut.sh)) == expected, f"seed {seed}: cycle {cycle}"
                checked.append(update)

    simulate(dut, testbench)
    assert sum(checked) > 20 and len(checked) - sum(checked) > 100


def test_rsqrt_zero_gives_zero() -> None:
    # A zero vector's products must normalise to zero, not to a table entry.
    dut = Rsqrt(sq_bits=16, index_bits=8, frac_bits=12)
    got = run_pipeline(dut, [{"sq": 0}, {"sq": 1}, {"sq": 0}], ("r", "sh"), dut.latency)
    assert got == [{"r": 0, "sh": 0}, {"r": 1 << 12, "sh": 0}, {"r": 0, "sh": 0}]


def scaler_inputs(acc_bits: int, r_bits: int, shift_bits: int, rng: np.random.Generator,
                  count: int) -> list[dict[str, int]]:
    """Random (acc, r, shift) with the extremes, shift 0 and exact halves over-represented."""
    acc_low, acc_high = signed_range(acc_bits)
    r_max, shift_max = unsigned_max(r_bits), unsigned_max(shift_bits)
    inputs = []
    # The corners: both ends of acc against the largest r, zero and one, at every shift.
    for shift in range(shift_max + 1):
        for acc in (acc_low, acc_high, -1, 0, 1):
            for r in (0, 1, r_max):
                inputs.append({"acc": acc, "r": r, "shift": shift})
    # Exact halves, where rounding half up decides: +-(2m + 1) 2**(k-1) with r = 1, so
    # -2.5 must round to -2 and 2.5 to 3.
    for shift in range(1, min(shift_max, acc_bits - 2) + 1):
        for m in (0, 1, 2):
            half = (2 * m + 1) << (shift - 1)
            if half <= acc_high:
                inputs += [{"acc": half, "r": 1, "shift": shift},
                           {"acc": -half, "r": 1, "shift": shift}]
    for _ in range(count):
        acc = int(rng.choice([acc_low, acc_high])) if rng.random() < 0.1 else \
            int(rng.integers(acc_low, acc_high, endpoint=True))
        r = r_max if rng.random() < 0.1 else int(rng.integers(0, r_max, endpoint=True))
        # Shift 0 is its own arm of the hardware's Mux: a quarter of the samples.
        shift = 0 if rng.random() < 0.25 else int(rng.integers(0, shift_max, endpoint=True))
        inputs.append({"acc": acc, "r": r, "shift": shift})
    return inputs


@pytest.mark.parametrize(("acc_bits", "r_bits", "shift_bits"), [
    (24, 13, 5),     # a layer's accumulator against IntFormat's default rsqrt precision
    (8, 4, 3),
    (2, 1, 1),       # the narrowest the component accepts
    (32, 21, 6),     # shifts up to 63: far beyond the product's width
])
def test_scaler_matches_golden(acc_bits: int, r_bits: int, shift_bits: int) -> None:
    seed = SEED + acc_bits * 100 + r_bits
    rng = np.random.default_rng(seed)
    dut = Scaler(acc_bits=acc_bits, r_bits=r_bits, shift_bits=shift_bits)
    inputs = scaler_inputs(acc_bits, r_bits, shift_bits, rng, count=400)
    acc = np.array([i["acc"] for i in inputs])
    r = np.array([i["r"] for i in inputs])
    shift = np.array([i["shift"] for i in inputs])
    expected = scale(acc, r, shift)
    # scale is round_shift of the exact product; the two golden functions must agree.
    np.testing.assert_array_equal(expected, round_shift(acc * r, shift))
    got = run_pipeline(dut, inputs, ("out",), dut.latency)
    for given, out, want in zip(inputs, got, expected, strict=True):
        assert out["out"] == want, f"seed {seed}: {given}: got {out['out']}, golden {want}"


def test_scaler_shift_zero_passes_product() -> None:
    # round_shift(v, 0) = v: no rounding constant may sneak in when shift - 1 wraps.
    dut = Scaler(acc_bits=8, r_bits=4, shift_bits=3)
    inputs = [{"acc": a, "r": 15, "shift": 0} for a in (-128, -1, 0, 1, 127)]
    got = run_pipeline(dut, inputs, ("out",), dut.latency)
    assert [g["out"] for g in got] == [-1920, -15, 0, 15, 1905]


class _SplitScalerWithMultipliers(wiring.Component):
    """SplitScaler with its two borrowed multipliers: products registered
    ``product_latency`` times, as the MAC lanes' side ports deliver them."""

    def __init__(self, **kwargs) -> None:
        self.scaler = SplitScaler(**kwargs)
        members = self.scaler.signature.members
        super().__init__({"acc": In(members["acc"].shape), "r": In(members["r"].shape),
                          "shift": In(members["shift"].shape),
                          "out": Out(members["out"].shape)})

    @property
    def latency(self) -> int:
        return self.scaler.latency

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.scaler = scaler = self.scaler
        m.d.comb += [scaler.acc.eq(self.acc), scaler.r.eq(self.r),
                     scaler.shift.eq(self.shift), self.out.eq(scaler.out)]
        lo, hi = scaler.lo * scaler.factor, scaler.hi * scaler.factor
        for _ in range(scaler.product_latency):
            lo_d, hi_d = Signal.like(scaler.lo_product), Signal.like(scaler.hi_product)
            m.d.sync += [lo_d.eq(lo), hi_d.eq(hi)]
            lo, hi = lo_d, hi_d
        m.d.comb += [scaler.lo_product.eq(lo), scaler.hi_product.eq(hi)]
        return m


@pytest.mark.parametrize(("acc_bits", "r_bits", "shift_bits", "operand_bits"), [
    (13, 13, 5, 16),   # narrower than the split (15 bits): hi is only the sign
    (15, 13, 5, 16),   # exactly the split
    (16, 13, 5, 16),   # one bit above it
    (31, 15, 6, 16),   # the widest that splits onto 16-bit multipliers
])
def test_split_scaler_matches_golden(acc_bits, r_bits, shift_bits, operand_bits) -> None:
    seed = SEED + acc_bits
    rng = np.random.default_rng(seed)
    dut = _SplitScalerWithMultipliers(acc_bits=acc_bits, r_bits=r_bits, shift_bits=shift_bits,
                                      operand_bits=operand_bits, product_latency=3)
    inputs = scaler_inputs(acc_bits, r_bits, shift_bits, rng, count=200)
    expected = scale(np.array([i["acc"] for i in inputs]), np.array([i["r"] for i in inputs]),
                     np.array([i["shift"] for i in inputs]))
    got = run_pipeline(dut, inputs, ("out",), dut.latency)
    for given, out, want in zip(inputs, got, expected, strict=True):
        assert out["out"] == want, f"seed {seed}: {given}: got {out['out']}, golden {want}"


class _GivenScaler(wiring.Component):
    """InputScaler(reciprocal="given") with its activation buffer (``acts``) and the v
    buffer's write port brought out."""

    def __init__(self, fmt, acts: list[int], lean: bool) -> None:
        self.scaler = InputScaler(fmt, sq_bits=20, activations=len(acts), max_inputs=8,
                                  reciprocal="given", lean=lean)
        self.acts = acts
        ports = {name: In(self.scaler.signature.members[name].shape)
                 for name in ("run", "count", "source", "dest", "zero", "r", "sh")}
        super().__init__({**ports, "done": Out(1), "v_en": Out(1), "v_addr": Out(3),
                          "v_data": Out(15)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.scaler = scaler = self.scaler
        m.submodules.acts = acts = memory.Memory(shape=unsigned(self.scaler.fmt.act_bits),
                                                 depth=len(self.acts), init=self.acts)
        wiring.connect(m, acts.read_port(), scaler.act)
        m.d.comb += [getattr(scaler, name).eq(getattr(self, name))
                     for name in ("run", "count", "source", "dest", "zero", "r", "sh")]
        m.d.comb += [self.done.eq(scaler.done), self.v_en.eq(scaler.v.en),
                     self.v_addr.eq(scaler.v.addr), self.v_data.eq(scaler.v.data)]
        return m


def _given_writes(lean: bool, acts: list[int], steps: list[dict]) -> list[tuple]:
    """Every cycle's v write (or None) of ``steps`` run one after the other."""
    fmt = IntFormat(weight_bits=8, state_bits=16, frac_bits=6, input_max=16)
    dut = _GivenScaler(fmt, acts, lean)
    writes = []

    async def testbench(ctx):
        for step in steps:
            for name, value in step.items():
                ctx.set(getattr(dut, name), value)
            ctx.set(dut.run, 1)
            while True:
                await ctx.delay(PERIOD / 4)
                writes.append((ctx.get(dut.v_addr), ctx.get(dut.v_data))
                              if ctx.get(dut.v_en) else None)
                done = ctx.get(dut.done)
                await ctx.tick()
                if done:
                    break
            ctx.set(dut.run, 0)
            await ctx.tick()

    simulate(dut, testbench)
    return writes


def test_a_lean_input_scaler_writes_the_same_v_in_the_same_cycles():
    # InputScaler(lean=True): the write index counted, zero at the write, the scaler's
    # registers without reset. Steps of 1 to 8 activations at other sources and
    # destinations, with zero (v = 0), against the plain form's writes cycle by cycle.
    rng = np.random.default_rng(SEED + 33)
    acts = [int(a) for a in rng.integers(0, 1 << 8, size=16)]
    steps = [dict(count=count, source=int(rng.integers(0, 16 - count + 1)),
                  dest=int(rng.integers(0, 8 - count + 1)), zero=zero,
                  r=int(rng.integers(1 << 12, 1 << 13)), sh=2 * int(rng.integers(0, 8)))
             for count, zero in ((3, 0), (8, 0), (1, 0), (5, 1), (2, 0))]
    plain, lean = _given_writes(False, acts, steps), _given_writes(True, acts, steps)
    assert lean == plain
    assert sum(w is not None for w in plain) == 19
    assert any(w is not None and w[1] != 0 for w in plain)
    with pytest.raises(ValueError, match=r"^The lean input scaler scales only: it needs "
                                         r"reciprocal='given'$"):
        InputScaler(IntFormat(weight_bits=8, state_bits=16, frac_bits=6, input_max=16), sq_bits=20,
                    activations=16, max_inputs=8, lean=True)


def test_a_scaler_without_reset_matches_golden():
    # Scaler(no_reset=True): the input and product registers without a reset (the
    # small part's input scaler: one SB_MAC16 instead of two); the same values in the
    # same cycles.
    dut = Scaler(acc_bits=16, r_bits=13, shift_bits=7, no_reset=True)
    rng = np.random.default_rng(SEED + 44)
    inputs = scaler_inputs(16, 13, 7, rng, count=100)
    expected = scale(np.array([i["acc"] for i in inputs]), np.array([i["r"] for i in inputs]),
                     np.array([i["shift"] for i in inputs]))
    got = run_pipeline(dut, inputs, ("out",), dut.latency)
    assert [g["out"] for g in got] == [int(v) for v in expected]

    def reset_registers(**options) -> int:
        text = rtlil.convert(Scaler(acc_bits=16, r_bits=13, shift_bits=7, **options),
                             name="top")
        return text.count("connect \\ARST") + text.count("\\rst")

    assert reset_registers(no_reset=True) < reset_registers()
    with pytest.raises(TypeError, match=r"^No reset must be True or False, not 1$"):
        Scaler(acc_bits=16, r_bits=13, shift_bits=7, no_reset=1)


def test_a_scaler_with_a_held_r_matches_golden_and_keeps_no_copy():
    # Scaler(held_r=True): r holds for the inputs (the input scaler's, for a step), and
    # goes into the product unregistered: the same values, one register fewer.
    dut = Scaler(acc_bits=16, r_bits=13, shift_bits=7, no_reset=True, held_r=True)
    rng = np.random.default_rng(SEED + 45)
    inputs = [dict(i, r=5000) for i in scaler_inputs(16, 13, 7, rng, count=60)]
    expected = scale(np.array([i["acc"] for i in inputs]), 5000,
                     np.array([i["shift"] for i in inputs]))
    got = run_pipeline(dut, inputs, ("out",), dut.latency)
    assert [g["out"] for g in got] == [int(v) for v in expected]

    def registers(**options) -> int:
        text = rtlil.convert(Scaler(acc_bits=16, r_bits=13, shift_bits=7, **options),
                             name="top")
        return text.count("connect \\Q ")

    assert registers(held_r=True) == registers() - 1
