"""A naive replay built the obvious way, and a "counter" frame stream to feed it and the ring.

Every frame carries a serial number (1, 2, ...) and its env id in its first pixels, so any
window the ring gathers decodes back to the frames it holds. The reference keeps each
transition as (obs stack, action, reward, next stack, discount), the stacks maintained
with a deque reset to h copies of the first frame (as DQN Zoo / SB3 frame stacking does),
and drops a transition once a ring of the same capacity would have overwritten any frame
of its window.

n-step transitions (Rainbow's): the reference holds each episode's steps in a list and
emits the transition of step i once n steps from it are recorded or the episode ended
within them: reward sum_k gamma^k r_{i+k} (in float64, stored as float32, as the ring
does), discount 0 after a termination, else gamma^m, next stack the one after its last
step. An episode cut short by a restart (RESTART) emits nothing more.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

CONTINUE, TERMINATED, TRUNCATED = 0, 1, 2
RESTART = 3  # the step continues the episode, then the env starts a new one regardless

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
class Step:
    """One recorded step of an episode, with the stacks before and after it."""

    obs: tuple[int, ...]
    oldest: int  # write id of the oldest frame of `obs`
    action: int
    reward: float
    end: int
    after: tuple[int, ...]


@dataclass
class ReferenceReplay:
    """Plain lists: every transition ever added, and which ones the ring still holds."""

    slots: int
    num_envs: int
    history: int
    n_step: int = 1
    gamma: float = 1.0
    transitions: list[tuple[Transition, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stack = [deque(maxlen=self.history) for _ in range(self.num_envs)]
        self.write_ids = [deque(maxlen=self.history) for _ in range(self.num_envs)]
        self.written = [0] * self.num_envs
        self.episode: list[list[Step]] = [[] for _ in range(self.num_envs)]
        self.emitted = [0] * self.num_envs  # steps of the episode whose transition is out

    def start(self, env: int, serial: int) -> None:
        self.stack[env].extend([serial] * self.history)
        self.write_ids[env].extend([self.written[env]] * self.history)
        self.written[env] += 1
        self.episode[env], self.emitted[env] = [], 0  # a cut episode's last steps are lost

    def add(self, env: int, serial: int, action: int, reward: float, end: int) -> None:
        obs, oldest = tuple(self.stack[env]), self.write_ids[env][0]
        self.stack[env].append(serial)
        self.write_ids[env].append(self.written[env])
        self.written[env] += 1
        steps = self.episode[env]
        steps.append(Step(obs, oldest, action, reward, end, tuple(self.stack[env])))
        ended = end in (TERMINATED, TRUNCATED)
        while self.emitted[env] < len(steps):
            i = self.emitted[env]
            if len(steps) - i < self.n_step and not ended:
                break
            self.transitions.append(self._transition(env, steps[i : i + self.n_step]))
            self.emitted[env] += 1

    def _transition(self, env: int, steps: list[Step]) -> tuple[Transition, int]:
        """The n-step transition of steps[0] over `steps` (its m steps)."""
        ret, scale = 0.0, 1.0
        for step in steps:
            ret += scale * step.reward
            scale *= self.gamma
        discount = 0.0 if steps[-1].end == TERMINATED else scale
        first, last = steps[0], steps[-1]
        reward = float(np.float32(ret))
        t = (env, first.obs, first.action, reward, last.after, float(np.float32(discount)))
        return t, first.oldest

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
        """One add() for all envs; `ends[e]` is CONTINUE, TERMINATED, TRUNCATED or RESTART
        (a step that continues the episode, after which the env starts a new one)."""
        n = self.ring.num_envs
        ends_arr = np.asarray(ends)
        # The action and reward of a step are derived from the frame it was taken from.
        current = [self.ref.stack[e][-1] for e in range(n)]
        actions = np.array([action_of(s) for s in current])
        rewards = np.array([reward_of(s) for s in current], np.float32)
        serials = self._serials(n)
        self.ring.add(
            actions,
            rewards,
            ends_arr == TERMINATED,
            ends_arr == TRUNCATED,
            encode(serials, np.arange(n), self.ring.frame_shape),
        )
        for e in range(n):
            end = CONTINUE if ends[e] == RESTART else int(ends[e])
            self.ref.add(e, int(serials[e]), int(actions[e]), float(rewards[e]), end)
        ended = np.flatnonzero(ends_arr != CONTINUE)
        if ended.size:
            self.start(ended)


def transitions_of(batch, n_step: int = 1) -> list[Transition]:
    """Decode a ring Batch of `n_step`-step transitions into reference-style tuples: its
    windows are h + 1 frames for one step, the two h-frame stacks one after the other else."""
    serials, envs = decode(batch.frames)
    width = batch.frames.shape[1]
    h = width - 1 if n_step == 1 else width // 2
    out = []
    for b in range(len(serials)):
        assert len(set(envs[b].tolist())) == 1, "a window mixes envs"
        out.append(
            (
                int(envs[b, 0]),
                tuple(serials[b, :h].tolist()),
                int(batch.action[b]),
                float(batch.reward[b]),
                tuple(serials[b, width - h :].tolist()),
                float(batch.discount[b]),
            )
        )
    return out


@dataclass
class FamilySpec:
    """A ring of the DQN family and the steps fed to it (`family_streams`)."""

    num_envs: int
    history: int
    n_step: int
    slots: int
    gamma: float
    prioritized: bool
    ends: list[list[int]]

    def make(self, frame_shape: tuple[int, int] = (2, 2), seed: int = 0):
        """(ring, stream): an empty ring of this spec and its counter stream."""
        from atari_dqn.replay.ring import FrameRing

        ring = FrameRing(
            self.slots * self.num_envs,
            self.num_envs,
            history_length=self.history,
            frame_shape=frame_shape,
            n_step=self.n_step,
            discount=self.gamma,
            prioritized=self.prioritized,
            seed=seed,
        )
        ref = ReferenceReplay(self.slots, self.num_envs, self.history, self.n_step, self.gamma)
        return ring, CounterStream(ring, ref)

    def filled(self, steps: int, seed: int = 0, p_end: float = 0.2):
        """(ring, stream) after `steps` steps, each env's episode ending at rate `p_end` by a
        termination, a truncation or a restart alike (drawn from `seed`, as is the ring's
        sampler)."""
        ring, stream = self.make(seed=seed)
        rng = np.random.default_rng(seed)
        codes = [TERMINATED, TRUNCATED, RESTART]
        for _ in range(steps):
            ends = rng.random(self.num_envs) < p_end
            stream.step([codes[rng.integers(3)] if end else CONTINUE for end in ends])
        return ring, stream


def scripted_step(ring, k: int) -> None:
    """Step k of a fixed two-env script, straight into `ring` (frame_shape (2, 2)): env 1's
    episode ends every third step. The same calls for any ring, whatever it held before."""
    frames = encode(np.array([1000 + 2 * k, 1001 + 2 * k]), np.array([0, 1]), (2, 2))
    ended = k % 3 == 0
    ring.add([k % 4, (k + 1) % 4], [0.5 * k, -1.0], [False, ended], [False, False], frames)
    if ended:
        ring.start_episodes(np.array([1]), encode(np.array([5000 + k]), np.array([1]), (2, 2)))


def family_streams(max_envs: int = 4, max_steps: int = 50, prioritized=None):
    """Hypothesis strategy of FamilySpecs: 1-`max_envs` envs, history 1-4, n_step 1-5, a
    ring of history + n_step to + 10 slots per env (so it wraps), gamma 1, 0.99 or 0.5, and
    per step each env's end code, ends (terminations, truncations, restarts) drawn at one
    of a few rates; `prioritized` None draws it too."""
    from hypothesis import strategies as st

    @st.composite
    def specs(draw):
        num_envs = draw(st.integers(1, max_envs))
        history = draw(st.integers(1, 4))
        n_step = draw(st.integers(1, 5))
        slots = draw(st.integers(history + n_step, history + n_step + 10))
        gamma = draw(st.sampled_from([1.0, 0.99, 0.5]))
        chosen = draw(st.booleans()) if prioritized is None else prioritized
        p_end = draw(st.sampled_from([0.0, 0.1, 0.4, 0.9]))
        codes = st.sampled_from([TERMINATED, TRUNCATED, TRUNCATED, RESTART])
        ends = [
            [draw(codes) if draw(st.floats(0, 1)) < p_end else CONTINUE for _ in range(num_envs)]
            for _ in range(draw(st.integers(0, max_steps)))
        ]
        return FamilySpec(num_envs, history, n_step, slots, gamma, chosen, ends)

    return specs()
