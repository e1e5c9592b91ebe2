"""The cores a run uses and how its threads wait: what a busy core costs a run."""

from __future__ import annotations

import os
import subprocess
import sys

from quick_runs import ROOT

WAITS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def python(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if k not in WAITS}, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


def test_the_command_line_has_torchs_threads_spin_briefly_then_sleep_unless_told_otherwise():
    # Long spins made a run on 2 cores, one of them busy, 10x slower; sleeping at once made
    # a run alone 10% slower (cores.py).
    code = (
        "import os, sys; from atari_dqn.cli import main; "
        "main(['train', '--game', 'Breakout', '--dry-run']); "
        "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'), sep=',')"
    )
    assert python(code) == "None,3000"
    assert python(code, OMP_WAIT_POLICY="PASSIVE") == "PASSIVE,None"
    assert python(code, GOMP_SPINCOUNT="100") == "None,100"


def test_a_run_takes_no_more_torch_threads_than_the_cores_it_may_run_on():
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from atari_dqn.config import Config; from atari_dqn.cores import usable_cores; "
        "from atari_dqn.runtime import resolve; "
        "print(usable_cores(), resolve(Config()).torch_threads, sep=',')"
    )
    assert python(code) == "1,1"


DENORMALS_AFTER = (
    "import torch; torch.set_num_threads(2); "
    # 4M floats whose bits make a denormal (~1.4e-42): torch's threads each take a share.
    "x = torch.full((4_000_000,), 1000, dtype=torch.int32).view(torch.float32); "
    "print(float(((x * 0.5) == 0).float().mean()))"
)


def test_a_run_flushes_denormal_floats_to_zero_in_every_torch_thread(tmp_path):
    # Adam's moments decay into denormals, each ~100x a normal float's cost on x86 (and JAX,
    # Dopamine's maths, flushes them). The flag is per thread, inherited by the threads made
    # after it: every thread of torch's pool must have it, after the command line's `train`.
    run = (
        "from atari_dqn.cli import main; "
        "assert main(['train', '--game', 'Breakout', '--config', 'configs/smoke.yaml', "
        f"'--run-dir', '{tmp_path / 'r'}', 'loop.total_steps=600', 'eval.interval_steps=0', "
        "'logging.progress=false']) == 0; "
    )
    assert python(DENORMALS_AFTER) == "0.0"  # torch's default: kept, in every thread
    assert python(run + DENORMALS_AFTER) == "1.0"


def test_the_librarys_train_leaves_a_processs_denormal_floats_as_they_were(tmp_path):
    # A test's process trains through `runs.train` beside code that needs IEEE floats
    # (hypothesis refuses to draw subnormal floats where they are flushed).
    run = (
        "from atari_dqn.configfile import load_config; from atari_dqn.runs import train; "
        "cfg = load_config('configs/smoke.yaml', ['loop.total_steps=600', "
        "'eval.interval_steps=0', 'logging.progress=false'], game='Breakout'); "
        f"assert train(cfg, __import__('pathlib').Path('{tmp_path / 'r'}')) == 0; "
        "assert 5e-324 * 1.0 > 0.0; "
    )
    assert python(run + DENORMALS_AFTER) == "0.0"
