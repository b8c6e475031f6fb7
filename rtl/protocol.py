"""Wire codes shared by the gateware, the host library and the tests.

One definition of every code that crosses a wire or a module boundary: the host link's
frames (docs/host-link.md) and, below them, the core's op kinds and phases. The enums are
:mod:`amaranth.lib.enum` enums with a shape, so the gateware compares and assigns them as
hardware values, and ``IntEnum`` subclasses, so the host writes them as bytes
(``bytes([Command.IDENT])``) and reads a received byte back with ``Command(byte)``.
"""

from __future__ import annotations

from amaranth.lib import crc, enum

__all__ = [
    "FRAME_CRC", "LOAD_BEGIN_SIZE", "LOAD_CHECKSUM", "PROTOCOL_VERSION",
    "READ_SIZE", "SYNC", "TRAIN_RECORD_SIZE", "Command",
    "ErrorCode", "OpKind", "Phase", "Reply", "TrainingPhase",
]

# -- the host link ------------------------------------------------------------------------

#: The byte every frame starts with, both ways; not covered by the frame's crc.
SYNC = 0xA5
#: What IDENT's first payload byte says. 5 had no TRAIN and READ and a 27-byte IDENT; 4
#: had no tag byte in the frame header; 3 had no memory depths in IDENT (and no error 9);
#: 2 had no flags in byte 8; 1 had no load transaction and a 14-byte IDENT.
PROTOCOL_VERSION = 6
#: Payload bytes of LOAD_BEGIN: model hash (4), whole-model checksum (4).
LOAD_BEGIN_SIZE = 8
#: Payload bytes of READ: target (1), first address (2), word count (2).
READ_SIZE = 5
#: Bytes of one sample's record in a TRAIN reply: predicted label (1), wrong label (1),
#: cycles (4).
TRAIN_RECORD_SIZE = 6

#: The crc byte closing every frame: CRC-8/SMBus (polynomial 0x07, init 0, no reflection,
#: no final xor) over cmd, tag, the two length bytes and the payload, a byte at a time.
#: ``FRAME_CRC.compute(data)`` is the reference; check value 0xF4 for b"123456789".
FRAME_CRC = crc.catalog.CRC8_SMBUS(data_width=8)
#: The whole-model checksum of a load transaction: CRC-32/MPEG-2 (polynomial 0x04C11DB7,
#: init 0xFFFFFFFF, no reflection, no final xor) over the LOAD payloads in the order sent.
#: Check value 0x0376E6E7 for b"123456789".
LOAD_CHECKSUM = crc.catalog.CRC32_MPEG_2(data_width=8)


class Command(enum.IntEnum, shape=8):
    """A frame's ``cmd`` byte from the host."""

    IDENT = 0x01           #: empty payload; answered by Reply.IDENT
    IMAGE = 0x02           #: D pixels, one byte each; answered by Reply.RESULT
    LOAD = 0x03            #: target (1), address (2), data; one memory write
    LOAD_BEGIN = 0x04      #: model hash (4), checksum (4): opens a load transaction
    LOAD_COMMIT = 0x05     #: empty: closes it if the checksum matches every write
    TRAIN = 0x06           #: lambda (1), then per sample label (1) and D pixels
    READ = 0x07            #: target (1), address (2), count (2): stored words back


class Reply(enum.IntEnum, shape=8):
    """A frame's ``cmd`` byte from the device: exactly one per complete frame received."""

    IDENT = 0x81           #: the identity (rtl.host_link.LinkIdentity.to_bytes)
    RESULT = 0x82          #: label, K scores, cycles
    LOAD = 0x83            #: the write has been made
    LOAD_BEGIN = 0x84      #: a load transaction is open
    LOAD_COMMIT = 0x85     #: the checksum matched; the loaded model is in use
    TRAIN = 0x86           #: per sample: predicted label, wrong label, cycles
    READ = 0x87            #: the words, ``read_bytes`` each (IDENT), little-endian
    ERROR = 0xEE           #: one byte, an ErrorCode


class ErrorCode(enum.IntEnum, shape=8):
    """The payload byte of an ERROR reply. :attr:`message` says what it means."""

    CRC = 1
    COMMAND = 2
    LENGTH = 3
    LOAD = 4
    MODEL = 5
    SEQUENCE = 6
    CHECKSUM = 7
    NO_MODEL = 8
    ADDRESS = 9
    TRAIN = 10
    LAMBDA = 11
    LABEL = 12

    @property
    def message(self) -> str:
        """What the device refused and why, for a host's error message."""
        return _MESSAGES[self]


_MESSAGES = {
    ErrorCode.CRC: "bad crc",
    ErrorCode.COMMAND: "unknown command",
    ErrorCode.LENGTH: "wrong payload length for the command",
    ErrorCode.LOAD: "load not supported by this core, or a target outside 1..4",
    ErrorCode.MODEL: "the weights are for another model configuration or formats (model "
                     "hash differs); nothing was changed",
    ErrorCode.SEQUENCE: "LOAD or LOAD_COMMIT outside a load transaction (send LOAD_BEGIN "
                        "first)",
    ErrorCode.CHECKSUM: "the whole-model checksum does not match the writes made; the load "
                        "is void and images are refused until a load commits",
    ErrorCode.NO_MODEL: "no complete model in the memories (a load is open or failed; "
                        "TRAIN and READ also wait for an open load to commit); load one",
    ErrorCode.ADDRESS: "LOAD or READ beyond the target memory's depth (IDENT's depths), or a "
                       "READ of no words or of a memory it cannot read; nothing was written",
    ErrorCode.TRAIN: "TRAIN or READ on a bitstream that does not train (IDENT's trains "
                     "flag is 0); build it with the training core",
    ErrorCode.LAMBDA: "TRAIN with a lambda outside the schedule the gateware was built for "
                      "(IDENT's lr_first..lr_last); nothing was trained",
    ErrorCode.LABEL: "TRAIN with a label outside 0..K-1; nothing was trained",
}


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


class TrainingPhase(enum.Enum, shape=4):
    """What a cycle of the training core is for: its ``phase`` output
    (:class:`rtl.training_core.TrainingCore`).

    - ``IDLE``: not counted: no sample, its pixels still coming in, or its record
      offered
    - ``MATRIX_VECTOR`` to ``CONTROL``: the inference (its iteration, between updates),
      as the inference core's :class:`Phase` says, with the same codes (a hold of the
      inference core before the next iteration's first op is ``CONTROL``)
    - ``WRONG_LABEL``: the inference's result taken, then y' (waiting for its draw)
    - ``PREPARE``: a layer's words, learning signal and inputs' v, side by side
    - ``WEIGHT_PASS``: a layer's W and V read-modify-write pass
    - ``BIAS_LABEL_PASS``: a layer's b and U pass
    """

    IDLE = Phase.IDLE.value
    MATRIX_VECTOR = Phase.MATRIX_VECTOR.value
    LOOP_FEEDBACK = Phase.LOOP_FEEDBACK.value
    NORMALISATION = Phase.NORMALISATION.value
    LABEL_SCAN = Phase.LABEL_SCAN.value
    CONTROL = Phase.CONTROL.value
    WRONG_LABEL = 6
    PREPARE = 7
    WEIGHT_PASS = 8
    BIAS_LABEL_PASS = 9
