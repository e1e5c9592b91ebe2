"""Durable file writes: a file is either its old complete self or its new complete self.

Used for everything a run must not lose half-written: its config, evaluation records,
checkpoints and the replay file. A write goes to a temporary file beside the target, is
flushed and fsynced, then renamed over the target, and the rename itself is fsynced.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_dir(directory: Path) -> None:
    """Make a rename inside `directory` durable (POSIX); a no-op where directories cannot
    be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Create `path` with `write(file)` and fsync it before returning."""
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Replace `path` by what `write(file)` writes, atomically and durably."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write_synced(tmp, write)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write` of a UTF-8 text."""
    atomic_write(path, lambda f: f.write(text.encode()))
