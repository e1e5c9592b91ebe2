"""Watching the agent, on a real ROM: eval videos of the scored games, their size and length,
the films of training's evaluations, the report's strip of frames; and the Q-value bars."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from quick_runs import QUIET, ROOT, SMOKE, learner_and_policy

from atari_dqn.configfile import load_config
from atari_dqn.env.atari import action_meanings
from atari_dqn.errors import ConfigError
from atari_dqn.evaluate import eval_env_config, evaluate
from atari_dqn.report import write_report
from atari_dqn.runs import evaluate_run, train
from atari_dqn.video import (
    GameRecorder,
    VideoError,
    film_step_and_game,
    parse_choice,
    write_videos,
)
from atari_dqn.video_panel import (
    CHOSEN,
    FRAME_SIZE,
    OTHER,
    PLOT_WIDTH,
    SCREEN_WIDTH,
    TEXT,
    bar_axis,
    blank_frame,
    draw_distribution,
    draw_panel,
    panel_rows,
    plot_scale,
)

FAST = QUIET
# Short evaluation games: the cap ends a game that a poor agent would not.
SHORT = ["eval.max_episode_frames=1200", "loop.num_envs=2"]


def _written(path: Path) -> int:
    return path.stat().st_mtime_ns


def frames_and_size(path: Path) -> tuple[int, tuple[int, int]]:
    """(frames read, (height, width)) of a video, counted by decoding every frame."""
    capture = cv2.VideoCapture(str(path))
    count, shape = 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count, shape = count + 1, frame.shape[:2]
    capture.release()
    return count, shape


def first_frame(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok, path
    return frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("video") / "run"
    cfg = load_config(SMOKE, [*FAST, "loop.total_steps=600", "eval.interval_steps=0"])
    assert train(cfg, run) == 0
    return run


def eval_3_games(run: Path, *args: str) -> subprocess.CompletedProcess:
    """`eval --episodes 3` of `run` at the command line."""
    command = [sys.executable, "-m", "atari_dqn", "eval", "--run-dir", str(run)]
    return subprocess.run(
        [*command, "--episodes", "3", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_eval_video_films_the_best_median_and_worst_scored_games_frame_for_step(trained):
    result = eval_3_games(trained, "--video", "eval.max_episode_frames=1200")
    assert result.returncode == 0, result.stderr
    record = json.loads((trained / "eval.json").read_text())
    videos = sorted((trained / "videos").glob("*.mp4"))
    assert videos and len(videos) <= 3
    for video in videos:
        game = int(video.stem.rsplit("game", 1)[1])  # Breakout-600-game<i>.mp4, from 1
        assert video.name == f"Breakout-600-game{game}.mp4"
        count, shape = frames_and_size(video)
        assert count == record["steps"][game - 1]  # one frame per step of that game
        assert shape == FRAME_SIZE == (420, 640)


def test_eval_gives_the_scores_before_the_films_of_them_and_says_3_games_are_too_few(trained):
    result = eval_3_games(trained, "--video", "eval.max_episode_frames=1200")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    scores = [i for i, line in enumerate(lines) if line.startswith("game ")]
    films = [i for i, line in enumerate(lines) if line.endswith(".mp4")]
    assert len(scores) == 3 and films and max(scores) < min(films), result.stdout
    (mean,) = [line for line in lines if "95% CI" in line]
    assert mean.endswith("; 3 games are too few for an interval worth reading (the paper plays 30)")


def test_a_bad_video_games_value_is_one_line_and_status_2(trained):
    result = eval_3_games(trained, "--video-games", "4")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--video-games '4'" in lines[0], result.stderr


@pytest.mark.parametrize("value", ["0", "4", "fastest", "1,x", " , ", "best,2"])
def test_video_games_takes_names_or_game_numbers_and_refuses_anything_else(value):
    assert parse_choice("Best, median", 3) == ["best", "median"]
    assert parse_choice("3,1", 3) == [3, 1]
    with pytest.raises(ConfigError, match="--video-games"):
        parse_choice(value, 3)


def test_recording_plays_the_same_games_and_a_replay_that_differs_is_refused(tmp_path):
    cfg = load_config(None, [*FAST, "eval.max_episode_frames=1200"], game="Breakout")
    _, policy = learner_and_policy()
    plain = evaluate(policy, cfg, episodes=2, seed=3)
    recorder = GameRecorder()
    recorded = evaluate(policy, cfg, episodes=2, seed=3, recorder=recorder)
    assert recorded.scores == plain.scores and recorded.steps == plain.steps
    traces = recorder.traces()
    assert [len(t.actions) for t in traces] == recorded.steps
    names = action_meanings(cfg.env)
    both = write_videos(traces, [0, 1], eval_env_config(cfg), names, tmp_path / "a", 0)
    assert [frames_and_size(p)[0] for p in both] == recorded.steps
    # Game 2 filmed alone, by an emulator that has shown no game before, is the same video:
    # its first screen is its own start, not the last screen of the game filmed before it.
    (alone,) = write_videos(traces, [1], eval_env_config(cfg), names, tmp_path / "alone", 0)
    assert np.array_equal(first_frame(alone), first_frame(both[1]))
    assert not np.array_equal(first_frame(both[0]), first_frame(both[1]))
    traces[1].actions[:] = [1] * len(traces[1].actions)  # FIRE only: another game
    traces[1].score += 1000
    with pytest.raises(VideoError, match="not be the evaluated game"):
        write_videos(traces, [0, 1], eval_env_config(cfg), names, tmp_path / "b", 0)
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["Breakout-0-game1.mp4"]  # no game2


def test_training_films_each_evaluations_median_game_and_the_report_shows_a_strip(tmp_path):
    run = tmp_path / "run"
    filmed = [
        "loop.total_steps=600",
        "eval.interval_steps=300",
        "eval.episodes=2",
        "eval.video=true",
    ]
    cfg = load_config(SMOKE, [*FAST, *SHORT, *filmed])
    assert train(cfg, run) == 0
    films = sorted((run / "videos" / "training").glob("*.mp4"))
    assert len(films) == 2 and films[0].name.startswith("Breakout-300-game")
    before = {p: p.read_bytes() for p in films}
    # eval --video at the same step films other games, and never over training's films
    assert evaluate_run(run, episodes=3, video="best,median,worst") == 0
    assert {p: p.read_bytes() for p in films} == before
    eval_films = sorted((run / "videos").glob("Breakout-600-game*.mp4"), key=_written)
    assert 1 <= len(eval_films) <= 3  # fewer where best, median and worst share a game
    # Scores that make the first film written the median one and the last the best, so the
    # report's choice is seen (a short game's scores often tie).
    record = json.loads((run / "eval.json").read_text())
    for film, score in zip(eval_films, [5.0, 1.0, 9.0][: len(eval_films) - 1] + [9.0], strict=True):
        record["scores"][film_step_and_game(film)[1] - 1] = score
    (run / "eval.json").write_text(json.dumps(record))
    write_report([run], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "run-strip.png" in text
    # The strip is of the median-scoring game that eval --video filmed, not the last filmed.
    shown = re.search(r"The agent at 600 agent steps \((Breakout-600-game\d+\.mp4)\)", text)
    assert shown and shown[1] == eval_films[0].name
    # Six of its frames at full size, two to a row, each in a 3-pixel border: the first is
    # the film's first frame, pixel for pixel.
    strip = cv2.imread(str(tmp_path / "report" / "run-strip.png"))
    height, width = FRAME_SIZE
    assert strip.shape == (3 * (height + 6), 2 * (width + 6), 3)
    capture = cv2.VideoCapture(str(eval_films[0]))
    ok, first = capture.read()
    capture.release()
    assert ok and np.array_equal(strip[3 : 3 + height, 3 : 3 + width], first)


def drawn_bars(q: list[float]) -> tuple[list[np.ndarray], int]:
    """(per action, the columns its bar covers on the middle line of its row; the column of
    the zero line), as a video's panel draws Q-values `q` (action 0 chosen)."""
    axis = bar_axis(min(q), max(q))
    panel = blank_frame([""] * len(q), axis)[:, SCREEN_WIDTH:]
    draw_panel(panel, np.array(q, np.float32), axis, 0, False, "", "")
    top, row = panel_rows(len(q))
    bars = []
    for i in range(len(q)):
        line = panel[top + i * row + row // 2 - 2]
        colour = CHOSEN if i == 0 else OTHER
        bars.append(np.flatnonzero((line == colour).all(axis=1)))
    above = panel[top - 1]  # just above the first bar: only the zero line crosses it
    (zero,) = np.flatnonzero((above == TEXT).all(axis=1))
    return bars, int(zero)


def test_q_bars_start_at_a_zero_line_and_are_as_long_as_their_values():
    (small, large), zero = drawn_bars([0.053, 0.067])
    assert small[0] == large[0] == zero + 1
    assert len(small) / len(large) == pytest.approx(0.053 / 0.067, abs=0.01)
    assert np.all(np.diff(small) == 1) and np.all(np.diff(large) == 1)  # solid bars


def test_a_negative_q_value_draws_on_the_other_side_of_the_zero_line():
    (negative, positive), zero = drawn_bars([-0.02, 0.05])
    assert negative[-1] == zero - 1 and positive[0] == zero + 1
    assert len(negative) / len(positive) == pytest.approx(0.02 / 0.05, abs=0.01)


def test_a_distributional_networks_video_plots_the_return_distribution_beside_the_panel(
    tmp_path,
):
    cfg = load_config(None, [*FAST, "eval.max_episode_frames=400"], game="Breakout")
    _, policy = learner_and_policy(distributional=True)
    recorder = GameRecorder()
    result = evaluate(policy, cfg, episodes=1, seed=3, recorder=recorder)
    (trace,) = recorder.traces()
    assert len(trace.distributions) == result.steps[0]
    names = action_meanings(cfg.env)
    (video,) = write_videos(
        [trace], [0], eval_env_config(cfg), names, tmp_path, 0, support=policy.support
    )
    count, shape = frames_and_size(video)
    assert count == result.steps[0] and shape == (FRAME_SIZE[0], FRAME_SIZE[1] + PLOT_WIDTH)
    plot = first_frame(video)[:, FRAME_SIZE[1] :]
    assert (plot.max(axis=2) > 100).sum() > 500  # drawn: text, bars, axis


def test_the_distribution_plot_has_a_bar_per_atom_as_tall_as_its_probability_and_the_mean():
    support = np.linspace(-10, 10, 51, dtype=np.float32)
    probabilities = np.zeros(51, np.float32)
    probabilities[[10, 40]] = 0.75, 0.25
    frame = blank_frame(["NOOP"], bar_axis(0, 1), support)
    assert frame.shape == (FRAME_SIZE[0], FRAME_SIZE[1] + PLOT_WIDTH, 3)
    plot = frame[:, FRAME_SIZE[1] :]
    scale = plot_scale([probabilities])
    draw_distribution(plot, probabilities, support, scale, "NOOP")
    grey = (plot[80:] == OTHER).all(axis=2)  # the bars, below the text
    columns = np.flatnonzero(grey.any(axis=0))
    heights = grey.sum(axis=0)
    tall, short = heights[columns[0]], heights[columns[-1]]
    assert tall / short == pytest.approx(3.0, abs=0.05)  # 0.75 against 0.25
    # The two bars and nothing else: atom 40's is 30 atoms right of atom 10's.
    width = len(np.flatnonzero(heights == tall))
    assert len(columns) == 2 * width
    assert columns[width] - columns[0] == 30 * (width + 1)  # bars a column apart
    # The mean, 0.75 * -6 + 0.25 * 6 = -3, is a line 7/20 of the way across the atoms.
    mean_columns = np.flatnonzero((plot == CHOSEN).all(axis=2).sum(axis=0) > 100)
    first = columns[0] - 10 * (width + 1)  # atom 0's column
    span = 50 * (width + 1)
    assert len(mean_columns) == 1
    assert mean_columns[0] == pytest.approx(first + span * 7 / 20, abs=2)
