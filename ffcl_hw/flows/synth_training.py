# amaranth: UnusedElaboratable=no
"""The training build: ``ffcl-hw synth RUN --board B --train``.

``HostLink(TrainingCore(model, rule, lanes))`` through the same flow as the inference
build (:func:`ffcl_hw.flows.synth.synth`: the board's platform, Yosys, nextpnr at several
seeds, the packer), into ``RUN/synth/B-train`` beside the inference build's
``RUN/synth/B`` (so ``synth-table`` lists both). The model and the rule are the ones
``sim --train`` trains (:func:`ffcl_hw.flows.train_sim.model_and_rule`). The fit check
counts the training engine and refuses a core that does not fit before any tool runs;
the report adds ``training``: the lanes, the cycles and samples per second, the rule, the
engine's multipliers and block RAMs and the inference-only core's (the cost of learning
without a second build).
"""

from __future__ import annotations

import json
from concurrent.futures import Executor
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ffcl_hw.flows.synth import BAUD, FitError, check_fit, check_lanes_option, synth
from ffcl_hw.runs import RunError
from golden.inttrain import TrainRule
from rtl.board import board_info

if TYPE_CHECKING:
    from rtl.host_link import HostLink
    from rtl.training_core import TrainingCore

__all__ = ["DEFAULT_TRAINING_LANES", "TRAINING_ROUTER", "TRAINING_SEEDS",
           "choose_training_core", "ice40_lane_candidates", "synth_training_run",
           "training_core", "training_folder", "training_lane_candidates", "training_link"]

#: Update lanes of a training build unless ``--lanes`` (capped at the widest layer): the
#: ECP5 builds so far (docs/training-engine.md) use 8.
DEFAULT_TRAINING_LANES = 8
#: nextpnr's router for a training build on ECP5: router2 (the flow's default there) did
#: not converge on the digits 8-lane training core in 31 minutes (its overused wires grew
#: again after the 40th iteration); router1 routed it in about 7 (docs/training-engine.md).
TRAINING_ROUTER = "router1"
#: Placement seeds of a training build unless ``--seeds``: one, since a sweep waits for its
#: slowest seed and router1's time varies with the placement. On the digits FFDL 8-lane
#: core, seed 1 routed in 6 minutes and seed 2 had not converged after 22 (its queue
#: growing again).
TRAINING_SEEDS = 1


def training_lane_candidates(widest: int) -> list[int]:
    """The lane counts a training build tries, in order, when ``--lanes`` is not given:
    :data:`DEFAULT_TRAINING_LANES` (capped at the ``widest`` layer), then wider up to
    twice it, then narrower down to one.

    Wider first because the weight memory's depth, tiles x columns words, decides the
    block RAMs in powers of two: MNIST 784-256-256 on 8 lanes is 33,280 words, just past
    2^15, and Yosys maps it to three deep columns of blocks; on 9 lanes it is 30,160 and
    takes two. Narrower lanes need fewer multipliers.
    """
    first = min(DEFAULT_TRAINING_LANES, widest)
    wider = range(first + 1, min(2 * DEFAULT_TRAINING_LANES, widest) + 1)
    return [first, *wider, *range(first - 1, 0, -1)]


def ice40_lane_candidates(store_bits: int) -> list[int]:
    """The lane counts an iCE40 (SPRAM) training build tries, in order, when ``--lanes``
    is not given: from 3 (the forward pass scales on two lanes and squares on a third)
    up to the most whose word of P x B_m bits fits one SPRAM bank (64 bits).

    The fewest first because the UP5K's logic cells are what a training core runs out
    of, not its multipliers or memory, and every lane costs some 750 of them (the digits
    build packs to 10,787 cells on 3 lanes against 11,541 on 4, docs/training-engine.md);
    a word of at most 32 bits takes two banks (a word a cycle), a wider one a bank (a
    word every other cycle). More lanes are tried only when fewer do not fit: a narrow
    word wastes SPRAM bits (3 x 8 of a bank's 32), so a model may fit on 4 lanes only."""
    return list(range(3, 64 // store_bits + 1))


def training_core(model, rule: TrainRule, board: str | None, lanes: int,
                  multipliers: str = "shared"):
    """The :class:`rtl.training_core.TrainingCore` a training build for ``board`` makes:
    on an SPRAM board (the iCEBreaker's UP5K) its weights in SPRAM with the small-part
    options (one b and U lane, on the W pass's lane, every multiplier a MAC lane's, G =
    min(K, P) label weights a word, compact update lanes, the update's input norms from
    the forward pass, the lean learning signal (compact on the MAC lanes' multipliers),
    the lean forward datapath, one update lane taking each word's P weights in turn, one
    leap-ahead network for the three word generators, the layers' norms kept from one
    reciprocal square root, the sweep's tags in a block RAM, the score read port its
    link's RESULT replies read, the serial pass's write addresses held a register a word,
    its kappa the replay's own, its lane's stored values in a block RAM and its rho and
    kappa taken a cycle late, the b and U pass's kappa words in a ring of its own;
    docs/training-engine.md), else (or for no board) in block RAM with the defaults."""
    from rtl.training_core import TrainingCore

    if board is None or not board_info(board).spram_bits:
        return TrainingCore(model, rule, lanes=lanes, multipliers=multipliers)
    return TrainingCore(model, rule, lanes=lanes, multipliers=multipliers, weights="spram",
                        bias_label_lanes=1, forward_multipliers="shared",
                        signal_multipliers="shared" if multipliers == "shared" else "dedicated",
                        label_lanes=min(model.config.num_classes, lanes),
                        input_norm="forward", compact_lanes=True, lean_signal=True,
                        lean_forward=True, serial_weight_pass=True,
                        shared_word_network=True, shared_update_lane=True,
                        stored_norms=True, tag_memory=True, score_port=True,
                        compact_signal=multipliers == "shared", held_addresses=True,
                        late_replay=True, c_memory=True, late_rounding=True,
                        kappa_ring=True)


def training_link(core, board: str | None, divisor: int):
    """The :class:`rtl.host_link.HostLink` a training build for ``board`` puts around
    ``core`` (a :func:`training_core`): SPRAM weights come up empty (``initialised``
    False: no TRAIN until a load commits), and on an SPRAM board (the iCEBreaker's UP5K)
    the link's small-part form, ``lean`` (the TRAIN records in the sample buffer;
    docs/training-engine.md)."""
    from rtl.host_link import HostLink

    return HostLink(core, divisor=divisor, initialised=core.weights != "spram",
                    lean=board is not None and bool(board_info(board).spram_bits))


def choose_training_core(model, rule: TrainRule, board: str, lanes: int | None = None,
                         multipliers: str = "shared"):
    """The training core for ``board`` (:func:`training_core`) and
    :func:`ffcl_hw.flows.synth.check_fit`'s needs: with ``lanes`` that many, else the
    first of :func:`training_lane_candidates` (:func:`ice40_lane_candidates` on an SPRAM
    board) that fits; ``multipliers`` as :class:`rtl.training_core.TrainingCore`'s.

    Raises
    ------
    FitError
        Nothing fits: the refusal of ``lanes`` (or of the default lane count). When block
        RAM is what overflows, the message adds the largest stored width
        (``--store-bits``) that fits with the lane counts tried, or says that none does.
    RunError
        A core the RTL does not build (an SPRAM word wider than 64 bits, bad
        multipliers), with its message.
    """
    try:
        return _choose_training_core(model, rule, board, lanes, multipliers)
    except (TypeError, ValueError) as error:
        raise RunError(str(error)) from None


def _choose_training_core(model, rule: TrainRule, board: str, lanes: int | None,
                          multipliers: str):
    from rtl.training_core import TrainingCore

    spram = bool(board_info(board).spram_bits)
    if spram and lanes is not None and lanes < 3:
        raise FitError(f"A training core for {board} needs at least 3 lanes, not {lanes}: "
                       f"its forward pass scales on two MAC lanes' multipliers and "
                       f"squares on a third (the part has no others to spare); use "
                       f"--lanes 3 or more, or leave --lanes out", None)
    if lanes:
        candidates = [lanes]
    elif spram:
        # No count at all (B_m > 21): 3 lanes, whose refusal names the SPRAM word.
        candidates = ice40_lane_candidates(rule.store_bits) or [3]
    else:
        candidates = training_lane_candidates(max(model.config.hidden))
    refusal = None
    for count in candidates:
        core = training_core(model, rule, board, count, multipliers)
        try:
            # Without --lanes the refusal kept is raised only after every count failed.
            return core, check_fit(core, board, lanes_tried=not lanes)
        except FitError as error:
            refusal = refusal or error
    if spram:
        tried = "" if lanes else f". Neither {' nor '.join(map(str, candidates))} lanes fit"
        raise FitError(f"{refusal}{tried}", refusal.needs) from None
    needs = refusal.needs
    tried = "" if lanes else f". No lane count from 1 to {max(candidates)} fits either"
    if not any(needs[kind]["needed"] > needs[kind]["available"]
               for kind in ("memory_bits", "block_rams")):
        raise FitError(f"{refusal}{tried}", needs) from None
    # The stored width is what training adds to the weights: find the largest that fits
    # (B_m >= B_w, the forward pass's width, is the rule's floor), first with at least
    # half the first count's lanes (MNIST 784-256-256 on the 85F: 11 bits fit on 1 lane
    # only, 10 on 9 lanes), then with the others.
    widths = range(rule.store_bits - 1, model.fmt.weight_bits - 1, -1)
    wide = [c for c in candidates if 2 * c >= candidates[0]]
    for counts in (wide, [c for c in candidates if c not in wide]):
        for store_bits in widths:
            smaller = replace(rule, store_bits=store_bits)
            for count in counts:
                try:
                    check_fit(TrainingCore(model, smaller, lanes=count,
                                       multipliers=multipliers), board)
                except FitError:
                    continue
                raise FitError(f"{refusal}{tried}. Trained with --store-bits {store_bits} "
                               f"the core fits on {count} lanes", needs) from None
    raise FitError(f"{refusal}{tried}. No stored width from {rule.store_bits} down to the "
                   f"forward pass's {model.fmt.weight_bits} bits fits either", needs) from None


def training_folder(run: Path, board: str) -> Path:
    """Where the training build of ``run`` for ``board`` goes: ``RUN/synth/BOARD-train``."""
    return Path(run) / "synth" / f"{board}-train"


def _chosen_lanes_why(core: TrainingCore, rule: TrainRule, board: str, widest: int) -> str:
    """Why the training build chose ``core``'s lanes when ``--lanes`` was left out
    (``widest``: the widest layer's neurons)."""
    lanes = core.lanes
    default = min(DEFAULT_TRAINING_LANES, widest)
    if board_info(board).spram_bits:
        return (f"{lanes} lanes: the first of "
                f"{ice40_lane_candidates(rule.store_bits)} (at least 3, the fewest first: "
                f"logic cells are what the part runs out of) whose training core fits "
                f"{board}")
    if lanes != default:
        return (f"{lanes} lanes: the first count from {default} (the default "
                f"{DEFAULT_TRAINING_LANES}, capped at the widest layer) whose "
                f"training core fits {board}")
    return (f"{lanes} lanes: the default {DEFAULT_TRAINING_LANES}"
            + (f", capped at the widest layer ({widest} neurons)"
               if lanes < DEFAULT_TRAINING_LANES else ""))


def _build_fields(run: Path, config: Any, core: TrainingCore, chosen: dict[str, Any],
                  why: list[str]) -> dict[str, Any]:
    """The report's fields that describe the build: the run, the model's shape, the
    inference core inside ``core`` (lanes, weights, multipliers, cycles) and what was
    chosen for the options left out, and why."""
    program = core.core.program
    return {
        "run": str(run),
        "model": {"algo": config.algo, "shape": [config.input_size, *config.hidden],
                  "labels": config.num_classes, "loops": config.loops},
        "lanes": program.lanes, "label_lanes": program.label_lanes,
        "weights": core.core.weights,
        "multipliers": "shared" if program.shared else "dedicated", "banks": 1,
        "cycles_per_inference": program.cycles(),
        "chosen": {"options": chosen, "why": "; ".join(why)},
    }


def _training_fields(core: TrainingCore, link: HostLink, lanes: int, multipliers: str,
                     fmax: float | None, rule: TrainRule, rule_source: str,
                     fit: dict[str, Any]) -> dict[str, Any]:
    """The report's ``training`` part: the core's lanes and options as built, the link's
    form, the cycles and samples per second at ``fmax``, the rule and the fit."""
    cycles = core.training_cycles()
    return {
        "lanes": lanes,
        "multipliers": multipliers,
        # The small-part options (docs/training-engine.md), as the core was built.
        "bias_label_lanes": len(core.bias_label.lanes),
        "forward_multipliers": core.forward_multipliers,
        "signal_multipliers": core.signal_multipliers,
        "compact_lanes": core.options["compact_lanes"],
        "input_norm": core.input_norm,
        "lean_signal": core.lean_signal,
        "lean_forward": core.lean_forward,
        "serial_weight_pass": core.weight_pass.serial,
        "shared_word_network": core.options["shared_word_network"],
        # The link's (HostLink's lean: the TRAIN records in the sample buffer).
        "lean_link": link.lean,
        "shared_update_lane": core.shared_update_lane,
        "stored_norms": core.options["stored_norms"],
        "tag_memory": core.options["tag_memory"],
        # The score read port the link's RESULT replies read (Core's score_port).
        "score_port": core.core.score_port_enabled,
        "compact_signal": core.compact_signal,
        "held_addresses": core.weight_pass.held_addresses,
        "late_replay": core.weight_pass.late_replay,
        "c_memory": core.weight_pass.c_memory,
        "late_rounding": core.weight_pass.late_rounding,
        "kappa_ring": core.bias_label.kappa_ring,
        "cycles_per_sample": cycles,
        "samples_per_second": (round(fmax * 1e6 / cycles, 1) if fmax else None),
        "rule": {**{f.name: getattr(rule, f.name) for f in fields(TrainRule)},
                 "source": rule_source},
        "fit": fit,
    }


def synth_training_run(run: Path, *, board: str, lanes: int | None = None,
                       freq_mhz: float | None = None, seed: int = 1,
                       seeds: int | None = None, executor: Executor | None = None,
                       scheduler: str | None = None, workers: int = 2,
                       multipliers: str = "shared") -> dict[str, Any]:
    """Synthesise ``RUN``'s model as a training bitstream into ``RUN/synth/BOARD-train``.

    Parameters
    ----------
    lanes : int, optional
        P, the MAC lanes and update lanes. Default: the first of
        :func:`training_lane_candidates` whose core fits the board
        (:data:`DEFAULT_TRAINING_LANES`, capped at the widest layer, unless it does not
        fit); recorded under ``chosen``.
    multipliers : {"shared", "dedicated"}, optional
        Where the W and V passes' update lanes multiply
        (:class:`rtl.training_core.TrainingCore`): the MAC lanes' multipliers (default)
        or their own.
    freq_mhz, seed, seeds, executor, scheduler, workers
        As :func:`ffcl_hw.flows.synth.synth`, but ``seeds`` defaults to
        :data:`TRAINING_SEEDS`. The lane floorplan is off (it pins the inference core's
        lane sites, not the engine's); nextpnr routes with :data:`TRAINING_ROUTER`.

    Returns
    -------
    dict
        :func:`ffcl_hw.flows.synth.synth`'s report with ``report``, ``run``, ``model``,
        ``lanes``, ``label_lanes``, ``weights``, ``multipliers``, ``banks``,
        ``cycles_per_inference``, ``chosen`` and ``training``: ``lanes``, ``multipliers``
        (the update lanes'),
        ``cycles_per_sample`` (:meth:`rtl.training_core.TrainingCore.training_cycles`),
        ``samples_per_second`` at the Fmax (None without one), ``rule`` (its fields and
        where it came from) and ``fit`` (:func:`check_fit`'s ``training`` part: the
        engine's multipliers and block RAMs, and the inference-only core's with the same
        lanes).

    Raises
    ------
    RunError
        An FFL run (the training core trains FFDL and FFCL), bad lanes, or a core that
        does not fit (:class:`ffcl_hw.flows.synth.FitError`), before any tool runs.
    """
    from ffcl_hw.flows.train_sim import model_and_rule

    board_info(board)
    check_lanes_option(lanes)
    model, rule, rule_source, _ = model_and_rule(Path(run))
    config = model.config
    if config.algo not in ("ffdl", "ffcl"):
        raise RunError(f"{run} is an {config.algo.upper()} run: the training core trains "
                       f"FFDL and FFCL models (train one with ffcl-hw train --arith int "
                       f"--algo ffdl or --algo ffcl), or synthesise this one for inference "
                       f"without --train")
    core, needs = choose_training_core(model, rule, board, lanes, multipliers)
    chosen: dict[str, Any] = {}
    why = []
    if lanes is None:
        lanes = chosen["lanes"] = core.lanes
        why.append(_chosen_lanes_why(core, rule, board, max(config.hidden)))
    out_dir = training_folder(run, board)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    links = []

    def link(hz: float):
        # SPRAM comes up empty: such a link refuses TRAIN until a load has committed.
        links.append(training_link(core, board, max(4, round(hz / BAUD))))
        return links[-1]

    report = synth(link,
                   board=board, freq_mhz=freq_mhz, seed=seed,
                   seeds=TRAINING_SEEDS if seeds is None else seeds, out_dir=out_dir,
                   fit=core, floorplan=False, executor=executor, scheduler=scheduler,
                   workers=workers, router=TRAINING_ROUTER)
    report.update({
        **_build_fields(run, config, core, chosen, why),
        "training": _training_fields(core, links[-1], lanes, multipliers, report["fmax_mhz"],
                                     rule, rule_source, needs["training"]),
    })
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    report["report"] = str(out_dir / "report.json")
    return report
