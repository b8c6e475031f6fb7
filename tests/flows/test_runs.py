"""Run folders: what ``--out`` and ``--force`` may replace, one writer at a time, and
nothing left behind by a refusal or a failure."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ffcl_hw.cli import main
from ffcl_hw.runs import RunError, is_run_folder, staged_run

FAST = ["--epochs", "2", "--hidden", "8", "--algo", "ffdl", "--quiet"]
#: The checkout under test, so that `python -m ffcl_hw.cli` imports this code.
REPO = Path(__file__).resolve().parents[2]


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _tree(root):
    """Every path under ``root`` (relative), with each file's content."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def trained(tmp_path, capsys):
    run = tmp_path / "run"
    assert _run(capsys, "train", *FAST, "--out", run)[0] == 0
    return run


# -- --force replaces only a run -------------------------------------------------------

@pytest.mark.parametrize("contents", [
    {"notes.txt": b"my notes"},
    {"data/train.csv": b"1,2,3", "README": b"mine"},
    {"sub/model.npz": b"a run one level down is not this folder's"},
])
def test_force_refuses_a_folder_that_is_not_a_run(tmp_path, capsys, contents):
    folder = tmp_path / "mine"
    for name, data in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    before = _tree(tmp_path)
    status, _, err = _run(capsys, "train", *FAST, "--out", folder, "--force")
    assert status == 2
    assert f"{folder} is not an ffcl-hw run" in err
    first = sorted(p.name for p in folder.iterdir())[0]
    assert first in err and "--force replaces only a run folder" in err
    # Nothing deleted, nothing added (no lock, no staging folder beside it).
    assert _tree(tmp_path) == before


def test_force_replaces_a_run_and_what_it_holds(trained, capsys):
    (trained / "verilog").mkdir()
    (trained / "verilog" / "ffcl_core.v").write_text("module old; endmodule\n")
    before = (trained / "model.npz").read_bytes()
    assert _run(capsys, "train", *FAST, "--seed", "4", "--out", trained, "--force")[0] == 0
    assert sorted(p.name for p in trained.iterdir()) == ["metrics.json", "model.npz"]
    assert (trained / "model.npz").read_bytes() != before
    assert sorted(p.name for p in trained.parent.iterdir()) == ["run"]


@pytest.mark.parametrize(("files", "expected"), [
    (["model.npz"], True), (["metrics.json", "sim.json"], True), (["model.int.npz"], True),
    (["compare.json", "compare.md"], True), ([], False), (["notes.txt"], False),
    (["sim.json"], False),
])
def test_a_run_folder_is_recognised_by_what_a_run_writes(tmp_path, files, expected):
    for name in files:
        (tmp_path / name).write_text("x")
    assert is_run_folder(tmp_path) is expected


# -- one writer at a time --------------------------------------------------------------

def test_a_second_writer_to_the_same_out_is_refused(tmp_path, capsys):
    run = tmp_path / "new"
    with staged_run(run, force=False) as staging:
        # A first `train --out new` is still writing: a second one must not race it.
        status, _, err = _run(capsys, "train", *FAST, "--out", run)
        assert status == 2
        assert f"{run} is being written by another ffcl-hw command (pid {os.getpid()}" in err
        assert "wait for it to finish or choose another --out" in err
        # Not even with --force.
        assert _run(capsys, "train", *FAST, "--out", run, "--force")[0] == 2
        (staging / "metrics.json").write_text("{}\n")
    # The first writer's run is the one in place, and the second left nothing.
    assert sorted(p.name for p in run.iterdir()) == ["metrics.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def test_two_commands_into_one_out_across_processes(tmp_path):
    # The user's case: a long `train --out new` in one terminal, the same in another.
    run = tmp_path / "new"
    argv = [sys.executable, "-m", "ffcl_hw.cli", "train", "--epochs", "100000", "--hidden",
            "8", "--quiet", "--out", str(run)]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=REPO)
    try:
        lock = tmp_path / ".new.lock"
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert json.loads(lock.read_text())["pid"] == first.pid
        second = subprocess.run(argv[:-2] + ["--force", "--out", str(run)],
                                capture_output=True, text=True, cwd=REPO)
        assert second.returncode == 2
        assert f"(pid {first.pid}, `ffcl-hw train --epochs 100000" in second.stderr
    finally:
        # Stopped like a closed terminal: the first cleans up after itself.
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert list(tmp_path.iterdir()) == []


def test_two_trains_into_one_new_out_the_second_is_refused(tmp_path, capsys, monkeypatch):
    # Two `train --out new` started together: both pass the first check; the one that
    # finishes second must not silently replace the other's run.
    import ffcl_hw.flows.train as flow

    run = tmp_path / "new"
    real_train = flow.train

    def train_and_meanwhile_another(*args, **kwargs):
        result = real_train(*args, **kwargs)
        monkeypatch.setattr(flow, "train", real_train)
        assert main(["train", *FAST, "--seed", "9", "--out", str(run)]) == 2
        return result

    monkeypatch.setattr(flow, "train", train_and_meanwhile_another)
    assert main(["train", *FAST, "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert "being written by another ffcl-hw command" in err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["seed"] == 0


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    lock = tmp_path / ".run.lock"
    lock.write_text(json.dumps({"pid": pid, "command": "ffcl-hw train --out run"}))
    leftover = tmp_path / ".run.abcd1234.staging"
    leftover.mkdir()
    (leftover / "model.npz").write_bytes(b"half")
    status, _, err = _run(capsys, "train", *FAST, "--out", tmp_path / "run")
    assert status == 0
    assert f"took over the lock {lock}: its writer (pid {pid}, `ffcl-hw train --out run`) " \
        "no longer runs" in err
    assert f"removed {leftover}, left by an interrupted run" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# -- any --out works or is refused up front ------------------------------------------

@pytest.mark.parametrize(("out", "force"), [(".", True), (".", False), ("..", True),
                                            ("./", True)])
def test_the_current_folder_and_its_parents_are_refused_up_front(tmp_path, capsys,
                                                                 monkeypatch, out, force):
    here = tmp_path / "work" / "run"
    here.mkdir(parents=True)
    (here / "metrics.json").write_text("{}\n")
    monkeypatch.chdir(here)
    before = _tree(tmp_path)
    status, _, err = _run(capsys, "train", *FAST, "--out", out, *(["--force"] if force else []))
    assert status == 2
    assert re.search(r"(is|holds) the folder you are in", err), err
    assert "choose a new folder inside it" in err
    assert _tree(tmp_path) == before


def test_an_empty_current_folder_is_refused_without_training(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = _run(capsys, "train", *FAST, "--out", ".")
    assert status == 2 and "test accuracy" not in out
    assert list(tmp_path.iterdir()) == []


def test_a_run_named_through_dot_dot_lands_in_the_folder_named(tmp_path, capsys, monkeypatch):
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert _run(capsys, "train", *FAST, "--out", "../b/../run")[0] == 0
    assert (tmp_path / "run" / "model.npz").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "run"]


def test_a_failure_leaves_nothing_behind_not_even_the_parents_it_made(tmp_path, capsys,
                                                                      monkeypatch):
    import ffcl_hw.flows.train as flow

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(flow, "train", broken)
    (tmp_path / "runs").mkdir()
    with pytest.raises(RuntimeError):
        main(["train", *FAST, "--out", str(tmp_path / "runs" / "new" / "deeper" / "run")])
    assert list(tmp_path.iterdir()) == [tmp_path / "runs"]
    assert list((tmp_path / "runs").iterdir()) == []


def test_an_unwritable_parent_is_refused_up_front(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        status, out, err = _run(capsys, "train", *FAST, "--out", locked / "run")
    finally:
        locked.chmod(0o700)
    assert status == 2 and "cannot write" in err and "test accuracy" not in out


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_that_cannot_be_made_is_refused_up_front(capsys):
    # No one, not even root, makes folders in /proc.
    status, out, err = _run(capsys, "train", *FAST, "--out", "/proc/ffcl-hw-test/run")
    assert status == 2, err
    assert "cannot write /proc/ffcl-hw-test" in err and "choose another --out" in err
    assert "test accuracy" not in out


def test_the_library_refuses_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunError, match="is the folder you are in"), \
            staged_run(tmp_path, force=True):
        pass
