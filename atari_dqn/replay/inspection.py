"""Looking inside a frame ring: every valid transition, and the transitions at given slots.

For tests (the ring against a reference replay) and benchmarks (gathering fixed windows),
by the same kernels the sampler runs. Call them on a ring no other thread is using.
"""

from __future__ import annotations

import numpy as np

from atari_dqn.replay.batch import Batch, empty_batch
from atari_dqn.replay.gather import gather_kernel
from atari_dqn.replay.ring import FrameRing, pixel_rows
from atari_dqn.replay.storage import validity_of


def valid_transitions(ring: FrameRing) -> tuple[np.ndarray, np.ndarray]:
    """(env_ids, slots), int64[K] each: every transition `sample` may draw, found by brute
    force from the metadata (not from the flags the ring keeps, which it is checked against)."""
    flags = validity_of(ring.state_views(ring.slots), ring.history_length, ring.n_step)
    env_ids, slots = np.nonzero(flags)
    return env_ids.astype(np.int64), slots.astype(np.int64)


def gather(ring: FrameRing, env_ids: np.ndarray, slots: np.ndarray) -> Batch:
    """The transitions at the given valid (env, slot) pairs, through the sampler's own gather
    (weights 1)."""
    env_ids = np.ascontiguousarray(env_ids, np.int64)
    slots = np.ascontiguousarray(slots, np.int64)
    batch = empty_batch(env_ids.size, ring.window)
    s = ring.state_views(ring.slots)
    gather_kernel(
        s["frames"],
        s["first"],
        s["action"],
        s["reward"],
        s["terminated"],
        s["truncated"],
        env_ids,
        slots,
        ring.history_length,
        ring.n_step,
        ring.discount,
        pixel_rows(batch.frames),
        batch.action,
        batch.reward,
        batch.discount,
        batch.index,
    )
    return batch
