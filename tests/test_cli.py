"""The command line: bad input is one clear line and status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "atari_dqn", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_games_lists_every_game_sorted_with_its_action_count():
    result = cli("games")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    counts = {x.split()[0]: int(x.split()[1]) for x in lines if x.endswith(" actions")}
    assert counts["Breakout"] == 4 and counts["Pong"] == 6
    assert list(counts) == sorted(counts) and len(counts) > 100
    assert lines[-1] == f"{len(counts)} games (ale-py ships the ROMs)"
    assert "A.L.E" not in result.stderr  # ALE's banner, printed by every ROM load unless quieted


def test_a_reader_that_leaves_early_gets_no_traceback():  # ... train --dry-run | head
    proc = subprocess.Popen(
        [sys.executable, "-m", "atari_dqn", "train", "--game", "Breakout", "--dry-run"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # before the child writes a line
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_misspelt_game_suggests_the_right_one():
    result = cli("train", "--dry-run", "--game", "Breakot")
    assert result.returncode == 2
    assert "did you mean 'Breakout'" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_dry_run_prints_the_resolved_config():
    result = cli("train", "--dry-run", "--game", "ALE/Pong-v5", "replay.capacity=1000")
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert cfg["env"]["game"] == "Pong"
    assert cfg["replay"]["capacity"] == 1000
    assert cfg["learner"]["learning_rate"] == 0.00025


def test_bad_override_is_one_line_with_status_2():
    result = cli("train", "--dry-run", "--game", "Breakout", "replay.capcity=10")
    assert result.returncode == 2
    assert "did you mean 'capacity'" in result.stderr
    assert "Traceback" not in result.stderr


def test_eval_of_a_missing_run_directory_is_a_clear_error(tmp_path):
    result = cli("eval", "--run-dir", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_has_help():
    for command in ("train", "eval", "bench", "report", "games"):
        assert cli(command, "--help").returncode == 0


def _run_dir(root: Path, *, state: bytes | None = None, replay: bytes | None = None) -> Path:
    """A run directory as `train` leaves it, with the checkpoint files given (raw bytes)."""
    run = root / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"env": {"game": "Breakout"}}))
    if state is not None:
        (run / "checkpoint" / "state.pt").write_bytes(state)
    if replay is not None:
        (run / "checkpoint" / "replay.ring").write_bytes(replay)
    return run


def _valid_state() -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"format_version": 1, "game": "Breakout", "n_actions": 4}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown game", "unknown game 'Pongg'"),
        ("unknown key", "unknown config key 'replay.capcity'"),
        ("wrong type", "loop.num_envs: expected int, got 'four'"),
        ("out of range", "eval.epsilon must be in [0, 1]"),
        ("missing config file", "config file 'nope.yaml' not found"),
        ("missing run directory", "not found"),
        ("not a run directory", "is not a run directory"),
        ("no checkpoint", "no checkpoint in"),
        ("corrupt checkpoint", "is corrupt or unreadable"),
        ("corrupt replay file", "replay file"),
    ],
)
def test_each_kind_of_bad_input_is_one_line_and_status_2(tmp_path, case, expected):
    train = ("train", "--game", "Breakout", "--dry-run")
    args = {
        "unknown game": lambda: ("train", "--dry-run", "--game", "Pongg"),
        "unknown key": lambda: (*train, "replay.capcity=10"),
        "wrong type": lambda: (*train, "loop.num_envs=four"),
        "out of range": lambda: (*train, "eval.epsilon=2"),
        "missing config file": lambda: (*train, "--config", "nope.yaml"),
        "missing run directory": lambda: ("train", "--resume", str(tmp_path / "nope")),
        "not a run directory": lambda: ("eval", "--run-dir", str(tmp_path)),
        "no checkpoint": lambda: ("train", "--resume", str(_run_dir(tmp_path))),
        "corrupt checkpoint": lambda: (
            "eval", "--run-dir", str(_run_dir(tmp_path, state=b"garbage"))
        ),
        "corrupt replay file": lambda: (
            "train", "--resume", str(_run_dir(tmp_path, state=_valid_state(), replay=b"x" * 99))
        ),
    }[case]()  # fmt: skip
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
