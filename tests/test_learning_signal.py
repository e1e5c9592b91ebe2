"""Replay and learner together: each reward is credited to the action that earned it."""

from __future__ import annotations

import numpy as np
import torch
from quick_runs import make_learner

from atari_dqn.replay.feed import as_tensors
from atari_dqn.replay.ring import FrameRing


def test_q_values_learn_which_action_pays_through_the_frame_ring():
    # One-step episodes on random frames: action 2 pays +1, every other action pays 0.
    # If the ring paired a reward with the wrong action, Q could not tell them apart.
    rng = np.random.default_rng(0)
    ring = FrameRing(2000, 2, seed=0)
    ids = np.arange(2)
    frames = lambda: rng.integers(0, 256, (2, 84, 84), dtype=np.uint8)  # noqa: E731
    for _ in range(600):
        ring.start_episodes(ids, frames())
        actions = rng.integers(0, 4, size=2)
        rewards = (actions == 2).astype(np.float32)
        ring.add(actions, rewards, np.ones(2, bool), np.zeros(2, bool), frames())
    learner = make_learner(learning_rate=1e-3)
    for _ in range(300):
        learner.update(as_tensors(ring.sample(32)))
    batch = ring.sample(256)
    with torch.no_grad():
        q = learner.online(torch.from_numpy(batch.stacks(4)[0].copy()))
    assert (q.argmax(dim=1) == 2).float().mean() > 0.9
    assert q[:, 2].mean() > 0.8 and q[:, [0, 1, 3]].abs().mean() < 0.2
