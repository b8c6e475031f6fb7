"""Wire codes that gateware, host and tests share, as enums with hardware shapes."""

from __future__ import annotations

from amaranth.lib import enum

__all__ = ["OpKind", "Phase"]


# -- the core: op kinds and phases ---------------------------------------------------
# Nonzero codes where a register compares with them: a comparison with zero lowers to a
# lint-unclean logical NOT (rtl.select).

class OpKind(enum.Enum, shape=2):
    """What an op of the core's program does (:mod:`rtl.program`).

    - ``NONE``: no op: the sequencer's op register before its first DECODE
    - ``LAYER``: compute one layer at one iteration, tile by tile of P neurons
    - ``SCAN``: the label scan of one layer (FFDL/FFCL)
    - ``DONE``: argmax and the result
    """

    NONE = 0
    LAYER = 1
    SCAN = 2
    DONE = 3


class Phase(enum.Enum, shape=3):
    """What a cycle of the core is for: its ``phase`` output.

    - ``IDLE``: not counted: the core is idle or offering its result
    - ``MATRIX_VECTOR``: a feed-forward MAC pass takes an element
    - ``LOOP_FEEDBACK``: a feedback MAC pass takes an element (FFCL)
    - ``NORMALISATION``: the lanes wait for the normaliser: a pass held until the sweep
      of the previous one can take its accumulators, the reciprocal square roots settling
      before a layer (when they take longer than the first pass), the last sweep of a
      layer draining, storing its sum of squares (and FFL's score update)
    - ``LABEL_SCAN``: the goodness datapath scans a layer (SCAN)
    - ``CONTROL``: fetching and decoding an op, the argmax
    """

    IDLE = 0
    MATRIX_VECTOR = 1
    LOOP_FEEDBACK = 2
    NORMALISATION = 3
    LABEL_SCAN = 4
    CONTROL = 5
