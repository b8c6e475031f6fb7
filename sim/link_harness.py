"""Formal harness of the host link: free bytes in, free byte acceptance out, any core.

:class:`LinkHarness` builds a :class:`rtl.host_link.HostLink` whose UART receiver and
transmitter are replaced by free byte streams (the solver picks every byte and when it
arrives, under the stream contract the UART receiver is proved to keep) and whose core is
a free one (its ``image.ready``, ``load.ready`` and ``result`` are inputs of the harness,
the result under the stream contract): the properties then hold for any byte sequence and
any core behaviour, and a frame takes a few cycles instead of a few hundred. The parser,
the load transaction, the reply serialiser and the link's own sequencing are the real
ones, elaborated from a copy of their modules (:func:`sim.formal.module_variant`), which a
test may seed with a bug.

The properties (``check``), each stated where it is true:

``"writes"``
    The link offers a memory write (``core.load.valid``) only while the parser holds a
    complete frame whose crc byte matched, whose command is LOAD and whose length is a
    LOAD's, inside an open load transaction. The core takes writes only through ``load``
    and ModelMemory's write enables fire only with ``load.valid`` and ``load.ready``
    (proved on the core), so no memory is written for a frame whose crc failed.
``"bounds"``
    The link offers a memory write only if the frame's target byte names a memory and its
    16-bit address field is below that memory's word count (the model's words there), and
    the write carries that target and address unchanged (no truncation wraps it).
``"bank"``
    The bank select toggles exactly in the cycle after the link accepts a LOAD_COMMIT whose
    crc byte matched, whose payload is empty, inside an open transaction (a LOAD_BEGIN
    accepted since the last commit), while the transaction's running CRC-32 of the writes
    made equals the checksum LOAD_BEGIN announced. (That the running CRC-32 is the
    protocol's is checked in simulation against the host library,
    tests/rtl/test_load_transaction.py; with a bit-serial reference CRC-32 in the
    harness the solver took over 9 minutes and the induction did not close.)
``"streams"``
    The stream contract (valid held until ready, payload stable while held) of every
    stream inside the link: the parser's frame, the serialiser's request, the load write
    and the image to the core, the bytes to the UART transmitter.

The link's own registers appear in the properties and in helper assertions (its step,
the transaction's ``loading``/``running``/``announced``): true of every reachable state,
they make the properties provable by k-induction rather than only to a depth.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from amaranth import Cat, Fragment, Module, ResetSignal, Signal
from amaranth.hdl import Assert, Assume
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.core import Core
from rtl.model_memory import LOAD_TARGETS, memory_images
from rtl.protocol import Command
from sim.formal import internal_signal, module_variant
from sim.properties import stream_held

__all__ = ["CHECKS", "LinkHarness"]

#: The properties a :class:`LinkHarness` can state (module docstring).
CHECKS = ("writes", "bounds", "bank", "streams")

#: What the link's fan-out probes show: each a valid that must not depend on its ready.
PROBES = data.StructLayout({"load_valid": 1, "image_valid": 1})


class _ByteSource(wiring.Component):
    """In place of the UART receiver: the harness's free byte stream."""

    def __init__(self, feed, busy) -> None:
        self.feed, self.feed_busy = feed, busy
        super().__init__({"rx": In(1, init=1), "data": Out(stream.Signature(8)),
                          "error": Out(1), "busy": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += [self.data.valid.eq(self.feed.valid),
                     self.data.payload.eq(self.feed.payload),
                     self.feed.ready.eq(self.data.ready), self.busy.eq(self.feed_busy)]
        return m


class _ByteSink(wiring.Component):
    """In place of the UART transmitter: bytes out to the harness, taken when it says."""

    def __init__(self, out) -> None:
        self.out = out
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += [self.out.valid.eq(self.data.valid), self.out.payload.eq(self.data.payload),
                     self.data.ready.eq(self.out.ready)]
        return m


class _AnyCore(Core):
    """A core whose outputs the harness drives from free inputs (its ports and program
    are the real core's, so the link is built exactly as for it)."""

    def elaborate(self, platform) -> Module:
        return Module()


class LinkHarness(wiring.Component):
    """A host link with free byte streams and a free core, with one property group.

    Parameters
    ----------
    model : golden.intmodel.IntModel
        The model the core is built for (sets the load layout, depths and hash).
    check : str
        One of :data:`CHECKS`.
    lanes : int
        The core's P.
    weights : {"loadable", "spram"}
        The core's weight memories.
    banks : {1, 2}
        The core's banks (``"bank"`` needs 2).
    mutate : mapping of str to mapping of str to str, optional
        Per module name (``"rtl.host_link"``, ``"rtl.frame_parser"``,
        ``"rtl.load_transaction"``), text replacements that seed a bug.

    Members
    -------
    rx : In(stream.Signature(8))
        Bytes from the host, free under the stream contract.
    rx_busy : In(1)
        The receiver is mid-byte (free).
    tx : Out(stream.Signature(8))
        Reply bytes; ``tx.ready`` is free.
    image_ready, load_ready : In(1)
        The core's ``image.ready`` and ``load.ready`` (free).
    result : In(stream.Signature(core result layout))
        The core's result record, free under the stream contract.
    probe : Out(PROBES)
        The core's ``load.valid`` and ``image.valid`` as the link drives them, for
        :func:`sim.formal.combinational_fanout`.
    """

    def __init__(self, model, *, check: str, lanes: int, weights: str = "loadable",
                 banks: int = 1, mutate: Mapping[str, Mapping[str, str]] | None = None
                 ) -> None:
        if check not in CHECKS:
            raise ValueError(f"Check must be one of {', '.join(CHECKS)}, not {check!r}")
        if check == "bank" and banks != 2:
            raise ValueError("The bank check needs a core with two banks")
        self.check = check
        self.core = _AnyCore(model, lanes=lanes, weights=weights, banks=banks)
        self.mutate = dict(mutate or {})
        super().__init__({
            "rx": In(stream.Signature(8)), "rx_busy": In(1), "tx": Out(stream.Signature(8)),
            "image_ready": In(1), "load_ready": In(1),
            "result": In(stream.Signature(self.core.result.payload.shape())),
            "probe": Out(PROBES),
        })

    def _module(self, name: str):
        if name in self.mutate:
            return module_variant(name, self.mutate[name])
        return importlib.import_module(name)

    def elaborate(self, platform) -> Module:
        m = Module()
        core = self.core
        # The link from a copy of its module, its parts recorded as it makes them.
        link_module = module_variant("rtl.host_link", self.mutate.get("rtl.host_link"))
        made = {}
        for module, name in (("rtl.frame_parser", "FrameParser"),
                             ("rtl.load_transaction", "LoadTransaction"),
                             ("rtl.reply_serialiser", "ReplySerialiser")):
            cls = getattr(self._module(module), name)

            def make(*args, _cls=cls, _name=name, **kwargs):
                made[_name] = part = _cls(*args, **kwargs)
                return part
            setattr(link_module, name, make)
        link_module.UartRx = lambda **_: _ByteSource(self.rx, self.rx_busy)
        link_module.UartTx = lambda **_: _ByteSink(self.tx)
        link = link_module.HostLink(core, divisor=4, timeout_bits=20)
        m.submodules.link = fragment = Fragment.get(link, platform)
        parser, replies = made["FrameParser"], made["ReplySerialiser"]

        # -- the free core, and the environment's side of the contracts ----------------
        m.d.comb += [core.image.ready.eq(self.image_ready), core.load.ready.eq(self.load_ready),
                     core.result.valid.eq(self.result.valid),
                     core.result.payload.eq(self.result.payload),
                     self.result.ready.eq(core.result.ready),
                     self.probe.load_valid.eq(core.load.valid),
                     self.probe.image_valid.eq(core.image.valid)]
        m.d.comb += Assume(~ResetSignal())
        stream_held(m, self.rx, check=Assume)
        stream_held(m, self.result, check=Assume)

        # -- what every property looks at ----------------------------------------------
        step, steps = internal_signal(fragment, "step"), link_module._Step
        frame = parser.frame.payload
        held = parser.frame.valid
        # The cycle the link decides what to do with the frame it holds.
        deciding = (step == steps.IDLE) & held
        # Invariant: the link works on a frame the parser holds in every step but IDLE.
        m.d.comb += Assert((step == steps.IDLE) | held)
        write = core.load.valid
        load_size = link.load_size

        if self.check == "writes":
            loading = internal_signal(fragment, "loading", path=("transaction",))
            with m.If(write):
                m.d.comb += [Assert(held), Assert(frame.crc_ok),
                             Assert(frame.cmd == Command.LOAD),
                             Assert(frame.length == load_size), Assert(loading)]

        elif self.check == "bounds":
            regs = [internal_signal(fragment, f"load_byte_{i}", path=("transaction",))
                    for i in range(3)]
            target, address = regs[0], Cat(regs[1], regs[2])
            words = {LOAD_TARGETS[name]: len(w)
                     for name, w in memory_images(core.program).items()}
            in_bounds = Cat(*((target == code) & (address < depth)
                              for code, depth in words.items() if depth)).any()
            with m.If(write):
                m.d.comb += [Assert(in_bounds),
                             Assert(core.load.payload.target == target),
                             Assert(core.load.payload.addr == address)]

        elif self.check == "bank":
            self._bank(m, fragment, core, parser, deciding)

        else:
            # The contract of every stream inside the link.
            for port in (parser.frame, replies.request, core.load, core.image, self.tx):
                stream_held(m, port, check=Assert)
            # Invariant: the serialiser is busy exactly while the link waits in SEND
            # (the link answers without looking at the request's ready).
            m.d.comb += Assert((step == steps.SEND) == ~replies.request.ready)
        return m

    def _bank(self, m, fragment, core, parser, deciding) -> None:
        """The bank toggles exactly after a good commit (module docstring)."""
        frame = parser.frame.payload

        def reg(name):
            return internal_signal(fragment, name, path=("transaction",))
        # A good commit: the frame's crc matched, it is an empty LOAD_COMMIT, a
        # transaction is open and the CRC-32 of the writes made is the one announced.
        good_commit = (deciding & frame.crc_ok & (frame.cmd == Command.LOAD_COMMIT)
                       & (frame.length == 0) & reg("loading")
                       & (reg("running") == reg("announced")))
        last_bank = Signal(init=0)
        after_good_commit = Signal()
        m.d.sync += [last_bank.eq(core.bank), after_good_commit.eq(good_commit)]
        m.d.comb += Assert((core.bank != last_bank) == after_good_commit)
