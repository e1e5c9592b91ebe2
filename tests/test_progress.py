"""The progress line as a user sees it: a real run in a terminal (a pseudo-terminal of a
given width, resized as a user resizes a window) and a real run writing to a pipe."""

from __future__ import annotations

import datetime
import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

from quick_runs import ROOT, SMOKE

# The smoke run, shortened: learning from step 500, a logging row at 1,000 and at the end.
ARGS = [
    "learner.device=cpu",
    "learner.compile=false",
    "eval.interval_steps=0",
    "loop.total_steps=1200",
]
LEADS = re.compile(r"[\d,]+/1,200 steps  \d+:\d\d:\d\d  [\d,]+ SPS  ETA ")
"""What every line starts with, however narrow: steps of the total, elapsed, SPS, the ETA."""
ETA = re.compile(r"ETA (\? \([^)]*\)|\S+( days?, \S+)? at [\d,]+ steps/s( \(measuring\))?)")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _resize(fd: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))


def _frames(raw: bytes) -> list[str]:
    """The lines the terminal showed, one per redraw, escape codes removed."""
    text = ANSI.sub("", raw.decode(errors="replace"))
    return [frame.rstrip() for frame in re.split(r"[\r\n]", text) if " steps  " in frame]


def test_in_a_terminal_the_line_fits_its_width_leading_with_steps_elapsed_sps_and_eta(tmp_path):
    # Wide, the line shows the game, a bar, and the loop phases in brackets (which rich
    # would read as a markup tag and drop); narrowed to 80 columns, it keeps the steps, the
    # time elapsed, the speed and the ETA, whole, and leaves out what no longer fits.
    parent, child = pty.openpty()
    _resize(child, 200)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    run = tmp_path / "run"
    args = ["--game", "Breakout", "--config", str(SMOKE), "--run-dir", str(run), *ARGS]
    proc = subprocess.Popen(
        [sys.executable, "-m", "atari_dqn", "train", *args],
        cwd=ROOT,
        stdin=child,
        stdout=child,
        stderr=child,
        env={**env, "TERM": "xterm-256color"},
    )
    os.close(child)
    raw, narrow_from = b"", None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([parent], [], [], 0.2)
        try:
            chunk = os.read(parent, 65536) if ready else b""
        except OSError:  # the child is gone and the terminal closed
            break
        if ready and not chunk:
            break
        raw += chunk
        if narrow_from is None and any("[update " in f for f in _frames(raw)):
            _resize(parent, 80)
            time.sleep(1.5)  # a redraw or two under way at the old width
            narrow_from = len(raw)
    assert proc.wait(timeout=60) == 0, raw.decode(errors="replace")[-2000:]
    assert narrow_from is not None, "no line showed the loop phases"
    wide = _frames(raw[:narrow_from])
    shown = next(f for f in wide if "[update " in f)
    assert re.match(r"Breakout  ━+  ", shown), shown
    assert LEADS.search(shown) and re.search(r"\[update \d+%, \w+ \d+%, \w+ \d+%\]", shown)
    narrow = _frames(raw[narrow_from:])
    assert narrow and all(len(f) <= 80 and LEADS.match(f) for f in narrow), narrow
    assert narrow[-1].startswith("1,200/1,200 steps"), narrow[-1]
    assert not any("…" in f for f in wide + narrow)  # no part cut mid-word


def test_without_a_terminal_the_run_writes_whole_lines_leading_with_the_same_figures(tmp_path):
    run = tmp_path / "run"
    args = ["--game", "Breakout", "--config", str(SMOKE), "--run-dir", str(run), *ARGS]
    result = subprocess.run(
        [sys.executable, "-m", "atari_dqn", "train", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if " steps  " in line]
    assert lines and all(LEADS.match(line) for line in lines), result.stdout
    last = lines[-1]  # the figures at the end, on one line however long
    assert last.startswith("1,200/1,200 steps") and len(last) > 80, last
    phases = r"\[update \d+%, \w+ \d+%, \w+ \d+%\]"
    assert re.search(rf"return \S+  {phases}  loss \S+  maxQ \S+  eps \S+  4,800 frames$", last)
    assert "\x1b" not in result.stdout  # no terminal codes in a log file


class _Learner:
    """What the line reads of a learner: its latest metrics."""

    def peek_metrics(self) -> dict[str, float]:
        return {"loss": 0.01, "max_q": 1.0}


def test_the_eta_follows_the_learning_speed_within_a_minute_and_says_when_it_is_measuring():
    # A run's clock, driven through minutes of a run in no time: random play, learning's
    # slow first minute (compiling, warming caches), then its steady speed.
    from rich.console import Console

    from atari_dqn.progress import Progress

    now = [0.0]
    progress = Progress(
        1_000_000, 0, "Breakout", 4, console=Console(file=io.StringIO()), clock=lambda: now[0]
    )
    progress.begin(0, learning_from=5_000)
    step, etas = 0, []

    def play(seconds: float, speed: float) -> None:
        nonlocal step
        for _ in range(int(seconds / Progress.REFRESH_S)):
            now[0] += Progress.REFRESH_S
            step += int(speed * Progress.REFRESH_S)
            progress.tick(step, 1.0, [], _Learner())
            etas.append(re.search(ETA, progress.line(None))[0])

    play(8, 500)  # random play, to 5,000 steps
    assert etas[-1] == "ETA ? (random play ends in 0:00:02, then learning)"
    play(2, 500)
    play(10, 5)  # learning's warm-up, not timed
    play(6, 30)
    assert etas[-1] == "ETA ? (timing learning)"
    play(50, 30)  # slow, and said to be measured still
    assert etas[-1].endswith("at 30 steps/s (measuring)")
    play(60, 100)  # the steady speed: within a minute, the ETA's
    assert etas[-1].endswith("at 100 steps/s"), etas[-1]
    left = (1_000_000 - step) / 100
    assert etas[-1].startswith(f"ETA {datetime.timedelta(seconds=round(left))} ")
