"""The buffers `bench replay` compares, built and filled alike: ours (uniform and
prioritized), Stable-Baselines3's ReplayBuffer (optimised and plain), cpprb's
PrioritizedReplayBuffer, and a numpy sum tree of Dopamine's design beside our frames.

Every buffer holds 84x84 frames stacked by 4 and is filled from the same `Stream`: random
frames from a pool reused cyclically (filling is not what is measured), geometric episode
lengths, random actions. cpprb stores each frame once too (`next_of` and `stack_compress`,
its compression of next observations and stacked frames), with the stack axis last as it
requires; its alpha and epsilon are ours.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from atari_dqn.replay.ring import FrameRing

BATCH = 32
HISTORY = 4
FRAME = (84, 84)
ALPHA = 0.6  # the priority exponent, ours and cpprb's
BETA = 0.4  # the importance exponent of every prioritized draw (the paper's beta_0)
EPSILON = 1e-6
MEAN_EPISODE_STEPS = 500  # geometric episode lengths; each episode costs the ring one slot
POOL_FRAMES = 1024  # random frames reused cyclically: filling is not the thing measured
KINDS = ("ours", "ours_prioritized", "sb3_optimized", "sb3_plain", "cpprb")


class Stream:
    """Random frames (a pool reused cyclically: filling is not what is measured), episode
    ends and actions for `steps` agent steps, made before any buffer is measured."""

    def __init__(self, steps: int) -> None:
        rng = np.random.default_rng(0)
        self.pool = rng.integers(0, 256, (POOL_FRAMES, *FRAME), np.uint8)
        self.ends = rng.random(steps) < 1.0 / MEAN_EPISODE_STEPS
        self.actions = rng.integers(0, 4, steps)
        self.zero = np.zeros(1)


def build(kind: str, capacity: int) -> Any:
    """An empty buffer of `kind` (one of `KINDS`) for `capacity` transitions."""
    if kind.startswith("ours"):
        prioritized = kind == "ours_prioritized"
        return FrameRing(
            capacity,
            1,
            history_length=HISTORY,
            frame_shape=FRAME,
            prioritized=prioritized,
            priority_exponent=ALPHA,
            priority_epsilon=EPSILON,
        )
    if kind == "cpprb":
        from cpprb import PrioritizedReplayBuffer

        obs = {"shape": (*FRAME, HISTORY), "dtype": np.uint8}
        fields = {"obs": obs, "act": {"dtype": np.int32}, "rew": {}, "done": {}}
        return PrioritizedReplayBuffer(
            capacity, fields, alpha=ALPHA, eps=EPSILON, next_of="obs", stack_compress="obs"
        )
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer

    optimize = kind == "sb3_optimized"
    return ReplayBuffer(
        capacity,
        spaces.Box(0, 255, (HISTORY, *FRAME), np.uint8),
        spaces.Discrete(4),
        device="cpu",
        optimize_memory_usage=optimize,
        handle_timeout_termination=not optimize,  # SB3 forbids both together
    )


def fill(kind: str, buffer: Any, stream: Stream) -> None:
    """Add every step of `stream` (our ring also gets a first frame per episode)."""
    pool, zero = stream.pool, stream.zero
    if kind.startswith("ours"):
        buffer.start_episodes(np.array([0]), pool[:1])
    for i, end in enumerate(stream.ends):
        j = i % (POOL_FRAMES - HISTORY)
        action = stream.actions[i : i + 1]
        if kind.startswith("ours"):
            buffer.add(action, zero, stream.ends[i : i + 1], zero, pool[j + HISTORY][None])
            if end:
                buffer.start_episodes(np.array([0]), pool[j + 1][None])
            continue
        obs, next_obs = pool[j : j + HISTORY][None], pool[j + 1 : j + 1 + HISTORY][None]
        if kind == "cpprb":
            stacked = np.moveaxis(obs[0], 0, -1), np.moveaxis(next_obs[0], 0, -1)
            buffer.add(obs=stacked[0], act=action, rew=0.0, next_obs=stacked[1], done=end)
        else:
            buffer.add(obs, next_obs, action[None], zero, stream.ends[i : i + 1], [{}])


def filled(kind: str, capacity: int) -> Any:
    """A buffer of `kind` filled past its capacity (our ring wraps)."""
    buffer = build(kind, capacity)
    fill(kind, buffer, Stream(capacity + capacity // 10))
    return buffer


def array_bytes(kind: str, buffer: Any) -> int | None:
    """Bytes of the buffer's arrays (ours: saved state and validity flags), None for cpprb,
    whose storage is not exposed."""
    if kind.startswith("ours"):
        arrays = buffer.state_views(buffer.slots).values()
        return sum(a.nbytes for a in arrays) + buffer.valid_flags().nbytes
    if kind == "cpprb":
        return None
    names = ["observations", "actions", "rewards", "dones", "timeouts", "next_observations"]
    return sum(getattr(buffer, n).nbytes for n in names if hasattr(buffer, n))


def stored(kind: str, buffer: Any, capacity: int) -> int:
    """Transitions the buffer can sample: ours counts its valid ones; SB3's optimised buffer
    cannot sample the slot at `pos`."""
    if kind.startswith("ours"):
        return len(buffer)
    return capacity - 1 if kind == "sb3_optimized" else capacity


class NumpySumTree:
    """A proportional sum tree of Dopamine's design (`dopamine/replay_memory/sum_tree.py`)
    in numpy, written here for the benchmark: float64 nodes in one flat array (leaves at
    `[L, 2L)`, node i's children 2i and 2i + 1, L the power of two >= `size`); a stratified
    batch cuts [0, total) into equal segments and each point descends from the root in a
    Python loop; a write adds its change to every ancestor, as Dopamine's `set` does. Its
    memory per transition is its nodes' (`nbytes / size`)."""

    def __init__(self, priorities: np.ndarray, seed: int = 0) -> None:
        self.size = priorities.size
        self.leaves = 1 << (self.size - 1).bit_length()
        self.nodes = np.zeros(2 * self.leaves)
        self.nodes[self.leaves : self.leaves + self.size] = priorities
        for node in range(self.leaves - 1, 0, -1):
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1]
        self.max_priority = max(1.0, float(priorities.max()))
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int, n_valid: int, beta: float) -> tuple[np.ndarray, np.ndarray]:
        """(int64[B] leaves drawn in proportion, float32[B] importance weights over the
        batch's largest)."""
        total = self.nodes[1]
        points = (np.arange(batch_size) + self.rng.random(batch_size)) * (total / batch_size)
        index = np.empty(batch_size, np.int64)
        for b, u in enumerate(points):
            node = 1
            while node < self.leaves:
                left = self.nodes[2 * node]
                if u < left:
                    node = 2 * node
                else:
                    u -= left
                    node = 2 * node + 1
            index[b] = node - self.leaves
        weights = (n_valid * self.nodes[self.leaves + index] / total) ** -beta
        return index, (weights / weights.max()).astype(np.float32)

    def update(self, index: np.ndarray, td_abs: np.ndarray) -> None:
        """Leaves `index` := (|td| + epsilon) ** alpha, one at a time, by deltas."""
        for i, priority in zip(index, (np.abs(td_abs) + EPSILON) ** ALPHA, strict=True):
            self.max_priority = max(self.max_priority, priority)
            node = self.leaves + i
            delta = priority - self.nodes[node]
            while node >= 1:
                self.nodes[node] += delta
                node //= 2
