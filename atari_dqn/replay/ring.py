"""The frame-ring replay memory: each frame stored once, stacks rebuilt when sampled.

Layout. Each env owns a ring of `slots = capacity // num_envs` frames and per-slot
metadata. An episode of T steps occupies T+1 consecutive slots: its first frame, then one
frame per step. Slot `p` holds the action taken from frame `p`, the reward and flags of
that step, and `has_next[p]` says frame `p + 1` was written after it, so a truncated
(time-limit) episode keeps its true last frame to bootstrap from.

Transitions. The transition at slot `p` takes m steps, 1 <= m <= n (`n_step`): it stops
after the first step that terminated or truncated the episode. Its reward is
sum_{k<m} gamma^k r_{p+k}, its discount gamma^m, or 0 when step p+m-1 terminated. Its obs is
the `h`-frame stack ending at `p` (`h = history_length`), its next_obs the stack ending at
`p + m`; frames before the episode's first frame are replaced by that first frame, and
acting (`stacks`) uses the same window function, so the agent acts on exactly the stacks it
learns from. `window` says how a batch holds them (`Batch.stacks` cuts them apart): for
n = 1 the h + 1 frames `p-h+1 .. p+1`; for n > 1 both stacks, 2h frames.

Invalid range (as Dopamine documents next to its buffer): slot `p` is valid when its m steps
are all recorded (`has_next` at p .. p+m-1; an episode still running with fewer than n
further steps is not sampleable yet, nor ever are the last steps of one cut short by
`start_episodes`) and its backward window does not reach the newest slot, i.e. the ring has
not overwritten the frames before `p`. Writing a slot clears its own flag. Each slot's
validity is kept in a flag, recomputed for the few slots each write can change
(`kernels.refresh_kernel`); sampling draws a filled slot uniformly (over all envs) and
rejects the few invalid ones: episode-last frames, unfinished steps, the band at the cursor.

Prioritized (Schaul et al. 2016, proportional): a sum tree over the `num_envs * slots` slots
(leaf `env * slots + slot`) holds priority 0 exactly at the invalid slots; a transition
entering the valid set gets the largest priority so far, `update_priorities` sets
(|TD| + epsilon) ** alpha, and `sample_into` draws in proportion with importance weights.

Threading: every method is safe to call from any thread. The Numba kernels release the
GIL, so a background thread can sample while another adds; `pause_writes` lets a sampler
fix the ring's contents for a draw it will make later, from another thread. The tree is
part of the ring, under the ring's lock.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np

from atari_dqn.errors import ReplayError
from atari_dqn.replay.arguments import (
    as_env_ids,
    as_frames,
    as_vector,
    check_batch_size,
    check_settings,
    priority_update_problem,
)
from atari_dqn.replay.batch import Batch, empty_batch
from atari_dqn.replay.storage import RingArrays
from atari_dqn.replay.writers import SlotGuard, WriteControl, WriteGate
from atari_dqn.shapes import min_capacity

SETTINGS = ("discount", "priority_exponent", "priority_epsilon")
"""What a ring is built with besides its spec: how it computes returns and priorities, not
what its state holds, so a saved state fits a ring of other settings (a resumed run may
change them)."""


def pixel_rows(frames: np.ndarray) -> np.ndarray:
    """View of uint8[..., H, W] as [..., H*W]: the kernels copy each frame as one row."""
    return frames.reshape(*frames.shape[:-2], frames.shape[-2] * frames.shape[-1])


class FrameRing:
    """Replay memory of `capacity` transitions (summed over envs), each frame stored once:
    `n_step`-step returns discounted by `discount` (gamma), drawn uniformly, or with
    `prioritized` in proportion to (|TD| + `priority_epsilon`) ** `priority_exponent`."""

    def __init__(
        self,
        capacity: int,
        num_envs: int = 1,
        *,
        history_length: int = 4,
        frame_shape: tuple[int, int] = (84, 84),
        n_step: int = 1,
        prioritized: bool = False,
        discount: float = 1.0,
        priority_exponent: float = 0.6,
        priority_epsilon: float = 1e-6,
        seed: int = 0,
    ) -> None:
        if num_envs <= 0 or history_length <= 0:
            raise ReplayError(
                f"num_envs ({num_envs}) and history_length ({history_length}) must be positive"
            )
        check_settings(n_step, discount, priority_exponent, priority_epsilon)
        needed = min_capacity(num_envs, history_length, n_step)  # a transition spans h + n
        if capacity < needed:
            raise ReplayError(
                f"replay capacity {capacity} is too small: each of the {num_envs} env(s) needs "
                f"at least history_length + n_step = {history_length + n_step} slots; raise "
                "replay.capacity"
            )
        self.capacity = int(capacity)
        self.num_envs = int(num_envs)
        self.history_length = int(history_length)
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.n_step = int(n_step)
        self.prioritized = bool(prioritized)
        self.discount = float(discount)
        self.priority_exponent = float(priority_exponent)
        self.priority_epsilon = float(priority_epsilon)
        self.slots = self.capacity // self.num_envs
        stacked = self.history_length + 1 if self.n_step == 1 else 2 * self.history_length
        self.window = (stacked, *self.frame_shape)
        """(frames, H, W) of one sampled transition (`Batch.frames[b]`): for n_step 1 the
        h + 1 frames from obs's first to next_obs's last; for n_step > 1 obs's h frames then
        next_obs's h."""
        pixels = self.frame_shape[0] * self.frame_shape[1]
        self._arrays = RingArrays(
            self.num_envs,
            self.slots,
            pixels,
            history=self.history_length,
            n_step=self.n_step,
            gamma=self.discount,
            prioritized=self.prioritized,
            seed=seed,
        )
        self._lock = threading.Lock()  # held by each method for its whole call
        self._writers = WriteControl(self._lock)
        self._batch: Batch | None = None

    # ---- writing ----------------------------------------------------------------------

    def _writing(self, env_ids: np.ndarray | None = None) -> contextlib.AbstractContextManager:
        """Hold the lock, once writers may write the newest slot of `env_ids` (all envs by
        default): see `atari_dqn.replay.writers`."""
        ids = np.arange(self.num_envs) if env_ids is None else env_ids
        return self._writers.writing(lambda: (ids, self._arrays.cursor[ids]))

    def take_held_seconds(self) -> float:
        """Seconds writers waited for a save (`begin_save`) since the last call."""
        with self._lock:
            return self._writers.take_held_seconds()

    def pause_writes(self) -> WriteGate:
        """Hold `add` and `start_episodes` back until the returned gate is released.

        Reads (`sample`, `stacks`, `len`) and `update_priorities` go on. A sampler that will
        draw from another thread pauses writes first, so the draw sees the ring exactly as
        it is now."""
        return self._writers.pause()

    def start_episodes(self, env_ids: np.ndarray, frames: np.ndarray) -> None:
        """Write the first frame (uint8[k, H, W]) of a new episode for each env in `env_ids`.

        Call it for every env before the first `add`, and for each env whose last step was
        terminated or truncated. An env restarted mid-episode simply ends that episode
        without a final transition (and, for n > 1, without its last n - 1 transitions)."""
        env_ids = as_env_ids(env_ids, self.num_envs)
        frames = as_frames("start_episodes frames", frames, env_ids.size, self.frame_shape)
        with self._writing(env_ids):
            self._arrays.start(env_ids, pixel_rows(frames))

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
        actions = as_vector("actions (one per env)", actions, n, np.int32)
        rewards = as_vector("rewards (one per env)", rewards, n, np.float32)
        terminated = as_vector("terminated (one per env)", terminated, n, np.bool_)
        truncated = as_vector("truncated (one per env)", truncated, n, np.bool_)
        next_frames = as_frames("next_frames", next_frames, n, self.frame_shape)
        with self._writing():
            idle = np.flatnonzero(self._arrays.active == 0)
            if idle.size:
                raise ReplayError(
                    f"add() for env(s) {idle.tolist()} before start_episodes(): write each "
                    "episode's first frame with start_episodes() after every reset"
                )
            self._arrays.add(
                actions,
                rewards,
                terminated.view(np.uint8),
                truncated.view(np.uint8),
                pixel_rows(next_frames),
            )

    # ---- reading ----------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of valid transitions that `sample` can return."""
        with self._lock:
            return int(self._arrays.n_valid.sum())

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
            never = np.flatnonzero(self._arrays.written == 0)
            if never.size:
                raise ReplayError(
                    f"stacks() for env(s) {never.tolist()} that have no frame yet: call "
                    "start_episodes() first"
                )
            self._arrays.stacks(pixel_rows(out))
        return out

    def sample(self, batch_size: int, beta: float = 1.0) -> Batch:
        """`batch_size` valid transitions drawn with replacement (see `sample_into`).

        The arrays are reused by the next `sample` call: consume (or copy) them first."""
        if self._batch is None or len(self._batch.action) != batch_size:
            check_batch_size(batch_size)
            self._batch = empty_batch(batch_size, self.window)
        self.sample_into(self._batch, beta)
        return self._batch

    def sample_into(self, batch: Batch, beta: float = 1.0) -> np.ndarray:
        """Fill preallocated `batch` (of any size B >= 1) with B drawn transitions; returns
        int64[N], each env's write count at the draw (pass it to `update_priorities`).

        Uniform: each valid transition alike, weights 1 (`beta` is not used). Prioritized:
        stratified draws in proportion to the priorities, and `batch.weight` the importance
        weights (N * P(i)) ** -beta over the batch's largest (N: the valid transitions)."""
        if self.prioritized and not 0.0 <= beta <= 1.0:
            raise ReplayError(f"beta must be in [0, 1] (annealed from beta_0 to 1), got {beta}")
        with self._lock:
            valid = self._arrays.sample(batch, pixel_rows(batch.frames), beta)
            drawn = self._arrays.written.copy()
        if valid < len(batch.action):
            raise ReplayError(
                f"cannot sample {len(batch.action)} transitions: only {valid} are stored; "
                "start learning later (loop.replay_start_steps) or use a smaller batch"
            )
        return drawn

    # ---- priorities -------------------------------------------------------------------

    def update_priorities(
        self, index: np.ndarray, td_abs: np.ndarray, drawn: np.ndarray | None = None
    ) -> None:
        """Priority (|td_abs| + epsilon) ** alpha for the transitions at `index` (int64[B],
        `Batch.index`; td_abs float[B]), where they are still valid: a slot that became
        invalid since it was drawn stays 0. With `drawn` (what `sample_into` returned), a
        slot written since the draw is left alone too (it holds another transition now).
        Of an index given twice, the last wins."""
        if not self.prioritized:
            raise ReplayError("update_priorities() on a uniform ring (built prioritized=False)")
        index = as_vector("update_priorities index", index, np.size(index), np.int64)
        td = as_vector("update_priorities td_abs (one per index)", td_abs, index.size, np.float64)
        alpha, eps = self.priority_exponent, self.priority_epsilon
        with self._lock:
            written = self._arrays.written
            at = written if drawn is None else as_vector("drawn", drawn, self.num_envs, np.int64)
            if not self._arrays.update_priorities(index, td, at, alpha, eps):
                raise ReplayError(priority_update_problem(index, td, at, written, self.slots))

    def priorities(self) -> np.ndarray:
        """float64[N, S], a copy of each slot's sampling weight p ** alpha (0: invalid)."""
        if not self.prioritized:
            raise ReplayError("priorities() of a uniform ring (built prioritized=False)")
        with self._lock:
            nodes = self._arrays.nodes
            leaves = nodes[nodes.shape[0] >> 1 :][: self.num_envs * self.slots]
            return leaves.reshape(self.num_envs, self.slots).copy()

    def valid_flags(self) -> np.ndarray:
        """uint8[N, S], a copy of the kept validity flags (1: `sample` may draw the slot)."""
        with self._lock:
            return self._arrays.valid.copy()

    # ---- state ------------------------------------------------------------------------

    @staticmethod
    def make_spec(
        capacity: int,
        num_envs: int,
        history_length: int,
        frame_shape: tuple[int, int],
        n_step: int = 1,
        prioritized: bool = False,
    ) -> dict[str, Any]:
        """The spec of a ring built with these arguments (`FrameRing(**spec)` builds one)."""
        return {
            "capacity": int(capacity),
            "num_envs": int(num_envs),
            "history_length": int(history_length),
            "frame_shape": [int(frame_shape[0]), int(frame_shape[1])],
            "n_step": int(n_step),
            "prioritized": bool(prioritized),
        }

    def spec(self) -> dict[str, Any]:
        """What a ring's state is laid out by: a saved state fits only the same spec."""
        return self.make_spec(
            self.capacity,
            self.num_envs,
            self.history_length,
            self.frame_shape,
            self.n_step,
            self.prioritized,
        )

    def settings(self) -> dict[str, float]:
        """What the ring is built with besides its spec and seed (`SETTINGS`)."""
        return {name: getattr(self, name) for name in SETTINGS}

    def state_views(self, filled_slots: int) -> dict[str, np.ndarray]:
        """Writable views of the whole saved state, per-slot arrays cut to
        `[:, :filled_slots]` (the arrays of `atari_dqn.replay.storage`).

        For loading a file into a new ring (then call `rebuild_validity`) and for inspecting
        a ring no other thread uses; `begin_save` and `load_state_dict` are the thread-safe
        ways."""
        return self._arrays.views(filled_slots)

    def _state(self) -> dict[str, Any]:
        filled = self._arrays.filled()
        return {
            **self.spec(),
            **self.settings(),
            "filled_slots": filled,
            "arrays": self.state_views(filled),
        }

    def filled_bytes(self) -> int:
        """Bytes of the filled part of the state: what a replay file holds, give or take
        its header."""
        with self._lock:
            arrays = self._state()["arrays"]
        return sum(a.nbytes for a in arrays.values())

    def state_dict(self) -> dict[str, Any]:
        """The whole state: spec, settings, filled slot count and arrays.

        The arrays are VIEWS into the ring (a full ring is gigabytes): serialise them
        before the next `add`, or copy them; `begin_save` protects them meanwhile."""
        with self._lock:
            return self._state()

    def begin_save(self) -> tuple[dict[str, Any], SlotGuard]:
        """The state as it is now, for a save that writes it while the ring goes on.

        Returns `state_dict()` with COPIES of every array but the frames (a few bytes per
        slot, and a prioritized ring's tree: its priorities change while the save writes),
        whose live view is protected instead: until the save calls `guard.saved(k)` for
        rows past it, a write to a slot of the view waits. The save writes each env's
        filled slots oldest first (from slot `cursor % filled`), the order in which the
        ring overwrites them, so writers rarely wait; it must call `guard.release()`."""
        with self._lock:
            state = self._state()
            state["arrays"], start = self._arrays.snapshot()
            return state, self._writers.begin_guard(start, state["filled_slots"])

    def rebuild_validity(self) -> None:
        """Recompute the validity flags from the metadata after `state_views` were written
        directly (as `atari_dqn.replay.ringfile` loads a file), and check the priority tree
        against them: ReplayError when its priorities are not positive exactly at the valid
        transitions."""
        with self._lock:
            arrays = self._arrays
            arrays.set_validity(arrays.checked_validity(arrays.views(arrays.filled())))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()` from a ring of the same spec (its settings stay this
        ring's own)."""
        theirs = {key: state.get(key) for key in self.spec()}
        theirs["frame_shape"] = list(theirs["frame_shape"] or ())
        if theirs != self.spec():
            raise ReplayError(
                f"replay state is for {theirs}, this ring is {self.spec()}: build the ring "
                "with the saved spec (or load the file with atari_dqn.replay.ringfile)"
            )
        flags = self._arrays.checked_state(state["arrays"], int(state["filled_slots"]))
        with self._writing():
            self._arrays.load(state["arrays"], flags)
