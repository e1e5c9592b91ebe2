"""Looking inside a frame ring: every valid transition, and the transitions at given slots.

For tests (the ring against a reference replay) and benchmarks (gathering fixed windows),
by the same kernels the sampler runs. Call them on a ring no other thread is using.
"""

from __future__ import annotations

import numpy as np

from atari_dqn.replay import kernels
from atari_dqn.replay.batch import Batch, empty_batch
from atari_dqn.replay.ring import FrameRing, pixel_rows


def valid_transitions(ring: FrameRing) -> tuple[np.ndarray, np.ndarray]:
    """(env_ids, slots), int64[K] each: every transition `sample` may draw, by brute force."""
    s = ring.state_views(ring.slots)
    return kernels.valid_indices_kernel(
        s["first"], s["has_next"], s["cursor"], s["written"], ring.history_length
    )


def gather(ring: FrameRing, env_ids: np.ndarray, slots: np.ndarray) -> Batch:
    """The transitions at the given (env, slot) pairs, through the sampler's own gather."""
    env_ids = np.ascontiguousarray(env_ids, np.int64)
    slots = np.ascontiguousarray(slots, np.int64)
    batch = empty_batch(env_ids.size, ring.window)
    s = ring.state_views(ring.slots)
    kernels.gather_kernel(
        s["frames"],
        s["first"],
        s["action"],
        s["reward"],
        s["terminated"],
        env_ids,
        slots,
        ring.history_length,
        pixel_rows(batch.frames),
        batch.action,
        batch.reward,
        batch.discount,
        batch.weight,
        batch.index,
    )
    return batch
