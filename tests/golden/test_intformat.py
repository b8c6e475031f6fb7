"""The integer primitives of the accelerator against exact Python-int references."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from golden.intformat import (
    IntFormat,
    argmax,
    round_shift,
    rsqrt,
    rsqrt_table,
    saturate,
    scale,
    signed_bits,
    unsigned_bits,
)


def _round_shift_exact(value: int, shift: int) -> int:
    """floor(value / 2**shift + 1/2) in Python ints (no width limit)."""
    return value if shift == 0 else (value + (1 << (shift - 1))) >> shift


@pytest.mark.parametrize(("value", "shift", "expected"), [
    (5, 1, 3),            # 2.5 -> 3: half up
    (-5, 1, -2),          # -2.5 -> -2: half up, not away from zero
    (6, 2, 2),            # 1.5 -> 2
    (-6, 2, -1),          # -1.5 -> -1
    (7, 2, 2),            # 1.75 -> 2
    (-7, 2, -2),          # -1.75 -> -2
    (5, 2, 1),            # 1.25 -> 1
    (-5, 2, -1),          # -1.25 -> -1
    (-1, 1, 0),           # -0.5 -> 0
    (-3, 1, -1),          # -1.5 -> -1
    (123, 0, 123),        # shift 0: unchanged
    (-123, 0, -123),
    (0, 17, 0),
    (2**52, 52, 1),
    (2**52, 53, 1),       # exactly 0.5 -> 1
    (2**52 - 1, 53, 0),   # a hair below 0.5 -> 0
    (2**52, 70, 0),       # shifts beyond int64's width still round to zero
    (-(2**52), 64, 0),
    (2**61, 63, 0),
    (-(2**61), 63, 0),
])
def test_round_shift_rounds_half_up_with_an_arithmetic_shift(value, shift, expected):
    assert int(round_shift(np.int64(value), shift)) == expected == _round_shift_exact(value, shift)


def test_round_shift_matches_the_exact_reference_elementwise():
    rng = np.random.default_rng(1)
    values = rng.integers(-(2**52), 2**52, size=4000)
    values[:8] = [0, 1, -1, 2**52 - 1, -(2**52), 3, -3, 2]
    shifts = rng.integers(0, 70, size=values.size)
    got = round_shift(values, shifts)
    expected = [_round_shift_exact(int(v), int(s)) for v, s in zip(values, shifts, strict=True)]
    assert got.tolist() == expected


@pytest.mark.parametrize("shift", [-1, np.array([0, 3, -2])])
def test_round_shift_refuses_a_negative_shift(shift):
    with pytest.raises(ValueError, match="shift must be non-negative, not -"):
        round_shift(np.array([1, 2, 3]), shift)


@pytest.mark.parametrize(("bits", "values", "expected"), [
    (4, [-100, -9, -8, -1, 0, 7, 8, 100], [-8, -8, -8, -1, 0, 7, 7, 7]),
    (16, [-40000, -32768, 32767, 32768], [-32768, -32768, 32767, 32767]),
    (24, [2**40, -(2**40), 5], [2**23 - 1, -(2**23), 5]),
])
def test_saturate_clamps_to_the_twos_complement_range(bits, values, expected):
    assert saturate(np.array(values, dtype=np.int64), bits).tolist() == expected


def test_scale_is_round_shift_of_the_product():
    acc = np.array([1000, -1000, 7, -7])
    assert scale(acc, 3, 2).tolist() == [_round_shift_exact(int(a) * 3, 2) for a in acc]
    r = np.array([[1], [2], [3], [4]])
    shifts = np.array([[0], [1], [2], [3]])
    assert scale(acc[:, None], r, shifts).ravel().tolist() == [
        _round_shift_exact(int(a) * int(k), int(s))
        for a, k, s in zip(acc, r.ravel(), shifts.ravel(), strict=True)]


@pytest.mark.parametrize(("function", "value", "bits"), [
    (unsigned_bits, 0, 1), (unsigned_bits, 1, 1), (unsigned_bits, 255, 8),
    (unsigned_bits, 256, 9), (signed_bits, 0, 1), (signed_bits, 127, 8),
    (signed_bits, 128, 9), (signed_bits, 2**23 - 1, 24),
])
def test_widths(function, value, bits):
    assert function(value) == bits


@pytest.mark.parametrize(("index_bits", "frac_bits"), [(4, 4), (8, 4), (8, 12), (10, 8), (12, 12)])
def test_rsqrt_table_against_floating_point_for_small_q(index_bits, frac_bits):
    # For Q <= 12 no 2**Q / sqrt(m) lies within float64 error of a rounding tie.
    table = rsqrt_table(index_bits, frac_bits)
    expected = [0] + [math.floor(2**frac_bits / math.sqrt(m) + 0.5)
                      for m in range(1, 1 << index_bits)]
    assert table.tolist() == expected


@pytest.mark.parametrize(("index_bits", "frac_bits"), [(8, 20), (12, 20), (6, 16)])
def test_rsqrt_table_meets_its_definition_exactly_for_large_q(index_bits, frac_bits):
    # t = floor(2^Q / sqrt(m) + 1/2)  <=>  (2t - 1)^2 m <= 4^(Q+1) < (2t + 1)^2 m.
    table = rsqrt_table(index_bits, frac_bits)
    q4 = 4 ** (frac_bits + 1)
    assert table[0] == 0
    for m in range(1, 1 << index_bits):
        t = int(table[m])
        assert (2 * t - 1) ** 2 * m <= q4 < (2 * t + 1) ** 2 * m, m


def _rsqrt_bound(index_bits: int, frac_bits: int) -> float:
    """The relative error bound of docs/integer-format.md.

    Table rounding: |T[m] - 2^Q/sqrt(m)| <= 1/2 with m < 2^k, a relative error below
    a = 2^(k/2 - Q - 1). Truncation: a shifted mantissa has m >= 2^(k-2) and drops less
    than one unit, so sqrt(sq / (m 2^sh)) < sqrt(1 + 1/m) <= 1 + 2^-(k-1) = 1 + b.
    The ratio of r 2^-(Q+sh/2) to 1/sqrt(sq) therefore lies in [1 - a, (1 + a)(1 + b)).
    """
    a = 2.0 ** (index_bits / 2 - frac_bits - 1)
    b = 2.0 ** -(index_bits - 1)
    return a + b + a * b


def _sq_samples(rng: np.random.Generator) -> np.ndarray:
    special = [1, 2, 3, 4, 255, 256, 257, 2**52, 2**53 - 1, 2**40 + 1]
    special += [1 << p for p in range(53)] + [(1 << p) - 1 for p in range(2, 54)]
    lengths = rng.integers(1, 54, size=20000)
    random = [int(rng.integers(1 << (n - 1), 1 << n)) if n > 1 else 1 for n in lengths]
    return np.array(special + random, dtype=np.int64)


@pytest.mark.parametrize(("index_bits", "frac_bits"), [(8, 12), (6, 10), (12, 16), (4, 8)])
def test_rsqrt_relative_error_is_within_the_derived_bound(index_bits, frac_bits):
    table = rsqrt_table(index_bits, frac_bits)
    sq = _sq_samples(np.random.default_rng(index_bits))
    r, sh = rsqrt(sq, table, index_bits)
    assert np.all(sh % 2 == 0)
    mantissa = sq >> sh
    assert np.all(mantissa < 1 << index_bits)
    # Shifted mantissas keep at least index_bits - 1 bits: that is what bounds truncation.
    assert np.all(mantissa[sh > 0] >= 1 << (index_bits - 2))
    assert np.all(sh[sq < 1 << index_bits] == 0)
    ratio = np.array([float(ri) * math.sqrt(int(s)) * 2.0 ** -(frac_bits + int(h) / 2)
                      for ri, s, h in zip(r, sq, sh, strict=True)])
    error = np.abs(ratio - 1)
    bound = _rsqrt_bound(index_bits, frac_bits)
    assert error.max() <= bound
    # The bound is not vacuous: random inputs come within a factor 2 of it.
    assert error.max() > bound / 2


def test_rsqrt_of_zero_is_zero_and_bad_sums_are_refused():
    table = rsqrt_table(8, 12)
    r, sh = rsqrt(np.array([0, 1]), table, 8)
    assert r.tolist() == [0, 1 << 12] and sh.tolist() == [0, 0]
    for bad in (-1, 2**53):
        with pytest.raises(ValueError, match=r"sq must lie in 0..2\*\*53-1"):
            rsqrt(np.array([bad]), table, 8)


@pytest.mark.parametrize(("scores", "expected"), [
    ([[1, 3, 3, 2]], [1]),
    ([[5, 5, 5]], [0]),
    ([[-1, -1, -2]], [0]),
    ([[0, 0, 9, 9], [9, 0, 0, 9]], [2, 0]),
])
def test_argmax_ties_go_to_the_lowest_index(scores, expected):
    assert argmax(np.array(scores)).tolist() == expected


@pytest.mark.parametrize(("field", "value", "message"), [
    ("weight_bits", 1, "weight_bits must be an integer in 2..16, not 1"),
    ("weight_bits", 17, "weight_bits must be an integer in 2..16, not 17"),
    ("state_bits", True, "state_bits must be an integer in 4..24, not True"),
    ("state_bits", 3, "state_bits must be an integer in 4..24, not 3"),
    ("frac_bits", 2.0, "frac_bits must be an integer in -8..30, not 2.0"),
    ("frac_bits", -9, "frac_bits must be an integer in -8..30, not -9"),
    ("input_max", 0, "input_max must be an integer in 1..65535, not 0"),
    ("rsqrt_index_bits", 13, "rsqrt_index_bits must be an integer in 4..12, not 13"),
    ("rsqrt_frac_bits", 3, "rsqrt_frac_bits must be an integer in 4..20, not 3"),
])
def test_int_format_refuses_out_of_range_fields(field, value, message):
    fields = {"frac_bits": 5, "input_max": 16, field: value}
    with pytest.raises(ValueError, match=message):
        IntFormat(**fields)


@pytest.mark.parametrize("index_bits", [11, 12])
def test_int_format_refuses_a_table_with_zero_entries(index_bits):
    # Q = 4: T[m] = 0 for m > 4^(Q+1) = 1024, so the top entries of an 11- or 12-bit
    # table would be 0 and a non-zero vector would normalise to zero.
    assert rsqrt_table(index_bits, 4)[-1] == 0
    message = (f"rsqrt_index_bits {index_bits} with rsqrt_frac_bits 4 makes reciprocal "
               "table entries 0 (T[m] = 0 for m > 4**(rsqrt_frac_bits + 1) = 1024); "
               "rsqrt_index_bits must be at most 2 * rsqrt_frac_bits + 2 = 10, or "
               "rsqrt_frac_bits at least 5")
    with pytest.raises(ValueError, match=re.escape(message)):
        IntFormat(frac_bits=5, input_max=16, rsqrt_index_bits=index_bits, rsqrt_frac_bits=4)


@pytest.mark.parametrize(("index_bits", "frac_bits"), [(10, 4), (12, 5)])
def test_int_format_accepts_the_largest_tables_without_zero_entries(index_bits, frac_bits):
    # k = 2Q + 2, and Q = 5 for k = 12: T[2^k - 1] rounds up to 1, not down to 0.
    fmt = IntFormat(frac_bits=5, input_max=16, rsqrt_index_bits=index_bits,
                    rsqrt_frac_bits=frac_bits)
    assert fmt.table[1:].min() == 1


def test_int_format_accepts_exactly_the_tables_without_zero_entries():
    # Every (k, Q) of the fields' ranges: accepted iff T[1..2^k-1] holds no 0.
    for index_bits in range(4, 13):
        for frac_bits in range(4, 21):
            fields = {"frac_bits": 5, "input_max": 16, "rsqrt_index_bits": index_bits,
                      "rsqrt_frac_bits": frac_bits}
            if rsqrt_table(index_bits, frac_bits)[1:].min() > 0:
                IntFormat(**fields)
            else:
                with pytest.raises(ValueError, match="makes reciprocal table entries 0"):
                    IntFormat(**fields)


def test_int_format_derived_facts_and_round_trip():
    fmt = IntFormat(weight_bits=8, state_bits=16, frac_bits=5, input_max=255)
    assert (fmt.weight_max, fmt.act_max, fmt.act_bits, fmt.input_bits) == (127, 32767, 15, 8)
    assert IntFormat(**fmt.to_dict()) == fmt
    assert fmt.table.tolist() == rsqrt_table(8, 12).tolist()
