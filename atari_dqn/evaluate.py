"""The Nature paper's evaluation protocol, used both during training and by `eval`.

Methods, "Evaluation procedure": each game starts with up to 30 random no-ops, the agent
plays epsilon-greedy with epsilon 0.05, a game lasts until game over or 5 minutes of play
(18,000 emulator frames), lives do not end it, and the score is the raw, unclipped sum.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from atari_dqn.acting import Acting, FrameStacks, Policy
from atari_dqn.checkpoint import check_compatible, load_state
from atari_dqn.config import Config, EnvConfig
from atari_dqn.configfile import parse_overrides, to_dict
from atari_dqn.env.atari import action_meanings
from atari_dqn.env.vector import VectorEnv
from atari_dqn.errors import ConfigError
from atari_dqn.learner import Learner
from atari_dqn.rundir import RunDir
from atari_dqn.stats import bootstrap_ci
from atari_dqn.video import GameRecorder, choose, parse_choice, write_videos


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

    @property
    def ci95(self) -> float:
        """Half the interval's width, for `mean +- ci95` displays."""
        return (self.ci_high - self.ci_low) / 2


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
    n = min(episodes, cfg.loop.num_envs)
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
        scores=scores, frames=frames, steps=steps, mean=mean, ci_low=low, ci_high=high
    )


def evaluate_run(
    run_dir: Path,
    *,
    episodes: int | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
    video: str | None = None,
) -> int:
    """`atari-dqn eval`: score the latest checkpoint of `run_dir`, print it, write eval.json;
    with `video` (`best,median,worst` or game numbers), also those games as videos."""
    if set(parse_overrides(overrides or [])) - {"eval"}:
        raise ConfigError("eval takes only eval.* overrides, e.g. eval.epsilon=0.05")
    run = RunDir(run_dir)
    cfg = run.read_config(overrides)
    episodes = episodes or cfg.eval.episodes
    if episodes <= 0:
        raise ConfigError(f"--episodes must be positive, got {episodes}")
    seed = cfg.seed + 1 if seed is None else seed
    choice = parse_choice(video, episodes) if video is not None else None
    state = load_state(run)
    n_actions = len(action_meanings(cfg.env))
    check_compatible(state, game=cfg.env.game, n_actions=n_actions, run=run)
    learner = Learner(
        n_actions,
        cfg.learner,
        history_length=cfg.replay.history_length,
        screen_size=cfg.env.screen_size,
    )
    learner.load_state_dict(state["learner"])
    recorder = GameRecorder() if choice is not None else None
    with Progress() as bar:
        task = bar.add_task(f"evaluating {cfg.env.game}", total=episodes)
        result = evaluate(
            learner,
            cfg,
            episodes=episodes,
            seed=seed,
            progress=lambda done, total: bar.update(task, completed=done),
            recorder=recorder,
        )
    for i, (score, frames) in enumerate(zip(result.scores, result.frames, strict=True)):
        print(f"game {i + 1:>3}: score {score:>8.1f}  ({frames:,} frames)")
    steps = state["counters"]["agent_steps"]
    print(
        f"{cfg.env.game} after {steps:,} agent steps ({steps * cfg.env.frame_skip:,} frames): "
        f"mean {result.mean:.1f}, 95% CI [{result.ci_low:.1f}, {result.ci_high:.1f}] "
        f"over {episodes} games (epsilon {cfg.eval.epsilon}, seed {seed})"
    )
    run.write_record(
        run.eval_record,
        {
            "game": cfg.env.game,
            "agent_steps": steps,
            "emulator_frames": steps * cfg.env.frame_skip,
            "seed": seed,
            "episodes": episodes,
            "protocol": to_dict(cfg)["eval"],
            **asdict(result),
        },
    )
    print(f"wrote {run.eval_record}")
    if recorder is not None:
        games = choose(result.scores, choice)
        names = action_meanings(cfg.env)
        for path in write_videos(
            recorder.traces(), games, eval_env_config(cfg), names, run.videos, steps
        ):
            print(f"wrote {path}")
    return 0
