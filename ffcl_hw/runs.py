"""Run folders: where a flow writes its outputs, all at once or not at all, one writer at
a time, and never over anything but a run.

A run is built in a hidden staging folder beside its destination and moved into place
only when every file is written, so an interrupted or failed flow never leaves a
half-written run. While it is written, a lock file beside it (``.NAME.lock``, holding the
writer's pid and command) keeps a second writer out: two commands given the same ``--out``
never silently replace each other's run. The lock is an ``fcntl.flock`` on that file, which
the system releases when its process ends however it ends, so a lock file left by a killed
process is taken over (with a message) rather than blocking the folder forever.

An existing folder is replaced only when the caller asked for it (``force``) and the folder
is a run (:func:`is_run_folder`: it holds a file a run writes); anything else in the way is
refused, named, and left as it was. The destination is named by its absolute path, and a
destination holding the current folder is refused, since replacing it would pull the folder
out from under the shell that asked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["RUN_FILES", "RunError", "check_destination", "check_output_folder",
           "is_run_folder", "run_lock", "staged_run", "write_json"]

#: Files that only a run writes at its top level (``train``: the first two; ``quantize``:
#: the integer model; ``compare``: its report). A folder holding one of them is a run.
RUN_FILES = ("model.npz", "metrics.json", "model.int.npz", "compare.json")

_log = logging.getLogger(__name__)


class RunError(Exception):
    """A run folder cannot be used as asked; the message says why and what to do."""


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a folder a run was written to (it holds one of :data:`RUN_FILES`)."""
    return path.is_dir() and any((path / name).is_file() for name in RUN_FILES)


def _listing(path: Path, limit: int = 3) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _destination(path: Path) -> Path:
    """``path`` as an absolute path (``..`` resolved by name, its folder's links followed),
    refused if it is, or holds, the current folder."""
    # abspath, not resolve(): the last component is the folder to be written, not where a
    # link of that name points.
    absolute = Path(os.path.abspath(path))
    if absolute.parent == absolute:
        raise RunError(f"--out {path} is the root folder; choose a new folder for the run")
    dest = absolute.parent.resolve() / absolute.name
    here = Path.cwd().resolve()
    real = dest.resolve()
    if real == here or real in here.parents:
        what = "is" if real == here else "holds"
        raise RunError(f"--out {path} {what} the folder you are in ({real}); a run replaces "
                       "its whole folder, so choose a new folder inside it, e.g. --out "
                       "./run")
    return dest


def check_destination(path: Path, *, force: bool) -> Path:
    """Refuse to start work whose result could not be written to ``path``; return the
    absolute destination.

    Checked before any training, so that minutes are not spent on a run that cannot be
    saved, and again under the lock, just before the run is moved into place.

    Raises
    ------
    RunError
        If ``path`` is a file, a link, the current folder or one holding it; a non-empty
        folder without ``force``; a folder that is not a run (even with ``force``); or
        lies below a file.
    """
    dest = _destination(path)
    for ancestor in reversed(dest.parents):
        if ancestor.exists() and not ancestor.is_dir():
            raise RunError(f"{ancestor} is not a folder, so it cannot hold {dest.name}; "
                           "choose another --out")
    if dest.is_symlink():
        raise RunError(f"{dest} is a link; name the folder itself, or choose another --out")
    if dest.exists() and not dest.is_dir():
        raise RunError(f"{dest} exists and is not a folder; choose another --out")
    if dest.is_dir() and any(dest.iterdir()):
        if not is_run_folder(dest):
            raise RunError(f"{dest} is not an ffcl-hw run (it holds {_listing(dest)}, and "
                           f"none of {', '.join(RUN_FILES)}); --force replaces only a run "
                           "folder, so choose another --out")
        if not force:
            raise RunError(f"{dest} already exists; pass --force to replace it or choose "
                           "another --out")
    return dest


def check_output_folder(path: Path, *, option: str = "--out") -> None:
    """Refuse an output folder that cannot be made: ``path`` or a folder above it is a
    file. Checked before the work, so nothing is computed for an output that fails."""
    absolute = Path(os.path.abspath(path))
    for folder in (*reversed(absolute.parents), absolute):
        if folder.exists() and not folder.is_dir():
            raise RunError(f"{folder} is a file, not a folder; choose another {option}")


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents (like ``mkdir -p``); return those made,
    deepest first, so a failure can remove them again."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _remove_empty(missing)
        raise RunError(f"cannot write {folder}: {error.strerror}; choose another --out") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _lock_path(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.lock"


@contextlib.contextmanager
def run_lock(dest: Path) -> Iterator[Path]:
    """Hold the lock of the run folder ``dest`` (absolute) while the block runs.

    Raises
    ------
    RunError
        If another process holds it (the message gives its pid and command), or the
        lock file cannot be written.
    """
    path = _lock_path(dest)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise RunError(f"cannot write {dest.parent}: {error.strerror}; choose another "
                           "--out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunError(f"{dest} is being written by another ffcl-hw command "
                           f"({holder}); wait for it to finish or choose another --out"
                           ) from None
        # The previous holder may have removed the file between our open and our lock:
        # then we hold a lock nobody else can see; open the file anew.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        stale = _read_holder(fd, default="")
        if stale:
            # Holding the flock proves the writer is gone: the system drops it at exit.
            _log.warning("took over the lock %s: its writer (%s) no longer runs", path, stale)
        record = json.dumps({"pid": os.getpid(), "command": _command()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        yield path
    finally:
        # Unlinked while still locked, so the next writer finds no file or a fresh one.
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _command() -> str:
    return " ".join(["ffcl-hw", *sys.argv[1:]]) if sys.argv else "ffcl-hw"


def _read_holder(fd: int, default: str = "pid unknown") -> str:
    """``pid N, `COMMAND``` of the process that wrote the lock file ``fd``."""
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        return default
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        return default
    command = record.get("command")
    return f"pid {record['pid']}" + (f", `{command}`" if isinstance(command, str) else "")


def _remove_leftovers(dest: Path) -> None:
    """Remove the staging and old folders of ``dest`` that a killed writer left behind
    (only called under the lock, so none of them is in use)."""
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.[A-Za-z0-9_]{{8}}\.(staging|old)")
    for entry in dest.parent.iterdir():
        if pattern.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            _log.warning("removed %s, left by an interrupted run", entry)
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def staged_run(path: Path, *, force: bool) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces ``path`` in one rename.

    Everything that could refuse the destination is checked before the block runs (see
    :func:`check_destination`), and the destination's lock (:func:`run_lock`) is held
    from then until the run is in place. On an exception the staging folder, the lock
    and any parent folders made for the run are removed and ``path`` is left as it was.

    Raises
    ------
    RunError
        If the destination is refused, locked by another writer, or cannot be written.
    """
    dest = check_destination(path, force=force)
    made = _make_parents(dest.parent)
    try:
        with run_lock(dest):
            # Checked again under the lock: a writer that held it may have finished a run
            # here since the first check.
            check_destination(path, force=force)
            _remove_leftovers(dest)
            try:
                staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".staging",
                                                dir=dest.parent))
            except OSError as error:
                raise RunError(f"cannot write {dest.parent}: {error.strerror}; choose "
                               "another --out") from None
            try:
                yield staging
                # Whatever was put in the way during the work is not replaced unasked.
                check_destination(path, force=force)
                _replace(dest, staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except BaseException:
        _remove_empty(made)
        raise


def _replace(dest: Path, staging: Path) -> None:
    """Move ``staging`` to ``dest``, the old run first moved aside, so that there is never
    a moment with neither."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
        os.replace(dest, old / dest.name)
    try:
        os.replace(staging, dest)
    except BaseException:
        if old is not None:
            os.replace(old / dest.name, dest)
            old.rmdir()
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
