"""Run folders: where a flow writes its outputs, all at once or not at all.

A run is built in a hidden staging folder beside its destination and moved into place
only when every file is written, so an interrupted or failed flow never leaves a
half-written run, and an existing run is replaced only when the caller asked for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["RunError", "check_destination", "staged_run", "write_json"]


class RunError(Exception):
    """A run folder cannot be used as asked; the message says why and what to do."""


def check_destination(path: Path, *, force: bool) -> None:
    """Refuse to start work whose result could not be written to ``path``.

    Checked before any training, so that minutes are not spent on a run that cannot be
    saved.
    """
    if path.exists() and not path.is_dir():
        raise RunError(f"{path} exists and is not a folder; choose another --out")
    if path.exists() and any(path.iterdir()) and not force:
        raise RunError(f"{path} already exists; pass --force to replace it or choose "
                       "another --out")
    parent = path.resolve().parent
    if parent.exists() and not parent.is_dir():
        raise RunError(f"{parent} is not a folder, so it cannot hold {path.name}")


@contextlib.contextmanager
def staged_run(path: Path, *, force: bool) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces ``path`` in one rename.

    On an exception the staging folder is removed and ``path`` is left as it was.
    """
    check_destination(path, force=force)
    parent = path.resolve().parent
    # Like `mkdir -p`: `--out runs/demo` works on a fresh checkout without runs/.
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".staging", dir=parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if path.exists():
        # Move the old run aside first, so that there is never a moment with neither.
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
        os.replace(path, old / path.name)
    os.replace(staging, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
