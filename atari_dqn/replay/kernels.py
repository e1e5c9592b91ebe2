"""The frame ring's Numba kernels for writing and validity: plain loops, GIL released.

Per-env arrays are [N, S] (S slots per env); frames are [N, S, H*W], so each frame is copied
as one contiguous row. The ring's layout and its "invalid range" are described in
`atari_dqn.replay.ring`; `_is_valid` is its only implementation, and acting (`stacks_kernel`)
and learning (`atari_dqn.replay.gather`) stack frames with the same `window_kernel`. All are
compiled with `nogil=True` (a prefetch thread samples while the learner runs) and
`cache=True` (the first run compiles them once per machine).

Validity is maintained, not searched for: each slot has a flag `valid[e, p]` (and each env a
count `n_valid[e]`), and a prioritized ring's sum tree holds a positive priority exactly at
the valid slots. A write at slot `c` changes the validity of at most the `n_step + history`
slots `c - n_step .. c + history - 1` (`refresh_kernel` says why), so every write
recomputes those and nothing else.
"""

from __future__ import annotations

import numba
import numpy as np

from atari_dqn.replay import sumtree


@numba.njit(nogil=True, cache=True, inline="always")
def copy_frame(dst: np.ndarray, src: np.ndarray) -> None:
    """dst[:] = src for one flattened frame. An explicit loop: LLVM vectorises it to near
    memcpy speed; numba's slice assignment `dst[:] = src` measured 3x slower here."""
    for i in range(src.shape[0]):
        dst[i] = src[i]


@numba.njit(nogil=True, cache=True)
def window_kernel(first_e: np.ndarray, p: int, history: int, out_slots: np.ndarray) -> None:
    """Slots of the `history`-frame stack ending at slot `p` into `out_slots[:history]`,
    oldest first; positions before the episode's first frame repeat that first frame.

    The one stacking rule, used for acting (`stacks_kernel`) and learning (both stacks of a
    sampled transition)."""
    slots = first_e.shape[0]
    j = p
    for k in range(history - 1, -1, -1):
        out_slots[k] = j
        if not first_e[j]:
            j = j - 1 if j > 0 else slots - 1


@numba.njit(nogil=True, cache=True)
def steps_kernel(
    has_next_e: np.ndarray, terminated_e: np.ndarray, truncated_e: np.ndarray, p: int, n: int
) -> int:
    """m, the steps of slot `p`'s n-step transition (1 <= m <= n), or 0 while one of them is
    not recorded.

    Walks k = 0..n-1 along the episode: the step from slot p+k must be recorded
    (`has_next`), and the walk stops after the first step that terminated or truncated it.
    `has_next` also vouches for the frames: a slot's flag is cleared when it is overwritten,
    and the ring overwrites p before p+1, so a set flag means its next frame is intact."""
    slots = has_next_e.shape[0]
    j = p
    for k in range(n):
        if not has_next_e[j]:
            return 0
        if terminated_e[j] or truncated_e[j]:
            return k + 1
        j = j + 1 if j + 1 < slots else 0
    return n


@numba.njit(nogil=True, cache=True)
def _is_valid(
    first_e: np.ndarray,
    has_next_e: np.ndarray,
    terminated_e: np.ndarray,
    truncated_e: np.ndarray,
    cursor: int,
    p: int,
    history: int,
    n_step: int,
) -> bool:
    """Whether slot `p` of one env's ring holds a sampleable transition (the invalid range).

    Its steps are all recorded (`steps_kernel`), and walking back through the episode's
    previous `history - 1` frames does not reach the newest slot (`cursor - 1`), which would
    mean the ring has wrapped over them. The stack after the steps lies within those frames
    and the steps' own, so it is intact too."""
    if steps_kernel(has_next_e, terminated_e, truncated_e, p, n_step) == 0:
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
def refresh_kernel(
    first, has_next, terminated, truncated, cursors, valid, n_valid, nodes, e, c, history, n_step
):
    """Recompute validity around slot `c` of env `e`, just written, and keep the counts and
    the tree (`nodes`; none for a uniform ring) in step: a slot entering the valid set gets
    the largest priority so far (Algorithm 1), one leaving it priority 0.

    Why `c - n_step .. c + history - 1` is every slot whose validity can change: the write
    sets `has_next[c - 1]` (an `add`), clears `has_next[c]`, sets `first[c]` and moves the
    newest slot from c - 1 to c. A slot's steps read `has_next` and the end flags of p ..
    p + n - 1, which hold c - 1 or c only for p in c - n .. c; its backward walk reads
    `first` and meets the newest slot at p - history + 1 .. p, which hold c - 1 or c only for
    p in c .. c + history - 1. The ring has at least n_step + history slots per env, so the
    band never covers a slot twice."""
    slots = first.shape[1]
    for d in range(-n_step, history):
        q = (c + d + slots) % slots
        v = _is_valid(
            first[e], has_next[e], terminated[e], truncated[e], cursors[e], q, history, n_step
        )
        if v != valid[e, q]:
            valid[e, q] = v
            n_valid[e] += 1 if v else -1
            if nodes.shape[0]:
                sumtree.set_leaf_kernel(nodes, e * slots + q, nodes[sumtree.MAX] if v else 0.0)


@numba.njit(nogil=True, cache=True)
def _write_frame(frames, first, has_next, cursors, written, n_has_next, e, frame, is_first):
    """Write one frame at env `e`'s cursor, retiring the transition stored there."""
    c = cursors[e]
    if has_next[e, c]:
        n_has_next[e] -= 1
    has_next[e, c] = 0
    first[e, c] = is_first
    copy_frame(frames[e, c], frame)
    cursors[e] = c + 1 if c + 1 < first.shape[1] else 0
    written[e] += 1


@numba.njit(nogil=True, cache=True)
def start_kernel(
    frames,
    first,
    has_next,
    terminated,
    truncated,
    cursors,
    written,
    n_has_next,
    active,
    valid,
    n_valid,
    nodes,
    history,
    n_step,
    env_ids,
    new,
):
    """Write the first frame `new[i]` of a new episode for each env `env_ids[i]`."""
    for i in range(env_ids.shape[0]):
        e = env_ids[i]
        c = cursors[e]
        _write_frame(frames, first, has_next, cursors, written, n_has_next, e, new[i], 1)
        active[e] = 1
        refresh_kernel(
            first,
            has_next,
            terminated,
            truncated,
            cursors,
            valid,
            n_valid,
            nodes,
            e,
            c,
            history,
            n_step,
        )


@numba.njit(nogil=True, cache=True)
def add_kernel(
    frames,
    first,
    has_next,
    action,
    reward,
    terminated,
    truncated,
    cursors,
    written,
    n_has_next,
    active,
    valid,
    n_valid,
    nodes,
    history,
    n_step,
    actions,
    rewards,
    term,
    trunc,
    next_frames,
):
    """Record one step of every env: its action, reward and flags at its newest slot, and
    the frame after it at its cursor."""
    slots = first.shape[1]
    for e in range(first.shape[0]):
        c = cursors[e]
        p = c - 1 if c > 0 else slots - 1
        action[e, p] = actions[e]
        reward[e, p] = rewards[e]
        terminated[e, p] = term[e]
        truncated[e, p] = trunc[e]
        has_next[e, p] = 1
        n_has_next[e] += 1
        _write_frame(frames, first, has_next, cursors, written, n_has_next, e, next_frames[e], 0)
        if term[e] or trunc[e]:
            active[e] = 0
        refresh_kernel(
            first,
            has_next,
            terminated,
            truncated,
            cursors,
            valid,
            n_valid,
            nodes,
            e,
            c,
            history,
            n_step,
        )


@numba.njit(nogil=True, cache=True)
def validity_kernel(first, has_next, terminated, truncated, cursors, written, history, n_step, out):
    """out[e, p] := whether slot p of env e is valid, by brute force over the filled slots
    (0 elsewhere): for loading a ring, for tests and diagnostics.

    The per-slot arrays may be cut to the filled slots, `[:, :filled]`, as a saved state
    holds them: before a ring is full no walk wraps (slot 0 is a first frame, and a step is
    recorded only once its next frame is written)."""
    slots = first.shape[1]
    for e in range(first.shape[0]):
        for p in range(slots):
            out[e, p] = p < written[e] and _is_valid(
                first[e], has_next[e], terminated[e], truncated[e], cursors[e], p, history, n_step
            )


@numba.njit(nogil=True, cache=True)
def stacks_kernel(frames, first, cursors, history, out):
    """The stack each env acts on now: the window ending at its newest frame."""
    slots = first.shape[1]
    win = np.empty(history, np.int64)
    for e in range(first.shape[0]):
        newest = cursors[e] - 1 if cursors[e] > 0 else slots - 1
        window_kernel(first[e], newest, history, win)
        for k in range(history):
            copy_frame(out[e, k], frames[e, win[k]])
