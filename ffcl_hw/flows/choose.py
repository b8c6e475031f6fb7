"""The core a board gets by default: lanes, label lanes, multipliers and weights.

``ffcl-hw synth RUN --board B`` with no other flag builds the core that needs the fewest
cycles per inference among those that fit the board (:func:`ffcl_hw.flows.synth.check_fit`:
multipliers, block RAM, SPRAM), with the fewest multipliers, then the fewest lanes among
equals. Cycles change only where a layer needs one pass fewer (P = ceil(N / t) lanes for
t passes over N neurons) or the label scan one group fewer (G = ceil(K / g)), so only
those lane counts are tried, widest first; the cycle count of a core only falls as lanes
are added, so the widest that fits is the fastest.

The multipliers are the board's default mode first (shared on iCE40, where the UP5K's 8
SB_MAC16 are all lanes; dedicated on ECP5), the other if nothing fits that way; label
lanes are capped by :attr:`rtl.board.Board.max_label_lanes` where logic limits them.
On ECP5 the chooser skips lane counts above :data:`UNPINNED_ECP5_LANES` and below the
floorplan's :data:`~ffcl_hw.flows.floorplan.FLOORPLAN_MIN_LANES`: without the floorplan
the broadcast to that many lanes' multipliers missed the 75 MHz clock (digits on the
ULX3S-25F: 13 lanes 67.2 / 74.3 MHz at seeds 1 / 2, 8 lanes 70.2 / 75.7 MHz, docs/
synthesis.md). Options the user gave are kept as given.
"""

from __future__ import annotations

from dataclasses import dataclass

from ffcl_hw.flows.floorplan import FLOORPLAN_MIN_LANES
from ffcl_hw.flows.synth import (
    MULTIPLIERS,
    FitError,
    check_fit,
    default_multipliers,
    default_weights,
)
from ffcl_hw.runs import RunError
from golden.intmodel import IntModel
from rtl.board import board_info
from rtl.program import build_program

__all__ = ["UNPINNED_ECP5_LANES", "CoreChoice", "choose_core", "lane_candidates"]

#: The most MAC lanes the chooser gives an ECP5 core placed without the lane floorplan.
UNPINNED_ECP5_LANES = 8


@dataclass(frozen=True)
class CoreChoice:
    """What a board gets.

    Attributes
    ----------
    lanes, label_lanes : int
        P and G.
    multipliers : {"shared", "dedicated"}
    weights : {"rom", "loadable", "spram"}
    cycles : int
        Cycles per inference of that core.
    chosen : tuple of str
        The options the flow chose (the others were given).
    tried : int
        Configurations checked.
    """

    lanes: int
    label_lanes: int
    multipliers: str
    weights: str
    cycles: int
    chosen: tuple[str, ...]
    tried: int

    def describe(self) -> str:
        """One line: the configuration and why."""
        return (f"{self.lanes} MAC lanes, {self.label_lanes} label lane"
                f"{'s' if self.label_lanes > 1 else ''}, {self.multipliers} multipliers, "
                f"weights {self.weights}: {self.cycles:,} cycles per inference, the fewest "
                f"of the {self.tried} configurations checked that fit")


def lane_candidates(sizes: list[int], limit: int) -> list[int]:
    """Lane counts at which one of ``sizes`` needs one pass fewer, at most ``limit``,
    widest first: ceil(N / t) for every N and t."""
    found = {-(-n // t) for n in sizes for t in range(1, n + 1)}
    return sorted((p for p in found if p <= limit), reverse=True)


def choose_core(model: IntModel, board: str, *, lanes: int | None = None,
                label_lanes: int | None = None, multipliers: str | None = None,
                weights: str | None = None, banks: int = 1) -> CoreChoice:
    """The fastest core of ``model`` that fits ``board``; given options stay as given.

    Raises
    ------
    FitError
        If no configuration fits, with the refusal of the last one tried.
    RunError
        For an unknown multiplier mode.
    """
    info = board_info(board)
    config = model.config
    chosen = tuple(name for name, value in (("lanes", lanes), ("label_lanes", label_lanes),
                                            ("multipliers", multipliers),
                                            ("weights", weights))
                   if value is None)
    weights = weights if weights is not None else default_weights(board)
    if multipliers is not None and multipliers not in MULTIPLIERS:
        raise RunError(f"--multipliers must be one of {', '.join(MULTIPLIERS)}, not "
                       f"{multipliers!r}")
    first = default_multipliers(board)
    modes = [multipliers] if multipliers is not None else [
        first, *(m for m in MULTIPLIERS if m != first)]
    lane_options = [lanes] if lanes is not None else [
        p for p in lane_candidates(list(config.hidden), info.multipliers)
        if info.family != "ecp5" or p <= UNPINNED_ECP5_LANES or p >= FLOORPLAN_MIN_LANES]
    cap = info.max_label_lanes or config.num_classes
    label_options = [label_lanes] if label_lanes is not None else lane_candidates(
        [config.num_classes], cap)
    tried = 0
    refusal: Exception | None = None

    def fits(p: int, g: int, mode: str) -> dict | None:
        nonlocal tried, refusal
        tried += 1
        try:
            return check_fit(model, board, lanes=p, label_lanes=g, weights=weights,
                             shared=mode == "shared", banks=banks)
        except (FitError, ValueError) as error:
            refusal = error
            return None

    for mode in modes:
        best = None
        for g in label_options:
            # Shared multipliers scan on the lanes and take three of them for the scaler
            # and the square (rtl.program).
            options = [p for p in lane_options
                       if mode != "shared" or lanes is not None or p >= max(3, g)]
            # Fit only shrinks with fewer lanes: if the narrowest does not fit, none does.
            if not options or (len(options) > 1 and fits(options[-1], g, mode) is None):
                continue
            # Lane counts widest first: the first that fits is the fastest for this G.
            for p in options:
                needs = fits(p, g, mode)
                if needs is None:
                    continue
                cycles = build_program(model, lanes=p, label_lanes=g,
                                       shared=mode == "shared").cycles()
                key = (cycles, needs["multipliers"]["needed"], p)
                if best is None or key < best[0]:
                    best = (key, p, g)
                break
        if best is not None:
            (cycles, _, _), p, g = best
            return CoreChoice(lanes=p, label_lanes=g, multipliers=mode, weights=weights,
                              cycles=cycles, chosen=chosen, tried=tried)
    if isinstance(refusal, FitError):
        raise refusal
    raise RunError(f"No core of the model fits {info.name}: {refusal}")
