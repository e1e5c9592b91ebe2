"""The paper's evaluation protocol on a real game (Methods, "Evaluation procedure")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from quick_runs import learner_and_policy

from atari_dqn.config import Config
from atari_dqn.configfile import load_config
from atari_dqn.evaluate import eval_env_config, evaluate


class NoopLearner:
    """Always NOOP (action 0), recording the epsilon it is asked to act with."""

    def __init__(self) -> None:
        self.epsilons: list[float] = []

    def act(self, stacks: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
        self.epsilons.append(epsilon)
        return np.zeros(len(stacks), dtype=np.int64)


def test_eval_envs_use_the_papers_protocol_not_the_training_one():
    env = eval_env_config(Config())
    assert env.noop_max == 30
    assert env.max_episode_frames == 18_000
    assert env.terminal_on_life_loss is False
    assert env.clip_rewards is False
    assert env.frame_skip == 4


def test_lives_do_not_end_a_scored_game_and_the_frame_cap_does():
    # Breakout after FIRE at reset: a NOOP policy loses its first ball and never serves
    # again, so the game only ends at the cap, with the lost life not ending it.
    cfg = load_config(None, ["eval.max_episode_frames=2000", "eval.epsilon=0.0"], game="Breakout")
    learner = NoopLearner()
    result = evaluate(learner, cfg, episodes=3, seed=0)
    assert result.frames == [2000, 2000, 2000]
    assert len(result.scores) == 3
    assert set(learner.epsilons) == {0.0}


class RandomLearner:
    """Uniformly random actions from the rng the evaluation passes in."""

    def act(self, stacks: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, 6, size=len(stacks))


def test_evaluation_is_reproducible_per_seed_and_plays_exactly_the_games_asked_for():
    cfg = load_config(None, ["eval.max_episode_frames=1500", "loop.num_envs=2"], game="Pong")
    a = evaluate(RandomLearner(), cfg, episodes=3, seed=5)
    b = evaluate(RandomLearner(), cfg, episodes=3, seed=5)
    c = evaluate(RandomLearner(), cfg, episodes=3, seed=6)
    assert a == b
    assert a != c
    assert len(a.scores) == 3


def test_evaluation_acts_epsilon_greedy_with_epsilon_0_05():
    overrides = ["eval.max_episode_frames=6000", "loop.num_envs=4"]
    cfg = load_config(None, overrides, game="Breakout")
    _, policy = learner_and_policy()
    with torch.no_grad():  # make action 2 (RIGHT) the greedy choice everywhere
        last = policy.network.layers[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0]))
    actions: list[np.ndarray] = []
    act = policy.act
    policy.act = lambda s, e, r: actions.append(act(s, e, r)) or actions[-1]  # type: ignore[method-assign]
    evaluate(policy, cfg, episodes=8, seed=1)
    taken = np.concatenate(actions)
    assert len(taken) > 3000
    # epsilon 0.05 explores uniformly over 4 actions: a non-greedy action 0.05 * 3/4 of the time
    assert np.mean(taken != 2) == pytest.approx(0.05 * 3 / 4, abs=0.012)
