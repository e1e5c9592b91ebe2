"""Which code produced a record: the git commit of the running package and whether its work
tree held uncommitted changes.

Benchmark records are stamped with it (a figure traces to the code it measured) and so is
every start of a run (a score traces to the code that trained it, even across a resume after
the code changed).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


def code_root() -> Path:
    """The directory holding the `atari_dqn` package: the checkout's root when the code runs
    from a checkout (or an editable install of one)."""
    return Path(__file__).resolve().parents[1]


def _git(root: Path, *args: str) -> str | None:
    """`git -C root args...`'s output, or None where git or the repository is missing."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def code_version(records: Path | str | None = None, root: Path | None = None) -> dict[str, Any]:
    """The commit of the code running and whether its work tree was dirty.

    `{"commit": <git rev-parse HEAD>, "dirty": <git status --porcelain lists anything>}` for
    the repository at `root` (default `code_root()`); both are "unknown" where git is absent
    or `root` is not a repository's top level (an installed copy inside some other work tree
    has no commit of its own). Paths under `records`, where the benchmarks write their own
    results, do not count as dirt: they are not code, and each part of `bench all` would
    otherwise find the records of the parts before it.
    """
    root = (root or code_root()).resolve()
    top = _git(root, "rev-parse", "--show-toplevel")
    commit = _git(root, "rev-parse", "HEAD")
    if top is None or commit is None or Path(top.strip()).resolve() != root:
        return {"commit": "unknown", "dirty": "unknown"}
    pathspec = ["--", "."]
    if records is not None:
        records = Path(records).resolve()
        if records.is_relative_to(root) and records != root:
            pathspec.append(f":(exclude){records.relative_to(root).as_posix()}")
    status = _git(root, "status", "--porcelain", *pathspec)
    dirty: bool | str = "unknown" if status is None else bool(status.strip())
    return {"commit": commit.strip(), "dirty": dirty}


def describe_code(code: dict[str, Any]) -> str:
    """`code_version()`'s answer in words, for a record's stamp line or a run's log."""
    tree = {True: "work tree dirty: uncommitted changes", False: "work tree clean"}
    return f"commit `{code['commit']}` ({tree.get(code['dirty'], 'work tree state unknown')})"
