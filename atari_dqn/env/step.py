"""One step of N envs: the record the vector env returns, and how one env's step fills it.

The one description of an env step: each field's dtype and shape live on the field, the
shared-memory layout of the worker processes is derived from them, and `step_row` says what
each field holds for one env. A new field is one field here and one entry in `step_row`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


def _per_env(dtype: type, frame: bool = False) -> Any:
    """A field of one value per env (`frame`: one frame per env) of numpy `dtype`."""
    return field(metadata={"dtype": np.dtype(dtype), "frame": frame})


@dataclass(frozen=True)
class VecStep:
    """One step of N envs; every array has N rows, one per env."""

    frames: np.ndarray = _per_env(np.uint8, frame=True)
    """uint8[N, S, S] the frame after the action (for an ended episode: its true last frame)."""
    rewards: np.ndarray = _per_env(np.float32)
    """float32[N] as the env returns them (clipped when clip_rewards)."""
    raw_rewards: np.ndarray = _per_env(np.float32)
    """float32[N] unclipped."""
    terminated: np.ndarray = _per_env(np.bool_)
    """bool[N] episode ended (a life loss counts when terminal_on_life_loss)."""
    truncated: np.ndarray = _per_env(np.bool_)
    """bool[N] the episode frame cap was reached."""
    first_frames: np.ndarray = _per_env(np.uint8, frame=True)
    """uint8[N, S, S] where terminated | truncated: the next episode's first frame."""
    game_over: np.ndarray = _per_env(np.bool_)
    """bool[N] a full game ended this step (game over or frame cap), not just a life."""
    episode_returns: np.ndarray = _per_env(np.float64)
    """float64[N] raw score of the full game where game_over, else nan."""
    episode_frames: np.ndarray = _per_env(np.int64)
    """int64[N] emulator frames of the full game where game_over, else 0."""

    @staticmethod
    def specs(num_envs: int, screen_size: int) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """Each field's (dtype, shape) for `num_envs` envs of `screen_size` frames."""
        frame = (screen_size, screen_size)
        return {
            f.name: (
                f.metadata["dtype"],
                (num_envs, *frame) if f.metadata["frame"] else (num_envs,),
            )
            for f in fields(VecStep)
        }

    @staticmethod
    def copy_from(arrays: dict[str, np.ndarray]) -> VecStep:
        """A VecStep holding copies of the fields' arrays in `arrays` (e.g. shared memory)."""
        return VecStep(**{f.name: arrays[f.name].copy() for f in fields(VecStep)})


def step_row(
    frame: np.ndarray, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
) -> dict[str, Any]:
    """One env's values of every field but `first_frames` (written only when an episode
    ended), from what `AtariEnv.step` returned."""
    return {
        "frames": frame,
        "rewards": reward,
        "raw_rewards": info["raw_reward"],
        "terminated": terminated,
        "truncated": truncated,
        "game_over": info["game_over"],
        "episode_returns": info.get("episode_return", np.nan),
        "episode_frames": info.get("episode_frames", 0),
    }
