# amaranth: UnusedElaboratable=no
"""The training core: labelled samples in, the integer rule's updates of every weight.

The first end-to-end slice of docs/training-engine.md, for FFDL with dedicated
multipliers and block-RAM-style memories. Per sample (image + label on ``samples``):

1. The pixels go to the inference :class:`rtl.core.Core` (a submodule, unchanged in its
   datapath), which runs its whole program: with T = 1, every layer's forward pass reads
   the weights from before the sample's updates, as the rule says (the layer above at
   iteration t reads a_l computed before layer l's update). Its ``observe`` port shows
   the pre-activations (in the label scan) and the activations (the sweep's writes),
   which this core keeps; it keeps the pixels as they pass. Meanwhile the label
   generator draws y' by rejection.
2. After the result (whose record and cycle count the ``done`` record carries), layer
   by layer in rule order: the rounding generator's words of the update (kappa^W_1 kept,
   kappa^b, kappa^+, kappa^- in registers, rho into the rho buffer, the other kappa^W
   dropped); the :class:`rtl.learning_signal.LearningSignalUnit` scan (pre, U[i, y],
   U[i, y'] top bits) and its errors into the error buffer; for layers above the first
   the normalised inputs v (sum of squares, :class:`rtl.normaliser.Rsqrt`,
   :class:`rtl.normaliser.Scaler`) into the v buffer; the W pass tile by tile, the replay
   generator restored to kappa^W_1 at every tile, P :class:`rtl.update_lane.UpdateLane`
   read-modify-writing one stored word of P weights per cycle; then b and U's two
   columns, neuron by neuron, through three more lanes (v = 1).
3. The ``done`` record is offered; meanwhile ``read`` reads the stored words back.

Structure. The stored weights (B_m bits, biases B_s + f) live in the inference core's
own memories: built with ``store_bits`` the core's weight, bias and label memories hold
stored words (a weight word is P x B_m bits), its forward pass reads the top bits of each
field (c >> f, a slice: nothing else in the inference datapath changes), and its
``store`` port lends this engine the three read ports while the core idles; the engine
writes the updated words through the core's ``load`` port. So the datapath and the
weights are the core's, not copies. What is kept twice: the pixels, the
pre-activations and the activations, which this core copies from the ``observe`` port
into buffers of its own (reading the core's image, pre-activation and feedback memories
through their ports instead is listed in docs/training-engine.md as remaining work).

The cycle counter runs from the last pixel's transfer to the ``done`` record being
offered; :meth:`TrainingCore.training_cycles` is its closed form.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.intmodel import IntModel
from golden.inttrain import (
    LABEL_SEED_OFFSET,
    NORM_FRAC_BITS,
    IntTrainer,
    TrainRule,
)
from rtl.core import LOAD_TARGETS, Core
from rtl.learning_signal import LearningSignalUnit
from rtl.lfsr import WordGenerator
from rtl.normaliser import Rsqrt, Scaler
from rtl.params import check_positive_int
from rtl.program import pack_rows
from rtl.sequencer import CYCLE_BITS
from rtl.update_lane import STORED_KINDS, UpdateLane
from rtl.weight_store import WeightStore

__all__ = ["READ_LATENCY", "TrainingCore", "done_layout", "sample_layout"]

#: Cycles from ``read`` to ``read_data`` (the weight store's latency; bias and label
#: words wait a cycle to match).
READ_LATENCY = 2


def sample_layout(input_bits: int, labels: int) -> data.StructLayout:
    """One pixel of a labelled sample; ``label`` and ``train`` are read with the last."""
    return data.StructLayout({"pixel": unsigned(input_bits), "label": range(labels),
                              "train": 1})


def done_layout(labels: int) -> data.StructLayout:
    """Per sample: the inference's predicted label (weights before the update), the wrong
    label drawn (training samples) and the cycles from the last pixel to this record."""
    return data.StructLayout({"label": range(labels), "wrong": range(labels),
                              "cycles": unsigned(CYCLE_BITS)})


def _pack(values, bits: int) -> int:
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & ((1 << bits) - 1)) << (i * bits)
    return word


class TrainingCore(wiring.Component):
    """An FFDL core that trains on chip with the integer rule (module docstring).

    Parameters
    ----------
    model : IntModel
        The starting forward model (FFDL); the stored weights start as
        :class:`golden.inttrain.IntTrainer`'s do.
    rule : TrainRule
        The rule; the core trains with lambda of the first epoch (``lr_shift_at(0)``)
        and starts both generators from ``rule.seed``.
    lanes : int
        P: MAC lanes of the inference core and update lanes of the W pass.

    Attributes
    ----------
    core : rtl.core.Core
        The inference core, with stored weights (``store_bits``).
    labels_gen, words_gen : rtl.lfsr.WordGenerator
        The label and rounding generators (their ``words.payload`` is the next word).

    Members
    -------
    samples : In(stream.Signature(sample_layout(input_bits, K)))
        D pixels per sample, row-major; with the last pixel its label and whether to
        train on it (``train`` 0: classify only, nothing changes).
    done : Out(stream.Signature(done_layout(K)))
        One record per sample, after its updates.
    busy : Out(1)
        A sample is being processed (the cycle counter counts this cycle).
    read : In(wiring.Signature({"target": Out(3), "addr": Out(range(words))}))
        Read-back of the stored words while ``done`` is offered: ``target`` a
        :data:`rtl.core.LOAD_TARGETS` code of weights, bias or labels, ``addr`` the word.
    read_data : Out(unsigned(...))
        The word, :data:`READ_LATENCY` cycles after its ``read`` (as
        :meth:`stored_images` packs it).
    """

    def __init__(self, model: IntModel, rule: TrainRule, *, lanes: int) -> None:
        if not isinstance(model, IntModel):
            raise TypeError(f"Model must be a golden.intmodel.IntModel, not {model!r}")
        if not isinstance(rule, TrainRule):
            raise TypeError(f"Rule must be a golden.inttrain.TrainRule, not {rule!r}")
        if model.config.algo != "ffdl":
            raise ValueError(f"the training core trains FFDL models, not "
                             f"{model.config.algo.upper()} (FFCL's iterations are not built yet)")
        check_positive_int("Lane count", lanes)
        self.trainer = trainer = IntTrainer(model, rule)
        self.model, self.rule, self.lanes = model, rule, lanes
        self.core = Core(model, lanes=lanes, weights="loadable", observe=True,
                         store_bits=rule.store_bits)
        self.fine = trainer.fine_bits
        self.lr_shift = rule.lr_shift_at(0)
        fmt = model.fmt
        if fmt.rsqrt_frac_bits > NORM_FRAC_BITS + 30:
            raise ValueError("rsqrt_frac_bits too large for the v scaler")
        K = model.config.num_classes
        prog = self.core.program
        read_words = max(2, len(prog.weight_words), sum(model.config.hidden))
        read_bits = max(lanes, K) * prog.stored_weight_bits + prog.stored_bias_bits
        super().__init__({
            "samples": In(stream.Signature(sample_layout(fmt.input_bits, K))),
            "done": Out(stream.Signature(done_layout(K))),
            "busy": Out(1),
            "read": In(wiring.Signature({"target": Out(3), "addr": Out(range(read_words))})),
            "read_data": Out(unsigned(read_bits)),
        })
        self.labels_gen = WordGenerator(offset=LABEL_SEED_OFFSET, reset_seed=rule.seed)
        self.words_gen = WordGenerator(offset=0, reset_seed=rule.seed)

    @property
    def widths(self) -> dict[str, int]:
        """Stored widths: ``stored`` (W, U) and ``bias``."""
        return {"stored": self.rule.store_bits,
                "bias": self.model.fmt.state_bits + self.fine}

    def stored_images(self, stored: list[dict]) -> dict[str, list[int]]:
        """The words of the stored memories for IntTrainer-style ``stored`` arrays."""
        w = self.widths
        words = {"W": [], "b": [], "U": []}
        for layer in stored:
            words["W"] += [_pack(row, w["stored"]) for row in pack_rows(layer["W"], self.lanes)]
            words["b"] += [int(v) & ((1 << w["bias"]) - 1) for v in layer["b"]]
            words["U"] += [_pack(row, w["stored"]) for row in layer["U"]]
        return words

    def training_cycles(self) -> int:
        """Closed form of the counter for a training sample whose wrong label is drawn
        before the inference's result (the draw needs more rejections than the inference
        has cycles otherwise; the core then waits for it in LABEL).

        The inference (:meth:`rtl.program.Program.cycles`) and the cycle its result is
        taken, LABEL (1), then per layer: WORDS (n_in + 3 + N words), SCAN and ERRORS
        (2 N + the unit's gap), for a layer above the first SQUARES (n_in + 2), RSQRT
        (its latency + 1) and SCALE (n_in + the scaler's latency + 2), per tile TILE
        (P + 2), PASS (n_in) and DRAIN (weight store latency 2 + lane latency + 1), and BU
        (2 N + lane latency + 3).
        """
        config, P = self.model.config, self.lanes
        lane_latency = UpdateLane.latency_for(None)
        total = self.core.program.cycles() + 1 + 1
        for i, n in enumerate(config.hidden):
            n_in = config.input_size if i == 0 else config.hidden[i - 1]
            tiles = -(-n // P)
            words = n_in + 3 + n
            signal = 2 * n + LearningSignalUnit.GAP
            vprep = 0 if i == 0 else (n_in + 2) + Rsqrt.LATENCY + 1 + (n_in + Scaler.LATENCY + 2)
            wpass = tiles * ((P + 2) + n_in + WeightStore.LATENCY + lane_latency + 1)
            bu = 2 * n + lane_latency + 3
            total += words + signal + vprep + wpass + bu
        return total

    def elaborate(self, platform) -> Module:  # noqa: C901 (one state machine)
        m = Module()
        model, rule, trainer = self.model, self.rule, self.trainer
        config, fmt = model.config, model.fmt
        P, K, D, L = self.lanes, config.num_classes, config.input_size, config.num_layers
        hidden, total = config.hidden, sum(config.hidden)
        offsets = [sum(hidden[:i]) for i in range(L)]
        n_ins = [D] + list(hidden[:-1])
        prog = self.core.program
        ff_base = [op.ff_wbase for op in prog.ops if op.kind.name == "LAYER"]
        B_m, f = rule.store_bits, self.fine
        wb = self.widths

        m.submodules.core = core = self.core
        m.submodules.labels_gen = labels_gen = self.labels_gen
        m.submodules.words_gen = words_gen = self.words_gen
        m.submodules.replay = replay = WordGenerator(offset=0, seed_bits=0)
        m.submodules.signal = signal = LearningSignalUnit.for_model(model, sigmoid=rule.sigmoid)
        lanes = [UpdateLane.for_model(model, rule) for _ in range(P)]
        for p, lane in enumerate(lanes):
            m.submodules[f"lane_{p}"] = lane
        m.submodules.lane_b = lane_b = UpdateLane.for_model(model, rule)
        m.submodules.lane_up = lane_up = UpdateLane.for_model(model, rule)
        m.submodules.lane_un = lane_un = UpdateLane.for_model(model, rule)
        lat = lanes[0].latency

        # The engine claims the core's stored-word read ports from the result on, when the
        # core idles (it is offered no pixels until the record is taken).
        store = core.store
        claim = Signal()
        m.d.comb += store.claim.eq(claim)

        # Kept from the forward pass: pixels, pre-activations, activations.
        m.submodules.image_buf = image_buf = memory.Memory(
            shape=unsigned(fmt.input_bits), depth=max(2, D), init=[])
        m.submodules.pre_buf = pre_buf = memory.Memory(
            shape=signed(fmt.state_bits), depth=max(2, total), init=[])
        m.submodules.act_buf = act_buf = memory.Memory(
            shape=unsigned(fmt.act_bits), depth=max(2, total), init=[])
        v_bits = lanes[0].v.shape().width
        m.submodules.v_buf = v_buf = memory.Memory(
            shape=unsigned(v_bits), depth=max(2, *n_ins), init=[])
        err_shape = data.StructLayout({"d": signed(16), "dp": signed(16), "dn": signed(16)})
        m.submodules.err_buf = err_buf = memory.Memory(
            shape=err_shape, depth=max(2, *hidden), init=[])
        m.submodules.rho_buf = rho_buf = memory.Memory(
            shape=unsigned(32), depth=max(2, *hidden), init=[])
        image_w, image_r = image_buf.write_port(), image_buf.read_port()
        pre_w, pre_r = pre_buf.write_port(), pre_buf.read_port()
        act_w, act_r = act_buf.write_port(), act_buf.read_port()
        v_w, v_r = v_buf.write_port(), v_buf.read_port()
        err_w, err_r = err_buf.write_port(), err_buf.read_port()
        rho_w, rho_r = rho_buf.write_port(), rho_buf.read_port()

        obs = core.observe
        m.d.comb += [
            pre_w.en.eq(obs.scan),
            pre_w.addr.eq(Array(Const(o) for o in offsets)[obs.layer] + obs.neuron),
            pre_w.data.eq(obs.pre),
            act_w.en.eq(obs.act), act_w.addr.eq(obs.act_addr), act_w.data.eq(obs.act_data),
        ]

        # -- per-sample state ----------------------------------------------------------
        cycles = Signal(CYCLE_BITS)
        counting = Signal()
        with m.If(counting):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += self.busy.eq(counting)
        pixel = Signal(range(max(2, D)))
        y, y_neg, train = Signal(range(K)), Signal(range(K)), Signal()
        predicted = Signal(range(K))
        draw_pending, draw_r = Signal(), Signal(range(max(2, K)))
        mask_bits = (K - 2).bit_length()

        # The wrong label, by rejection, while the core infers.
        m.d.comb += labels_gen.words.ready.eq(draw_pending)
        with m.If(draw_pending & labels_gen.words.valid):
            r = labels_gen.words.payload[:mask_bits] if mask_bits else Const(0, 1)
            with m.If(r < K - 1):
                m.d.sync += [draw_pending.eq(0), draw_r.eq(r)]

        # -- layer constants --------------------------------------------------------------
        layer = Signal(range(max(2, L)))
        lam = self.lr_shift

        def table(values, shape=None):
            return Array(Const(v, shape) if shape is not None else Const(v) for v in values)

        bases = [trainer.base_shifts(i, lam) for i in range(L)]
        k_shape = lanes[0].k.shape()
        n_out = table(hidden)[layer]
        n_in = table(n_ins)[layer]
        off = table(offsets)[layer]
        in_off = table([0] + offsets[:-1])[layer]
        wbase = table(ff_base)[layer]
        tiles = table([-(-n // P) for n in hidden])[layer]
        m.d.comb += signal.theta.eq(table(trainer.thresholds)[layer])
        z = Signal.like(signal.z)
        k_w, k_b, k_u = Signal(k_shape), Signal(k_shape), Signal(k_shape)
        m.d.comb += [k_w.eq(table([b["W"] for b in bases], signed(12))[layer] - z),
                     k_b.eq(table([b["b"] for b in bases], signed(12))[layer] - z),
                     k_u.eq(table([b["U"] for b in bases], signed(12))[layer] - z)]

        count = Signal(range(2 * (max(D, total) + max(hidden)) + 64))
        issued = Signal.like(count)
        first_kappa = Signal(32)
        kappa_b, kappa_pos, kappa_neg = Signal(32), Signal(32), Signal(32)
        tile = Signal(range(max(2, -(-max(hidden) // P) + 1)))
        shadow_d = Array(Signal(signed(16), name=f"shadow_d_{p}") for p in range(P))
        shadow_rho = Array(Signal(32, name=f"shadow_rho_{p}") for p in range(P))
        drain = Signal(range(lat + 16))

        # -- core load port: every stored word the update writes. Its ready is high
        # whenever the core idles, which it does from the result to the next pixel, so a
        # write never waits (the tests read every word back after every sample).
        load = core.load
        load_target = Signal(3)
        load_addr = Signal.like(load.payload.addr)
        load_data = Signal.like(load.payload.data)
        load_valid = Signal()
        m.d.comb += [load.valid.eq(load_valid), load.payload.target.eq(load_target),
                     load.payload.addr.eq(load_addr), load.payload.data.eq(load_data)]

        def top(value, bits):
            """c >> f of a stored field as a forward field of ``bits`` bits."""
            return (value.as_signed() >> f)[:bits]

        # Read-back while a record is offered: the stored words, READ_LATENCY cycles on
        # (bias and label words, read in one cycle, wait a cycle).
        target_1, target_2 = Signal.like(self.read.target), Signal.like(self.read.target)
        small_word = Signal.like(self.read_data)
        m.d.sync += [target_1.eq(self.read.target), target_2.eq(target_1),
                     small_word.eq(Mux(target_1 == LOAD_TARGETS["bias"], store.bias_data,
                                       store.label_data))]
        m.d.comb += self.read_data.eq(Mux(target_2 == LOAD_TARGETS["weights"],
                                          store.weight_data, small_word))

        # -- W pass pipeline: issue (address) -> data + lanes -> lat -> write --------------
        pass_issue = Signal()
        pass_addr = Signal.like(store.weight_addr)
        m.d.comb += [store.weight_addr.eq(pass_addr), v_r.addr.eq(count), image_r.addr.eq(count)]
        # The weight store answers in WeightStore.LATENCY (2) cycles, the v and image
        # buffers in one: their data waits a cycle in v_value.
        in_lane, issued_1 = Signal(), Signal()
        in_addr, addr_1 = Signal.like(pass_addr), Signal.like(pass_addr)
        in_kappa, kappa_1 = Signal(32), Signal(32)
        v_value = Signal(lanes[0].v.shape())
        m.d.sync += [issued_1.eq(pass_issue), in_lane.eq(issued_1),
                     addr_1.eq(pass_addr), in_addr.eq(addr_1),
                     kappa_1.eq(replay.words.payload), in_kappa.eq(kappa_1),
                     v_value.eq(Mux(layer == 0, image_r.data, v_r.data))]
        for p, lane in enumerate(lanes):
            m.d.comb += [lane.en.eq(in_lane),
                         lane.c.eq(store.weight_data[p * B_m:(p + 1) * B_m].as_signed()),
                         lane.d.eq(shadow_d[p]), lane.v.eq(v_value), lane.rho.eq(shadow_rho[p]),
                         lane.kappa.eq(in_kappa), lane.k.eq(k_w),
                         lane.select.eq(STORED_KINDS.index("W"))]
        out_addr = Signal.like(pass_addr)
        addr_pipe = in_addr
        for i in range(lat):
            reg = Signal.like(pass_addr, name=f"w_addr_{i}")
            m.d.sync += reg.eq(addr_pipe)
            addr_pipe = reg
        m.d.comb += out_addr.eq(addr_pipe)
        # Lanes beyond the layer's last neuron keep the padding 0.
        live = Signal(P)
        live_pipe = Signal(P)
        live_now = Cat(tile * P + p < n_out for p in range(P))
        pipe = live_now
        for i in range(lat + 2):
            reg = Signal(P, name=f"live_{i}")
            m.d.sync += reg.eq(pipe)
            pipe = reg
        m.d.comb += live_pipe.eq(pipe)
        m.d.comb += live.eq(live_pipe)
        new_word = Cat(Mux(live[p], lanes[p].out, 0)[:B_m] for p in range(P))
        with m.If(lanes[0].valid):
            m.d.comb += [load_valid.eq(1), load_target.eq(LOAD_TARGETS["weights"]),
                         load_addr.eq(out_addr), load_data.eq(new_word)]

        # -- b and U pipeline: one neuron every other cycle ------------------------------
        bu_issue = Signal()
        bu_addr = Signal(range(max(2, total)))
        m.d.comb += store.bias_addr.eq(bu_addr)
        bu_in = Signal()
        bu_in_addr = Signal.like(bu_addr)
        m.d.sync += [bu_in.eq(bu_issue), bu_in_addr.eq(bu_addr)]
        u_fields = [store.label_data[q * B_m:(q + 1) * B_m].as_signed() for q in range(K)]
        u_field = Array(u_fields)
        common = [(lane_b, err_r.data.d, kappa_b, k_b, "b", store.bias_data.as_signed()),
                  (lane_up, err_r.data.dp, kappa_pos, k_u, "W", u_field[y]),
                  (lane_un, err_r.data.dn, kappa_neg, k_u, "W", u_field[y_neg])]
        for lane, d_value, kappa, k, kind, c in common:
            m.d.comb += [lane.en.eq(bu_in), lane.c.eq(c), lane.d.eq(d_value), lane.v.eq(1),
                         lane.rho.eq(rho_r.data), lane.kappa.eq(kappa), lane.k.eq(k),
                         lane.select.eq(STORED_KINDS.index(kind))]
        u_old, bu_out_addr = store.label_data, bu_in_addr
        for i in range(lat):
            reg_u = Signal.like(store.label_data, name=f"u_old_{i}")
            reg_a = Signal.like(bu_addr, name=f"bu_addr_{i}")
            m.d.sync += [reg_u.eq(u_old), reg_a.eq(bu_out_addr)]
            u_old, bu_out_addr = reg_u, reg_a
        new_u = Cat(Mux(y == q, lane_up.out, Mux(y_neg == q, lane_un.out,
                                                  u_old[q * B_m:(q + 1) * B_m].as_signed()))[:B_m]
                    for q in range(K))
        # The label word goes to the memory one cycle after the bias (one write a cycle).
        u_pending = Signal()
        u_pending_addr = Signal.like(bu_addr)
        u_pending_word = Signal.like(store.label_data)
        m.d.sync += u_pending.eq(0)
        with m.If(lane_b.valid):
            m.d.comb += [load_valid.eq(1), load_target.eq(LOAD_TARGETS["bias"]),
                         load_addr.eq(bu_out_addr), load_data.eq(lane_b.out[:wb["bias"]])]
            m.d.sync += [u_pending.eq(1), u_pending_addr.eq(bu_out_addr),
                         u_pending_word.eq(new_u)]
        with m.If(u_pending):
            m.d.comb += [load_valid.eq(1), load_target.eq(LOAD_TARGETS["labels"]),
                         load_addr.eq(u_pending_addr), load_data.eq(u_pending_word)]

        # -- v of a layer above the first: round_shift(a r, sh/2 + Q - 14) ---------------
        m.submodules.rsqrt = rsqrt = Rsqrt(sq_bits=prog.widths.sq,
                                           index_bits=fmt.rsqrt_index_bits,
                                           frac_bits=fmt.rsqrt_frac_bits)
        # A shift below zero is a left shift: pre-shift a by e and add e to the shift.
        e = max(0, NORM_FRAC_BITS - fmt.rsqrt_frac_bits)
        m.submodules.scaler = scaler = Scaler(acc_bits=fmt.act_bits + e + 1,
                                              r_bits=fmt.rsqrt_frac_bits + 1, shift_bits=7)
        sq = Signal(prog.widths.sq)
        m.d.comb += [rsqrt.sq.eq(sq), scaler.r.eq(rsqrt.r),
                     scaler.shift.eq((rsqrt.sh >> 1) + fmt.rsqrt_frac_bits - NORM_FRAC_BITS + e),
                     scaler.acc.eq(act_r.data << e)]
        act_valid = Signal()
        v_index = Signal.like(count)
        m.d.comb += act_r.addr.eq(in_off + count)
        m.d.sync += act_valid.eq(0)
        v_pipe_valid, v_pipe_addr = act_valid, v_index
        for i in range(Scaler.LATENCY):
            rv, ra = Signal(name=f"v_valid_{i}"), Signal.like(v_index, name=f"v_addr_{i}")
            m.d.sync += [rv.eq(v_pipe_valid), ra.eq(v_pipe_addr)]
            v_pipe_valid, v_pipe_addr = rv, ra
        scaling = Signal()
        m.d.comb += [v_w.en.eq(v_pipe_valid & scaling), v_w.addr.eq(v_pipe_addr),
                     v_w.data.eq(scaler.out)]

        # -- error buffer and the signal's neuron stream ---------------------------------
        neuron_valid, neuron_last = Signal(), Signal()
        m.d.comb += [pre_r.addr.eq(off + count),
                     store.label_addr.eq(Mux(bu_issue | bu_in, bu_addr, off + count))]
        m.d.comb += [signal.neurons.valid.eq(neuron_valid),
                     signal.neurons.payload.pre.eq(pre_r.data),
                     signal.neurons.payload.u_pos.eq(top(u_field[y], fmt.weight_bits)),
                     signal.neurons.payload.u_neg.eq(top(u_field[y_neg], fmt.weight_bits)),
                     signal.neurons.payload.last.eq(neuron_last)]
        m.d.sync += [neuron_valid.eq(0), neuron_last.eq(0)]
        m.d.comb += [err_w.data.d.eq(signal.errors.payload.d),
                     err_w.data.dp.eq(signal.errors.payload.dp),
                     err_w.data.dn.eq(signal.errors.payload.dn), err_w.addr.eq(count)]
        m.d.comb += [rho_w.addr.eq(count - n_in - 3), rho_w.data.eq(words_gen.words.payload)]
        shadow_index = Signal(range(max(2, P)))
        shadow_take = Signal()
        m.d.sync += [shadow_take.eq(0), shadow_index.eq(issued)]
        with m.If(shadow_take):
            m.d.sync += [shadow_d[shadow_index].eq(err_r.data.d),
                         shadow_rho[shadow_index].eq(rho_r.data)]
        m.d.comb += [err_r.addr.eq(Mux(bu_issue | bu_in, bu_addr - off, tile * P + issued)),
                     rho_r.addr.eq(Mux(bu_issue | bu_in, bu_addr - off, tile * P + issued))]

        # -- the state machine -------------------------------------------------------------
        record = self.done.payload
        m.d.comb += [record.label.eq(predicted), record.wrong.eq(y_neg), record.cycles.eq(cycles)]
        m.d.comb += core.result.ready.eq(0)
        with m.FSM() as fsm:
            with m.State("SAMPLE"):
                m.d.comb += [core.image.valid.eq(self.samples.valid),
                             core.image.payload.eq(self.samples.payload.pixel),
                             self.samples.ready.eq(core.image.ready),
                             image_w.en.eq(self.samples.valid & core.image.ready),
                             image_w.addr.eq(pixel), image_w.data.eq(self.samples.payload.pixel)]
                with m.If(self.samples.valid & core.image.ready):
                    m.d.sync += pixel.eq(pixel + 1)
                    with m.If(pixel == D - 1):
                        m.d.sync += [pixel.eq(0), y.eq(self.samples.payload.label),
                                     train.eq(self.samples.payload.train),
                                     draw_pending.eq(self.samples.payload.train),
                                     cycles.eq(0), counting.eq(1)]
                        m.next = "INFER"
            with m.State("INFER"):
                with m.If(core.result.valid):
                    m.d.comb += core.result.ready.eq(1)
                    m.d.sync += predicted.eq(core.result.payload.label)
                    m.next = "LABEL"
            with m.State("LABEL"):
                # y' = (y + 1 + r) mod K once the draw is in.
                with m.If(~draw_pending):
                    wrong = y + 1 + draw_r
                    m.d.sync += [y_neg.eq(Mux(wrong >= K, wrong - K, wrong)),
                                 layer.eq(0), count.eq(0)]
                    m.next = "WORDS"
                    with m.If(~train):
                        m.d.sync += counting.eq(0)
                        m.next = "DONE"
            with m.State("WORDS"):
                # kappa^W_1..n_in, kappa^b, kappa^+, kappa^-, rho_1..N (spec order).
                m.d.comb += words_gen.words.ready.eq(1)
                with m.If(words_gen.words.valid):
                    word = words_gen.words.payload
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == 0):
                        m.d.sync += first_kappa.eq(word)
                    with m.If(count == n_in):
                        m.d.sync += kappa_b.eq(word)
                    with m.If(count == n_in + 1):
                        m.d.sync += kappa_pos.eq(word)
                    with m.If(count == n_in + 2):
                        m.d.sync += kappa_neg.eq(word)
                    m.d.comb += rho_w.en.eq(count >= n_in + 3)
                    with m.If(count == n_in + 2 + n_out):
                        m.d.sync += count.eq(0)
                        m.next = "SCAN"
            with m.State("SCAN"):
                # Neuron count: pre and U read now, offered next cycle.
                m.d.sync += [neuron_valid.eq(1), neuron_last.eq(count == n_out - 1),
                             count.eq(count + 1)]
                with m.If(count == n_out - 1):
                    m.d.sync += count.eq(0)
                    m.next = "ERRORS"
            with m.State("ERRORS"):
                m.d.comb += [signal.errors.ready.eq(1),
                             err_w.en.eq(signal.errors.valid)]
                with m.If(signal.errors.valid):
                    m.d.sync += [count.eq(count + 1), z.eq(signal.z)]
                    with m.If(count == n_out - 1):
                        m.d.sync += [count.eq(0), sq.eq(0)]
                        m.next = "SQUARES" if L > 1 else "TILE"
                        with m.If(layer == 0):
                            m.next = "TILE"
            if L > 1:
                with m.State("SQUARES"):
                    # Read a_j (count), square it a cycle later.
                    m.d.sync += [act_valid.eq(count < n_in), count.eq(count + 1)]
                    with m.If(act_valid):
                        m.d.sync += sq.eq(sq + act_r.data * act_r.data)
                    with m.If(count == n_in + 1):
                        m.d.sync += count.eq(0)
                        m.next = "RSQRT"
                with m.State("RSQRT"):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == Rsqrt.LATENCY):
                        m.d.sync += count.eq(0)
                        m.next = "SCALE"
                with m.State("SCALE"):
                    m.d.comb += scaling.eq(1)
                    m.d.sync += [act_valid.eq(count < n_in), v_index.eq(count),
                                 count.eq(count + 1)]
                    with m.If(count == n_in + Scaler.LATENCY + 1):
                        m.d.sync += count.eq(0)
                        m.next = "TILE"
            with m.State("TILE"):
                # Shadow d and rho of the tile's lanes, one per cycle; rewind the replay.
                m.d.comb += [replay.restore.eq(1), replay.restore_word.eq(first_kappa)]
                m.d.sync += [issued.eq(issued + 1), shadow_take.eq(issued < P)]
                with m.If(issued == P + 1):
                    m.d.sync += [issued.eq(0), count.eq(0)]
                    m.next = "PASS"
            with m.State("PASS"):
                m.d.comb += [pass_issue.eq(1), pass_addr.eq(wbase + tile * n_in + count),
                             replay.words.ready.eq(1)]
                m.d.sync += count.eq(count + 1)
                with m.If(count == n_in - 1):
                    m.d.sync += [count.eq(0), drain.eq(0)]
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == lat + 2):
                    m.d.sync += tile.eq(tile + 1)
                    m.next = "TILE"
                    with m.If(tile == tiles - 1):
                        m.d.sync += [tile.eq(0), count.eq(0)]
                        m.next = "BU"
            with m.State("BU"):
                # One neuron every other cycle (two core loads per neuron).
                m.d.comb += [bu_issue.eq(~count[0] & (count < 2 * n_out)),
                             bu_addr.eq(off + (count >> 1))]
                m.d.sync += count.eq(count + 1)
                with m.If(count == 2 * n_out + lat + 2):
                    m.d.sync += [count.eq(0), layer.eq(layer + 1)]
                    m.next = "WORDS"
                    with m.If(layer == L - 1):
                        m.d.sync += counting.eq(0)
                        m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.valid.eq(1)
                m.d.comb += [store.weight_addr.eq(self.read.addr),
                             store.bias_addr.eq(self.read.addr),
                             store.label_addr.eq(self.read.addr)]
                with m.If(self.done.ready):
                    m.next = "SAMPLE"
        m.d.comb += claim.eq(~fsm.ongoing("SAMPLE") & ~fsm.ongoing("INFER"))
        return m
