"""Place and route of the training core on an ECP5 board, beside the inference core.

    python docs/training_synth.py                       # ULX3S-85F, one seed
    python docs/training_synth.py --board ulx3s-25f --seed 2

Both designs are the board top of ``ffcl-hw synth`` (:class:`rtl.board.BoardTop`: PLL,
UART, LEDs) around a :class:`rtl.host_link.HostLink`, for a digits FFDL 64-64 model on 8
lanes with dedicated multipliers (seeded weights: the cells do not depend on their
values):

- inference: ``HostLink(Core(model, lanes=8, weights="loadable"))``, what ``synth --lanes 8
  --weights loadable --multipliers dedicated`` builds for such a run;
- training: ``HostLink(TrainingCore(model, rule, lanes=8))`` with digits' default rule:
  the same core with the training engine around it, and its TRAIN and READ frames.

Each goes through :func:`ffcl_hw.flows.synth.synth` (Yosys, nextpnr-ecp5, ecppack; the
report under ``build/training-synth/BOARD/{inference,training}``); the script prints
the cells, block RAMs, multipliers, Fmax and whether the board's clock is met, and the
cost of learning as the training build's share over the inference build's. The fit check
of ``synth`` counts the inference core only (it does not know the training engine yet);
the iCE40 UP5K has no room for the engine (docs/training-engine.md), so only ECP5 boards
are offered.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from ffcl_hw.flows.synth import BAUD, synth  # noqa: E402
from golden.config import ModelConfig  # noqa: E402
from golden.inttrain import TrainRule, initial_model  # noqa: E402
from rtl.core import Core  # noqa: E402
from rtl.host_link import HostLink  # noqa: E402
from rtl.training_core import TrainingCore  # noqa: E402

RESOURCES = ("logic_cells", "multipliers", "block_ram")


def build(kind: str, board: str, seed: int) -> dict:
    """Synthesize the ``kind`` ("inference" or "training") design; its report."""
    config = ModelConfig(algo="ffdl", input_size=64, num_classes=10, hidden=(64, 64),
                         theta=0.25)
    model = initial_model(config, np.random.default_rng(0).random((50, 64)) * 16,
                          input_max=16, seed=0)
    if kind == "training":
        # digits' integer-training rule (lambda 6 after `default_lr_shift`, 30 epochs, its
        # two default steps): the update lanes' shifters are built for lambda 6..8.
        core = TrainingCore(model, TrainRule(epochs=30, lr_shift=6, lr_steps=(15, 22)),
                            lanes=8)
        fit = core.core
    else:
        core = fit = Core(model, lanes=8, weights="loadable")

    def factory(hz: float) -> HostLink:
        return HostLink(core, divisor=max(4, round(hz / BAUD)))

    return synth(factory, board=board, seed=seed, seeds=1, fit=fit, floorplan=False,
                 out_dir=ROOT / "build" / "training-synth" / board / kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="ulx3s-85f", choices=("ulx3s-25f", "ulx3s-85f"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    reports = {kind: build(kind, args.board, args.seed) for kind in ("inference", "training")}
    print(f"digits FFDL 64-64, 8 lanes, dedicated multipliers, {args.board}, seed {args.seed}")
    print("| design | " + " | ".join(RESOURCES) + " | Fmax MHz | meets "
          f"{reports['inference']['target_mhz']:g} MHz |")
    print("|---|" + "---|" * (len(RESOURCES) + 2))
    for kind, report in reports.items():
        used = report["utilization"]
        cells = " | ".join(f"{used[r]['used']:,} / {used[r]['available']:,}"
                           if r in used else "-" for r in RESOURCES)
        print(f"| {kind} | {cells} | {report['fmax_mhz']:.1f} | "
              f"{'yes' if report['meets_timing'] else 'no'} |")
    inference, training = (reports[k]["utilization"] for k in ("inference", "training"))
    print("learning adds: " + ", ".join(
        f"{r} +{training[r]['used'] - inference[r]['used']:,} "
        f"({(training[r]['used'] - inference[r]['used']) / max(1, inference[r]['used']):.0%})"
        for r in RESOURCES if r in training and r in inference))


if __name__ == "__main__":
    main()
