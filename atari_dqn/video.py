"""Watching the agent: evaluation games as videos, the Q-values beside the screen.

A recorded evaluation keeps, for every game it scores, the emulator state the game started
from (with its RNG) and, for every step, the action, whether it was a random (epsilon) one,
Q(s, a) for every action and, of a distributional network, the return distribution of
the action taken. Afterwards the chosen games are played again from their
start states with the same actions (the ALE is deterministic given its state, sticky
actions included) to get their full-colour screens: so the video is of the very game the
score comes from, and recording costs the evaluation only what it keeps (and, for a
distributional network, one more forward pass a step).

Each video frame is the screen with, beside it, the step's Q-values (and a distributional
network's return distribution), as `atari_dqn.video_panel` draws them: one frame per agent
step, at 15 frames per second (real time: 4 emulator frames per step at 60 Hz), the screen
scaled 2x rather than more because encoding is most of what filming costs and grows with the
pixels. Written with OpenCV's `VideoWriter` (MPEG-4, `mp4v`), already a dependency, which every
common player opens.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import ale_py
import cv2
import numpy as np

from atari_dqn.config import EnvConfig
from atari_dqn.env.atari import Emulator
from atari_dqn.env.block import GameStart
from atari_dqn.errors import ConfigError
from atari_dqn.video_panel import (
    FRAME_SIZE,
    OTHER,
    SCREEN_WIDTH,
    bar_axis,
    blank_frame,
    draw_distribution,
    draw_panel,
    plot_scale,
)

FPS = 15
_QUEUED = 16
_STRIP_BORDER = 3  # pixels of grey around each frame of a strip


class VideoError(RuntimeError):
    """A game could not be filmed: its replay differs from it, or no video can be written."""


@dataclass
class GameTrace:
    """What one scored game needs to be watched again."""

    env: int
    score: float = 0.0
    """Raw points the agent's actions earned (the game's score, less any earned by the
    reset's no-ops and FIRE, which come before the first action)."""
    start: GameStart | None = None
    actions: list[int] = field(default_factory=list)
    explored: list[bool] = field(default_factory=list)
    q_values: list[np.ndarray] = field(default_factory=list)
    distributions: list[np.ndarray] = field(default_factory=list)
    """Per step, the return distribution of the action taken (float16; none for a network
    that is not distributional)."""


class GameRecorder:
    """Collects the traces of N envs' games during an evaluation (see the module docstring).

    The evaluation calls `start`, then for each step `step` (through `Acting`), `rewards`
    and `game_over` for each env whose game ended; `traces` gives the kept games."""

    def start(self, num_envs: int) -> None:
        self.starts: list[list[GameStart]] = []
        """Per env, its games' starts (`VectorEnv.game_starts`), set at the end."""
        self._current = [GameTrace(env) for env in range(num_envs)]
        self._started = [0] * num_envs  # games started per env: indexes its start states
        self._kept: list[tuple[GameTrace, int]] = []

    def step(
        self,
        actions: np.ndarray,
        q_values: np.ndarray,
        explored: np.ndarray,
        distributions: np.ndarray | None,
    ) -> None:
        for env, trace in enumerate(self._current):
            trace.actions.append(int(actions[env]))
            trace.explored.append(bool(explored[env]))
            trace.q_values.append(q_values[env].astype(np.float32))
            if distributions is not None:  # half the memory: a game may last 27,000 steps
                trace.distributions.append(distributions[env].astype(np.float16))

    def rewards(self, raw_rewards: np.ndarray) -> None:
        for trace, reward in zip(self._current, raw_rewards, strict=True):
            trace.score += float(reward)

    def game_over(self, env: int, keep: bool) -> None:
        """Env `env`'s game ended; `keep` it if the evaluation scores it."""
        if keep:
            self._kept.append((self._current[env], self._started[env]))
        self._started[env] += 1
        self._current[env] = GameTrace(env)

    def traces(self) -> list[GameTrace]:
        """The kept games, in the order they ended (that of the scores), with their starts."""
        for trace, number in self._kept:
            trace.start = self.starts[trace.env][number]
        return [trace for trace, _ in self._kept]


def parse_choice(text: str, episodes: int) -> list[str] | list[int]:
    """`best,median,worst` (the default) or 1-based game numbers such as `1,5,30`."""
    items = [item.strip().lower() for item in text.split(",") if item.strip()]
    if items and set(items) <= {"best", "median", "worst"}:
        return items
    try:
        numbers = [int(item) for item in items]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < 1 or max(numbers) > episodes:
        raise ConfigError(
            f"--video-games '{text}': give best, median and/or worst, or game numbers from 1 "
            f"to {episodes} (as eval prints them), e.g. --video-games 1,{episodes}"
        )
    return numbers


def choose(scores: list[float], choice: list[str] | list[int]) -> list[int]:
    """0-based indices of the games `choice` names (best: highest score, first on ties)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    named = {"best": order[0], "median": order[len(order) // 2], "worst": order[-1]}
    picked = [named[c] if isinstance(c, str) else c - 1 for c in choice]
    return list(dict.fromkeys(picked))


def _write_video(
    trace: GameTrace,
    emulator: Emulator,
    names: list[str],
    path: Path,
    support: np.ndarray | None,
) -> None:
    ale = emulator.ale
    assert trace.start is not None, "a kept game's start is set by GameRecorder.traces"
    ale.restoreState(ale_py.ALEState(trace.start.state))
    action_set = (
        ale.getLegalActionSet() if emulator.cfg.full_action_space else ale.getMinimalActionSet()
    )
    q_all = np.stack(trace.q_values)
    axis = bar_axis(float(q_all.min()), float(q_all.max()))
    support = support if trace.distributions else None
    scale = plot_scale(trace.distributions) if support is not None else 0.0
    blank = blank_frame(names, axis, support)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (blank.shape[1], blank.shape[0])
    )
    if not writer.isOpened():
        raise VideoError(f"OpenCV cannot write an MPEG-4 (mp4v) video to '{path}'")
    # Encoding is most of the cost: a second thread encodes while this one plays and draws
    # the next frames (OpenCV releases the GIL while it encodes). At most _QUEUED frames wait.
    pending: deque[Future[None]] = deque()
    score = 0.0
    try:
        with ThreadPoolExecutor(max_workers=1) as encoder:
            for step, (action, explored, q) in enumerate(
                zip(trace.actions, trace.explored, trace.q_values, strict=True)
            ):
                frame = blank.copy()
                # The first screen is the one saved: the emulator's shows its previous game.
                rgb = trace.start.screen if step == 0 else ale.getScreenRGB()
                screen = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                cv2.resize(
                    screen,
                    (SCREEN_WIDTH, FRAME_SIZE[0]),
                    dst=frame[:, :SCREEN_WIDTH],
                    interpolation=cv2.INTER_NEAREST,
                )
                header = f"step {step + 1}  score {score:g}  lives {ale.lives()}"
                draw_panel(
                    frame[:, SCREEN_WIDTH:], q, axis, action, explored, header, names[action]
                )
                if support is not None:
                    draw_distribution(
                        frame[:, FRAME_SIZE[1] :],
                        trace.distributions[step],
                        support,
                        scale,
                        names[action],
                    )
                pending.append(encoder.submit(writer.write, frame))
                if len(pending) > _QUEUED:
                    pending.popleft().result()
                score += emulator.repeat(action_set[action], observe=False)
            for done in pending:
                done.result()
    finally:
        writer.release()
    if score != trace.score:
        path.unlink()
        raise VideoError(
            f"replaying game {path.name} scored {score:g}, not {trace.score:g}: the video "
            "would not be the evaluated game"
        )


def write_videos(
    traces: list[GameTrace],
    games: list[int],
    cfg: EnvConfig,
    names: list[str],
    folder: Path,
    agent_steps: int,
    support: np.ndarray | None = None,
) -> list[Path]:
    """Videos of the 0-based `games` of an evaluation, as `<game>-<step>-game<i>.mp4`
    (`i` numbered from 1, as `eval` prints the games), one frame per step of each game;
    with a distributional network's `support`, each with the return distributions recorded.

    Raises VideoError if a replay does not score what its game scored (it would not be
    the same game) or if OpenCV cannot write the video."""
    # One emulator (one ROM load) films every game: each starts from its own saved state.
    emulator = Emulator(cfg, seed=0)
    paths = []
    try:
        for i in games:
            path = folder / f"{cfg.game}-{agent_steps}-game{i + 1}.mp4"
            _write_video(traces[i], emulator, names, path, support)
            paths.append(path)
    finally:
        emulator.close()
    return paths


def videos_by_step(folder: Path) -> list[tuple[int, Path]]:
    """The videos in `folder` and below with the agent step they were filmed at, oldest
    first (by step, then by when they were written: `eval --video` films after training's
    last evaluation at the same step)."""
    found = []
    for path in folder.rglob("*.mp4"):
        if (named := film_step_and_game(path)) is not None:
            found.append((named[0], path.stat().st_mtime_ns, path))
    return [(step, path) for step, _, path in sorted(found)]


def film_step_and_game(path: Path) -> tuple[int, int] | None:
    """(agent step, game number from 1) of a film named `<game>-<step>-game<i>.mp4`; None
    for any other name."""
    parts = path.stem.rsplit("-", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].removeprefix("game").isdigit():
        return int(parts[1]), int(parts[2].removeprefix("game"))
    return None


def frame_strip(
    video: Path, png: Path, count: int = 6, height: int = FRAME_SIZE[0], columns: int = 2
) -> Path | None:
    """`count` frames spread over `video`, `columns` to a row at `height` pixels, as one PNG:
    the agent at a glance, without a video player. None if the video cannot be read.

    Full size and two to a row by default: a page about 900 pixels wide (GitHub's README)
    shows a row of two at 0.7 of its size, the panel's Q-values (digits 11 pixels tall)
    still 8 pixels tall; six frames to a row at half size left them 2."""
    capture = cv2.VideoCapture(str(video))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for index in np.linspace(0, max(total - 1, 0), count).round().astype(int):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = capture.read()
        if ok:
            width = round(frame.shape[1] * height / frame.shape[0])
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            # A grey frame around each: a black panel would run into the next black screen.
            frames.append(
                cv2.copyMakeBorder(frame, *[_STRIP_BORDER] * 4, cv2.BORDER_CONSTANT, value=OTHER)
            )
    capture.release()
    if not frames:
        return None
    frames += [np.zeros_like(frames[0])] * (-len(frames) % columns)  # a full last row
    rows = [np.hstack(frames[i : i + columns]) for i in range(0, len(frames), columns)]
    cv2.imwrite(str(png), np.vstack(rows))
    return png
