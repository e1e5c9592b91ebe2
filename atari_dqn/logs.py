"""Where a run reports itself: CSV files, TensorBoard event files and a live progress bar.

Each sink has a null twin (`NullTensorBoard`, `NullProgress`), so the loop never asks
"is logging on?". Scalars reach this module already on the host, once per logging interval.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from atari_dqn.config import LoggingConfig
from atari_dqn.durable import atomic_write_text
from atari_dqn.rundir import RunDir


class CsvLog:
    """Append-only CSV whose columns are fixed by its first row (resume keeps appending)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._columns: list[str] | None = None
        if path.exists() and path.stat().st_size > 0:
            with path.open(newline="") as f:
                self._columns = next(csv.reader(f), None)

    def drop_after(self, step: int) -> None:
        """Remove the rows logged after agent step `step` (atomically): a run resumed from
        a checkpoint at `step` logs those steps again, and each step is logged once."""
        if self._columns is None:
            return
        with self.path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        kept = [row for row in rows if int(row["agent_steps"]) <= step]
        if len(kept) == len(rows):
            return
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self._columns)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.path, out.getvalue())

    def write(self, row: dict[str, Any]) -> None:
        new = self._columns is None
        if new:
            self._columns = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


class TensorBoard:
    """Scalars and histograms as TensorBoard event files in the run directory."""

    def __init__(self, log_dir: Path, start_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # A resumed run hides the events logged after its checkpoint, as CsvLog drops rows.
        purge = start_step + 1 if start_step else None
        self._writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self._writer.add_scalar(key, value, step)

    def bars(self, step: int, tag: str, values: np.ndarray, labels: list[str]) -> None:
        """One scalar per entry (e.g. per action) under `tag/<label>`, one chart each."""
        for label, value in zip(labels, values, strict=True):
            self._writer.add_scalar(f"{tag}/{label}", float(value), step)

    def close(self) -> None:
        self._writer.close()


class NullTensorBoard:
    """TensorBoard switched off."""

    def scalars(self, step: int, values: dict[str, float]) -> None: ...

    def bars(self, step: int, tag: str, values: np.ndarray, labels: list[str]) -> None: ...

    def close(self) -> None: ...


class Progress:
    """A rich progress bar over agent steps showing frames, SPS, ETA and the learning signals."""

    def __init__(self, total_steps: int, start_step: int, description: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            refresh_per_second=2,
        )
        self._bar.start()
        self._task = self._bar.add_task(
            description, total=total_steps, completed=start_step, info=""
        )

    def update(self, step: int, info: str) -> None:
        self._bar.update(self._task, completed=step, info=info)

    def advance(self, step: int) -> None:
        """Move the bar between logging intervals, keeping the last interval's figures."""
        self._bar.update(self._task, completed=step)

    def print(self, message: str) -> None:
        self._bar.console.print(message)

    def close(self) -> None:
        self._bar.stop()


class NullProgress:
    """No bar; messages still reach the terminal."""

    def update(self, step: int, info: str) -> None: ...

    def advance(self, step: int) -> None: ...

    def print(self, message: str) -> None:
        print(message, flush=True)

    def close(self) -> None: ...


class RunLogs:
    """All of a run's outputs: `metrics.csv` (training), `evals.csv` (evaluations), TensorBoard.

    A run that starts at `start_step` > 0 resumes from a checkpoint taken then: whatever was
    logged after it (before a crash) is dropped, so every step is logged once."""

    def __init__(
        self,
        run: RunDir,
        cfg: LoggingConfig,
        *,
        total_steps: int,
        start_step: int,
        game: str,
        action_names: list[str],
    ) -> None:
        self._labels = [f"{i}_{name}" for i, name in enumerate(action_names)]
        self.metrics = CsvLog(run.metrics_csv)
        self.evals = CsvLog(run.evals_csv)
        for log in (self.metrics, self.evals):
            log.drop_after(start_step)
        self.tensorboard = (
            TensorBoard(run.tensorboard, start_step) if cfg.tensorboard else NullTensorBoard()
        )
        self._log_file = run.log_file
        self.progress = Progress(total_steps, start_step, game) if cfg.progress else NullProgress()
        self.event(
            f"{'resumed' if start_step else 'started'} {game} at {start_step:,} agent steps "
            f"(pid {os.getpid()})"
        )

    def event(self, message: str) -> None:
        """Say `message` on the terminal and append it to `run.log`, which outlives a closed
        terminal (a dropped SSH session ends the run with its resume command there)."""
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        with self._log_file.open("a") as f:
            f.write(f"{stamp}  {message}\n")
        try:
            self.progress.print(message)
        except OSError:  # the terminal is gone
            pass

    def train_row(self, row: dict[str, Any], q_per_action: np.ndarray, actions: np.ndarray) -> None:
        """One training interval: scalars, plus the action histogram and mean Q per action."""
        step = int(row["agent_steps"])
        self.metrics.write(
            {
                **row,
                "action_counts": " ".join(str(int(c)) for c in actions),
                "q_per_action": " ".join(f"{q:.4g}" for q in q_per_action),
            }
        )
        self.tensorboard.scalars(step, {f"train/{k}": v for k, v in row.items()})
        self.tensorboard.bars(
            step, "actions/fraction", actions / max(1, actions.sum()), self._labels
        )
        self.tensorboard.bars(step, "q_per_action", q_per_action, self._labels)
        info = (
            f"{row['emulator_frames'] / 1e6:.2f}M frames  {row['steps_per_second']:.0f} SPS  "
            f"eps {row['epsilon']:.3f}  return {row['mean_return_100']:.1f}  "
            f"loss {row['loss']:.4f}  maxQ {row['mean_max_q']:.3f}"
        )
        self.progress.update(step, info)

    def eval_row(self, row: dict[str, Any]) -> None:
        self.evals.write(row)
        self.tensorboard.scalars(int(row["agent_steps"]), {f"eval/{k}": v for k, v in row.items()})
        self.progress.print(
            f"eval at {row['agent_steps']:,} steps: {row['mean_score']:.1f} "
            f"+- {row['ci95']:.1f} over {row['episodes']} games"
        )

    def close(self) -> None:
        self.tensorboard.close()
        self.progress.close()
