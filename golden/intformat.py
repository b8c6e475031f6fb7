"""The integer arithmetic of the accelerator, defined to the bit.

Every function here works on NumPy int64 arrays and is the reference for one piece of
hardware: :func:`round_shift` and :func:`saturate` for the scaler, :func:`rsqrt` for the
normaliser, :func:`scan` for the goodness datapath, :func:`argmax` for the result.
docs/integer-format.md states the same rules in prose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "IntFormat",
    "argmax",
    "round_shift",
    "rsqrt",
    "rsqrt_table",
    "saturate",
    "scale",
    "signed_bits",
    "unsigned_bits",
]


def unsigned_bits(max_value: int) -> int:
    """Bits of an unsigned number that holds 0..``max_value``."""
    return max(1, int(max_value).bit_length())


def signed_bits(max_magnitude: int) -> int:
    """Bits of a two's complement number that holds -``max_magnitude``..``max_magnitude``."""
    return int(max_magnitude).bit_length() + 1


def round_shift(value: np.ndarray, shift: np.ndarray | int) -> np.ndarray:
    """Divide by 2**shift, rounding half up: ``(value + 2**(shift-1)) >> shift``.

    ``shift`` >= 0 (elementwise); a shift of 0 returns ``value`` unchanged. The right
    shift is arithmetic (floor), so -2.5 rounds to -2 and 2.5 to 3. Exact for any shift
    while |value| < 2**62.
    """
    value = np.asarray(value, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if np.any(shift < 0):
        raise ValueError(f"shift must be non-negative, not {shift.min()}")
    # int64 shifts by 64 or more wrap; every shift >= 63 gives 0 for |value| < 2**62, and
    # so does 63 itself without overflow.
    shift = np.minimum(shift, 63)
    half = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    return np.right_shift(value + half, shift)


def saturate(value: np.ndarray, bits: int) -> np.ndarray:
    """Clamp to the range of a ``bits``-bit two's complement number."""
    limit = 1 << (bits - 1)
    return np.clip(value, -limit, limit - 1)


def rsqrt_table(index_bits: int, frac_bits: int) -> np.ndarray:
    """The normaliser's look-up table: ``T[m] = round(2**frac_bits / sqrt(m))``, T[0] = 0.

    Rounding is half up, computed in exact integer arithmetic (``isqrt``), so the table
    does not depend on floating point.
    """
    table = np.zeros(1 << index_bits, dtype=np.int64)
    q4 = 1 << (2 * frac_bits + 2)
    for m in range(1, 1 << index_bits):
        # t = floor(2^Q / sqrt(m) + 1/2) is the largest t with (2t - 1)^2 m <= 4^(Q+1).
        # Start from the integer square root and correct by single steps.
        t = (math.isqrt(q4 // m) + 1) // 2
        while (2 * t + 1) ** 2 * m <= q4:
            t += 1
        while t > 0 and (2 * t - 1) ** 2 * m > q4:
            t -= 1
        table[m] = t
    return table


def rsqrt(sq: np.ndarray, table: np.ndarray, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer reciprocal square root: 1/sqrt(sq) ~= r * 2**-(Q + sh/2).

    ``sq`` is reduced by an even right shift ``sh`` to a mantissa m = sq >> sh of at most
    ``index_bits`` bits (at least ``index_bits - 1``, m >= 2**(index_bits - 2), when
    shifted), and r = table[m]. A zero vector has sq = 0 and gets r = 0, so its normalised
    product is zero.

    Returns
    -------
    r, sh : ndarray of int64
    """
    sq = np.asarray(sq, dtype=np.int64)
    if np.any(sq < 0) or np.any(sq >= 1 << 53):
        raise ValueError("sq must lie in 0..2**53-1")
    # frexp's exponent is the bit length, exactly, for integers below 2**53 (their float64
    # conversion is exact); bit_length(0) = 0 as well.
    length = np.frexp(sq.astype(np.float64))[1].astype(np.int64)
    sh = np.maximum(length - index_bits, 0)
    sh = sh + (sh & 1)
    return table[np.right_shift(sq, sh)], sh


def scale(acc: np.ndarray, r: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """The scaler: ``round_shift(acc * r, shift)``."""
    return round_shift(np.asarray(acc, dtype=np.int64) * np.asarray(r, dtype=np.int64), shift)


def argmax(scores: np.ndarray) -> np.ndarray:
    """Index of the largest score along the last axis; ties go to the lowest index."""
    return np.argmax(scores, axis=-1)


@dataclass(frozen=True, kw_only=True)
class IntFormat:
    """The number formats of one integer model.

    Parameters
    ----------
    weight_bits : int
        Width of W, U and V entries (two's complement, symmetric: the most negative code
        is not used).
    state_bits : int
        Width of the pre-activations s, the biases and the goodness pre-activations
        (two's complement, saturating). Activations a = max(s, 0) take
        ``state_bits - 1`` bits unsigned.
    frac_bits : int
        S: s, b and U are fixed point with S fractional bits (one scale for every layer,
        so per-layer goodness adds without alignment).
    input_max : int
        X: input pixels are integers 0..X standing for x = pixel / X.
    rsqrt_index_bits, rsqrt_frac_bits : int
        Size and precision of the normaliser's table (:func:`rsqrt_table`); k = index bits
        may be at most 2 Q + 2 (Q = frac bits), so that no entry of the table is 0.

    Raises
    ------
    ValueError
        If a field is out of its range or the table would hold a 0 entry; the message
        names the fields and the accepted values.
    """

    weight_bits: int = 8
    state_bits: int = 16
    frac_bits: int
    input_max: int
    rsqrt_index_bits: int = 8
    rsqrt_frac_bits: int = 12

    def __post_init__(self) -> None:
        for name, low, high in (("weight_bits", 2, 16), ("state_bits", 4, 24),
                                ("frac_bits", -8, 30), ("input_max", 1, 65535),
                                ("rsqrt_index_bits", 4, 12), ("rsqrt_frac_bits", 4, 20)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..{high}, not {value!r}")
        # T[m] = floor(2^Q / sqrt(m) + 1/2) is 0 for m > 4^(Q+1): a non-zero vector would
        # normalise to zero. The largest index 2^k - 1 stays <= 4^(Q+1) iff k <= 2Q + 2,
        # which only Q = 4 with k = 11 or 12 breaks within the ranges above.
        k, q = self.rsqrt_index_bits, self.rsqrt_frac_bits
        if k > 2 * q + 2:
            raise ValueError(
                f"rsqrt_index_bits {k} with rsqrt_frac_bits {q} makes reciprocal table "
                f"entries 0 (T[m] = 0 for m > 4**(rsqrt_frac_bits + 1) = {4 ** (q + 1)}); "
                f"rsqrt_index_bits must be at most 2 * rsqrt_frac_bits + 2 = {2 * q + 2}, "
                f"or rsqrt_frac_bits at least {(k - 1) // 2}"
            )

    @property
    def weight_max(self) -> int:
        """Largest weight magnitude, 2**(weight_bits-1) - 1."""
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def act_max(self) -> int:
        """Largest activation, 2**(state_bits-1) - 1."""
        return (1 << (self.state_bits - 1)) - 1

    @property
    def input_bits(self) -> int:
        """Width of an input pixel (unsigned)."""
        return unsigned_bits(self.input_max)

    @property
    def act_bits(self) -> int:
        """Width of an activation (unsigned)."""
        return self.state_bits - 1

    @cached_property
    def table(self) -> np.ndarray:
        """The normaliser's look-up table."""
        return rsqrt_table(self.rsqrt_index_bits, self.rsqrt_frac_bits)

    def to_dict(self) -> dict[str, int]:
        """JSON-ready fields."""
        return {name: getattr(self, name) for name in (
            "weight_bits", "state_bits", "frac_bits", "input_max", "rsqrt_index_bits",
            "rsqrt_frac_bits")}
