"""Starting and resuming a run in its directory: what `train`, `train --resume` and a sweep's
tasks call. One process trains a run at a time (the run's lock), and a resume keeps what a
checkpoint is made of (its game, env settings, replay and number of envs).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from atari_dqn import checkpoint as ckpt
from atari_dqn.config import Config
from atari_dqn.configfile import flatten
from atari_dqn.errors import ConfigError
from atari_dqn.loop import Trainer
from atari_dqn.rundir import RunDir


def train(cfg: Config, run_dir: Path) -> int:
    """Start a new run in `run_dir` (which must not hold one already)."""
    run = RunDir(run_dir)
    if run.holds_run():
        raise ConfigError(
            f"'{run}' already holds a run; continue it with `train --resume {run}` "
            "or choose another --run-dir"
        )
    with run.locked():
        run.write_config(cfg)
        print(f"training {cfg.env.game} into {run}")
        _fail_writes_past_file_size_limits()
        return Trainer(cfg, run).run()


def resume(run_dir: Path, overrides: list[str] | None = None) -> int:
    """Continue the run in `run_dir` from its checkpoint (overrides may extend it)."""
    run = RunDir(run_dir)
    cfg = run.read_config(overrides)
    _check_unchanged(run.read_config(), cfg)
    with run.locked():
        state = ckpt.load_state(run)
        trainer = Trainer(cfg, run)
        ckpt.check_compatible(state, game=cfg.env.game, n_actions=trainer.n_actions, run=run)
        trainer.restore(state, ckpt.load_replay(run))
        run.write_config(cfg)
        print(f"resuming {cfg.env.game} in {run} at {trainer.agent_steps:,} agent steps")
        _fail_writes_past_file_size_limits()
        return trainer.run()


def _fail_writes_past_file_size_limits() -> None:
    """Under a file-size limit (ulimit -f), a checkpoint write past it then fails, and the
    run reports that in one line, instead of the kernel killing the process (SIGXFSZ).
    Python sets signal handlers in the main thread only; elsewhere the default stays."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


# What a checkpoint is made of: a resume cannot change them (its env states, its replay and
# its network's shape would not fit).
_FIXED_ON_RESUME = ("env.", "replay.capacity", "replay.history_length", "loop.num_envs")


def _check_unchanged(saved: Config, cfg: Config) -> None:
    before, after = flatten(saved), flatten(cfg)
    changed = [
        f"{key} ({before[key]} -> {after[key]})"
        for key in before
        if key.startswith(_FIXED_ON_RESUME) and before[key] != after[key]
    ]
    if changed:
        raise ConfigError(
            f"a resumed run keeps its game, env settings, replay and envs, and the overrides "
            f"change {', '.join(changed)}: start a new run for that"
        )


def start_or_resume(cfg: Config, run_dir: Path) -> int:
    """Resume `run_dir` from its checkpoint if it has one, else start `cfg` there afresh
    (after clearing what a start that died before its first checkpoint left behind)."""
    run = RunDir(run_dir)
    if run.holds_run():
        if ckpt.has_checkpoint(run):
            return resume(run_dir)
        with run.locked():  # never clear files that a live trainer of this run is writing
            run.clear_attempt()
    return train(cfg, run_dir)
