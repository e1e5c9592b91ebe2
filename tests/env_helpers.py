"""Shorthands for the env tests: configs from keywords, spare-game envs, vector envs, traces."""

from __future__ import annotations

import numpy as np

from atari_dqn.config import EnvConfig
from atari_dqn.configfile import from_dict
from atari_dqn.env.atari import AtariEnv
from atari_dqn.env.block import SpareGames
from atari_dqn.env.vector import VectorEnv

# Our env with every extra of the protocol off: what gymnasium's wrapper computes.
PLAIN = dict(noop_max=0, fire_reset=False, terminal_on_life_loss=False, clip_rewards=False)


def env_cfg(game: str, **overrides) -> EnvConfig:
    return from_dict({"env": {"game": game, **overrides}}).env


def spare_env(game: str, *, seed: int, **overrides) -> AtariEnv:
    """An env playing its games on two emulators in turn, as each env of a VectorEnv does."""
    return AtariEnv(env_cfg(game, **overrides), seed, games=SpareGames)


def vector(
    game: str,
    num_envs: int,
    *,
    seed: int,
    workers: int | None = None,
    in_process: bool = True,
    **overrides,
):
    return VectorEnv(
        env_cfg(game, **overrides), num_envs, seed=seed, workers=workers, in_process=in_process
    )


def trace(env, actions, after_step=lambda t: None, out=None, reset=True) -> list:
    """Everything `env` returns over `actions` (resetting ended episodes), reset infos included."""
    out = [] if out is None else out
    if reset:
        out.append(env.reset())
    for t, action in enumerate(actions):
        frame, reward, terminated, truncated, info = env.step(int(action))
        out.append((frame, reward, terminated, truncated, info))
        if terminated or truncated:
            out.append(env.reset())
        after_step(t)
    return out


def assert_same_trace(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]


def game_overs(trace: list) -> int:
    return sum(len(r) == 5 and r[4]["game_over"] for r in trace)
