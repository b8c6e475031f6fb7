# amaranth: UnusedElaboratable=no
"""The learning signal of one layer update: its neurons scanned, their errors buffered.

Steps 1-5 of docs/integer-training.md through :class:`rtl.learning_signal.LearningSignalUnit`:
the layer's pre-activations (from the pre-activation buffer) and the forward fields of
U[i, y] and U[i, y'] (the top bits of the stored label words) stream in, one neuron per
cycle; the unit's errors (d, dp, dn per neuron) go into the error buffer, which the
update passes read. The block exponent z is kept for the update shifts k = k + z - z.
"""

from __future__ import annotations

import contextlib

from amaranth import Array, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from golden.intmodel import IntModel
from golden.inttrain import DELTA_BITS, SIGMOID_FRAC_BITS, threshold
from rtl.label_groups import LabelGroups, stored_field
from rtl.learning_signal import LearningSignalUnit
from rtl.params import check_positive_int
from rtl.resources import MemoryShape, Product

__all__ = ["ErrorScan", "error_entry_layout"]

#: Registers between the reads of a neuron (its pre-activation, its label words) and the
#: learning-signal unit: one, so the block RAMs' outputs (5.8 ns clock-to-out on ECP5
#: without their output register) and the label select do not share a cycle with the
#: unit's adders (that path held the 2-lane training build to 59.9 MHz on the ULX3S-85F).
SCAN_STAGES = 1


def error_entry_layout() -> data.StructLayout:
    """One neuron's errors in the error buffer (16-bit signed multiplier inputs)."""
    return data.StructLayout({"d": signed(16), "dp": signed(16), "dn": signed(16)})


class ErrorScan(wiring.Component):
    """Scans one layer's neurons into the learning-signal unit and buffers the errors.

    Parameters
    ----------
    model : IntModel
        The model (FFDL or FFCL): formats, layers and labels.
    store_bits : int
        B_m, the width of a stored label weight (its top ``weight_bits`` are U).
    sigmoid : {"table", "piecewise"}
        The rule's sigmoid.
    product_latency : int, optional
        The unit borrows two multipliers (``a``/``b``/``product``) that answer this many
        cycles later, which lengthens its gap (:meth:`cycles`). Default: its own.
    label_lanes : int, optional
        G, label weights per label word (:func:`rtl.program.build_program`): a neuron's
        K label weights in ceil(K / G) words, word g holding labels g G .. g G + G - 1.
        Below K, U[i, y] and U[i, y'] are two reads a neuron (:meth:`cycles`). Default K.
    lean : bool, optional
        The small-part form (default False): the unit's (``LearningSignalUnit(lean=True)``)
        and, with two label words a neuron, no register for the pre-activation or
        U[i, y] that only waits (the pre-activation port reads only at a neuron's second
        read, ``pre.en``, and holds the word until the unit takes it; U[i, y] is taken
        then and held as long). The same errors in the same cycles.
    compact : bool, optional
        The smaller small-part form (default False; needs ``lean`` and
        ``product_latency``): the unit's (``LearningSignalUnit(compact=True)``: an error
        every other cycle through one datapath, z from a pass over the h buffer, g and
        the margins as wide as Theta). The same errors; 3 N cycles more a layer of N
        (:meth:`cycles`).

    Its :class:`rtl.learning_signal.LearningSignalUnit` is a submodule.

    Members
    -------
    run : In(1)
        Held high while the step runs: N cycles of scan, then one per error.
    done : Out(1)
        The last error is written this cycle.
    neurons : In(range(N_max + 1))
        The layer's N, stable while ``run``.
    base : In(range(sum N))
        The layer's first neuron in the pre-activation buffer and the label memory.
    theta : In(unsigned(theta_bits))
        The layer's Theta.
    y, y_neg : In(range(K))
        The true and the wrong label.
    pre : In(memory.ReadPort.Signature(addr_width=..., shape=signed(state_bits)))
        The pre-activation buffer (read one cycle after the address; lean with two label
        words a neuron, ``en`` only at a neuron's second read).
    labels : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(G * B_m)))
        The stored label words, ceil(K / G) per neuron (read one cycle after the
        address).
    errors : In(memory.WritePort.Signature(addr_width=..., shape=error_entry_layout()))
        The error buffer: neuron i of the layer at address i.
    z : Out(range(z_max + 1))
        The block exponent of the last step, held until the next.
    a, b : Out(ArrayLayout(signed(16), 2))
        Only with ``product_latency``: the borrowed multipliers' operands.
    product : In(ArrayLayout(signed(32), 2))
        Only with ``product_latency``: ``a[q] * b[q]``, ``product_latency`` cycles later.
    """

    def __init__(self, model: IntModel, *, store_bits: int, sigmoid: str,
                 product_latency: int | None = None, label_lanes: int | None = None,
                 lean: bool = False, compact: bool = False) -> None:
        if not isinstance(model, IntModel):
            raise TypeError(f"Model must be a golden.intmodel.IntModel, not {model!r}")
        self.groups = LabelGroups(model.config.num_classes, label_lanes)
        self.store_bits = check_positive_int("Stored weight width", store_bits,
                                             minimum=model.fmt.weight_bits)
        self.model = model
        if sigmoid not in ("table", "piecewise"):
            raise ValueError(f"Sigmoid must be 'table' or 'piecewise', not {sigmoid!r}")
        self.sigmoid = sigmoid
        if not isinstance(lean, bool):
            raise TypeError(f"Lean must be a bool, not {lean!r}")
        self.lean = lean
        # Validated by the unit (LearningSignalUnit's messages).
        self.compact = compact
        config, fmt = model.config, model.fmt
        # LearningSignalUnit.for_model's widths: Theta of every layer, z up to its largest.
        h_max = (1 << (fmt.state_bits - 1)) - 1 + fmt.weight_max
        self.z_max = max(0, ((1 << SIGMOID_FRAC_BITS) * h_max).bit_length() - DELTA_BITS)
        theta_bits = max(threshold(config, fmt, i) for i in range(config.num_layers)).bit_length()
        K, hidden = config.num_classes, config.hidden

        def width(depth: int) -> int:
            return Shape.cast(range(max(2, depth))).width

        # Made here, not in elaborate, so the fit check can ask it what it needs.
        self.signal = signal = LearningSignalUnit.for_model(model, sigmoid=sigmoid,
                                                            product_latency=product_latency,
                                                            lean=lean, compact=compact)
        self.product_latency = product_latency
        borrowed = {}
        if product_latency is not None:
            # The unit's own ports, passed through in the same directions.
            borrowed = {name: signal.signature.members[name] for name in ("a", "b", "product")}
        super().__init__({
            "run": In(1), "done": Out(1),
            "neurons": In(range(max(hidden) + 1)),
            "base": In(range(max(2, sum(hidden)))),
            "theta": In(unsigned(max(1, theta_bits))),
            "y": In(range(K)), "y_neg": In(range(K)),
            "pre": In(memory.ReadPort.Signature(addr_width=width(sum(hidden)),
                                                shape=signed(fmt.state_bits))),
            "labels": In(memory.ReadPort.Signature(
                addr_width=width(sum(hidden) * self.groups.count),
                shape=unsigned(self.groups.lanes * store_bits))),
            "errors": In(memory.WritePort.Signature(addr_width=width(max(hidden)),
                                                    shape=error_entry_layout())),
            "z": Out(range(self.z_max + 1)),
            **borrowed,
        })

    def products(self) -> list[Product]:
        """The learning-signal unit's multipliers (:meth:`LearningSignalUnit.products`)."""
        return self.signal.products()

    def memories(self) -> list[MemoryShape]:
        """The learning-signal unit's h buffer and sigmoid table."""
        return self.signal.memories()

    def cycles(self, neurons: int) -> int:
        """Cycles of the step for a layer of ``neurons``: the scan, the unit's gap, the
        errors (:meth:`rtl.learning_signal.LearningSignalUnit.gap_of`: 13, or 11 + 3 L
        with borrowed multipliers of latency L, 2 N + 1 more compact;
        :meth:`~rtl.learning_signal.LearningSignalUnit.error_cycles`: N, or 2 N - 1
        compact)."""
        return (self.groups.reads * neurons + self.signal.error_cycles(neurons)
                + self.signal.gap_of(neurons) + SCAN_STAGES)

    def elaborate(self, platform) -> Module:
        m = Module()
        fmt, groups = self.model.fmt, self.groups
        B_m, f = self.store_bits, self.store_bits - fmt.weight_bits
        m.submodules.signal = signal = self.signal
        if self.product_latency is not None:
            m.d.comb += [self.a.eq(signal.a), self.b.eq(signal.b),
                         signal.product.eq(self.product)]
        count = Signal(range(max(self.model.config.hidden) + 1))
        neurons = self.neurons

        def top(value):
            # c >> f of a stored field: the forward U the learning signal sees.
            return (value >> f)[:fmt.weight_bits]

        # read_*: the neuron read last cycle is in the ports' data now; neuron_*: it is
        # in the registers the unit takes (SCAN_STAGES).
        read_valid, read_last = Signal(), Signal()
        neuron_valid, neuron_last = Signal(), Signal()
        pre = Signal.like(self.pre.data)
        u_pos, u_neg = Signal(fmt.weight_bits), Signal(fmt.weight_bits)
        # With two label words a neuron, y's word is read with pre, y''s the cycle after
        # (``second``), and the first read's pre and U[i, y] wait a cycle for it.
        second = Signal()
        if groups.count == 1:
            u_field = Array(stored_field(self.labels.data, q, B_m)
                            for q in range(groups.labels))
            pre_read, u_pos_read = self.pre.data, top(u_field[self.y])
            u_neg_read, label_addr = top(u_field[self.y_neg]), self.base + count
        elif self.lean:
            # The pre-activation port reads only at ``second`` (its address is the
            # neuron's then): its word holds until the next ``second``, the cycle the
            # unit takes the neuron, so it needs no register of its own; nor does
            # U[i, y], taken at ``second`` and held as long.
            m.d.comb += self.pre.en.eq(second)
            with m.If(second):
                m.d.sync += u_pos.eq(top(groups.field(self.labels.data, self.y, B_m)))
            pre, pre_read, u_pos_read = self.pre.data, None, None
            u_neg_read = top(groups.field(self.labels.data, self.y_neg, B_m))
            label_addr = groups.word(self.base + count, Mux(second, self.y_neg, self.y))
        else:
            pre_read, u_pos_read = Signal.like(self.pre.data), Signal(fmt.weight_bits)
            with m.If(second):
                m.d.sync += [pre_read.eq(self.pre.data),
                             u_pos_read.eq(top(groups.field(self.labels.data, self.y, B_m)))]
            u_neg_read = top(groups.field(self.labels.data, self.y_neg, B_m))
            label_addr = groups.word(self.base + count, Mux(second, self.y_neg, self.y))
        if pre_read is None:
            m.d.sync += [u_neg.eq(u_neg_read), neuron_valid.eq(read_valid),
                         neuron_last.eq(read_last)]
        else:
            m.d.sync += [pre.eq(pre_read), u_pos.eq(u_pos_read), u_neg.eq(u_neg_read),
                         neuron_valid.eq(read_valid), neuron_last.eq(read_last)]
        m.d.comb += [
            signal.theta.eq(self.theta),
            self.pre.addr.eq(self.base + count), self.labels.addr.eq(label_addr),
            signal.neurons.valid.eq(neuron_valid),
            signal.neurons.payload.pre.eq(pre),
            signal.neurons.payload.u_pos.eq(u_pos.as_signed()),
            signal.neurons.payload.u_neg.eq(u_neg.as_signed()),
            signal.neurons.payload.last.eq(neuron_last),
            self.errors.addr.eq(count),
            self.errors.data.d.eq(signal.errors.payload.d),
            self.errors.data.dp.eq(signal.errors.payload.dp),
            self.errors.data.dn.eq(signal.errors.payload.dn),
        ]
        m.d.sync += [read_valid.eq(0), read_last.eq(0)]
        with m.FSM():
            with m.State("SCAN"):
                # Neuron ``count``: pre and U read now, offered to the unit two cycles later
                # (with two words, once its second read is issued).
                with m.If(self.run):
                    if groups.count > 1:
                        m.d.sync += second.eq(~second)
                    with m.If(second) if groups.count > 1 else contextlib.nullcontext():
                        m.d.sync += [read_valid.eq(1), read_last.eq(count == neurons - 1),
                                     count.eq(count + 1)]
                        with m.If(count == neurons - 1):
                            m.d.sync += count.eq(0)
                            m.next = "ERRORS"
            with m.State("ERRORS"):
                # With borrowed multipliers the errors are always taken (the unit cannot
                # stall them); they come only after the last neuron, in this state.
                if self.product_latency is None:
                    m.d.comb += signal.errors.ready.eq(1)
                m.d.comb += self.errors.en.eq(signal.errors.valid)
                with m.If(signal.errors.valid):
                    m.d.sync += [count.eq(count + 1), self.z.eq(signal.z)]
                    with m.If(count == neurons - 1):
                        m.d.sync += count.eq(0)
                        m.d.comb += self.done.eq(1)
                        m.next = "SCAN"
        return m
