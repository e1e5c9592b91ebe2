"""The cores a run uses and how its threads wait: what a busy core costs a run."""

from __future__ import annotations

import os
import subprocess
import sys

from quick_runs import ROOT


def python(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


def test_the_command_line_lets_torchs_threads_sleep_while_they_wait_unless_told_otherwise():
    # Spinning threads made a run on 2 cores, one of them busy, 10x slower (cores.py).
    code = (
        "import os, sys; from atari_dqn.cli import main; "
        "main(['train', '--game', 'Breakout', '--dry-run']); print(os.environ['OMP_WAIT_POLICY'])"
    )
    assert python(code) == "PASSIVE"
    assert python(code, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


def test_a_run_takes_no_more_torch_threads_than_the_cores_it_may_run_on():
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from atari_dqn.config import Config; from atari_dqn.cores import usable_cores; "
        "from atari_dqn.runtime import resolve; "
        "print(usable_cores(), resolve(Config()).torch_threads, sep=',')"
    )
    assert python(code) == "1,1"
