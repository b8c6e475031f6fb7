"""The compare flow: FFL, FFDL and FFCL trained with the same budget, data and seed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ffcl_hw.flows.train import train_run
from ffcl_hw.runs import staged_run, write_json
from golden.config import ALGORITHMS, ModelConfig, TrainConfig
from golden.datasets import Dataset
from golden.training import ProgressCallback

__all__ = ["compare", "markdown_table"]

#: Builds the model and training configuration of one algorithm of the comparison.
ConfigFactory = Callable[[str], tuple[ModelConfig, TrainConfig]]


def compare(
    dataset: Dataset,
    configs: ConfigFactory,
    out: Path,
    *,
    resize: int | None = None,
    force: bool = False,
    progress: Callable[[str], ProgressCallback | None] | None = None,
    int_runs: Callable[[str, Path], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train every algorithm and write ``out/compare.json``, ``out/compare.md`` and runs.

    Each algorithm's run folder (model and metrics) is kept under ``out/ALGO``, so the
    compared models can be quantized or simulated later. With ``int_runs``
    (``compare --with-int``), FFDL and FFCL are also trained with the on-chip integer rule:
    ``int_runs(algo, folder)`` writes the run ``out/ALGO-int`` and returns its metrics.
    """
    results = []
    with staged_run(out, force=force) as staging:
        for algo in ALGORITHMS:
            config, train_config = configs(algo)
            run = train_run(dataset, config, train_config, staging / algo, resize=resize,
                            callback=progress(algo) if progress else None)
            m = run.metrics
            results.append({
                "algo": algo,
                "hidden": m["hidden"],
                "loops": m["loops"],
                "test_accuracy": m["test_accuracy"],
                "per_layer_test_accuracy": m["per_layer_test_accuracy"],
                "all_layers_test_accuracy": m["all_layers_test_accuracy"],
                "macs_per_inference": m["macs_per_inference"],
                "cost_per_inference": m["cost_per_inference"],
                "parameters": m["parameters"],
                "train_seconds": m["train_seconds"],
                "epochs": train_config.epochs,
                "seed": train_config.seed,
                "theta": config.theta,
                "arith": "float",
            })
        if int_runs is not None:
            for algo in ("ffdl", "ffcl"):
                m = int_runs(algo, staging / f"{algo}-int")
                results.append({
                    "algo": algo,
                    "arith": "int",
                    "hidden": m["hidden"],
                    "loops": m["loops"],
                    "test_accuracy": m["int_test_accuracy"],
                    "per_layer_test_accuracy": m["int_per_layer_test_accuracy"],
                    "all_layers_test_accuracy": m["all_layers_test_accuracy"],
                    "macs_per_inference": m["macs_per_inference"],
                    "cost_per_inference": m["cost_per_inference"],
                    "parameters": m["parameters"],
                    "train_seconds": m["train_seconds"],
                    "epochs": m["rule"]["epochs"],
                    "seed": m["rule"]["seed"],
                    "theta": m["model"]["theta"],
                })
        report = {"dataset": dataset.name, "resize": resize, "results": results}
        write_json(staging / "compare.json", report)
        (staging / "compare.md").write_text(markdown_table(report))
    return report


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


def markdown_table(report: dict[str, Any]) -> str:
    """The comparison as a Markdown table (accuracies in %, MACs relative to FFDL)."""
    by_algo = {r["algo"]: r for r in report["results"] if r.get("arith", "float") == "float"}
    ffdl_macs = by_algo["ffdl"]["macs_per_inference"] if "ffdl" in by_algo else None
    lines = [
        f"Data set: {report['dataset']}"
        + (f", resized to {report['resize']}x{report['resize']}" if report["resize"] else ""),
        "",
        "| algo | hidden | test acc % | per-layer acc % | all-layers acc % | MACs/inference "
        "| x FFDL | scan steps | params | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        ratio = f"{r['macs_per_inference'] / ffdl_macs:.2f}" if ffdl_macs else "-"
        hidden = "x".join(str(h) for h in r["hidden"])
        if r["algo"] == "ffcl":
            hidden += f", T={r['loops']}"
        name = r["algo"].upper() + (", int rule" if r.get("arith") == "int" else "")
        lines.append(
            f"| {name} | {hidden} | {_percent(r['test_accuracy'])} | "
            f"{' / '.join(_percent(a) for a in r['per_layer_test_accuracy'])} | "
            f"{_percent(r['all_layers_test_accuracy'])} | {r['macs_per_inference']:,} | "
            f"{ratio} | {r['cost_per_inference']['scan_steps']:,} | {r['parameters']:,} | "
            f"{r['train_seconds']:.1f} |"
        )
        if r["algo"] == "ffl" and "fair_ffl" in r["cost_per_inference"]:
            fair = r["cost_per_inference"]["fair_ffl"]["macs"]
            fair_ratio = f"{fair / ffdl_macs:.2f}" if ffdl_macs else "-"
            lines.append(f"| FFL, W1 x once | | | | | {fair:,} | {fair_ratio} | | | |")
    return "\n".join(lines) + "\n"
