"""A naive replay built the obvious way, and a "counter" frame stream to feed it and the ring.

Every frame carries a serial number (1, 2, ...) and its env id in its first pixels, so any
window the ring gathers decodes back to the frames it holds. The reference keeps each
transition as (obs stack, action, reward, next stack, discount), the stacks maintained
with a deque reset to h copies of the first frame (as DQN Zoo / SB3 frame stacking does),
and drops a transition once a ring of the same capacity would have overwritten any frame
of its window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

CONTINUE, TERMINATED, TRUNCATED = 0, 1, 2

# (env, obs serials, action, reward, next_obs serials, discount)
Transition = tuple[int, tuple[int, ...], int, float, tuple[int, ...], float]


def encode(serials: np.ndarray, env_ids: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
    """uint8[k, H, W] frames whose first 4 pixels hold serial (24 bits) and env id."""
    frames = np.zeros((len(serials), *frame_shape), np.uint8)
    flat = frames.reshape(len(serials), -1)
    serials = np.asarray(serials, np.int64)
    flat[:, 0] = serials & 255
    flat[:, 1] = (serials >> 8) & 255
    flat[:, 2] = (serials >> 16) & 255
    flat[:, 3] = env_ids
    return frames


def decode(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(serials, env ids) of uint8[..., H, W] frames, each of shape frames.shape[:-2]."""
    flat = frames.reshape(*frames.shape[:-2], frames.shape[-2] * frames.shape[-1]).astype(np.int64)
    return flat[..., 0] | (flat[..., 1] << 8) | (flat[..., 2] << 16), flat[..., 3]


def action_of(serial: int) -> int:
    return serial % 6


def reward_of(serial: int) -> float:
    return ((serial * 7) % 5 - 2) / 2.0


@dataclass
class ReferenceReplay:
    """Plain lists: every transition ever added, and which ones the ring still holds."""

    slots: int
    num_envs: int
    history: int
    transitions: list[tuple[Transition, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stack = [deque(maxlen=self.history) for _ in range(self.num_envs)]
        self.write_ids = [deque(maxlen=self.history) for _ in range(self.num_envs)]
        self.written = [0] * self.num_envs

    def start(self, env: int, serial: int) -> None:
        self.stack[env].extend([serial] * self.history)
        self.write_ids[env].extend([self.written[env]] * self.history)
        self.written[env] += 1

    def add(self, env: int, serial: int, action: int, reward: float, end: int) -> None:
        obs, oldest = tuple(self.stack[env]), self.write_ids[env][0]
        self.stack[env].append(serial)
        self.write_ids[env].append(self.written[env])
        self.written[env] += 1
        discount = 0.0 if end == TERMINATED else 1.0
        self.transitions.append(
            ((env, obs, action, reward, tuple(self.stack[env]), discount), oldest)
        )

    def valid(self) -> set[Transition]:
        """Transitions whose every frame is among the last `slots` written to their env."""
        return {t for t, oldest in self.transitions if oldest >= self.written[t[0]] - self.slots}

    def ever(self) -> set[Transition]:
        return {t for t, _ in self.transitions}

    def current_obs(self, env: int) -> tuple[int, ...]:
        return tuple(self.stack[env])


class CounterStream:
    """Feeds the same counter frames to a ring and a reference, one step of all envs at a time."""

    def __init__(self, ring, ref: ReferenceReplay) -> None:
        self.ring, self.ref = ring, ref
        self.serial = 0
        self.start(np.arange(ring.num_envs))

    def _serials(self, count: int) -> np.ndarray:
        serials = np.arange(self.serial + 1, self.serial + 1 + count)
        self.serial += count
        return serials

    def start(self, env_ids: np.ndarray) -> None:
        serials = self._serials(len(env_ids))
        self.ring.start_episodes(env_ids, encode(serials, env_ids, self.ring.frame_shape))
        for env, serial in zip(env_ids, serials, strict=True):
            self.ref.start(int(env), int(serial))

    def step(self, ends: list[int]) -> None:
        """One add() for all envs; `ends[e]` is CONTINUE, TERMINATED or TRUNCATED."""
        n = self.ring.num_envs
        ends_arr = np.asarray(ends)
        # The action and reward of a step are derived from the frame it was taken from.
        current = [self.ref.stack[e][-1] for e in range(n)]
        actions = np.array([action_of(s) for s in current])
        rewards = np.array([reward_of(s) for s in current], np.float32)
        serials = self._serials(n)
        self.ring.add(
            actions, rewards, ends_arr == TERMINATED, ends_arr == TRUNCATED,
            encode(serials, np.arange(n), self.ring.frame_shape),
        )  # fmt: skip
        for e in range(n):
            self.ref.add(e, int(serials[e]), int(actions[e]), float(rewards[e]), int(ends[e]))
        ended = np.flatnonzero(ends_arr != CONTINUE)
        if ended.size:
            self.start(ended)


def transitions_of(batch) -> list[Transition]:
    """Decode a ring Batch into reference-style tuples."""
    serials, envs = decode(batch.frames)
    h = batch.frames.shape[1] - 1  # one-step windows
    out = []
    for b in range(len(serials)):
        assert len(set(envs[b].tolist())) == 1, "a window mixes envs"
        out.append(
            (
                int(envs[b, 0]),
                tuple(serials[b, :h].tolist()),
                int(batch.action[b]),
                float(batch.reward[b]),
                tuple(serials[b, 1:].tolist()),
                float(batch.discount[b]),
            )
        )
    return out
