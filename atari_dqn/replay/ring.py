"""The frame-ring replay memory: each frame stored once, stacks rebuilt when sampled.

Layout. Each env owns a ring of `slots = capacity // num_envs` frames and per-slot
metadata. An episode of T steps occupies T+1 consecutive slots: its first frame, then one
frame per step. Slot `p` holds the action taken from frame `p`, the reward and flags of
that step, and `has_next[p]` says frame `p + 1` was written after it, so a truncated
(time-limit) episode keeps its true last frame to bootstrap from.

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

Threading: every method is safe to call from any thread. The Numba kernels release the
GIL, so a background thread can sample while another adds; `pause_writes` lets a sampler
fix the ring's contents for a draw it will make later, from another thread.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np

from atari_dqn.errors import ReplayError
from atari_dqn.replay import kernels
from atari_dqn.replay.batch import Batch, empty_batch
from atari_dqn.replay.writers import SlotGuard, WriteControl, WriteGate
from atari_dqn.shapes import min_capacity


def pixel_rows(frames: np.ndarray) -> np.ndarray:
    """View of uint8[..., H, W] as [..., H*W]: the kernels copy each frame as one row."""
    return frames.reshape(*frames.shape[:-2], frames.shape[-2] * frames.shape[-1])


def check_batch_size(batch_size: Any) -> int:
    """`batch_size` as an int, or a ReplayError when it is not a positive integer."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ReplayError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


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
        if capacity < min_capacity(num_envs, history_length):
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
        self.window = (self.history_length + 1, *self.frame_shape)
        """The frames of one sampled transition: (history + 1, H, W)."""
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
        self._lock = threading.Lock()  # held by each method for its whole call
        self._writers = WriteControl(self._lock)
        self._batch: Batch | None = None

    # ---- writing ----------------------------------------------------------------------

    def _writing(self, env_ids: np.ndarray | None = None) -> contextlib.AbstractContextManager:
        """Hold the lock, once writers may write the newest slot of `env_ids` (all envs by
        default): see `atari_dqn.replay.writers`."""
        ids = np.arange(self.num_envs) if env_ids is None else env_ids
        return self._writers.writing(lambda: (ids, self._cursor[ids]))

    def take_held_seconds(self) -> float:
        """Seconds writers waited for a save (`begin_save`) since the last call."""
        with self._lock:
            return self._writers.take_held_seconds()

    def pause_writes(self) -> WriteGate:
        """Hold `add` and `start_episodes` back until the returned gate is released.

        Reads (`sample`, `stacks`, `len`) go on. A sampler that will draw from another
        thread pauses writes first, so the draw sees the ring exactly as it is now."""
        return self._writers.pause()

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
        with self._writing(env_ids):
            kernels.start_kernel(
                self._frames,
                self._first,
                self._has_next,
                self._cursor,
                self._written,
                self._n_has_next,
                self._active,
                env_ids.astype(np.int64),
                pixel_rows(frames),
            )

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
        with self._writing():
            idle = np.flatnonzero(self._active == 0)
            if idle.size:
                raise ReplayError(
                    f"add() for env(s) {idle.tolist()} before start_episodes(): write each "
                    "episode's first frame with start_episodes() after every reset"
                )
            kernels.add_kernel(
                self._frames,
                self._first,
                self._has_next,
                self._action,
                self._reward,
                self._terminated,
                self._truncated,
                self._cursor,
                self._written,
                self._n_has_next,
                self._active,
                actions,
                rewards,
                terminated,
                truncated,
                pixel_rows(next_frames),
            )

    # ---- reading ----------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of valid transitions that `sample` can return."""
        with self._lock:
            return int(
                kernels.count_valid_kernel(
                    self._first,
                    self._has_next,
                    self._cursor,
                    self._n_has_next,
                    self.history_length,
                )
            )

    def stacks(self, out: np.ndarray | None = None) -> np.ndarray:
        """uint8[N, history, H, W]: the stack each env acts on now (same rule as sampling)."""
        shape = (self.num_envs, self.history_length, *self.frame_shape)
        if out is None:
            out = np.empty(shape, np.uint8)
        elif out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ReplayError(
                f"stacks out: expected contiguous uint8{list(shape)}, got "
                f"{out.dtype}{list(out.shape)}"
            )
        with self._lock:
            never = np.flatnonzero(self._written == 0)
            if never.size:
                raise ReplayError(
                    f"stacks() for env(s) {never.tolist()} that have no frame yet: call "
                    "start_episodes() first"
                )
            kernels.stacks_kernel(
                self._frames, self._first, self._cursor, self.history_length, pixel_rows(out)
            )
        return out

    def sample(self, batch_size: int) -> Batch:
        """`batch_size` transitions drawn uniformly with replacement from the valid ones.

        The arrays are reused by the next `sample` call: consume (or copy) them first."""
        if self._batch is None or len(self._batch.action) != batch_size:
            check_batch_size(batch_size)
            self._batch = empty_batch(batch_size, self.window)
        self.sample_into(self._batch)
        return self._batch

    def sample_into(self, batch: Batch) -> None:
        """Fill preallocated `batch` (of any size B >= 1) with B uniformly drawn transitions."""
        with self._lock:
            valid = kernels.sample_kernel(
                self._frames,
                self._first,
                self._has_next,
                self._action,
                self._reward,
                self._terminated,
                self._cursor,
                self._written,
                self._n_has_next,
                self._rng,
                self.history_length,
                pixel_rows(batch.frames),
                batch.action,
                batch.reward,
                batch.discount,
                batch.weight,
                batch.index,
            )
        if valid < len(batch.action):
            raise ReplayError(
                f"cannot sample {len(batch.action)} transitions: only {valid} are stored; "
                "start learning later (loop.replay_start_steps) or use a smaller batch"
            )

    # ---- state ------------------------------------------------------------------------

    @staticmethod
    def make_spec(
        capacity: int, num_envs: int, history_length: int, frame_shape: tuple[int, int]
    ) -> dict[str, Any]:
        """The spec of a ring built with these arguments (`FrameRing(**spec)` builds one)."""
        return {
            "capacity": int(capacity),
            "num_envs": int(num_envs),
            "history_length": int(history_length),
            "frame_shape": [int(frame_shape[0]), int(frame_shape[1])],
        }

    def spec(self) -> dict[str, Any]:
        """What a ring is built from (bar its seed): a saved state fits only the same spec."""
        return self.make_spec(self.capacity, self.num_envs, self.history_length, self.frame_shape)

    def state_views(self, filled_slots: int) -> dict[str, np.ndarray]:
        """Writable views of the whole state, per-slot arrays cut to `[:, :filled_slots]`.

        Frames are uint8[N, S, H*W], other per-slot arrays [N, S], per-env arrays [N], the
        sampler's RNG uint64[1]. For loading a file into a new ring and for inspecting a ring
        no other thread uses; `begin_save` and `load_state_dict` are the thread-safe ways."""
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

    def _state(self) -> dict[str, Any]:
        filled = int(min(self._written.max(), self.slots))
        return {**self.spec(), "filled_slots": filled, "arrays": self.state_views(filled)}

    def filled_bytes(self) -> int:
        """Bytes of the filled part of the state: what a replay file holds, give or take
        its header."""
        with self._lock:
            arrays = self._state()["arrays"]
        return sum(a.nbytes for a in arrays.values())

    def state_dict(self) -> dict[str, Any]:
        """The whole state: spec, filled slot count and arrays.

        The arrays are VIEWS into the ring (a full ring is gigabytes): serialise them
        before the next `add`, or copy them; `begin_save` protects them meanwhile."""
        with self._lock:
            return self._state()

    def begin_save(self) -> tuple[dict[str, Any], SlotGuard]:
        """The state as it is now, for a save that writes it while the ring goes on.

        Returns `state_dict()` with COPIES of every array but the frames (a few bytes per
        slot), whose live view is protected instead: until the save calls `guard.saved(k)`
        for rows past it, a write to a slot of the view waits. The save writes each env's
        filled slots oldest first (from slot `cursor % filled`), the order in which the
        ring overwrites them, so writers rarely wait; it must call `guard.release()`."""
        with self._lock:
            state = self._state()
            arrays = state["arrays"]
            state["arrays"] = {k: v if k == "frames" else v.copy() for k, v in arrays.items()}
            filled = state["filled_slots"]
            start = arrays["cursor"] % filled if filled else np.zeros(self.num_envs, np.int64)
            return state, self._writers.begin_guard(start, filled)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()` from a ring of the same spec."""
        theirs = {key: state.get(key) for key in self.spec()}
        theirs["frame_shape"] = list(theirs["frame_shape"] or ())
        if theirs != self.spec():
            raise ReplayError(
                f"replay state is for {theirs}, this ring is {self.spec()}: build the ring "
                "with the saved spec (or load the file with atari_dqn.replay.ringfile)"
            )
        mine = self.state_views(int(state["filled_slots"]))
        arrays = state["arrays"]
        for name, dst in mine.items():
            src = arrays.get(name)
            if src is None or src.shape != dst.shape or src.dtype != dst.dtype:
                got = None if src is None else f"{src.dtype}{list(src.shape)}"
                raise ReplayError(
                    f"replay state array '{name}': expected {dst.dtype}{list(dst.shape)}, got {got}"
                )
        with self._writing():
            for name, dst in mine.items():
                np.copyto(dst, arrays[name])
