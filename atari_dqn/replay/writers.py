"""When a frame ring's writers may write: after a prefetch's draw, and behind a save.

Two things hold `add` and `start_episodes` back while readers work from other threads:
- a `WriteGate` (`FrameRing.pause_writes`): a sampler that will draw later, from another
  thread, fixes the ring's contents until its draw is done, so the draw never depends on
  thread scheduling;
- a `SlotGuard` (`FrameRing.begin_save`): a save writing the frames in place, from another
  thread, while training goes on; a write to a slot it has not saved yet waits for it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np


class WriteGate:
    """Holds a ring's writers back until `release()` is called, from whichever thread."""

    def __init__(self, control: WriteControl) -> None:
        self._control = control
        self._released = False

    def release(self) -> None:
        """Let writers go on (idempotent)."""
        if not self._released:
            self._released = True
            self._control.resume()


class SlotGuard:
    """What a save in progress has written of a ring's frames.

    The save writes row r of env e's file section from slot `(start[e] + r) % filled`, all
    envs' rows [0, k) before any env's row k; `saved(k)` says rows [0, k) are written. A
    writer of slot p of env e waits while p is a filled slot whose row is not written."""

    def __init__(self, control: WriteControl, start: np.ndarray, filled: int) -> None:
        self._control = control
        self.start = start.astype(np.int64)
        self.filled = filled
        self._rows = 0

    def blocks(self, env_ids: np.ndarray, slots: np.ndarray) -> bool:
        """Whether writing `slots` (one per env of `env_ids`) must wait (lock held)."""
        if self.filled == 0:
            return False
        rows = (slots - self.start[env_ids]) % self.filled
        return bool(np.any((slots < self.filled) & (rows >= self._rows)))

    def saved(self, rows: int) -> None:
        """Rows [0, rows) of every env are written: writers of those slots may go on."""
        self._rows = rows
        self._control.moved(self, released=False)

    def release(self) -> None:
        """The save is over (written or abandoned): writers need not wait for it (idempotent)."""
        self._control.moved(self, released=True)


class WriteControl:
    """A ring's gates and guard, under the ring's own lock."""

    def __init__(self, lock: threading.Lock) -> None:
        self._cond = threading.Condition(lock)
        self._paused = 0  # WriteGates not yet released
        self.guard: SlotGuard | None = None
        self._held_seconds = 0.0  # writers' time waiting for a save, since the last take

    @contextlib.contextmanager
    def writing(self, written: Callable[[], tuple[np.ndarray, np.ndarray]]) -> Iterator[None]:
        """Hold the lock once no gate holds writers back and no save still has to write the
        slots about to be written (`written()`: their env ids and slots, lock held)."""
        with self._cond:
            held_since = None
            while self._paused or (self.guard is not None and self.guard.blocks(*written())):
                if held_since is None and not self._paused:
                    held_since = time.perf_counter()
                self._cond.wait()
            if held_since is not None:
                self._held_seconds += time.perf_counter() - held_since
            yield

    def pause(self) -> WriteGate:
        with self._cond:
            self._paused += 1
        return WriteGate(self)

    def resume(self) -> None:
        with self._cond:
            self._paused -= 1
            self._cond.notify_all()

    def begin_guard(self, start: np.ndarray, filled: int) -> SlotGuard:
        """A guard for a save of the first `filled` slots (lock held by the caller)."""
        if self.guard is not None:
            raise RuntimeError("a save of this ring is already in progress")
        self.guard = SlotGuard(self, start, filled)
        return self.guard

    def moved(self, guard: SlotGuard, released: bool) -> None:
        with self._cond:
            if released and self.guard is guard:
                self.guard = None
            self._cond.notify_all()

    def take_held_seconds(self) -> float:
        """Seconds writers waited for a save since the last call (lock held by the caller)."""
        held, self._held_seconds = self._held_seconds, 0.0
        return held
