"""A benchmark's training runs: each in a fresh Python process, each trained quietly in a
temporary run directory, so that no run inherits another's threads, compiled code or memory,
and nothing but the work measured runs on the way."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

QUIET = (
    "eval.interval_steps=0",
    "logging.progress=false",
    "logging.tensorboard=false",
    "checkpoint.interval_steps=1000000000",
    "checkpoint.save_replay=false",
)
"""A timed run's overrides: no evaluation, progress bar, TensorBoard or checkpoint on the way
(the final checkpoint is written after the last logging interval: it is not timed)."""


def train_quietly(
    preset: Path | None, overrides: list[str], game: str, read: Callable[[Path], T]
) -> T:
    """Train `preset` (None: Nature's) with QUIET and `overrides` in a temporary run
    directory; what `read` makes of that directory before it goes."""
    from atari_dqn.configfile import load_config
    from atari_dqn.runs import train

    cfg = load_config(preset, [*QUIET, *overrides], game=game)
    with tempfile.TemporaryDirectory() as tmp:
        if (code := train(cfg, Path(tmp) / "run")) != 0:
            raise RuntimeError(f"bench: our trainer exited with {code}")
        return read(Path(tmp) / "run")


def in_process(module: str, part: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`module._PARTS[part](**kwargs)` (a dict of figures) run in a fresh Python process, so
    that no run inherits another's threads, compiled code or memory; its denormal floats
    flushed, as a run's process has them (`cores.flush_denormals`)."""
    code = (
        "from atari_dqn.cores import flush_denormals; flush_denormals(); "
        f"import json, {module} as m; print('RESULT', json.dumps(m._PARTS[{part!r}](**{kwargs!r})))"
    )
    return result_of([sys.executable, "-c", code], f"{module} part {part!r} {kwargs}")


def result_of(argv: list[str], what: str, **run: Any) -> dict[str, Any]:
    """The figures a benchmark process prints on its `RESULT {json}` line; its stderr's
    tail in the error when it fails (`what` names it). `run`: more `subprocess.run`
    arguments (cwd, env)."""
    done = subprocess.run(argv, capture_output=True, text=True, **run)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-30:])
        raise RuntimeError(f"bench: {what} failed:\n{tail}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))
