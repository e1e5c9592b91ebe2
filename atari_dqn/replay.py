"""The frame-ring replay memory: each 84x84 frame stored once, stacks rebuilt when sampled.

Layout (DESIGN.md, Replay). Each env owns a ring of `slots = capacity // num_envs` frames
and per-slot metadata. An episode of T steps occupies T+1 consecutive slots: its first
frame, then one frame per step. Slot `p` holds the action taken from frame `p`, the reward
and flags of that step, and `has_next[p]` says frame `p + 1` was written after it, so a
truncated (time-limit) episode keeps its true last frame to bootstrap from.

A transition at slot `p` is sampled as the window `[p-h+1 .. p+1]` of `h + 1` frames
(`h = history_length`): `obs = window[:h]`, `next_obs = window[1:]`. Frames before the
episode's first frame are replaced by that first frame; acting (`stacks`) uses the same
window function, so the agent acts on exactly the stacks it learns from.

Invalid range (as Dopamine documents next to its buffer): slot `p` is valid when
`has_next[p]` (an action was taken from it and its next frame is still the one written
after it: writing a slot clears its own flag) and its backward window does not reach the
newest slot, i.e. the ring has not overwritten the frames before `p`. Only the `h - 1`
slots at and after the write cursor can fail the second test, so sampling draws a filled
slot uniformly (over all envs) and rejects the few invalid ones: episode-last frames and
that band near the cursor.

Threading: every public method takes the ring's lock; the numba kernels release the GIL,
so a `Prefetcher` thread gathers the next batch while the learner runs, and `add` waits for
a gather in progress rather than racing it.
"""

from __future__ import annotations

import json
import os
import queue
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numba
import numpy as np
import torch

from atari_dqn.config import ConfigError

_FORMAT_VERSION = 1
_MAGIC = b"ATARIDQN-RING\x00\x01\x00"
_TRAILER = struct.Struct("<Q16s")  # header length, magic
_CHUNK_BYTES = 64 << 20


class ReplayError(ConfigError):
    """Misuse of the replay memory, or an unreadable replay file; the message names the fix."""


# --------------------------------------------------------------------------------------
# Numba kernels. Plain loops over preallocated arrays; all release the GIL.
# Per-env arrays are [N, S] (S slots per env); frames are [N, S, H*W] (rows copied whole).
# --------------------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True, inline="always")
def _next_u64(rng: np.ndarray) -> np.uint64:
    """splitmix64 (Steele et al. 2014): one uint64 of state, kept in `rng[0]`, saved with
    the ring so a restored run draws the same indices. uint64 arithmetic wraps in numba."""
    z = rng[0] + np.uint64(0x9E3779B97F4A7C15)
    rng[0] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(nogil=True, cache=True, inline="always")
def _below(rng: np.ndarray, n: int) -> int:
    """Uniform integer in [0, n): 53 random bits scaled (bias below n / 2**53)."""
    u = float(_next_u64(rng) >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return min(int(u * n), n - 1)


@numba.njit(nogil=True, cache=True, inline="always")
def _copy_frame(dst: np.ndarray, src: np.ndarray) -> None:
    """dst[:] = src for one flattened frame. An explicit loop: LLVM vectorises it to near
    memcpy speed; numba's slice assignment `dst[:] = src` measured 3x slower here."""
    for i in range(src.shape[0]):
        dst[i] = src[i]


@numba.njit(nogil=True, cache=True)
def _window(first_e: np.ndarray, p: int, history: int, out_slots: np.ndarray) -> None:
    """Slots of the `history`-frame stack ending at slot `p` into `out_slots[:history]`,
    oldest first; positions before the episode's first frame repeat that first frame.

    The one stacking rule, used for acting (`stacks`) and for learning (`sample`)."""
    slots = first_e.shape[0]
    j = p
    for k in range(history - 1, -1, -1):
        out_slots[k] = j
        if not first_e[j]:
            j = j - 1 if j > 0 else slots - 1


@numba.njit(nogil=True, cache=True)
def _is_valid(
    first_e: np.ndarray, has_next_e: np.ndarray, cursor: int, p: int, history: int
) -> bool:
    """Whether slot `p` of one env's ring holds a sampleable transition (module docstring).

    `has_next` covers the action, the next frame and overwrites of `p` itself; walking back
    through the episode's previous `history - 1` frames must not reach the newest slot
    (`cursor - 1`), which would mean the ring has wrapped over them."""
    if not has_next_e[p]:
        return False
    slots = first_e.shape[0]
    newest = cursor - 1 if cursor > 0 else slots - 1
    j = p
    for _ in range(history - 1):
        if first_e[j]:
            return True
        j = j - 1 if j > 0 else slots - 1
        if j == newest:
            return False
    return True


@numba.njit(nogil=True, cache=True)
def _write_frame(frames, first, has_next, cursors, written, n_has_next, e, frame, is_first):
    """Write one frame at env `e`'s cursor, retiring the transition stored there."""
    c = cursors[e]
    if has_next[e, c]:
        n_has_next[e] -= 1
    has_next[e, c] = 0
    first[e, c] = is_first
    _copy_frame(frames[e, c], frame)
    cursors[e] = c + 1 if c + 1 < first.shape[1] else 0
    written[e] += 1


@numba.njit(nogil=True, cache=True)
def _start_kernel(frames, first, has_next, cursors, written, n_has_next, active, env_ids, new):
    for i in range(env_ids.shape[0]):
        e = env_ids[i]
        _write_frame(frames, first, has_next, cursors, written, n_has_next, e, new[i], 1)
        active[e] = 1


@numba.njit(nogil=True, cache=True)
def _add_kernel(
    frames, first, has_next, action, reward, terminated, truncated,
    cursors, written, n_has_next, active,
    actions, rewards, term, trunc, next_frames,
):  # fmt: skip
    slots = first.shape[1]
    for e in range(first.shape[0]):
        p = cursors[e] - 1 if cursors[e] > 0 else slots - 1
        action[e, p] = actions[e]
        reward[e, p] = rewards[e]
        terminated[e, p] = term[e]
        truncated[e, p] = trunc[e]
        has_next[e, p] = 1
        n_has_next[e] += 1
        _write_frame(frames, first, has_next, cursors, written, n_has_next, e, next_frames[e], 0)
        if term[e] or trunc[e]:
            active[e] = 0


@numba.njit(nogil=True, cache=True)
def _count_valid_kernel(first, has_next, cursors, n_has_next, history) -> int:
    """Valid transitions: those with `has_next`, less the invalid band after each cursor."""
    slots = first.shape[1]
    total = 0
    for e in range(first.shape[0]):
        total += n_has_next[e]
        for d in range(history - 1):
            p = (cursors[e] + d) % slots
            if has_next[e, p] and not _is_valid(first[e], has_next[e], cursors[e], p, history):
                total -= 1
    return total


@numba.njit(nogil=True, cache=True)
def _valid_indices_kernel(first, has_next, cursors, written, history):
    """Every valid (env, slot), by brute force over the filled slots (tests, diagnostics)."""
    n_envs, slots = first.shape
    env_ids = np.empty(n_envs * slots, np.int64)
    slot_ids = np.empty(n_envs * slots, np.int64)
    n = 0
    for e in range(n_envs):
        for p in range(min(written[e], slots)):
            if _is_valid(first[e], has_next[e], cursors[e], p, history):
                env_ids[n] = e
                slot_ids[n] = p
                n += 1
    return env_ids[:n], slot_ids[:n]


@numba.njit(nogil=True, cache=True)
def _gather_one(frames, first, action, reward, terminated, e, p, history, b, win,
                out_frames, out_action, out_reward, out_discount):  # fmt: skip
    """Copy transition (e, p) into row `b` of the batch: h + 1 frames, one row copy each."""
    _window(first[e], p, history, win)
    for k in range(history):
        _copy_frame(out_frames[b, k], frames[e, win[k]])
    nxt = p + 1 if p + 1 < first.shape[1] else 0
    _copy_frame(out_frames[b, history], frames[e, nxt])
    out_action[b] = action[e, p]
    out_reward[b] = reward[e, p]
    # Terminal transitions do not bootstrap; truncated ones do, from their true last frame.
    out_discount[b] = 0.0 if terminated[e, p] else 1.0


@numba.njit(nogil=True, cache=True)
def _gather_kernel(frames, first, action, reward, terminated, env_ids, slot_ids, history,
                   out_frames, out_action, out_reward, out_discount):  # fmt: skip
    """Gather given (env, slot) transitions: the sampler's path without the random draw."""
    win = np.empty(history, np.int64)
    for b in range(env_ids.shape[0]):
        _gather_one(frames, first, action, reward, terminated, env_ids[b], slot_ids[b],
                    history, b, win, out_frames, out_action, out_reward, out_discount)  # fmt: skip


@numba.njit(nogil=True, cache=True)
def _sample_kernel(frames, first, has_next, action, reward, terminated, cursors, written,
                   n_has_next, rng, history, out_frames, out_action, out_reward,
                   out_discount) -> int:  # fmt: skip
    """Draw `B` valid transitions uniformly (with replacement) and gather them; returns the
    number of valid transitions, and samples nothing when it is below `B`.

    A filled slot is drawn uniformly over all envs (env weighted by its filled count), then
    rejected if invalid (module docstring: a small fraction)."""
    valid = _count_valid_kernel(first, has_next, cursors, n_has_next, history)
    if valid < out_frames.shape[0]:
        return valid
    n_envs, slots = first.shape
    total = 0
    for e in range(n_envs):
        total += min(written[e], slots)
    win = np.empty(history, np.int64)
    for b in range(out_frames.shape[0]):
        while True:
            u = _below(rng, total)
            e = 0
            while u >= min(written[e], slots):
                u -= min(written[e], slots)
                e += 1
            if _is_valid(first[e], has_next[e], cursors[e], u, history):
                break
        _gather_one(frames, first, action, reward, terminated, e, u, history, b, win,
                    out_frames, out_action, out_reward, out_discount)  # fmt: skip
    return valid


@numba.njit(nogil=True, cache=True)
def _stacks_kernel(frames, first, cursors, history, out):
    """The stack each env acts on now: the window ending at its newest frame."""
    slots = first.shape[1]
    win = np.empty(history, np.int64)
    for e in range(first.shape[0]):
        newest = cursors[e] - 1 if cursors[e] > 0 else slots - 1
        _window(first[e], newest, history, win)
        for k in range(history):
            _copy_frame(out[e, k], frames[e, win[k]])


# --------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------


@dataclass
class Batch:
    """B transitions as numpy views into preallocated arrays that the next sample reuses."""

    frames: np.ndarray
    """uint8[B, history + 1, H, W]: the window [p-h+1 .. p+1] of each transition."""
    obs: np.ndarray
    """uint8[B, history, H, W]: view `frames[:, :history]`, the stack acted on (s_tm1)."""
    next_obs: np.ndarray
    """uint8[B, history, H, W]: view `frames[:, 1:]`, the stack after the step (s_t)."""
    action: np.ndarray
    """int64[B]: action taken from `obs`."""
    reward: np.ndarray
    """float32[B]: reward of the step, as stored (the env clips it)."""
    discount: np.ndarray
    """float32[B]: 0.0 if the step terminated the episode, else 1.0 (truncated included);
    the learner multiplies by gamma."""
    _pixel_rows: np.ndarray = field(init=False, repr=False)
    """`frames` viewed as [B, history + 1, H*W], the layout the kernels write."""
    _host: tuple[torch.Tensor, TensorBatch] | None = field(default=None, init=False, repr=False)
    """`frames` and the whole batch as torch tensors sharing these arrays' memory, made
    once (the arrays are reused); the pinned originals when the batch feeds CUDA."""


def _empty_batch(batch_size: int, history: int, frame_shape: tuple[int, int], pin: bool) -> Batch:
    """Preallocated batch arrays; pinned host memory when they feed a CUDA device."""
    shape = (batch_size, history + 1, *frame_shape)
    dtypes = (torch.uint8, torch.int64, torch.float32, torch.float32)
    host = tuple(
        torch.empty(size, dtype=dtype, pin_memory=pin)
        for size, dtype in zip((shape, batch_size, batch_size, batch_size), dtypes, strict=True)
    )
    frames, action, reward, discount = (t.numpy() for t in host)
    batch = Batch(frames, frames[:, :history], frames[:, 1:], action, reward, discount)
    batch._pixel_rows = _pixel_rows(frames)
    batch._host = (host[0], _tensor_batch(*host, history))
    return batch


def _tensor_batch(
    frames: torch.Tensor,
    action: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor,
    history: int,
) -> TensorBatch:
    """obs and next_obs as views of the (B, history + 1, H, W) window."""
    return TensorBatch(frames[:, :history], action, reward, discount, frames[:, 1:])


class TensorBatch(NamedTuple):
    """A batch as torch tensors on the learner's device (obs / next_obs still uint8)."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    discount: torch.Tensor
    next_obs: torch.Tensor


def to_tensors(batch: Batch, device: torch.device | str) -> TensorBatch:
    """Tensors for `batch` on `device`.

    On the CPU they are zero-copy views of the batch arrays (valid until the next sample
    into them). On CUDA the 5-frame window is copied once (`non_blocking`, asynchronous
    when the batch is in pinned memory, as the Prefetcher's are) and obs / next_obs are
    views of that copy, so 5 frames cross the bus per transition, not 8."""
    device = torch.device(device)
    if batch._host is None:
        host = [torch.from_numpy(a) for a in (batch.frames, batch.action, batch.reward)]
        host.append(torch.from_numpy(batch.discount))
        batch._host = (host[0], _tensor_batch(*host, batch.obs.shape[1]))
    frames, host = batch._host
    if device.type == "cpu":
        return host
    frames, action, reward, discount = (
        t.to(device, non_blocking=True) for t in (frames, host.action, host.reward, host.discount)
    )
    return _tensor_batch(frames, action, reward, discount, batch.obs.shape[1])


# --------------------------------------------------------------------------------------
# The ring
# --------------------------------------------------------------------------------------


def _pixel_rows(frames: np.ndarray) -> np.ndarray:
    """View of uint8[..., H, W] as [..., H*W]: the kernels copy each frame as one row."""
    return frames.reshape(*frames.shape[:-2], frames.shape[-2] * frames.shape[-1])


def _as_frames(name: str, frames: Any, count: int, frame_shape: tuple[int, int]) -> np.ndarray:
    """`frames` checked to be uint8[count, H, W], as a C-contiguous array."""
    frames = np.asarray(frames)
    expected = (count, *frame_shape)
    if frames.dtype != np.uint8 or frames.shape != expected:
        raise ReplayError(
            f"{name}: expected uint8{list(expected)}, got {frames.dtype}{list(frames.shape)} "
            "(one preprocessed grayscale frame per env)"
        )
    return np.ascontiguousarray(frames)


def _as_vector(name: str, values: Any, count: int, dtype: type) -> np.ndarray:
    """`values` checked to be a length-`count` vector, converted to `dtype`."""
    values = np.asarray(values)
    if values.shape != (count,):
        raise ReplayError(f"{name}: expected shape ({count},) (one per env), got {values.shape}")
    if dtype is np.int32 and not np.issubdtype(values.dtype, np.integer):
        raise ReplayError(f"{name}: expected integer action indices, got dtype {values.dtype}")
    return np.ascontiguousarray(values, dtype=dtype)


class FrameRing:
    """Replay memory of `capacity` transitions (summed over envs), each frame stored once."""

    def __init__(
        self,
        capacity: int,
        num_envs: int = 1,
        *,
        history_length: int = 4,
        frame_shape: tuple[int, int] = (84, 84),
        seed: int = 0,
    ) -> None:
        if num_envs <= 0 or history_length <= 0:
            raise ReplayError(
                f"num_envs ({num_envs}) and history_length ({history_length}) must be positive"
            )
        if capacity < (history_length + 1) * num_envs:
            raise ReplayError(
                f"replay capacity {capacity} is too small: each of the {num_envs} env(s) needs "
                f"at least history_length + 1 = {history_length + 1} slots; raise "
                "replay.capacity"
            )
        self.capacity = int(capacity)
        self.num_envs = int(num_envs)
        self.history_length = int(history_length)
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.slots = self.capacity // self.num_envs
        shape = (self.num_envs, self.slots)
        # np.empty: the OS maps pages on first write, so a 1M ring costs memory as it fills.
        self._frames = np.empty((*shape, self.frame_shape[0] * self.frame_shape[1]), np.uint8)
        self._first = np.zeros(shape, np.uint8)
        self._has_next = np.zeros(shape, np.uint8)
        self._action = np.zeros(shape, np.int32)
        self._reward = np.zeros(shape, np.float32)
        self._terminated = np.zeros(shape, np.uint8)
        self._truncated = np.zeros(shape, np.uint8)
        self._cursor = np.zeros(self.num_envs, np.int64)
        self._written = np.zeros(self.num_envs, np.int64)
        self._n_has_next = np.zeros(self.num_envs, np.int64)
        self._active = np.zeros(self.num_envs, np.uint8)
        self._rng = np.array([seed], np.uint64)
        self._lock = threading.Lock()
        self._batch: Batch | None = None

    # ---- writing ----------------------------------------------------------------------

    def start_episodes(self, env_ids: np.ndarray, frames: np.ndarray) -> None:
        """Write the first frame (uint8[k, H, W]) of a new episode for each env in `env_ids`.

        Call it for every env before the first `add`, and for each env whose last step was
        terminated or truncated. An env restarted mid-episode simply ends that episode
        without a final transition."""
        env_ids = np.asarray(env_ids)
        if env_ids.ndim != 1 or not np.issubdtype(env_ids.dtype, np.integer):
            raise ReplayError(f"env_ids: expected a 1-d integer array, got {env_ids!r}")
        if np.any((env_ids < 0) | (env_ids >= self.num_envs)):
            raise ReplayError(f"env_ids {env_ids.tolist()} out of range [0, {self.num_envs})")
        if np.unique(env_ids).size != env_ids.size:
            raise ReplayError(f"env_ids {env_ids.tolist()} lists an env twice")
        frames = _as_frames("start_episodes frames", frames, env_ids.size, self.frame_shape)
        with self._lock:
            _start_kernel(
                self._frames, self._first, self._has_next, self._cursor, self._written,
                self._n_has_next, self._active, env_ids.astype(np.int64),
                _pixel_rows(frames),
            )  # fmt: skip

    def add(
        self,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        next_frames: np.ndarray,
    ) -> None:
        """Record one step of all N envs: the action taken from each env's newest frame,
        the reward, the terminated / truncated flags and the frame after it (uint8[N, H, W])."""
        n = self.num_envs
        actions = _as_vector("actions", actions, n, np.int32)
        rewards = _as_vector("rewards", rewards, n, np.float32)
        terminated = _as_vector("terminated", terminated, n, np.bool_).view(np.uint8)
        truncated = _as_vector("truncated", truncated, n, np.bool_).view(np.uint8)
        next_frames = _as_frames("next_frames", next_frames, n, self.frame_shape)
        with self._lock:
            idle = np.flatnonzero(self._active == 0)
            if idle.size:
                raise ReplayError(
                    f"add() for env(s) {idle.tolist()} before start_episodes(): write each "
                    "episode's first frame with start_episodes() after every reset"
                )
            _add_kernel(
                self._frames, self._first, self._has_next, self._action, self._reward,
                self._terminated, self._truncated, self._cursor, self._written,
                self._n_has_next, self._active,
                actions, rewards, terminated, truncated, _pixel_rows(next_frames),
            )  # fmt: skip

    # ---- reading ----------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of valid transitions that `sample` can return."""
        with self._lock:
            return int(
                _count_valid_kernel(
                    self._first, self._has_next, self._cursor, self._n_has_next,
                    self.history_length,
                )
            )  # fmt: skip

    def stacks(self, out: np.ndarray | None = None) -> np.ndarray:
        """uint8[N, history, H, W]: the stack each env acts on now (same rule as sampling)."""
        shape = (self.num_envs, self.history_length, *self.frame_shape)
        if out is None:
            out = np.empty(shape, np.uint8)
        elif out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ReplayError(f"stacks out: expected contiguous uint8{list(shape)}, got "
                              f"{out.dtype}{list(out.shape)}")  # fmt: skip
        with self._lock:
            never = np.flatnonzero(self._written == 0)
            if never.size:
                raise ReplayError(
                    f"stacks() for env(s) {never.tolist()} that have no frame yet: call "
                    "start_episodes() first"
                )
            _stacks_kernel(
                self._frames, self._first, self._cursor, self.history_length,
                _pixel_rows(out),
            )  # fmt: skip
        return out

    def sample(self, batch_size: int) -> Batch:
        """`batch_size` transitions drawn uniformly with replacement from the valid ones.

        The arrays are reused by the next `sample` call: consume (or copy) them first."""
        if self._batch is None or self._batch.frames.shape[0] != batch_size:
            self._check_batch_size(batch_size)
            self._batch = _empty_batch(batch_size, self.history_length, self.frame_shape, False)
        self._sample_into(self._batch)
        return self._batch

    def _check_batch_size(self, batch_size: int) -> None:
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ReplayError(f"batch_size must be a positive integer, got {batch_size!r}")

    def _sample_into(self, batch: Batch) -> None:
        """Sample into preallocated `batch` (the ring's own, or a Prefetcher's)."""
        with self._lock:
            self._sample_holding_lock(batch)

    def _sample_holding_lock(self, batch: Batch) -> None:
        """`_sample_into` for a caller that already holds the ring's lock."""
        valid = _sample_kernel(
            self._frames, self._first, self._has_next, self._action, self._reward,
            self._terminated, self._cursor, self._written, self._n_has_next, self._rng,
            self.history_length, batch._pixel_rows, batch.action, batch.reward,
            batch.discount,
        )  # fmt: skip
        if valid < len(batch.action):
            raise ReplayError(
                f"cannot sample {len(batch.action)} transitions: only {valid} are stored; "
                "start learning later (loop.replay_start_steps) or use a smaller batch"
            )

    def _valid_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(env_ids, slots) of every valid transition, by brute force (tests, diagnostics)."""
        with self._lock:
            return _valid_indices_kernel(
                self._first, self._has_next, self._cursor, self._written, self.history_length
            )

    def _gather(self, env_ids: np.ndarray, slots: np.ndarray) -> Batch:
        """The transitions at the given (env, slot) pairs, through the sampler's own gather."""
        env_ids = np.ascontiguousarray(env_ids, np.int64)
        slots = np.ascontiguousarray(slots, np.int64)
        batch = _empty_batch(env_ids.size, self.history_length, self.frame_shape, False)
        with self._lock:
            _gather_kernel(
                self._frames, self._first, self._action, self._reward, self._terminated,
                env_ids, slots, self.history_length, batch._pixel_rows,
                batch.action, batch.reward, batch.discount,
            )  # fmt: skip
        return batch

    # ---- state ------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "num_envs": self.num_envs,
            "history_length": self.history_length,
            "frame_shape": list(self.frame_shape),
        }

    def _arrays(self, filled_slots: int) -> dict[str, np.ndarray]:
        """Views of the whole state, per-slot arrays cut to the first `filled_slots` slots
        (slots fill from 0, so beyond every env's written count nothing is stored)."""
        f = filled_slots
        return {
            "frames": self._frames[:, :f],
            "first": self._first[:, :f],
            "has_next": self._has_next[:, :f],
            "action": self._action[:, :f],
            "reward": self._reward[:, :f],
            "terminated": self._terminated[:, :f],
            "truncated": self._truncated[:, :f],
            "cursor": self._cursor,
            "written": self._written,
            "n_has_next": self._n_has_next,
            "active": self._active,
            "rng": self._rng,
        }

    def _filled_slots(self) -> int:
        return int(min(self._written.max(), self.slots))

    def state_dict(self) -> dict[str, Any]:
        """The whole state: config, filled slot count and arrays.

        The arrays are VIEWS into the ring (a full ring is gigabytes): serialise them
        before the next `add`, or copy them."""
        filled = self._filled_slots()
        return {**self._config(), "filled_slots": filled, "arrays": self._arrays(filled)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()` from a ring of the same configuration."""
        theirs = {key: state.get(key) for key in self._config()}
        theirs["frame_shape"] = list(theirs["frame_shape"] or ())
        if theirs != self._config():
            raise ReplayError(
                f"replay state is for {theirs}, this ring is {self._config()}: build the ring "
                "with the saved configuration (or use FrameRing.load)"
            )
        filled = int(state["filled_slots"])
        mine = self._arrays(filled)
        arrays = state["arrays"]
        for name, dst in mine.items():
            src = arrays.get(name)
            if src is None or src.shape != dst.shape or src.dtype != dst.dtype:
                got = None if src is None else f"{src.dtype}{list(src.shape)}"
                raise ReplayError(
                    f"replay state array '{name}': expected {dst.dtype}{list(dst.shape)}, got {got}"
                )
        with self._lock:
            for name, dst in mine.items():
                np.copyto(dst, arrays[name])

    def save(self, path: str | os.PathLike) -> None:
        """Write the state to `path` atomically (temp file, fsync, rename).

        Format: the raw arrays (filled slots only), then a JSON header listing each array's
        dtype, shape and CRC-32, its length and a magic tag; `load` checks all of them."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with self._lock:
            state = self.state_dict()
            header: dict[str, Any] = {"version": _FORMAT_VERSION, **state, "arrays": []}
            with open(tmp, "wb") as f:
                for name, array in state["arrays"].items():
                    crc = 0
                    for chunk in _chunks(array):
                        f.write(chunk)
                        crc = zlib.crc32(chunk, crc)
                    header["arrays"].append(
                        {"name": name, "dtype": array.dtype.str, "shape": list(array.shape),
                         "crc32": crc}
                    )  # fmt: skip
                blob = json.dumps(header).encode()
                f.write(blob)
                f.write(_TRAILER.pack(len(blob), _MAGIC))
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FrameRing:
        """A ring restored from `save`: same contents, cursor and sampler state."""
        path = Path(path)

        def corrupt(why: str) -> ReplayError:
            return ReplayError(
                f"replay file '{path}' is unreadable ({why}); it is truncated or corrupt: "
                "resume without it (checkpoint.save_replay) or from an earlier checkpoint"
            )

        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                if size < _TRAILER.size:
                    raise corrupt(f"{size} bytes is too short")
                f.seek(size - _TRAILER.size)
                header_len, magic = _TRAILER.unpack(f.read(_TRAILER.size))
                if magic != _MAGIC or header_len > size - _TRAILER.size:
                    raise corrupt("no replay trailer at the end")
                f.seek(size - _TRAILER.size - header_len)
                try:
                    header = json.loads(f.read(header_len))
                    ring = cls(
                        header["capacity"], header["num_envs"],
                        history_length=header["history_length"],
                        frame_shape=tuple(header["frame_shape"]),
                    )  # fmt: skip
                    specs = {spec["name"]: spec for spec in header["arrays"]}
                    dests = ring._arrays(int(header["filled_slots"]))
                except (ValueError, KeyError, TypeError) as exc:
                    raise corrupt(f"bad header: {exc}") from exc
                f.seek(0)
                for name, dst in dests.items():
                    spec = specs.get(name)
                    if (spec is None or spec["dtype"] != dst.dtype.str
                            or spec["shape"] != list(dst.shape)):  # fmt: skip
                        raise corrupt(f"array '{name}' missing or of the wrong shape")
                    crc = 0
                    for chunk in _chunks(dst):
                        if f.readinto(chunk) != chunk.nbytes:
                            raise corrupt(f"array '{name}' is cut short")
                        crc = zlib.crc32(chunk, crc)
                    if crc != spec["crc32"]:
                        raise corrupt(f"array '{name}' fails its CRC-32 check")
        except OSError as exc:
            raise ReplayError(f"cannot read replay file '{path}': {exc}") from exc
        return ring


def _chunks(array: np.ndarray) -> Iterator[memoryview]:
    """Writable byte views covering `array` in order, each at most _CHUNK_BYTES long.

    `array` is C-contiguous or a [:, :f] cut of one, so each row is contiguous."""
    rows = [array] if array.flags.c_contiguous else list(array)
    for row in rows:
        flat = memoryview(row.reshape(-1).view(np.uint8))
        for start in range(0, flat.nbytes, _CHUNK_BYTES):
            yield flat[start : start + _CHUNK_BYTES]


def fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------
# Prefetching
# --------------------------------------------------------------------------------------


class Prefetcher:
    """Samples the next batch in a background thread while the learner uses this one.

    Deterministic: `next()` hands out the batch drawn at the previous `next()` and, before
    returning, starts drawing the following one from the ring exactly as it is at that
    moment. The drawing thread holds the ring's lock from then until its gather is done, so
    an `add` made meanwhile waits, and thread scheduling never changes which batch is drawn.
    Staleness: a batch misses the transitions added since the previous `next()` (one
    update's worth: 4 steps in the paper's schedule). `pending()` returns the drawn but
    unused batch, and `pending=` restores it, so a resumed run uses the very same batches.

    Two preallocated batches (pinned on CUDA) alternate; the tensors from `next()` stay
    valid until the following `next()` call.
    """

    _FIELDS = ("frames", "action", "reward", "discount")

    def __init__(
        self,
        ring: FrameRing,
        batch_size: int,
        device: torch.device | str,
        pending: dict[str, torch.Tensor] | None = None,
    ) -> None:
        ring._check_batch_size(batch_size)
        self._ring = ring
        self._device = torch.device(device)
        pin = self._device.type == "cuda"
        self._batches = [
            _empty_batch(batch_size, ring.history_length, ring.frame_shape, pin) for _ in range(2)
        ]
        # CUDA: the copy out of a pinned batch is asynchronous; wait on this event before
        # drawing into that batch again.
        self._copied: list[Any] = [None, None]
        self._next = 0  # the batch that `next()` hands out
        self._ready = False  # whether batch `_next` holds a drawn batch
        self._in_flight = False  # whether the thread is drawing into batch `_next`
        self._requests: queue.Queue[int | None] = queue.Queue()
        self._done: queue.Queue[BaseException | None] = queue.Queue()
        self._closed = False
        if pending is not None:
            batch = self._batches[0]
            for name in self._FIELDS:
                np.copyto(getattr(batch, name), pending[name].numpy())
            self._ready = True
        self._thread = threading.Thread(target=self._work, name="replay-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            i = self._requests.get()
            if i is None:
                return
            try:
                self._ring._sample_holding_lock(self._batches[i])
                error = None
            except BaseException as exc:  # handed to the learner's thread by next()
                error = exc
            finally:
                self._ring._lock.release()  # taken for this draw by `next()`
            self._done.put(error)

    def _wait(self) -> None:
        """Let the draw in flight finish; re-raise its error in this thread."""
        if self._in_flight:
            self._in_flight = False
            error = self._done.get()
            if error is not None:
                self.close()
                raise error
            self._ready = True

    def next(self) -> TensorBatch:
        """The next batch as tensors on the device; starts drawing the one after it."""
        if self._closed:
            raise ReplayError("Prefetcher.next() after close()")
        self._wait()
        current = self._next
        if not self._ready:  # the very first batch: nothing was drawn ahead
            self._ring._sample_into(self._batches[current])
        tensors = to_tensors(self._batches[current], self._device)
        if self._device.type == "cuda":
            event = torch.cuda.Event()
            event.record()
            self._copied[current] = event
        following = 1 - current
        if self._copied[following] is not None:
            self._copied[following].synchronize()
        self._ring._lock.acquire()  # released by the thread once it has drawn
        self._requests.put(following)
        self._next, self._ready, self._in_flight = following, False, True
        return tensors

    def pending(self) -> dict[str, torch.Tensor] | None:
        """A copy of the drawn but unused batch (CPU tensors), for a checkpoint; else None."""
        self._wait()
        if not self._ready:
            return None
        batch = self._batches[self._next]
        return {name: torch.from_numpy(getattr(batch, name).copy()) for name in self._FIELDS}

    def close(self) -> None:
        """Stop the thread (waiting for a draw in progress). Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._requests.put(None)
            self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
