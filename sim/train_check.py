# amaranth: UnusedElaboratable=no
"""The golden side of a simulated training run: IntTrainer sample by sample, and the checks.

Every simulator that drives :class:`rtl.training_core.TrainingCore` (Amaranth's, and the
cocotb bench :mod:`sim.train_testbench` under Verilator or Icarus) feeds the same
:class:`TrainingChecker`: the ``done`` record of each training sample is compared with
what the golden trainer reports when it trains on the sample (the label of its training
pass, the wrong label its label generator drew) and the cycle count with the closed
form (:meth:`TrainingCore.training_cycles`), and the first sample's cycles per phase of
the ``phase`` output with :meth:`TrainingCore.training_phase_cycles` (counting every
sample's would have Python wake every cycle); at the check points every stored word read
back through ``read`` is compared with the golden trainer's
(:meth:`TrainingCore.stored_images`). The first disagreement is a :class:`TrainMismatch`
naming the sample, the memory and layer, the address and both values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from golden.intmodel import IntModel
from golden.inttrain import IntTrainer
from rtl.core import LOAD_TARGETS
from rtl.stored_words import forward_model, unpack_stored
from rtl.training_core import TRAINING_PHASES, TrainingCore

__all__ = ["READ_TARGETS", "TrainMismatch", "TrainingChecker", "TrainingRun", "check_points",
           "first_stored_difference", "phase_name"]

#: The ``read`` port's target code of each stored memory, in read-back order. The weight
#: memory holds each layer's W words, then (FFCL) its V words: "W" reads both.
READ_TARGETS = {"W": LOAD_TARGETS["weights"], "b": LOAD_TARGETS["bias"],
                "U": LOAD_TARGETS["labels"]}


def phase_name(code: int) -> str:
    """The name of a training core's ``phase`` code in
    :data:`rtl.training_core.TRAINING_PHASES`, or ``code N`` for one it does not name (a
    count under such a name is a mismatch of :meth:`TrainingChecker.phases`)."""
    for name, value in TRAINING_PHASES.items():
        if value == code:
            return name
    return f"code {code}"


def check_points(samples: int, check_every: int) -> list[int]:
    """The 0-based samples after which every stored word is compared: every
    ``check_every``-th, and always the last."""
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"Sample count must be a positive integer, not {samples!r}")
    if not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"Check interval must be a positive integer, not {check_every!r}")
    points = list(range(check_every - 1, samples, check_every))
    if not points or points[-1] != samples - 1:
        points.append(samples - 1)
    return points


def first_stored_difference(got: list[dict], want: list[dict], *,
                            where: str = "on the board") -> str | None:
    """The first stored entry of ``got`` (per layer, the arrays W, V, b, U as
    :class:`golden.inttrain.IntTrainer` keeps them and ``ffcl_hw.device.Device.read_model``
    returns them) that differs from ``want``'s, named with both values; None if every
    entry is equal. ``where`` says where ``got`` came from."""
    for layer, (g, w) in enumerate(zip(got, want, strict=True)):
        for name in ("W", "V", "b", "U"):
            if name not in w:
                continue
            if name not in g:
                return f"layer {layer + 1} has no stored {name} {where}"
            if np.shape(g[name]) != np.shape(w[name]):
                return (f"layer {layer + 1} stored {name} has shape {np.shape(g[name])} "
                        f"{where}, {np.shape(w[name])} in the golden trainer")
            found = np.argwhere(g[name] != w[name])
            if found.size:
                index = tuple(int(i) for i in found[0])
                return (f"layer {layer + 1} stored {name}{list(index)} is {int(g[name][index])} "
                        f"{where}, {int(w[name][index])} in the golden trainer")
    return None


@dataclass(frozen=True)
class TrainMismatch:
    """The first disagreement of the simulated core with the golden trainer.

    ``what`` names the field (``predicted label``, ``wrong label``, ``cycles``) or the
    stored entry (memory, layer, address, entry); ``words`` is how many stored words
    differed at that check (0 for a record field).
    """

    sample: int
    what: str
    hardware: int
    golden: int
    reference: str = "in the golden trainer"
    words: int = 0
    detail: str = ""

    def __str__(self) -> str:
        return (f"sample {self.sample}: {self.what} is {self.hardware} in the hardware, "
                f"{self.golden} {self.reference}" + (f" ({self.detail})" if self.detail else ""))

    def to_json(self) -> dict[str, Any]:
        return {"sample": self.sample, "what": self.what, "hardware": self.hardware,
                "golden": self.golden, "reference": self.reference, "words": self.words,
                "detail": self.detail}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainMismatch:
        return cls(**data)


@dataclass
class TrainingRun:
    """What a simulator reported: one ``(label, wrong, cycles)`` record per sample, the
    first sample's cycles per phase of the ``phase`` output, the samples checked word by
    word, the first mismatch (the run stops there), and the hardware's and the golden
    trainer's stored words at the last check."""

    records: list[tuple[int, int, int]] = field(default_factory=list)
    checked: list[int] = field(default_factory=list)
    mismatch: TrainMismatch | None = None
    words: dict[str, list[int]] | None = None
    golden_words: dict[str, list[int]] | None = None
    seconds: float = 0.0
    phase_cycles: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"records": [list(r) for r in self.records], "checked": self.checked,
                "mismatch": None if self.mismatch is None else self.mismatch.to_json(),
                "words": self.words, "golden_words": self.golden_words,
                "seconds": self.seconds, "phase_cycles": self.phase_cycles}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingRun:
        mismatch = data["mismatch"]
        return cls(records=[tuple(r) for r in data["records"]], checked=data["checked"],
                   mismatch=None if mismatch is None else TrainMismatch.from_json(mismatch),
                   words=data["words"], golden_words=data["golden_words"],
                   seconds=data["seconds"], phase_cycles=data["phase_cycles"])


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class TrainingChecker:
    """The golden trainer beside a simulated :class:`TrainingCore`, and its checks.

    Parameters
    ----------
    core : TrainingCore
        The core being simulated (only its parameters are used: model, rule, lanes).
    check_every : int
        Compare every stored word after every ``check_every``-th sample and the last.
    samples : int
        How many samples the run trains on.
    lr_shift : int, optional
        lambda of every sample (what the driver puts on ``lr_shift_in``); within
        ``core.lr_range`` (the core clamps what lies outside). Default: ``core.lr_shift``.

    Attributes
    ----------
    trainer : IntTrainer
        The golden trainer, trained on the samples recorded so far.
    run : TrainingRun
        What the simulation reported so far.
    """

    def __init__(self, core: TrainingCore, *, check_every: int, samples: int,
                 lr_shift: int | None = None) -> None:
        if not isinstance(core, TrainingCore):
            raise TypeError(f"Core must be a rtl.training_core.TrainingCore, not {core!r}")
        low, high = core.lr_range
        lr_shift = core.lr_shift if lr_shift is None else lr_shift
        if (not isinstance(lr_shift, int) or isinstance(lr_shift, bool)
                or not low <= lr_shift <= high):
            raise ValueError(f"lambda must be an integer from {low} to {high} (the core's "
                             f"lr_range), not {lr_shift!r}")
        self.core = core
        self.trainer = IntTrainer(core.model, core.rule)
        stored = set(core.stored_images(self.trainer.stored))
        if stored != set(READ_TARGETS):
            # A memory the read-back does not know (FFCL's V) must not go unchecked.
            raise ValueError(f"the checker reads back {', '.join(READ_TARGETS)}; this core "
                             f"stores {', '.join(sorted(stored))}")
        #: lambda of every sample: the driver's ``lr_shift_in``, the golden trainer's too.
        self.lr_shift = lr_shift
        self.expected_cycles = core.training_cycles()
        self.points = set(check_points(samples, check_every))
        self.run = TrainingRun()
        self._start = time.perf_counter()
        config, P = core.model.config, core.lanes
        #: Per layer, the weight memory's W words (its V words follow, FFCL).
        self._ff_words = [-(-n // P) * (config.input_size if i == 0 else config.hidden[i - 1])
                          for i, n in enumerate(config.hidden)]
        # Words per layer of each memory, in the order stored_images concatenates them.
        self._layer_words = {
            "W": [ff + -(-n // P) * s for ff, n, s in zip(self._ff_words, config.hidden,
                                                           core.n_src, strict=True)],
            "b": list(config.hidden),
            "U": [n * core.label_groups.count for n in config.hidden]}

    # -- what to read ------------------------------------------------------------------
    def read_plan(self) -> list[tuple[str, int, int]]:
        """``(memory, read target code, words)`` of every stored memory."""
        return [(name, READ_TARGETS[name], sum(self._layer_words[name]))
                for name in READ_TARGETS]

    def due(self, sample: int) -> bool:
        """Whether the stored words are compared after ``sample`` (0-based)."""
        return sample in self.points

    # -- checks ------------------------------------------------------------------------
    def record(self, sample: int, x: np.ndarray, y: int, label: int, wrong: int,
               cycles: int) -> TrainMismatch | None:
        """Train the golden trainer on training sample ``sample`` (image ``x``, label
        ``y``) and check the sample's ``done`` record against what it reports
        (:class:`golden.inttrain.SampleResult`: the label of the training pass, the wrong
        label drawn) and the cycles against the closed form."""
        self.run.records.append((int(label), int(wrong), int(cycles)))
        result = self.trainer.train_sample(np.asarray(x, dtype=np.int64), int(y),
                                           self.lr_shift)
        mismatch = None
        if label != result.label:
            # Say which weights the label stands for: FFCL trained at every iteration
            # reads, from iteration 2 on, the weights the previous iteration updated.
            weights = ("the training pass, updated between iterations"
                       if self.core.trained_iterations > 1 else "weights before the update")
            mismatch = TrainMismatch(sample, f"predicted label ({weights})", int(label),
                                     result.label)
        elif wrong != result.wrong:
            mismatch = TrainMismatch(sample, "wrong label drawn", int(wrong), result.wrong)
        elif cycles != self.expected_cycles:
            mismatch = TrainMismatch(sample, "cycles", int(cycles), self.expected_cycles,
                                     "by the closed form (TrainingCore.training_cycles)")
        self.run.mismatch = mismatch
        return mismatch

    def phases(self, sample: int, counted: dict[str, int]) -> TrainMismatch | None:
        """Check training sample ``sample``'s cycles per phase, ``counted`` from the
        ``phase`` output (by :func:`phase_name`),
        against :meth:`TrainingCore.training_phase_cycles`, after :meth:`record` found its
        cycles equal to the closed form; the first sample's go into the run."""
        if sample == 0:
            self.run.phase_cycles = dict(counted)
        want = self.core.training_phase_cycles()
        for name in [*want, *sorted(set(counted) - set(want))]:
            if counted.get(name, 0) != want.get(name, 0):
                mismatch = TrainMismatch(
                    sample, f"cycles of phase {name}", counted.get(name, 0),
                    want.get(name, 0), "by the closed form (TrainingCore.training_phase_cycles)")
                self.run.mismatch = mismatch
                return mismatch
        return None

    def compare(self, sample: int, words: dict[str, list[int]]) -> TrainMismatch | None:
        """Compare the stored words read back after ``sample`` with the golden trainer's."""
        expected = self.core.stored_images(self.trainer.stored)
        self.run.checked.append(sample)
        self.run.words = {name: [int(w) for w in words[name]] for name in READ_TARGETS}
        self.run.golden_words = {name: expected[name] for name in READ_TARGETS}
        wrong = [(name, address) for name in READ_TARGETS
                 for address, (got, want) in enumerate(zip(words[name], expected[name],
                                                           strict=True)) if got != want]
        if not wrong:
            return None
        name, address = wrong[0]
        mismatch = self._entry_mismatch(sample, name, address, int(words[name][address]),
                                        expected[name][address], len(wrong))
        self.run.mismatch = mismatch
        return mismatch

    def _entry_mismatch(self, sample: int, name: str, address: int, got: int, want: int,
                        count: int) -> TrainMismatch:
        """The first differing entry of a stored word, named by layer and index."""
        config, P = self.core.model.config, self.core.lanes
        layer, local = 0, address
        while local >= self._layer_words[name][layer]:
            local -= self._layer_words[name][layer]
            layer += 1
        widths = self.core.widths
        memory = name
        if name == "W" and local >= self._ff_words[layer]:
            # The layer's V words follow its W words in the weight memory.
            memory, local = "V", local - self._ff_words[layer]
        if name == "b":
            entry, bits, fields = f"b[{local}]", widths["bias"], 1
        else:
            bits = widths["stored"]
            fields = P if name == "W" else self.core.label_groups.lanes
        mask = (1 << bits) - 1
        q = next(q for q in range(fields)
                 if (got >> (q * bits)) & mask != (want >> (q * bits)) & mask)
        if memory in ("W", "V"):
            n_in = ((config.input_size if layer == 0 else config.hidden[layer - 1])
                    if memory == "W" else self.core.n_src[layer])
            entry = f"{memory}[{local // n_in * P + q}, {local % n_in}] (lane {q})"
        elif name == "U":
            # A neuron's label words, G labels each.
            groups = self.core.label_groups
            entry = f"U[{local // groups.count}, {local % groups.count * groups.lanes + q}]"
        digits = -(-fields * bits // 4)
        return TrainMismatch(
            sample,
            f"stored {memory} of layer {layer + 1} at address {address} (word {local} of the "
            f"layer's {memory}), entry {entry},",
            _signed(got >> (q * bits), bits), _signed(want >> (q * bits), bits),
            words=count,
            detail=f"words 0x{got:0{digits}x} and 0x{want:0{digits}x}; {count} stored "
                   f"word{'s differ' if count > 1 else ' differs'}")

    def finish(self) -> TrainingRun:
        """The run so far, with its wall time."""
        self.run.seconds = time.perf_counter() - self._start
        return self.run

    # -- the model the words hold ------------------------------------------------------
    def model_from_words(self, words: dict[str, list[int]]) -> IntModel:
        """The forward model (top bits of the stored entries) that ``words`` hold."""
        core = self.core
        stored = unpack_stored(words, core.model, lanes=core.lanes,
                               store_bits=core.widths["stored"], bias_bits=core.widths["bias"],
                               label_lanes=core.label_groups.lanes)
        result = forward_model(core.model, stored, store_bits=core.widths["stored"])
        result.check()
        return result
