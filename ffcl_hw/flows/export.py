"""The export flow: an integer model -> the core's Verilog and a JSON description of it."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from amaranth import Shape
from amaranth.back import verilog
from amaranth.lib import wiring

from ffcl_hw.flows.quantize import load_run_int_model
from ffcl_hw.runs import RunError, check_output_folder
from golden.costs import inference_cost
from rtl.core import Core

__all__ = ["TOP_NAME", "build_core", "describe_core", "export_verilog"]

#: Module name of the exported core.
TOP_NAME = "ffcl_core"


def build_core(run: Path, *, lanes: int, label_lanes: int | None = None,
               shared: bool = False) -> Core:
    """Elaborate-ready core for the integer model of ``run`` (``shared``: the scaler and
    the squares borrow the lanes' multipliers, as on iCE40).

    Raises
    ------
    RunError
        If the lane counts are impossible (or more lanes than the widest layer has
        neurons), the model is one the RTL does not implement, or the integer model is
        of another float model than the run's (:func:`load_run_int_model`).
    """
    if not isinstance(lanes, int) or lanes < 1:
        raise RunError(f"--lanes must be a positive integer, not {lanes!r}")
    model = load_run_int_model(run).model
    widest = max(model.config.hidden)
    if lanes > widest:
        # Lane p computes neurons p, p + P, ...: beyond the widest layer a lane never
        # works, and a thousand idle lanes only make the simulation crawl.
        raise RunError(f"--lanes {lanes} is more than the widest layer's {widest} neurons, "
                       f"so {lanes - widest} lanes would never compute; use --lanes "
                       f"{widest} or fewer")
    try:
        return Core(model, lanes=lanes, label_lanes=label_lanes, shared=shared)
    except (TypeError, ValueError) as error:
        raise RunError(str(error)) from None


def _layout_fields(layout) -> list[dict[str, Any]]:
    """Bit offsets of a result record's fields (for decoding the flat Verilog port)."""
    fields = []
    for name, field in layout:
        fields.append({"name": name, "offset": field.offset, "width": field.width})
    return fields


def describe_core(core: Core) -> dict[str, Any]:
    """Ports, parameters, widths and the cycle model of ``core``, JSON-ready."""
    ports = []
    for path, member, _ in core.signature.flatten(core):
        ports.append({
            "name": "__".join(str(part) for part in path),
            "direction": "input" if member.flow == wiring.In else "output",
            "width": Shape.cast(member.shape).width,
        })
    config, fmt = core.model.config, core.model.fmt
    program = core.program
    result_layout = core.result.payload.shape()
    return {
        "top": TOP_NAME,
        "clock": "clk",
        "reset": "rst (synchronous, active high)",
        "ports": [{"name": "clk", "direction": "input", "width": 1},
                  {"name": "rst", "direction": "input", "width": 1}, *ports],
        "result_fields": _layout_fields(result_layout),
        "parameters": {
            "lanes": program.lanes,
            "label_lanes": program.label_lanes,
            "shared_multipliers": program.shared,
            "widths": dataclasses.asdict(program.widths),
        },
        "model": config.to_dict(),
        "format": fmt.to_dict(),
        "cycles_per_inference": program.cycles(),
        "mac_cycles": program.mac_cycles(),
        "matrix_cycles": program.matrix_cycles(),
        "lane_utilization": program.mac_cycles() / program.matrix_cycles(),
        "phase_cycles": program.phase_cycles(),
        "macs_per_inference": inference_cost(config).macs,
        "ops": len(program.ops),
    }


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_verilog(run: Path, *, lanes: int, out: Path,
                   label_lanes: int | None = None, shared: bool = False) -> dict[str, Any]:
    """Write ``out/ffcl_core.v`` and ``out/ffcl_core.json`` for the model of ``run``.

    Returns
    -------
    dict
        The description written to the JSON file, with the Verilog path added.

    Raises
    ------
    RunError
        If ``out`` cannot be a folder (it or a folder above it is a file, or it cannot be
        made), or :func:`build_core` refuses the run; checked before anything is written.
    """
    check_output_folder(out)
    core = build_core(run, lanes=lanes, label_lanes=label_lanes, shared=shared)
    description = describe_core(core)
    text = verilog.convert(core, name=TOP_NAME)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunError(f"cannot write {out}: {error.strerror}; choose another --out") from None
    _write_atomic(out / f"{TOP_NAME}.v", text)
    description["verilog"] = str(out / f"{TOP_NAME}.v")
    _write_atomic(out / f"{TOP_NAME}.json", json.dumps(description, indent=2) + "\n")
    return description
