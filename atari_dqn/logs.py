"""Where a run reports itself: CSV files, TensorBoard event files, `run.log` and the
progress line (`atari_dqn.progress`).

Each sink has a null twin (`NullTensorBoard`, `NullProgress`), so the loop never asks
"is logging on?". Scalars reach the files already on the host, once per logging interval;
the progress line refreshes its figures every few seconds.
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

from atari_dqn.config import Config
from atari_dqn.durable import atomic_write_text
from atari_dqn.evaluate import too_few_games
from atari_dqn.progress import NullProgress, Progress
from atari_dqn.rundir import RunDir
from atari_dqn.timers import shares


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
        """Append `row`; a list is written as its items separated by spaces, a dict as one
        column per key (`protocol.epsilon`)."""
        row = _flat(row)
        new = self._columns is None
        if new:
            self._columns = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def _flat(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        elif isinstance(value, (list, tuple)):
            out[f"{prefix}{key}"] = " ".join(
                f"{x:g}" if isinstance(x, float) else str(x) for x in value
            )
        else:
            out[f"{prefix}{key}"] = value
    return out


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


class RunLogs:
    """All of a run's outputs: `metrics.csv` (training), `evals.csv` (evaluations), TensorBoard.

    A run that starts at `start_step` > 0 resumes from a checkpoint taken then: whatever was
    logged after it (before a crash) is dropped, so every step is logged once."""

    def __init__(
        self, run: RunDir, cfg: Config, *, start_step: int, action_names: list[str]
    ) -> None:
        game = cfg.env.game
        self._labels = [f"{i}_{name}" for i, name in enumerate(action_names)]
        self.metrics = CsvLog(run.metrics_csv)
        self.evals = CsvLog(run.evals_csv)
        for log in (self.metrics, self.evals):
            log.drop_after(start_step)
        self.tensorboard = (
            TensorBoard(run.tensorboard, start_step)
            if cfg.logging.tensorboard
            else NullTensorBoard()
        )
        self._log_file = run.log_file
        self.progress = (
            Progress(cfg.loop.total_steps, start_step, game, cfg.env.frame_skip)
            if cfg.logging.progress
            else NullProgress()
        )
        self.event(
            f"{'resumed' if start_step else 'started'} {game} at {start_step:,} agent steps "
            f"(pid {os.getpid()})"
        )

    def event(self, message: str, echo: bool = True) -> None:
        """Append `message` to `run.log`, which outlives a closed terminal (a dropped SSH
        session ends the run with its resume command there), and say it on the terminal
        unless `echo` is False (what the command line prints itself, such as an error)."""
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        with self._log_file.open("a") as f:
            f.write(f"{stamp}  {message}\n")
        if not echo:
            return
        try:
            self.progress.print(message)
        except OSError:  # the terminal is gone
            pass

    def train_row(
        self,
        row: dict[str, Any],
        q_per_action: np.ndarray,
        actions: np.ndarray,
        seconds: dict[str, float],
        usage: dict[str, float],
    ) -> None:
        """One training interval: scalars, the action histogram and mean Q per action,
        the seconds each loop phase took (`atari_dqn.timers`) and the memory used."""
        step = int(row["agent_steps"])
        times = {f"time_{phase}_s": value for phase, value in seconds.items()}
        self.metrics.write(
            {
                **row,
                "action_counts": [int(c) for c in actions],
                "q_per_action": [float(f"{q:.4g}") for q in q_per_action],
                **times,
                **usage,
            }
        )
        self.tensorboard.scalars(step, {f"train/{k}": v for k, v in row.items()})
        self.tensorboard.scalars(step, {f"time/{k}": v for k, v in shares(seconds).items()})
        self.tensorboard.scalars(step, {f"usage/{k}": v for k, v in usage.items()})
        self.tensorboard.bars(
            step, "actions/fraction", actions / max(1, actions.sum()), self._labels
        )
        self.tensorboard.bars(step, "q_per_action", q_per_action, self._labels)
        self.progress.phases(seconds)

    def eval_row(self, record: dict[str, Any]) -> None:
        """One evaluation during training (`EvalResult.record`)."""
        self.evals.write(record)
        scalars = {k: v for k, v in record.items() if isinstance(v, (int, float))}
        self.tensorboard.scalars(
            int(record["agent_steps"]), {f"eval/{k}": v for k, v in scalars.items()}
        )
        ci = (record["ci_high"] - record["ci_low"]) / 2
        self.progress.print(
            f"eval at {record['agent_steps']:,} steps: {record['mean']:.1f} "
            f"+- {ci:.1f} over {record['episodes']} games{too_few_games(record['episodes'])}"
        )

    def close(self) -> None:
        self.tensorboard.close()
        self.progress.close()
