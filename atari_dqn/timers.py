"""Where a run's time goes: wall time per loop phase, and the updates' time on the GPU.

Every moment of the loop is charged to exactly one phase (`other` until a phase is
entered), so per logging interval the phases add up to its wall time. A phase is entered
with `with timer.env:`; entering one inside another charges the inner one and goes back to
the outer one after. The cost is two `perf_counter` reads and two calls per phase entered, about
1 microsecond in all (`python -m atari_dqn.timers` measures it): about 10 microseconds per
vector step of 16 envs with its 4 updates, under 0.5% at 5,000 agent steps/s.

On CUDA the update phase is the host's time to launch (or wait for) the update; the GPU's
own time comes from CUDA events around each update (`GpuClock`), read once per interval.
"""

from __future__ import annotations

import time
from typing import Any

PHASES = ("env", "act", "update", "batch", "ring", "log", "eval", "checkpoint", "other")
"""The loop's phases:
- env: waiting for the env workers (on a CPU at one env: stepping the env itself);
- act: choosing the actions (the Q-network's forward pass and exploration draws);
- update: the learner's gradient steps and target copies;
- batch: waiting for a sampled batch (sampling it, without the prefetch thread);
- ring: writing the step into the replay (and waiting for a background checkpoint that
  has not yet saved the slots it writes);
- log: metrics, TensorBoard, the progress bar;
- eval: evaluations during training (and their videos);
- checkpoint: the checkpoint's synchronous part (its state; with a stop, all of it);
- other: everything else (the loop's own bookkeeping)."""


class _Phase:
    """A context manager charging the time inside it to one phase of `timer`."""

    __slots__ = ("_name", "_outer", "_timer")

    def __init__(self, timer: PhaseTimer, name: str) -> None:
        self._timer, self._name, self._outer = timer, name, "other"

    def __enter__(self) -> None:
        self._outer = self._timer.switch(self._name)

    def __exit__(self, *exc: object) -> None:
        self._timer.switch(self._outer)


class PhaseTimer:
    """Wall seconds per phase since the last `take()`, phases as attributes
    (`with timer.update: ...`)."""

    def __init__(self) -> None:
        self._seconds = dict.fromkeys(PHASES, 0.0)
        self._current = "other"
        self._since = time.perf_counter()
        for name in PHASES:
            setattr(self, name, _Phase(self, name))

    def switch(self, phase: str) -> str:
        """Charge the time since the last switch to the current phase, enter `phase`;
        returns the phase left."""
        now = time.perf_counter()
        self._seconds[self._current] += now - self._since
        self._since = now
        left, self._current = self._current, phase
        return left

    def move(self, seconds: float, source: str, destination: str) -> None:
        """Recharge `seconds` already charged to `source` to `destination` (a wait measured
        inside a phase that belongs to another)."""
        seconds = min(seconds, self._seconds[source])
        self._seconds[source] -= seconds
        self._seconds[destination] += seconds

    def take(self) -> dict[str, float]:
        """Seconds per phase since the last call (they add up to the wall time between the
        two calls), then start counting afresh."""
        self.switch(self._current)
        seconds, self._seconds = self._seconds, dict.fromkeys(PHASES, 0.0)
        return seconds


def shares(seconds: dict[str, float]) -> dict[str, float]:
    """Each phase's fraction of the total."""
    total = sum(seconds.values()) or 1.0
    return {k: v / total for k, v in seconds.items()}


def summary(seconds: dict[str, float], top: int | None = None) -> str:
    """`env 41%, update 30%, ...` in decreasing order (the `top` largest)."""
    ordered = sorted(shares(seconds).items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{k} {v:.0%}" for k, v in ordered)


class GpuClock:
    """The GPU's time for the updates, from a CUDA event pair around each one."""

    def __init__(self) -> None:
        import torch

        self._torch = torch
        self._pairs: list[tuple[Any, Any]] = []
        self._spare: list[tuple[Any, Any]] = []
        self._open: tuple[Any, Any] | None = None

    def start(self) -> None:
        pair = (
            self._spare.pop()
            if self._spare
            else (
                self._torch.cuda.Event(enable_timing=True),
                self._torch.cuda.Event(enable_timing=True),
            )
        )
        pair[0].record()
        self._open = pair

    def stop(self) -> None:
        self._open[1].record()
        self._pairs.append(self._open)

    def take(self) -> tuple[float, int]:
        """(GPU seconds, updates) since the last call (waits for the last update)."""
        if not self._pairs:
            return 0.0, 0
        self._pairs[-1][1].synchronize()
        seconds = sum(a.elapsed_time(b) for a, b in self._pairs) / 1e3
        count = len(self._pairs)
        self._spare += self._pairs
        self._pairs = []
        return seconds, count


class NullGpuClock:
    """No GPU: nothing to time."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def take(self) -> tuple[float, int]:
        return float("nan"), 0


def _measure_cost(switches: int = 1_000_000) -> float:
    """Microseconds per phase entered and left."""
    timer = PhaseTimer()
    start = time.perf_counter()
    for _ in range(switches):
        with timer.update:
            pass
    return (time.perf_counter() - start) / switches * 1e6


if __name__ == "__main__":
    print(f"{_measure_cost():.2f} microseconds per phase entered and left")
