"""Atomic checkpoints: a run directory always holds one complete checkpoint, whatever happens.

A checkpoint is a folder `checkpoint/` holding `state.pt` (networks, optimiser, counters,
RNG states) and optionally `replay.ring` (the frame ring). A new one is written whole into
`checkpoint.tmp/` and fsynced; only then does it replace the old one (`checkpoint/` ->
`checkpoint.old/`, `checkpoint.tmp/` -> `checkpoint/`, then the old one is removed). A crash
at any moment leaves either `checkpoint/` or `checkpoint.old/` complete, and `load_state`
takes whichever is there. A checkpoint that cannot be written (a full disk, a file-size
limit, a read-only directory) leaves the previous one as it was and raises a
CheckpointError that says how much space one needs.

`CheckpointWriter` takes the state when asked and writes it either at once or, for the
periodic checkpoints of a long run, in a background thread while training goes on: the
replay of the paper's run is 7 GB, about 26 s of disk writes, which a synchronous save
would take from learning at every checkpoint. What is written is the run as it was when
the save was asked for (`atari_dqn.replay.ringfile.RingSave`), so a resume is as exact.
"""

from __future__ import annotations

import io
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from atari_dqn.durable import fsync_dir, write_synced
from atari_dqn.errors import CheckpointError
from atari_dqn.replay.ring import FrameRing
from atari_dqn.replay.ringfile import RingSave, load_ring
from atari_dqn.rundir import REPLAY_FILE, STATE_FILE, RunDir

FORMAT_VERSION = 1


def _gigabytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def save_checkpoint(run: RunDir, state: dict[str, Any], ring: FrameRing | None = None) -> Path:
    """Write `state` (and `ring`) as the run's checkpoint, now; returns its folder."""
    return _Save(run, state, ring).write()


class _Save:
    """One checkpoint: its state serialised when made, its replay's save begun then, both
    written (and put in place) by `write`, in whichever thread."""

    def __init__(self, run: RunDir, state: dict[str, Any], ring: FrameRing | None) -> None:
        self.run = run
        self.blob = io.BytesIO()
        torch.save({"format_version": FORMAT_VERSION, **state}, self.blob)
        self.replay_bytes = ring.filled_bytes() if ring is not None else 0
        self.replay = RingSave(ring) if ring is not None else None

    def write(self) -> Path:
        run = self.run
        final, tmp, old = run.checkpoint, run.checkpoint_tmp, run.checkpoint_old
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            write_synced(tmp / STATE_FILE, lambda f: f.write(self.blob.getbuffer()))
            if self.replay is not None:
                self.replay.write(tmp / REPLAY_FILE)
            fsync_dir(tmp)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise self._no_space(exc) from exc
        except BaseException:  # abandoned, or a second Ctrl-C: no half-written checkpoint
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
        tmp.rename(final)
        fsync_dir(run.path)
        shutil.rmtree(old, ignore_errors=True)
        return final

    def abandon(self) -> None:
        if self.replay is not None:
            self.replay.abandon()

    def _no_space(self, exc: OSError) -> CheckpointError:
        state_bytes = self.blob.getbuffer().nbytes
        replay = f" ({_gigabytes(self.replay_bytes)} of replay)" if self.replay else ""
        smaller = " (or set checkpoint.save_replay=false)" if self.replay else ""
        beside = (
            "beside the previous checkpoint, which is kept as it was"
            if has_checkpoint(self.run)
            else "(the run has no earlier checkpoint)"
        )
        return CheckpointError(
            f"cannot write a checkpoint into '{self.run}' ({exc.strerror or exc}): one needs "
            f"{_gigabytes(state_bytes + self.replay_bytes)}{replay} free {beside}; free some "
            f"space{smaller} and continue with {self.run.resume_command()}"
        )


class CheckpointWriter:
    """Writes a run's checkpoints, one at a time, now or in a background thread.

    A background save's error (a full disk) is raised by the next `poll` or `wait`, in the
    caller's thread; `also` runs there too, once its checkpoint is in place. The wait is on
    an event, not `Thread.join`: a join interrupted by a signal handler's exception (a second
    Ctrl-C) can take the thread for finished in CPython 3.11 (bpo-45274's fix), and the
    process would then exit with the save half-written."""

    def __init__(self, run: RunDir, saved_step: int | None = None) -> None:
        self.run = run
        self._save: _Save | None = None
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._pending: tuple[int, Callable[[], None]] | None = None
        self.saved_step = saved_step
        """The agent step of the run's newest complete checkpoint (None: it has none)."""

    def save(
        self,
        step: int,
        state: dict[str, Any],
        ring: FrameRing | None,
        *,
        background: bool,
        also: Callable[[], None] = lambda: None,
    ) -> None:
        """Checkpoint `state` and `ring` as they are now, taken at agent step `step`."""
        self.wait()
        self._save = _Save(self.run, state, ring)
        self._pending = (step, also)
        self._finished.clear()
        if not background:
            self._run_save()
            self._settle()
            return
        threading.Thread(target=self._run_save, name="checkpoint", daemon=True).start()

    def _run_save(self) -> None:
        try:
            self._save.write()
        except BaseException as exc:  # handed to the training thread by poll() or wait()
            self._error = exc
        finally:
            self._finished.set()

    def _settle(self, raise_error: bool = True) -> None:
        """After a save ended: raise its error (or drop it), or record it and run `also`."""
        self._save = None
        error, self._error = self._error, None
        pending, self._pending = self._pending, None
        if error is not None:
            if raise_error:
                raise error
            return
        self.saved_step = pending[0]
        pending[1]()

    def poll(self) -> None:
        """Settle a background save that has ended (cheap when there is none)."""
        if self._save is not None and self._finished.is_set():
            self._settle()

    def wait(self) -> None:
        """Wait for a background save to end, and settle it."""
        if self._save is not None:
            self._finished.wait()
            self._settle()

    def abandon(self) -> None:
        """Stop a background save early, leaving no part of it behind (the previous
        checkpoint stays; one that ended first is kept); its error, if any, is dropped."""
        if self._save is not None:
            self._save.abandon()
            self._finished.wait()
            self._settle(raise_error=False)

    def describe_kept(self) -> str:
        """The run's newest complete checkpoint, in words."""
        if self.saved_step is None:
            return "no checkpoint"
        return f"the checkpoint at agent step {self.saved_step:,}"


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


def replay_file(run: RunDir) -> Path | None:
    """The replay file of `run`'s checkpoint, or None when the run saves no replay."""
    path = checkpoint_dir(run) / REPLAY_FILE
    return path if path.is_file() else None


def load_replay(run: RunDir) -> FrameRing | None:
    """The checkpointed frame ring of `run`, or None when the run saves no replay."""
    path = replay_file(run)
    return load_ring(path) if path is not None else None


def check_compatible(state: dict[str, Any], *, game: str, n_actions: int, run: RunDir) -> None:
    """Refuse a checkpoint from another game or action set before loading any weights."""
    if state.get("game") != game or state.get("n_actions") != n_actions:
        raise CheckpointError(
            f"checkpoint in '{run}' is for {state.get('game')} with {state.get('n_actions')} "
            f"actions, not {game} with {n_actions} actions; use a run directory of {game}"
        )
