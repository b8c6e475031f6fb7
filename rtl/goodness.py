"""The goodness-compute datapath: the single-pass label scan.

For every neuron i of a layer and every candidate label k: h = max(pre_i + U[i, k], 0),
score[k] += h^2. G label lanes work in parallel on one neuron; a layer with K labels takes
ceil(K / G) groups per neuron. The squares use multipliers of their own, or borrow the
MAC lanes' (``product_latency``), which are idle during a scan. FFL's goodness of a pass
(its layer's sum of squares, which the normaliser computes anyway) is added to one label's
score through ``add``.
"""

from __future__ import annotations

from amaranth import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.params import check_positive_int
from rtl.select import one_hot

__all__ = ["GoodnessDatapath"]


class GoodnessDatapath(wiring.Component):
    """Per-label score accumulators fed by G add/ReLU/square lanes.

    Parameters
    ----------
    labels : int
        K, the number of candidate labels (score registers).
    lanes : int
        G, labels processed per cycle.
    state_bits : int
        Width of the signed pre-activation.
    weight_bits : int
        Width of a signed label weight.
    score_bits : int
        Width of an unsigned score (derived so it cannot overflow).
    product_latency : int, optional
        Borrow the squares' multipliers: lane q puts ``factor[q]`` out and gets
        ``factor[q]^2`` back in ``product[q]`` this many cycles later (default: the lanes
        have multipliers of their own). h = 2 f + e with f = h >> 1 and e = h & 1, so
        h^2 = 4 f^2 + e (4 f + 1) needs only the square of f, which fits a signed
        ``operand_bits`` input when state and weight widths are at most ``operand_bits``.
    operand_bits : int, optional
        Width of a borrowed multiplier's signed input (default 16, SB_MAC16).
    lean : bool, optional
        Only with ``product_latency``: the small-part form (default False). Lane q's
        multiplier gets f and f + e (``cofactor``) instead of f twice: h^2 = 4 f (f + e)
        + e, so only e waits beside the product instead of e (4 f + 1), and the product
        and e need no adder (4 f (f + e) has no bit below bit 2), so no square register
        either: the stages are the add, the ReLU and the halves (c = f + e = ceil(h / 2)
        and f = c - e, which fit the signed input as f does: h <= 2^operand_bits - 2),
        the product, the score. On iCE40 a flip-flop fed by a memory, a multiplier or a
        flip-flop takes a logic cell of its own; the input registers, the odd part's line
        and the square register were such. The same scores in the same cycles.
    fused_relu : bool, optional
        Only with ``lean``: another small-part option (default False). The add and the
        ReLU are one stage, h = max(pre + u, 0) registered from the sum, instead of z
        registered and h = max(z, 0) after it, which Yosys maps onto h's synchronous
        reset with z at its input: a flip-flop fed by a flip-flop, a logic cell a bit
        (17 a lane in the digits training build). One stage fewer (``latency``
        ``product_latency + 3``): :class:`rtl.core.Core` keeps the scan's drain (the
        closed form's ``scan_drain``, a cycle more than it needs), so the scan's cycles
        stay. The memories' outputs and the add now feed h's flip-flops and their reset
        (the sign) in one cycle: the 30 MHz part's margin, not timed yet.

    Members
    -------
    clear : In(1)
        Zero every score (start of an inference).
    en : In(1)
        ``pre``, ``u`` and ``group`` are valid this cycle.
    pre : In(signed(state_bits))
    u : In(ArrayLayout(signed(weight_bits), lanes))
        U[i, group * G + q] for lane q (zero beyond K).
    group : In(range(max(2, ceil(K / G))))
    add : In(1)
        Add ``add_value`` to ``score[add_label]`` (FFL); takes effect next cycle. Never
        while scan squares are still arriving (the sequencer keeps them apart).
    add_label : In(range(K))
    add_value : In(unsigned(score_bits))
    scores : Out(ArrayLayout(unsigned(score_bits), labels))
        Valid ``latency`` cycles after the last element.
    factor : Out(ArrayLayout(signed(operand_bits), lanes))
        Only with ``product_latency``: what lane q needs squared.
    cofactor : Out(ArrayLayout(signed(operand_bits), lanes))
        Only with ``lean``: lane q's second operand (``factor[q]`` otherwise).
    product : In(ArrayLayout(signed(2 * operand_bits), lanes))
        Only with ``product_latency``: ``factor[q]`` times ``factor[q]`` (``lean``:
        times ``cofactor[q]``), ``product_latency`` cycles later.
    """

    def __init__(self, *, labels: int, lanes: int, state_bits: int, weight_bits: int,
                 score_bits: int, product_latency: int | None = None,
                 operand_bits: int = 16, lean: bool = False,
                 fused_relu: bool = False) -> None:
        self.labels = check_positive_int("Label count", labels, minimum=2)
        self.lanes = check_positive_int("Label lane count", lanes)
        if lanes > labels:
            raise ValueError(f"Label lane count must be at most the label count {labels}, "
                             f"not {lanes}")
        self.state_bits = check_positive_int("State width", state_bits, minimum=2)
        self.weight_bits = check_positive_int("Weight width", weight_bits, minimum=2)
        self.score_bits = check_positive_int("Score width", score_bits)
        self.product_latency = product_latency
        self.operand_bits = check_positive_int("Operand width", operand_bits, minimum=2)
        if not isinstance(lean, bool):
            raise TypeError(f"Lean must be True or False, not {lean!r}")
        if lean and product_latency is None:
            raise ValueError("The lean goodness datapath borrows its multipliers: it needs "
                             "a product latency")
        self.lean = lean
        if not isinstance(fused_relu, bool):
            raise TypeError(f"Fused ReLU must be True or False, not {fused_relu!r}")
        if fused_relu and not lean:
            raise ValueError("The fused ReLU is a form of the lean goodness datapath: it "
                             "needs lean=True")
        self.fused_relu = fused_relu
        members = {
            "clear": In(1),
            "en": In(1),
            "pre": In(signed(state_bits)),
            "u": In(data.ArrayLayout(signed(weight_bits), lanes)),
            "group": In(range(max(2, self.groups))),
            "add": In(1),
            "add_label": In(range(labels)),
            "add_value": In(unsigned(score_bits)),
            "scores": Out(data.ArrayLayout(unsigned(score_bits), labels)),
        }
        if product_latency is not None:
            check_positive_int("Product latency", product_latency)
            if max(state_bits, weight_bits) > operand_bits:
                raise ValueError(f"Borrowed {operand_bits}-bit multipliers square states "
                                 f"and weights of at most {operand_bits} bits, not "
                                 f"{max(state_bits, weight_bits)}")
            members.update({
                "factor": Out(data.ArrayLayout(signed(operand_bits), lanes)),
                "product": In(data.ArrayLayout(signed(2 * operand_bits), lanes)),
            })
            if lean:
                members["cofactor"] = Out(data.ArrayLayout(signed(operand_bits), lanes))
        super().__init__(members)

    @property
    def groups(self) -> int:
        """ceil(K / G): label groups per neuron."""
        return -(-self.labels // self.lanes)

    @property
    def latency(self) -> int:
        """Cycles from an element at the inputs to its square in ``scores``: the input
        registers, the ReLU, the square (borrowed: the product, then 4 f^2 + e (4 f + 1);
        ``lean``: the add, the ReLU, the halves, the product; ``fused_relu``: the add and
        the ReLU in one), the score."""
        if self.product_latency is None:
            return 4
        return self.product_latency + (3 if self.fused_relu else 4)

    def elaborate(self, platform) -> Module:
        m = Module()
        h_bits = max(self.state_bits, self.weight_bits) + 1
        # Elements travel latency - 1 cycles before their square reaches the scores.
        depth = self.latency - 1
        valid = Signal(depth)
        group = [Signal(range(max(2, self.groups)), name=f"group_{i}") for i in range(depth)]
        m.d.sync += [valid.eq(valid << 1 | self.en), group[0].eq(self.group)]
        m.d.sync += [group[i].eq(group[i - 1]) for i in range(1, depth)]
        target = one_hot(self.add_label, self.labels)
        # The pre-activation and the label weights arrive straight from block RAM reads;
        # registered before the add, the read (5.8 ns on an ECP5 -6) and the route from
        # the memory are a cycle of their own (together with the add and the ReLU they
        # were the ULX3S-85F build's slowest path, 18 ns).
        if not self.lean:
            pre = Signal.like(self.pre, reset_less=True)
            u = Signal.like(self.u, reset_less=True)
            m.d.sync += [pre.eq(self.pre), u.eq(self.u)]
        addends = []
        for q in range(self.lanes):
            if self.lean:
                square = self._lean_square(m, q, h_bits)
            else:
                z = Signal(signed(h_bits + 1), name=f"z_{q}")
                h = Signal(unsigned(h_bits), name=f"h_{q}")
                square = Signal(unsigned(2 * h_bits), name=f"square_{q}")
                m.d.comb += z.eq(pre + u[q])
                # ReLU, then square: each stage registered.
                m.d.sync += h.eq(Mux(z[-1], 0, z))
                if self.product_latency is None:
                    m.d.sync += square.eq(h * h)
                else:
                    m.d.sync += square.eq(self._borrowed_square(m, q, h))
            # The lane's scores add either its square or FFL's ``add_value`` (the sequencer
            # never asks for both in one cycle; ``add`` would win): one multiplexer per
            # lane, and one adder per score, keep the logic small on iCE40.
            addend = Signal(unsigned(max(self.score_bits, 2 * h_bits)), name=f"addend_{q}")
            m.d.comb += addend.eq(Mux(self.add, self.add_value, square))
            addends.append(addend)
        group_hot = one_hot(group[-1], self.groups)
        for k in range(self.labels):
            g, q = divmod(k, self.lanes)
            with m.If(self.clear):
                m.d.sync += self.scores[k].eq(0)
            with m.Elif(Mux(self.add, target[k], valid[-1] & group_hot[g])):
                m.d.sync += self.scores[k].eq(self.scores[k] + addends[q])
        return m

    def _borrowed_square(self, m: Module, q: int, h):
        """h^2 from the borrowed product f^2, f = h >> 1: 4 f^2 + e (4 f + 1)."""
        f, e = h[1:], h[0]
        m.d.comb += self.factor[q].eq(f)
        # The odd part waits beside the product.
        odd = Signal(unsigned(len(h) + 2), name=f"odd_{q}")
        m.d.sync += odd.eq(Mux(e, (f << 2) + 1, 0))
        for i in range(1, self.product_latency):
            delayed = Signal.like(odd, name=f"odd_{q}_{i}")
            m.d.sync += delayed.eq(odd)
            odd = delayed
        return (self.product[q].as_unsigned() << 2) + odd

    def _lean_square(self, m: Module, q: int, h_bits: int):
        """Lane q's h^2 in the small-part form (``lean``), valid in the cycle it is added:
        z = pre + u (registered), h = max(z, 0) (registered), c = ceil(h / 2) and
        e = h & 1 (registered), then the borrowed product f c with f = c - e = h >> 1:
        h^2 = 4 f (f + e) + e = 4 f c + e, whose bits are the product's above e and a
        zero. The same stages as the full form, whose input registers, odd part and
        square register were flip-flops fed by a memory, the multiplier or a flip-flop
        (on iCE40 a logic cell each); here only e's line is, and h (Yosys maps the ReLU
        onto the register's synchronous reset, so z feeds it: a cell a bit, measured in
        the digits training build, as in the full form its input registers). The
        memories' outputs go into the add unregistered, the product into the scores: a
        30 MHz part's margin, not timed yet (the small part's training build does not
        place); on ECP5 the read into the add was the slowest path (see ``elaborate``)."""
        z = Signal(signed(h_bits + 1), name=f"z_{q}")
        h = Signal(unsigned(h_bits), name=f"h_{q}")
        # c <= 2^(h_bits - 2) - 1, as h <= 2^(h_bits - 1) - 2 (two signed values' sum).
        c = Signal(unsigned(h_bits - 1), name=f"c_{q}")
        e = Signal(name=f"e_{q}")
        if self.fused_relu:
            # The sum is not registered: h's synchronous reset (the ReLU) comes from its
            # sign, and each bit of h from its own LUT of the adder.
            m.d.comb += z.eq(self.pre + self.u[q])
        else:
            m.d.sync += z.eq(self.pre + self.u[q])
        m.d.sync += [h.eq(Mux(z[-1], 0, z)), c.eq((h + 1) >> 1), e.eq(h[0])]
        m.d.comb += [self.factor[q].eq(c - e), self.cofactor[q].eq(c)]
        # Only e waits beside the product.
        for i in range(self.product_latency):
            delayed = Signal(name=f"e_{q}_{i}")
            m.d.sync += delayed.eq(e)
            e = delayed
        square = Signal(unsigned(2 * h_bits), name=f"square_{q}")
        m.d.comb += square.eq(Cat(e, C(0, 1), self.product[q].as_unsigned()))
        return square
