"""A frame ring's arrays and the kernel calls on them: what `FrameRing` holds and runs.

No checks and no lock here: `atari_dqn.replay.ring` checks every argument and holds the
ring's lock around each call. Per env e and slot p (S slots per env):

- saved state (`views`, what a replay file holds): frames uint8[N, S, H*W]; first,
  has_next, terminated, truncated uint8[N, S]; action int32[N, S]; reward float32[N, S];
  per env cursor, written, n_has_next int64[N] and active uint8[N]; the sampler's splitmix64
  state rng uint64[1]; and for a prioritized ring its sum tree, priority_tree float64[2L]
  (`atari_dqn.replay.sumtree`; leaf `e * S + p`, L the power of two >= N * S);
- derived state, rebuilt from the metadata on loading: valid uint8[N, S] (the slot holds a
  sampleable transition) and n_valid int64[N].

Memory per transition: the frame (H * W bytes) and 13 bytes of slot metadata and flags,
7,069 bytes at 84x84; a prioritized ring adds its tree, 16 to 32 bytes a slot (16.8 at a
million: 7,086 bytes in all).
"""

from __future__ import annotations

import numpy as np

from atari_dqn.errors import ReplayError
from atari_dqn.replay import gather, kernels, sumtree
from atari_dqn.replay.batch import Batch


def validity_of(arrays: dict[str, np.ndarray], history: int, n_step: int) -> np.ndarray:
    """uint8[N, filled] validity flags of a saved state (`RingArrays.views`) by brute force
    from its metadata: which transitions of `n_step` steps and `history`-frame stacks a
    sampler may draw."""
    out = np.zeros(arrays["first"].shape, np.uint8)
    kernels.validity_kernel(
        arrays["first"],
        arrays["has_next"],
        arrays["terminated"],
        arrays["truncated"],
        arrays["cursor"],
        arrays["written"],
        history,
        n_step,
        out,
    )
    return out


class RingArrays:
    """The arrays of a ring of `num_envs` x `slots` frames of `pixels` bytes, transitions of
    up to `n_step` steps discounted by `gamma`, stacks of `history` frames; with a sum tree
    when `prioritized`; sampling state from `seed`."""

    def __init__(
        self,
        num_envs: int,
        slots: int,
        pixels: int,
        *,
        history: int,
        n_step: int,
        gamma: float,
        prioritized: bool,
        seed: int,
    ) -> None:
        self.history, self.n_step, self.gamma = history, n_step, gamma
        shape = (num_envs, slots)
        # np.empty: the OS maps pages on first write, so a 1M ring costs memory as it fills.
        self.frames = np.empty((*shape, pixels), np.uint8)
        self.first = np.zeros(shape, np.uint8)
        self.has_next = np.zeros(shape, np.uint8)
        self.action = np.zeros(shape, np.int32)
        self.reward = np.zeros(shape, np.float32)
        self.terminated = np.zeros(shape, np.uint8)
        self.truncated = np.zeros(shape, np.uint8)
        self.cursor = np.zeros(num_envs, np.int64)
        self.written = np.zeros(num_envs, np.int64)
        self.n_has_next = np.zeros(num_envs, np.int64)
        self.active = np.zeros(num_envs, np.uint8)
        self.rng = np.array([seed], np.uint64)
        self.valid = np.zeros(shape, np.uint8)
        self.n_valid = np.zeros(num_envs, np.int64)
        # A uniform ring has a tree of no nodes: the kernels then skip every priority.
        self.nodes = sumtree.empty_nodes(num_envs * slots) if prioritized else np.zeros(0)
        # Each kernel's ring arguments, in its order, built once: the arrays never move
        # (loading copies into them), and a call then costs the fewest lookups.
        slot = (self.frames, self.first, self.has_next)
        step = (self.action, self.reward)
        ends = (self.terminated, self.truncated)
        counts = (self.cursor, self.written, self.n_has_next, self.active)
        validity = (self.valid, self.n_valid, self.nodes, history, n_step)
        self._start_args = (*slot, *ends, *counts, *validity)
        self._add_args = (*slot, *step, *ends, *counts, *validity)
        transitions = (self.frames, self.first, *step, *ends)
        self._sample_args = (*transitions, self.valid, self.n_valid, self.written, self.rng)
        self._prioritized_args = (*transitions, self.nodes, self.n_valid, self.rng)

    def views(self, filled: int) -> dict[str, np.ndarray]:
        """The saved state, per-slot arrays cut to `[:, :filled]` (views, not copies)."""
        f = filled
        out = {
            "frames": self.frames[:, :f],
            "first": self.first[:, :f],
            "has_next": self.has_next[:, :f],
            "action": self.action[:, :f],
            "reward": self.reward[:, :f],
            "terminated": self.terminated[:, :f],
            "truncated": self.truncated[:, :f],
            "cursor": self.cursor,
            "written": self.written,
            "n_has_next": self.n_has_next,
            "active": self.active,
            "rng": self.rng,
        }
        if self.nodes.size:
            out["priority_tree"] = self.nodes
        return out

    def filled(self) -> int:
        """Slots filled in the fullest env: how far the saved per-slot arrays reach."""
        return int(min(self.written.max(), self.first.shape[1]))

    def snapshot(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(the saved state with copies of every array but the frames, each env's oldest
        filled slot int64[N]): for a save that writes the frames while the ring goes on."""
        filled = self.filled()
        arrays = {k: v if k == "frames" else v.copy() for k, v in self.views(filled).items()}
        start = self.cursor % filled if filled else np.zeros_like(self.cursor)
        return arrays, start

    def checked_state(self, arrays: dict[str, np.ndarray], filled: int) -> np.ndarray:
        """The validity flags of a saved state for these arrays, after checking that it has
        each of their arrays in its shape and dtype (`checked_validity` checks the rest)."""
        for name, dst in self.views(filled).items():
            src = arrays.get(name)
            if src is None or src.shape != dst.shape or src.dtype != dst.dtype:
                got = None if src is None else f"{src.dtype}{list(src.shape)}"
                raise ReplayError(
                    f"replay state array '{name}': expected {dst.dtype}{list(dst.shape)}, got {got}"
                )
        return self.checked_validity(arrays)

    def load(self, arrays: dict[str, np.ndarray], flags: np.ndarray) -> None:
        """Copy a checked saved state in, with its validity `flags` (`checked_state`)."""
        for name, dst in self.views(flags.shape[1]).items():
            np.copyto(dst, arrays[name])
        self.set_validity(flags)

    # ---- writing ----------------------------------------------------------------------

    def start(self, env_ids: np.ndarray, rows: np.ndarray) -> None:
        """Write first frames `rows` (uint8[k, H*W]) for envs `env_ids` (int64[k])."""
        kernels.start_kernel(*self._start_args, env_ids, rows)

    def add(self, actions, rewards, terminated, truncated, rows) -> None:
        """Record one step of every env (int32, float32, uint8, uint8 [N]; rows [N, H*W])."""
        kernels.add_kernel(*self._add_args, actions, rewards, terminated, truncated, rows)

    def update_priorities(self, index, td_abs, drawn, alpha: float, eps: float) -> bool:
        """Priorities (|td_abs| + eps) ** alpha at `index` where still the transitions drawn
        at `drawn` writes (int64[B], float64[B], int64[N]); False (and nothing written) when
        an input is out of range or not finite."""
        slots = self.first.shape[1]
        nodes, written = self.nodes, self.written
        return gather.update_priorities_kernel(
            nodes, written, slots, drawn, index, td_abs, alpha, eps
        )

    # ---- reading ----------------------------------------------------------------------

    def sample(self, batch: Batch, rows: np.ndarray, beta: float) -> int:
        """Draw len(batch) transitions into `batch` (its frames as `rows`, uint8[B, W, H*W]),
        uniformly or by priority with importance weights for `beta`; returns the number of
        valid transitions, having drawn nothing when it is below the batch size."""
        out = (rows, batch.action, batch.reward, batch.discount, batch.weight, batch.index)
        shape = (self.history, self.n_step, self.gamma)
        if self.nodes.size:
            return gather.prioritized_sample_kernel(*self._prioritized_args, *shape, beta, *out)
        return gather.sample_kernel(*self._sample_args, *shape, *out)

    def stacks(self, out_rows: np.ndarray) -> None:
        """Each env's acting stack into `out_rows` (uint8[N, history, H*W])."""
        kernels.stacks_kernel(self.frames, self.first, self.cursor, self.history, out_rows)

    # ---- validity ---------------------------------------------------------------------

    def checked_validity(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The validity flags of a saved state (`validity_of`), after checking a prioritized
        ring's tree against them (ReplayError if it is inconsistent)."""
        flags = validity_of(arrays, self.history, self.n_step)
        if self.nodes.size and (problem := self.priority_problem(arrays["priority_tree"], flags)):
            raise ReplayError(f"replay state's priority tree is inconsistent: {problem}")
        return flags

    def priority_problem(self, nodes: np.ndarray, flags: np.ndarray) -> str | None:
        """What is wrong with `nodes` as the tree of a state whose validity is `flags`
        (uint8[N, filled]), or None: a sum tree (`sumtree.tree_problem`) whose priorities
        are positive exactly at the valid slots."""
        n, slots = self.first.shape
        problem = sumtree.tree_problem(nodes, n * slots)
        if problem:
            return problem
        leaves = nodes[nodes.shape[0] >> 1 :][: n * slots].reshape(n, slots)
        if leaves[:, flags.shape[1] :].any() or not np.array_equal(
            leaves[:, : flags.shape[1]] > 0, flags.astype(bool)
        ):
            return "its priorities are not positive exactly at its valid transitions"
        return None

    def set_validity(self, flags: np.ndarray) -> None:
        """Adopt `flags` (uint8[N, filled], from `validity_of`) as the validity of the slots."""
        self.valid[:] = 0
        self.valid[:, : flags.shape[1]] = flags
        self.n_valid[:] = flags.sum(axis=1, dtype=np.int64)
