# amaranth: UnusedElaboratable=no
"""The b and U pass of a layer update: one neuron's bias and two label weights per step.

After the weight passes, every neuron i of the layer moves b_i by step(-d_i, rho_i +
kappa^b), U[i, y] by step(-dp_i, rho_i + kappa^+) and U[i, y'] by step(-dn_i, rho_i +
kappa^-) (v = 1: multiplier-free uses of :class:`rtl.update_lane.UpdateLane`).
The bias and the label word of a neuron are two writes through the one load port, so a
neuron is issued every other cycle on three lanes, one each for b, U+ and U-.

One lane time-shared by the three (``lanes=1``, for a part as small as the iCE40 UP5K)
takes a neuron every third cycle, N cycles more per layer. It also reads the label word
a second time, just before its write, instead of carrying it through the lane's
pipeline: the read port is free two cycles in three, and a carried word is K x B_m
flip-flops per pipeline stage (960 for digits at B_m = 16).

That one lane may be borrowed (``borrowed_lane``): the W and V pass's lane 0, which
idles while this pass runs (the passes are sequential), already holds b's range beside
W's (:meth:`rtl.update_lane.UpdateLane.for_model` builds every lane for both kinds, the
widest stored width) and takes v = 1 from its pass while lent, so -d v is -d on its
multiplier, own or borrowed, in the same cycles as a unit lane's registers
(:attr:`rtl.update_lane.UpdateLane.latency` is 2 + 4 either way).
"""

from __future__ import annotations

from amaranth import Array, Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from golden.intmodel import IntModel
from golden.inttrain import IntTrainer, TrainRule
from golden.lfsr import LFSR_WIDTH
from rtl.error_scan import error_entry_layout
from rtl.label_groups import LabelGroups, stored_field
from rtl.resources import Product
from rtl.select import equals
from rtl.update_lane import STORED_KINDS, UpdateLane
from rtl.weight_pass import SHIFT_SHAPE

__all__ = ["BiasLabelPass"]


#: The kinds of the shared lane's entries, in issue order, and no entry
#: (:meth:`BiasLabelPass._entry_kind`).
_U_POS, _U_NEG, _BIAS, _NONE = range(4)


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
    lanes : {3, 1}, optional
        Three :class:`rtl.update_lane.UpdateLane` (b, U[:, y], U[:, y']; default), a
        neuron every other cycle; or one, time-shared, a neuron every third cycle (its
        label word read again before the write), every fourth with two label words. The
        lanes are submodules.
    label_lanes : int, optional
        G, label weights a label word (:class:`rtl.label_groups.LabelGroups`); below K
        (one lane only) U[i, y] and U[i, y'] are in two words, each read, updated and
        written. Default K.
    compact_lanes : bool, optional
        Lanes in their small-part form (``UpdateLane(compact=True)``): the same words in
        the same cycles. Default False.
    borrowed_lane : UpdateLane, optional
        With ``lanes=1``: no lane of its own, this one instead (a
        :class:`rtl.weight_pass.WeightPass` built with ``lend_lane=True`` lends its lane
        0), driven through the ``lane`` port. It must take the entries the own lane
        would: the same stored ranges in the same order, rounding, error width and
        shift range (``UpdateLane.for_model`` of the same model and rule, as every W
        pass lane is), and a latency the time-shared schedule allows. Default None:
        a lane of its own (``compact_lanes`` says its form), a submodule.
    kappa_ring : bool, optional
        With ``lanes=1``: keep kappa^b, kappa^+ and kappa^- itself, in three registers
        loaded from ``kappa_word`` as the update takes them (``kappa_load``, from
        ``rtl.update_words.UpdateWords(kept_scalars=False)``) and rotated with each entry,
        so the lane reads one of them, not a selection of three (only the bits its R
        takes). A small-part option (on iCE40 a register copied from a register takes a
        logic cell of its own; a register loaded through its own LUT does not). The same
        words in the same cycles. Default False.

    Members
    -------
    run : In(1)
        Held high while the step runs: :meth:`cycles`.
    done : Out(1)
        The step's last cycle (every bias and label word is written).
    neurons : In(range(N_max + 1))
    base : In(range(sum N))
        The layer's first neuron in the bias and label memories.
    kappa_b, kappa_pos, kappa_neg : In(unsigned(32))
        Not with ``kappa_ring``.
    kappa_word : In(unsigned(32))
    kappa_load : In(3)
        Only with ``kappa_ring``: bit i says ``kappa_word`` is kappa^b, kappa^+ or
        kappa^- (i = 0, 1, 2), to keep until the next.
    k_b, k_u : In(signed(...))
        The update shifts of b and U (z applied).
    y, y_neg : In(range(K))
    errors : In(memory.ReadPort.Signature(addr_width=..., shape=error_entry_layout()))
    rho : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(32)))
        The error and rho buffers, read one cycle after the address.
    bias : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(B_s + f)))
    labels : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(G * B_m)))
        The stored bias and label words, read one cycle after the address.
    write : Out(wiring.Signature({"valid", "label", "addr", "data": Out}))
        A word to store: a bias (``label`` 0) or a label word (``label`` 1).
    lane : Out(borrowed_lane.guest_signature)
        Only with ``borrowed_lane``: its entries, and ``run`` while this pass runs
        (:attr:`rtl.update_lane.UpdateLane.guest_signature`).
    """

    #: The lane counts built: one lane per stored value of a neuron, or one time-shared.
    LANES = (3, 1)

    def __init__(self, model: IntModel, rule: TrainRule, *, lanes: int = 3,
                 label_lanes: int | None = None, compact_lanes: bool = False,
                 borrowed_lane: UpdateLane | None = None, kappa_ring: bool = False) -> None:
        if not isinstance(model, IntModel):
            raise TypeError(f"Model must be a golden.intmodel.IntModel, not {model!r}")
        if not isinstance(rule, TrainRule):
            raise TypeError(f"Rule must be a golden.inttrain.TrainRule, not {rule!r}")
        if lanes not in self.LANES or isinstance(lanes, bool):
            raise ValueError(f"Bias and label lanes must be 3 (one per stored value) or 1 "
                             f"(time-shared), not {lanes!r}")
        self.model, self.rule = model, rule
        config, fmt = model.config, model.fmt
        K, hidden = config.num_classes, config.hidden
        self.groups = groups = LabelGroups(K, label_lanes)
        if groups.count > 1 and lanes != 1:
            raise ValueError(f"{groups.lanes} label lanes of {K} labels put U[i, y] and "
                             f"U[i, y'] in two words, which only one time-shared b and U "
                             f"lane updates: build it with lanes=1")
        fine = rule.store_bits - fmt.weight_bits
        self.bias_bits = fmt.state_bits + fine
        label_bits = groups.lanes * rule.store_bits
        label_words = max(2, sum(hidden) * groups.count)
        k_shape = SHIFT_SHAPE
        if borrowed_lane is not None:
            _check_borrowed(borrowed_lane, model, rule, lanes)
        self.borrowed = borrowed_lane is not None
        if not isinstance(kappa_ring, bool):
            raise TypeError(f"Kappa ring must be True or False, not {kappa_ring!r}")
        if kappa_ring and lanes != 1:
            raise ValueError("A kappa ring is a time-shared lane's: it needs lanes=1")
        self.kappa_ring = kappa_ring
        super().__init__({
            "run": In(1), "done": Out(1),
            "neurons": In(range(max(hidden) + 1)),
            "base": In(range(max(2, sum(hidden)))),
            **({"kappa_word": In(LFSR_WIDTH), "kappa_load": In(3)} if kappa_ring else
               {"kappa_b": In(LFSR_WIDTH), "kappa_pos": In(LFSR_WIDTH),
                "kappa_neg": In(LFSR_WIDTH)}),
            "k_b": In(k_shape), "k_u": In(k_shape),
            "y": In(range(K)), "y_neg": In(range(K)),
            "errors": In(memory.ReadPort.Signature(addr_width=_width(max(hidden)),
                                                   shape=error_entry_layout())),
            "rho": In(memory.ReadPort.Signature(addr_width=_width(max(hidden)),
                                                shape=unsigned(LFSR_WIDTH))),
            "bias": In(memory.ReadPort.Signature(addr_width=_width(sum(hidden)),
                                                 shape=unsigned(self.bias_bits))),
            "labels": In(memory.ReadPort.Signature(addr_width=_width(label_words),
                                                   shape=unsigned(label_bits))),
            "write": Out(wiring.Signature({
                "valid": Out(1), "label": Out(1), "addr": Out(range(label_words)),
                "data": Out(unsigned(max(label_bits, self.bias_bits)))})),
            **({"lane": Out(borrowed_lane.guest_signature)} if self.borrowed else {}),
        })
        # Made here, not in elaborate, so the fit check can ask them what they need.
        # v = 1: lanes without a multiplier (a constant 1 behind an input register that
        # resets to 0 kept one each, 3 MULT18X18D on ECP5).
        #: With a borrowed lane: the bits of rho and kappa that b and U's R can take, the
        #: largest k of b and U in the rule's schedule (k = base - z, the base growing
        #: with lambda), which may be fewer than a W lane's max_shift. The rest go to the
        #: lane as zeros, so no register or multiplexer keeps them (an own lane's
        #: shifter has only b and U's k: Yosys finds that itself).
        self.rounding_bits = None
        if self.borrowed:
            trainer = IntTrainer(model, rule)
            self.rounding_bits = min(borrowed_lane.max_shift, max(
                1, *(trainer.base_shifts(layer, rule.lr_shift_at(epoch))[name]
                     for epoch in (0, rule.epochs - 1) for layer in range(len(hidden))
                     for name in ("b", "U"))))
        self.lanes = (borrowed_lane,) if self.borrowed else tuple(
            UpdateLane.for_model(model, rule, unit_input=True, compact=compact_lanes)
            for _ in range(lanes))
        # One lane: a label word is read again where no issue reads one
        # (_elaborate_shared): latency mod 3 != 2 with one word, = 2 mod 4 with two.
        latency = self.lane_latency
        if lanes == 1 and (latency % 3 == 2 if groups.count == 1 else latency % 4 != 2):
            raise ValueError(f"A time-shared lane of latency {latency} would read a label "
                             f"word again in an issue slot")

    def products(self) -> list[Product]:
        """The lanes' multipliers: none (unit inputs, ``UpdateLane(unit_input=True)``; a
        borrowed lane's are its owner's)."""
        if self.borrowed:
            return []
        return [product for lane in self.lanes for product in lane.products()]

    @property
    def lane_latency(self) -> int:
        """Cycles of the lanes (:attr:`rtl.update_lane.UpdateLane.latency`): a unit
        lane's, or the borrowed lane's."""
        return self.lanes[0].latency

    @property
    def drain(self) -> int:
        """Cycles after the last neuron's issue slots until the step ends: the read, the
        lane and the second write a cycle after the first (the label word after the bias
        on three lanes, the bias after the label word on one)."""
        return self.lane_latency + 3

    @property
    def issue_period(self) -> int:
        """Cycles between two neurons' issues: two writes each on three lanes, three
        entries through the one lane, and a fourth for the two label words' two reads."""
        if len(self.lanes) == 3:
            return 2
        return 3 if self.groups.count == 1 else 4

    def cycles(self, neurons: int) -> int:
        """Cycles of the step for a layer of ``neurons``."""
        return self.issue_period * neurons + self.drain

    def elaborate(self, platform) -> Module:
        if len(self.lanes) == 1:
            return self._elaborate_shared()
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
        new_u = Cat(Mux(equals(y, q), lane_pos.out,
                        Mux(equals(y_neg, q), lane_neg.out, stored_field(u_old, q, B_m)))[:B_m]
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

    def _elaborate_shared(self) -> Module:
        """One lane for U+, U- and b in turn, a neuron issued every :attr:`issue_period`
        cycles at t, its bias, error and rho addresses held until the next.

        One label word a neuron (period 3): the word is read at t only; U+ enters at
        t+1 from it, U- at t+2 from its field kept since t+1, b at t+3 (the bias read
        still shows t+2's address). With the lane's latency L the word is read again as
        U+ leaves (t+L+1, never an issue slot: L mod 3 != 2) and written with both new
        fields as U- leaves, U+'s kept a cycle; the bias is written as b leaves.

        Two words (G < K, period 4): y's word is read at t, y''s at t+1; U+ enters at
        t+1, U- at t+2, each from its word, b at t+3. Each word is read again the cycle
        before its entry leaves the lane (t+L and t+L+1, never an issue slot: L mod 4 =
        2) and written as it leaves with its new field, y''s word with U+'s too when both
        labels share it (its second read may miss the first write)."""
        m = Module()
        groups = self.groups
        y, y_neg = self.y, self.y_neg
        if self.borrowed:
            # The lane's members through the port (its owner has the lane itself).
            lane = self.lane
            m.d.comb += lane.run.eq(self.run)
        else:
            m.submodules.lane = lane = self.lanes[0]
        period = self.issue_period
        slot, neuron, count, issuing, address, late = self._shared_issue(m, period)
        kind = self._entry_kind(m, issuing, slot)
        self._shared_entries(m, lane, kind, late)
        stages = self._carried_stages(m, kind)
        (out_kind, out_addr), (next_kind, next_addr) = stages[-1], stages[-2]
        if self.kappa_ring:
            self._kappa_ring(m, stages[0][0] if late else kind, _NONE)
        elif late:
            self._late_kappa(m, lane, stages[0][0])
        self._write_back(m, lane.out, (out_kind, out_addr), (next_kind, next_addr),
                         groups.word(address, Mux(slot == 1, y_neg, y)))
        with m.If(self.run):
            m.d.sync += count.eq(count + 1)
            with m.If(issuing):
                m.d.sync += slot.eq(slot + 1)
                with m.If(slot == period - 1):
                    m.d.sync += [slot.eq(0), neuron.eq(neuron + 1)]
            with m.If(count == period * self.neurons + self.drain - 1):
                m.d.sync += [count.eq(0), neuron.eq(0), slot.eq(0)]
                m.d.comb += self.done.eq(1)
        return m

    def _shared_issue(self, m: Module, period: int) -> tuple:
        """The shared lane's issue (:meth:`_elaborate_shared`): the slot within a
        neuron's ``period`` cycles, the neuron, the cycle count, whether a neuron is being
        issued, its bias address, and whether the lane takes rho and kappa late; the error,
        rho and bias addresses driven."""
        slot = Signal(range(period))
        neuron = Signal(range(max(self.model.config.hidden) + 1))
        count = Signal(range(period * max(self.model.config.hidden) + self.drain + 1))
        issuing = Signal()
        address = self.base + neuron
        # A borrowed lane with a late rounding takes rho and kappa a cycle after their
        # entry (UpdateLane(late_rounding=True)): rho from the neuron's address a cycle
        # old when the neuron's last entry comes in the cycle its next one is addressed
        # (a neuron every third cycle), and kappa by the entry's kind a cycle old.
        late = self.borrowed and self.lanes[0].late_rounding
        rho_neuron = neuron
        if late and period == 3:
            rho_neuron = Signal.like(neuron, name="rho_neuron")
            m.d.sync += rho_neuron.eq(neuron)
        m.d.comb += [issuing.eq(self.run & (neuron < self.neurons)),
                     self.errors.addr.eq(neuron), self.rho.addr.eq(rho_neuron),
                     self.bias.addr.eq(address)]
        return slot, neuron, count, issuing, address, late

    def _entry_kind(self, m: Module, issuing, slot) -> Signal:
        """The kind of the entry the shared lane takes, a cycle after its slot."""
        # The entry's kind, a cycle after its slot: its slot's number (U+, U-, b), NONE
        # for no entry. Tests for a kind or a label go through rtl.select.equals: Amaranth
        # writes "== 0" as a multi-bit logical NOT, which Verilator's -Wall reports.
        kind = Signal(range(4), init=_NONE)
        m.d.sync += kind.eq(Mux(issuing & (slot < 3), slot, _NONE))
        return kind

    def _lane_kappa(self, word):
        """A kappa word as the shared lane takes it: a borrowed lane only the bits b and
        U's R can take (:attr:`rounding_bits`)."""
        return word[:self.rounding_bits] if self.borrowed else word

    def _shared_entries(self, m: Module, lane, kind, late: bool) -> None:
        """The shared lane's entry by ``kind``: U+ from y's field, U- from y''s, b from the
        bias, each with its error, k and kind, rho and (unless ``late`` or a ring) kappa."""
        B_m, groups = self.rule.store_bits, self.groups
        y, y_neg = self.y, self.y_neg
        errors = self.errors.data
        if groups.count == 1:
            u_neg = Signal(B_m)
            with m.If(equals(kind, _U_POS)):
                m.d.sync += u_neg.eq(groups.field(self.labels.data, y_neg, B_m))
            c_neg = u_neg.as_signed()
        else:
            c_neg = groups.field(self.labels.data, y_neg, B_m)
        if self.borrowed:
            # A borrowed lane's en is its owner's (UpdateLane.guest_signature): the
            # entries' kinds carried beside the lane say when each leaves, not valid.
            # rho and kappa only as wide as b and U's largest k (rounding_bits).
            m.d.comb += lane.rho.eq(self.rho.data[:self.rounding_bits])
        else:
            m.d.comb += [lane.en.eq(kind != _NONE), lane.rho.eq(self.rho.data)]

        def kappa_now(name: str) -> list:
            # Late, kappa follows the entry's kind a cycle later; a ring's is its head
            # (below).
            if late or self.kappa_ring:
                return []
            return [lane.kappa.eq(self._lane_kappa(getattr(self, name)))]

        with m.Switch(kind):
            with m.Case(_U_POS):
                m.d.comb += [lane.c.eq(groups.field(self.labels.data, y, B_m)),
                             lane.d.eq(errors.dp), *kappa_now("kappa_pos"),
                             lane.k.eq(self.k_u), lane.select.eq(STORED_KINDS.index("W"))]
            with m.Case(_U_NEG):
                m.d.comb += [lane.c.eq(c_neg), lane.d.eq(errors.dn),
                             *kappa_now("kappa_neg"), lane.k.eq(self.k_u),
                             lane.select.eq(STORED_KINDS.index("W"))]
            with m.Default():
                m.d.comb += [lane.c.eq(self.bias.data.as_signed()), lane.d.eq(errors.d),
                             *kappa_now("kappa_b"), lane.k.eq(self.k_b),
                             lane.select.eq(STORED_KINDS.index("b"))]

    def _carried_stages(self, m: Module, kind) -> list:
        """The kind and bias address of each entry, carried beside the shared lane."""
        # Each entry's kind and neuron, carried beside the lane: stages[i] is i + 1
        # cycles after its entry, stages[-1] leaves with it.
        entry_addr = Signal.like(self.bias.addr)
        m.d.sync += entry_addr.eq(self.bias.addr)
        stages, stage = [], (kind, entry_addr)
        for i in range(self.lane_latency):
            reg = (Signal.like(kind, name=f"bu_kind_{i}"),
                   Signal.like(entry_addr, name=f"bu_addr_{i}"))
            m.d.sync += [reg[0].eq(stage[0]), reg[1].eq(stage[1])]
            stages.append(reg)
            stage = reg
        return stages

    def _late_kappa(self, m: Module, lane, late_kind) -> None:
        """A late lane's kappa (no ring), by ``late_kind``, its entry's kind a cycle
        old."""
        with m.Switch(late_kind):
            with m.Case(_U_POS):
                m.d.comb += lane.kappa.eq(self._lane_kappa(self.kappa_pos))
            with m.Case(_U_NEG):
                m.d.comb += lane.kappa.eq(self._lane_kappa(self.kappa_neg))
            with m.Default():
                m.d.comb += lane.kappa.eq(self._lane_kappa(self.kappa_b))

    def _write_back(self, m: Module, out, leaving, next_out, issue_word) -> None:
        """The shared lane's results written back (:meth:`_elaborate_shared`): the label
        word read again and written with its new fields as U+ and U- leave the lane
        (``leaving``: the kind and neuron address leaving; ``next_out``: those leaving
        next cycle), the bias as b leaves; ``issue_word`` the label word the issue reads
        otherwise."""
        B_m, groups = self.rule.store_bits, self.groups
        G = groups.lanes
        y, y_neg = self.y, self.y_neg
        U_POS, U_NEG, BIAS = range(3)
        (out_kind, out_addr), (next_kind, next_addr) = leaving, next_out
        u_pos = Signal(B_m)
        with m.If(equals(out_kind, U_POS)):
            m.d.sync += u_pos.eq(out[:B_m])
        new_field = out[:B_m]
        if groups.count == 1:
            # Read the word again as U+ leaves; write it as U- leaves.
            with m.If(equals(out_kind, U_POS)):
                m.d.comb += self.labels.addr.eq(out_addr)
            with m.Else():
                m.d.comb += self.labels.addr.eq(issue_word)
            label_write = equals(out_kind, U_NEG)
            fields = [Mux(equals(y, q), u_pos,
                          Mux(equals(y_neg, q), new_field,
                              stored_field(self.labels.data, q, B_m)))[:B_m]
                      for q in range(G)]
        else:
            # Read each word again the cycle before its entry leaves; write it as it does.
            with m.If(equals(next_kind, U_POS) | equals(next_kind, U_NEG)):
                m.d.comb += self.labels.addr.eq(
                    groups.word(next_addr, Mux(equals(next_kind, U_POS), y, y_neg)))
            with m.Else():
                m.d.comb += self.labels.addr.eq(issue_word)
            label_write = equals(out_kind, U_POS) | equals(out_kind, U_NEG)
            same_word = groups.group(y) == groups.group(y_neg)
            own = Mux(equals(out_kind, U_POS), groups.place(y), groups.place(y_neg))
            fields = [Mux(equals(own, j), new_field,
                          Mux(equals(out_kind, U_NEG) & same_word
                              & equals(groups.place(y), j), u_pos,
                              stored_field(self.labels.data, j, B_m)))[:B_m]
                      for j in range(G)]
        out_word = Mux(equals(out_kind, U_POS), y, y_neg)
        with m.If(label_write):
            m.d.comb += [self.write.valid.eq(1), self.write.label.eq(1),
                         self.write.addr.eq(groups.word(out_addr, out_word)),
                         self.write.data.eq(Cat(fields))]
        with m.Elif(equals(out_kind, BIAS)):
            m.d.comb += [self.write.valid.eq(1), self.write.label.eq(0),
                         self.write.addr.eq(out_addr),
                         self.write.data.eq(out[:self.bias_bits])]

    def _kappa_ring(self, m: Module, taken, none: int) -> None:
        """``kappa_ring``: kappa^b, kappa^+ and kappa^- in three registers, each loaded
        through its own LUT (``kappa_load``), and rotated as the lane takes the head's
        (``taken``, the kind of the entry whose kappa the lane takes this cycle, is not
        ``none``): U+, U-, b, U+, ... as the entries come. A pass takes 3 N, back where
        it started."""
        lane = self.lane if self.borrowed else self.lanes[0]
        width = self.rounding_bits or LFSR_WIDTH
        ring_b, ring_pos, ring_neg = ring = [Signal(width, name=f"kappa_ring_{name}")
                                             for name in ("b", "pos", "neg")]
        with m.If(~equals(taken, none)):
            m.d.sync += [ring_pos.eq(ring_neg), ring_neg.eq(ring_b), ring_b.eq(ring_pos)]
        for i, reg in enumerate(ring):
            with m.If(self.kappa_load[i]):
                m.d.sync += reg.eq(self.kappa_word[:width])
        m.d.comb += lane.kappa.eq(ring_pos)


def _check_borrowed(lane, model: IntModel, rule: TrainRule, lanes: int) -> None:
    """Raise unless ``lane`` takes a b and U entry as the pass's own lane would."""
    if not isinstance(lane, UpdateLane):
        raise TypeError(f"Borrowed lane must be an rtl.update_lane.UpdateLane, not {lane!r}")
    if lanes != 1 or isinstance(lanes, bool):
        raise ValueError(f"A borrowed lane is one time-shared lane: build the pass with "
                         f"lanes=1, not {lanes!r}")
    own = UpdateLane.for_model(model, rule, unit_input=True)
    for what, theirs, ours in (("stored ranges", lane.limits, own.limits),
                               ("rounding", lane.rounding, own.rounding),
                               ("error width", lane.error_bits, own.error_bits),
                               ("shift range", (lane.min_shift, lane.max_shift),
                                (own.min_shift, own.max_shift))):
        if theirs != ours:
            raise ValueError(f"A borrowed lane must have the b and U lane's {what}, "
                             f"{ours!r}, not {theirs!r}")
