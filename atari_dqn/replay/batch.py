"""One batch of transitions, the same type on the host (numpy) and on a device (torch).

A transition's frames are one window: for a one-step transition `history + 1` consecutive
frames, of which the stack acted on and the stack after the step are two overlapping views
(5 frames per transition are gathered and copied, not 8); for an n-step one (n > 1) the two
stacks one after the other (`2 * history` frames), since the stack n steps later does not
overlap the first. `Batch.stacks` is the one place that says where each stack is.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class Batch(NamedTuple):
    """B transitions as numpy arrays (what the sampler fills) or torch tensors (what the
    learner reads)."""

    frames: Any
    """uint8[B, window, H, W]: each transition's frames (the module docstring)."""
    action: Any
    """int64[B]: the action taken from the first stack (a_tm1)."""
    reward: Any
    """float32[B]: the reward (the env clips it), summed over the n steps with discounts for
    an n-step transition (r_t)."""
    discount: Any
    """float32[B]: what multiplies the bootstrap value (discount_t): gamma ** n, or 0 when
    the episode terminated within the steps (truncations bootstrap from their true last
    frame); with the replay's gamma 1, 1 or 0."""
    weight: Any
    """float32[B]: the importance-sampling weight of each transition (1 for uniform
    sampling; prioritized replay's corrections otherwise)."""
    index: Any
    """int64[B]: where each transition lies in the replay (`env * slots + slot`), for
    writing its priority back."""

    def stacks(self, history: int) -> tuple[Any, Any]:
        """(obs, next_obs), each [B, history, H, W], views of `frames`: the stack acted on
        (s_tm1) and the stack to bootstrap from (s_t)."""
        return self.frames[:, :history], self.frames[:, -history:]


DTYPES = (np.uint8, np.int64, np.float32, np.float32, np.float32, np.int64)
"""The dtype of each field of a Batch, in order."""


def batch_shapes(batch_size: int, window: tuple[int, int, int]) -> tuple[tuple[int, ...], ...]:
    """The shape of each field of a Batch of `batch_size` transitions of `window` =
    (frames, H, W)."""
    return ((batch_size, *window), *([(batch_size,)] * (len(DTYPES) - 1)))


def empty_batch(batch_size: int, window: tuple[int, int, int]) -> Batch:
    """Uninitialised numpy arrays for `batch_size` transitions of `window` frames, weights 1."""
    shapes = batch_shapes(batch_size, window)
    batch = Batch(*(np.empty(s, d) for s, d in zip(shapes, DTYPES, strict=True)))
    batch.weight[:] = 1.0
    return batch
