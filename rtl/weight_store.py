"""The weight store: the core's widest memory, one word of P weights per address.

Two mappings behind one contract (a read port with two cycles of latency: the address
register, then the memory's own read; three for a store deeper than one block RAM, see
below; and an optional write port for run-time loads):

- ``"bram"``: :class:`amaranth.lib.memory.Memory` initialised from the model; Yosys puts
  it in block RAM (iCE40 EBR, ECP5 DP16KD), which the bitstream initialises. Elaborated
  for ECP5 synthesis (:func:`rtl.board.fpga_family` of the platform is ``"ecp5"``) the
  word is cut into slices as wide as a block is in the shallowest configuration that
  holds every word (:func:`bram_slices`): each slice is then one block deep and its
  outputs go straight to the MAC lanes. Left to itself, Yosys packed the ULX3S-85F's
  3,888 x 688 weights two configurations to a block and chose between them with a multiplexer per
  bit, whose select, driving 688 of them, was one of the build's most congested nets.
  The read address is registered in copies (:class:`rtl.replica.RegisterCopy`), one per
  :data:`SLICES_PER_COPY` slices: one register driving all 172 blocks' addresses took
  20 ns to route across the ULX3S-85F.
  A store deeper than :data:`PART_DEPTH` words (the deepest block, an ECP5 DP16KD as
  16,384 x 1) is built with three cycles of latency (:func:`weight_store_latency`): each
  slice is cut into parts of at most :data:`PART_DEPTH` words, each its own memory with
  a registered output, and the part is chosen after those registers by the address's top
  bits, delayed to match. Left to Yosys, the two blocks of a slice fed a multiplexer
  straight from their outputs: clock-to-out, a route across the die and the multiplexer
  held MNIST 784-256-256's 9-lane training build (30,160 words) to 61 MHz. Simulation has
  the same parts and registers, so the latency is the same everywhere.
- ``"spram"``: the iCE40 UP5K's single-port RAMs, 16K x 16 bits each, side by side: four
  deliver 64 bits a cycle, exactly the 8 int8 weights 8 MAC lanes consume. A word of at
  most 32 bits is kept in two *banks* (:func:`spram_banks`), even addresses in one and odd
  in the other, each its own SPRAMs side by side: a cycle may then read a word in one
  bank and write another in the other, which the training core's W and V passes use to
  read and write every cycle (:class:`rtl.weight_pass.WeightPass`, ``port="banked"``;
  one bank of 64 bits lets them read only every other cycle). SPRAM is not
  initialised at configuration, so this mapping is always writable and starts empty: the
  board loads the weights through its host link. Elaborated for iCE40 synthesis (a
  platform for which :func:`rtl.board.fpga_family` gives ``"ice40"``, e.g. iCEBreaker's) it
  instantiates ``SB_SPRAM256KA``; elaborated anywhere else (Amaranth's simulator, the
  Verilog for cocotb) it is an uninitialised :class:`~amaranth.lib.memory.Memory` with
  the same timing and the same single port (below), so the tests load weights and check
  results bit for bit; its contents are :attr:`WeightStore.simulated`, which a testbench
  may fill as the host link's loads would.

A single-port RAM reads or writes in a cycle, never both. ``SB_SPRAM256KA`` takes one
ADDRESS; with WREN high it writes DATAIN there and its DATAOUT register takes no word
(Yosys's simulation model of the cell, share/ice40/cells_sim.v, sets it to x). The
hardware mapping gives the write the address (the read of that cycle is lost); the
simulation model returns :data:`SPRAM_POISON` (all ones) for the read whose address
meets its bank in a write cycle of that bank, so a schedule that overlaps a read with a
write of the same bank gives wrong words in the tests, as it would on the board. The
inference core writes only while idle, when it reads nothing; the training core's W and
V passes read and write on alternate cycles on one bank (``port="single"``) and read one
bank while writing the other on two (``port="banked"``), :attr:`WeightStore.port`.
"""

from __future__ import annotations

from itertools import accumulate

from amaranth import ClockSignal, Instance, Module, Mux, Signal, unsigned
from amaranth.hdl import MemoryData
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from rtl.board import fpga_family
from rtl.params import check_choice, check_positive_int
from rtl.replica import REPLICA_PREFIX, RegisterCopy

__all__ = ["BRAM_SHAPES", "PART_DEPTH", "PORTS", "SLICED_FAMILIES", "SLICES_PER_COPY",
           "SPRAM_DEPTH", "SPRAM_POISON", "SPRAM_WIDTH", "SPRAM_WORD_BITS",
           "WEIGHT_STORE_KINDS", "WeightStore", "bram_slices", "check_spram_word",
           "spram_banks", "spram_blocks", "store_port", "weight_store_latency"]

#: Mappings of the weight store.
WEIGHT_STORE_KINDS = ("bram", "spram")
#: Words and bits per word of one iCE40 SB_SPRAM256KA.
SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16
#: SPRAM blocks of the UP5K.
_UP5K_SPRAMS = 4
#: Bits of the widest SPRAM weight word: the UP5K's four SPRAMs side by side.
SPRAM_WORD_BITS = _UP5K_SPRAMS * SPRAM_WIDTH
#: What the simulated SPRAM returns for a read overlapping a write (all ones, cut to the
#: word: the board's DATAOUT is undefined then, and a word updated from it is wrong).
SPRAM_POISON = (1 << SPRAM_WORD_BITS) - 1
#: (depth, width) configurations of one block RAM per family, shallowest first: iCE40
#: SB_RAM40_4K, ECP5 DP16KD (36 bits wide as a read-only PDPW16KD).
BRAM_SHAPES = {"ice40": ((256, 16), (512, 8), (1024, 4), (2048, 2)),
               "ecp5": ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2),
                        (16384, 1))}
#: Words of one part of a deep ``"bram"`` store: the deepest ECP5 block configuration.
PART_DEPTH = BRAM_SHAPES["ecp5"][-1][0]
#: Address bits within a part (the part number is the bits above).
_PART_BITS = PART_DEPTH.bit_length() - 1


def weight_store_latency(depth: int) -> int:
    """Read latency of a weight store of ``depth`` words: 2 (address copies, the memory's
    read) when one block RAM is deep enough, 3 (and an output register per part) beyond
    :data:`PART_DEPTH`. Decided from the depth alone, not the platform, so that the
    simulated core and the synthesized one take the same cycles."""
    check_positive_int("Weight store depth", depth)
    return 2 if depth <= PART_DEPTH else 3


#: How a store's cycles may be shared by a read and a write (what the training core's W
#: and V passes schedule, :class:`rtl.weight_pass.WeightPass`): ``"dual"``, a read and a
#: write in every cycle (block RAM); ``"single"``, one or the other (one SPRAM bank);
#: ``"banked"``, a read of one bank and a write of the other (two SPRAM banks, by the
#: address's lowest bit).
PORTS = ("dual", "single", "banked")


def spram_banks(width: int) -> int:
    """Banks of an SPRAM weight store of ``width``-bit words: 2 (even and odd addresses)
    when two of them fit the UP5K's SPRAMs side by side, i.e. at most
    :data:`SPRAM_WORD_BITS` / 2 bits, else 1."""
    check_positive_int("Weight word width", width)
    return 2 if width <= SPRAM_WORD_BITS // 2 else 1


def store_port(kind: str, width: int) -> str:
    """The :data:`PORTS` kind of a weight store of ``kind`` and ``width``-bit words."""
    check_choice("Weight store kind", kind, WEIGHT_STORE_KINDS)
    if kind == "bram":
        return "dual"
    return "banked" if spram_banks(width) == 2 else "single"


def spram_blocks(*, width: int, depth: int) -> int:
    """SB_SPRAM256KA blocks a ``depth`` x ``width`` weight store takes: its
    :func:`spram_banks`, each of ``width`` / 16 SPRAMs side by side.

    Raises
    ------
    ValueError
        If the store is deeper than one SPRAM (16,384 words, with one bank or two) or
        wider than the UP5K's four SPRAMs together.
    """
    check_positive_int("Weight word width", width)
    check_positive_int("Weight store depth", depth)
    blocks = -(-width // SPRAM_WIDTH)
    if blocks > _UP5K_SPRAMS:
        raise ValueError(f"An SPRAM weight word is at most {SPRAM_WORD_BITS} bits "
                         f"(four SPRAMs side by side), not {width}")
    # Two banks would hold twice the words, but a store deeper than one SPRAM would
    # read with the deep store's latency (rtl.program's weight_latency follows the word
    # count): the banks are for bandwidth only.
    if depth > SPRAM_DEPTH:
        raise ValueError(f"An SPRAM weight store holds at most {SPRAM_DEPTH} words, "
                         f"not {depth}")
    return spram_banks(width) * blocks


def check_spram_word(*, lanes: int, store_bits: int, weight_bits: int) -> None:
    """Raise ValueError unless a word of ``lanes`` stored weights of ``store_bits`` bits
    fits an SPRAM word (:data:`SPRAM_WORD_BITS`); the message names both numbers and
    the stored width or the lane count that would fit (a stored width is at least the
    forward ``weight_bits``)."""
    check_positive_int("Lane count", lanes)
    check_positive_int("Stored weight width", store_bits)
    bits = lanes * store_bits
    if bits <= SPRAM_WORD_BITS:
        return
    fixes = []
    if SPRAM_WORD_BITS // lanes >= weight_bits:
        fixes.append(f"store_bits {SPRAM_WORD_BITS // lanes} (rule.store_bits)")
    if SPRAM_WORD_BITS // store_bits:
        fixes.append(f"at most {SPRAM_WORD_BITS // store_bits} lanes")
    raise ValueError(f"{lanes} lanes x {store_bits} stored bits = {bits} bits; SPRAM words "
                     f"hold {SPRAM_WORD_BITS}: use {' or '.join(fixes)}")


#: Block RAM slices that share one copy of the registered read address (on the ULX3S-85F,
#: about the 16 block RAMs of one column of the floorplan).
SLICES_PER_COPY = 16

#: Families whose ``"bram"`` store is cut into slices one block deep. Not iCE40: its few
#: blocks are better used by Yosys's packing (digits, 8 lanes: 24 blocks instead of 32
#: sliced), and at its clocks the multiplexers cost nothing.
SLICED_FAMILIES = ("ecp5",)


def bram_slices(family: str, *, depth: int, width: int) -> list[int]:
    """Widths of the slices a ``"bram"`` store of ``depth`` words of ``width`` bits is cut
    into on ``family``.

    On :data:`SLICED_FAMILIES`: as few slices as the widest configuration of one block
    that holds ``depth`` words allows (the deepest configuration if none does), as even
    as possible, so that no slice is too narrow for a block. Elsewhere one slice.

    Raises
    ------
    ValueError
        For a family without block RAM shapes.
    """
    check_choice("Block RAM family", family, BRAM_SHAPES)
    check_positive_int("Weight store depth", depth)
    check_positive_int("Weight word width", width)
    if family not in SLICED_FAMILIES:
        return [width]
    shapes = BRAM_SHAPES[family]
    widest = next((bits for d, bits in shapes if d >= depth), shapes[-1][1])
    count = -(-width // widest)
    narrow, wide = divmod(width, count)
    return [narrow + 1] * wide + [narrow] * (count - wide)


class WeightStore(wiring.Component):
    """``depth`` words of ``width`` bits, read with two (or three) cycles of latency.

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
        Give the store a write port. ``"spram"`` is always writable, and a cycle that
        writes a bank returns no word of it: the read whose address reaches that bank in
        that cycle (the one given :attr:`latency` - 1 cycles before) gives
        :data:`SPRAM_POISON` in simulation, and is lost on the board (module docstring).
    latency : {2, 3}
        Cycles from ``read.addr`` to ``read.data`` (:func:`weight_store_latency` of the
        depth is the one that meets timing): 3 adds a register after each part of at most
        :data:`PART_DEPTH` words (``"bram"`` only).

    Attributes
    ----------
    banks : int
        ``"spram"``: its banks (:func:`spram_banks`); ``"bram"``: 1.
    port : str
        What a cycle may do (:data:`PORTS`, :func:`store_port`).
    simulated : amaranth.hdl.MemoryData or None
        ``"spram"`` only: the contents of the simulation model (the memory elaborated
        without an iCE40 platform), empty at reset like the SPRAM; a testbench may write
        words into it (``ctx.set(store.simulated[addr], word)``) instead of loading them.

    Members
    -------
    read : In(wiring.Signature({"addr": Out(range(depth)), "data": In(unsigned(width))}))
        ``data`` is the word at the ``addr`` of :attr:`latency` cycles before.
    write : In(wiring.Signature({"addr": Out(range(depth)), "data": Out(unsigned(width)),
    "en": Out(1)}))
        Only when writable: the word is stored at the clock edge while ``en`` is high.
    """

    def __init__(self, *, width: int, depth: int, kind: str, init: list[int] | None = None,
                 writable: bool = False, latency: int = 2) -> None:
        self.width = check_positive_int("Weight word width", width)
        self.depth = check_positive_int("Weight store depth", depth, minimum=2)
        check_choice("Weight store kind", kind, WEIGHT_STORE_KINDS)
        self.kind = kind
        if latency not in (self.LATENCY, self.DEEP_LATENCY) or isinstance(latency, bool):
            raise ValueError(f"Weight store latency must be {self.LATENCY} or "
                             f"{self.DEEP_LATENCY}, not {latency!r}")
        if kind == "spram" and latency != self.LATENCY:
            raise ValueError(f"An SPRAM weight store reads with latency {self.LATENCY} "
                             f"(its words fit one SPRAM deep), not {latency}")
        self._latency = latency
        init = list(init or [])
        if kind == "spram":
            if init:
                raise ValueError("An SPRAM weight store cannot be initialised (SPRAM comes up "
                                 "empty at configuration); load the weights instead")
            self.blocks = spram_blocks(width=width, depth=depth)
            writable = True
        self.banks = spram_banks(width) if kind == "spram" else 1
        self.port = store_port(kind, width)
        if len(init) > depth:
            raise ValueError(f"Weight store initial contents must have at most {depth} "
                             f"words, not {len(init)}")
        self.init = init
        self.writable = bool(writable)
        self.simulated = (MemoryData(shape=unsigned(width), depth=depth, init=[])
                          if kind == "spram" else None)
        members = {"read": In(wiring.Signature({"addr": Out(range(depth)),
                                                 "data": In(unsigned(width))}))}
        if self.writable:
            members["write"] = In(wiring.Signature({"addr": Out(range(depth)),
                                                     "data": Out(unsigned(width)),
                                                     "en": Out(1)}))
        super().__init__(members)

    #: Cycles from ``read.addr`` to ``read.data`` of a store one block deep: the address
    #: copies, the memory's read.
    LATENCY = 2
    #: The same for a store in parts: the address copies, the read, the part's register.
    DEEP_LATENCY = 3

    @property
    def latency(self) -> int:
        """Cycles from ``read.addr`` to ``read.data``."""
        return self._latency

    def _read_addresses(self, m: Module, count: int) -> list:
        """``count`` copies of the registered read address, each in a module of its own."""
        copies = []
        for i in range(count):
            m.submodules[f"{REPLICA_PREFIX}{i}"] = copy = RegisterCopy(width=len(self.read.addr))
            m.d.comb += copy.d.eq(self.read.addr)
            copies.append(copy.q)
        return copies

    def elaborate(self, platform) -> Module:
        m = Module()
        if self.kind == "spram" and fpga_family(platform) == "ice40":
            self._sprams(m)
            return m
        if self.kind == "spram":
            self._single_port(m)
            return m
        family = fpga_family(platform)
        # Simulation and Verilog for cocotb: one memory (the slices behave the same).
        slices = (bram_slices(family, depth=self.depth, width=self.width)
                  if family in BRAM_SHAPES else [self.width])
        read_addrs = self._read_addresses(m, -(-len(slices) // SLICES_PER_COPY))
        if self._latency == self.DEEP_LATENCY:
            self._parts(m, slices, read_addrs)
            return m
        for i, (lo, bits) in enumerate(zip(accumulate([0, *slices[:-1]]), slices,
                                           strict=True)):
            mask = (1 << bits) - 1
            m.submodules[f"slice_{i}"] = mem = memory.Memory(
                shape=unsigned(bits), depth=self.depth,
                init=[(word >> lo) & mask for word in self.init])
            read = mem.read_port()
            m.d.comb += [read.addr.eq(read_addrs[i // SLICES_PER_COPY]),
                         self.read.data[lo:lo + bits].eq(read.data)]
            if self.writable:
                write = mem.write_port()
                m.d.comb += [write.addr.eq(self.write.addr),
                             write.data.eq(self.write.data[lo:lo + bits]),
                             write.en.eq(self.write.en)]
        return m

    def _sprams(self, m: Module) -> None:
        """The SB_SPRAM256KA instances: per bank, its blocks side by side, one address for
        both directions (the write's while it writes that bank, else the read's); the
        word out is the bank the read address named a cycle before."""
        [read_addr] = self._read_addresses(m, 1)
        per_bank = self.blocks // self.banks
        # Two banks: the address's lowest bit picks the bank, the rest the word in it.
        bank_bits = self.banks.bit_length() - 1
        outputs = []
        for b in range(self.banks):
            # One bank keeps the names (and the netlist) of the store before the banks.
            suffix = f"_{b}" if bank_bits else ""
            if bank_bits:
                writes = self.write.en & (self.write.addr[0] == b)
                rows = (self.write.addr[1:], read_addr[1:])
                word = Signal(self.width, name=f"bank_{b}")
            else:
                writes, rows, word = self.write.en, (self.write.addr, read_addr), self.read.data
            addr = Signal(14, name=f"addr{suffix}")
            m.d.comb += addr.eq(Mux(writes, *rows))
            for i in range(per_bank):
                lo, hi = i * SPRAM_WIDTH, min((i + 1) * SPRAM_WIDTH, self.width)
                data_in, data_out = Signal(SPRAM_WIDTH, name=f"din{suffix}_{i}"), \
                    Signal(SPRAM_WIDTH, name=f"dout{suffix}_{i}")
                m.d.comb += [data_in.eq(self.write.data[lo:hi]), word[lo:hi].eq(data_out)]
                m.submodules[f"spram_{b * per_bank + i}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=addr, i_DATAIN=data_in, i_MASKWREN=0b1111,
                    i_WREN=writes, i_CHIPSELECT=1, i_CLOCK=ClockSignal("sync"),
                    # Awake and powered (POWEROFF is active low).
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                    o_DATAOUT=data_out)
            outputs.append(word)
        if self.banks == 1:
            return
        # DATAOUT follows ADDRESS by a clock: so does the bank choice.
        bank = Signal(name="read_bank")
        m.d.sync += bank.eq(read_addr[0])
        m.d.comb += self.read.data.eq(Mux(bank, outputs[1], outputs[0]))

    def _single_port(self, m: Module) -> None:
        """The SPRAM's simulation model: one memory (:attr:`simulated`) read at the
        registered address, whose read meeting a write of its bank (the only bank, or
        the one the address's lowest bit names) is :data:`SPRAM_POISON`."""
        [read_addr] = self._read_addresses(m, 1)
        m.submodules.spram = mem = memory.Memory(data=self.simulated)
        read, write = mem.read_port(), mem.write_port()
        # The SPRAM's DATAOUT takes no word in a write cycle: the read answered in the
        # next cycle is poison, not the old or the new word. With two banks only a write
        # of the read's bank does that.
        collides = self.write.en
        if self.banks == 2:
            collides = self.write.en & (self.write.addr[0] == read_addr[0])
        wrote = Signal()
        m.d.sync += wrote.eq(collides)
        m.d.comb += [read.addr.eq(read_addr),
                     write.addr.eq(self.write.addr), write.data.eq(self.write.data),
                     write.en.eq(self.write.en),
                     self.read.data.eq(Mux(wrote, SPRAM_POISON & ((1 << self.width) - 1),
                                           read.data))]

    def _parts(self, m: Module, slices: list[int], read_addrs: list) -> None:
        """The slices of a deep store, each a module ``replica_slice_I`` of memories
        ``part_J`` (words J x PART_DEPTH on) with registered outputs, chosen by the part
        number delayed as long as the read.

        Each slice keeps its own module in synthesis (:data:`REPLICA_PREFIX`): flattened
        into the top, Yosys 0.70's ABC9 failed an internal assertion (``GetSize(conn.first)
        == GetSize(conn.second)`` in ABC_OPS_REINTEGRATE) on the MNIST 784-256-256
        training build, and each slice's select registers stay its own. The ECP5
        floorplan (``ffcl_hw.flows.floorplan``, cores of many lanes, whose stores are one
        block deep) does not see the blocks of kept modules.
        """
        parts = -(-self.depth // PART_DEPTH)
        for i, (lo, bits) in enumerate(zip(accumulate([0, *slices[:-1]]), slices,
                                           strict=True)):
            m.submodules[f"{REPLICA_PREFIX}slice_{i}"] = part_module = Module()
            addr = read_addrs[i // SLICES_PER_COPY]
            mask = (1 << bits) - 1
            # The part of the word being read: with the memory's read, then with its
            # output register (one copy per slice, beside its blocks).
            select_read = Signal(range(parts), name=f"part_read_{i}", reset_less=True)
            select_out = Signal(range(parts), name=f"part_out_{i}", reset_less=True)
            part_module.d.sync += [select_read.eq(addr >> _PART_BITS),
                                   select_out.eq(select_read)]
            outputs = []
            for j in range(parts):
                first = j * PART_DEPTH
                words = min(PART_DEPTH, self.depth - first)
                part_module.submodules[f"part_{j}"] = mem = memory.Memory(
                    shape=unsigned(bits), depth=max(2, words),
                    init=[(word >> lo) & mask for word in self.init[first:first + words]])
                read = mem.read_port()
                # Registered beside the block: the route across the die starts here.
                out = Signal(bits, name=f"part_{j}_q", reset_less=True)
                part_module.d.comb += read.addr.eq(addr[:len(read.addr)])
                part_module.d.sync += out.eq(read.data)
                outputs.append(out)
                if self.writable:
                    write = mem.write_port()
                    part_module.d.comb += [
                        write.addr.eq(self.write.addr[:len(write.addr)]),
                        write.data.eq(self.write.data[lo:lo + bits]),
                        write.en.eq(self.write.en
                                    & ((self.write.addr >> _PART_BITS) == j))]
            chosen = outputs[0]
            for j in range(1, parts):
                chosen = Mux(select_out == j, outputs[j], chosen)
            part_module.d.comb += self.read.data[lo:lo + bits].eq(chosen)
