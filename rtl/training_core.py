# amaranth: UnusedElaboratable=no
"""The training core: labelled samples in, the integer rule's updates of every weight.

docs/training-engine.md's engine for FFDL and FFCL (feedback into the state, both
topologies), its update lanes on the MAC lanes' multipliers or their own, the stored
weights in block RAM or (``weights="spram"``) iCE40 SPRAM, whose single port the W and V
passes share by reading every other cycle. Per sample (image + label on ``samples``,
lambda on ``lr_shift_in``):

1. The pixels go to the inference :class:`rtl.core.Core` (a submodule, unchanged in its
   datapath), which runs its program. Within an iteration no forward pass reads a weight
   that the same iteration's updates change (the layer above at iteration t reads a_l
   computed before layer l's update), so iteration t's forward passes run first and its
   updates follow, layer by layer: after the result for the last (or only) iteration;
   with FFCL's loss_iterations 'all', also for every earlier one, the core held before
   its next iteration's first op (``store.hold``) and built without layer 1's cache. Its
   ``observe`` port shows the sweep's pre-activation and activation writes (with their
   loop bank), which this core keeps; it keeps the pixels as they pass. Meanwhile the
   label generator draws y' by rejection.
2. Per layer, in rule order: PREPARE, three steps side by side: the rounding
   generator's words of the update (kappa^W_1 kept, kappa^b, kappa^+, kappa^- in
   registers, rho into the rho buffer, the other kappa^W and kappa^V dropped); the
   :class:`rtl.learning_signal.LearningSignalUnit` scan (pre, U[i, y], U[i, y'] top
   bits) and its errors into the error buffer; the normalised inputs v (sum of squares,
   :class:`rtl.normaliser.Rsqrt`, :class:`rtl.normaliser.Scaler`; with
   ``input_norm="forward"`` the Scaler alone, on (r, sh) kept from the forward pass) of a
   layer above the first, then of the feedback of a layer that hears the loop (iteration
   t - 1's activations; zero at t = 1), into the v buffer. Then the W and V pass tile by tile,
   the replay generator restored to kappa^W_1 at every tile, P
   :class:`rtl.update_lane.UpdateLane` read-modify-writing one stored word of P weights
   per cycle; then b and U's two columns, neuron by neuron, through three more lanes
   (v = 1).
3. The ``done`` record is offered; meanwhile ``read`` reads the stored words back.

Structure. The steps of a layer update are components of their own, each named after
what it holds and started by this core's state machine (``run`` held for the step,
``done`` in its last cycle, so consecutive steps lose no cycle):
:class:`rtl.update_words.UpdateWords` (the kept rounding words, rho into the rho
buffer), :class:`rtl.error_scan.ErrorScan` (the learning-signal unit, errors into the
error buffer), :class:`rtl.input_scaler.InputScaler` (v above layer 1 into the v buffer),
:class:`rtl.weight_pass.WeightPass` (the P update lanes, the replay generator, the W and V
passes) and :class:`rtl.bias_label_pass.BiasLabelPass` (b and U's two columns). This core
holds the buffers they share and the sequence. The stored weights (B_m bits, biases
B_s + f) live in the inference core's own memories: built with ``store_bits`` the core's
weight, bias and label memories hold stored words (a weight word is P x B_m bits), its
forward pass reads the top bits of each field (c >> f, a slice: nothing else in the
inference datapath changes), and its ``store`` port lends this engine the three read
ports while the core idles; the engine writes the updated words through the core's
``load`` port; an SPRAM core's own ``load`` port (its starting words: SPRAM comes up
empty) is switched onto the same port while the core waits for a sample. So the datapath
and the weights are the core's, not copies. What is kept
twice: the pixels, the pre-activations and the activations, which this core copies from
the ``observe`` port into buffers of its own (reading the core's image, pre-activation and
feedback memories through their ports instead is listed in docs/training-engine.md as
remaining work).

The cycle counter runs from the last pixel's transfer to the ``done`` record being
offered; :meth:`TrainingCore.training_cycles` is its closed form.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.intmodel import IntModel
from golden.inttrain import LABEL_SEED_OFFSET, IntTrainer, TrainRule
from golden.lfsr import LFSR_WIDTH
from rtl.bias_label_pass import BiasLabelPass
from rtl.collisions import COLLISIONS_UNUSED
from rtl.core import LOAD_TARGETS, Core, load_layout, load_words
from rtl.error_scan import ErrorScan, error_entry_layout
from rtl.input_scaler import V_BITS, InputScaler
from rtl.label_groups import LabelGroups
from rtl.lfsr import WordGenerator, next_word
from rtl.params import check_choice, check_positive_int
from rtl.program import SIDE_BITS, SIDE_LATENCY
from rtl.protocol import TrainingPhase
from rtl.resources import MemoryShape, Product
from rtl.select import is_zero
from rtl.sequencer import CYCLE_BITS
from rtl.stored_words import stored_words
from rtl.update_words import UpdateWords
from rtl.weight_pass import WeightPass
from rtl.weight_store import check_spram_word

__all__ = ["INPUT_NORMS", "MULTIPLIERS", "READ_LATENCY", "TRAINING_PHASES",
           "TRAINING_PHASE_BITS", "WEIGHT_KINDS", "TrainingCore", "done_layout",
           "sample_layout"]

#: Where the W and V passes' update lanes multiply: the MAC lanes' multipliers, which
#: idle while the passes run, or one of their own each.
MULTIPLIERS = ("shared", "dedicated")

#: Where the stored weight words live: the core's block RAM (dual port, initialised) or
#: iCE40 SPRAM (one port, empty at configuration).
WEIGHT_KINDS = ("loadable", "spram")

#: Where the update's normalised inputs take their reciprocal square roots (r, sh) from:
#: the input scaler's own sum of squares and table, or the forward pass's.
INPUT_NORMS = ("own", "forward")

#: Cycles from ``read`` to ``read_data`` of a core whose weight store is one block RAM
#: deep (the store's latency; bias and label words wait a cycle to match).
#: :attr:`TrainingCore.read_latency` is the core's (3 for a deep store).
READ_LATENCY = 2

#: Codes of the training core's ``phase`` output by name (:class:`rtl.protocol.TrainingPhase`,
#: whose ``IDLE``, 0, is not counted): the inference core's :data:`rtl.program.PHASES`,
#: then ``wrong_label``, ``prepare``, ``weight_pass``, ``bias_label_pass``.
TRAINING_PHASES = {phase.name.lower(): phase.value for phase in TrainingPhase
                   if phase is not TrainingPhase.IDLE}
TRAINING_PHASE_BITS = Shape.cast(TrainingPhase).width


def sample_layout(input_bits: int, labels: int) -> data.StructLayout:
    """One pixel of a labelled sample; ``label`` and ``train`` are read with the last."""
    return data.StructLayout({"pixel": unsigned(input_bits), "label": range(labels),
                              "train": 1})


def done_layout(labels: int) -> data.StructLayout:
    """Per sample: the inference's predicted label (weights before the update; with
    updates between iterations, FFCL loss_iterations 'all', iteration t + 1 runs on the
    weights iteration t updated), the wrong label drawn (training samples) and the cycles
    from the last pixel to this record."""
    return data.StructLayout({"label": range(labels), "wrong": range(labels),
                              "cycles": unsigned(CYCLE_BITS)})



def _check_options(model: IntModel, rule: TrainRule, *, lanes: int, multipliers: str,
                   signal_multipliers: str, forward_multipliers: str, weights: str,
                   bias_label_lanes: int, input_norm: str, compact_lanes: bool,
                   lean_signal: bool, lean_forward: bool, shared_word_network: bool,
                   shared_update_lane: bool, stored_norms: bool, tag_memory: bool,
                   compact_signal: bool) -> None:
    """Refuse a :class:`TrainingCore` configuration that cannot be built, naming the
    parameter and the fix (the components check their own parameters again)."""
    check_positive_int("Lane count", lanes)
    check_choice("Multipliers", multipliers, MULTIPLIERS)
    if not isinstance(compact_lanes, bool):
        raise TypeError(f"Compact lanes must be True or False, not {compact_lanes!r}")
    if not isinstance(shared_update_lane, bool):
        raise TypeError(f"Shared update lane must be True or False, not "
                        f"{shared_update_lane!r}")
    if shared_update_lane and bias_label_lanes != 1:
        raise ValueError(f"The b and U pass borrows one lane of the W pass: a shared "
                         f"update lane needs bias_label_lanes=1, not {bias_label_lanes!r}")
    check_choice("Signal multipliers", signal_multipliers, MULTIPLIERS)
    if signal_multipliers == "shared" and (multipliers != "shared" or lanes < 2):
        raise ValueError(f"The learning signal borrows MAC lanes 0 and 1: it needs "
                         f"multipliers='shared' and at least 2 lanes, not "
                         f"{multipliers!r} and {lanes}")
    check_choice("Forward multipliers", forward_multipliers, MULTIPLIERS)
    check_choice("Weights", weights, WEIGHT_KINDS)
    if weights == "spram":
        check_spram_word(lanes=lanes, store_bits=rule.store_bits,
                         weight_bits=model.fmt.weight_bits)
    check_choice("Input norm", input_norm, INPUT_NORMS)
    if not isinstance(lean_signal, bool):
        raise TypeError(f"Lean signal must be a bool, not {lean_signal!r}")
    if not isinstance(shared_word_network, bool):
        raise TypeError(f"Shared word network must be a bool, not "
                        f"{shared_word_network!r}")
    if not isinstance(compact_signal, bool):
        raise TypeError(f"Compact signal must be True or False, not {compact_signal!r}")
    if compact_signal and not (lean_signal and signal_multipliers == "shared"):
        raise ValueError("The compact learning signal is the lean one on borrowed "
                         "multipliers: it needs lean_signal=True and "
                         "signal_multipliers='shared'")
    if not isinstance(lean_forward, bool):
        raise TypeError(f"Lean forward must be a bool, not {lean_forward!r}")
    if not isinstance(stored_norms, bool):
        raise TypeError(f"Stored norms must be a bool, not {stored_norms!r}")
    if not isinstance(tag_memory, bool):
        raise TypeError(f"Tag memory must be a bool, not {tag_memory!r}")


def _check_model(model: IntModel, rule: TrainRule) -> None:
    """Refuse a model or rule of the wrong type, or a model this core does not train."""
    if not isinstance(model, IntModel):
        raise TypeError(f"Model must be a golden.intmodel.IntModel, not {model!r}")
    if not isinstance(rule, TrainRule):
        raise TypeError(f"Rule must be a golden.inttrain.TrainRule, not {rule!r}")
    if model.config.algo not in ("ffdl", "ffcl"):
        raise ValueError(f"the training core trains FFDL and FFCL models, not "
                         f"{model.config.algo.upper()}")


class TrainingCore(wiring.Component):
    """An FFDL or FFCL core that trains on chip with the integer rule (module docstring).

    Parameters
    ----------
    model : IntModel
        The starting forward model (FFDL, or FFCL with feedback 'state'); the stored
        weights start as :class:`golden.inttrain.IntTrainer`'s do.
    rule : TrainRule
        The rule: stored widths, rounding, sigmoid, the iterations trained; lambda is
        ``lr_shift_in`` within the schedule's range; both generators start from
        ``rule.seed``.
    lanes : int
        P: MAC lanes of the inference core and update lanes of the W pass.
    multipliers : {"shared", "dedicated"}, optional
        ``"shared"`` (default): update lane p borrows MAC lane p's multiplier
        (``Core(lend=True)``, :data:`rtl.program.SIDE_LATENCY` cycles; the W and V
        passes run only while the core idles or is held, so no cycle has two users).
        ``"dedicated"``: a multiplier per update lane. Cycles are the same.
    signal_multipliers : {"dedicated", "shared"}, optional
        ``"shared"`` (with ``multipliers="shared"`` and at least 2 lanes): the learning
        signal's unit borrows MAC lanes 0 and 1 too (its scan runs in PREPARE, the W pass
        after it, both while the core idles or is held), 6 MULT18X18D fewer on ECP5 and
        2 L = 4 more cycles per scan (``LearningSignalUnit.gap_for``), which the closed
        form follows. Default ``"dedicated"``: its own.
    forward_multipliers : {"dedicated", "shared"}, optional
        ``"shared"``: the inference core's sweep and label scan borrow its MAC lanes'
        multipliers too (``Core(shared=True)``, at least 3 lanes), the update lanes and
        the learning signal have them while the core idles or is held; the core then
        needs no multiplier beyond its P lanes, as on the iCE40 UP5K, and its inference
        takes the shared core's cycles (:meth:`rtl.program.Program.cycles`), which the
        closed form follows. Default ``"dedicated"``.
    weights : {"loadable", "spram"}, optional
        Where the stored weight words live (the core's ``Core(weights=...)``):
        ``"loadable"`` (default), dual-port block RAM initialised with the starting
        words, one word read and one written per cycle of the W and V passes;
        ``"spram"``, iCE40 SPRAM (:class:`rtl.weight_store.WeightStore`): one port per
        bank and no initial contents (the starting words come in through ``load`` before
        the first sample, :meth:`starting_loads`). A word of P x B_m bits must fit the
        UP5K's 64; one of at most 32 is kept in two banks (even and odd words), and the
        passes read a word a cycle, each in its bank's slot, as on block RAM; a wider
        one in one bank, and they read a word every other cycle
        (:class:`rtl.weight_pass.WeightPass` with ``port="banked"`` or ``"single"``).
        Biases and label weights stay in block RAM.
    label_lanes : int, optional
        G, label weights a label word (the inference core's ``label_lanes``; a shared
        core scans on G of its lanes, so G <= P). Below K, U[i, y] and U[i, y'] are two
        reads a neuron in the learning signal's scan and two words the b and U pass
        reads and writes, which needs ``bias_label_lanes=1`` (a neuron every fourth
        cycle). Default K.
    bias_label_lanes : {3, 1}, optional
        Update lanes of the b and U pass (:class:`rtl.bias_label_pass.BiasLabelPass`):
        3 (default), one per stored value of a neuron, a neuron every other cycle; 1,
        time-shared, a neuron every third cycle (N cycles more per layer; two lanes and
        the carried label words fewer, for a part as small as the UP5K: the figures are
        in docs/training-engine.md, "Logic of the components"). The same weights.
    compact_lanes : bool, optional
        Every update lane (the W and V pass's, the b and U pass's) in its small-part
        form, ``UpdateLane(compact=True)``: R formed as an entry comes in, and a
        selection of the kept bits instead of a barrel shifter, for a part as small as
        the UP5K. The same weights in the same cycles. Default False.
    shared_update_lane : bool, optional
        With ``bias_label_lanes=1``: the b and U pass has no lane of its own but borrows
        the W and V pass's lane 0, idle while it runs
        (``BiasLabelPass(borrowed_lane=...)``, ``WeightPass(lend_lane=True)``): v = 1
        through that lane's multiplier, in the same cycles, for a part as small as the
        UP5K (the figures are in docs/training-engine.md, "Logic of the components").
        The same weights in the same cycles. Default False.
    score_port : bool, optional
        The inference core's score read port (``Core(score_port=True)``, default False,
        for a part as small as the UP5K): a host link around this core reads a RESULT's
        scores through the argmax's select, idle once the result is in, instead of a
        select of its own over every score byte. The same weights, results and cycles.
    input_norm : {"own", "forward"}, optional
        Where the normalised inputs v_j = round_shift(a_j r, sh/2 + Q - 14) of a layer
        above the first (and of a feedback source) take (r, sh) = rsqrt(sum a^2) from.
        ``"own"`` (default): the :class:`rtl.input_scaler.InputScaler` reads the
        activations twice, its own square multiplier and sum of squares, then its own
        :class:`rtl.normaliser.Rsqrt` (a block RAM table), then scales. ``"forward"``:
        the forward pass's. The golden trainer updates layer l of iteration t from the
        very u and f its forward pass of layer l at iteration t read
        (``IntTrainer.train_sample`` passes the same arrays to ``_forward`` and
        ``_update``), and both normalise with the same function of the same integer:
        ``IntModel._product(u, W, w_exp, normalise=True)`` takes ``rsqrt(u . u)``, and
        ``IntTrainer._normalised(u)`` ``rsqrt(int(u @ u))``, the same table
        (f likewise through V). The core's op for layer l at iteration t feeds its
        reciprocal square roots those sums (the sweep's, stored per layer and bank:
        a_{l-1} of iteration t, the source of iteration t - 1), and the last such op
        before layer l's update is that iteration's (the updates follow the result, or
        with 'all' the hold before iteration t + 1). So this core keeps (r, sh) of each
        layer's inputs (``Core(norms=True)``), taken while the sweep writes that op's
        activations (it scales them with these), and the scaler only scales: no square
        multiplier, no sum and no table, each v step n + its scaler's latency + 2 cycles
        instead of 2 n + 15. Iteration 1's feedback pass is skipped (its r is of no
        sum): its v is n(0) = 0 whatever r is (the scaler's ``zero``). The same weights.
    lean_signal : bool, optional
        The learning signal's small-part form (default False, for a part as small as the
        UP5K): ``ErrorScan(lean=True)`` and its ``LearningSignalUnit(lean=True)``, without
        the registers a 30 MHz part does not need. The same weights in the same cycles
        (the figures are in docs/training-engine.md, "Logic of the components").
    compact_signal : bool, optional
        With ``lean_signal`` and ``signal_multipliers="shared"``: the learning signal's
        smaller form (default False, for a part as small as the UP5K):
        ``ErrorScan(compact=True)``, its ``LearningSignalUnit(compact=True)`` giving an
        error every other cycle through one sum and one rounding shifter, z from a pass
        over the h buffer through them instead of the maxima of h, g and its margins
        only as wide as Theta. The same weights; SCAN and ERRORS 3 N cycles longer a
        layer of N (:meth:`training_cycles`; the figures are in
        docs/training-engine.md, "Logic of the components").
    lean_forward : bool, optional
        The forward datapath's small-part form (default False, for a part as small as
        the UP5K): ``Core(lean=True)``, its sweep and (with shared forward multipliers)
        its label scan without the delay lines a memory read or a borrowed multiplier
        can do without; with ``input_norm="forward"`` also ``InputScaler(lean=True)``,
        the scaler of the forward pass's activations without its index line, its
        scaler's registers without a reset and its r taken as given. The same weights
        in the same cycles (the figures are in docs/training-engine.md, "Logic of the
        components").
    serial_weight_pass : bool, optional
        One update lane in the W and V pass instead of P (default False, for a part as
        small as the UP5K: ``WeightPass(serial=True)``), taking a word's P entries in P
        consecutive cycles: a word every P cycles, so the pass takes about P times as
        long; P - 1 lanes fewer. The same weights; the cycles are the pass's closed form
        (:meth:`training_cycles`). Needs at least 2 lanes.
    shared_word_network : bool, optional
        One leap-ahead network (:func:`rtl.lfsr.next_word`) for the label, rounding and
        replay generators instead of one each (default False, for a part as small as the
        UP5K): they never step in the same cycle (the label draw is in before the
        updates start; the rounding words are taken in PREPARE, the replay's in the W and
        V pass), so the network steps whichever takes a word, each generator keeping its
        own word. The same words in the same cycles.
    stored_norms : bool, optional
        The inference core's norms in their small-part form (default False, for a part
        as small as the UP5K): ``Core(stored_norms=True)``, one reciprocal square root
        of each layer's output when its op finishes, kept per layer and bank where an op
        reads it, instead of stored sums of squares and two units recomputing them per
        op (an FFDL or FFL core, which reads no feedback norm, keeps no feedback unit).
        The same weights in the same cycles (the figures are in
        docs/training-engine.md, "Logic of the components").
    tag_memory : bool, optional
        The inference core's sweep tags in a block RAM (default False, for a part as
        small as the UP5K, where a flip-flop fed by a flip-flop takes a logic cell of its
        own, with block RAMs to spare): ``Core(tag_memory=True)``. The same weights in
        the same cycles, one block RAM more.
    held_addresses : bool, optional
        Only with ``serial_weight_pass``: the serial pass holds each word's address for
        its write in a register per P cycles of the delay instead of one per cycle
        (default False, for a part as small as the UP5K:
        ``WeightPass(held_addresses=True)``). The same weights in the same cycles (the
        figures are in docs/training-engine.md, "Logic of the components").
    late_replay : bool, optional
        Only with ``serial_weight_pass``: the serial pass's lane takes kappa from the
        replay generator, stepped as the lane takes each word's last entry, instead of
        a copy carried with the word (default False, for a part as small as the UP5K:
        ``WeightPass(late_replay=True)``). The same weights in the same cycles.
    late_rounding : bool, optional
        Only with ``late_replay`` and ``compact_lanes``: the serial pass's lane (and
        with ``shared_update_lane`` the b and U pass's, the same) takes each entry's rho
        and kappa a cycle after the entry, and keeps R in one register instead of two
        (default False, for a part as small as the UP5K:
        ``WeightPass(late_rounding=True)``). The same weights in the same cycles.
    kappa_ring : bool, optional
        With ``bias_label_lanes=1``: the b and U pass keeps kappa^b, kappa^+ and kappa^-
        in three registers it rotates with its entries, loaded as the update takes the
        words (``BiasLabelPass(kappa_ring=True)``, ``UpdateWords(kept_scalars=False)``),
        instead of copies in the update's registers and a selection of three (default
        False, for a part as small as the UP5K). The same weights in the same cycles.
    c_memory : bool, optional
        Only with ``serial_weight_pass``: the serial pass's lane (and with
        ``shared_update_lane`` the b and U pass's, the same) carries each entry's stored
        value to its add through a block RAM instead of a line of registers (default
        False, for a part as small as the UP5K, with block RAMs to spare:
        ``WeightPass(c_memory=True)``). The same weights in the same cycles, one block
        RAM more.

    Attributes
    ----------
    core : rtl.core.Core
        The inference core, with stored weights (``store_bits``).
    trained_iterations : int
        Iterations updated per sample: T with loss_iterations 'all', else 1.
    lr_shift : int
        lambda_0, ``lr_shift_in``'s reset value.
    lr_range : tuple of int
        (lambda_0, lambda of the last epoch): what ``lr_shift_in`` is clamped to.
    labels_gen, words_gen : rtl.lfsr.WordGenerator
        The label and rounding generators (their ``words.payload`` is the next word),
        without seeding: they start from ``rule.seed`` at reset.

    Members
    -------
    samples : In(stream.Signature(sample_layout(input_bits, K)))
        D pixels per sample, row-major; with the last pixel its label and whether to
        train on it (``train`` 0: classify only, nothing changes).
    done : Out(stream.Signature(done_layout(K)))
        One record per sample, after its updates.
    busy : Out(1)
        A sample is being processed (the cycle counter counts this cycle).
    phase : Out(TRAINING_PHASE_BITS)
        What this cycle is for: a :class:`rtl.protocol.TrainingPhase` code (``IDLE``, 0,
        while not ``busy``); :data:`TRAINING_PHASES` names them and
        :meth:`training_phase_cycles` counts them.
    read : In(wiring.Signature({"target": Out(3), "addr": Out(range(words))}))
        Read-back of the stored words while ``done`` is offered: ``target`` a
        :data:`rtl.core.LOAD_TARGETS` code of weights (each layer's W words, then its V
        words: FFCL's V is read back with this target), bias or labels, ``addr`` the word.
    read_data : Out(unsigned(...))
        The word, :attr:`read_latency` cycles after its ``read`` (as
        :meth:`stored_images` packs it).
    lr_shift_in : In(range(max(2, lambda_last + 1)), init=lambda_0)
        lambda (the learning rate 2^-lambda), sampled with the last pixel of a sample
        (in the cycle it is transferred) and used for all of that sample's updates.
        The core is built for the rule's schedule, lambda_0 = ``rule.lr_shift_at(0)``
        to lambda_last = ``rule.lr_shift_at(epochs - 1)`` (:attr:`lr_range`); a value
        outside is clamped to it.
    load : In(stream.Signature(rtl.core.load_layout(core.program)))
        Only with ``weights="spram"``: writes of stored words, the inference core's
        ``load`` (``target`` a :data:`rtl.core.LOAD_TARGETS` code of weights, bias or
        labels, ``addr`` the word, ``data`` the stored word, fields (w << f) + 2^(f-1):
        :meth:`starting_loads` gives the starting model's). Taken only while the core
        waits for a sample's first pixel (no pixel of a sample taken, no inference or
        pass running, the record taken); ``ready`` is low otherwise, so a load offered
        during a sample waits, writing nothing, until the sample's record is taken. A
        write of the program (``ops``) is taken and ignored: an SPRAM core's program is
        a ROM.
    restart : In(1)
        Only with ``weights="spram"``: train from here as from configuration. Both
        generators go back to where reset leaves them (``rule.seed``: a ``restore`` of
        each one's first word, offered from the next cycle on), so that after the
        starting words of a model M have come in through ``load``, the core trains as
        ``IntTrainer(M, rule)`` fresh. Taken in a cycle the core waits for a sample's
        first pixel (as ``load``; the pixel may come in the same cycle) and ignored in
        any other, so a pulse during a sample changes nothing of it. The host link
        pulses it when a load commits.
    """

    def __init__(self, model: IntModel, rule: TrainRule, *, lanes: int,
                 multipliers: str = "shared", signal_multipliers: str = "dedicated",
                 forward_multipliers: str = "dedicated", weights: str = "loadable",
                 label_lanes: int | None = None, bias_label_lanes: int = 3,
                 input_norm: str = "own", compact_lanes: bool = False,
                 lean_signal: bool = False, lean_forward: bool = False,
                 serial_weight_pass: bool = False, shared_word_network: bool = False,
                 shared_update_lane: bool = False, stored_norms: bool = False,
                 tag_memory: bool = False, score_port: bool = False,
                 compact_signal: bool = False, held_addresses: bool = False,
                 late_replay: bool = False, c_memory: bool = False,
                 late_rounding: bool = False, kappa_ring: bool = False) -> None:
        _check_model(model, rule)
        _check_options(model, rule, lanes=lanes, multipliers=multipliers,
                       signal_multipliers=signal_multipliers,
                       forward_multipliers=forward_multipliers, weights=weights,
                       bias_label_lanes=bias_label_lanes, input_norm=input_norm,
                       compact_lanes=compact_lanes, lean_signal=lean_signal,
                       lean_forward=lean_forward, shared_word_network=shared_word_network,
                       shared_update_lane=shared_update_lane, stored_norms=stored_norms,
                       tag_memory=tag_memory, compact_signal=compact_signal)
        self.shared_update_lane = shared_update_lane
        self.input_norm = input_norm
        self.multipliers, self.signal_multipliers = multipliers, signal_multipliers
        self.forward_multipliers = forward_multipliers
        self.weights = weights
        own = not shared_word_network
        self.lean_signal = lean_signal
        self.compact_signal = compact_signal
        self.lean_forward = lean_forward
        self.trainer = IntTrainer(model, rule)
        self.model, self.rule, self.lanes = model, rule, lanes
        self._make_core(label_lanes=label_lanes, stored_norms=stored_norms,
                        tag_memory=tag_memory, score_port=score_port)
        self._make_steps(bias_label_lanes=bias_label_lanes, compact_lanes=compact_lanes,
                         serial_weight_pass=serial_weight_pass, replay_network=own,
                         held_addresses=held_addresses, late_replay=late_replay,
                         c_memory=c_memory, late_rounding=late_rounding,
                         kappa_ring=kappa_ring)
        super().__init__(self._members())
        # Both start from rule.seed at reset and are never seeded again: no seeding
        # logic (with ``load`` tied low, the seedable generator's If/Elif chain lowers
        # to a casez on a partly constant selector, which Verilator reports as
        # CASEOVERLAP).
        self.labels_gen = WordGenerator(offset=LABEL_SEED_OFFSET, reset_seed=rule.seed,
                                        seed_bits=0, network=own)
        self.words_gen = WordGenerator(offset=0, reset_seed=rule.seed, seed_bits=0,
                                       network=own)

    def _make_core(self, *, label_lanes: int | None, stored_norms: bool, tag_memory: bool,
                   score_port: bool) -> None:
        """The inference core (:attr:`core`) with stored weights, its label groups, and
        the iterations and lambdas the engine is built for (``__init__``'s parameters of
        the same names)."""
        model, rule, config = self.model, self.rule, self.model.config
        #: Iterations updated: every one (loss_iterations 'all'), or only the last.
        self.trained_iterations = (config.loops if rule.loss_iterations == "all" else 1)
        # Layer 1's cached W_1 x is stale once W_1 changed within the sample.
        self.core = Core(model, lanes=self.lanes, weights=self.weights, observe=True,
                         store_bits=rule.store_bits,
                         layer1_cache=self.trained_iterations == 1,
                         lend=self.multipliers == "shared",
                         shared=self.forward_multipliers == "shared",
                         label_lanes=label_lanes, norms=self.input_norm == "forward",
                         lean=self.lean_forward, score_port=score_port,
                         **({"stored_norms": True} if stored_norms else {}),
                         **({"tag_memory": True} if tag_memory else {}))
        self.label_groups = LabelGroups(config.num_classes, self.core.program.label_lanes)
        self.fine = self.trainer.fine_bits
        #: lambda of the first epoch: the ``lr_shift_in`` port's reset value.
        self.lr_shift = rule.lr_shift_at(0)
        #: The lambdas of the rule's schedule (it only grows): the update lanes' shifters
        #: are built for k over exactly these (UpdateLane.for_model).
        self.lr_range = rule.lr_range
        # At least one bit: with lambda 0 throughout, range(1) would be a zero-width port,
        # which Verilog can only write as [-1:0] (Verilator's -Wall: ASCRANGE).
        self._lambda_shape = range(max(2, self.lr_range[1] + 1))

    def _make_steps(self, *, bias_label_lanes: int, compact_lanes: bool,
                    serial_weight_pass: bool, replay_network: bool, held_addresses: bool,
                    late_replay: bool, c_memory: bool, late_rounding: bool,
                    kappa_ring: bool) -> None:
        """The steps of a layer update (:attr:`words`, :attr:`scan`, :attr:`scaler`,
        :attr:`weight_pass`, :attr:`bias_label`) and the layers' feedback sources and v
        buffer depth they are sized by (``__init__``'s parameters of the same names;
        ``replay_network``: the replay generator keeps its own leap-ahead network)."""
        model, rule, lanes = self.model, self.rule, self.lanes
        shared = self.multipliers == "shared"
        fmt, config = model.fmt, model.config
        hidden = config.hidden
        n_ins = [config.input_size] + list(hidden[:-1])
        self.sources = [config.feedback_source(i) for i in range(config.num_layers)]
        self.n_src = n_src = [0 if s is None else hidden[s] for s in self.sources]
        #: v buffer: the v of a layer's inputs above the first, then its feedback's.
        self.v_depth = max((n_ins[i] if i else 0) + n_src[i] for i in range(config.num_layers))
        # The steps of a layer update, in order (docs/training-engine.md).
        self.words = UpdateWords(max_columns=max(n + s for n, s in zip(n_ins, n_src, strict=True)),
                                 max_rows=max(hidden), kept_scalars=not kappa_ring)
        self.scan = ErrorScan(model, store_bits=rule.store_bits, sigmoid=rule.sigmoid,
                              product_latency=(SIDE_LATENCY if self.signal_multipliers == "shared"
                                               else None),
                              label_lanes=self.label_groups.lanes, lean=self.lean_signal,
                              compact=self.compact_signal)
        self.scaler = InputScaler(fmt, sq_bits=self.core.program.widths.sq,
                                  activations=2 * sum(hidden), max_inputs=max(2, self.v_depth),
                                  reciprocal="given" if self.input_norm == "forward" else "own",
                                  # lean_forward: the scaler of the forward pass's
                                  # activations in its small-part form too.
                                  **({"lean": True}
                                     if self.lean_forward and self.input_norm == "forward"
                                     else {}))
        self.weight_pass = WeightPass(model, rule, lanes=lanes,
                                      words=len(self.core.program.weight_words),
                                      product_latency=SIDE_LATENCY if shared else None,
                                      operand_bits=SIDE_BITS,
                                      weight_latency=self.core.program.weight_latency,
                                      port=self.core.memories.weight_store.port,
                                      compact_lanes=compact_lanes, serial=serial_weight_pass,
                                      replay_network=replay_network,
                                      lend_lane=self.shared_update_lane,
                                      held_addresses=held_addresses,
                                      late_replay=late_replay, c_memory=c_memory,
                                      late_rounding=late_rounding)
        self.bias_label = BiasLabelPass(
            model, rule, lanes=bias_label_lanes, label_lanes=self.label_groups.lanes,
            compact_lanes=compact_lanes,
            borrowed_lane=self.weight_pass.lanes[0] if self.shared_update_lane else None,
            kappa_ring=kappa_ring)

    def _members(self) -> dict:
        """The members of this core's signature (the class docstring's Members)."""
        K = self.model.config.num_classes
        prog = self.core.program
        read_words = max(2, len(prog.weight_words), len(prog.label_words))
        read_bits = max(self.lanes, K) * prog.stored_weight_bits + prog.stored_bias_bits
        members = {
            "samples": In(stream.Signature(sample_layout(self.model.fmt.input_bits, K))),
            "done": Out(stream.Signature(done_layout(K))),
            "busy": Out(1),
            "phase": Out(TRAINING_PHASE_BITS),
            "read": In(wiring.Signature({"target": Out(3), "addr": Out(range(read_words))})),
            "read_data": Out(unsigned(read_bits)),
            "lr_shift_in": In(self._lambda_shape, init=self.lr_range[0]),
        }
        if self.weights == "spram":
            # SPRAM comes up empty: the starting words come in through this port. Block
            # RAM is initialised by the bitstream, and its core keeps its netlist.
            members["load"] = In(stream.Signature(load_layout(prog)))
            # A loaded model trains from the seed: the load's commit restarts the
            # generators (block RAM cores take no loads, and keep their netlist).
            members["restart"] = In(1)
        return members

    @property
    def options(self) -> dict:
        """The keyword parameters this core was built with beyond ``lanes``: with
        ``model``, ``rule`` and ``lanes`` they rebuild it (a cocotb bench describes the
        Verilog it drives so)."""
        return {"multipliers": self.multipliers, "signal_multipliers": self.signal_multipliers,
                "forward_multipliers": self.forward_multipliers, "weights": self.weights,
                "label_lanes": self.label_groups.lanes,
                "bias_label_lanes": len(self.bias_label.lanes), "input_norm": self.input_norm,
                "compact_lanes": self.bias_label.lanes[0].compact,
                "lean_signal": self.lean_signal, "lean_forward": self.lean_forward,
                "serial_weight_pass": self.weight_pass.serial,
                "shared_word_network": not self.words_gen.network,
                "shared_update_lane": self.shared_update_lane,
                "stored_norms": self.core.stored_norms, "tag_memory": self.core.tag_memory,
                "score_port": self.core.score_port_enabled,
                "compact_signal": self.compact_signal,
                "held_addresses": self.weight_pass.held_addresses,
                "late_replay": self.weight_pass.late_replay,
                "c_memory": self.weight_pass.c_memory,
                "late_rounding": self.weight_pass.late_rounding,
                "kappa_ring": self.bias_label.kappa_ring}

    @property
    def widths(self) -> dict[str, int]:
        """Stored widths: ``stored`` (W, U) and ``bias``."""
        return {"stored": self.rule.store_bits,
                "bias": self.model.fmt.state_bits + self.fine}

    def stored_images(self, stored: list[dict]) -> dict[str, list[int]]:
        """The words of the stored memories for IntTrainer-style ``stored`` arrays
        (:func:`rtl.stored_words.stored_words`: W then V per layer, b, and G label
        weights a U word)."""
        w = self.widths
        return stored_words(stored, lanes=self.lanes, store_bits=w["stored"],
                            bias_bits=w["bias"], label_lanes=self.label_groups.lanes)

    def starting_loads(self) -> list[tuple[int, int, int]]:
        """(target, address, word) writes of ``load`` that put the starting model's stored
        words in: every weight word (W, then V, per layer), bias and label word, as
        :func:`rtl.core.memory_images` packs them (the program, a ROM, is not written).
        An SPRAM core needs its weight words before its first sample; the bias and label
        words are the block RAMs' initial contents again.

        Raises
        ------
        ValueError
            On a block RAM core (``weights="loadable"``), which has no ``load`` port.
        """
        if self.weights != "spram":
            raise ValueError(f"Only an SPRAM training core takes starting loads; this one "
                             f"holds its weights in {self.weights!r} block RAM, initialised "
                             f"by the bitstream")
        return [w for w in load_words(self.core.program) if w[0] != LOAD_TARGETS["ops"]]

    @property
    def read_latency(self) -> int:
        """Cycles from ``read`` to ``read_data``: the weight store's
        (:attr:`rtl.program.Program.weight_latency`, :data:`READ_LATENCY` unless deep)."""
        return self.core.program.weight_latency

    def training_cycles(self) -> int:
        """Closed form of the counter for a training sample whose wrong label is drawn
        before the inference's result (the draw needs more rejections than the inference
        has cycles otherwise; the core then waits for it in LABEL).

        The inference (:meth:`rtl.program.Program.cycles`) and the cycle its result is
        taken, LABEL (1), then per layer: PREPARE, the longest of three steps side by
        side: WORDS (n_in + N_src + 3 + N words), SCAN and ERRORS (2 N + the unit's
        gap, 3 N more with ``compact_signal``), and for a layer above the first the v
        of its inputs then for one that hears the loop the v of its feedback (each
        :meth:`rtl.input_scaler.InputScaler.cycles`: SQUARES n + 4, RSQRT its latency
        + 1, SCALE n + the scaler's latency + 2; SCALE alone with
        ``input_norm="forward"``); WPASS
        (:meth:`rtl.weight_pass.WeightPass.cycles`: the first tile's shadow load P + 1,
        the tiles back to back, n_in + N_src cycles each or, on one SPRAM bank, which
        reads a word every other cycle, 2 (n_in + N_src), unless the next tile's shadow
        load takes longer, the last tile's reads, one drain of the weight store's
        latency, 2 or 3 deep, + lane latency + 1; on two SPRAM banks a cycle more for
        each run of words that starts out of its bank's slot), and BU
        (:meth:`rtl.bias_label_pass.BiasLabelPass.cycles`: 2 N, or on one time-shared
        lane 3 N, 4 N with two label words a neuron, + lane latency + 3; and two label
        words make SCAN N cycles longer). FFCL with loss_iterations 'last': the
        whole program of T iterations, then one update per layer; with 'all', the
        program without layer 1's cache, held before each iteration t + 1 for iteration
        t's updates (2 cycles more each: the held FETCH and LABEL), the last iteration's
        after the result. The sum of :meth:`training_phase_cycles`.
        """
        return sum(self.training_phase_cycles().values())

    def training_phase_cycles(self) -> dict[str, int]:
        """Cycles of a training sample per phase of :data:`TRAINING_PHASES` (for the
        sample :meth:`training_cycles` counts, to which they add up), as the ``phase``
        output shows them.

        The inference's phases are :meth:`rtl.program.Program.phase_cycles`, with one
        ``control`` cycle more per hold before an iteration's first op (updates between
        iterations); ``wrong_label`` is the cycle the result is taken and LABEL, once per
        trained iteration; ``prepare``, ``weight_pass`` and ``bias_label_pass`` are each
        layer's PREPARE, WPASS and BU, once per trained iteration.
        """
        config = self.model.config
        holds = self.trained_iterations - 1
        steps = dict.fromkeys(("prepare", "weight_pass", "bias_label_pass"), 0)
        for i, n in enumerate(config.hidden):
            n_in = config.input_size if i == 0 else config.hidden[i - 1]
            n_src = self.n_src[i]
            v = ((self.scaler.cycles(n_in) if i else 0)
                 + (self.scaler.cycles(n_src) if n_src else 0))
            steps["prepare"] += max(n_in + n_src + 3 + n, self.scan.cycles(n), v)
            steps["weight_pass"] += self._pass_cycles(i)
            steps["bias_label_pass"] += self.bias_label.cycles(n)
        phases = dict.fromkeys(TRAINING_PHASES, 0)
        phases.update(self.core.program.phase_cycles())
        phases["control"] += holds
        phases["wrong_label"] = 1 + self.trained_iterations
        for name, count in steps.items():
            phases[name] = self.trained_iterations * count
        return phases

    def pass_lane_utilization(self) -> float:
        """Busy lane-cycles over lane-cycles of the W and V passes: every entry of W and
        V is updated once per trained iteration, N (n_in + N_src) per layer, over the
        update lanes (P, or one in a serial pass) times the passes' cycles
        (:meth:`rtl.weight_pass.WeightPass.cycles`: the first tile's shadow load, the
        tiles back to back, the drain). The tests count both in
        simulation."""
        config = self.model.config
        entries = cycles = 0
        for i, n in enumerate(config.hidden):
            columns = (config.input_size if i == 0 else config.hidden[i - 1]) + self.n_src[i]
            entries += n * columns
            cycles += self._pass_cycles(i)
        return entries / (len(self.weight_pass.lanes) * cycles)

    @property
    def layer_ops(self) -> list:
        """The program's first LAYER op of each layer, in layer order: where the layer's
        W and V words start (``ff_wbase``, ``fb_wbase``) for its update."""
        layers = [op for op in self.core.program.ops if op.kind.name == "LAYER"]
        return layers[:self.model.config.num_layers]

    def _pass_cycles(self, layer: int) -> int:
        """:meth:`rtl.weight_pass.WeightPass.cycles` of ``layer``'s W and V words."""
        config = self.model.config
        op = self.layer_ops[layer]
        n_in = config.input_size if layer == 0 else config.hidden[layer - 1]
        return self.weight_pass.cycles(config.hidden[layer], n_in, self.n_src[layer],
                                       ff_base=op.ff_wbase, fb_base=op.fb_wbase)

    def _word_network(self, m: Module) -> None:
        """One leap-ahead network for the three generators (``shared_word_network``):
        it steps the replay's word in the W and V pass, the rounding words in PREPARE,
        else the label generator's (whose draw is in before the updates start)."""
        wpass, rounding = self.weight_pass, self.words_gen.words
        step_rounding = rounding.valid & rounding.ready
        word = Mux(wpass.replay_take, wpass.replay_word,
                   Mux(step_rounding, rounding.payload, self.labels_gen.words.payload))
        following = Signal(LFSR_WIDTH, name="following")
        m.d.comb += [following.eq(next_word(word)), wpass.replay_following.eq(following),
                     self.words_gen.following.eq(following),
                     self.labels_gen.following.eq(following)]

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.core = core = self.core
        m.submodules.labels_gen = self.labels_gen
        m.submodules.words_gen = self.words_gen
        m.submodules.words = words = self.words
        m.submodules.scan = scan = self.scan
        m.submodules.scaler = scaler = self.scaler
        m.submodules.weight_pass = wpass = self.weight_pass
        m.submodules.bias_label = bias_label = self.bias_label
        ports = self._buffers(m)
        if self.shared_update_lane:
            # The b and U pass's entries on the W pass's lane 0.
            wiring.connect(m, bias_label.lane, wpass.guest)
        wiring.connect(m, self.words_gen.words, words.words)
        if not self.words_gen.network:
            self._word_network(m)
        wiring.connect(m, ports["rho_w"], words.rho)
        wiring.connect(m, ports["err_w"], scan.errors)
        wiring.connect(m, ports["pre_r"], scan.pre)
        wiring.connect(m, ports["act_r"], scaler.act)
        wiring.connect(m, ports["v_w"], scaler.v)
        wiring.connect(m, ports["image_r"], wpass.image)
        m.d.comb += [ports["v_r"].addr.eq(wpass.v.addr), wpass.v.data.eq(ports["v_r"].data)]
        if self.multipliers == "shared":
            # Update lane p on MAC lane p: the pass runs only in WPASS, while the core
            # idles (after its result) or is held before an op, so the lanes are given no
            # element while the engine's operands count (rtl.core.Core's lend port).
            m.d.comb += [core.lend.a.eq(wpass.a), core.lend.b.eq(wpass.b),
                         wpass.product.eq(core.lend.product)]
            if self.signal_multipliers == "shared":
                # The learning signal on lanes 0 and 1: its scan runs in PREPARE, the W
                # pass (run) after it, so the two never need a lane in the same cycle.
                # With a shared update lane the b and U pass (after the W pass) runs on
                # the W pass's lane 0, so on MAC lane 0 too.
                for q in range(2):
                    passes = wpass.run
                    if self.shared_update_lane and q == 0:
                        passes = wpass.run | bias_label.run
                    m.d.comb += [
                        core.lend.a[q].eq(Mux(passes, wpass.a[q], scan.a[q])),
                        core.lend.b[q].eq(Mux(passes, wpass.b[q], scan.b[q])),
                        scan.product[q].eq(core.lend.product[q])]
        state = {"layer": Signal(range(max(2, self.model.config.num_layers))),
                 "y": Signal(range(self.model.config.num_classes)),
                 "y_neg": Signal(range(self.model.config.num_classes)),
                 "feedback": Signal(),
                 "iteration": Signal(range(max(2, self.model.config.loops))),
                 "lam": Signal(self._lambda_shape, init=self.lr_range[0])}
        self._layer_inputs(m, state)
        if self.input_norm == "forward":
            self._forward_norms(m, state)
        # Shared read ports: the error and rho buffers (W pass, then the b/U pass), the
        # core's stored words (the passes, the scan's labels, then the read-back).
        bu_running = bias_label.run
        reading = Signal()
        store = core.store
        for name in ("errors", "rho"):
            port = ports["err_r" if name == "errors" else "rho_r"]
            m.d.comb += [port.addr.eq(Mux(bu_running, getattr(bias_label, name).addr,
                                          getattr(wpass, name).addr)),
                         getattr(bias_label, name).data.eq(port.data),
                         getattr(wpass, name).data.eq(port.data)]
        m.d.comb += [
            store.weight_addr.eq(Mux(reading, self.read.addr, wpass.weights.addr)),
            wpass.weights.data.eq(store.weight_data),
            store.bias_addr.eq(Mux(reading, self.read.addr, bias_label.bias.addr)),
            bias_label.bias.data.eq(store.bias_data),
            store.label_addr.eq(Mux(reading, self.read.addr,
                                    Mux(bu_running, bias_label.labels.addr, scan.labels.addr))),
            bias_label.labels.data.eq(store.label_data), scan.labels.data.eq(store.label_data),
        ]
        # Every updated word goes through the core's load port. Its ready is high
        # whenever the core idles or is held, which it is from LABEL (which waits for
        # ready) until the updates end: the engine offers no pixel and holds the core.
        load = core.load.payload
        engine_writes = wpass.write.valid | bias_label.write.valid
        idle = Signal()
        if self.weights == "spram":
            # The outside's loads go to the same port, only while the core waits for a
            # sample (the engine writes nothing then, and the inference reads nothing).
            outside = self.load.valid & idle
            m.d.comb += [self.load.ready.eq(idle & core.load.ready),
                         core.load.valid.eq(engine_writes | outside)]
        else:
            m.d.comb += core.load.valid.eq(engine_writes)
        with m.If(wpass.write.valid):
            m.d.comb += [load.target.eq(LOAD_TARGETS["weights"]), load.addr.eq(wpass.write.addr),
                         load.data.eq(wpass.write.data)]
        if self.weights == "spram":
            with m.Elif(outside):
                m.d.comb += load.eq(self.load.payload)
        with m.Else():
            m.d.comb += [load.target.eq(Mux(bias_label.write.label, LOAD_TARGETS["labels"],
                                            LOAD_TARGETS["bias"])),
                         load.addr.eq(bias_label.write.addr), load.data.eq(bias_label.write.data)]
        self._read_back(m)
        self._sequence(m, state, reading, idle)
        if self.weights == "spram":
            # A restart only between samples (a sample's draws and rounding words come
            # from one run of the generators). Restoring the constant first word is
            # reset's state in one cycle, with no seeding adders; the sample that may
            # start in the same cycle draws nothing before its last pixel.
            restart = self.restart & idle
            for gen in (self.labels_gen, self.words_gen):
                m.d.comb += [gen.restore.eq(restart), gen.restore_word.eq(gen.reset_word)]
        return m

    def _buffer_shapes(self) -> dict:
        """(shape, depth) of the engine's own memories (:meth:`_buffers`)."""
        config, fmt = self.model.config, self.model.fmt
        D, hidden, total = config.input_size, config.hidden, sum(config.hidden)
        return {
            "image": (unsigned(fmt.input_bits), max(2, D)),
            "pre": (signed(fmt.state_bits), max(2, total)),
            # Both banks of the loop-feedback buffer: iteration T's and T - 1's.
            "act": (unsigned(fmt.act_bits), 2 * total),
            "v": (unsigned(V_BITS), max(2, self.v_depth)),
            "err": (error_entry_layout(), max(2, *hidden)),
            "rho": (unsigned(32), max(2, *hidden)),
        }

    def products(self) -> dict[str, list[Product]]:
        """What the training engine multiplies, by unit, beside the inference core's
        products (``core``; counted by :func:`ffcl_hw.flows.synth.multipliers_needed`)."""
        return {"update_lanes": self.weight_pass.products(),
                "bias_label_lanes": self.bias_label.products(),
                "learning_signal": self.scan.products(),
                "input_scaler": self.scaler.products()}

    def memories(self) -> list[MemoryShape]:
        """The training engine's memories, beside the inference core's: its buffers, the
        learning-signal unit's and the input scaler's table. The stored weights are the
        core's own memories (wider words: ``Program.stored_weight_bits``)."""
        shapes = [MemoryShape(f"{name}_buffer", depth, Shape.cast(shape).width)
                  for name, (shape, depth) in self._buffer_shapes().items()]
        return shapes + self.scan.memories() + self.scaler.memories()

    def _buffers(self, m: Module) -> dict:
        """The engine's memories and their ports: what it keeps from the forward pass
        (pixels, pre-activations, activations, filled from the ``observe`` port) and its
        buffers (errors, rho words, v)."""
        config = self.model.config
        hidden, total = config.hidden, sum(config.hidden)
        mems = {name: memory.Memory(shape=shape, depth=depth, init=[], attrs=COLLISIONS_UNUSED)
                for name, (shape, depth) in self._buffer_shapes().items()}
        ports = {}
        for name, mem in mems.items():
            m.submodules[f"{name}_buf"] = mem
            ports[f"{name}_w"], ports[f"{name}_r"] = mem.write_port(), mem.read_port()
        obs = self.core.observe
        offsets = [sum(hidden[:i]) for i in range(config.num_layers)]
        pre_w, act_w = ports["pre_w"], ports["act_w"]
        # Every iteration's pre-activations as the sweep writes them (scanned or not).
        m.d.comb += [
            pre_w.en.eq(obs.pre_write),
            pre_w.addr.eq(Array(Const(o) for o in offsets)[obs.layer] + obs.pre_addr),
            pre_w.data.eq(obs.pre_data),
            act_w.en.eq(obs.act), act_w.addr.eq(obs.act_addr + Mux(obs.act_bank, total, 0)),
            act_w.data.eq(obs.act_data),
        ]
        # The pixels are kept as they pass (_sequence drives the image write).
        self._image_w = ports["image_w"]
        return ports

    def _layer_inputs(self, m: Module, state: dict) -> None:
        """The steps' per-layer inputs, from constant tables indexed by the layer."""
        model, trainer, P = self.model, self.trainer, self.lanes
        config = model.config
        L, hidden = config.num_layers, config.hidden
        layer = state["layer"]
        offsets = [sum(hidden[:i]) for i in range(L)]
        n_ins = [config.input_size] + list(hidden[:-1])
        n_src = self.n_src
        ops = self.layer_ops

        def table(values, shape=None):
            return Array(Const(v, shape) if shape is not None else Const(v) for v in values)[layer]

        # k = base(lambda_0) + (lambda - lambda_0) - z: every base shift grows with lambda.
        low = self.lr_range[0]
        bases = [trainer.base_shifts(i, low) for i in range(L)]
        z = self.scan.z

        def k(name):
            return table([b.get(name, 0) for b in bases], signed(12)) + (state["lam"] - low) - z

        words, scan, scaler = self.words, self.scan, self.scaler
        total = sum(hidden)
        # Iteration t's activations are in bank t mod 2, t - 1's in the other.
        iteration = state["iteration"]
        bank_last = Mux(iteration[0], total, 0)
        bank_prev = Mux(iteration[0], 0, total)
        feedback = state["feedback"]
        wpass, bias_label = self.weight_pass, self.bias_label
        m.d.comb += [
            words.columns.eq(table([n + s for n, s in zip(n_ins, n_src, strict=True)])),
            words.rows.eq(table(hidden)),
            scan.neurons.eq(table(hidden)), scan.base.eq(table(offsets)),
            scan.theta.eq(table(trainer.thresholds)),
            scan.y.eq(state["y"]), scan.y_neg.eq(state["y_neg"]),
            # v of the inputs (iteration T's activations, bank (T - 1) mod 2), then of the
            # feedback (iteration T - 1's, the other bank) after them.
            scaler.count.eq(Mux(feedback, table(n_src), table(n_ins))),
            scaler.source.eq(Mux(feedback,
                                 bank_prev + table([offsets[s] if s is not None else 0
                                                    for s in self.sources]),
                                 bank_last + table([0] + offsets[:-1]))),
            scaler.dest.eq(Mux(feedback, table([0] + n_ins[1:]), 0)),
            # Iteration 1 hears n(0) = 0 (the golden trainer's prev starts at zeros).
            scaler.zero.eq(feedback & is_zero(iteration)),
            wpass.tiles.eq(table([-(-n // P) for n in hidden])), wpass.neurons.eq(table(hidden)),
            wpass.ff_columns.eq(table(n_ins)), wpass.fb_columns.eq(table(n_src)),
            wpass.ff_base.eq(table([op.ff_wbase for op in ops])),
            wpass.fb_base.eq(table([op.fb_wbase for op in ops])),
            wpass.k_ff.eq(k("W")), wpass.k_fb.eq(k("V")),
            wpass.first.eq(words.first), wpass.first_layer.eq(is_zero(layer)),
            bias_label.neurons.eq(table(hidden)), bias_label.base.eq(table(offsets)),
            *([bias_label.kappa_word.eq(words.words.payload),
               bias_label.kappa_load.eq(words.scalar)] if self.bias_label.kappa_ring else
              [bias_label.kappa_b.eq(words.kappa_b), bias_label.kappa_pos.eq(words.kappa_pos),
               bias_label.kappa_neg.eq(words.kappa_neg)]),
            bias_label.k_b.eq(k("b")), bias_label.k_u.eq(k("U")),
            bias_label.y.eq(state["y"]), bias_label.y_neg.eq(state["y_neg"]),
        ]

    def _forward_norms(self, m: Module, state: dict) -> None:
        """``input_norm="forward"``: (r, sh/2) of each layer's inputs, kept from its last
        forward op (the one whose inputs its update normalises: the class docstring says
        why), and the input scaler's (r, sh) from them."""
        config, obs, norms = self.model.config, self.core.observe, self.core.norms
        L = config.num_layers
        # Registers only where an update reads them: the feed-forward input of a layer
        # above the first, the feedback of a layer that hears the loop. sh is even: its
        # half is kept.
        ff_r, ff_half, fb_r, fb_half = [], [], [], []
        for i in range(L):
            kept = {}
            for name, wanted, r, sh in (("ff", i > 0, norms.ff_r, norms.ff_sh),
                                        ("fb", self.sources[i] is not None, norms.fb_r,
                                         norms.fb_sh)):
                if not wanted:
                    kept[name] = (Const(0, len(r)), Const(0, len(sh) - 1))
                    continue
                kept_r = Signal.like(r, name=f"{name}_r_{i}")
                kept_half = Signal(len(sh) - 1, name=f"{name}_sh_half_{i}")
                # While the sweep writes one of layer i's activations the op is layer
                # i's and its reciprocal square roots are settled (the sweep scales with
                # them): each write of the op keeps the same values.
                with m.If(obs.act & (obs.layer == i)):
                    m.d.sync += [kept_r.eq(r), kept_half.eq(sh[1:])]
                kept[name] = (kept_r, kept_half)
            ff_r.append(kept["ff"][0])
            ff_half.append(kept["ff"][1])
            fb_r.append(kept["fb"][0])
            fb_half.append(kept["fb"][1])
        layer, feedback = state["layer"], state["feedback"]

        def pick(values):
            return values[0] if L == 1 else Array(values)[layer]

        scaler = self.scaler
        m.d.comb += [
            scaler.r.eq(Mux(feedback, pick(fb_r), pick(ff_r))),
            scaler.sh.eq(Cat(Const(0, 1), Mux(feedback, pick(fb_half), pick(ff_half)))),
        ]

    def _read_back(self, m: Module) -> None:
        """``read_data``: the stored words, :attr:`read_latency` cycles after ``read``
        (bias and label words, read in one cycle, wait to match)."""
        store = self.core.store
        target_1, target_2 = Signal.like(self.read.target), Signal.like(self.read.target)
        small_word = Signal.like(self.read_data)
        m.d.sync += [target_1.eq(self.read.target), target_2.eq(target_1),
                     small_word.eq(Mux(target_1 == LOAD_TARGETS["bias"], store.bias_data,
                                       store.label_data))]
        target, small = target_2, small_word
        for i in range(self.read_latency - READ_LATENCY):
            late_target = Signal.like(self.read.target, name=f"target_late_{i}")
            late_word = Signal.like(self.read_data, name=f"small_late_{i}")
            m.d.sync += [late_target.eq(target), late_word.eq(small)]
            target, small = late_target, late_word
        m.d.comb += self.read_data.eq(Mux(target == LOAD_TARGETS["weights"],
                                          store.weight_data, small))

    def _prepare_state(self, m: Module, state: dict, done_flags) -> None:
        """PREPARE: the steps before a layer's passes, side by side (each reads and writes
        its own buffers): UpdateWords, ErrorScan, and InputScaler for the v of the inputs
        (above layer 1) then of the feedback (a layer that hears the loop). Each runs
        once; the state ends in the cycle the last of them is done. ``done_flags``:
        :meth:`_prepare_flags`'s registers."""
        layer = state["layer"]
        has_src = Array(Const(s is not None) for s in self.sources)
        words_done, scan_done, v_step = done_flags
        words, scan, scaler = self.words, self.scan, self.scaler
        with m.State("PREPARE"):
            v_last = (v_step == 1) | ~has_src[layer]
            m.d.comb += [words.run.eq(~words_done), scan.run.eq(~scan_done),
                         scaler.run.eq(v_step != 2), state["feedback"].eq(v_step == 1)]
            with m.If(words.done):
                m.d.sync += words_done.eq(1)
            with m.If(scan.done):
                m.d.sync += scan_done.eq(1)
            with m.If(scaler.done):
                m.d.sync += v_step.eq(Mux(v_last, 2, 1))
            with m.If((words_done | words.done) & (scan_done | scan.done)
                      & ((v_step == 2) | (scaler.done & v_last))):
                m.next = "WPASS"

    def _prepare_flags(self, m: Module, prepare: Signal, prepare_layer: Signal):
        """PREPARE's registers, set up when ``prepare`` says the state starts next cycle
        for layer ``prepare_layer``: words done, signal done, and the v step (0 the
        inputs', 1 the feedback's, 2 none left)."""
        has_src = Array(Const(s is not None) for s in self.sources)
        words_done, scan_done, v_step = Signal(), Signal(), Signal(range(3))
        with m.If(prepare):
            m.d.sync += [words_done.eq(0), scan_done.eq(0),
                         v_step.eq(Mux(prepare_layer != 0, 0,
                                       Mux(has_src[prepare_layer], 1, 2)))]
        return words_done, scan_done, v_step

    def _sequence(self, m: Module, state: dict, reading: Signal, idle: Signal) -> None:
        """The sample's state machine: pixels in, the inference, the wrong label, then
        per layer the steps (words, learning signal, v, W pass, b/U pass), the record.
        ``idle`` (driven for an SPRAM core only): waiting for a sample's first pixel."""
        core, config = self.core, self.model.config
        K, D = config.num_classes, config.input_size
        at_boundary = self._iteration_boundary(m, state["iteration"])
        lam_in = self._clamped_lambda()
        cycles, counting = Signal(CYCLE_BITS), Signal()
        with m.If(counting):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += self.busy.eq(counting)
        pixel = Signal(range(max(2, D)))
        train, predicted = Signal(), Signal(range(K))

        # The wrong label, by rejection, while the core infers.
        draw_pending, draw_r = self._wrong_label_draw(m)

        # PREPARE starts next cycle, for layer prepare_layer (0 from LABEL).
        prepare, prepare_layer = Signal(), Signal.like(state["layer"])
        done_flags = self._prepare_flags(m, prepare, prepare_layer)
        record = self.done.payload
        m.d.comb += [record.label.eq(predicted), record.wrong.eq(state["y_neg"]),
                     record.cycles.eq(cycles)]
        m.d.comb += core.result.ready.eq(0)
        # The sequence's own registers and flags, which its states share.
        seq = {"pixel": pixel, "train": train, "predicted": predicted, "cycles": cycles,
               "counting": counting, "draw_pending": draw_pending, "draw_r": draw_r,
               "prepare": prepare, "prepare_layer": prepare_layer, "lam_in": lam_in,
               "at_boundary": at_boundary}
        with m.FSM() as fsm:
            self._sample_state(m, state, seq)
            self._infer_and_label_states(m, state, seq)
            # Per layer: PREPARE (words, learning signal and v side by side), the W/V
            # pass, the b/U pass.
            self._prepare_state(m, state, done_flags)
            self._pass_states(m, state, seq)
            with m.State("DONE"):
                m.d.comb += [self.done.valid.eq(1), reading.eq(1)]
                with m.If(self.done.ready):
                    m.next = "SAMPLE"
        # The engine claims the core's stored-word read ports from the result on, or from
        # a hold between iterations, when the core idles (it is offered no pixels until
        # the record is taken, and holds its next op until the updates are done).
        if self.weights == "spram":
            m.d.comb += idle.eq(fsm.ongoing("SAMPLE") & is_zero(pixel))
        self._phase(m, fsm, counting)
        updating = ~fsm.ongoing("SAMPLE") & ~fsm.ongoing("INFER")
        m.d.comb += core.store.claim.eq(updating)
        with m.If(updating & ~core.result.valid & ~fsm.ongoing("DONE")):
            m.d.comb += core.store.hold.eq(1)

    def _phase(self, m: Module, fsm, counting: Signal) -> None:
        """The ``phase`` output: in INFER the inference core's (whose ``IDLE`` there is
        the cycle its result is taken, counted as ``WRONG_LABEL``), else the step's."""
        steps = {"LABEL": TrainingPhase.WRONG_LABEL, "PREPARE": TrainingPhase.PREPARE,
                 "WPASS": TrainingPhase.WEIGHT_PASS, "BU": TrainingPhase.BIAS_LABEL_PASS}
        inner = self.core.phase
        with m.If(counting):
            with m.If(fsm.ongoing("INFER")):
                # (A reduction, not "== IDLE": Yosys writes that as a logical not of
                # the 3 bits, which Verilator's -Wall reports as WIDTHTRUNC.)
                m.d.comb += self.phase.eq(Mux(inner.any(), inner,
                                              TrainingPhase.WRONG_LABEL))
            for state, code in steps.items():
                with m.Elif(fsm.ongoing(state)):
                    m.d.comb += self.phase.eq(code)

    def _iteration_boundary(self, m: Module, iteration: Signal) -> Signal:
        """High while the inference core fetches the first op of the iteration after
        ``iteration`` (only with updates between iterations; else never)."""
        core, T = self.core, self.model.config.loops
        # Updates between iterations: the sequencer is held before the first op of
        # iteration t + 1 while iteration t's updates run (loss_iterations 'all').
        first_ops = [i for i, op in enumerate(core.program.ops)
                     if op.kind.name == "LAYER" and op.layer == 0]
        obs = core.observe
        at_boundary = Signal()
        if self.trained_iterations > 1:
            boundary = Array(Const(i) for i in first_ops[1:])[iteration]
            m.d.comb += at_boundary.eq(obs.fetch & (obs.op_index == boundary)
                                       & (iteration < T - 1))
        return at_boundary

    def _clamped_lambda(self):
        """``lr_shift_in`` clamped to :attr:`lr_range`."""
        # lambda clamped to the rule's range, by the comparisons that can be true (a
        # constant one, "< 0" above all, is what Verilator's -Wall reports as UNSIGNED).
        low, high = self.lr_range
        lam_in = self.lr_shift_in
        if high < (1 << len(lam_in)) - 1:
            lam_in = Mux(lam_in > high, high, lam_in)
        if low > 0:
            lam_in = Mux(lam_in < low, low, lam_in)
        return lam_in

    def _wrong_label_draw(self, m: Module) -> tuple[Signal, Signal]:
        """The label generator's draw of r for y' (by rejection, r < K - 1): (a draw is
        pending, r); the sequence sets the pending flag with a training sample's last
        pixel."""
        K = self.model.config.num_classes
        draw_pending, draw_r = Signal(), Signal(range(max(2, K)))
        mask_bits = (K - 2).bit_length()
        labels_gen = self.labels_gen.words
        m.d.comb += labels_gen.ready.eq(draw_pending)
        with m.If(draw_pending & labels_gen.valid):
            r = labels_gen.payload[:mask_bits] if mask_bits else Const(0, 1)
            with m.If(r < K - 1):
                m.d.sync += [draw_pending.eq(0), draw_r.eq(r)]
        return draw_pending, draw_r

    def _sample_state(self, m: Module, state: dict, seq: dict) -> None:
        """SAMPLE: the pixels to the inference core and into the image buffer; with the
        last, the label, whether to train, lambda, and the cycle counter started."""
        core, config = self.core, self.model.config
        D, T = config.input_size, config.loops
        image_w, samples, pixel = self._image_w, self.samples, seq["pixel"]
        with m.State("SAMPLE"):
            m.d.comb += [core.image.valid.eq(samples.valid),
                         core.image.payload.eq(samples.payload.pixel),
                         samples.ready.eq(core.image.ready),
                         image_w.en.eq(samples.valid & core.image.ready),
                         image_w.addr.eq(pixel), image_w.data.eq(samples.payload.pixel)]
            with m.If(samples.valid & core.image.ready):
                m.d.sync += pixel.eq(pixel + 1)
                with m.If(pixel == D - 1):
                    m.d.sync += [pixel.eq(0), state["y"].eq(samples.payload.label),
                                 seq["train"].eq(samples.payload.train),
                                 state["iteration"].eq(T - self.trained_iterations),
                                 state["lam"].eq(seq["lam_in"]),
                                 seq["draw_pending"].eq(samples.payload.train),
                                 seq["cycles"].eq(0), seq["counting"].eq(1)]
                    m.next = "INFER"

    def _infer_and_label_states(self, m: Module, state: dict, seq: dict) -> None:
        """INFER (the inference, or its iteration until the boundary) and LABEL (y' once
        drawn; the updates start, or an untrained sample's record)."""
        core, K = self.core, self.model.config.num_classes
        train = seq["train"]
        with m.State("INFER"):
            with m.If(train & seq["at_boundary"]):
                # Iteration t's forward pass is done: update before t + 1.
                m.d.comb += core.store.hold.eq(1)
                m.next = "LABEL"
            with m.If(core.result.valid):
                m.d.comb += core.result.ready.eq(1)
                m.d.sync += seq["predicted"].eq(core.result.payload.label)
                m.next = "LABEL"
        with m.State("LABEL"):
            # y' = (y + 1 + r) mod K once the draw is in; the updates start once the
            # core takes loads (idle, or held between iterations: it then stays
            # ready until the engine lets it go, so no write of a pass is refused).
            with m.If(~seq["draw_pending"] & core.load.ready):
                wrong = state["y"] + 1 + seq["draw_r"]
                m.d.sync += [state["y_neg"].eq(Mux(wrong >= K, wrong - K, wrong)),
                             state["layer"].eq(0)]
                m.d.comb += seq["prepare"].eq(1)
                m.next = "PREPARE"
                with m.If(~train):
                    m.d.sync += seq["counting"].eq(0)
                    m.next = "DONE"

    def _pass_states(self, m: Module, state: dict, seq: dict) -> None:
        """WPASS and BU, the W/V and b/U passes of a layer; after the last layer's, the
        next iteration's inference or (after the last iteration) the record."""
        L, T = self.model.config.num_layers, self.model.config.loops
        layer, iteration = state["layer"], state["iteration"]
        with m.State("WPASS"):
            m.d.comb += self.weight_pass.run.eq(1)
            with m.If(self.weight_pass.done):
                m.next = "BU"
        with m.State("BU"):
            m.d.comb += self.bias_label.run.eq(1)
            with m.If(self.bias_label.done):
                m.d.sync += layer.eq(layer + 1)
                m.d.comb += [seq["prepare"].eq(1), seq["prepare_layer"].eq(layer + 1)]
                m.next = "PREPARE"
                with m.If(layer == L - 1):
                    m.d.sync += iteration.eq(iteration + 1)
                    m.next = "INFER"
                    with m.If(iteration == T - 1):
                        m.d.sync += seq["counting"].eq(0)
                        m.next = "DONE"
