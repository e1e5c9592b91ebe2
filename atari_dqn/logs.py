"""Where a run reports itself: CSV files, TensorBoard event files and a live progress bar.

Each sink has a null twin (`NullTensorBoard`, `NullProgress`), so the loop never asks
"is logging on?". Scalars reach this module already on the host, once per logging interval.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from atari_dqn.config import LoggingConfig
from atari_dqn.rundir import RunDir


class CsvLog:
    """Append-only CSV whose columns are fixed by its first row (resume keeps appending)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._columns: list[str] | None = None
        if path.exists() and path.stat().st_size > 0:
            with path.open(newline="") as f:
                self._columns = next(csv.reader(f), None)

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

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(log_dir))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self._writer.add_scalar(key, value, step)

    def bars(self, step: int, tag: str, values: np.ndarray) -> None:
        """One scalar per entry (e.g. per action) under `tag/i`, readable as a bar chart."""
        for i, value in enumerate(values):
            self._writer.add_scalar(f"{tag}/{i}", float(value), step)

    def close(self) -> None:
        self._writer.close()


class NullTensorBoard:
    """TensorBoard switched off."""

    def scalars(self, step: int, values: dict[str, float]) -> None: ...

    def bars(self, step: int, tag: str, values: np.ndarray) -> None: ...

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
    """All of a run's outputs: `metrics.csv` (training), `evals.csv` (evaluations), TensorBoard."""

    def __init__(
        self, run: RunDir, cfg: LoggingConfig, *, total_steps: int, start_step: int, game: str
    ) -> None:
        self.metrics = CsvLog(run.metrics_csv)
        self.evals = CsvLog(run.evals_csv)
        self.tensorboard = TensorBoard(run.tensorboard) if cfg.tensorboard else NullTensorBoard()
        self.progress = Progress(total_steps, start_step, game) if cfg.progress else NullProgress()

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
        self.tensorboard.bars(step, "actions/fraction", actions / max(1, actions.sum()))
        self.tensorboard.bars(step, "q_per_action", q_per_action)
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
