"""The Nature paper's evaluation protocol: the one evaluation of training and of `eval`.

Methods, "Evaluation procedure": each game starts with up to 30 random no-ops, the agent
plays epsilon-greedy with epsilon 0.05, a game lasts until game over or 5 minutes of play
(18,000 emulator frames), lives do not end it, and the score is the raw, unclipped sum.
`evaluate` plays the games; `evaluate_and_film` also films the chosen ones; an
`EvalResult`'s `record` is the one format both `eval.json` and `evals.csv` hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atari_dqn.acting import Acting, FrameStacks, Policy, RecordablePolicy
from atari_dqn.config import Config, EnvConfig
from atari_dqn.env.atari import action_meanings
from atari_dqn.env.vector import VectorEnv
from atari_dqn.stats import bootstrap_ci
from atari_dqn.video import GameRecorder, choose, write_videos


@dataclass(frozen=True)
class EvalResult:
    """Raw scores of full games, with their mean and a 95% bootstrap interval."""

    scores: list[float]
    frames: list[int]
    """Emulator frames of each game, its reset's no-ops and FIRE included."""
    steps: list[int]
    """Agent steps of each game (actions chosen)."""
    mean: float
    ci_low: float
    ci_high: float
    """The 95% bootstrap interval of the mean over the games."""
    seed: int
    """The evaluation's seed: the same seed plays the same games."""

    @property
    def ci95(self) -> float:
        """Half the interval's width, for `mean +- ci95` displays."""
        return (self.ci_high - self.ci_low) / 2

    def record(self, cfg: Config, agent_steps: int) -> dict[str, Any]:
        """The evaluation of a run at `agent_steps`, as `eval.json` and `evals.csv` hold it:
        what was played (the protocol, the games), and the scores with their interval."""
        return {
            "game": cfg.env.game,
            "agent_steps": agent_steps,
            "emulator_frames": agent_steps * cfg.env.frame_skip,
            "episodes": len(self.scores),
            "protocol": {
                "epsilon": cfg.eval.epsilon,
                "max_episode_frames": cfg.eval.max_episode_frames,
                "noop_max": cfg.eval.noop_max,
            },
            **asdict(self),
        }


FEW_GAMES = 10
"""Below this many games, a bootstrap interval of their mean is too rough to read: three
games resample into few distinct means (all one value when the three scores are equal)."""


def too_few_games(games: int) -> str:
    """A caveat to end the line that gives the interval of `games` games' mean, or ''."""
    if games >= FEW_GAMES:
        return ""
    return f"; {games} games are too few for an interval worth reading (the paper plays 30)"


def eval_env_config(cfg: Config) -> EnvConfig:
    """Env settings for scoring: the training preprocessing, with the paper's evaluation rules."""
    return dataclasses.replace(
        cfg.env,
        noop_max=cfg.eval.noop_max,
        max_episode_frames=cfg.eval.max_episode_frames,
        terminal_on_life_loss=False,  # full games: lives never end a scored episode
        clip_rewards=False,
    )


def evaluate(
    policy: Policy,
    cfg: Config,
    *,
    episodes: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
    recorder: GameRecorder | None = None,
) -> EvalResult:
    """Play `episodes` full games with the paper protocol and return their raw scores.

    Env i of the batch plays games i, i+n, i+2n, ... so the result does not favour short
    games, and the same seed gives the same games. A `recorder` (and a policy with
    `act_and_values`) keeps what it takes to watch the scored games again.
    """
    n = min(episodes, cfg.eval.num_envs or cfg.loop.num_envs)
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    done_per_env = np.zeros(n, dtype=np.int64)
    steps_in_game = np.zeros(n, dtype=np.int64)
    history, size = cfg.replay.history_length, cfg.env.screen_size
    rng = np.random.default_rng([seed, 2])
    scores: list[float] = []
    frames: list[int] = []
    steps: list[int] = []
    if recorder is not None:
        recorder.start(n)
    recording = recorder is not None
    with VectorEnv(eval_env_config(cfg), n, seed=seed, record_starts=recording) as envs:
        acting = Acting(envs, FrameStacks(n, history, (size, size)), history, size, recorder)
        acting.start()
        while (done_per_env < quota).any():
            _, out = acting.step(policy, cfg.eval.epsilon, rng)
            steps_in_game += 1
            if recorder is not None:
                recorder.rewards(out.raw_rewards)
            for i in np.flatnonzero(out.game_over):
                keep = done_per_env[i] < quota[i]
                if keep:
                    done_per_env[i] += 1
                    scores.append(float(out.episode_returns[i]))
                    frames.append(int(out.episode_frames[i]))
                    steps.append(int(steps_in_game[i]))
                    if progress is not None:
                        progress(len(scores), episodes)
                if recorder is not None:
                    recorder.game_over(i, keep)
                steps_in_game[i] = 0
        if recorder is not None:
            recorder.starts = envs.game_starts()
    mean, low, high = bootstrap_ci(np.array(scores), seed=seed)
    return EvalResult(
        scores=scores, frames=frames, steps=steps, mean=mean, ci_low=low, ci_high=high, seed=seed
    )


def evaluate_and_film(
    policy: RecordablePolicy,
    cfg: Config,
    *,
    episodes: int,
    seed: int,
    agent_steps: int,
    film: list[str] | list[int] | None = None,
    video_folder: Path | None = None,
    say: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """`evaluate`, then, with `film` (`["median"]`, `["best", "worst"]` or game numbers as
    `eval` prints them, from 1), those games as videos in `video_folder`
    (`atari_dqn.video`); `say` is handed the line that names each file written. A game whose
    replay differs from it raises VideoError."""
    recorder = GameRecorder() if film else None
    result = evaluate(
        policy, cfg, episodes=episodes, seed=seed, progress=progress, recorder=recorder
    )
    if recorder is not None:
        games = choose(result.scores, film)
        names = action_meanings(cfg.env)
        traces = recorder.traces()
        for path in write_videos(
            traces, games, eval_env_config(cfg), names, video_folder, agent_steps, policy.support
        ):
            say(f"wrote {path}")
    return result
