"""A CRC's next state as XOR trees, read off :mod:`amaranth.lib.crc`'s software model."""

from __future__ import annotations

from amaranth import Cat, Value
from amaranth.lib import crc

__all__ = ["crc_tree"]


def crc_tree(parameters: crc.Parameters, state: Value, word: Value) -> Value:
    """The state of the CRC ``parameters`` after one data word, as XOR trees.

    A CRC without reflection or final xor is linear over GF(2) in (state, word), so each
    output bit is the XOR of the input bits whose unit vectors set it; they are read off the
    library's own software model (``Parameters.compute``), as
    :class:`amaranth.lib.crc.Processor` does.

    Not the Processor itself: its register restarts only at the initial value (the host
    link's pending load checksum restarts from the running one) and, for the two frame
    CRC-8s, its restart multiplexer before the XOR trees cost 31 more LUT4s than these
    trees under the link's own state machine (1,071 against 1,040 for the host link of the
    iCEBreaker digits build, its core a blackbox, ``synth_ice40 -dsp``); that build is at
    97 % of the UP5K's logic cells.
    """
    algorithm = parameters.algorithm
    if algorithm.reflect_input or algorithm.reflect_output or algorithm.xor_output:
        raise ValueError(f"CRC must have neither reflection nor final xor, not {algorithm!r}")
    width, data_width = algorithm.crc_width, parameters.data_width
    if len(state) != width or len(word) != data_width:
        raise ValueError(f"CRC state and word must be {width} and {data_width} bits wide, "
                         f"not {len(state)} and {len(word)}")

    def step(initial: int, data: int) -> int:
        algorithm.initial_crc = initial
        return algorithm(data_width).compute([data])

    state_columns = [step(1 << i, 0) for i in range(width)]
    word_columns = [step(0, 1 << i) for i in range(data_width)]
    out = []
    for j in range(width):
        taps = [state[i] for i in range(width) if state_columns[i] >> j & 1] + \
            [word[i] for i in range(data_width) if word_columns[i] >> j & 1]
        acc = taps[0]
        for tap in taps[1:]:
            acc = acc ^ tap
        out.append(acc)
    return Cat(*out)
