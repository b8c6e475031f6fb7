"""``python -m ffcl_hw.cpu RUN``: the CPU baselines of one run, as JSON on stdout.

A stand-alone way to reproduce the CPU rows that ``ffcl-hw bench`` reports: host C at -O2
and -O3, the NumPy golden model and RV32IM, on the first test images of the run's data set.
A missing cross compiler gives an ``rv32im`` entry ``{"skipped": "<how to install it>"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ffcl_hw.cpu.host import measure_host_c
from ffcl_hw.cpu.numpy_ref import measure_numpy
from ffcl_hw.cpu.rv32im import measure_rv32im
from ffcl_hw.cpu.toolchain import CrossCompilerMissing
from golden.datasets import load_dataset
from golden.intmodelio import ModelFileError, load_int_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ffcl_hw.cpu", description=__doc__)
    parser.add_argument("run", type=Path, help="run folder holding model.int.npz")
    parser.add_argument("--images", type=int, default=100,
                        help="test images for the host C and NumPy rows (default 100)")
    parser.add_argument("--rv32-images", type=int, default=10,
                        help="test images simulated on RV32IM (default 10)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="timed seconds per host figure (default 2)")
    args = parser.parse_args(argv)
    for name in ("images", "rv32_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, "
                         f"not {getattr(args, name)}")
    try:
        saved = load_int_model(args.run / "model.int.npz")
    except ModelFileError as error:
        parser.exit(1, f"error: {error}\n")
    if "dataset" not in saved.data:
        parser.exit(1, f"error: {args.run / 'model.int.npz'} does not name its data set\n")
    model = saved.model
    data = load_dataset(saved.data["dataset"], resize=saved.data.get("resize"))
    x_q = model.quantize_input(data.x_test[:args.images])
    report = {
        "run": str(args.run),
        "host_c": {opt: measure_host_c(model, x_q, opt=opt, min_seconds=args.seconds)
                   for opt in ("-O2", "-O3")},
        "numpy": measure_numpy(model, x_q, min_seconds=args.seconds),
    }
    try:
        report["rv32im"] = measure_rv32im(model, x_q[:args.rv32_images])
    except CrossCompilerMissing as error:
        report["rv32im"] = {"skipped": str(error)}
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
