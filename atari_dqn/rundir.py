"""A run directory: the one place that names its files and reads or writes its records.

```
runs/Breakout-20261125-120000/
  config.yaml     the resolved config          metrics.csv   one row per logging interval
  evals.csv       one row per evaluation       eval.json     written by `eval`
  training_games.json   the last 100 training games' raw scores
  tensorboard/    event files                  checkpoint/   state.pt + replay.ring
  run.log         starts, stops, checkpoints' failures, each with the time
  runtime.json    how the run runs on this machine (device, speed switches), as resolved,
                  and the code (git commit) of each start that trained it
  videos/         evaluation games, the Q-values beside the screen (training/: those of the
                  evaluations during training)
```
`train`, `eval`, `report` and the sweep all find a run's files through `RunDir`, so a run
directory copied anywhere can be evaluated, reported and resumed there.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atari_dqn.config import Config, fixed_on_resume_keys
from atari_dqn.configfile import flatten, load_config, to_yaml
from atari_dqn.durable import atomic_write_text
from atari_dqn.errors import ConfigError
from atari_dqn.shell import MAKE_MARKER, atari_dqn_command, near

SITTING_START = re.compile(
    r"(?P<stamp>\S+ \S+ UTC)  (started|resumed) \S+ at [\d,]+ agent steps "
    r"\(pid (?P<pid>\d+)\)$"
)
"""The line of `run.log` that begins a sitting (`logs.RunLogs` writes it)."""
SITTING_END = re.compile(r"\S+ \S+ UTC  time: ")
"""The line that ends one: where its time went (`loop.Trainer.run`, however it ends)."""
STATE_FILE = "state.pt"
"""In a checkpoint folder: networks, optimiser, counters, RNG and env states."""
REPLAY_FILE = "replay.ring"
"""In a checkpoint folder: the frame ring (`atari_dqn.replay.ringfile`)."""


class RunDir:
    """The files of one run, by what they hold."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_file = self.path / "config.yaml"
        self.metrics_csv = self.path / "metrics.csv"
        self.evals_csv = self.path / "evals.csv"
        self.eval_record = self.path / "eval.json"
        self.training_games = self.path / "training_games.json"
        """The raw scores of the last 100 training games, with the step (each checkpoint)."""
        self.tensorboard = self.path / "tensorboard"
        self.log_file = self.path / "run.log"
        self.runtime_record = self.path / "runtime.json"
        """The resolved runtime (`atari_dqn.runtime.Runtime`) of its latest start, and the code
        of every start whose steps the run kept (`record_start`)."""
        self.videos = self.path / "videos"
        """Evaluation games as videos (`eval --video`)."""
        self.training_videos = self.videos / "training"
        """The median game of each evaluation during training (`eval.video=true`); apart,
        so that `eval --video` at the same step never overwrites one."""
        self.stop_request = self.path / "stop"
        """Created by whoever wants the run to checkpoint and stop (a sweep on Ctrl-C)."""
        self.checkpoint = self.path / "checkpoint"
        """The complete checkpoint; written as `checkpoint.tmp`, the previous one kept as
        `checkpoint.old` until the new one is in place (`atari_dqn.checkpoint`)."""
        self.checkpoint_tmp = self.path / "checkpoint.tmp"
        self.checkpoint_old = self.path / "checkpoint.old"

    @classmethod
    def new(cls, game: str, root: Path = Path("runs")) -> RunDir:
        """`runs/<game>-<UTC timestamp>`, the default home of a run."""
        return cls(root / f"{game}-{_dt.datetime.now(_dt.timezone.utc):%Y%m%d-%H%M%S}")

    def __str__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    def holds_run(self) -> bool:
        """Whether a run was started here (its config is written first)."""
        return self.config_file.is_file()

    def read_config(self, overrides: list[str] | None = None) -> Config:
        """The resolved config the run was started with, with `key=value` overrides applied."""
        if not self.path.is_dir():
            raise ConfigError(f"run directory '{self.path}' not found")
        if not self.holds_run():
            raise ConfigError(
                f"'{self.path}' is not a run directory: it has no {self.config_file.name}"
            )
        return load_config(self.config_file, overrides)

    def resumed_config(self, overrides: list[str] | None = None) -> Config:
        """The config a resume with `overrides` runs: the saved one with them applied, after
        checking that they leave alone what a resumed run keeps (`fixed_on_resume_keys`)."""
        cfg = self.read_config(overrides)
        before, after = flatten(self.read_config()), flatten(cfg)
        changed = [
            f"{key} ({before[key]} -> {after[key]})"
            for key in sorted(fixed_on_resume_keys())
            if before[key] != after[key]
        ]
        if changed:
            raise ConfigError(
                f"a resumed run keeps its game, env settings, replay and envs, and the overrides "
                f"change {', '.join(changed)}: start a new run for that"
            )
        return cfg

    def write_config(self, cfg: Config) -> None:
        self.create()
        atomic_write_text(self.config_file, to_yaml(cfg))

    def create(self) -> None:
        """Make the directory (and its parents), or say in one line why it cannot be made
        (a read-only file system, a path under /proc)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc) from None

    def _unwritable(self, exc: OSError) -> ConfigError:
        return ConfigError(
            f"cannot write the run directory '{self}': {exc.strerror or exc}; choose a "
            "--run-dir (RUN_DIR= under make) on a file system you can write to"
        )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run's lock while training it: one process at a time. The kernel releases
        it when its holder dies, so a run whose trainer was killed can resume at once."""
        self.create()
        try:
            lock = (self.path / "run.lock").open("a")
        except OSError as exc:
            raise self._unwritable(exc) from None
        with lock as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(
                    f"another process is training '{self}'; stop it first (or wait for it)"
                ) from None
            yield

    def clear_attempt(self) -> None:
        """Remove what a start that died before its first checkpoint left (its logs and
        half-written checkpoint; its config stays), so the run can start again."""
        for path in (self.metrics_csv, self.evals_csv):
            path.unlink(missing_ok=True)
        for folder in (self.tensorboard, self.checkpoint_tmp):
            shutil.rmtree(folder, ignore_errors=True)

    def resume_command(self) -> str:
        """The command that resumes this run, as it works from where the user stands: `make
        resume RUN_DIR=...` for a run the Makefile started, else `atari_dqn_command`'s."""
        return self._command("resume", "train", "--resume")

    def eval_command(self) -> str:
        """The command that evaluates this run, in the form `resume_command` gives."""
        return self._command("eval", "eval", "--run-dir")

    def _command(self, target: str, *words: str) -> str:
        """`make <target> RUN_DIR=...` under make, else the CLI's `<words> <this run>`."""
        if os.environ.get(MAKE_MARKER):
            return f"make {target} RUN_DIR={shlex.quote(near(self.path))}"
        return atari_dqn_command(*words, self.path)

    def unfinished_sitting(self) -> str | None:
        """`pid 4915, from 2026-12-07 14:08:59 UTC` for the run's last sitting if `run.log`
        has no end of it (every sitting that ends, however it ends, writes where its time
        went): it was killed (kill -9, out of memory, a power cut). None if it ended."""
        lines = self.log_file.read_text().splitlines() if self.log_file.is_file() else []
        for line in reversed(lines):
            if SITTING_END.match(line):
                return None
            start = SITTING_START.match(line)
            if start:
                return f"pid {start['pid']}, from {start['stamp']}"
        return None

    def record_start(self, runtime: dict[str, Any], code: dict[str, Any], step: int) -> None:
        """Write `runtime_record` for a start at agent step `step`: its runtime, and under
        `code` the code (`atari_dqn.provenance.code_version`) of each start since step 0, so
        that a run resumed after the code changed says which commit trained which steps. A
        start from a checkpoint older than the latest start redoes that start's steps, so
        the starts at or after `step` are dropped."""
        before = self.read_record(self.runtime_record) or {}
        kept = [start for start in before.get("code", []) if start["step"] < step]
        self.write_record(self.runtime_record, {**runtime, "code": [*kept, {"step": step, **code}]})

    def trained_by(self) -> list[dict[str, Any]]:
        """The code of each start, from step 0 on: `[{"step", "commit", "dirty"}, ...]`, empty
        for a run that has not started."""
        return (self.read_record(self.runtime_record) or {}).get("code", [])

    @staticmethod
    def read_record(path: Path) -> dict[str, Any] | None:
        """One of the run's JSON records (`eval_record`, `training_games`), or None."""
        return json.loads(path.read_text()) if path.is_file() else None

    @staticmethod
    def write_record(path: Path, record: dict[str, Any]) -> None:
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")
