"""Atomic checkpoints: a run directory always holds one complete checkpoint, whatever happens.

A checkpoint is a folder `checkpoint/` holding `state.pt` (networks, optimiser, counters,
RNG states) and optionally `replay.npz` (the frame ring). A new one is written whole into
`checkpoint.tmp/` and fsynced; only then does it replace the old one (`checkpoint/` ->
`checkpoint.old/`, `checkpoint.tmp/` -> `checkpoint/`, then the old one is removed). A crash
at any moment leaves either `checkpoint/` or `checkpoint.old/` complete, and `load` takes
whichever is there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from atari_dqn.config import ConfigError
from atari_dqn.replay import fsync_dir

FORMAT_VERSION = 1
STATE_FILE = "state.pt"
REPLAY_FILE = "replay.npz"


class CheckpointError(ConfigError):
    """A missing, corrupt or mismatched checkpoint; the message says what to do instead."""


def save_checkpoint(run_dir: Path, state: dict[str, Any], replay: Any | None = None) -> Path:
    """Write `state` (and `replay`, anything with `.save(path)`) as the run's checkpoint."""
    final, tmp, old = (
        run_dir / name for name in ("checkpoint", "checkpoint.tmp", "checkpoint.old")
    )
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state_path = tmp / STATE_FILE
    with state_path.open("wb") as f:
        torch.save({"format_version": FORMAT_VERSION, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    if replay is not None:
        replay.save(tmp / REPLAY_FILE)
    fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    fsync_dir(run_dir)
    shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_dir(run_dir: Path) -> Path:
    """The complete checkpoint folder of `run_dir` (the new one, else the one it replaces)."""
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory '{run_dir}' not found")
    for name in ("checkpoint", "checkpoint.old"):
        if (run_dir / name / STATE_FILE).is_file():
            return run_dir / name
    raise CheckpointError(
        f"no checkpoint in '{run_dir}' (a run writes one every checkpoint.interval_steps, "
        "at the end and on Ctrl-C); start a new run with `train --game GAME`"
    )


def load_state(run_dir: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpointed state of `run_dir`; a corrupt file is a CheckpointError, not a crash."""
    path = checkpoint_dir(run_dir) / STATE_FILE
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        raise CheckpointError(
            f"checkpoint '{path}' is corrupt or unreadable ({type(exc).__name__}: {exc}); "
            "delete it to fall back to checkpoint.old/ if present, or start a new run"
        ) from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint '{path}' is not an atari-dqn checkpoint of format {FORMAT_VERSION}"
        )
    return state


def replay_path(run_dir: Path) -> Path | None:
    """The checkpointed replay file of `run_dir`, or None when the run saves no replay."""
    path = checkpoint_dir(run_dir) / REPLAY_FILE
    return path if path.is_file() else None


def check_compatible(state: dict[str, Any], *, game: str, n_actions: int, path: Path) -> None:
    """Refuse a checkpoint from another game or action set before loading any weights."""
    if state.get("game") != game or state.get("n_actions") != n_actions:
        raise CheckpointError(
            f"checkpoint in '{path}' is for {state.get('game')} with {state.get('n_actions')} "
            f"actions, not {game} with {n_actions} actions; use a run directory of {game}"
        )
