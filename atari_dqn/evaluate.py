"""The Nature paper's evaluation protocol, used both during training and by `eval`.

Methods, "Evaluation procedure": each game starts with up to 30 random no-ops, the agent
plays epsilon-greedy with epsilon 0.05, a game lasts until game over or 5 minutes of play
(18,000 emulator frames), lives do not end it, and the score is the raw, unclipped sum.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from atari_dqn.config import Config, ConfigError, to_dict
from atari_dqn.envs import VectorEnv, env_overrides, make_env
from atari_dqn.replay import FrameRing
from atari_dqn.stats import bootstrap_ci

# Acting only needs the last `history_length` frames of each env, so a tiny ring suffices.
_EVAL_SLOTS_PER_ENV = 32


@dataclass(frozen=True)
class EvalResult:
    """Raw scores of full games, with their mean and a 95% bootstrap interval."""

    scores: list[float]
    frames: list[int]
    mean: float
    ci_low: float
    ci_high: float

    @property
    def ci95(self) -> float:
        """Half the interval's width, for `mean +- ci95` displays."""
        return (self.ci_high - self.ci_low) / 2


def eval_env_overrides(cfg: Config) -> dict:
    """Env settings for scoring: the training preprocessing, with the paper's evaluation rules."""
    env = env_overrides(cfg.env)
    env.update(
        noop_max=cfg.eval.noop_max,
        max_episode_frames=cfg.eval.max_episode_frames,
        terminal_on_life_loss=False,  # full games: lives never end a scored episode
        clip_rewards=False,
    )
    return env


def evaluate(learner, cfg: Config, *, episodes: int, seed: int, progress=None) -> EvalResult:
    """Play `episodes` full games with the paper protocol and return their raw scores.

    Env i of the batch plays games i, i+n, i+2n, ... so the result does not favour short
    games, and the same seed gives the same games.
    """
    n = min(episodes, cfg.loop.num_envs)
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    done_per_env = np.zeros(n, dtype=np.int64)
    history = cfg.replay.history_length
    ring = FrameRing(_EVAL_SLOTS_PER_ENV * n, n, history_length=history, seed=seed)
    rng = np.random.default_rng([seed, 2])
    scores: list[float] = []
    frames: list[int] = []
    with VectorEnv(cfg.env.game, n, seed=seed, **eval_env_overrides(cfg)) as envs:
        ring.start_episodes(np.arange(n), envs.reset())
        size = cfg.env.screen_size
        stacks = np.empty((n, history, size, size), dtype=np.uint8)
        while (done_per_env < quota).any():
            actions = learner.act(ring.stacks(out=stacks), cfg.eval.epsilon, rng)
            out = envs.step(actions)
            ring.add(actions, out.rewards, out.terminated, out.truncated, out.frames)
            ended = np.flatnonzero(out.terminated | out.truncated)
            if ended.size:
                ring.start_episodes(ended, out.first_frames[ended])
            for i in np.flatnonzero(out.game_over):
                if done_per_env[i] < quota[i]:
                    done_per_env[i] += 1
                    scores.append(float(out.episode_returns[i]))
                    frames.append(int(out.episode_frames[i]))
                    if progress is not None:
                        progress(len(scores), episodes)
    mean, low, high = bootstrap_ci(np.array(scores), seed=seed)
    return EvalResult(scores=scores, frames=frames, mean=mean, ci_low=low, ci_high=high)


def evaluate_run(
    run_dir: Path,
    *,
    episodes: int | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
) -> int:
    """`atari-dqn eval`: score the latest checkpoint of `run_dir`, print it, write eval.json."""
    from rich.progress import Progress

    from atari_dqn.checkpoint import check_compatible, load_state
    from atari_dqn.config import parse_overrides
    from atari_dqn.learner import Learner
    from atari_dqn.loop import read_run_config

    if set(parse_overrides(overrides or [])) - {"eval"}:
        raise ConfigError("eval takes only eval.* overrides, e.g. eval.epsilon=0.05")
    cfg = read_run_config(run_dir, overrides)
    episodes = episodes or cfg.eval.episodes
    if episodes <= 0:
        raise ConfigError(f"--episodes must be positive, got {episodes}")
    seed = cfg.seed + 1 if seed is None else seed
    state = load_state(run_dir)
    probe = make_env(cfg.env.game, **env_overrides(cfg.env))
    n_actions = int(probe.action_space.n)
    probe.close()
    check_compatible(state, game=cfg.env.game, n_actions=n_actions, path=run_dir)
    learner = Learner(n_actions, cfg.learner, history_length=cfg.replay.history_length)
    learner.load_state_dict(state["learner"])
    with Progress() as bar:
        task = bar.add_task(f"evaluating {cfg.env.game}", total=episodes)
        result = evaluate(
            learner,
            cfg,
            episodes=episodes,
            seed=seed,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    for i, (score, frames) in enumerate(zip(result.scores, result.frames, strict=True)):
        print(f"game {i + 1:>3}: score {score:>8.1f}  ({frames:,} frames)")
    steps = state["counters"]["agent_steps"]
    print(
        f"{cfg.env.game} after {steps:,} agent steps ({steps * cfg.env.frame_skip:,} frames): "
        f"mean {result.mean:.1f}, 95% CI [{result.ci_low:.1f}, {result.ci_high:.1f}] "
        f"over {episodes} games (epsilon {cfg.eval.epsilon}, seed {seed})"
    )
    record = {
        "game": cfg.env.game,
        "agent_steps": steps,
        "emulator_frames": steps * cfg.env.frame_skip,
        "seed": seed,
        "episodes": episodes,
        "protocol": to_dict(cfg)["eval"],
        **asdict(result),
    }
    (run_dir / "eval.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {run_dir / 'eval.json'}")
    return 0
