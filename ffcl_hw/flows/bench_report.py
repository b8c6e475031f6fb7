"""The bench's human-readable outputs: a Markdown table and PNG plots of ``bench.json``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["PHASE_NAMES", "markdown_report", "plot_report"]

#: Display names of the accelerator's phases, in the order the plots stack them.
PHASE_NAMES = {
    "matrix_vector": "matrix-vector",
    "loop_feedback": "loop feedback",
    "normalisation": "normalisation",
    "label_scan": "label scan / goodness",
    "control": "control / argmax",
}


def _n(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _cpu_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    acc = report["accelerator"]
    where = (f"{acc['lanes']} MAC lanes, {acc['label_lanes']} label "
             f"lane{'s' if acc['label_lanes'] > 1 else ''}"
             + (", scaler and squares on the lanes' multipliers"
                if acc.get("shared_multipliers") else ""))
    rows.append((f"accelerator ({where})", "cycles", _n(acc["cycles_per_inference"]),
                 f"RTL cycle counter in Verilator; {acc['golden_check']}"))
    rows.append(("accelerator, ideal", "cycles", _n(acc["ideal_cycles"]),
                 f"{acc['macs_per_inference']:,} MACs / {acc['lanes']} lanes"))
    if acc.get("latency_us"):
        rows.append((f"accelerator on {acc['board']}", "us", _n(acc["latency_us"], 1),
                     f"at its Fmax {acc['fmax_mhz']:.1f} MHz (synthesis report)"))
    for opt, r in report["host_c"].items():
        rows.append((f"host C {opt}", "ns", _n(r["ns_per_inference"]),
                     f"{r['compiler']}; fastest of {r['repeats']} timings; bit-exact"))
        if r.get("estimated_cycles_per_inference"):
            rows.append((f"host C {opt}", "cycles (est.)",
                         _n(r["estimated_cycles_per_inference"]),
                         f"ns x nominal {r['clock_hz'] / 1e9:.2f} GHz ({r['clock_source']})"))
    r = report["numpy"]
    rows.append(("NumPy golden model, batched", "ns", _n(r["ns_per_inference_batched"]),
                 f"IntModel.run on {r['images']} images per call, NumPy {r['numpy']}"))
    rows.append(("NumPy golden model, one image", "ns", _n(r["ns_per_inference_single"]),
                 "IntModel.run on one image per call"))
    r = report["rv32im"]
    if "skipped" in r:
        rows.append(("RV32IM", "instructions", "skipped", r["skipped"]))
    else:
        rows.append(("RV32IM", "instructions", _n(r["instructions_per_inference"]),
                     f"{r['compiler']} {r['opt']}, {r['simulator']}, bit-exact; "
                     f"{r['instructions_per_mac']:.1f} per MAC"))
    return rows


def _training_lines(training: dict[str, Any] | None, speedup: dict[str, Any]) -> list[str]:
    """The training table: one sample of the integer rule on each target."""
    if training is None:
        return []
    lines = ["| training target | unit | per sample | how |", "|---|---|---|---|"]
    if "not_available" in training:
        return lines + [f"| all | | not available | {training['not_available']} |", ""]
    acc, design = training["accelerator"], training["design"]
    if acc["cycles_per_sample"] is None:
        lines.append(f"| accelerator (training core) | cycles | not available | "
                     f"{acc['not_available']} |")
    else:
        lines.append(f"| accelerator (training core, {acc['lanes']} lanes) | cycles | "
                     f"{_n(acc['cycles_per_sample'])} | closed form of its counter "
                     f"(TrainingCore.training_cycles, weights in "
                     f"{'SPRAM' if acc.get('weights') == 'spram' else 'block RAM'}); "
                     f"W/V-pass lane utilisation "
                     f"{100 * acc['lane_utilization']:.1f}% |")
    if design["cycles_per_sample"] is None:
        lines.append(f"| accelerator, design | cycles | not available | "
                     f"{design['not_available']} |")
    else:
        lines.append(f"| accelerator, design ({design['lanes']} lanes"
                     f"{', shared multipliers' if design['shared_multipliers'] else ''}, "
                     f"{design['memory'].upper()}) | cycles | "
                     f"{_n(design['cycles_per_sample'])} | docs/training-engine.md's steps "
                     f"overlapped (not built); update-pass lane utilisation "
                     f"{100 * design['lane_utilization']:.1f}% |")
    if training.get("clock_mhz"):
        for key, what in (("samples_per_second", "training core"),
                          ("design_samples_per_second", "design")):
            if training.get(key):
                lines.append(f"| accelerator ({what}) at {training['clock_mhz']:.1f} MHz | "
                             f"samples/s | {_n(training[key])} | {training['clock_source']} |")
    rv = training["rv32im"]
    if "skipped" in rv:
        lines.append(f"| RV32IM | instructions | skipped | {rv['skipped']} |")
    else:
        lines.append(f"| RV32IM | instructions | {_n(rv['instructions_per_sample'])} | "
                     f"golden/inttrain.c, {rv['compiler']} {rv['opt']}, {rv['simulator']}; "
                     f"bit-exact with IntTrainer after each of {rv['samples']} samples; "
                     f"{rv['instructions_per_update']:.1f} per weight update |")
    host = training["host_c"]
    lines.append(f"| host C {' '.join(host['flags'][1:])} | ns | {_n(host['ns_per_sample'])} | "
                 f"{host['compiler']}; fastest of {host['repeats']} timings; bit-exact |")
    lines += ["", "| training speedup | x |", "|---|---|",
              "| RV32IM instructions / training core cycles | "
              f"{_n(speedup.get('training_vs_rv32im_instructions'), 1)} |",
              "| RV32IM instructions / design cycles | "
              f"{_n(speedup.get('training_design_vs_rv32im_instructions'), 1)} |",
              "", f"Training samples: the run's first training images, in order; rule from "
              f"{training['rule_source']}.", ""]
    phases = acc.get("phase_cycles")
    if phases:
        total = sum(phases.values())
        lines += ["| training core phase | cycles | share |", "|---|---|---|"]
        lines += [f"| {name.replace('_', ' ')} | {_n(count)} | {100 * count / total:.1f}% |"
                  for name, count in phases.items() if count]
        lines.append("")
    return lines


def markdown_report(report: dict[str, Any]) -> str:
    """The bench as Markdown: per-inference costs, speedups, phases and variants."""
    model = report["model"]
    shape = "x".join(str(n) for n in model["hidden"])
    lines = [f"# Bench: {model['dataset']} {model['algo'].upper()} {shape}"
             + (f", T={model['loops']}" if model["algo"] == "ffcl" else ""),
             "", f"Machine: {report['machine']['processor']} ({report['machine']['cores']} "
             "cores). Written by `ffcl-hw bench`.", "",
             "| target | unit | per inference | how |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _cpu_rows(report)]
    s = report["speedup"]
    lines += ["", "| speedup | x |", "|---|---|",
              "| RV32IM instructions / accelerator cycles | "
              f"{_n(s['vs_rv32im_instructions'], 1)} |",
              f"| host C {s['host_c_build']} estimated cycles / accelerator cycles | "
              f"{_n(s['vs_host_c_cycles'], 2)} |"]
    if s.get("vs_host_c_time"):
        lines.append(f"| host C {s['host_c_build']} time / accelerator time at Fmax | "
                     f"{s['vs_host_c_time']:.3g} |")
    acc = report["accelerator"]
    phases = acc.get("phase_cycles")
    if phases:
        lines += ["", "| accelerator phase | cycles | share |", "|---|---|---|"]
        total = sum(phases.values())
        lines += [f"| {PHASE_NAMES.get(k, k)} | {v:,} | {100 * v / total:.1f}% |"
                  for k, v in phases.items()]
    lines += ["", f"Lane utilisation in the matrix phases: {100 * acc['lane_utilization']:.1f}%"
              f" ({acc['mac_cycles']:,} MAC cycles of {acc['matrix_cycles']:,}); the whole "
              f"inference reaches {100 * acc['ideal_fraction']:.1f}% of the ideal count.", "",
              "| variant | MACs | x FFDL | accelerator cycles | x FFDL | lane util. | "
              "RV32IM instructions |", "|---|---|---|---|---|---|---|"]
    for v in report["variants"]:
        name = v["algo"].upper() + (f" (T={v['loops']})" if v["algo"] == "ffcl" else "")
        lines.append(f"| {name} | {v['macs_per_inference']:,} | {v['macs_vs_ffdl']:.2f} | "
                     f"{v['accelerator_cycles']:,} | {v['cycles_vs_ffdl']:.2f} | "
                     f"{100 * v['lane_utilization']:.1f}% | {_n(v['rv32im_instructions'])} |")
    lines += ["", "Variants other than the run's own use untrained weights of the same shape "
              "(counts do not depend on weight values); their accelerator cycles are the "
              "closed form, which the tests hold equal to the RTL counter.", ""]
    lines += _training_lines(report.get("training"), s)
    return "\n".join(lines)


def plot_report(report: dict[str, Any], folder: Path) -> list[Path]:
    """Write the bench's PNG plots into ``folder``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    acc = report["accelerator"]

    # Accelerator against the CPUs, in cycles (log scale: they differ by orders).
    bars = [("accelerator", acc["cycles_per_inference"]), ("ideal (MACs/lanes)",
                                                           acc["ideal_cycles"])]
    if report["rv32im"].get("instructions_per_inference"):
        bars.append(("RV32IM instr.", report["rv32im"]["instructions_per_inference"]))
    for opt, r in report["host_c"].items():
        if r.get("estimated_cycles_per_inference"):
            bars.append((f"host C {opt} (est.)", r["estimated_cycles_per_inference"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar([b[0] for b in bars], [b[1] for b in bars],
           color=["tab:green", "tab:gray"] + ["tab:blue"] * (len(bars) - 2))
    ax.set_yscale("log")
    # Start the log axis at a power of ten, so bar heights compare honestly.
    ax.set_ylim(bottom=10 ** math.floor(math.log10(min(b[1] for b in bars))))
    ax.set_ylabel("cycles (instructions) per inference")
    ax.set_title("Accelerator against CPUs")
    for i, (_, value) in enumerate(bars):
        ax.text(i, value, f"{value:,.0f}", ha="center", va="bottom", fontsize=8)
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    paths.append(folder / "accelerator_vs_cpu.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    # Cycles and MACs per variant.
    variants = report["variants"]
    names = [v["algo"].upper() for v in variants]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.27
    series = [("accelerator cycles", "accelerator_cycles", "tab:green"),
              ("ideal cycles", "ideal_cycles", "tab:gray"),
              ("RV32IM instructions", "rv32im_instructions", "tab:blue")]
    for j, (label, key, color) in enumerate(series):
        values = [v[key] or 0 for v in variants]
        if any(values):
            ax.bar([i + (j - 1) * width for i in range(len(variants))], values, width,
                   label=label, color=color)
    ax.set_xticks(range(len(variants)), names)
    ax.set_yscale("log")
    ax.set_ylabel("per inference")
    ax.set_title("FFL, FFDL, FFCL of the same shape")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(folder / "cycles_per_variant.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    # Where the accelerator's cycles go.
    phases = acc.get("phase_cycles")
    if phases:
        fig, ax = plt.subplots(figsize=(7, 3))
        left = 0
        for name, value in phases.items():
            ax.barh([0], [value], left=left, label=f"{PHASE_NAMES.get(name, name)} "
                    f"({value:,})")
            left += value
        ax.set_yticks([])
        ax.set_xlabel("cycles per inference")
        ax.set_title("Accelerator cycles by phase")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=2)
        fig.tight_layout()
        paths.append(folder / "cycles_per_phase.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths
