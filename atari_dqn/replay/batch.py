"""One batch of transitions, the same type on the host (numpy) and on a device (torch).

A transition is stored as its window of `history + 1` consecutive frames; the stack acted
on and the stack after the step are two views of it (this is the one place that says so):
5 frames per transition are gathered and copied, not 8.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class Batch(NamedTuple):
    """B transitions as numpy arrays (what the sampler fills) or torch tensors (what the
    learner reads); the field names are the learner's `_tm1` / `_t` convention's inputs."""

    frames: Any
    """uint8[B, history + 1, H, W]: the window [p-h+1 .. p+1] of each transition."""
    action: Any
    """int64[B]: the action taken from `obs`."""
    reward: Any
    """float32[B]: the reward of the step, as stored (the env clips it)."""
    discount: Any
    """float32[B]: 0.0 if the step terminated the episode, else 1.0 (truncations included:
    they bootstrap from their true last frame); the learner multiplies it by gamma."""

    @property
    def obs(self) -> Any:
        """uint8[B, history, H, W]: view `frames[:, :-1]`, the stack acted on (s_tm1)."""
        return self.frames[:, :-1]

    @property
    def next_obs(self) -> Any:
        """uint8[B, history, H, W]: view `frames[:, 1:]`, the stack after the step (s_t)."""
        return self.frames[:, 1:]


DTYPES = (np.uint8, np.int64, np.float32, np.float32)
"""The dtype of each field of a Batch, in order."""


def batch_shapes(batch_size: int, window: tuple[int, int, int]) -> tuple[tuple[int, ...], ...]:
    """The shape of each field of a Batch of `batch_size` transitions of `window` =
    (history + 1, H, W) frames."""
    return ((batch_size, *window), (batch_size,), (batch_size,), (batch_size,))


def empty_batch(batch_size: int, window: tuple[int, int, int]) -> Batch:
    """Uninitialised numpy arrays for `batch_size` transitions of `window` frames."""
    shapes = batch_shapes(batch_size, window)
    return Batch(*(np.empty(s, d) for s, d in zip(shapes, DTYPES, strict=True)))
