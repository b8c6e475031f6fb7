# amaranth: UnusedElaboratable=no
"""The model memories: the program (ops), the weights, the biases and the label weights.

One place knows how the model is stored; the rest of the core sees read ports only:

- ``weights="rom"``: block RAM initialised from the model (the bitstream holds it);
- ``"loadable"``: the same memories, also written at run time through ``load``;
- ``"spram"``: the weight words in iCE40 SPRAM (:class:`rtl.weight_store.WeightStore`),
  uninitialised, so they arrive through ``load``; the program stays a ROM;
- ``banks=2`` (loadable only): every memory holds two copies, bank b of word a at address
  2a + b; reads see bank ``bank`` and loads write the other, so a host link can load a
  whole model while the old one stays in use.

Every depth is at least 2: a one-entry memory has a zero-width address, which Verilog
spells [-1:0].
"""

from __future__ import annotations

from amaranth import Cat, Module, Shape, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.collisions import COLLISIONS_UNUSED
from rtl.params import check_choice
from rtl.program import Program, op_layout
from rtl.weight_store import WeightStore

__all__ = ["LOAD_TARGETS", "READ_LATENCY", "WEIGHT_MEMORIES", "ModelMemory", "check_mapping",
           "load_depths", "load_layout", "load_words", "memory_images", "model_memory_depth"]

#: Where the weights live: "rom" (block RAM initialised from the model), "loadable"
#: (the same block RAM, initialised, and writable through the ``load`` port while idle) or
#: "spram" (iCE40 UP5K SPRAM: uninitialised, loaded through ``load``; rtl.weight_store).
WEIGHT_MEMORIES = ("rom", "loadable", "spram")
#: Codes of the memories the ``load`` port writes (nonzero: see rtl.select).
LOAD_TARGETS = {"ops": 1, "weights": 2, "bias": 3, "labels": 4}
#: Cycles from a read port's ``addr`` to its ``data`` (ops, bias, labels): the memory's
#: synchronous read. The weights take :attr:`ModelMemory.weight_latency`.
READ_LATENCY = 1


def memory_images(program: Program) -> dict[str, list[int]]:
    """The words of every model-dependent memory, as the core stores them."""
    layout = op_layout(program)
    return {
        "ops": [int(layout.const(vars(op)).as_value().value) for op in program.ops],
        "weights": [_pack(word, program.stored_weight_bits) for word in program.weight_words],
        "bias": [v & ((1 << program.stored_bias_bits) - 1) for v in program.bias],
        "labels": [_pack(word, program.stored_weight_bits) for word in program.label_words],
    }


def load_layout(program: Program) -> data.StructLayout:
    """One write of the ``load`` port: which memory, which word, the word."""
    images = memory_images(program)
    widths = [op_layout(program).size, program.lanes * program.stored_weight_bits,
              program.stored_bias_bits, program.label_lanes * program.stored_weight_bits]
    depth = max(2, *(len(words) for words in images.values()))
    return data.StructLayout({"target": 3, "addr": range(depth), "data": max(widths)})


def load_words(program: Program) -> list[tuple[int, int, int]]:
    """(target, address, word) writes that load a whole model through ``load``."""
    return [(LOAD_TARGETS[name], addr, word)
            for name, words in memory_images(program).items()
            for addr, word in enumerate(words)]


def load_depths(program: Program) -> dict[int, int]:
    """Words a load may write in each memory, by target code (:data:`LOAD_TARGETS`): the
    model's word count there, so addresses ``0 .. depth - 1`` are valid. A memory's own
    depth is at least 2 (and doubled with two banks), but a word beyond the model's is
    read by nothing, and a LOAD there is refused rather than wrapped."""
    return {LOAD_TARGETS[name]: len(words) for name, words in memory_images(program).items()}


def model_memory_depth(words: int, banks: int) -> int:
    """Entries of a model memory of ``words`` words in ``banks`` banks."""
    return max(2, words) * banks


def _pack(values: list[int], bits: int) -> int:
    """Little-endian concatenation of two's complement fields."""
    word = 0
    for i, v in enumerate(values):
        word |= (v & ((1 << bits) - 1)) << (i * bits)
    return word


def check_mapping(weights: object, banks: object) -> None:
    """Raise ValueError for a mapping :class:`ModelMemory` does not implement."""
    check_choice("Weight memory", weights, WEIGHT_MEMORIES)
    if banks not in (1, 2) or isinstance(banks, bool):
        raise ValueError(f"Weight banks must be 1 or 2, not {banks!r}")
    if banks == 2 and weights != "loadable":
        raise ValueError(f"Two weight banks need weights='loadable' (loads write the "
                         f"second bank), not {weights!r}")


class ModelMemory(wiring.Component):
    """The program, weights, biases and label weights of one model, behind read ports.

    Parameters
    ----------
    program : Program
        What the memories hold (:func:`memory_images`) and their widths.
    weights : {"rom", "loadable", "spram"}
        The mapping (module docstring).
    banks : {1, 2}
        Copies of every memory (2: ``"loadable"`` only).

    Attributes
    ----------
    mapping : str
        ``weights`` (the member of that name is the weights' read port).
    word_bits : dict of str to int
        Bits per word of each memory (ops, weights, bias, labels).
    weight_store : rtl.weight_store.WeightStore
        The weight memory (made here, so that a testbench reaches an SPRAM store's
        :attr:`~rtl.weight_store.WeightStore.simulated` contents).

    Members
    -------
    ops : Out(memory.ReadPort.Signature(addr_width=..., shape=unsigned(op_layout.size)))
        The program, one op per word; ``data`` follows ``addr`` by :data:`READ_LATENCY`.
    weights : In(wiring.Signature({"addr": Out(range(words)), "data": In(unsigned(P w))}))
        The weight words (:class:`rtl.weight_store.WeightStore`'s read port); ``data``
        follows ``addr`` by :attr:`weight_latency`.
    bias : Out(memory.ReadPort.Signature(addr_width=..., shape=unsigned(state_bits)))
        One bias per neuron of every layer.
    labels : Out(memory.ReadPort.Signature(addr_width=..., shape=unsigned(G w)))
        The label weights, G per word.
    load : In(stream.Signature(load_layout(program)))
        Not with ``"rom"``: a write of the memory ``target`` names (:data:`LOAD_TARGETS`)
        at word ``addr``, taken in a cycle with ``valid`` and ``ready``. ``"spram"``
        ignores writes to the program.
    accept : In(1)
        Not with ``"rom"``: ``load.ready`` (the core accepts loads only while idle).
    bank : In(1)
        Only with ``banks=2``: the bank reads see; loads write the other.
    """

    def __init__(self, program: Program, *, weights: str, banks: int = 1) -> None:
        if not isinstance(program, Program):
            raise TypeError(f"Program must be an rtl.program.Program, not {program!r}")
        check_mapping(weights, banks)
        self.program, self.mapping, self.banks = program, weights, banks
        self.images = memory_images(program)
        self.word_bits = {"ops": op_layout(program).size,
                          "weights": program.lanes * program.stored_weight_bits,
                          "bias": program.stored_bias_bits,
                          "labels": program.label_lanes * program.stored_weight_bits}
        self.words = {"ops": len(program.ops), "weights": len(program.weight_words),
                      "bias": sum(program.model.config.hidden),
                      "labels": len(program.label_words)}

        def read(name: str) -> wiring.Signature:
            return memory.ReadPort.Signature(
                addr_width=Shape.cast(range(max(2, self.words[name]))).width,
                shape=unsigned(self.word_bits[name]))

        members = {
            "ops": Out(read("ops")),
            "weights": In(wiring.Signature({
                "addr": Out(range(max(2, self.words["weights"]))),
                "data": In(unsigned(self.word_bits["weights"]))})),
            "bias": Out(read("bias")),
            "labels": Out(read("labels")),
        }
        if weights != "rom":
            members["load"] = In(stream.Signature(load_layout(program)))
            members["accept"] = In(1)
        if banks == 2:
            members["bank"] = In(1)
        super().__init__(members)
        if weights == "spram":
            self.weight_store = WeightStore(width=self.word_bits["weights"],
                                            depth=self.depth("weights"), kind="spram")
        else:
            self.weight_store = WeightStore(
                width=self.word_bits["weights"], depth=self.depth("weights"), kind="bram",
                init=self._init("weights"), writable=weights == "loadable",
                latency=self.weight_latency)
        # The sequencer and the training passes time their reads by the program's
        # latency: a store answering at another would feed them the wrong words.
        if self.weight_store.latency != self.weight_latency:
            raise RuntimeError(f"The weight store reads in {self.weight_store.latency} "
                               f"cycles, the program expects {self.weight_latency}")

    @property
    def weight_latency(self) -> int:
        """Cycles from ``weights.addr`` to ``weights.data`` (the weight store's: the
        program's :attr:`rtl.program.Program.weight_latency`, from the model's word count;
        two banks of a model of 8,193 to 16,384 words keep 2 and Yosys's multiplexer)."""
        return self.program.weight_latency

    def depth(self, name: str) -> int:
        """Entries of memory ``name`` (one of :data:`LOAD_TARGETS`), every bank."""
        return model_memory_depth(self.words[name], self.banks)

    def _init(self, name: str) -> list[int]:
        """Initial contents of memory ``name``: with two banks each word twice."""
        return [word for word in self.images[name] for _ in range(self.banks)]

    def _address(self, word, bank):
        """The memory address of ``word`` in ``bank`` (the bank is the lowest bit)."""
        return word if self.banks == 1 else Cat(bank, word)

    def elaborate(self, platform) -> Module:
        m = Module()
        bank = self.bank if self.banks == 2 else None
        memories = {}
        for name, submodule in (("ops", "op_rom"), ("bias", "bias_rom"),
                                ("labels", "label_rom")):
            # The label words' collided reads are used (rtl.collisions).
            m.submodules[submodule] = mem = memory.Memory(
                shape=unsigned(self.word_bits[name]), depth=self.depth(name),
                init=self._init(name), attrs=COLLISIONS_UNUSED if name == "bias" else None)
            port, read = getattr(self, name), mem.read_port()
            m.d.comb += [read.en.eq(port.en), read.addr.eq(self._address(port.addr, bank)),
                         port.data.eq(read.data)]
            memories[name] = mem
        store = self.weight_store
        # A "bram" store is named as before the split: the ECP5 floorplan finds its
        # slices by this name.
        m.submodules["weight_store" if self.mapping == "spram" else "weight_rom"] = store
        m.d.comb += [store.read.addr.eq(self._address(self.weights.addr, bank)),
                     self.weights.data.eq(store.read.data)]
        if self.mapping == "rom":
            return m

        # -- run-time loading -----------------------------------------------------------
        load = self.load
        m.d.comb += load.ready.eq(self.accept)
        fire = load.valid & self.accept
        writable = [("weights", store.write), ("bias", memories["bias"].write_port()),
                    ("labels", memories["labels"].write_port())]
        # An SPRAM core (iCE40) keeps its few-word program in a ROM: written at run
        # time it would become flip-flops, iCE40 having no distributed RAM.
        if self.mapping != "spram":
            writable.append(("ops", memories["ops"].write_port()))
        # Two banks: loads write the bank that inferences do not read.
        address = self._address(load.payload.addr, ~bank if bank is not None else None)
        for name, port in writable:
            m.d.comb += [
                port.addr.eq(address[:len(port.addr)]),
                port.data.eq(load.payload.data[:len(port.data)]),
                port.en.eq(fire & (load.payload.target == LOAD_TARGETS[name])),
            ]
        return m
