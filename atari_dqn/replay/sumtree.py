"""Proportional prioritized replay (Schaul et al., "Prioritized Experience Replay", ICLR 2016):
a sum tree over the frame ring's slots, its Numba kernels, and the priority and importance
weight formulas.

Layout. One float64 array `nodes` of `2 * L` entries, `L` the smallest power of two >= `size`:
the implicit 1-based binary heap. `nodes[1]` is the root (the total priority), node `i` has
children `2i` and `2i + 1`, and leaf `j` is `nodes[L + j]`, where `j` is the ring's flat slot
index `e * slots + p` (`size = num_envs * slots`). Leaves `size .. L - 1` are padding and stay
0. `nodes[0]`, which the heap leaves unused, holds the running maximum priority (Algorithm 1's
`max_i p_i`, 1.0 at first; over leaf values `p ** alpha`, which is `(max_i p_i) ** alpha`): new
transitions enter at it, and one array carries the whole tree.

A leaf holds a transition's sampling weight `p_i ** alpha` (`priorities` computes it from TD
errors), so `P(i) = leaf_i / nodes[1]`. A leaf of 0 is never drawn: that is how the ring's
unsampleable slots (their window crosses the write head or an unfilled slot) are kept out.

Every internal node is recomputed from its two children, never moved by a delta: each holds
exactly the float sum of its children, with no drift over millions of updates (Dopamine's
sum tree adds deltas and notes the round-off it tolerates). A write stops climbing at the first
ancestor whose sum does not change, which makes re-zeroing an already zero slot O(1).

Threading: the kernels release the GIL; `SumTree` takes no lock, its owner calls it under its
own (as the ring does for its arrays). This module imports nothing from the ring, so the ring
can import it.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from atari_dqn.errors import ReplayError
from atari_dqn.replay.rng import uniform

MAX = 0  # nodes[MAX]: the running maximum priority
ROOT = 1  # nodes[ROOT]: the total priority
FIRST_MAX_PRIORITY = 1.0  # Algorithm 1: p_1 = 1


@numba.njit(nogil=True, cache=True, inline="always")
def set_leaf_kernel(nodes: np.ndarray, leaf: int, priority: float) -> None:
    """Leaf `leaf` (a flat slot index in [0, size)) := `priority`, its ancestors recomputed
    from their children; raises the running maximum to `priority`.

    The climb stops at the first ancestor whose sum comes out unchanged: the tree was
    consistent before this write, so every node above it already sums the same children."""
    if priority > nodes[MAX]:
        nodes[MAX] = priority
    node = (nodes.shape[0] >> 1) + leaf
    if nodes[node] == priority:
        return
    nodes[node] = priority
    node >>= 1
    while node >= ROOT:
        total = nodes[2 * node] + nodes[2 * node + 1]
        if total == nodes[node]:
            return
        nodes[node] = total
        node >>= 1


@numba.njit(nogil=True, cache=True)
def set_kernel(nodes: np.ndarray, indices: np.ndarray, priorities: np.ndarray) -> None:
    """Leaf `indices[k]` (int64[k], each in [0, size)) := `priorities[k]` (float64[k], finite,
    >= 0), in order, so of an index given twice the LAST write wins; raises the running
    maximum to the largest priority written."""
    for k in range(indices.shape[0]):
        set_leaf_kernel(nodes, indices[k], priorities[k])


@numba.njit(nogil=True, cache=True)
def fill_kernel(nodes: np.ndarray, indices: np.ndarray, priority: float) -> None:
    """Leaves `indices` (int64[k]) := one `priority`, without a float64[k] array of it: 0.0
    takes slots out of sampling, `nodes[MAX]` enters new transitions at the maximum."""
    for k in range(indices.shape[0]):
        set_leaf_kernel(nodes, indices[k], priority)


@numba.njit(nogil=True, cache=True)
def sample_kernel(
    nodes: np.ndarray,
    rng: np.ndarray,
    batch_size: int,
    out_indices: np.ndarray,
    out_probabilities: np.ndarray,
) -> float:
    """Draw `batch_size` leaves with probability `P(i) = leaf_i / total` into
    `out_indices[:batch_size]` (int64) and their `P(i)` into `out_probabilities[:batch_size]`
    (float64); returns the total, and draws nothing when it is not positive.

    Stratified, as the paper samples: [0, total) is cut into `batch_size` equal segments and
    row `b` descends from one uniform point of segment `b`, so rows come out in leaf order.

    Never returns a leaf of priority 0, whatever the round-off (the comment at the descent
    says how); other points land where `np.searchsorted(cumsum, u, side="right")` puts them,
    exactly so when the sums are exact."""
    if batch_size > out_indices.shape[0] or batch_size > out_probabilities.shape[0]:
        raise ValueError("sample_kernel: batch_size is larger than the out arrays")
    total = nodes[ROOT]
    if not total > 0.0:
        return total
    leaves = nodes.shape[0] >> 1
    segment = total / batch_size
    for b in range(batch_size):
        u = (b + uniform(rng)) * segment
        node = ROOT
        # Two float edge cases carry a point to or past the end of the mass under a node: the
        # last segment's point can round to exactly the total (or above it, when
        # `batch_size * (total / batch_size)` rounds up), and `u - left` can round up past the
        # right child's sum. A plain descent would walk on into a zero subtree and end on a
        # zero leaf (the padding after the last slot, at worst). So it never enters a child
        # whose sum is 0: it turns left when the right child's sum is 0, and when `u < left`,
        # which needs `left > u >= 0`. Each node is the float sum of its children, so a
        # positive node has a positive child: from a positive root the walk ends on a
        # positive leaf, for a point past the mass the last positive leaf before it.
        while node < leaves:
            left = nodes[2 * node]
            if u < left or nodes[2 * node + 1] == 0.0:
                node = 2 * node
            else:
                u -= left
                node = 2 * node + 1
        out_indices[b] = node - leaves
        out_probabilities[b] = nodes[node] / total
    return total


@numba.njit(nogil=True, cache=True, inline="always")
def priority_kernel(td_abs: float, alpha: float, eps: float) -> float:
    """One leaf value `(|delta| + eps) ** alpha` (see `priorities`)."""
    return (abs(td_abs) + eps) ** alpha


@numba.njit(nogil=True, cache=True)
def _priorities_kernel(td_abs: np.ndarray, alpha: float, eps: float, out: np.ndarray) -> None:
    for k in range(td_abs.shape[0]):
        out[k] = priority_kernel(td_abs[k], alpha, eps)


def priorities(td_abs: np.ndarray, alpha: float, eps: float) -> np.ndarray:
    """float64[B] leaf values `(|delta| + eps) ** alpha` from TD errors `td_abs` (float[B]).

    The paper's proportional variant, `p_i = |delta_i| + eps` raised to `alpha` (its
    Equation 1): `eps > 0` keeps a transition whose error reached 0 drawable; `alpha = 0`
    gives uniform sampling. The ring's own updates compute each value by the same
    `priority_kernel`."""
    td = np.ascontiguousarray(td_abs, np.float64).reshape(-1)
    out = np.empty_like(td)
    _priorities_kernel(td, alpha, eps, out)
    return out.reshape(np.shape(td_abs))


@numba.njit(nogil=True, cache=True)
def importance_weights_kernel(
    probabilities: np.ndarray, n_valid: int, beta: float, out: np.ndarray
) -> None:
    """out[b] := (N * P(b)) ** -beta over the largest of the batch (float64 maths, `out`
    float32[B]): `importance_weights` without its checks, for the ring's sampler."""
    top = 0.0
    for b in range(probabilities.shape[0]):
        top = max(top, (n_valid * probabilities[b]) ** -beta)
    for b in range(probabilities.shape[0]):
        out[b] = (n_valid * probabilities[b]) ** -beta / top


def importance_weights(probabilities: np.ndarray, n_valid: int, beta: float) -> np.ndarray:
    """float32[B] importance-sampling weights of drawn transitions, largest exactly 1.

    `w_i = (N * P(i)) ** -beta / max_j w_j` (Algorithm 1, line 10), over the batch, with
    `P(i)` = `probabilities` (float64[B], as `sample_kernel` returns them) and `N` = `n_valid`,
    the number of transitions that can be drawn. DQN Zoo (`importance_sampling_weights`, with
    `normalize_weights=True` in its prioritized agent) and Dopamine's Rainbow (`loss_weights /=
    tf.reduce_max(loss_weights)`) divide by the batch's maximum too. Dividing by the maximum
    cancels `N`: the weights are `(min_j P(j) / P(i)) ** beta`; `N` is kept for the paper's
    formula, not for the result."""
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.ndim != 1 or probabilities.size == 0 or not np.all(probabilities > 0):
        raise ReplayError(
            f"importance_weights: expected positive float[B] probabilities, got "
            f"{probabilities!r} (pass the probabilities sample_kernel returned)"
        )
    if n_valid < 1 or not 0.0 <= beta <= 1.0:
        raise ReplayError(
            f"importance_weights: need n_valid >= 1 and 0 <= beta <= 1, got n_valid={n_valid}, "
            f"beta={beta} (the paper anneals beta from beta_0 up to 1)"
        )
    out = np.empty(probabilities.size, np.float32)
    importance_weights_kernel(np.ascontiguousarray(probabilities), int(n_valid), float(beta), out)
    return out


def empty_nodes(size: int) -> np.ndarray:
    """float64[2L] nodes of a `size`-leaf tree (the layout above) with every priority 0 and
    the running maximum at Algorithm 1's first value, 1."""
    nodes = np.zeros(2 << (size - 1).bit_length(), np.float64)
    nodes[MAX] = FIRST_MAX_PRIORITY
    return nodes


class SumTree:
    """Sum tree over `size` leaves (float64 priorities, all 0 at first), keyed by the ring's
    flat slot index `e * slots + p`, with its own splitmix64 sampling state (`seed`).

    The kernels take `nodes` (float64[2 * leaves], the layout above) and `rng` (uint64[1]);
    `leaves` is L, the padded leaf count, which is also the heap index of leaf 0."""

    def __init__(self, size: int, *, seed: int = 0) -> None:
        if not isinstance(size, (int, np.integer)) or size <= 0:
            raise ReplayError(f"sum tree size must be a positive integer, got {size!r}")
        self.size = int(size)
        self.nodes = empty_nodes(self.size)
        self.leaves = self.nodes.shape[0] >> 1
        self.rng = np.array([seed], np.uint64)

    @property
    def total(self) -> float:
        """Sum of all priorities."""
        return float(self.nodes[ROOT])

    @property
    def max_priority(self) -> float:
        """Largest priority ever written (1.0 before any larger one)."""
        return float(self.nodes[MAX])

    def leaf_priorities(self) -> np.ndarray:
        """Read-only float64[size] view of the leaves, in slot order."""
        view = self.nodes[self.leaves : self.leaves + self.size]
        view.flags.writeable = False
        return view

    def _indices(self, indices: Any) -> np.ndarray:
        indices = np.asarray(indices)
        if indices.ndim != 1 or not (indices.size == 0 or np.issubdtype(indices.dtype, np.integer)):
            raise ReplayError(f"sum tree indices: expected int[k], got {indices!r}")
        if indices.size and (indices.min() < 0 or indices.max() >= self.size):
            raise ReplayError(
                f"sum tree indices {indices.tolist()} out of range [0, {self.size}) "
                "(a flat slot index is env * slots + slot)"
            )
        return np.ascontiguousarray(indices, np.int64)

    def set(self, indices: Any, priorities: Any) -> None:
        """Leaves `indices` (int[k]) := `priorities` (float[k], finite, >= 0); of an index
        given twice, the last write wins."""
        indices = self._indices(indices)
        values = np.ascontiguousarray(priorities, np.float64)
        if values.shape != indices.shape:
            raise ReplayError(
                f"sum tree set: {values.shape} priorities for {indices.shape} indices"
            )
        if not np.all(np.isfinite(values) & (values >= 0)):
            raise ReplayError(
                f"sum tree priorities must be finite and >= 0, got {values.tolist()} "
                "(a NaN or infinite TD error means the learner diverged)"
            )
        set_kernel(self.nodes, indices, values)

    def set_max(self, indices: Any) -> None:
        """Leaves `indices` (int[k]) := the running maximum: how new transitions enter."""
        fill_kernel(self.nodes, self._indices(indices), self.nodes[MAX])

    def clear(self, indices: Any) -> None:
        """Leaves `indices` (int[k]) := 0: those slots are not drawn until set again."""
        fill_kernel(self.nodes, self._indices(indices), 0.0)

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(int64[B] leaf indices, float64[B] their probabilities P(i)), stratified."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ReplayError(f"batch_size must be a positive integer, got {batch_size!r}")
        indices = np.empty(batch_size, np.int64)
        probabilities = np.empty(batch_size, np.float64)
        if not sample_kernel(self.nodes, self.rng, batch_size, indices, probabilities) > 0:
            raise ReplayError(
                "cannot sample from the sum tree: every priority is 0 (no slot is sampleable "
                "yet; start learning later)"
            )
        return indices, probabilities

    # ---- state ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Copies of the whole state: `size`, `nodes` float64[2L] (running maximum at [0],
        tree after it) and the sampler's `rng` uint64[1]."""
        return {"size": self.size, "nodes": self.nodes.copy(), "rng": self.rng.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()` of a tree of the same size, after checking it is a tree:
        the kernels rely on every internal node being exactly the sum of its children."""
        if state.get("size") != self.size:
            raise ReplayError(
                f"sum tree state is for {state.get('size')} leaves, this tree has "
                f"{self.size}: build the tree with the saved size"
            )
        for name, mine in (("nodes", self.nodes), ("rng", self.rng)):
            theirs = state.get(name)
            if isinstance(theirs, np.ndarray):
                if theirs.dtype == mine.dtype and theirs.shape == mine.shape:
                    continue
                got = f"{theirs.dtype}{list(theirs.shape)}"
            else:
                got = type(theirs).__name__
            raise ReplayError(
                f"sum tree state array '{name}': expected {mine.dtype}{list(mine.shape)}, got {got}"
            )
        if problem := tree_problem(state["nodes"], self.size):
            raise ReplayError(f"sum tree state is corrupt: {problem}")
        np.copyto(self.nodes, state["nodes"])
        np.copyto(self.rng, state["rng"])


def tree_problem(nodes: np.ndarray, size: int) -> str | None:
    """What is wrong with `nodes` (float64[2L]) as the array of a `size`-leaf tree, or None.

    Leaves finite and >= 0, padding 0, each internal node exactly the float sum of its two
    children, the running maximum at least every leaf."""
    leaves = nodes.shape[0] >> 1
    values = nodes[leaves:]
    if not np.all(np.isfinite(values) & (values >= 0)):
        return "a priority is negative or not finite"
    if np.any(values[size:]):
        return f"a leaf past the last slot ({size - 1}) is not 0"
    for level in range(leaves.bit_length() - 1):
        first = 1 << level
        children = nodes[2 * first : 4 * first]
        if not np.array_equal(nodes[first : 2 * first], children[0::2] + children[1::2]):
            return f"a node of depth {level} is not the sum of its children"
    if not nodes[MAX] >= max(FIRST_MAX_PRIORITY, values.max()):
        return f"the running maximum {nodes[MAX]} is below 1 or below a priority"
    return None
