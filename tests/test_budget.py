"""Schedules a budget cuts short are said at a run's start, one line each, and in run.log."""

from __future__ import annotations

import subprocess
import sys

from quick_runs import QUIET, ROOT, SMOKE

from atari_dqn.budget import budget_warnings
from atari_dqn.configfile import PRESETS, load_config


def test_a_run_whose_schedules_outlast_its_budget_says_which_at_its_start(tmp_path):
    # The case at smoke size: the target copy, epsilon's decay and the evaluations
    # all fall after the last step.
    run = tmp_path / "run"
    cut = ["loop.total_steps=900", "learner.target_update_steps=900", "eval.interval_steps=1000"]
    args = ["--game", "Breakout", "--config", str(SMOKE), "--run-dir", str(run), *QUIET, *cut]
    result = subprocess.run(
        [sys.executable, "-m", "atari_dqn", "train", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert [line.split("=", 1)[0] for line in warned] == [
        "warning: learner.target_update_steps",
        "warning: loop.epsilon_decay_steps",
        "warning: eval.interval_steps",
    ]
    assert "epsilon ends at 0.82, not loop.epsilon_end=0.1" in warned[1]
    log = (run / "run.log").read_text()
    assert all(f"  {line}\n" in log for line in warned)


def test_a_budget_before_learning_starts_is_said_alone_and_one_that_fits_says_nothing():
    nature = load_config(PRESETS / "nature.yaml", ["loop.total_steps=30000"])
    (line,) = budget_warnings(nature)
    assert line.startswith("loop.replay_start_steps=50,000 is at least loop.total_steps=30,000")
    assert budget_warnings(load_config(PRESETS / "cpu_demo.yaml")) == []
