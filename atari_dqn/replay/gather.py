"""The frame ring's Numba kernels for reading transitions: drawing slots (uniformly or in
proportion to their priorities), assembling each one's n-step return and stacks into a batch
row, and writing priorities back. Plain loops over preallocated arrays, GIL released.

A batch row is a window of frames (`Batch.frames`): for one step, the `history + 1` frames
`p - h + 1 .. p + 1` (the two stacks overlap); for n > 1 steps, the stack ending at `p` then
the stack ending at `p + m`, `2 * history` frames. Both stacks follow `window_kernel`.
"""

from __future__ import annotations

import numba
import numpy as np

from atari_dqn.replay import sumtree
from atari_dqn.replay.kernels import copy_frame, window_kernel
from atari_dqn.replay.rng import below


@numba.njit(nogil=True, cache=True)
def _gather_one(
    frames,
    first,
    action,
    reward,
    terminated,
    truncated,
    e,
    p,
    history,
    n_step,
    gamma,
    b,
    win,
    out_frames,
    out_action,
    out_reward,
    out_discount,
    out_index,
):
    """Copy the transition at valid slot (e, p) into row `b` of the batch.

    Its m steps (at most `n_step`, ending at the first that ended the episode) give the
    return sum_{k<m} gamma^k r_{p+k}, accumulated in float64, and the discount gamma^m, or 0
    when step p+m-1 terminated the episode (a truncated one bootstraps from its true last
    frame). Its index is `e * slots + p`."""
    slots = first.shape[1]
    window_kernel(first[e], p, history, win)
    for k in range(history):
        copy_frame(out_frames[b, k], frames[e, win[k]])
    ret, scale, j, last = 0.0, 1.0, p, p
    for _ in range(n_step):
        ret += scale * reward[e, j]
        scale *= gamma
        last = j
        j = j + 1 if j + 1 < slots else 0
        if terminated[e, last] or truncated[e, last]:
            break
    if n_step == 1:
        copy_frame(out_frames[b, history], frames[e, j])
    else:
        window_kernel(first[e], j, history, win)
        for k in range(history):
            copy_frame(out_frames[b, history + k], frames[e, win[k]])
    out_action[b] = action[e, p]
    out_reward[b] = ret
    out_discount[b] = 0.0 if terminated[e, last] else scale
    out_index[b] = e * slots + p


@numba.njit(nogil=True, cache=True)
def gather_kernel(
    frames,
    first,
    action,
    reward,
    terminated,
    truncated,
    env_ids,
    slot_ids,
    history,
    n_step,
    gamma,
    out_frames,
    out_action,
    out_reward,
    out_discount,
    out_index,
):
    """Gather given valid (env, slot) transitions: the samplers' path without the draw."""
    win = np.empty(history, np.int64)
    for b in range(env_ids.shape[0]):
        _gather_one(
            frames,
            first,
            action,
            reward,
            terminated,
            truncated,
            env_ids[b],
            slot_ids[b],
            history,
            n_step,
            gamma,
            b,
            win,
            out_frames,
            out_action,
            out_reward,
            out_discount,
            out_index,
        )


@numba.njit(nogil=True, cache=True)
def sample_kernel(
    frames,
    first,
    action,
    reward,
    terminated,
    truncated,
    valid,
    n_valid,
    written,
    rng,
    history,
    n_step,
    gamma,
    out_frames,
    out_action,
    out_reward,
    out_discount,
    out_weight,
    out_index,
) -> int:
    """Draw `B` valid transitions uniformly (with replacement), weight 1, and gather them;
    returns the number of valid transitions, and samples nothing when it is below `B`.

    A filled slot is drawn uniformly over all envs (env weighted by its filled count), then
    rejected if invalid (the invalid range: a small fraction)."""
    count = n_valid.sum()
    if count < out_frames.shape[0]:
        return count
    n_envs, slots = first.shape
    total = 0
    for e in range(n_envs):
        total += min(written[e], slots)
    win = np.empty(history, np.int64)
    for b in range(out_frames.shape[0]):
        while True:
            u = below(rng, total)
            e = 0
            while u >= min(written[e], slots):
                u -= min(written[e], slots)
                e += 1
            if valid[e, u]:
                break
        _gather_one(
            frames,
            first,
            action,
            reward,
            terminated,
            truncated,
            e,
            u,
            history,
            n_step,
            gamma,
            b,
            win,
            out_frames,
            out_action,
            out_reward,
            out_discount,
            out_index,
        )
        out_weight[b] = 1.0
    return count


@numba.njit(nogil=True, cache=True)
def prioritized_sample_kernel(
    frames,
    first,
    action,
    reward,
    terminated,
    truncated,
    nodes,
    n_valid,
    rng,
    history,
    n_step,
    gamma,
    beta,
    out_frames,
    out_action,
    out_reward,
    out_discount,
    out_weight,
    out_index,
) -> int:
    """Draw `B` transitions in proportion to their priorities (stratified: one point per
    equal segment of the total, `sumtree.sample_kernel`), gather them, and weight them
    (N * P(i)) ** -beta over the batch's largest (`sumtree.importance_weights_kernel`, N the
    valid transitions); returns N, and samples nothing when it is below `B`. Invalid slots
    have priority 0 and are never drawn."""
    count = n_valid.sum()
    batch_size = out_frames.shape[0]
    if count < batch_size:
        return count
    slots = first.shape[1]
    probabilities = np.empty(batch_size, np.float64)
    sumtree.sample_kernel(nodes, rng, batch_size, out_index, probabilities)
    sumtree.importance_weights_kernel(probabilities, count, beta, out_weight)
    win = np.empty(history, np.int64)
    for b in range(batch_size):
        e, p = divmod(out_index[b], slots)
        _gather_one(
            frames,
            first,
            action,
            reward,
            terminated,
            truncated,
            e,
            p,
            history,
            n_step,
            gamma,
            b,
            win,
            out_frames,
            out_action,
            out_reward,
            out_discount,
            out_index,
        )
    return count


@numba.njit(nogil=True, cache=True)
def update_priorities_kernel(nodes, written, slots, drawn, index, td_abs, alpha, eps) -> bool:
    """Leaf `index[k]` := (|td_abs[k]| + eps) ** alpha (in order: of an index given twice the
    last wins), for each transition still the one drawn: its priority is positive (still
    valid) and its slot was not written since the draw, when its env had written `drawn[e]`
    frames. An invalid slot stays 0, and a slot overwritten since (even valid again, with a
    new transition and the maximum priority) keeps what it has.

    Writes nothing and returns False when an index is outside the tree, a TD error is not
    finite or `drawn` is past the write counts (the caller says which)."""
    for e in range(written.shape[0]):
        if drawn[e] > written[e]:
            return False
    for k in range(index.shape[0]):
        if not (0 <= index[k] < written.shape[0] * slots and np.isfinite(td_abs[k])):
            return False
    for k in range(index.shape[0]):
        j = index[k]
        e, p = divmod(j, slots)
        since = written[e] - drawn[e]
        rewritten = since >= slots or (p - drawn[e] % slots + slots) % slots < since
        if nodes[(nodes.shape[0] >> 1) + j] > 0.0 and not rewritten:
            sumtree.set_leaf_kernel(nodes, j, sumtree.priority_kernel(td_abs[k], alpha, eps))
    return True
