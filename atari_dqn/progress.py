"""A run's progress line: in a terminal, one live line fitted to its width; elsewhere (a log
file, a pipe), a plain line now and then.

Whatever the width, the line keeps what says how far the run is first: agent steps of the
total, the time elapsed, the speed and the ETA. What follows (the return, the loop phases,
the loss, mean max-Q, epsilon, frames; then the game and a bar) is shown as far as it fits,
each part whole or not at all, so nothing is cut mid-word. Every part is plain text, never
markup: `[update 86%, env 9%]` is shown as it is.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from atari_dqn.timers import summary

GAP = "  "
BAR_MIN = 10  # columns: a narrower bar says nothing the steps do not


def fit(first: list[str], then: list[str], width: int | None) -> str:
    """`first` and as many of `then` (in order) as fit in `width` columns, joined by `GAP`;
    `width` None: all of them. A part of `first` that does not fit is left out (the very
    first is kept however long); the parts of `then` stop at the first that does not."""
    line, whole = "", True
    for i, part in enumerate([*first, *then]):
        if i >= len(first) and not whole:
            break  # nothing less useful in place of what is left out
        joined = f"{line}{GAP}{part}" if line else part
        if width is not None and len(joined) > width and i > 0:
            if i < len(first):
                whole = False
                continue  # a later (shorter) essential part may still fit
            break
        line = joined
    return line


class Progress:
    """The progress of a run over agent steps. `tick` after each step takes the figures of
    the moment every `REFRESH_S` seconds; a terminal shows them on a live line, anything else
    gets them as a line every `PLAIN_EVERY_S` seconds and at the end."""

    REFRESH_S = 2.0
    PLAIN_EVERY_S = 60.0
    WARMUP_S = 10.0  # learning's first seconds (compiling, capturing), not timed for the ETA
    MIN_LEARNING_S = 10.0  # learning time measured, after those, before an ETA is given
    WINDOW_S = 60.0  # the ETA's speed: that of the last minute of learning

    def __init__(
        self,
        total_steps: int,
        start_step: int,
        description: str,
        frame_skip: int,
        console: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from rich.console import Console

        self._console = console if console is not None else Console()
        self._clock = clock
        self._total = total_steps
        self._game = description
        self._frame_skip = frame_skip
        self._phases = ""
        self._started = clock()
        self._step = start_step
        self._figures: tuple[str, list[str]] = ("", [])  # SPS, the parts after the ETA
        self._eta = ""
        self._live = None
        self._next_plain = self._started + self.PLAIN_EVERY_S
        if self._console.is_terminal:
            from rich.live import Live

            self._live = Live(_Line(self), console=self._console, refresh_per_second=2)
            self._live.start()
        self.begin(start_step, 0)

    def begin(self, step: int, learning_from: int) -> None:
        """Training starts at `step`; learning (the slower phase) from step `learning_from`."""
        self._learning_from = learning_from
        self._last = (step, self._clock())
        self._next_refresh = self._last[1] + self.REFRESH_S
        # Steps and seconds of each phase; learning's first WARMUP_S seconds apart.
        self._spent = {"random": [0, 0.0], "warm-up": [0, 0.0], "learning": [0, 0.0]}
        self._recent: deque[tuple[int, float]] = deque()  # learning's last WINDOW_S seconds

    def phases(self, seconds: dict[str, float]) -> None:
        """Where the time went in the interval just logged (shown until the next one)."""
        self._phases = summary(seconds, top=3)

    def tick(self, step: int, epsilon: float, returns: Any, learner: Any) -> None:
        """After each step: every few seconds, the figures of the moment."""
        self._step = step  # the steps always current, the final line's included
        now = self._clock()
        if now < self._next_refresh:
            return
        self._next_refresh = now + self.REFRESH_S
        last_step, last_time = self._last
        self._last = (step, now)
        name = self._phase(last_step)
        phase = self._spent[name]
        phase[0] += step - last_step
        phase[1] += now - last_time
        if name == "learning":
            self._recent.append((step - last_step, now - last_time))
            while sum(s for _, s in self._recent) - self._recent[0][1] >= self.WINDOW_S:
                self._recent.popleft()
        means = learner.peek_metrics()
        then = [
            f"return {np.mean(returns) if returns else float('nan'):.1f}",
            *([f"[{self._phases}]"] if self._phases else []),
            f"loss {float(means.get('loss', np.nan)):.4f}",
            f"maxQ {float(means.get('max_q', np.nan)):.3f}",
            f"eps {epsilon:.3f}",
        ]
        speed = f"{(step - last_step) / (now - last_time):,.0f} SPS"
        self._eta = self._eta_text(step)
        self._figures = (speed, then)
        if self._live is None and now >= self._next_plain:
            self._next_plain = now + self.PLAIN_EVERY_S
            self.print(self.line(None))

    def line(self, width: int | None) -> str:
        """The figures of the last refresh in `width` columns (None: no limit), without the
        bar: steps of the total, elapsed, SPS, the ETA, then what fits."""
        speed, then = self._figures
        elapsed = duration_text(self._clock() - self._started)
        first = [f"{self._step:,}/{self._total:,} steps", elapsed, *([speed] if speed else [])]
        first += [self._eta] if self._eta else []
        frames = self._step * self._frame_skip
        then = [*then, f"{f'{frames / 1e6:.2f}M' if frames >= 10**6 else f'{frames:,}'} frames"]
        return fit(first, then, width)

    def render(self, width: int) -> Any:
        """`line(width)` as rich text, led by the game and a bar when the columns left
        leave room for one."""
        from rich.text import Text

        line = self.line(width)
        left = width - len(line) - len(self._game) - 2 * len(GAP)
        if left < BAR_MIN:
            return Text(line, no_wrap=True, overflow="crop")
        done = round(left * min(1.0, self._step / max(self._total, 1)))
        return Text.assemble(
            (self._game, "bold"),
            GAP,
            ("━" * done, "bar.complete"),
            ("━" * (left - done), "bar.back"),
            GAP,
            line,
            no_wrap=True,
            overflow="crop",
        )

    def _phase(self, step: int) -> str:
        if step < self._learning_from:
            return "random"
        return "learning" if self._spent["warm-up"][1] >= self.WARMUP_S else "warm-up"

    def _eta_text(self, step: int) -> str:
        """The time left: random play at its measured speed, then learning at the speed of
        its last minute (evaluations and checkpoints in it included), which follows a
        change of speed within that minute; `(measuring)` until a minute is measured."""
        random_steps, random_s = self._spent["random"]
        if step < self._learning_from:
            left = (self._learning_from - step) * random_s / max(random_steps, 1)
            return f"ETA ? (random play ends in {duration_text(left)}, then learning)"
        learn_s = self._spent["learning"][1]
        if learn_s < self.MIN_LEARNING_S:  # its warm-up, then its first seconds
            return "ETA ? (timing learning)"
        rate = sum(n for n, _ in self._recent) / sum(s for _, s in self._recent)
        eta = f"ETA {duration_text((self._total - step) / max(rate, 1e-9))} at {rate:,.0f} steps/s"
        return eta if learn_s >= self.WINDOW_S else f"{eta} (measuring)"

    def print(self, message: str) -> None:
        """A message above the live line, or a line of its own; never wrapped or parsed."""
        if self._live is None:
            print(message, flush=True)
        else:
            self._console.print(message, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
        else:
            self.print(self.line(None))


class _Line:
    """The live line, drawn at the terminal's width each time rich refreshes it."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield self._progress.render(options.max_width)


def duration_text(seconds: float) -> str:
    """`3 days, 4:05:06`, `0:01:02`: a duration."""
    return str(_dt.timedelta(seconds=round(seconds)))


class NullProgress:
    """No bar; messages still reach the terminal."""

    def begin(self, step: int, learning_from: int) -> None: ...

    def phases(self, seconds: dict[str, float]) -> None: ...

    def tick(self, step: int, epsilon: float, returns: Any, learner: Any) -> None: ...

    def print(self, message: str) -> None:
        print(message, flush=True)

    def close(self) -> None: ...
