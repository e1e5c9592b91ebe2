"""Replay benchmark: the frame ring beside Stable-Baselines3's ReplayBuffer and, prioritized,
beside cpprb's PrioritizedReplayBuffer and a numpy sum tree of Dopamine's design, in one run
(the buffers: `atari_dqn.bench.replay_buffers`).

Figures (batch 32, 84x84 frames, history 4):
- bytes per stored transition, from array sizes and from RSS growth while filling (each
  buffer in its own fresh process, so one buffer's pages do not hide another's); ours
  prioritized counts frames, metadata, validity flags and the sum tree;
- batches sampled per second, single thread, ours (sample + as_tensors) and SB3 with
  `optimize_memory_usage` True and False, interleaved round by round, and ours as a fraction
  of a plain memcpy of the same bytes;
- the numba gather against a numpy fancy-index gather of the same windows;
- two fake learners, with and without the Prefetcher thread sampling the next batch: a
  NatureCNN conv forward on one torch thread (CPU-bound), and a 0.5 ms wait standing in
  for a GPU update (the main thread idles while the GPU works);
- prioritized (alpha 0.6, beta 0.4): batches/s of a draw plus its priority update, ours
  (sample + as_tensors + update_priorities) beside cpprb (sample + update_priorities) and
  the numpy tree (its draw and update, our numba gather copying the same windows).
Targets: <= 7,100 bytes per transition (uniform), <= 7,200 (prioritized); >= 3x
SB3-optimised batches/s; >= 3x cpprb's prioritized batches/s. Still differs: SB3 and cpprb
return obs and next_obs as two 4-frame stacks (8 frames a transition), ours one 5-frame
window.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atari_dqn.bench import replay_buffers as buffers
from atari_dqn.bench.replay_buffers import BATCH, BETA, FRAME, HISTORY, NumpySumTree
from atari_dqn.bench.results import RESULTS_DIR, Headline, write_results
from atari_dqn.replay import inspection, kernels
from atari_dqn.replay.feed import Prefetcher, as_tensors
from atari_dqn.replay.gather import gather_kernel
from atari_dqn.replay.ring import FrameRing

GPU_STEP_S = 0.5e-3  # the GPU-like learner's wait per update (a fast GPU's DQN step)
TARGET_BYTES = 7_100
TARGET_PRIORITIZED_BYTES = 7_200
TARGET_SPEEDUP = 3.0
# SB3's optimised buffer stores one 4-frame stack per transition (4 x 84 x 84 bytes).
TARGET_MEMORY_RATIO = HISTORY * FRAME[0] * FRAME[1] / TARGET_BYTES
HEADLINES = (
    Headline("speedup_vs_sb3_optimized", "replay: batches/s, ours / SB3 optimised", TARGET_SPEEDUP),
    Headline(
        "memory_vs_sb3_optimized",
        "replay: bytes per transition, SB3 optimised / ours",
        TARGET_MEMORY_RATIO,
    ),
    Headline(
        "prioritized_speedup_vs_cpprb",
        "replay: prioritized batches/s (draw + update), ours / cpprb",
        TARGET_SPEEDUP,
    ),
    Headline(
        "prioritized_bytes_headroom",
        "replay: 7,200 B / ours prioritized bytes per transition",
        1.0,
    ),
)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _memory_probe(kind: str, capacity: int) -> dict[str, Any]:
    """Run in a fresh process: build, fill, and report bytes per stored transition.

    The stream is made, and a tiny buffer of the same kind filled (loading numba's kernels
    or SB3's modules), BEFORE the first RSS reading, so only the buffer's growth counts."""
    stream = buffers.Stream(capacity + capacity // 10)
    buffers.fill(kind, buffers.build(kind, 2 * (HISTORY + 1)), buffers.Stream(20))
    before = _rss_bytes()
    buffer = buffers.build(kind, capacity)
    buffers.fill(kind, buffer, stream)
    grown = _rss_bytes() - before
    stored = buffers.stored(kind, buffer, capacity)
    arrays = buffers.array_bytes(kind, buffer)
    return {
        "buffer": kind,
        "capacity": capacity,
        "stored_transitions": stored,
        "array_bytes_per_transition": None if arrays is None else arrays / capacity,
        "rss_bytes_per_transition": grown / stored,
    }


def _memory_rows(capacity: int) -> list[dict[str, Any]]:
    rows = []
    context = multiprocessing.get_context("spawn")
    for kind in buffers.KINDS:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            rows.append(pool.submit(_memory_probe, kind, capacity).result())
    return rows


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls of `fn` per second, over at least `seconds` (after one warm-up call)."""
    fn()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            fn()
        calls += 10
    return calls / elapsed


def _best_rates(fns: dict[str, Callable[[], object]], seconds: float, rounds: int) -> dict:
    """Each rate is the best of `rounds`, the candidates interleaved round by round so that
    load from other processes on shared cores hits them alike."""
    best = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = max(best[name], _rate(fn, seconds))
    return best


def _window_indices(ring: FrameRing, n_batches: int) -> tuple[np.ndarray, np.ndarray]:
    """(env ids, slots) of `n_batches` batches of valid transitions, plus each one's
    5-slot window [N, B, 5] for the numpy gather (computed with the ring's own _window)."""
    env_ids, slots = inspection.valid_transitions(ring)
    pick = np.random.default_rng(2).integers(0, slots.size, (n_batches, BATCH))
    windows = np.empty((n_batches, BATCH, HISTORY + 1), np.int64)
    first = ring.state_views(ring.slots)["first"][0]
    for i, p in np.ndenumerate(slots[pick]):
        kernels.window_kernel(first, p, HISTORY, windows[i])
        windows[i][HISTORY] = (p + 1) % ring.slots
    return slots[pick], windows


def _scratch() -> list[np.ndarray]:
    """Room for a batch's action, reward, discount and index (what the gather writes)."""
    return [np.empty(BATCH, d) for d in (np.int64, np.float32, np.float32, np.int64)]


def _gather(state: dict, env_ids: np.ndarray, slots: np.ndarray, out: np.ndarray, scratch) -> None:
    """One-step windows of (env, slot) pairs of a ring's `state_views` into `out`
    (uint8[B, 5, H*W]) and `scratch` (`_scratch`), by the sampler's own gather."""
    gather_kernel(
        state["frames"],
        state["first"],
        state["action"],
        state["reward"],
        state["terminated"],
        state["truncated"],
        env_ids,
        slots,
        HISTORY,
        1,
        1.0,
        out,
        *scratch,
    )


def _prioritized_rates(capacity: int, seconds: float, rounds: int) -> tuple[dict, dict]:
    """Batches/s of a prioritized draw plus its priority update (|TD| from a fixed table),
    ours beside cpprb and the numpy tree; and each one's tree bytes per transition."""
    ring = buffers.filled("ours_prioritized", capacity)
    cpprb = buffers.filled("cpprb", capacity)
    tree = NumpySumTree(ring.priorities().reshape(-1))  # the ring's: 1 at every valid slot
    state = ring.state_views(ring.slots)
    td = np.random.default_rng(4).exponential(1.0, (64, BATCH))
    out = np.empty((BATCH, HISTORY + 1, FRAME[0] * FRAME[1]), np.uint8)
    scratch, zeros, step = _scratch(), np.zeros(BATCH, np.int64), itertools.count()

    def ours() -> None:
        batch = ring.sample(BATCH, BETA)
        as_tensors(batch)
        ring.update_priorities(batch.index, td[next(step) % 64])

    def theirs() -> None:
        drawn = cpprb.sample(BATCH, beta=BETA)
        cpprb.update_priorities(drawn["indexes"], td[next(step) % 64])

    def numpy_tree() -> None:
        index, _ = tree.sample(BATCH, len(ring), BETA)
        _gather(state, zeros, index, out, scratch)
        tree.update(index, td[next(step) % 64])

    rates = _best_rates(
        {
            "ours prioritized: sample + as_tensors + update_priorities": ours,
            "cpprb PrioritizedReplayBuffer: sample + update_priorities": theirs,
            "numpy sum tree (Dopamine's design) + numba gather: sample + update": numpy_tree,
        },
        seconds,
        rounds,
    )
    ours_rate, cpprb_rate, numpy_rate = rates.values()
    summary = {
        "prioritized_speedup_vs_cpprb": ours_rate / cpprb_rate,
        "prioritized_speedup_vs_numpy_sumtree": ours_rate / numpy_rate,
        "tree_bytes_per_transition_ours": state["priority_tree"].nbytes / capacity,
        "tree_bytes_per_transition_numpy_sumtree": tree.nodes.nbytes / capacity,
    }
    return rates, summary


class _FakeLearner:
    """A fixed learner workload: NatureCNN's three convolutions, forward only, one thread."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(HISTORY, 32, 8, 4),
            torch.nn.ReLU(),
            torch.nn.Conv2d(32, 64, 4, 2),
            torch.nn.ReLU(),
            torch.nn.Conv2d(64, 64, 3, 1),
            torch.nn.ReLU(),
        )

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> None:
        self.net(obs.float() / 255.0)


def _throughput(capacity: int, seconds: float, rounds: int) -> tuple[list[dict], dict]:
    """Sampling rates at one torch thread: SB3's `torch.tensor` copies on several OpenMP
    threads slowed it 30x on a loaded 2-core machine; one thread also leaves the other core
    to the Prefetcher thread while the fake learner runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure_throughput(capacity, seconds, rounds)
    finally:
        torch.set_num_threads(threads)


def _measure_throughput(capacity: int, seconds: float, rounds: int) -> tuple[list[dict], dict]:
    ring = buffers.filled("ours", capacity)
    sb3_opt = buffers.filled("sb3_optimized", capacity)
    sb3_plain = buffers.filled("sb3_plain", capacity)
    state = ring.state_views(ring.slots)
    frames = state["frames"][0]
    out = np.empty((BATCH, HISTORY + 1, frames.shape[1]), np.uint8)
    n = 256
    slots, windows = _window_indices(ring, n)
    zeros = np.zeros(BATCH, np.int64)
    scratch = _scratch()
    blocks = np.random.default_rng(3).integers(0, 256, (64, *out.shape), np.uint8)
    step = itertools.count()

    def numba_gather() -> None:
        _gather(state, zeros, slots[next(step) % n], out, scratch)

    def numpy_gather() -> None:
        np.take(frames, windows[next(step) % n], axis=0, out=out)

    def memcpy() -> None:
        np.copyto(out, blocks[next(step) % 64])

    rates = _best_rates(
        {
            "ours: sample + as_tensors": lambda: as_tensors(ring.sample(BATCH)),
            "sb3 optimize_memory_usage=True": lambda: sb3_opt.sample(BATCH),
            "sb3 optimize_memory_usage=False": lambda: sb3_plain.sample(BATCH),
            "memcpy of the same bytes (32x5 frames)": memcpy,
            "numba gather of given windows": numba_gather,
            "numpy np.take of the same windows": numpy_gather,
        },
        seconds,
        rounds,
    )
    fixed_obs = as_tensors(ring.sample(BATCH)).stacks(HISTORY)[0].clone()
    learners = {
        "conv learner": _FakeLearner(),  # CPU-bound: competes with the thread for cores
        "GPU-like learner": lambda obs: time.sleep(GPU_STEP_S),  # main thread just waits
    }
    learn = {}
    with Prefetcher(ring, BATCH, "cpu") as prefetcher:
        for name, learner in learners.items():
            learn |= _best_rates(
                {
                    f"{name} alone (fixed batch)": lambda f=learner: f(fixed_obs),
                    f"{name} + sample": lambda f=learner: f(
                        as_tensors(ring.sample(BATCH)).stacks(HISTORY)[0]
                    ),
                    f"{name} + Prefetcher": lambda f=learner: f(
                        prefetcher.next().stacks(HISTORY)[0]
                    ),
                },
                seconds,
                rounds,
            )
    prioritized, prioritized_summary = _prioritized_rates(capacity, seconds, rounds)
    rates |= prioritized
    rows = [{"measure": k, "value": v, "unit": "batches/s"} for k, v in {**rates, **learn}.items()]
    ours = rates["ours: sample + as_tensors"]
    summary = {
        **prioritized_summary,
        "speedup_vs_sb3_optimized": ours / rates["sb3 optimize_memory_usage=True"],
        "speedup_vs_sb3_plain": ours / rates["sb3 optimize_memory_usage=False"],
        "fraction_of_memcpy": ours / rates["memcpy of the same bytes (32x5 frames)"],
        "numba_gather_vs_numpy_take": rates["numba gather of given windows"]
        / rates["numpy np.take of the same windows"],
        **{
            f"prefetch_speedup_{name.replace(' ', '_').replace('-', '_')}": (
                learn[f"{name} + Prefetcher"] / learn[f"{name} + sample"]
            )
            for name in learners
        },
    }
    return rows, summary


def run(quick: bool = False, out_dir: Path | str = RESULTS_DIR) -> dict[str, Any]:
    """Measure ours beside SB3, cpprb and the numpy tree; write the record; return the
    summary."""
    capacity = 20_000 if quick else 100_000
    throughput_capacity = 20_000 if quick else 50_000  # SB3 plain: 56 KB per transition
    memory = _memory_rows(capacity)
    rows, summary = _throughput(throughput_capacity, 0.3 if quick else 1.0, 2 if quick else 3)
    by_kind = {row["buffer"]: row for row in memory}
    ours_bytes = by_kind["ours"]["rss_bytes_per_transition"]
    summary = {
        "capacity_memory": capacity,
        "capacity_throughput": throughput_capacity,
        "bytes_per_transition_ours_arrays": by_kind["ours"]["array_bytes_per_transition"],
        **{
            f"bytes_per_transition_{k}_rss": by_kind[k]["rss_bytes_per_transition"] for k in by_kind
        },
        "target_bytes_per_transition": TARGET_BYTES,
        "bytes_target_met": max(ours_bytes, by_kind["ours"]["array_bytes_per_transition"])
        <= TARGET_BYTES,
        **summary,
        "target_speedup_vs_sb3_optimized": TARGET_SPEEDUP,
    }
    summary["memory_vs_sb3_optimized"] = (
        by_kind["sb3_optimized"]["rss_bytes_per_transition"] / ours_bytes
    )
    prioritized = by_kind["ours_prioritized"]
    summary["bytes_per_transition_ours_prioritized_arrays"] = prioritized[
        "array_bytes_per_transition"
    ]
    worst = max(prioritized["rss_bytes_per_transition"], prioritized["array_bytes_per_transition"])
    summary["prioritized_bytes_headroom"] = TARGET_PRIORITIZED_BYTES / worst
    summary["prioritized_bytes_target_met"] = worst <= TARGET_PRIORITIZED_BYTES
    summary["prioritized_speedup_target_met"] = (
        summary["prioritized_speedup_vs_cpprb"] >= TARGET_SPEEDUP
    )
    summary["speedup_target_met"] = summary["speedup_vs_sb3_optimized"] >= TARGET_SPEEDUP
    summary["numba_beats_numpy"] = summary["numba_gather_vs_numpy_take"] > 1.0
    memory_rows = [
        {"measure": f"{row['buffer']}: {what} per transition", "value": row[key], "unit": "bytes"}
        for row in memory
        for what, key in (
            ("array bytes", "array_bytes_per_transition"),
            ("RSS growth", "rss_bytes_per_transition"),
        )
        if row[key] is not None
    ]
    write_results("replay", memory_rows + rows, summary, out_dir)
    return summary
