"""What a sweep has done: its record (`OUT/sweep.json`) and its one table.

The table shows each run's progress, speed, last score and state (and, while runs train,
the training time left), read from
what the runs write (the last rows of `metrics.csv` and `evals.csv`) and from the record,
so the live view during a sweep and `sweep --status` show the same thing.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from atari_dqn.config import Config
from atari_dqn.configfile import to_dict
from atari_dqn.durable import atomic_write_text
from atari_dqn.errors import ConfigError
from atari_dqn.progress import duration_text
from atari_dqn.rundir import RunDir


@dataclass(frozen=True)
class SweepRun:
    """One (game, seed) of a sweep: its run directory and its resolved config."""

    game: str
    seed: int
    run: RunDir
    cfg: Config

    @property
    def name(self) -> str:
        return self.run.name


class SweepRecord:
    """`OUT/sweep.json`: the command, the config and overrides, and each run's state."""

    def __init__(self, out: Path) -> None:
        self.path = out / "sweep.json"
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.exists() else {}

    def exists(self) -> bool:
        return self.path.is_file()

    def check_same_sweep(self, config: str | None, overrides: list[str]) -> None:
        """A sweep directory holds one config: runs of another would not compare."""
        if self.data and (self.data["config"], self.data["overrides"]) != (config, overrides):
            raise ConfigError(
                f"'{self.path.parent}' holds a sweep of config {self.data['config']} with "
                f"overrides {self.data['overrides'] or 'none'}; run it with those, or choose "
                "another --out"
            )

    def start(
        self, command: list[str], config: str | None, overrides: list[str], runs: list[SweepRun]
    ) -> None:
        self.data.update(
            command=shlex.join([Path(command[0]).name, *command[1:]]),
            config=config,
            overrides=overrides,
            resolved=to_dict(runs[0].cfg) if runs else {},
        )
        states = self.data.setdefault("runs", {})
        for run in runs:
            states.setdefault(run.name, {"game": run.game, "seed": run.seed, "state": "pending"})
        self.save()

    def state(self, name: str) -> str:
        return self.data.get("runs", {}).get(name, {}).get("state", "pending")

    def set(self, name: str, state: str, error: str | None = None) -> None:
        entry = self.data["runs"][name]
        entry["state"] = state
        entry["updated_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        entry.pop("error", None)
        if error:
            entry["error"] = error
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.data, indent=2) + "\n")


_STYLE = {"done": "green", "running": "cyan", "failed": "red", "stopped": "yellow"}


def last_row(path: Path) -> dict[str, str]:
    """The last row of a CSV file (reading its first and last lines only), or {}."""
    try:
        with path.open("rb") as f:
            header = f.readline()
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4096))
            tail = f.read().splitlines()
    except OSError:
        return {}
    if not header or len(tail) < 2 or tail[-1] == header.rstrip():
        return {}
    rows = list(csv.DictReader(io.StringIO((header + tail[-1]).decode())))
    return rows[0] if rows else {}


def progress_table(runs: list[SweepRun], record: SweepRecord) -> Group:
    """Each run's progress, speed, last score and state, in under 80 columns (a run's name
    says its game and seed); under it, while runs train, the time their steps left take at
    the running runs' speed; below the table, the error of each failed run, whole."""
    table = Table(title=f"sweep: {len(runs)} run(s)", box=box.SIMPLE_HEAD)
    for column in ("run", "agent steps", "steps/s", "last eval", "state"):
        table.add_column(column, justify="right" if column != "run" else "left")
    errors = []
    steps_left, speed = 0, 0.0
    for run in runs:
        metrics, evals = last_row(run.run.metrics_csv), last_row(run.run.evals_csv)
        state = record.state(run.name)
        error = record.data.get("runs", {}).get(run.name, {}).get("error")
        total = run.cfg.loop.total_steps
        steps = total if state == "done" else _int(metrics.get("agent_steps"))
        if state != "done":
            steps_left += total - (steps or 0)
        if state == "running":
            speed += _float(metrics.get("steps_per_second")) or 0.0
        table.add_row(
            run.name,
            f"{_count(steps)} / {_count(total)}" if steps is not None else "-",
            _fmt(metrics.get("steps_per_second"), "{:,.0f}"),
            _fmt(evals.get("mean"), "{:,.1f}"),
            Text(state, style=_STYLE.get(state, "")),
        )
        if error:
            errors.append(Text(f"{run.name}: {error}", style=_STYLE["failed"]))
    if speed > 0 and steps_left > 0:
        # The speed of the runs training now stands for the runs still waiting for a CPU;
        # evaluations and the runs' starts are not counted.
        left = duration_text(steps_left / speed)
        table.caption = f"{left} of training left at {speed:,.0f} agent steps/s"
    return Group(table, *errors)


def _count(steps: int) -> str:
    """Agent steps in a few columns: `600`, `250,000`, `12.5M`."""
    return f"{steps:,}" if steps < 10**6 else f"{steps / 1e6:.3g}M"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fmt(value: Any, pattern: str) -> str:
    number = _float(value)
    return "-" if number is None else pattern.format(number)
