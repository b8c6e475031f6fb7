"""The random bits of on-chip training: a 32-bit Galois linear-feedback shift register.

One :class:`Lfsr` is the hardware's generator, defined to the bit (docs/integer-training.md):

- State: 32 bits, never zero. Seeded with ``1 + seed mod (2**32 - 1)``.
- Step (right-shifting Galois form of the primitive polynomial
  x^32 + x^22 + x^2 + x + 1): ``out = s & 1; s >>= 1; if out: s ^= 0x80200003``.
- Word: 32 steps, then the whole state is the word. Consecutive words are 32 steps apart,
  so every bit of a word has been renewed since the previous word.

Words are linear in the state (over GF(2)), so the n words that follow a state are
``s_w = A^w s_0`` with A = (one step)^32. :meth:`Lfsr.words` uses precomputed columns of
A^w to produce a block of words at once, identical to calling :meth:`Lfsr.word` n times.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LFSR_MASK", "LFSR_WIDTH", "Lfsr", "draw_negative"]

#: Register width.
LFSR_WIDTH = 32
#: Toggle mask of the right-shifting Galois register: taps 32, 22, 2, 1.
LFSR_MASK = 0x80200003
#: Steps per word.
_WORD_STEPS = 32
_PERIOD = (1 << LFSR_WIDTH) - 1
_FULL = (1 << LFSR_WIDTH) - 1

# _COLUMNS[w - 1, b] = A^w e_b: the word w steps-of-32 after the state with only bit b set.
_COLUMNS = np.zeros((0, LFSR_WIDTH), dtype=np.uint64)


def _step_int(state: int) -> int:
    out = state & 1
    state >>= 1
    return state ^ LFSR_MASK if out else state


def _columns(n: int) -> np.ndarray:
    """Rows 1..n of the jump table (grown on demand, kept for the process)."""
    global _COLUMNS
    have = _COLUMNS.shape[0]
    if have >= n:
        return _COLUMNS[:n]
    size = max(n, 2 * have, 256)
    table = np.zeros((size, LFSR_WIDTH), dtype=np.uint64)
    table[:have] = _COLUMNS
    if have == 0:
        # A's columns: 32 single steps from each unit vector.
        first = []
        for b in range(LFSR_WIDTH):
            s = 1 << b
            for _ in range(_WORD_STEPS):
                s = _step_int(s)
            first.append(s)
        table[0] = first
        have = 1
    shifts = np.arange(LFSR_WIDTH, dtype=np.uint64)
    a_cols = table[0]
    for w in range(have, size):
        # A^(w+1) e_b = A (A^w e_b): apply A to the 32 previous columns at once.
        bits = ((table[w - 1][:, None] >> shifts[None, :]) & np.uint64(1)).astype(bool)
        table[w] = np.bitwise_xor.reduce(np.where(bits, a_cols[None, :], np.uint64(0)), axis=1)
    _COLUMNS = table
    return _COLUMNS[:n]


class Lfsr:
    """The 32-bit Galois LFSR of the training rule.

    Parameters
    ----------
    seed : int
        Any non-negative integer; the state starts at ``1 + seed mod (2**32 - 1)``.

    Attributes
    ----------
    state : int
        The current 32-bit state (never 0).
    """

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
        self.state = 1 + seed % _PERIOD

    def step(self) -> int:
        """One shift; returns the bit shifted out."""
        out = self.state & 1
        self.state = _step_int(self.state)
        return out

    def word(self) -> int:
        """Advance 32 steps and return the state."""
        for _ in range(_WORD_STEPS):
            self.state = _step_int(self.state)
        return self.state

    def words(self, n: int) -> np.ndarray:
        """The next ``n`` words as uint64 (equal to ``n`` calls of :meth:`word`)."""
        out = np.empty(n, dtype=np.uint64)
        done = 0
        while done < n:
            block = min(n - done, 4096)
            cols = _columns(block)
            s = self.state
            mask = np.array([(s >> b) & 1 for b in range(LFSR_WIDTH)], dtype=bool)
            out[done:done + block] = np.bitwise_xor.reduce(cols[:, mask], axis=1)
            self.state = int(out[done + block - 1])
            done += block
        return out


def draw_negative(lfsr: Lfsr, label: int, num_classes: int) -> int:
    """A wrong label, uniform over the K - 1 labels other than ``label``.

    r = word & (2^b - 1) with b = bits(K - 2), drawn again while r >= K - 1 (rejection, so
    no value of r is more likely than another); the wrong label is label + 1 + r, minus K
    if that reaches K. One word is drawn at least (for K = 2, b = 0 and r = 0).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, not {num_classes}")
    if not 0 <= label < num_classes:
        raise ValueError(f"label must lie in 0..{num_classes - 1}, not {label}")
    mask = (1 << (num_classes - 2).bit_length()) - 1
    while True:
        r = lfsr.word() & mask
        if r < num_classes - 1:
            break
    wrong = label + 1 + r
    return wrong - num_classes if wrong >= num_classes else wrong
