"""Formal harnesses: a component with free inputs and its contracts as assertions.

:class:`StreamContract` wraps any component. Every ``In`` member of the component becomes a
free input of the harness (the solver chooses it in every cycle); the streams it names as
inputs get the stream contract as *assumptions* (the environment keeps ``valid`` until
``ready`` and holds the payload meanwhile), the streams it names as outputs get the same
contract as *assertions* (the component must keep it, whatever ``ready`` does). Extra
properties of a particular component are added by a callback, which also gets the
component elaborated, to state properties of its internal registers
(:func:`sim.formal.internal_signal`). Reset is assumed low: registers start at their
``init`` values, as after configuration.

The third part of the contract, ``valid`` never depending on ``ready`` in the same cycle,
is structural and checked by :func:`sim.formal.combinational_fanout`.
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth import Cat, Const, Fragment, Module, Mux, ResetSignal, Signal, Value
from amaranth.hdl import Assert, Assume
from amaranth.lib import crc, wiring

__all__ = ["StreamContract", "serial_crc", "stream_held"]


def serial_crc(m: Module, algorithm: crc.Algorithm, state: Value, data: Value) -> Signal:
    """The CRC ``algorithm``'s state after ``data`` (any number of bytes, first byte in
    the low bits), computed a bit at a time as the textbook shift register does: a
    reference for the gateware's XOR trees (:func:`rtl.crc_tree.crc_tree`), derived
    independently of them. No reflection, no final xor. Each bit's step is a signal of
    ``m`` (nested expressions of 64 steps would be expanded as a tree).
    """
    if algorithm.reflect_input or algorithm.reflect_output or algorithm.xor_output:
        raise ValueError(f"CRC must have neither reflection nor final xor, not {algorithm!r}")
    width = algorithm.crc_width
    if len(state) != width or len(data) % 8:
        raise ValueError(f"CRC state must be {width} bits and data whole bytes, not "
                         f"{len(state)} and {len(data)} bits")
    value = Value.cast(state)
    for byte in range(len(data) // 8):
        for bit in reversed(range(8)):            # most significant bit first
            feedback = value[width - 1] ^ data[8 * byte + bit]
            step = Signal(width, name=f"serial_crc_{byte}_{bit}")
            m.d.comb += step.eq(Cat(Const(0, 1), value[:width - 1])
                                ^ Mux(feedback, algorithm.polynomial, 0))
            value = step
    result = Signal(width, name="serial_crc")
    m.d.comb += result.eq(value)
    return result


def stream_held(m: Module, port, *, check) -> None:
    """State the stream contract of ``port``: once ``valid`` is high without ``ready``,
    ``valid`` stays high and ``payload`` keeps its value in the next cycle.

    ``check`` is ``Assert`` (the design must keep it) or ``Assume`` (the environment does).
    """
    waiting = Signal(name=f"{_name(port)}_waiting")
    held_payload = Signal.like(port.payload, name=f"{_name(port)}_held")
    m.d.sync += [waiting.eq(port.valid & ~port.ready), held_payload.eq(port.payload)]
    with m.If(waiting):
        m.d.comb += [check(port.valid),
                     check(Value.cast(port.payload) == Value.cast(held_payload))]


def _name(port) -> str:
    return port.valid.name.removesuffix("__valid").removesuffix("_valid")


class StreamContract(wiring.Component):
    """A component under the stream contract, for :func:`sim.formal.prove`.

    Parameters
    ----------
    dut : wiring.Component
        The component; it becomes the submodule ``dut``.
    inputs : list of str
        Its ``In`` stream members: the contract is assumed of what drives them.
    outputs : list of str
        Its ``Out`` stream members: the contract is asserted.
    extra : callable, optional
        ``extra(m, dut, fragment)`` adds the component's own ``Assert``/``Assume``
        statements; ``fragment`` is ``dut`` elaborated, for its internal signals.

    Members
    -------
    The members of ``dut``, with the same directions: each ``In`` member is a free input.
    """

    def __init__(self, dut: wiring.Component, *, inputs: list[str] = (),
                 outputs: list[str] = (),
                 extra: Callable[[Module, wiring.Component, Fragment], None] | None = None
                 ) -> None:
        if not isinstance(dut, wiring.Component):
            raise TypeError(f"Design must be a wiring.Component, not {dut!r}")
        members = dict(dut.signature.members.items())
        for name in (*inputs, *outputs):
            if name not in members:
                raise ValueError(f"{type(dut).__name__} has no member {name!r}; it has "
                                 f"{', '.join(members)}")
        self.dut = dut
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.extra = extra
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        dut = self.dut
        # Elaborated here, so that the extra properties can name its registers.
        m.submodules.dut = fragment = Fragment.get(dut, platform)
        wiring.connect(m, wiring.flipped(self), dut)
        # No reset after the start: registers begin at their init values.
        m.d.comb += Assume(~ResetSignal())
        for name in self.inputs:
            stream_held(m, getattr(dut, name), check=Assume)
        for name in self.outputs:
            stream_held(m, getattr(dut, name), check=Assert)
        if self.extra is not None:
            self.extra(m, dut, fragment)
        return m
