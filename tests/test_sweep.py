"""`sweep` on a real local Ray: runs finish, a killed worker's run resumes exactly, a signal
stops the runs with checkpoints and the line it prints continues the sweep, a finished sweep
starts nothing, bad input is one line."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from procs import wait_for
from quick_runs import QUIET, ROOT, SMOKE
from rich.console import Console

from atari_dqn import checkpoint as ckpt
from atari_dqn.configfile import load_config
from atari_dqn.logs import CsvLog
from atari_dqn.rundir import RunDir
from atari_dqn.runs import train
from atari_dqn.scores import GAME_LISTS
from atari_dqn.shell import MAKE_MARKER, near, rerun_command
from atari_dqn.sweep import parse_games, parse_seeds, plan
from atari_dqn.sweeprecord import SweepRecord, progress_table

# Tiny CPU runs: 600 agent steps, learning from 300, a checkpoint every 200.
RUN = [
    *QUIET,
    "learner.torch_threads=1",  # as a Ray task of one CPU runs (Ray sets OMP_NUM_THREADS)
    "eval.interval_steps=600",  # one short evaluation, at the end, for the report
    "eval.episodes=1",
    "eval.max_episode_frames=800",
    "loop.total_steps=600",
    "loop.replay_start_steps=300",
    "logging.interval_steps=100",
    "checkpoint.interval_steps=200",
    "replay.capacity=2000",
]


COLUMNS_80 = {**os.environ, "COLUMNS": "80"}


OUTPUT = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def sweep(out: Path, games: str, *extra: str, **popen) -> subprocess.Popen:
    args = ["sweep", "--games", games, "--seeds", "0", "--config", str(SMOKE), "--out", str(out)]
    return subprocess.Popen(
        [sys.executable, "-m", "atari_dqn", *args, "--cpus-per-run", "1", *RUN, *extra],
        cwd=ROOT,
        **OUTPUT,
        **popen,
    )


def finish(proc: subprocess.Popen, code: int = 0) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == code, out
    return out


def states(out: Path) -> dict[str, str]:
    return {k: v["state"] for k, v in json.loads((out / "sweep.json").read_text())["runs"].items()}


def starts(run: Path) -> list[str]:
    """The starts and resumes in a run's log."""
    log = run / "run.log"
    return [x for x in log.read_text().splitlines() if " started " in x or " resumed " in x]


@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [
        # Ctrl-C: SIGINT to the sweep's process group (Ray's own processes too), as a
        # terminal sends it; slow-only, the sweep's stop being the same as for SIGTERM.
        pytest.param(signal.SIGINT, True, id="ctrl-c", marks=pytest.mark.slow),
        # SIGTERM to the sweep alone, as `kill` or a job scheduler sends it (Ray's own
        # handler would end the sweep and its runs without a checkpoint).
        pytest.param(signal.SIGTERM, False, id="sigterm"),
    ],
)
def test_a_sweep_retries_a_killed_worker_stops_on_a_signal_and_the_line_it_prints_resumes(
    tmp_path, signum, whole_group
):
    out, reference = tmp_path / "sweep", tmp_path / "reference"
    threads = torch.get_num_threads()  # the run sets it for this whole process
    try:
        assert train(load_config(SMOKE, [*RUN, "seed=0"], game="Breakout"), reference) == 0
    finally:
        torch.set_num_threads(threads)
    # The Ray worker training Breakout is killed once the run has a checkpoint: Ray retries
    # the task, which resumes the run, and it ends as the same run never killed.
    proc = sweep(out, "Breakout")
    breakout = out / "Breakout-seed0"
    wait_for(lambda: ckpt.has_checkpoint(RunDir(breakout)), timeout=180)
    (pid,) = {int(p) for p in re.findall(r"\(pid (\d+)\)", (breakout / "run.log").read_text())}
    subprocess.run(["kill", "-9", str(pid)], check=True)
    finish(proc)
    assert states(out) == {"Breakout-seed0": "done"}
    breakout_starts = starts(breakout)
    assert len(breakout_starts) == 2 and "resumed" in breakout_starts[1]
    a, b = ckpt.load_state(RunDir(reference)), ckpt.load_state(RunDir(breakout))
    assert a["counters"] == b["counters"]
    for key, value in a["learner"]["online"].items():
        assert torch.equal(value, b["learner"]["online"][key]), key
    # The sweep grows to Pong; the signal once Pong has a checkpoint: Pong checkpoints and
    # stops, and the sweep exits with the status the signal's name gives.
    proc = sweep(out, "Breakout,Pong", start_new_session=True)
    pong = out / "Pong-seed0"
    wait_for(lambda: ckpt.has_checkpoint(RunDir(pong)), timeout=180)
    if whole_group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    text = finish(proc, 128 + signum)
    lines = text.splitlines()
    printed = lines[lines.index("sweep stopped. Continue it with:") + 1].strip()
    assert printed == shlex.join([near(sys.executable), "-m", "atari_dqn", *proc.args[3:]])
    assert states(out) == {"Breakout-seed0": "done", "Pong-seed0": "stopped"}
    assert 0 < ckpt.load_state(RunDir(pong))["counters"]["agent_steps"] < 600
    # The line it printed, typed into a shell: only Pong resumes; then the table, once, on
    # lines of its own within 80 columns (the output is not a terminal here, as in a log
    # file; the live table, transient, leaves nothing behind in a terminal either), and the
    # report of both.
    text = finish(subprocess.Popen(printed, shell=True, cwd=ROOT, env=COLUMNS_80, **OUTPUT))
    lines = text.splitlines()
    assert [line.strip() for line in lines].count("sweep: 2 run(s)") == 1, text
    start = next(i for i, x in enumerate(lines) if x.strip() == "sweep: 2 run(s)")
    table = lines[start : next(i for i, x in enumerate(lines) if x.startswith("| game |"))]
    assert all(len(line) <= 80 for line in table), table
    assert [x.split()[:2] for x in table if "-seed" in x] == [
        ["Breakout-seed0", "600"],
        ["Pong-seed0", "600"],
    ]
    assert "1 run(s) to train, 1 done" in text
    assert starts(out / "Breakout-seed0") == breakout_starts
    assert len(starts(pong)) == 2 and "resumed" in starts(pong)[1]
    assert states(out) == {"Breakout-seed0": "done", "Pong-seed0": "done"}
    assert ckpt.load_state(RunDir(pong))["counters"]["agent_steps"] == 600
    report = (out / "report" / "report.md").read_text()
    assert "| Breakout |" in report and "| Pong |" in report
    # A finished sweep, run again, starts nothing.
    assert "0 run(s) to train, 2 done" in finish(sweep(out, "Breakout,Pong"))
    assert len(starts(pong)) == 2 and starts(out / "Breakout-seed0") == breakout_starts


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--games", "Breakout,Pongg"], "unknown game 'Pongg'"),
        (["--games", " , "], "--games is empty"),
        (["--games", "Pong", "--seeds", ""], "--seeds is empty"),
        (["--games", "Pong", "--gpus-per-run", "0.25"], "this Ray cluster has none"),
        (["--games", "Pong", "--address", "127.0.0.1:9"], "cannot join a Ray cluster"),
    ],
)
def test_bad_sweep_input_is_one_line_status_2_and_creates_nothing(tmp_path, args, expected):
    out = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "atari_dqn", "sweep", *args, "--out", str(out), *RUN],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert not out.exists()


def test_seeds_are_read_once_each_in_order_whatever_the_commas():
    # `make sweep SEEDS="0, 1"` passes --seeds "0,,1".
    assert parse_seeds("0,,1") == [0, 1] and parse_seeds(" 2, 0,2 ,") == [2, 0]


@pytest.mark.parametrize(
    ("name", "count"), [("nature49", 49), ("nips7", 7), ("atari57", 57), ("atari100k", 26)]
)
def test_a_named_game_list_gives_its_games_once_each_and_mixes_with_single_games(name, count):
    games = parse_games(f"{name},Pong,{name.upper()}")
    assert len(set(games)) == len(games) == count + ("Pong" not in GAME_LISTS[name])
    assert list(GAME_LISTS[name]) == [g for g in games if g in GAME_LISTS[name]]


def test_a_sweep_started_by_make_is_continued_by_its_make_line(monkeypatch):
    # The Makefile puts its line in the environment (test_cli's dry run of `make atari100k`
    # shows it); without one, the sweep's own arguments after this Python's path.
    monkeypatch.setattr(sys, "argv", ["atari-dqn", "sweep", "--games", "Pong", "--out", "a b"])
    monkeypatch.delenv(MAKE_MARKER, raising=False)
    assert rerun_command() == f"{near(sys.executable)} -m atari_dqn sweep --games Pong --out 'a b'"
    monkeypatch.setenv(MAKE_MARKER, 'make atari100k ALGO=der GAMES="Pong Boxing" SEEDS="0"')
    assert rerun_command() == 'make atari100k ALGO=der GAMES="Pong Boxing" SEEDS="0"'


def test_while_runs_train_the_table_says_how_long_the_steps_left_take_at_their_speed(tmp_path):
    # 1,000-step runs: one running at 20 steps/s with 400 done, one waiting (it counts at
    # the running one's speed), one done; 600 + 1,000 steps at 20 steps/s: 80 s.
    games = ["Pong", "Breakout", "Boxing"]
    runs = plan(games, [0], str(SMOKE), ["loop.total_steps=1000"], tmp_path)
    record = SweepRecord(tmp_path)
    record.start(["atari-dqn"], str(SMOKE), [], runs)
    pong, _, boxing = runs
    pong.run.path.mkdir()
    CsvLog(pong.run.metrics_csv).write({"agent_steps": 400, "steps_per_second": 20.0})
    record.set(pong.name, "running")
    record.set(boxing.name, "done")
    console = Console(width=80, record=True)
    console.print(progress_table(runs, record))
    assert "0:01:20 of training left at 20 agent steps/s" in console.export_text()
    record.set(pong.name, "stopped")  # nothing training: no estimate
    console.print(progress_table(runs, record))
    assert console.export_text().count("left at") == 0
