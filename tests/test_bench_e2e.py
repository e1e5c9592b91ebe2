"""`bench e2e`: ours and Stable-Baselines3's DQN at the same number of envs, each reading its
rate, its epsilon and its steps timed from its own run; `bench contended`'s busy core and
`bench atari100k`'s finding of Dopamine."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

from atari_dqn.bench import atari100k, e2e
from atari_dqn.bench.contended import busy_core


@pytest.mark.parametrize("num_envs", [1, 2, 4, 8, 16])
def test_sb3_does_one_update_per_4_transitions_summed_over_envs_as_ours(num_envs):
    train_freq, gradient_steps = e2e.sb3_schedule(num_envs)
    # train_freq counts vector steps of num_envs transitions each
    assert train_freq * num_envs == 4 * gradient_steps


def test_every_e2e_headline_names_its_n_in_its_key_and_its_label():
    for headline in e2e.HEADLINES:
        n = re.fullmatch(r"(eager_)?ratio_vs_sb3_(\d+)env(_gpu)?", headline.key).group(2)
        assert re.search(rf"\b{n} envs? each\b", headline.label), headline


def test_our_timed_window_pools_its_intervals_and_reads_epsilon_from_the_rows():
    rows = [  # metrics.csv rows: agent_steps, the interval's rate, epsilon at the row
        {"agent_steps": "100", "steps_per_second": "1", "epsilon": "1.0"},
        {"agent_steps": "200", "steps_per_second": "50", "epsilon": "0.5"},
        {"agent_steps": "300", "steps_per_second": "100", "epsilon": "0.3"},
        {"agent_steps": "500", "steps_per_second": "50", "epsilon": "0.2"},
    ]
    window = e2e.timed_window(rows, timed_from=200)
    # 300 steps timed in 100/100 + 200/50 = 5 s; the row at 100 is before the window
    assert window == {
        "steps_per_second": 60.0,
        "steps_timed": 300,
        "epsilon_min": 0.2,
        "epsilon_max": 0.5,
    }


def test_ours_and_sb3_at_2_envs_each_time_the_same_window_and_read_it_from_their_runs(
    monkeypatch,
):
    # One torch thread in each: on a 2-core machine shared with other processes, torch's
    # spinning threads made each SB3 update about ten times slower.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    budget = dict(learn_steps=320, start_steps=200, capacity=2_000, num_envs=2)
    ours = e2e.in_subprocess("ours", **budget, extra=e2e.EAGER)  # eager: no compile to wait for
    sb3 = e2e.in_subprocess("sb3", **budget)
    for run in (ours, sb3):
        assert run["steps_per_second"] > 0
        # timed from step 200 + 320 // 4 = 280 to the end at 520, epsilon at its end there
        assert run["steps_timed"] == 240
        assert run["epsilon_min"] == run["epsilon_max"] == pytest.approx(e2e.EPSILON)


def test_the_contended_benchmarks_busy_core_spins_while_its_block_runs_and_not_after():
    with busy_core() as spinner:
        time.sleep(1.0)
        ticks = int(Path(f"/proc/{spinner.pid}/stat").read_text().split(")")[1].split()[11])
        # Its user CPU seconds: it ran, where a process waiting for something takes ~0.05
        assert ticks / os.sysconf("SC_CLK_TCK") > 0.3
    assert spinner.poll() is not None  # and it is gone


def test_bench_atari100k_says_why_dopamine_was_not_measured(tmp_path, monkeypatch):
    monkeypatch.delenv("DOPAMINE_SRC", raising=False)
    assert "set DOPAMINE_SRC and DOPAMINE_PYTHON" in atari100k.dopamine()
    monkeypatch.setenv("DOPAMINE_SRC", str(tmp_path))
    monkeypatch.setenv("DOPAMINE_PYTHON", sys.executable)
    assert "holds no dopamine/labs/atari_100k" in atari100k.dopamine()
    (tmp_path / "dopamine" / "labs" / "atari_100k").mkdir(parents=True)
    monkeypatch.setenv("DOPAMINE_PYTHON", str(tmp_path / "python"))
    assert "is not an executable" in atari100k.dopamine()
    monkeypatch.setenv("DOPAMINE_PYTHON", sys.executable)
    assert atari100k.dopamine() == (tmp_path, Path(sys.executable))
