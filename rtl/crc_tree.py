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
    link's pending load checksum restarts from the running one), and for the two frame
    CRC-8s its restart multiplexer before the XOR trees costs more than these trees under
    the parser's and the serialiser's own control. Measured on the iCEBreaker digits build
    (FFCL 64-64, 8 lanes, 1 label lane, SPRAM, shared multipliers; a 2-epoch model):
    the host link alone (core a blackbox, ``synth_ice40 -dsp``) 1,068 LUT4s with
    Processors against 1,054 with these trees; the whole board ``ffcl-hw synth RUN --board
    icebreaker --lanes 8 --label-lanes 1 --freq 30``, seed 1: 5,091 against 5,083 logic
    cells of 5,280, 31.4 against 32.7 MHz (the Processors' build's slowest path in the
    link, this one's in the core).
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
