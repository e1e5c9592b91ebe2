"""The frame ring's Numba kernels: plain loops over preallocated arrays, GIL released.

Per-env arrays are [N, S] (S slots per env); frames are [N, S, H*W], so each frame is copied
as one contiguous row. The ring's layout and its "invalid range" are described in
`atari_dqn.replay.ring`; these kernels are its only implementation, so acting (`stacks_kernel`)
and learning (`sample_kernel`) stack frames with the same `window_kernel`. All are compiled
with `nogil=True` (a prefetch thread samples while the learner runs) and `cache=True` (the
first run compiles them once per machine).
"""

from __future__ import annotations

import numba
import numpy as np


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
def window_kernel(first_e: np.ndarray, p: int, history: int, out_slots: np.ndarray) -> None:
    """Slots of the `history`-frame stack ending at slot `p` into `out_slots[:history]`,
    oldest first; positions before the episode's first frame repeat that first frame.

    The one stacking rule, used for acting (`stacks_kernel`) and learning (`sample_kernel`)."""
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
    """Whether slot `p` of one env's ring holds a sampleable transition (the invalid range).

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
def start_kernel(frames, first, has_next, cursors, written, n_has_next, active, env_ids, new):
    for i in range(env_ids.shape[0]):
        e = env_ids[i]
        _write_frame(frames, first, has_next, cursors, written, n_has_next, e, new[i], 1)
        active[e] = 1


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
    actions,
    rewards,
    term,
    trunc,
    next_frames,
):
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
def count_valid_kernel(first, has_next, cursors, n_has_next, history) -> int:
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
def valid_indices_kernel(first, has_next, cursors, written, history):
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
def _gather_one(
    frames,
    first,
    action,
    reward,
    terminated,
    e,
    p,
    history,
    b,
    win,
    out_frames,
    out_action,
    out_reward,
    out_discount,
    out_weight,
    out_index,
):
    """Copy transition (e, p) into row `b` of the batch: h + 1 frames, one row copy each;
    its weight is 1 (uniform sampling) and its index `e * slots + p`."""
    window_kernel(first[e], p, history, win)
    for k in range(history):
        _copy_frame(out_frames[b, k], frames[e, win[k]])
    nxt = p + 1 if p + 1 < first.shape[1] else 0
    _copy_frame(out_frames[b, history], frames[e, nxt])
    out_action[b] = action[e, p]
    out_reward[b] = reward[e, p]
    # Terminal transitions do not bootstrap; truncated ones do, from their true last frame.
    out_discount[b] = 0.0 if terminated[e, p] else 1.0
    out_weight[b] = 1.0
    out_index[b] = e * first.shape[1] + p


@numba.njit(nogil=True, cache=True)
def gather_kernel(
    frames,
    first,
    action,
    reward,
    terminated,
    env_ids,
    slot_ids,
    history,
    out_frames,
    out_action,
    out_reward,
    out_discount,
    out_weight,
    out_index,
):
    """Gather given (env, slot) transitions: the sampler's path without the random draw."""
    win = np.empty(history, np.int64)
    for b in range(env_ids.shape[0]):
        _gather_one(
            frames,
            first,
            action,
            reward,
            terminated,
            env_ids[b],
            slot_ids[b],
            history,
            b,
            win,
            out_frames,
            out_action,
            out_reward,
            out_discount,
            out_weight,
            out_index,
        )


@numba.njit(nogil=True, cache=True)
def sample_kernel(
    frames,
    first,
    has_next,
    action,
    reward,
    terminated,
    cursors,
    written,
    n_has_next,
    rng,
    history,
    out_frames,
    out_action,
    out_reward,
    out_discount,
    out_weight,
    out_index,
) -> int:
    """Draw `B` valid transitions uniformly (with replacement) and gather them; returns the
    number of valid transitions, and samples nothing when it is below `B`.

    A filled slot is drawn uniformly over all envs (env weighted by its filled count), then
    rejected if invalid (the invalid range: a small fraction)."""
    valid = count_valid_kernel(first, has_next, cursors, n_has_next, history)
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
        _gather_one(
            frames,
            first,
            action,
            reward,
            terminated,
            e,
            u,
            history,
            b,
            win,
            out_frames,
            out_action,
            out_reward,
            out_discount,
            out_weight,
            out_index,
        )
    return valid


@numba.njit(nogil=True, cache=True)
def stacks_kernel(frames, first, cursors, history, out):
    """The stack each env acts on now: the window ending at its newest frame."""
    slots = first.shape[1]
    win = np.empty(history, np.int64)
    for e in range(first.shape[0]):
        newest = cursors[e] - 1 if cursors[e] > 0 else slots - 1
        window_kernel(first[e], newest, history, win)
        for k in range(history):
            _copy_frame(out[e, k], frames[e, win[k]])
