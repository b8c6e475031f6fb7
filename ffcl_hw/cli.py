"""The ``ffcl-hw`` command: train, evaluate, compare, quantize, export-verilog, sim, synth,
run, bench, demo, regress.

Library code raises; this module is the only one that prints. Bad input (an unknown data
set or algorithm, a malformed size, a missing or malformed model, an existing run) ends
with status 2 and a message naming the bad value and what would be accepted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ffcl_hw.flows.bench import bench_run
from ffcl_hw.flows.board_run import BOARD_FILE, board_run
from ffcl_hw.flows.board_train import BOARD_TRAIN_FILE, board_read, board_train
from ffcl_hw.flows.compare import compare, markdown_table
from ffcl_hw.flows.evaluate import evaluate_run
from ffcl_hw.flows.export import export_verilog
from ffcl_hw.flows.floorplan import FLOORPLAN_MIN_LANES
from ffcl_hw.flows.quantize import INT_MODEL_FILE, quantize_run
from ffcl_hw.flows.simulate import SIMULATORS, simulate_run
from ffcl_hw.flows.synth import MULTIPLIERS, find_reports, synth_run, synthesis_table
from ffcl_hw.flows.synth_training import synth_training_run
from ffcl_hw.flows.train import train_run
from ffcl_hw.flows.train_int import (
    init_from_run,
    seed_model,
    train_float_sgd_run,
    train_int_run,
)
from ffcl_hw.flows.train_sim import (
    FULL_CHECK_SAMPLES,
    LONG_RUN_CHECK_EVERY,
    TRAIN_SIM_FILE,
    train_sim_run,
)
from ffcl_hw.presets import int_preset_for, preset_for
from ffcl_hw.progress import EpochBar
from ffcl_hw.runs import RunError
from golden.config import ALGORITHMS, ConfigError, ModelConfig, TrainConfig
from golden.datasets import DatasetError, load_dataset, parse_dataset_spec
from golden.inttrain import TrainRule, default_lr_shift, default_lr_steps
from golden.modelio import ModelFileError
from rtl.board import BOARDS
from rtl.core import WEIGHT_MEMORIES

__all__ = ["main"]

BOARD_NAMES = tuple(BOARDS)

#: Training samples the demo's simulated training core learns from (its fixed budget),
#: and the simulator it runs in.
DEMO_TRAIN_SAMPLES = 100
DEMO_TRAIN_SIMULATOR = "verilator"

#: Timed seconds per host C build and for NumPy in `bench` (its --cpu-seconds default).
BENCH_CPU_SECONDS = 2.0

#: How `sim --train` names each small-part option of a board's training core that its
#: report says is on (ffcl_hw.flows.synth_training.training_core; docs/training-engine.md).
_SMALL_PART_PHRASES = (
    ("compact_lanes", ", compact update lanes"),
    ("lean_signal", ", the lean learning signal"),
    ("compact_signal", " (compact)"),
    ("lean_forward", ", the lean forward datapath"),
    ("serial_weight_pass", ", one W/V update lane"),
    ("shared_word_network", ", one network for the word generators"),
    ("shared_update_lane", ", the b/U lane a W lane"),
    ("stored_norms", ", one norm unit, the norms kept"),
    ("tag_memory", ", the sweep tags in block RAM"),
    ("score_port", ", the scores read through the argmax"),
    ("held_addresses", ", the W/V write addresses held a word"),
    ("late_replay", ", kappa from the replay"),
    ("c_memory", ", the lane's stored values in block RAM"),
    ("late_rounding", ", its rounding a cycle late"),
    ("kappa_ring", ", the b/U kappa in a ring"),
)

#: Errors that mean "the input was wrong": reported without a traceback, status 2.
_USER_ERRORS = (DatasetError, ConfigError, ModelFileError, RunError)

#: What :func:`_build_parser` adds a sub-command to (``parser.add_subparsers()``).
_Subparsers = argparse._SubParsersAction


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = ()
    if not widths or any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(
            f"invalid layer widths {text!r}: give positive integers separated by commas, "
            "e.g. 64,64"
        )
    return widths


def _integer_in(low: int, high: int | None, what: str) -> Callable[[str], int]:
    """An argparse type for an integer in ``low..high`` (``high`` None: no upper bound),
    named ``what`` in errors."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return parse


_positive = _integer_in(1, None, "a positive integer")
_non_negative = _integer_in(0, None, "a non-negative integer")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    # float() takes "inf" and "nan"; a learning rate of infinity trains a model of NaNs.
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite positive number")
    return value


def _bits(low: int, high: int) -> Callable[[str], int]:
    """An argparse type for a width in ``low..high`` (IntFormat's accepted range)."""
    return _integer_in(low, high, f"a width in {low}..{high} bits")


def _dataset(text: str) -> str:
    try:
        return parse_dataset_spec(text)
    except DatasetError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_data_options(parser: argparse.ArgumentParser, *, default: str | None) -> None:
    parser.add_argument("--dataset", type=_dataset, default=default,
                        help="digits (built in), mnist, fashion-mnist, or idx:DIR "
                             "(a directory of standard IDX files)"
                             + (f"; default {default}" if default else ""))
    parser.add_argument("--resize", type=_positive, metavar="N",
                        help="downsample images to N x N (e.g. 14 for MNIST)")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hidden", type=_hidden, metavar="N1,N2,...",
                        help="hidden layer widths (default: 64,64 on digits, 256,256 else)")
    parser.add_argument("--epochs", type=_positive)
    parser.add_argument("--batch-size", type=_positive)
    parser.add_argument("--lr", type=_positive_float, help="peak learning rate")
    parser.add_argument("--theta", type=_positive_float,
                        help="threshold per neuron (layer threshold theta * N_l)")
    parser.add_argument("--seed", type=_non_negative, default=0)
    parser.add_argument("--negatives", choices=("random", "hard"), default="random")
    parser.add_argument("--schedule", choices=("simultaneous", "layerwise"),
                        default="simultaneous")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--scoring", choices=("skip-first", "all"), default="skip-first",
                        help="FFL: score with all layers but the first (Hinton) or all")
    parser.add_argument("--loops", type=_positive, metavar="T",
                        help="FFCL iterations (default 3)")
    parser.add_argument("--topology", choices=("adjacent", "top"), default="adjacent",
                        help="FFCL feedback: from the layer above, or from the top to layer 1")
    parser.add_argument("--feedback", choices=("state", "goodness"), default="state",
                        help="FFCL: feedback into the forwarded state, or only into goodness "
                             "(T = 2)")
    parser.add_argument("--readout", choices=("sum", "last"), default="sum",
                        help="FFCL: goodness summed over iterations, or the last only")
    parser.add_argument("--loss-iterations", choices=("all", "last"), default="all",
                        help="FFCL: train on every iteration's loss, or the last only")


def _lr_steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(part) for part in text.split(",")) if text else ()
    except ValueError:
        steps = (-1,)
    if any(step < 0 for step in steps):
        raise argparse.ArgumentTypeError(
            f"invalid epochs {text!r}: give 0-based epoch numbers separated by commas, e.g. 8,12")
    return steps


def _add_int_train_options(parser: argparse.ArgumentParser) -> None:
    """``train --arith int``: the on-chip learning rule (docs/integer-training.md)."""
    group = parser.add_argument_group("integer training (--arith int)")
    group.add_argument("--arith", choices=("float", "int", "float-sgd"), default="float",
                       help="float: Adam/SGD in NumPy (default); int: the on-chip rule; "
                            "float-sgd: the rule's float twin (batch 1, same schedule)")
    group.add_argument("--init", type=Path, metavar="RUN",
                       help="start from RUN/model.int.npz (its configuration) instead of "
                            "seeded weights")
    group.add_argument("--lr-shift", type=_non_negative, metavar="L",
                       help="learning rate 2^-L (default: 3 + floor(log2(mean squared "
                            "image norm)): 6 on digits, 7 on MNIST 14x14, 9 on MNIST)")
    group.add_argument("--lr-steps", type=_lr_steps, metavar="E1,E2,...",
                       help="0-based epochs where L grows by one (default: half and three "
                            "quarters of the epochs, none at epoch 0; '' for none)")
    group.add_argument("--store-bits", type=_bits(2, 24), default=16, metavar="B",
                       help="width of a stored weight (default 16)")
    group.add_argument("--weight-bits", type=_bits(2, 16), default=8, metavar="B",
                       help="forward weight width: the top bits of the stored ones (default 8)")
    group.add_argument("--state-bits", type=_bits(4, 24), default=16, metavar="B",
                       help="state width (default 16)")
    group.add_argument("--frac-bits", type=int, metavar="S",
                       help="fractional bits of states, biases and U (default: from the "
                            "initial label weights)")
    group.add_argument("--upper-lr-boost", type=_non_negative, default=0, metavar="B",
                       help="layers 2..L learn with 2^-(L - B) (default 0)")
    group.add_argument("--rounding", choices=("stochastic", "nearest"), default="stochastic")
    group.add_argument("--sigmoid", choices=("table", "piecewise"), default="table")


def _multipliers_option(parser: argparse.ArgumentParser, when: str = "") -> None:
    parser.add_argument("--multipliers", choices=MULTIPLIERS, default="dedicated",
                        help="shared: the scaler and the squares borrow the MAC lanes' "
                             "multipliers, as synthesized for iCE40 (default dedicated"
                             + (f"; {when}" if when else "") + ")")


def _add_train_parser(sub: _Subparsers) -> None:
    """``ffcl-hw train``: a float or integer model trained into a new run."""
    p = sub.add_parser("train", help="train a model and write RUN/model.npz and metrics.json")
    _add_data_options(p, default="digits")
    p.add_argument("--algo", choices=ALGORITHMS, default="ffcl")
    _add_model_options(p)
    _add_int_train_options(p)
    p.add_argument("--out", type=Path, required=True, metavar="RUN")
    p.add_argument("--force", action="store_true", help="replace an existing RUN")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_evaluate_parser(sub: _Subparsers) -> None:
    """``ffcl-hw evaluate``: a trained run's test accuracy."""
    p = sub.add_parser("evaluate", help="test accuracy of a trained run")
    p.add_argument("run", type=Path, metavar="RUN")
    _add_data_options(p, default=None)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_compare_parser(sub: _Subparsers) -> None:
    """``ffcl-hw compare``: FFL, FFDL and FFCL trained with the same budget."""
    p = sub.add_parser("compare", help="train FFL, FFDL and FFCL with the same budget")
    _add_data_options(p, default="digits")
    _add_model_options(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--force", action="store_true", help="replace an existing DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--with-int", action="store_true",
                   help="also train FFDL and FFCL with the on-chip integer rule "
                        "(train --arith int defaults) into DIR/ALGO-int")


def _add_quantize_parser(sub: _Subparsers) -> None:
    """``ffcl-hw quantize``: a trained run's integer model."""
    p = sub.add_parser("quantize", help="integer model of a trained run: write "
                       "RUN/model.int.npz, add integer accuracy to metrics.json")
    p.add_argument("run", type=Path, metavar="RUN")
    p.add_argument("--weight-bits", type=_bits(2, 16), default=8, metavar="B",
                   help="width of W, U and V entries (default 8)")
    p.add_argument("--state-bits", type=_bits(4, 24), default=16, metavar="B",
                   help="width of pre-activations and biases (default 16)")
    p.add_argument("--calibration", type=_positive, default=1000, metavar="N",
                   help="training images that set the pre-activation range (default 1000)")


def _add_export_verilog_parser(sub: _Subparsers) -> None:
    """``ffcl-hw export-verilog``: the core's Verilog and port description."""
    p = sub.add_parser("export-verilog", help="write the core's Verilog and a JSON "
                       "description of its ports and parameters")
    p.add_argument("run", type=Path, metavar="RUN")
    p.add_argument("--lanes", type=_positive, default=8, metavar="P",
                   help="MAC lanes (8 for iCE40 UP5K; default 8)")
    p.add_argument("--label-lanes", type=_positive, metavar="G",
                   help="labels the goodness datapath scans per cycle (default: all)")
    _multipliers_option(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR")


def _add_sim_parser(sub: _Subparsers) -> None:
    """``ffcl-hw sim``: the core (or its netlist, or its training core) simulated
    against the golden integer model."""
    p = sub.add_parser("sim", help="simulate the core on test images against the golden "
                       "integer model; write RUN/sim.json")
    p.add_argument("run", type=Path, metavar="RUN")
    p.add_argument("--simulator", choices=SIMULATORS,
                   help="verilator (default) and icarus run the exported Verilog under "
                        "cocotb; amaranth runs the design in Amaranth's own simulator")
    p.add_argument("--netlist", choices=BOARD_NAMES, metavar="BOARD",
                   help="instead: synthesise the board's design as `synth` does and "
                        "simulate its gate-level netlist with the vendor cell models under "
                        "cocotb + Icarus, loading loadable weights over the host link "
                        f"({', '.join(BOARD_NAMES)}). With --train: the training build's "
                        "netlist (icebreaker: SPRAM loaded over the link first; it does not "
                        "place on the UP5K, no bitstream), trained over the link and read "
                        "back after the last sample")
    p.add_argument("--samples", type=_positive, default=20, metavar="N")
    p.add_argument("--lanes", type=_positive, metavar="P",
                   help="MAC lanes (default 8; with --netlist the board's choice)")
    p.add_argument("--label-lanes", type=_positive, metavar="G",
                   help="labels the goodness datapath scans per cycle (default: all; with "
                        "--netlist the board's choice)")
    p.add_argument("--multipliers", choices=MULTIPLIERS,
                   help="shared: the scaler and the squares borrow the MAC lanes' "
                        "multipliers, as synthesized for iCE40 (default dedicated; with "
                        "--netlist the board's choice). With --train: where the update lanes "
                        "multiply, shared (default: the MAC lanes') or dedicated")
    p.add_argument("--weights", choices=WEIGHT_MEMORIES,
                   help="with --netlist: where the weights live (default: the board's "
                        "choice, spram on icebreaker). With --train: loadable (block RAM, "
                        "default) or spram (loaded through the core's load port first; "
                        "lanes x stored bits <= 64, and <= 32 keeps the word in two SPRAM "
                        "banks: the update passes read a word every cycle, not every other)")
    p.add_argument("--waves", type=Path, metavar="FILE",
                   help="write a waveform: FST for verilator and icarus, VCD for amaranth")
    p.add_argument("--board", choices=BOARD_NAMES,
                   help="with --train, instead of --weights: the training core that "
                        "`synth --train --board BOARD` builds (on icebreaker: SPRAM, one "
                        "b/U lane, every multiplier a MAC lane's, min(K, P) label weights "
                        "a word); --lanes default: that build's choice")
    p.add_argument("--train", action="store_true",
                   help="instead: train the simulated training core on the first N training "
                        "samples (epoch 0's order) from RUN/model.int.npz, every stored "
                        "weight checked against the golden trainer; write RUN/train_sim.json")
    p.add_argument("--check-every", type=_positive, metavar="K",
                   help="with --train: compare every stored word after every K-th sample and "
                        f"the last (default: every sample up to {FULL_CHECK_SAMPLES} samples, "
                        f"else every {LONG_RUN_CHECK_EVERY})")
    p.add_argument("--lr-shift", type=int, metavar="L",
                   help="with --train: lambda (learning rate 2^-L) of every sample, within "
                        "the rule's first to last epoch's (default: the last epoch's, to "
                        "continue a trained model at the rate it converged at)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_synth_parser(sub: _Subparsers) -> None:
    """``ffcl-hw synth``: the core with its host link synthesized for a board."""
    p = sub.add_parser("synth", help="synthesize the core with its UART host link for a "
                       "board; write RUN/synth/BOARD/report.json and the bitstream")
    p.add_argument("run", type=Path, metavar="RUN")
    p.add_argument("--board", choices=BOARD_NAMES, required=True)
    p.add_argument("--freq", type=_positive_float, metavar="MHZ",
                   help="target clock (default: the board's)")
    p.add_argument("--seed", type=_non_negative, default=1,
                   help="first nextpnr placement seed (default 1)")
    p.add_argument("--seeds", type=_positive, metavar="N",
                   help="placement seeds to try, from --seed on; the fastest is kept "
                        "(default: 4 on iCE40, 2 on ECP5, 1 with --train)")
    p.add_argument("--workers", type=_positive, default=2, metavar="N",
                   help="local worker processes for the seeds (default 2)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the placements on the Dask cluster at ADDRESS "
                        "(tcp://host:8786; its workers must see RUN at the same path; "
                        "needs pip install \"ffcl-hw[dask]\")")
    p.add_argument("--train", action="store_true",
                   help="build the training core (FFDL or FFCL runs: the model and rule "
                        "sim --train uses) into RUN/synth/BOARD-train; the fit check counts "
                        "its training engine")
    p.add_argument("--lanes", type=_positive, metavar="P",
                   help="MAC lanes (default: the fewest cycles per inference that fit "
                        "the board's multipliers and RAM; with --train 8, capped at the "
                        "widest layer, or else the first of 9..16, then 7..1, that fits)")
    p.add_argument("--label-lanes", type=_positive, metavar="G",
                   help="labels scanned per cycle (default: chosen with the lanes)")
    p.add_argument("--weights", choices=WEIGHT_MEMORIES,
                   help="where the weights live (default: spram on icebreaker, loaded over "
                        "the host link before classifying; rom elsewhere)")
    p.add_argument("--multipliers", choices=MULTIPLIERS,
                   help="shared: the scaler and the squares borrow the MAC lanes' "
                        "multipliers (default on iCE40: 8 lanes fit the UP5K's 8 DSPs; the "
                        "sweep no longer overlaps the next pass); dedicated: their own "
                        "(default on ECP5). With --train: where the update lanes multiply, "
                        "shared (default: the MAC lanes', idle while the weights update) "
                        "or dedicated")
    p.add_argument("--banks", type=int, choices=(1, 2), default=1,
                   help="2 (with --weights loadable): two copies of the model memories, so "
                        "a failed load over the host link keeps the model in use")
    p.add_argument("--floorplan", choices=("auto", "on", "off"), default="auto",
                   help="on ECP5, pin the MAC lanes and their weight block RAMs side by side "
                        f"(auto: for {FLOORPLAN_MIN_LANES} lanes or more)")


def _add_synth_table_parser(sub: _Subparsers) -> None:
    """``ffcl-hw synth-table``: a Markdown table of synthesis reports."""
    p = sub.add_parser("synth-table", help="a Markdown table of every synthesis report's "
                       "Fmax and utilisation")
    p.add_argument("paths", type=Path, nargs="+", metavar="RUN|REPORT",
                   help="run folders (all of RUN/synth/*/report.json) or report.json files")
    p.add_argument("--out", type=Path, metavar="FILE", help="write the page here (default: "
                   "print it)")


def _add_run_parser(sub: _Subparsers) -> None:
    """``ffcl-hw run``: a board classifying, training or read over its host link."""
    p = sub.add_parser("run", help="classify test images on a board over its UART host link "
                       "and check them against the golden integer model; write RUN/board.json "
                       "(--train: train a training bitstream; --read: save its model)")
    p.add_argument("run", type=Path, metavar="RUN")
    p.add_argument("--port", required=True, metavar="PORT",
                   help="serial port (/dev/ttyUSB1, COM3) or a pyserial URL (socket://host:port)")
    p.add_argument("--samples", type=_positive, default=100, metavar="N",
                   help="test images to classify (default 100)")
    p.add_argument("--baud", type=_positive, default=115_200,
                   help="the link's rate, as the bitstream was built (default 115200)")
    p.add_argument("--load", action="store_true",
                   help="load the run's weights over the link first (boards whose weight "
                        "memories start empty, e.g. iCE40 SPRAM)")
    p.add_argument("--timeout", type=_positive_float, default=2.0, metavar="S",
                   help="seconds to wait for each byte of a reply (default 2)")
    p.add_argument("--train", action="store_true",
                   help="instead of classifying: train the board (a training bitstream) on "
                        "RUN's training set in train_int's order and lambda schedule, check "
                        "it against the golden trainer; write RUN/board_train.json")
    p.add_argument("--epochs", type=_integer_in(1, None, "a positive number of epochs"),
                   metavar="N", help="with --train: epochs (default 1)")
    p.add_argument("--read", action="store_true",
                   help="save the model the board holds (after --train, if given) as an "
                        "integer run")
    p.add_argument("--out", type=Path, metavar="NEW",
                   help="with --read: the new run folder (default RUN-board beside RUN)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_bench_parser(sub: _Subparsers) -> None:
    """``ffcl-hw bench``: accelerator cycles against host C, NumPy and RV32IM."""
    p = sub.add_parser("bench", help="accelerator cycles per inference and per training "
                       "sample against host C, NumPy and RV32IM; write RUN/bench.json, "
                       "RUN/bench.md, RUN/bench/*.png")
    p.add_argument("run", type=Path, metavar="RUN")
    p.add_argument("--board", choices=BOARD_NAMES,
                   help="latency at the Fmax of RUN/synth/BOARD/report.json (and that "
                        "build's lane counts)")
    p.add_argument("--samples", type=_positive, default=20, metavar="N",
                   help="test images through the RTL in Verilator (default 20)")
    p.add_argument("--cpu-samples", type=_positive, default=50, metavar="N",
                   help="test images the host C and NumPy timings use, and training "
                        "samples the host's training step is timed on (default 50)")
    p.add_argument("--rv32im-samples", type=_positive, default=3, metavar="N",
                   help="test images run in the RV32IM simulator, and training samples "
                        "trained there (default 3)")
    p.add_argument("--cpu-seconds", type=_positive_float, default=BENCH_CPU_SECONDS,
                   metavar="S", help="timed seconds per host C build and for NumPy "
                                     f"(default {BENCH_CPU_SECONDS:g})")
    p.add_argument("--lanes", type=_positive, default=8, metavar="P")
    p.add_argument("--label-lanes", type=_positive, metavar="G",
                   help="labels scanned per cycle (default: all)")
    _multipliers_option(p, "without --board (a board's build says)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_regress_parser(sub: _Subparsers) -> None:
    """``ffcl-hw regress``: random core configurations against the golden model."""
    p = sub.add_parser("regress", help="random regression: random core configurations "
                       "under Verilator, every inference against the golden integer model")
    p.add_argument("--seed", type=_non_negative, default=1, metavar="S",
                   help="names the regression: case I of seed S is always the same "
                        "(default 1)")
    p.add_argument("--configs", type=_positive, default=50, metavar="N",
                   help="run cases 0..N-1 (default 50)")
    p.add_argument("--inferences", type=_positive, default=200, metavar="M",
                   help="images per case (default 200)")
    p.add_argument("--only", type=_non_negative, metavar="I",
                   help="run case I alone (to replay a failure)")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="the summary JSON, rewritten after every case (default "
                        "build/regression/seed-S.json)")
    p.add_argument("--keep", action="store_true",
                   help="keep every build folder (default: only those of failed cases)")


def _add_demo_parser(sub: _Subparsers) -> None:
    """``ffcl-hw demo``: the main job on the built-in digits data."""
    p = sub.add_parser("demo", help="the main job on the built-in digits data")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="RUN",
                   help="where the demo run goes (replaced on every demo); default runs/demo")
    p.add_argument("--samples", type=_positive, default=20, metavar="N",
                   help="test images to simulate on the core (default 20)")
    p.add_argument("--train-samples", type=_non_negative, default=DEMO_TRAIN_SAMPLES,
                   metavar="N", help="training samples the simulated training core learns "
                   f"from in the last step (default {DEMO_TRAIN_SAMPLES}; 0 leaves it out)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


#: What adds each sub-command's parser, in the order ``ffcl-hw --help`` lists them.
_COMMAND_PARSERS: tuple[Callable[[_Subparsers], None], ...] = (
    _add_train_parser,
    _add_evaluate_parser,
    _add_compare_parser,
    _add_quantize_parser,
    _add_export_verilog_parser,
    _add_sim_parser,
    _add_synth_parser,
    _add_synth_table_parser,
    _add_run_parser,
    _add_bench_parser,
    _add_regress_parser,
    _add_demo_parser,
)


def _build_parser() -> argparse.ArgumentParser:
    """The ``ffcl-hw`` parser: one sub-parser per command (:data:`_COMMAND_PARSERS`)."""
    parser = argparse.ArgumentParser(
        prog="ffcl-hw",
        description="Forward-Forward (FFL, FFDL, FFCL) golden model and FPGA accelerator.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in _COMMAND_PARSERS:
        add_parser(sub)
    return parser


def _configs(args: argparse.Namespace, dataset, algo: str) -> tuple[ModelConfig, TrainConfig]:
    """Model and training configuration of ``algo``: the preset, then the options."""
    preset = preset_for(args.dataset, algo)
    if args.loops is not None and algo != "ffcl" and args.command == "train":
        raise ConfigError(f"--loops is FFCL's loop count; {algo.upper()} runs one pass "
                          "(use --algo ffcl)")
    loops = (args.loops or preset.loops) if algo == "ffcl" else 1
    config = ModelConfig(
        algo=algo, input_size=dataset.input_size, num_classes=dataset.num_classes,
        hidden=args.hidden or preset.hidden, loops=loops, topology=args.topology,
        feedback=args.feedback, readout=args.readout, scoring=args.scoring,
        theta=args.theta or preset.theta,
    )
    train_config = TrainConfig(
        epochs=args.epochs or preset.epochs, batch_size=args.batch_size or preset.batch_size,
        lr=args.lr or preset.lr, seed=args.seed, negatives=args.negatives,
        schedule=args.schedule, loss_iterations=args.loss_iterations,
        optimizer=args.optimizer,
    )
    return config, train_config


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def _print_summary(metrics: dict, out: Path) -> None:
    layers = ", ".join(_percent(a) for a in metrics["per_layer_test_accuracy"])
    print(f"{metrics['algo'].upper()} on {metrics['dataset']}, hidden "
          f"{'x'.join(map(str, metrics['hidden']))}"
          + (f", T={metrics['loops']}" if metrics["algo"] == "ffcl" else ""))
    print(f"  test accuracy      {_percent(metrics['test_accuracy'])}  (per layer: {layers})")
    print(f"  MACs per inference {metrics['macs_per_inference']:,}  "
          f"(+ {metrics['cost_per_inference']['scan_steps']:,} label-scan steps)")
    print(f"  training time      {metrics['train_seconds']:.1f} s")
    print(f"  written            {out / 'model.npz'}, {out / 'metrics.json'}")


def _train(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, resize=args.resize)
    if args.arith in ("int", "float-sgd"):
        return _train_int(args, dataset)
    if args.init is not None:
        raise ConfigError("--init continues an integer model: use it with --arith int")
    config, train_config = _configs(args, dataset, args.algo)
    run = train_run(dataset, config, train_config, args.out, resize=args.resize,
                    force=args.force, callback=EpochBar(args.algo.upper(), quiet=args.quiet))
    _print_summary(run.metrics, args.out)
    return 0


def _train_int(args: argparse.Namespace, dataset) -> int:
    preset = int_preset_for(args.dataset)
    if args.arith == "float-sgd" and args.init is not None:
        raise ConfigError("--init continues an integer model: use it with --arith int")
    if args.init is not None:
        model = init_from_run(args.init, dataset)
        config = model.config
    else:
        config, _ = _configs(args, dataset, args.algo)
        if args.arith == "float-sgd" and config.algo == "ffl":
            raise ConfigError("--arith float-sgd is the integer rule's twin: FFDL and FFCL only")
        model = None if args.arith == "float-sgd" else seed_model(
            dataset, config, resize=args.resize, seed=args.seed, weight_bits=args.weight_bits,
            state_bits=args.state_bits, frac_bits=args.frac_bits)
    epochs = args.epochs or preset.epochs
    steps = args.lr_steps if args.lr_steps is not None else default_lr_steps(epochs)
    try:
        rule = TrainRule(epochs=epochs, lr_shift=default_lr_shift(dataset.x_train)
                         if args.lr_shift is None else args.lr_shift, lr_steps=steps,
                         store_bits=args.store_bits,
                         rounding=args.rounding, sigmoid=args.sigmoid,
                         loss_iterations=args.loss_iterations, seed=args.seed,
                         upper_lr_boost=args.upper_lr_boost)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if model is None:
        m = train_float_sgd_run(dataset, config, rule, args.out, resize=args.resize,
                                force=args.force)
        print(f"{config.algo.upper()} on {m['dataset']}: float per-sample SGD with the "
              f"integer rule's schedule: test accuracy {_percent(m['test_accuracy'])} "
              f"({m['train_seconds']:.1f} s); written {args.out / 'model.npz'}, "
              f"{args.out / 'metrics.json'}")
        return 0
    run = train_int_run(dataset, model, rule, args.out, resize=args.resize, init=args.init,
                        force=args.force,
                        callback=EpochBar(config.algo.upper() + " int", quiet=args.quiet))
    m = run.metrics
    print(f"{config.algo.upper()} on {m['dataset']}, hidden "
          f"{'x'.join(map(str, config.hidden))}"
          + (f", T={config.loops}" if config.algo == "ffcl" else "")
          + ", integer training (docs/integer-training.md)"
          + (f" from {args.init}" if args.init else ""))
    layers = ", ".join(_percent(a) for a in m["int_per_layer_test_accuracy"])
    print(f"  int test accuracy  {_percent(m['int_test_accuracy'])}  (per layer: {layers}; "
          f"before training {_percent(m['initial_int_test_accuracy'])})")
    print(f"  rule               lr 2^-{rule.lr_shift} (steps at epochs "
          f"{', '.join(map(str, rule.lr_steps)) or 'none'}), {rule.store_bits}-bit stored / "
          f"{model.fmt.weight_bits}-bit forward weights, {rule.rounding} rounding, "
          f"{rule.sigmoid} sigmoid")
    print(f"  training time      {m['train_seconds']:.1f} s")
    print(f"  written            {args.out / 'model.int.npz'}, {args.out / 'model.npz'}, "
          f"{args.out / 'metrics.json'}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run, dataset=args.dataset, resize=args.resize)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        layers = ", ".join(_percent(a) for a in result["per_layer_test_accuracy"])
        print(f"{result['algo'].upper()} on {result['dataset']} ({result['test_samples']} test "
              f"images): {_percent(result['test_accuracy'])} (per layer: {layers})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, resize=args.resize)
    # Validate every configuration before the first minute of training.
    for algo in ALGORITHMS:
        _configs(args, dataset, algo)

    def int_run(algo: str, folder: Path) -> dict:
        config, _ = _configs(args, dataset, algo)
        preset = int_preset_for(args.dataset)
        model = seed_model(dataset, config, resize=args.resize, seed=args.seed, weight_bits=8,
                           state_bits=16, frac_bits=None)
        rule = TrainRule(epochs=preset.epochs, lr_shift=default_lr_shift(dataset.x_train),
                         lr_steps=default_lr_steps(preset.epochs), seed=args.seed)
        return train_int_run(dataset, model, rule, folder, resize=args.resize,
                             callback=EpochBar(algo.upper() + " int", quiet=args.quiet)).metrics

    report = compare(dataset, lambda algo: _configs(args, dataset, algo), args.out,
                     resize=args.resize, force=args.force,
                     progress=lambda algo: EpochBar(algo.upper(), quiet=args.quiet),
                     int_runs=int_run if args.with_int else None)
    print(markdown_table(report), end="")
    print(f"\nwritten {args.out / 'compare.json'}")
    return 0


def _quantize(args: argparse.Namespace) -> int:
    m = quantize_run(args.run, weight_bits=args.weight_bits, state_bits=args.state_bits,
                     calibration=args.calibration)
    f = m["int_format"]
    layers = ", ".join(_percent(a) for a in m["int_per_layer_test_accuracy"])
    print(f"{args.run / 'model.npz'} quantized, calibrated on {args.calibration} training "
          "images; test split:")
    print(f"  float test accuracy {_percent(m['float_test_accuracy'])}")
    print(f"  int test accuracy   {_percent(m['int_test_accuracy'])}  (per layer: {layers})")
    print(f"  formats   weights {f['weight_bits']} bits, state {f['state_bits']} bits "
          f"(S = {f['frac_bits']} fractional), pixels 0..{f['input_max']}, rsqrt table "
          f"{f['rsqrt_index_bits']}-bit index x {f['rsqrt_frac_bits']} fractional bits")
    print(f"  widths    accumulator {f['acc_bits']}, sum of squares {f['sq_bits']}, "
          f"score {f['score_bits']} bits")
    print(f"  written   {args.run / INT_MODEL_FILE}, {args.run / 'metrics.json'}")
    return 0


def _export_verilog(args: argparse.Namespace) -> int:
    d = export_verilog(args.run, lanes=args.lanes, out=args.out, label_lanes=args.label_lanes,
                       shared=args.multipliers == "shared")
    print(f"{d['top']}: {d['parameters']['lanes']} MAC lanes, "
          f"{d['parameters']['label_lanes']} label lanes, {d['ops']} program operations")
    print(f"  cycles per inference {d['cycles_per_inference']:,} "
          f"(lane utilization {100 * d['lane_utilization']:.1f}% of the matrix phases)")
    print(f"  written {d['verilog']}, {args.out / (d['top'] + '.json')}")
    return 0


@contextlib.contextmanager
def _image_progress(args: argparse.Namespace, desc: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over ``args.samples`` images (none with ``--quiet``); yields the
    flows' ``progress`` callback."""
    if args.quiet:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=args.samples, desc=desc, unit="image", file=sys.stderr,
              disable=None) as bar:
        yield lambda done: bar.update(1)


def _sim_netlist(args: argparse.Namespace) -> dict:
    from ffcl_hw.flows.netlist import netlist_sim_run

    for option in ("simulator", "waves"):
        if getattr(args, option) is not None:
            raise RunError(f"--{option} does not go with --netlist (the netlist simulates "
                           f"under Icarus, without a waveform); leave out --{option}")
    with _image_progress(args, f"sim (netlist-{args.netlist})") as progress:
        report = netlist_sim_run(args.run, board=args.netlist, samples=args.samples,
                                 lanes=args.lanes, label_lanes=args.label_lanes,
                                 multipliers=args.multipliers, weights=args.weights,
                                 progress=progress)
    cells = ", ".join(f"{count} {cell}" for cell, count in report["netlist"]["cells"].items()
                      if count)
    load = (f"; weights loaded over the host link in {report['load_cycles']:,} cycles"
            if report["load_cycles"] is not None else "")
    print(f"gate-level simulation of the {args.netlist} netlist ({cells}), "
          f"{report['lanes']} lanes, {report['weights']} weights{load}")
    return report


def _sim_train_netlist(args: argparse.Namespace) -> int:
    """``sim --train --netlist BOARD``: a training bitstream's netlist learns at gate level
    (:func:`ffcl_hw.flows.netlist.netlist_train_run`)."""
    from ffcl_hw.flows.netlist import netlist_train_run

    for option, why in (("simulator", "the netlist simulates under Icarus"),
                        ("waves", "the netlist simulation writes no waveform"),
                        ("check_every", "the netlist is read back once, after the last "
                                        "sample: each read-back is thousands of link bytes"),
                        ("label_lanes", "the training core scans every label at once"),
                        ("board", "--netlist names the board")):
        if getattr(args, option) is not None:
            name = "--" + option.replace("_", "-")
            raise RunError(f"{name} does not go with --train --netlist ({why}); leave out "
                           f"{name}")
    # The board's training build decides where its weights live.
    kept = "spram" if BOARDS[args.netlist].spram_bits else "loadable"
    if args.weights not in (None, kept):
        where = "SPRAM" if kept == "spram" else "block RAM"
        raise RunError(f"--weights {args.weights} does not go with --train --netlist "
                       f"{args.netlist} (its training build keeps its weights in {where}); "
                       f"leave out --weights")
    with _image_progress(args, f"sim --train (netlist-{args.netlist})") as progress:
        r = netlist_train_run(args.run, board=args.netlist, samples=args.samples,
                              lanes=args.lanes, lr_shift=args.lr_shift,
                              multipliers=args.multipliers or "shared", progress=progress)
    cells = ", ".join(f"{count} {cell}" for cell, count in r["netlist"]["cells"].items()
                      if count)
    print(f"gate-level simulation of the {args.netlist} training netlist ({cells}), "
          f"{r['lanes']} lanes, {r['samples']} training samples from "
          f"{args.run / INT_MODEL_FILE} at lr 2^-{r['lr_shift']} ({r['rule_source']})")
    if r["placement"]:
        print(f"  {r['placement']}")
    if r["load_writes"] is not None:
        print(f"  loaded            {r['load_writes']:,} stored words over the link in "
              f"{r['load_cycles']:,} cycles")
    written = f"  written           {args.run / TRAIN_SIM_FILE}"
    if r["mismatch"]:
        print(f"  MISMATCH with the golden trainer after {r['samples_trained']} of "
              f"{r['samples']} samples: {r['mismatch']}", file=sys.stderr)
        print(written)
        return 1
    c = r["cycles_per_sample"]
    print("  bit-exact with the golden trainer: every record, and every stored word read "
          "back after the last sample")
    print(f"  test accuracy     {_percent(r['test_accuracy'])} (the golden trainer's model, "
          f"which the read-back equals; before {_percent(r['initial_test_accuracy'])})")
    print(f"  cycles/sample     {c['mean']:,.0f} (min {c['min']:,}, max {c['max']:,}; "
          f"formula {r['cycles_formula']:,})")
    print(f"  simulation        {r['sim_cycles']:,} cycles in {r['wall_seconds']:.0f} s, "
          f"after {r['synth_seconds']:.1f} s of synthesis and a {r['build_seconds']:.1f} s "
          f"build")
    print(written)
    return 0


def _sim_train(args: argparse.Namespace) -> int:
    """``sim --train``: the training core learns in simulation (:mod:`ffcl_hw.flows.train_sim`)."""
    if args.netlist is not None:
        return _sim_train_netlist(args)
    for option, why in (("label_lanes", "the training core scans every label at once"),
                        ("waves", "the training simulation writes no waveform")):
        if getattr(args, option) is not None:
            name = "--" + option.replace("_", "-")
            raise RunError(f"{name} does not go with --train ({why}); leave out {name}")
    if args.board is not None and args.weights is not None:
        raise RunError("--weights does not go with --board (the board's training build "
                       "decides where its weights live); leave out --weights or --board")
    if args.weights == "rom":
        raise RunError("--weights rom does not go with --train (the training core writes "
                       "its weights, a ROM cannot change); use --weights loadable (block "
                       "RAM, the default) or spram")
    simulator = args.simulator or "verilator"
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=args.samples, desc=f"sim --train ({simulator})", unit="sample",
                   file=sys.stderr, disable=None)

    def progress(done: int) -> None:
        bar.n = done
        bar.refresh()

    try:
        r = train_sim_run(args.run, simulator=simulator, samples=args.samples,
                          check_every=args.check_every, lanes=args.lanes,
                          lr_shift=args.lr_shift, multipliers=args.multipliers or "shared",
                          weights=args.weights or "loadable", board=args.board,
                          progress=None if bar is None else progress)
    finally:
        if bar is not None:
            bar.close()
    banks = " in two banks" if r["weight_banks"] == 2 else ""
    where = (f"SPRAM{banks} (loaded through the load port)" if r["weights"] == "spram"
             else "block RAM")
    update = ("one update lane, a word's weights in turn," if r["serial_weight_pass"]
              else "update lanes")
    print(f"{simulator} simulation of the training core, {r['lanes']} lanes ({update} on "
          f"{r['multipliers']} multipliers), weights in {where}, {r['samples']} training "
          f"samples from {args.run / INT_MODEL_FILE}")
    if r["board"] is not None:
        print(f"  as {r['board']}'s training build makes it: {r['label_lanes']} label weights "
              f"a word, {r['bias_label_lanes']} b/U lane"
              f"{'s' if r['bias_label_lanes'] != 1 else ''}, the forward pass on "
              f"{r['forward_multipliers']} multipliers, the learning signal on "
              f"{r['signal_multipliers']}, the update's input norms "
              f"{'from the forward pass' if r['input_norm'] == 'forward' else 'its own'}"
              + "".join(phrase for key, phrase in _SMALL_PART_PHRASES if r.get(key)))
    rule = r["rule"]
    low, high = r["lr_range"]
    print(f"  rule              {r['rule_source']}: lr 2^-{r['lr_shift']} (range 2^-{low}.."
          f"2^-{high}), "
          f"{rule['store_bits']}-bit stored weights, {rule['rounding']} rounding, "
          f"{rule['sigmoid']} sigmoid, seed {rule['seed']}")
    written = f"  written           {args.run / TRAIN_SIM_FILE}"
    if r["mismatch"]:
        trained = r["samples_trained"]
        print(f"  MISMATCH with the golden trainer after {trained} sample"
              f"{'s' if trained != 1 else ''}: {r['mismatch']}", file=sys.stderr)
        print(written)
        return 1
    c = r["cycles_per_sample"]
    every = ("after every sample" if r["check_every"] == 1
             else f"after every {r['check_every']} samples and the last")
    print(f"  bit-exact with the golden trainer: every stored word {every} "
          f"({r['checked_samples']} checks), every record")
    print(f"  test accuracy     {_percent(r['test_accuracy'])} trained by the simulated chip "
          f"(golden trainer {_percent(r['golden_test_accuracy'])}; before "
          f"{_percent(r['initial_test_accuracy'])})")
    print(f"  cycles/sample     {c['mean']:,.0f} (min {c['min']:,}, max {c['max']:,}; "
          f"formula {r['cycles_formula']:,})")
    if r.get("phase_cycles"):
        # The first sample's, from the phase output (the netlist's link has none).
        print(f"  cycles per phase  {_phases_text(r['phase_cycles'])} (the first sample)")
    print(f"  simulation        {r['wall_seconds']:.1f} s, {r['samples_per_second']:.3g} "
          f"samples/s (after a {r['build_seconds']:.1f} s build)")
    print(written)
    return 0


def _phases_text(phases: dict[str, int]) -> str:
    """A core's cycles per phase (``sim`` and ``sim --train`` reports), for the console."""
    return ", ".join(f"{name.replace('_', ' ')} {count:,}" for name, count in phases.items())


def _sim(args: argparse.Namespace) -> int:
    if args.train:
        return _sim_train(args)
    if args.board is not None:
        raise RunError("--board goes with --train only (the training core a board's build "
                       "makes); for a board's inference netlist use --netlist BOARD")
    for option in ("check_every", "lr_shift"):
        if getattr(args, option) is not None:
            name = "--" + option.replace("_", "-")
            raise RunError(f"{name} goes with --train only; add --train or leave it out")
    if args.netlist is not None:
        report = _sim_netlist(args)
    else:
        if args.weights is not None:
            raise RunError("--weights goes with --netlist BOARD or --train only (the "
                           "exported inference core holds its weights in block RAM)")
        simulator = args.simulator or "verilator"
        with _image_progress(args, f"sim ({simulator})") as progress:
            report = simulate_run(args.run, simulator=simulator, samples=args.samples,
                                  lanes=args.lanes or 8, label_lanes=args.label_lanes,
                                  shared=args.multipliers == "shared", waves=args.waves,
                                  progress=progress)
        print(f"{report['simulator']} simulation of the core, {report['lanes']} lanes, "
              f"{report['samples']} test images")
    if report["mismatches"]:
        print(f"  MISMATCH with the golden integer model: {report['mismatches']} samples; "
              f"first: {report['first_mismatch']}", file=sys.stderr)
        print(f"  written {args.run / 'sim.json'}")
        return 1
    c = report["cycles_per_inference"]
    print("  bit-exact with the golden integer model on every sample")
    print(f"  accuracy          {_percent(report['accuracy'])}")
    print(f"  cycles/inference  {c['mean']:,.0f} (min {c['min']:,}, max {c['max']:,}; "
          f"formula {report['cycles_formula']:,})")
    print(f"  lane utilization  {100 * report['lane_utilization']:.1f}% of the matrix phases "
          f"({report['macs_per_inference']:,} MACs)")
    if report["phase_cycles"] is not None:
        print(f"  cycles per phase  {_phases_text(report['phase_cycles'])}")
    if "sim_cycles" in report:
        # Gate level: the load and the UART frames take most of the cycles.
        print(f"  simulation        {report['sim_cycles']:,} cycles in "
              f"{report['simulation_seconds']:.0f} s, after {report['synth_seconds']:.1f} s "
              f"of synthesis and a {report['build_seconds']:.1f} s build")
    else:
        print(f"  simulation speed  {report['inferences_per_second']:.1f} inferences/s "
              f"(after a {report['build_seconds']:.1f} s build)")
    print(f"  written           {args.run / 'sim.json'}")
    return 0


def _synth_train(args: argparse.Namespace) -> int:
    """``synth --train``: the training bitstream (:mod:`ffcl_hw.flows.synth_training`)."""
    for option, given, why in (
            ("label-lanes", args.label_lanes is not None,
             "the training core scans every label at once"),
            ("weights", args.weights is not None,
             "the training core holds its weights in writable block RAM"),
            ("banks", args.banks != 1, "the training core has one bank"),
            ("floorplan", args.floorplan != "auto",
             "the floorplan pins the inference core's lanes; it is off for training")):
        if given:
            raise RunError(f"--{option} does not go with --train ({why}); leave out "
                           f"--{option}")
    r = synth_training_run(args.run, board=args.board, lanes=args.lanes, freq_mhz=args.freq,
                           seed=args.seed, seeds=args.seeds, workers=args.workers,
                           scheduler=args.scheduler, multipliers=args.multipliers or "shared")
    return _print_synth(args, r)


def _synth(args: argparse.Namespace) -> int:
    if args.train:
        return _synth_train(args)
    r = synth_run(args.run, board=args.board, freq_mhz=args.freq, seed=args.seed,
                  seeds=args.seeds, workers=args.workers, scheduler=args.scheduler,
                  lanes=args.lanes, label_lanes=args.label_lanes, weights=args.weights,
                  multipliers=args.multipliers, banks=args.banks,
                  floorplan={"auto": None, "on": True, "off": False}[args.floorplan])
    return _print_synth(args, r)


def _core_line(r: dict) -> str:
    """The ``core`` line of ``synth``'s summary: lanes, where the products are made,
    cycles per inference. A report's ``multipliers`` says where the scaler's and the
    squares' products are made; in a training build whose update lanes borrow the MAC
    lanes' multipliers (``training.multipliers`` shared) the line says so too, rather
    than call every multiplier of the core dedicated."""
    labels = f"{r['label_lanes']} label lane{'s' if r['label_lanes'] > 1 else ''}"
    lanes = f"{r['lanes']} MAC lanes"
    products = f"{r['multipliers']} multipliers"
    training = r.get("training")
    if training is not None:
        products = f"the scaler and squares on {r['multipliers']} multipliers"
        if training.get("multipliers", "dedicated") == "shared":
            lanes += " (the training engine's update lanes borrow their multipliers)"
    return f"{lanes}, {labels}, {products}, {r['cycles_per_inference']:,} cycles per inference"


def _print_synth(args: argparse.Namespace, r: dict) -> int:
    """What ``synth`` prints about a build's report (inference or training)."""
    if r["chosen"]["options"]:
        chosen = ", ".join(f"{k.replace('_', ' ')} {v}"
                           for k, v in r["chosen"]["options"].items())
        print(f"chosen for {r['board']}: {chosen} ({r['chosen']['why']})")
    verdict = "meets" if r["meets_timing"] else "does NOT meet"
    print(f"{r['board']} ({r['device']}): Fmax {r['fmax_mhz']:.1f} MHz at seed {r['seed']}, "
          f"{verdict} the {r['clock_mhz']:.2f} MHz clock")
    seeds = ", ".join(f"{s['seed']}: {s['fmax_mhz']:.1f}" for s in r["seeds"]
                      if s["fmax_mhz"] is not None)
    print(f"  seeds          {seeds} MHz (kept {r['seed']})")
    print(f"  core           {_core_line(r)}")
    for name, use in r["utilization"].items():
        print(f"  {name:14s} {use['used']:6,} / {use['available']:,}")
    if r["floorplan"]:
        print(f"  floorplan      {r['floorplan']['lanes']} lanes pinned beside their "
              f"{r['floorplan']['block_rams']} weight block RAMs")
    slow = r["critical_path"]
    if slow:
        print(f"  slowest path   {slow['from']} -> {slow['to']} ({slow['ns']:.1f} ns)")
    training = r.get("training")
    if training is not None:
        fit, rate = training["fit"], training["samples_per_second"]
        engine_mults = sum(fit["multipliers"].values())
        engine_blocks = sum(fit["block_rams"].values())
        inference = fit["inference_core"]
        print(f"  training       {training['cycles_per_sample']:,} cycles per sample"
              + (f", {rate:,.0f} samples/s at the Fmax" if rate else "")
              + f"; rule: {training['rule']['source']}, "
              f"{training['rule']['store_bits']}-bit stored weights; update lanes on "
              f"{training.get('multipliers', 'dedicated')} multipliers")
        print(f"  learning adds  {engine_mults} multipliers and {engine_blocks} block RAMs "
              f"for the engine (the fit check), to an inference-only core of "
              f"{inference['multipliers']} multipliers and {inference['block_rams']} block "
              f"RAMs ({inference['memory_bits']:,} model bits) with the same lanes")
    print(f"  bitstream      {r['bitstream']}")
    print(f"  written        {r['report']}")
    if r["weights"] == "spram" and training is None:
        print("  note           weights in SPRAM: load them over the host link before "
              f"classifying (ffcl-hw run {args.run} --port PORT --load)")
    return 0


def _synth_table(args: argparse.Namespace) -> int:
    command = "ffcl-hw synth-table " + " ".join(map(str, args.paths))
    if args.out is not None:
        command += f" --out {args.out}"
    page = synthesis_table(find_reports(args.paths), command=command)
    if args.out is None:
        print(page, end="")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    print(f"written {args.out}")
    return 0


def _run_training(args: argparse.Namespace) -> int:
    if args.load:
        raise RunError("--load goes without --train and --read: --train loads the run's "
                       "starting model itself into a training core whose weights are in "
                       "SPRAM, and a block RAM one starts from the model it was built with")
    kept: dict = {}
    status = 0
    if args.train:
        with contextlib.ExitStack() as stack:
            progress = None
            if not args.quiet:
                from tqdm import tqdm

                bar = stack.enter_context(tqdm(desc="train on board", unit="sample",
                                               file=sys.stderr, disable=None))
                progress = lambda done: bar.update(done - bar.n)  # noqa: E731
            r = board_train(args.run, port=args.port, epochs=args.epochs or 1, baud=args.baud,
                            timeout=args.timeout, progress=progress, keep=kept,
                            log=lambda line: print(line, file=sys.stderr))
        print(f"board on {r['port']}: trained {r['samples']} samples in {r['epochs']} epochs "
              f"(lambda {', '.join(map(str, r['lr_shifts']))})")
        if r["loaded"]:
            print(f"  starting model    loaded first: {r['loaded']} writes in "
                  f"{r['load_seconds']:.2f} s (its weights are in SPRAM)")
        if r["mismatches"] or not r["model_equal"]:
            print(f"  MISMATCH with the golden trainer: {r['mismatches']} records; "
                  f"first: {r['first_mismatch'] or r['first_difference']}", file=sys.stderr)
            status = 1
        else:
            c = r["cycles_per_sample"]
            print("  every record and every stored word equal the golden trainer's")
            formula = (f"; formula {r['cycles_formula']:,}" if r["cycles_formula"] is not None
                       else "")
            print(f"  cycles/sample     {c['mean']:,.0f} (min {c['min']:,}, max "
                  f"{c['max']:,}{formula})")
        print(f"  accuracy          {_percent(r['accuracy'])} (golden trainer "
              f"{_percent(r['golden_int_accuracy'])})")
        print(f"  over the link     {r['samples_per_second']:.1f} samples/s at {r['baud']} baud")
        print(f"  written           {args.run / BOARD_TRAIN_FILE}")
    if args.read:
        m = board_read(args.run, port=args.port, out=args.out, baud=args.baud,
                       timeout=args.timeout, kept=kept or None)
        out = args.out or args.run.parent / f"{args.run.name}-board"
        print(f"board's model ({m['samples_trained_on_board']} samples trained on it): test "
              f"accuracy {_percent(m['test_accuracy'])}; written {out / INT_MODEL_FILE}, "
              f"{out / 'model.npz'}, {out / 'metrics.json'}")
    return status


def _run(args: argparse.Namespace) -> int:
    if args.epochs is not None and not args.train:
        raise RunError("--epochs goes with --train")
    if args.out is not None and not args.read:
        raise RunError("--out goes with --read")
    if args.train or args.read:
        return _run_training(args)
    with _image_progress(args, "board") as progress:
        r = board_run(args.run, port=args.port, samples=args.samples, baud=args.baud,
                      load=args.load, timeout=args.timeout, progress=progress)
    d = r["device"]
    print(f"board on {r['port']}: {d['lanes']} MAC lanes, {d['label_lanes']} label lanes, "
          f"model hash 0x{d['model_hash']:08X}, {r['samples']} test images")
    if r["loaded"]:
        print(f"  weights loaded    in {r['load_seconds']:.2f} s (checksum "
              f"0x{d['weights_checksum']:08X})")
    if r["mismatches"]:
        print(f"  MISMATCH with the golden integer model: {r['mismatches']} samples; "
              f"first: {r['first_mismatch']}", file=sys.stderr)
        print(f"  agreement with the golden model {_percent(r['agreement'])}")
        print(f"  written {args.run / BOARD_FILE}")
        return 1
    c = r["cycles_per_inference"]
    print("  bit-exact with the golden integer model on every sample")
    print(f"  accuracy          {_percent(r['accuracy'])} (golden integer model "
          f"{_percent(r['golden_int_accuracy'])})")
    print(f"  cycles/inference  {c['mean']:,.0f} (min {c['min']:,}, max {c['max']:,}; "
          f"formula {r['cycles_formula']:,})")
    print(f"  over the link     {r['inferences_per_second']:.1f} inferences/s at "
          f"{r['baud']} baud")
    print(f"  written           {args.run / BOARD_FILE}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    with _image_progress(args, "bench: RTL in verilator") as progress:
        report = bench_run(args.run, board=args.board, samples=args.samples, lanes=args.lanes,
                           label_lanes=args.label_lanes,
                           shared=args.multipliers == "shared", cpu_samples=args.cpu_samples,
                           rv32im_samples=args.rv32im_samples, cpu_seconds=args.cpu_seconds,
                           progress=progress)
    print((args.run / "bench.md").read_text())
    print(f"written {args.run / 'bench.json'}, {args.run / 'bench.md'}, "
          + ", ".join(report["plots"]))
    return 0


def _demo(args: argparse.Namespace) -> int:
    print("ffcl-hw demo: FFCL on the built-in 8x8 digits: train, quantize, simulate the "
          "core's Verilog with cocotb, compare its cycles with CPUs, then train it with the "
          "on-chip integer rule, and let the simulated training core learn")
    # The integer-trained FFCL run; the simulated training core then continues it, as a
    # deployed model would be (at its last epoch's lambda: `sim --train`'s default).
    int_run = args.out.with_name(args.out.name + "-int")
    # The demo runs the same subcommands a user would, with every default.
    steps = [
        ["train", "--dataset", "digits", "--algo", "ffcl", "--out", str(args.out), "--force"]
        + (["--quiet"] if args.quiet else []),
        ["quantize", str(args.out)],
        ["sim", str(args.out), "--simulator", "verilator", "--samples", str(args.samples)]
        + (["--quiet"] if args.quiet else []),
        # The comparison users asked for: the same model on the accelerator and on CPUs.
        ["bench", str(args.out), "--samples", str(args.samples)]
        + (["--quiet"] if args.quiet else []),
        # Training as the chip would do it: the integer rule, sample by sample.
        ["train", "--arith", "int", "--dataset", "digits", "--algo", "ffcl", "--out",
         str(int_run), "--force"]
        + (["--quiet"] if args.quiet else []),
        # Training on the chip: the training core's Verilog in Verilator continues that
        # run for a fixed budget of samples, every stored weight checked against the
        # golden trainer.
        ["sim", str(int_run), "--train", "--simulator", DEMO_TRAIN_SIMULATOR, "--samples",
         str(args.train_samples)] + (["--quiet"] if args.quiet else []),
    ]
    if not args.train_samples:
        steps = steps[:-1]
    parser = _build_parser()
    for argv in steps:
        print(f"\n$ ffcl-hw {' '.join(argv)}")
        step = parser.parse_args(argv)
        status = _COMMANDS[step.command](step)
        if status:
            return status
    return 0


def _regress(args: argparse.Namespace) -> int:
    from sim.regression import run_regression
    from sim.tools import ToolMissing

    out = args.out or Path("build/regression") / f"seed-{args.seed}.json"
    if out.is_dir():
        raise RunError(f"--out {out} is a folder; name the summary file (e.g. {out}/seed.json)")
    scope = f"case {args.only}" if args.only is not None else f"cases 0..{args.configs - 1}"
    print(f"ffcl-hw regress: seed {args.seed}, {scope}, {args.inferences} inferences each, "
          "Verilator")

    def report(result) -> None:
        c = result.case
        network = (f"{c['algo']} {'x'.join(map(str, c['hidden']))} D={c['input_size']} "
                   f"K={c['num_classes']}" + (f" T={c['loops']} {c['topology']} {c['readout']}"
                                              if c["algo"] == "ffcl" else ""))
        core = (f"P={c['lanes']} G={c['label_lanes']} {c['multipliers']} {c['weights']}"
                + (" 2 banks" if c["banks"] == 2 else "") + (" +load" if c["load"] else ""))
        verdict = ("bit-exact" if result.passed
                   else f"FAILED ({result.mismatches} mismatches): {result.first_error}")
        print(f"  case {c['index']:3d}  {network:42s} {core:38s} {result.inferences} "
              f"inferences {verdict} (build {result.build_seconds:.0f} s, sim "
              f"{result.sim_seconds:.0f} s)", flush=True)

    try:
        summary = run_regression(args.seed, args.configs, args.inferences,
                                 Path("build/regression/builds"), only=args.only, out=out,
                                 keep=args.keep, progress=report)
    except ToolMissing as error:
        raise RunError(str(error)) from None
    totals = summary.to_json()
    print(f"  {totals['configs']} configurations, {totals['inferences']:,} inferences, "
          f"{totals['mismatches']} mismatches, {totals['wall_seconds']:.0f} s")
    print(f"  written {out}")
    for failed in totals["failed_configs"]:
        print(f"  replay: {failed['replay']}", file=sys.stderr)
    return 1 if totals["failed_configs"] else 0


_COMMANDS = {"train": _train, "evaluate": _evaluate, "compare": _compare,
             "quantize": _quantize, "export-verilog": _export_verilog, "sim": _sim,
             "synth": _synth, "synth-table": _synth_table, "run": _run, "bench": _bench,
             "regress": _regress, "demo": _demo}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    # A termination request (a timeout, a closed terminal) unwinds like Ctrl-C, so the
    # flows' cleanup runs: the tool is stopped and its staging folder is not left behind.
    previous = signal.signal(signal.SIGTERM, _terminated)
    # The flows' notes (a stale lock taken over) reach the user as the command's own.
    notes = logging.StreamHandler(sys.stderr)
    notes.setFormatter(logging.Formatter(f"ffcl-hw {args.command}: note: %(message)s"))
    logger = logging.getLogger("ffcl_hw")
    logger.addHandler(notes)
    try:
        return _COMMANDS[args.command](args)
    except _USER_ERRORS as error:
        print(f"ffcl-hw {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ffcl-hw {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    finally:
        logger.removeHandler(notes)
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
