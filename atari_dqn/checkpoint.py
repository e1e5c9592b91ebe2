"""Atomic checkpoints: a run directory always holds one complete checkpoint, whatever happens.

A checkpoint is a folder `checkpoint/` holding `state.pt` (networks, optimiser, counters,
RNG states) and optionally `replay.ring` (the frame ring). A new one is written whole into
`checkpoint.tmp/` and fsynced; only then does it replace the old one (`checkpoint/` ->
`checkpoint.old/`, `checkpoint.tmp/` -> `checkpoint/`, then the old one is removed). A crash
at any moment leaves either `checkpoint/` or `checkpoint.old/` complete, and `load_state`
takes whichever is there. A checkpoint that cannot be written (a full disk, a file-size
limit, a read-only directory) leaves the previous one as it was and raises a
CheckpointError that says how much space one needs.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import torch

from atari_dqn.durable import fsync_dir, write_synced
from atari_dqn.errors import CheckpointError
from atari_dqn.replay.ring import FrameRing
from atari_dqn.replay.ringfile import load_ring, save_ring
from atari_dqn.rundir import REPLAY_FILE, STATE_FILE, RunDir

FORMAT_VERSION = 1


def _gigabytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def save_checkpoint(run: RunDir, state: dict[str, Any], ring: FrameRing | None = None) -> Path:
    """Write `state` (and `ring`) as the run's checkpoint; returns its folder."""
    final, tmp, old = run.checkpoint, run.checkpoint_tmp, run.checkpoint_old
    blob = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, blob)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write_synced(tmp / STATE_FILE, lambda f: f.write(blob.getbuffer()))
        if ring is not None:
            save_ring(ring, tmp / REPLAY_FILE)
        fsync_dir(tmp)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        state_bytes = blob.getbuffer().nbytes
        replay_bytes = ring.filled_bytes() if ring is not None else 0
        replay = f" ({_gigabytes(replay_bytes)} of replay)" if ring is not None else ""
        raise CheckpointError(
            f"cannot write a checkpoint into '{run}' ({exc.strerror or exc}): one needs "
            f"{_gigabytes(state_bytes + replay_bytes)}{replay} free beside the previous "
            "checkpoint, which is kept as it was; free some space (or set "
            "checkpoint.save_replay=false) and continue with "
            f"`python -m atari_dqn train --resume {run}`"
        ) from exc
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    fsync_dir(run.path)
    shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_dir(run: RunDir) -> Path:
    """The complete checkpoint folder of `run` (the new one, else the one it replaces)."""
    if not run.path.is_dir():
        raise CheckpointError(f"run directory '{run}' not found")
    folder = _complete_folder(run)
    if folder is not None:
        return folder
    raise CheckpointError(
        f"no checkpoint in '{run}' (a run writes one every checkpoint.interval_steps, "
        "at the end and on Ctrl-C); start a new run with `train --game GAME`"
    )


def has_checkpoint(run: RunDir) -> bool:
    """Whether `run` holds a complete checkpoint."""
    return _complete_folder(run) is not None


def _complete_folder(run: RunDir) -> Path | None:
    """The new checkpoint folder if complete, else the one it replaces if that is."""
    for folder in (run.checkpoint, run.checkpoint_old):
        if (folder / STATE_FILE).is_file():
            return folder
    return None


def load_state(run: RunDir, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpointed state of `run`; a corrupt file is a CheckpointError, not a crash."""
    path = checkpoint_dir(run) / STATE_FILE
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(
            f"checkpoint '{path}' is corrupt or unreadable ({type(exc).__name__}: {why}); "
            "delete it to fall back to checkpoint.old/ if present, or start a new run"
        ) from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint '{path}' is not an atari-dqn checkpoint of format {FORMAT_VERSION}"
        )
    return state


def load_replay(run: RunDir) -> FrameRing | None:
    """The checkpointed frame ring of `run`, or None when the run saves no replay."""
    path = checkpoint_dir(run) / REPLAY_FILE
    return load_ring(path) if path.is_file() else None


def check_compatible(state: dict[str, Any], *, game: str, n_actions: int, run: RunDir) -> None:
    """Refuse a checkpoint from another game or action set before loading any weights."""
    if state.get("game") != game or state.get("n_actions") != n_actions:
        raise CheckpointError(
            f"checkpoint in '{run}' is for {state.get('game')} with {state.get('n_actions')} "
            f"actions, not {game} with {n_actions} actions; use a run directory of {game}"
        )
