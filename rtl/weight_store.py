"""The weight store: the core's widest memory, one word of P weights per address.

Two mappings behind one contract (a read port with one cycle of latency, like a block RAM
read port, and an optional write port for run-time loads):

- ``"bram"``: an :class:`amaranth.lib.memory.Memory` initialised from the model; Yosys puts
  it in block RAM (iCE40 EBR, ECP5 DP16KD), which the bitstream initialises.
- ``"spram"``: the iCE40 UP5K's single-port RAMs, 16K x 16 bits each, side by side: four
  deliver 64 bits a cycle, exactly the 8 int8 weights 8 MAC lanes consume. SPRAM is not
  initialised at configuration, so this mapping is always writable and starts empty: the
  board loads the weights through its host link. Elaborated for iCE40 synthesis (a
  platform whose ``family`` is ``"ice40"``, see :class:`rtl.board.SynthesisTarget`) it
  instantiates ``SB_SPRAM256KA``; elaborated anywhere else (Amaranth's simulator, the
  Verilog for cocotb) it is an uninitialised :class:`~amaranth.lib.memory.Memory` with
  the same timing, so the tests load weights and check results bit for bit.

A single-port RAM cannot read and write in the same cycle; the core writes only while
idle, when it reads nothing.
"""

from __future__ import annotations

from amaranth import ClockSignal, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from rtl.params import check_positive_int

__all__ = ["SPRAM_DEPTH", "SPRAM_WIDTH", "WEIGHT_STORE_KINDS", "WeightStore", "spram_blocks"]

#: Mappings of the weight store.
WEIGHT_STORE_KINDS = ("bram", "spram")
#: Words and bits per word of one iCE40 SB_SPRAM256KA.
SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16
#: SPRAM blocks of the UP5K.
_UP5K_SPRAMS = 4


def spram_blocks(*, width: int, depth: int) -> int:
    """SB_SPRAM256KA blocks a ``depth`` x ``width`` weight store takes (side by side).

    Raises
    ------
    ValueError
        If the store is deeper than one SPRAM or wider than the UP5K's four together.
    """
    check_positive_int("Weight word width", width)
    check_positive_int("Weight store depth", depth)
    if depth > SPRAM_DEPTH:
        raise ValueError(f"An SPRAM weight store holds at most {SPRAM_DEPTH} words, "
                         f"not {depth}")
    blocks = -(-width // SPRAM_WIDTH)
    if blocks > _UP5K_SPRAMS:
        raise ValueError(f"An SPRAM weight word is at most {_UP5K_SPRAMS * SPRAM_WIDTH} bits "
                         f"(four SPRAMs side by side), not {width}")
    return blocks


class WeightStore(wiring.Component):
    """``depth`` words of ``width`` bits, read with one cycle of latency.

    Parameters
    ----------
    width : int
        Bits per word (P weights).
    depth : int
        Words, at least 2 (a one-word memory has a zero-width address).
    kind : {"bram", "spram"}
        The mapping (module docstring).
    init : list of int, optional
        Initial words; ``"bram"`` only (SPRAM comes up uninitialised).
    writable : bool
        Give the store a write port. ``"spram"`` is always writable.

    Members
    -------
    read : In(wiring.Signature({"addr": Out(range(depth)), "data": In(unsigned(width))}))
        ``data`` is the word at the ``addr`` of the previous cycle.
    write : In(wiring.Signature({"addr": Out(range(depth)), "data": Out(unsigned(width)),
    "en": Out(1)}))
        Only when writable: the word is stored at the clock edge while ``en`` is high.
    """

    def __init__(self, *, width: int, depth: int, kind: str, init: list[int] | None = None,
                 writable: bool = False) -> None:
        self.width = check_positive_int("Weight word width", width)
        self.depth = check_positive_int("Weight store depth", depth, minimum=2)
        if kind not in WEIGHT_STORE_KINDS:
            raise ValueError(f"Weight store kind must be one of "
                             f"{', '.join(WEIGHT_STORE_KINDS)}, not {kind!r}")
        self.kind = kind
        init = list(init or [])
        if kind == "spram":
            if init:
                raise ValueError("An SPRAM weight store cannot be initialised (SPRAM comes up "
                                 "empty at configuration); load the weights instead")
            self.blocks = spram_blocks(width=width, depth=depth)
            writable = True
        if len(init) > depth:
            raise ValueError(f"Weight store initial contents must have at most {depth} "
                             f"words, not {len(init)}")
        self.init = init
        self.writable = bool(writable)
        members = {"read": In(wiring.Signature({"addr": Out(range(depth)),
                                                 "data": In(unsigned(width))}))}
        if self.writable:
            members["write"] = In(wiring.Signature({"addr": Out(range(depth)),
                                                     "data": Out(unsigned(width)),
                                                     "en": Out(1)}))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        if self.kind == "spram" and getattr(platform, "family", None) == "ice40":
            # One address for both directions: writes happen only while nothing is read.
            addr = Signal(14)
            m.d.comb += addr.eq(Mux(self.write.en, self.write.addr, self.read.addr))
            for i in range(self.blocks):
                lo, hi = i * SPRAM_WIDTH, min((i + 1) * SPRAM_WIDTH, self.width)
                data_in, data_out = Signal(SPRAM_WIDTH, name=f"din_{i}"), \
                    Signal(SPRAM_WIDTH, name=f"dout_{i}")
                m.d.comb += [data_in.eq(self.write.data[lo:hi]),
                             self.read.data[lo:hi].eq(data_out)]
                m.submodules[f"spram_{i}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=addr, i_DATAIN=data_in, i_MASKWREN=0b1111,
                    i_WREN=self.write.en, i_CHIPSELECT=1, i_CLOCK=ClockSignal("sync"),
                    # Awake and powered (POWEROFF is active low).
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                    o_DATAOUT=data_out)
            return m
        m.submodules.memory = mem = memory.Memory(
            shape=unsigned(self.width), depth=self.depth, init=self.init)
        read = mem.read_port()
        m.d.comb += [read.addr.eq(self.read.addr), self.read.data.eq(read.data)]
        if self.writable:
            write = mem.write_port()
            m.d.comb += [write.addr.eq(self.write.addr), write.data.eq(self.write.data),
                         write.en.eq(self.write.en)]
        return m
