"""One acting step, shared by training and evaluation: stacks -> act -> step the envs -> record.

Training records into the frame ring, which also builds the stacks the agent acts on (the
same window rule it samples with); evaluation records into `FrameStacks`, which keeps only
the last `history` frames of each env and stacks them by the same rule.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from atari_dqn.env.step import VecStep
from atari_dqn.env.vector import VectorEnv


class Policy(Protocol):
    """What acts: `EpsilonGreedy` over a Q-network, or a test's stand-in."""

    def act(self, stacks: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
        """int64[N] actions for uint8[N, history, S, S] stacks."""
        ...


class RecordablePolicy(Policy, Protocol):
    """A policy that can say what it saw: Q(s, .) of every stack, which actions were random
    and, of a distributional network, the return distribution of each action taken
    (`EpsilonGreedy.act_and_values`), for recording."""

    def act_and_values(
        self, stacks: np.ndarray, epsilon: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]: ...

    @property
    def support(self) -> np.ndarray | None:
        """The returns a distributional network's atoms stand for; None without."""
        ...


class Recorder(Protocol):
    """Where an acting step reports each step's Q-values, random actions and return
    distributions (None for a network without), when recording."""

    def step(
        self,
        actions: np.ndarray,
        q_values: np.ndarray,
        explored: np.ndarray,
        distributions: np.ndarray | None,
    ) -> None: ...


class FrameMemory(Protocol):
    """Where an acting step records frames, and where the stacks to act on come from."""

    def start_episodes(self, env_ids: np.ndarray, frames: np.ndarray) -> None: ...

    def add(
        self,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        next_frames: np.ndarray,
    ) -> None: ...

    def stacks(self, out: np.ndarray | None = None) -> np.ndarray: ...


class FrameStacks:
    """The last `history` frames of each of N envs: the stacks to act on, without a replay.

    The frame ring's rule: positions before an episode's first frame repeat that frame
    (tested against the ring's own `stacks`)."""

    def __init__(self, num_envs: int, history: int, frame_shape: tuple[int, int]) -> None:
        self._stacks = np.zeros((num_envs, history, *frame_shape), np.uint8)

    def start_episodes(self, env_ids: np.ndarray, frames: np.ndarray) -> None:
        self._stacks[env_ids] = frames[:, None]

    def add(
        self,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        next_frames: np.ndarray,
    ) -> None:
        self._stacks[:, :-1] = self._stacks[:, 1:]
        self._stacks[:, -1] = next_frames

    def stacks(self, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            return self._stacks.copy()
        np.copyto(out, self._stacks)
        return out


class Acting:
    """N envs, the memory that records them, and the stacks buffer the policy reads; with a
    `recorder`, each step's Q-values and random actions go to it too."""

    def __init__(
        self,
        envs: VectorEnv,
        memory: FrameMemory,
        history: int,
        screen_size: int,
        recorder: Recorder | None = None,
    ):
        self.envs = envs
        self.memory = memory
        self.recorder = recorder
        self._stacks = np.empty((envs.num_envs, history, screen_size, screen_size), np.uint8)
        self._actions = np.zeros(envs.num_envs, np.int64)  # of the step in flight

    def start(self) -> None:
        """Start every env's first episode and record its first frame."""
        self.memory.start_episodes(np.arange(self.envs.num_envs), self.envs.reset())

    def step(
        self, policy: Policy, epsilon: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, VecStep]:
        """Act epsilon-greedy in every env, step them, record the step; (actions, step)."""
        actions = self.begin(policy, epsilon, rng)
        out = self.wait()
        self.record(out)
        return actions, out

    def begin(self, policy: Policy, epsilon: float, rng: np.random.Generator) -> np.ndarray:
        """Choose the actions and start the envs' step; `wait` waits for it, `record`
        records it.

        At epsilon 1 (random play before learning starts) the stacks are not even built:
        the actions are uniform draws from `rng`."""
        if self.recorder is not None:
            stacks = self.memory.stacks(out=self._stacks)
            actions, q_values, explored, distributions = policy.act_and_values(stacks, epsilon, rng)
            self.recorder.step(actions, q_values, explored, distributions)
        elif epsilon >= 1.0:
            actions = rng.integers(0, self.envs.n_actions, size=self.envs.num_envs)
        else:
            actions = policy.act(self.memory.stacks(out=self._stacks), epsilon, rng)
        self.envs.step_async(actions)
        self._actions = actions
        return actions

    def wait(self) -> VecStep:
        """The step `begin` started, once every env has made it."""
        return self.envs.step_wait()

    def record(self, out: VecStep) -> None:
        """Record the step into the memory; an ended episode's successor starts there."""
        self.memory.add(self._actions, out.rewards, out.terminated, out.truncated, out.frames)
        ended = np.flatnonzero(out.terminated | out.truncated)
        if ended.size:
            self.memory.start_episodes(ended, out.first_frames[ended])
