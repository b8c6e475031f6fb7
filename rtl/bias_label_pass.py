# amaranth: UnusedElaboratable=no
"""The b and U pass of a layer update: one neuron's bias and two label weights per step.

After the weight passes, every neuron i of the layer moves b_i by step(-d_i, rho_i +
kappa^b), U[i, y] by step(-dp_i, rho_i + kappa^+) and U[i, y'] by step(-dn_i, rho_i +
kappa^-) (v = 1: three multiplier-free uses of :class:`rtl.update_lane.UpdateLane`).
The bias and the label word of a neuron are two writes through the one load port, so a
neuron is issued every other cycle.
"""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from golden.intmodel import IntModel
from golden.inttrain import TrainRule
from golden.lfsr import LFSR_WIDTH
from rtl.error_scan import error_entry_layout, stored_field
from rtl.resources import Product
from rtl.update_lane import STORED_KINDS, UpdateLane
from rtl.weight_pass import SHIFT_SHAPE

__all__ = ["BiasLabelPass"]


def _width(depth: int) -> int:
    return Shape.cast(range(max(2, depth))).width


class BiasLabelPass(wiring.Component):
    """Updates b and the two label columns U[:, y], U[:, y'] of one layer.

    Parameters
    ----------
    model : IntModel
        The model: layer sizes, labels, formats.
    rule : TrainRule
        The rule (stored widths, rounding, shifts).

    Its three :class:`rtl.update_lane.UpdateLane` (b, U[:, y], U[:, y']) are submodules.

    Members
    -------
    run : In(1)
        Held high while the step runs: 2 N + :attr:`DRAIN` cycles.
    done : Out(1)
        The last cycle (the last label word is written).
    neurons : In(range(N_max + 1))
    base : In(range(sum N))
        The layer's first neuron in the bias and label memories.
    kappa_b, kappa_pos, kappa_neg : In(unsigned(32))
    k_b, k_u : In(signed(...))
        The update shifts of b and U (z applied).
    y, y_neg : In(range(K))
    errors : In(memory.ReadPort.Signature(addr_width=..., shape=error_entry_layout()))
    rho : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(32)))
        The error and rho buffers, read one cycle after the address.
    bias : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(B_s + f)))
    labels : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(K * B_m)))
        The stored bias and label words, read one cycle after the address.
    write : Out(wiring.Signature({"valid", "label", "addr", "data": Out}))
        A word to store: a bias (``label`` 0) or a label word (``label`` 1).
    """

    def __init__(self, model: IntModel, rule: TrainRule) -> None:
        if not isinstance(model, IntModel):
            raise TypeError(f"Model must be a golden.intmodel.IntModel, not {model!r}")
        if not isinstance(rule, TrainRule):
            raise TypeError(f"Rule must be a golden.inttrain.TrainRule, not {rule!r}")
        self.model, self.rule = model, rule
        config, fmt = model.config, model.fmt
        K, hidden = config.num_classes, config.hidden
        fine = rule.store_bits - fmt.weight_bits
        self.bias_bits = fmt.state_bits + fine
        label_bits = K * rule.store_bits
        k_shape = SHIFT_SHAPE
        super().__init__({
            "run": In(1), "done": Out(1),
            "neurons": In(range(max(hidden) + 1)),
            "base": In(range(max(2, sum(hidden)))),
            "kappa_b": In(LFSR_WIDTH), "kappa_pos": In(LFSR_WIDTH),
            "kappa_neg": In(LFSR_WIDTH),
            "k_b": In(k_shape), "k_u": In(k_shape),
            "y": In(range(K)), "y_neg": In(range(K)),
            "errors": In(memory.ReadPort.Signature(addr_width=_width(max(hidden)),
                                                   shape=error_entry_layout())),
            "rho": In(memory.ReadPort.Signature(addr_width=_width(max(hidden)),
                                                shape=unsigned(LFSR_WIDTH))),
            "bias": In(memory.ReadPort.Signature(addr_width=_width(sum(hidden)),
                                                 shape=unsigned(self.bias_bits))),
            "labels": In(memory.ReadPort.Signature(addr_width=_width(sum(hidden)),
                                                   shape=unsigned(label_bits))),
            "write": Out(wiring.Signature({
                "valid": Out(1), "label": Out(1), "addr": Out(range(max(2, sum(hidden)))),
                "data": Out(unsigned(max(label_bits, self.bias_bits)))})),
        })
        # Made here, not in elaborate, so the fit check can ask them what they need.
        # v = 1: lanes without a multiplier (a constant 1 behind an input register that
        # resets to 0 kept one each, 3 MULT18X18D on ECP5).
        self.lanes = tuple(UpdateLane.for_model(model, rule, unit_input=True)
                           for _ in range(3))

    def products(self) -> list[Product]:
        """The three lanes' multipliers: none (unit inputs, ``UpdateLane(unit_input=True)``)."""
        return [product for lane in self.lanes for product in lane.products()]

    @property
    def drain(self) -> int:
        """Cycles after the last neuron's issue slot pair until the step ends: the read,
        the lane and the label word's write a cycle after the bias's."""
        return UpdateLane.latency_for(None) + 3

    def cycles(self, neurons: int) -> int:
        """Cycles of the step for a layer of ``neurons``."""
        return 2 * neurons + self.drain

    def elaborate(self, platform) -> Module:
        m = Module()
        K, B_m = self.model.config.num_classes, self.rule.store_bits
        lane_b, lane_pos, lane_neg = self.lanes
        for name, lane in (("lane_b", lane_b), ("lane_up", lane_pos), ("lane_un", lane_neg)):
            m.submodules[name] = lane
        lat = lane_b.latency
        count = Signal(range(2 * max(self.model.config.hidden) + lat + 4))
        y, y_neg = self.y, self.y_neg
        # One neuron every other cycle (two core loads per neuron).
        issue = Signal()
        neuron = count >> 1
        m.d.comb += [issue.eq(self.run & ~count[0] & (count < 2 * self.neurons)),
                     self.errors.addr.eq(neuron), self.rho.addr.eq(neuron),
                     self.bias.addr.eq(self.base + neuron),
                     self.labels.addr.eq(self.base + neuron)]
        in_lane, in_addr = Signal(), Signal.like(self.bias.addr)
        m.d.sync += [in_lane.eq(issue), in_addr.eq(self.bias.addr)]
        u_field = Array(stored_field(self.labels.data, q, B_m) for q in range(K))
        errors = self.errors.data
        for lane, d, kappa, k, kind, c in (
                (lane_b, errors.d, self.kappa_b, self.k_b, "b", self.bias.data.as_signed()),
                (lane_pos, errors.dp, self.kappa_pos, self.k_u, "W", u_field[y]),
                (lane_neg, errors.dn, self.kappa_neg, self.k_u, "W", u_field[y_neg])):
            m.d.comb += [lane.en.eq(in_lane), lane.c.eq(c), lane.d.eq(d),
                         lane.rho.eq(self.rho.data), lane.kappa.eq(kappa), lane.k.eq(k),
                         lane.select.eq(STORED_KINDS.index(kind))]
        u_old, out_addr = self.labels.data, in_addr
        for i in range(lat):
            reg_u = Signal.like(self.labels.data, name=f"u_old_{i}")
            reg_a = Signal.like(in_addr, name=f"bu_addr_{i}")
            m.d.sync += [reg_u.eq(u_old), reg_a.eq(out_addr)]
            u_old, out_addr = reg_u, reg_a
        new_u = Cat(Mux(y == q, lane_pos.out,
                        Mux(y_neg == q, lane_neg.out, stored_field(u_old, q, B_m)))[:B_m]
                    for q in range(K))
        # The label word goes to the memory one cycle after the bias (one write a cycle).
        pending, pending_addr = Signal(), Signal.like(in_addr)
        pending_word = Signal.like(self.labels.data)
        m.d.sync += pending.eq(0)
        with m.If(lane_b.valid):
            m.d.comb += [self.write.valid.eq(1), self.write.label.eq(0),
                         self.write.addr.eq(out_addr),
                         self.write.data.eq(lane_b.out[:self.bias_bits])]
            m.d.sync += [pending.eq(1), pending_addr.eq(out_addr), pending_word.eq(new_u)]
        with m.If(pending):
            m.d.comb += [self.write.valid.eq(1), self.write.label.eq(1),
                         self.write.addr.eq(pending_addr), self.write.data.eq(pending_word)]
        with m.If(self.run):
            m.d.sync += count.eq(count + 1)
            with m.If(count == 2 * self.neurons + self.drain - 1):
                m.d.sync += count.eq(0)
                m.d.comb += self.done.eq(1)
        return m
