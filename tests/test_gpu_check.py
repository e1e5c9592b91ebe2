"""`make gpu-check`'s run record, from a real (CPU, smoke) run; and the whole script at CPU
size (`--dry-run`, slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from quick_runs import QUIET, ROOT, SMOKE

from atari_dqn.bench.realrun import summarise
from atari_dqn.configfile import load_config
from atari_dqn.runs import evaluate_run, train
from atari_dqn.timers import PHASES


def test_a_real_runs_record_reads_its_learning_speed_phases_memory_and_score(tmp_path):
    run = tmp_path / "run"
    cfg = load_config(SMOKE, [*QUIET, "eval.interval_steps=0", "logging.interval_steps=250"])
    assert train(cfg, run) == 0
    assert evaluate_run(run, episodes=2, overrides=["eval.max_episode_frames=800"]) == 0
    rows, summary = summarise(run)
    # Wholly learning: the intervals from 750 on, less the first (its warm-ups).
    assert [r["agent_steps"] for r in rows] == [1250, 1500, 1750, 2000]
    assert summary["agent_steps_timed"] == 1000 and summary["learning_agent_steps_per_s"] > 0
    assert summary["epsilon_min"] < summary["epsilon_max"] < 1  # read from the rows
    assert set(summary["time_shares"]) == set(PHASES)
    assert sum(summary["time_shares"].values()) == pytest.approx(1, abs=1e-3)
    assert summary["gpu_memory_peak_mb_torch"] is None  # the CPU: no GPU column filled
    assert summary["trainer_rss_peak_mb"] > 100
    assert summary["eval"]["episodes"] == 2 and summary["eval"]["random_play"] == 1.7


@pytest.mark.slow
def test_gpu_check_runs_every_stage_at_cpu_size_with_dry_run(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "RESULTS": str(tmp_path)}
    done = subprocess.run(
        ["benchmarks/gpu_check.sh", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (record,) = tmp_path.glob("*-run.json")
    assert json.loads(record.read_text())["summary"]["learning_agent_steps_per_s"] > 0
