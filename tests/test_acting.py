"""The acting step shared by training and evaluation, and the stacks evaluation acts on."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from replay_reference import CONTINUE, TERMINATED, TRUNCATED, CounterStream, ReferenceReplay

from atari_dqn.acting import Acting, FrameStacks
from atari_dqn.configfile import load_config
from atari_dqn.env.vector import VectorEnv
from atari_dqn.replay.ring import FrameRing


class _Both:
    """Records every call into a frame ring and into FrameStacks alike."""

    def __init__(self, num_envs: int, history: int) -> None:
        self.num_envs, self.frame_shape = num_envs, (2, 2)
        self.ring = FrameRing(64 * num_envs, num_envs, history_length=history, frame_shape=(2, 2))
        self.stacks = FrameStacks(num_envs, history, (2, 2))

    def start_episodes(self, env_ids, frames) -> None:
        self.ring.start_episodes(env_ids, frames)
        self.stacks.start_episodes(env_ids, frames)

    def add(self, *step) -> None:
        self.ring.add(*step)
        self.stacks.add(*step)


@settings(max_examples=150, deadline=None)
@given(
    num_envs=st.integers(1, 4),
    history=st.integers(1, 4),
    ends=st.lists(st.lists(st.sampled_from([CONTINUE, CONTINUE, TERMINATED, TRUNCATED]),
                           min_size=4, max_size=4), max_size=40),
)  # fmt: skip
def test_frame_stacks_stack_exactly_as_the_ring_does(num_envs, history, ends):
    both = _Both(num_envs, history)
    stream = CounterStream(both, ReferenceReplay(64, num_envs, history))
    np.testing.assert_array_equal(both.stacks.stacks(), both.ring.stacks())
    for step in ends:
        stream.step(step[:num_envs])
        np.testing.assert_array_equal(both.stacks.stacks(), both.ring.stacks())


class _NoNetwork:
    def act(self, stacks, epsilon, rng):
        raise AssertionError("the policy was asked to act at epsilon 1")


def test_acting_at_epsilon_one_plays_uniformly_without_the_policy_and_records_each_step():
    cfg = load_config(None, ["env.noop_max=0"], game="Pong")
    with VectorEnv(cfg.env, 2, seed=0, workers=1) as envs:
        ring = FrameRing(1000, 2, history_length=4)
        acting = Acting(envs, ring, 4, 84)
        acting.start()
        rng = np.random.default_rng(0)
        taken = np.concatenate([acting.step(_NoNetwork(), 1.0, rng)[0] for _ in range(300)])
        assert len(ring) >= 2 * 300 - 2 * 3  # every step recorded (less the invalid band)
    assert set(np.unique(taken)) == set(range(6))
