"""Commands we print for the user to type, written so they work as printed from where the
user stands: this Python's own path (the project's `.venv`, which a bare `python` on the
PATH usually is not), and paths relative to the working directory when they lie below it."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

MAKE_MARKER = "ATARI_DQN_MAKE"
"""Set by the Makefile's targets to the `make` line that started them, so that a run tells
its user to resume it with `make resume`, and a stopped sweep to continue with that line."""


def near(path: str | os.PathLike[str]) -> str:
    """`path` relative to the working directory when it lies below it, else absolute.

    Not resolved: a virtual environment's python is a link, and resolving it would name
    the base interpreter, which lacks the project's packages."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def atari_dqn_command(*words: str | os.PathLike[str]) -> str:
    """`<this python> -m atari_dqn <words>`, quoted for a POSIX shell; paths among `words`
    are written as `near` writes them."""
    python = near(sys.executable)
    if "/" not in python:  # a bare name would be looked up on the PATH
        python = f"./{python}"
    args = [near(w) if isinstance(w, os.PathLike) else w for w in words]
    return shlex.join([python, "-m", "atari_dqn", *args])


def rerun_command() -> str:
    """The command that runs this process again as its user started it: the `make` line of
    the Makefile's target (`MAKE_MARKER`), else `atari_dqn_command` with its arguments."""
    return os.environ.get(MAKE_MARKER) or atari_dqn_command(*sys.argv[1:])
