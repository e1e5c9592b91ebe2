"""The command line: bad input is one clear line and status 2, never a traceback, and
nothing is left behind; the commands it prints work as printed."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from procs import wait_for
from quick_runs import QUIET, ROOT, SMOKE

from atari_dqn.configfile import load_config
from atari_dqn.rundir import RunDir


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "atari_dqn", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unknown_games_error_names_the_games_command_which_lists_each_with_its_actions(
    tmp_path,
):
    # The command the error names is run as printed, from where it was printed, by a shell
    # whose PATH has no project python.
    refused = cli("train", "--game", "Breakot", "--run-dir", str(tmp_path / "run"))
    assert refused.returncode == 2 and not (tmp_path / "run").exists()
    printed = re.fullmatch(r"error: unknown game .*\((.+) lists all \d+\)\n", refused.stderr)
    assert printed, refused.stderr
    result = subprocess.run(
        printed[1],
        shell=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
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
        ("no checkpoint to evaluate", "no checkpoint in"),
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
        "no checkpoint to evaluate": lambda: ("eval", "--run-dir", str(_run_dir(tmp_path))),
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


def one_error_line(result: subprocess.CompletedProcess, expected: str) -> str:
    """The run's single stderr line, checked to be an error naming `expected`, status 2."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    return lines[0]


def test_a_replay_larger_than_the_memory_is_refused_before_anything_is_created(tmp_path):
    run = tmp_path / "run"
    result = cli("train", "--game", "Breakout", "--run-dir", str(run), "replay.capacity=1e9")
    line = one_error_line(result, "replay.capacity=1,000,000,000 needs")
    assert "lower replay.capacity to at most" in line and "available" in line
    assert not run.exists()


def test_a_run_directory_that_is_a_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    result = cli("train", "--game", "Breakout", "--config", str(SMOKE), "--run-dir", str(path))
    one_error_line(result, "is a file, not a directory")
    assert path.read_text() == "mine" and sorted(tmp_path.iterdir()) == [path]


def test_a_config_that_is_a_directory_is_named_as_such():
    result = cli("train", "--game", "Breakout", "--config", "configs", "--dry-run")
    one_error_line(result, "--config 'configs' is a directory")


def _trained(tmp_path: Path, *overrides: str) -> Path:
    run = tmp_path / "run"
    args = ["--game", "Breakout", "--config", str(SMOKE), "--run-dir", str(run)]
    result = cli("train", *args, *QUIET, "eval.interval_steps=0", *overrides)
    assert result.returncode == 0, result.stderr
    return run


def test_eval_of_zero_games_is_refused_and_keeps_eval_json(tmp_path):
    run = _trained(tmp_path, "loop.total_steps=600")
    one_error_line(cli("eval", "--run-dir", str(run), "--episodes", "0"), "--episodes")
    assert not (run / "eval.json").exists()
    # The record says what was played: its protocol's games are its games.
    result = cli("eval", "--run-dir", str(run), "--episodes", "2", "eval.max_episode_frames=800")
    assert result.returncode == 0, result.stderr
    record = json.loads((run / "eval.json").read_text())
    assert record["episodes"] == len(record["scores"]) == 2
    assert record["protocol"] == {"epsilon": 0.05, "max_episode_frames": 800, "noop_max": 30}


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_0(tmp_path):
    run = tmp_path / "run"
    RunDir(run).write_config(load_config(SMOKE))
    (run / "metrics.csv").write_text("agent_steps\n999\n")  # what the dead start logged
    result = cli("train", "--resume", str(run), *QUIET, "loop.total_steps=600")
    assert result.returncode == 0, result.stderr
    assert "has no checkpoint yet: starting it from step 0" in result.stdout
    with (run / "metrics.csv").open() as f:
        assert [row["agent_steps"] for row in csv.DictReader(f)] == ["500"]


def test_a_resume_dry_run_prints_what_it_would_run_and_touches_nothing(tmp_path):
    run = tmp_path / "run"
    RunDir(run).write_config(load_config(SMOKE))

    def contents() -> tuple[list[str], str]:
        return sorted(p.name for p in run.iterdir()), (run / "config.yaml").read_text()

    before = contents()
    result = cli("train", "--resume", str(run), "--dry-run", "loop.total_steps=900")
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert cfg["loop"]["total_steps"] == 900 and cfg["env"]["game"] == "Breakout"
    assert contents() == before
    # It checks the overrides as the resume would: what a resumed run keeps is refused.
    refused = cli("train", "--resume", str(run), "--dry-run", "replay.capacity=6000")
    one_error_line(refused, "replay.capacity (")
    # The run's own game, config and directory are not to be given again.
    again = cli("train", "--resume", str(run), "--game", "Pong", "--config", str(SMOKE))
    one_error_line(again, "drop --game, --config")
    assert contents() == before


@pytest.mark.skipif(
    not (ROOT / ".venv" / ".installed").exists(), reason="needs the Makefile's .venv"
)
def test_the_resume_line_a_make_run_prints_resumes_it_as_printed(tmp_path):
    # `make train`, stopped (as by Ctrl-C), prints how to resume; that line, run by a shell
    # from the checkout, resumes the run. A stop file makes each sitting stop at once.
    run = tmp_path / "run"
    args = " ".join([*QUIET, "eval.interval_steps=0", "loop.total_steps=100000"])
    train = ["make", "--no-print-directory", "-o", ".venv/.installed", "train"]
    proc = subprocess.Popen(
        [*train, f"CONFIG={SMOKE}", f"RUN_DIR={run}", f"ARGS={args}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(lambda: (run / "metrics.csv").exists())
    RunDir(run).stop_request.touch()
    out, _ = proc.communicate(timeout=120)
    lines = out.splitlines()
    printed = lines[lines.index(next(x for x in lines if x.endswith("Resume with:"))) + 1]
    assert printed.strip() == f"make resume RUN_DIR={run}", out
    saved = json.loads((run / "training_games.json").read_text())["agent_steps"]
    RunDir(run).stop_request.touch()
    again = subprocess.run(
        printed, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert f"resuming Breakout in {run} at {saved:,} of 100,000 agent steps" in again.stdout
    assert f"resumed Breakout at {saved:,} agent steps" in (run / "run.log").read_text()
    assert f"make resume RUN_DIR={run}" in again.stdout  # stopped again: the same line


def test_dry_run_and_the_game_list_load_neither_torch_nor_numba():
    # `--dry-run` answers in a second; `games` waits only for the ROMs.
    code = (
        "import sys; from atari_dqn.cli import main; from atari_dqn import games; "
        "main(['train', '--game', 'Breakout', '--dry-run']); "
        "print('loaded:', [m for m in ('torch', 'numba') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded: []"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (".gitignore", "config file '.gitignore' is not a config: it reads as a string"),
        ("configs/combind.yaml", "not found; did you mean 'configs/combined.yaml'?"),
        ("configs/cpu_demo", "not found; did you mean 'configs/cpu_demo.yaml'?"),
    ],
)
def test_a_file_that_is_no_config_or_a_misspelt_preset_is_one_line_naming_the_nearest(
    tmp_path, config, expected
):
    run = tmp_path / "run"
    result = cli("train", "--game", "Breakout", "--config", config, "--run-dir", str(run))
    one_error_line(result, expected)
    assert "Traceback" not in result.stderr and not run.exists()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("train", "--game", "Space", "Invaders"), "--game Space"),
        (("sweep", "--games", "Pong,Space", "Invaders"), "--games Pong,Space"),
    ],
)
def test_a_game_name_split_by_the_shell_is_named_as_the_game_not_as_an_override(
    tmp_path, args, flag
):
    run = tmp_path / "run"
    where = ("--run-dir", str(run)) if args[0] == "train" else ("--out", str(run))
    line = one_error_line(cli(*args, *where), "the game 'Space Invaders' came as 2 words")
    assert f"({flag}, then Invaders); did you mean SpaceInvaders?" in line
    assert not run.exists()


@pytest.mark.skipif(
    not (ROOT / ".venv" / ".installed").exists(), reason="needs the Makefile's .venv"
)
def test_make_passes_a_game_name_with_a_space_as_one_name():
    make = ["make", "--no-print-directory", "-o", ".venv/.installed", "train"]
    result = subprocess.run(
        [*make, "GAME=Space Invaders", "ARGS=--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout.split("\n", 1)[1])["env"]["game"] == "SpaceInvaders"


@pytest.mark.parametrize("run_dir", ["/sys/atari-dqn-run", "/proc/atari-dqn-run/run"])
def test_a_run_directory_that_cannot_be_written_is_one_line_and_nothing_is_printed_before(
    run_dir,
):
    # /sys refuses a new directory (EPERM), /proc has no such parent (ENOENT): the same
    # path as a read-only file system's EROFS.
    result = cli("train", "--game", "Breakout", "--config", str(SMOKE), "--run-dir", run_dir)
    one_error_line(result, f"cannot write the run directory '{run_dir}': ")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not Path(run_dir).exists()


def test_a_run_names_its_agent_and_protocol_at_its_start_in_run_log_and_in_the_report(tmp_path):
    from atari_dqn.report import write_report

    run = tmp_path / "run"
    family = ["learner.double_dqn=true", "learner.dueling=true", "replay.prioritized=true"]
    args = ["--game", "Breakout", "--config", str(SMOKE), "--run-dir", str(run), *QUIET]
    steps = ["loop.total_steps=600", "eval.interval_steps=600"]  # evaluated at its end
    result = cli("train", *args, *family, "learner.n_step=3", *steps)
    assert result.returncode == 0, result.stderr
    what = (
        "agent: Double DQN + dueling + prioritized + 3-step; scored by 2 evaluation games "
        "(epsilon 0.05, up to 30 no-ops, 2,000 frames at most)"
    )
    assert result.stdout.splitlines()[1] == f"  {what}"  # under the line that starts the run
    assert f"  {what}\n" in (run / "run.log").read_text()
    write_report([run], tmp_path / "report")
    assert f"A{what[1:]}." in (tmp_path / "report" / "report.md").read_text()


def test_make_atari100k_names_an_unknown_algo_in_one_line_and_runs_every_game_by_default():
    make = ["make", "--no-print-directory", "-o", ".venv/.installed"]
    bad = subprocess.run(
        [*make, "atari100k", "ALGO=dqn"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and bad.stdout == ""
    (line,) = bad.stderr.splitlines()
    assert "unknown ALGO=dqn: use one of der drq_eps" in line
    # Dry runs: the sweep's command, over the 26 games unless GAMES names some.
    every = subprocess.run([*make, "-n", "atari100k"], cwd=ROOT, capture_output=True, text=True)
    named = subprocess.run(
        [*make, "-n", "atari100k", "GAMES=Pong Boxing", "SEEDS=0 1", "ALGO=der"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert "sweep --games atari100k --seeds 0 --config configs/atari100k/drq_eps.yaml" in (
        " ".join(every.stdout.replace("\\\n", " ").split())
    )
    assert "--out runs/atari100k-drq_eps" in every.stdout
    # The make line a stopped sweep prints to continue (test_sweep's stop prints it).
    assert every.stdout.startswith("ATARI_DQN_MAKE='make atari100k ALGO=drq_eps SEEDS=\"0\"' ")
    line = """ATARI_DQN_MAKE='make atari100k ALGO=der GAMES="Pong Boxing" SEEDS="0 1"' """
    assert named.stdout.startswith(line)
    assert "sweep --games Pong,Boxing --seeds 0,1 --config configs/atari100k/der.yaml" in (
        " ".join(named.stdout.replace("\\\n", " ").split())
    )
