"""Learner throughput: `Learner.update` beside a bare torch loop doing the same update.

Both run the Nature CNN with DeepMind's RMSProp, the Huber loss and a target-network
forward pass, from the same initial weights on the same fixed batches (random frames: the
cost of an update does not depend on pixel values), on the learner's device. Contenders are
timed in interleaved rounds and each one's fastest round is kept (timeit's rule: the least
disturbed by other processes on shared cores); the median is recorded beside it.

Speed modes (channels_last, bf16 autocast, torch.compile; on CUDA also the captured CUDA
graph and TF32) also report the loss after the same updates next to eager fp32's, and how
far their weights drift from fp32's, so a mode that changes the maths shows it. Last, the
cost of an update at batch 32, 64, 128 and 256.
"""

from __future__ import annotations

import contextlib
import copy
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from atari_dqn import build
from atari_dqn.bench.results import RESULTS_DIR, Headline, write_results
from atari_dqn.config import Config, LearnerConfig
from atari_dqn.learner import Learner
from atari_dqn.replay.batch import Batch
from atari_dqn.runtime import apply, cuda_present, resolve

N_ACTIONS = 4  # Breakout's minimal action set
TARGET_RATIO = 0.9  # our fp32 update rate at least 90% of the bare loop's
TARGET_GRAPH_MS = 0.7  # a captured update on one H100 / H200
HEADLINES = (
    Headline("fp32_vs_bare_loop", "learner: fp32 update, ours / bare torch loop", TARGET_RATIO),
)
# The check: after the same updates from the same start, the final loss relative to fp32's,
# and the weight drift (distance to fp32's weights over the distance fp32's weights moved).
# Float reassociation (layouts, fused kernels) stays far below the fp32 tolerances (~1e-6
# measured); bf16 keeps 8 mantissa bits, which shows as a few % of drift.
FP32_TOLERANCE = {"loss_rtol": 1e-3, "drift_tol": 1e-3}
BF16_TOLERANCE = {"loss_rtol": 3e-2, "drift_tol": 0.2}
# Each mode switches on its options over plain eager fp32 (all speed options off).
EAGER = {
    "channels_last": "false",
    "bf16_autocast": False,
    "compile": False,
    "cuda_graph": "false",
    "tf32": False,
}
MODES = {
    "fp32": {},
    "channels_last": {"channels_last": "true"},
    "bf16_autocast": {"bf16_autocast": True},
    "compile": {"compile": True},
    "default on a CPU (compile + channels_last)": {"compile": True, "channels_last": "true"},
}
CUDA_MODES = {
    "cuda_graph": {"cuda_graph": "true"},  # the default on CUDA
    "cuda_graph + channels_last": {"cuda_graph": "true", "channels_last": "true"},
    "tf32": {"tf32": True},
}
REDUCED_PRECISION = ("bf16_autocast", "tf32")  # modes that change the maths on purpose


def fixed_batches(size: int, count: int, device: torch.device) -> list[Batch]:
    """`count` fixed random batches of `size` transitions, already on `device`."""
    g = torch.Generator().manual_seed(size)
    out = []
    for _ in range(count):
        batch = Batch(
            torch.randint(0, 256, (size, 5, 84, 84), dtype=torch.uint8, generator=g),
            torch.randint(0, N_ACTIONS, (size,), generator=g),
            torch.randint(-1, 2, (size,), generator=g).float(),
            (torch.rand(size, generator=g) > 0.01).float(),
            torch.ones(size),
            torch.arange(size),
        )
        out.append(Batch(*(t.to(device) for t in batch)))
    return out


class BareLoop:
    """The peer: the same update written as a plain torch loop, nothing shared but copies of
    the reference learner's networks (its target the online network itself where the
    reference's is) and an optimiser of its kind and settings. `compiled`: the loss under
    torch.compile, the fastest such a loop is on a CPU."""

    def __init__(self, reference: Learner, compiled: bool = False) -> None:
        self.online = copy.deepcopy(reference.online)
        if reference.target is reference.online:
            self.target = self.online
        else:
            self.target = copy.deepcopy(reference.target)
        optimizer = reference.optimizer  # its defaults are its constructor's arguments
        self.opt = type(optimizer)(self.online.parameters(), **optimizer.defaults)
        self._loss_fn = torch.compile(self._loss) if compiled else self._loss

    def _loss(
        self,
        obs: torch.Tensor,
        next_obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        discount: torch.Tensor,
    ) -> torch.Tensor:
        q = self.online(obs)
        with torch.no_grad():
            # the batch's discount is gamma ** n already (0 past a game's end)
            y = reward + discount * self.target(next_obs).max(dim=1).values
        return F.smooth_l1_loss(q.gather(1, action[:, None]).squeeze(1), y)

    def update(self, b: Batch) -> dict[str, torch.Tensor]:
        loss = self._loss_fn(*b.stacks(4), b.action, b.reward, b.discount)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """cuDNN's deterministic algorithms, for the maths check on CUDA. Its default ones may
    sum in another order from one run to the next (measured on an H200: eager fp32 against
    itself drifted 0.008 after 20 updates; 0 with these), noise that would hide or mimic a
    mode's own drift. A captured graph keeps the algorithms of its capture, so the learners
    that are timed are made afresh, with the defaults."""
    before = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = before or device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic = before


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_updates(
    update: Callable[[Any], dict], batches: list, n: int, device: torch.device
) -> float:
    """Seconds per update over `n` updates cycling through `batches`."""
    _sync(device)
    start = time.perf_counter()
    for i in range(n):
        update(batches[i % len(batches)])
    _sync(device)
    return (time.perf_counter() - start) / n


def _losses(update: Callable[[Any], dict], batches: list, n: int) -> list[float]:
    """The loss of each of `n` updates, read to the host once at the end (copied: a
    captured update overwrites its outputs at each replay)."""
    return torch.stack(
        [update(batches[i % len(batches)])["loss"].clone() for i in range(n)]
    ).tolist()


def _flat(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().float().flatten() for p in net.parameters()])


def _drift(net: torch.nn.Module, reference: torch.nn.Module, start: torch.Tensor) -> float:
    """How far `net` ended from `reference`, relative to how far `reference` moved from
    `start`: 0 for the same maths, ~1 or more for an unrelated trajectory."""
    ref = _flat(reference)
    return ((_flat(net) - ref).norm() / (ref - start).norm()).item()


def learner_of(cfg: Config) -> Learner:
    """`cfg`'s learner for N_ACTIONS actions, on its resolved runtime, which this process
    now runs under (its threads, among others)."""
    runtime = resolve(cfg)
    apply(runtime)
    return build.learner(cfg, runtime, N_ACTIONS)


def _learner(device: torch.device, threads: int, batch_size: int = 32, **mode: Any) -> Learner:
    options = {**EAGER, **mode}
    learner = LearnerConfig(
        device=str(device), torch_threads=threads, batch_size=batch_size, **options
    )
    return learner_of(Config(learner=learner))


def _compare_modes(
    device: torch.device,
    threads: int,
    modes: dict[str, dict[str, Any]],
    n_check: int,
    n_time: int,
    rounds: int,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Loss check then interleaved timing of every mode and the bare loop, at batch 32."""
    batches = fixed_batches(32, 4, device)
    contenders: dict[str, Callable] = {}
    losses: dict[str, list[float]] = {}
    nets: dict[str, torch.nn.Module] = {}
    compile_note = ""
    for name, mode in modes.items():
        with _deterministic(device):
            learner = _learner(device, threads, **mode)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                losses[name] = _losses(learner.update, batches, n_check)
        if name == "compile" and any("torch.compile failed" in str(w.message) for w in caught):
            compile_note = " (compile failed: eager fallback)"
        nets[name] = copy.deepcopy(learner.online)
        if device.type == "cuda":  # timed with cuDNN's default algorithms, captured afresh
            learner = _learner(device, threads, **mode)
            learner.update(batches[0])
        contenders[name] = learner.update
    start = _flat(_learner(device, threads).online)
    bare = BareLoop(_learner(device, threads))
    with _deterministic(device):
        losses["bare_loop"] = _losses(bare.update, batches, n_check)
    contenders["bare_loop"] = bare.update
    nets["bare_loop"] = copy.deepcopy(bare.online)

    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, update in contenders.items():
            seconds[name].append(time_updates(update, batches, n_time, device))
    rate = {name: 1.0 / min(s) for name, s in seconds.items()}
    median_rate = {name: 1.0 / statistics.median(s) for name, s in seconds.items()}
    rows = []
    ref = losses["fp32"][-1]
    for name in contenders:
        tol = BF16_TOLERANCE if name in REDUCED_PRECISION else FP32_TOLERANCE
        rel = abs(losses[name][-1] - ref) / abs(ref)
        drift = _drift(nets[name], nets["fp32"], start)
        rows.append(
            {
                "part": "batch 32",
                "contender": name + (compile_note if name == "compile" else ""),
                "updates_per_s": rate[name],
                "ms_per_update": 1e3 / rate[name],
                "vs_bare_loop": rate[name] / rate["bare_loop"],
                "median_vs_bare_loop": median_rate[name] / median_rate["bare_loop"],
                f"loss_at_update_{n_check}": losses[name][-1],
                "loss_rel_diff_vs_fp32": rel,
                "weight_drift_vs_fp32": drift,
                **tol,
                "matches_fp32": rel <= tol["loss_rtol"] and drift <= tol["drift_tol"],
            }
        )
    return rows, rate


def _batch_scaling(
    device: torch.device, threads: int, n_time: int, rounds: int
) -> list[dict[str, Any]]:
    """Cost of one fp32 update at batch 32..256, per update and per transition."""
    rows = []
    base = None
    for size in (32, 64, 128, 256):
        learner = _learner(device, threads, batch_size=size)
        batches = fixed_batches(size, 2, device)
        learner.update(batches[0])  # warm-up
        n = max(2, n_time * 32 // size)
        ms = 1e3 * min(time_updates(learner.update, batches, n, device) for _ in range(rounds))
        base = base or ms
        rows.append(
            {
                "part": "batch scaling (fp32)",
                "contender": f"batch {size}",
                "updates_per_s": 1e3 / ms,
                "ms_per_update": ms,
                "cost_vs_batch_32": ms / base,
                "us_per_transition": 1e3 * ms / size,
            }
        )
    return rows


def _same_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row with every key (None where it does not apply): the table takes row 0's."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return [{key: row.get(key) for key in columns} for row in rows]


def run(quick: bool = False, out_dir: Path | str = RESULTS_DIR) -> dict:
    """Measure, write `<date>-<host>-learner.{json,md}`, and return the summary."""
    device = torch.device("cuda" if cuda_present() else "cpu")
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    previous_threads = torch.get_num_threads()
    fast = device.type == "cuda"
    n_check = 20
    n_time = (200 if fast else 20) if quick else (1000 if fast else 50)
    rounds = 3 if quick else 5
    modes = {**MODES, **(CUDA_MODES if fast else {})}
    if fast and quick:  # compiling for CUDA takes minutes; `make bench-gpu` has eight
        modes = {name: mode for name, mode in modes.items() if not mode.get("compile")}
    try:
        rows, rate = _compare_modes(device, threads, modes, n_check, n_time, rounds)
        rows += _batch_scaling(device, threads, n_time, rounds)
    finally:
        torch.set_num_threads(previous_threads)
    ratio = rate["fp32"] / rate["bare_loop"]
    summary = {
        "device": torch.cuda.get_device_name(device) if fast else f"cpu ({threads} threads)",
        "torch_threads": threads,
        "updates_per_s_fp32": rate["fp32"],
        "updates_per_s_bare_loop": rate["bare_loop"],
        "fp32_vs_bare_loop": ratio,
        "target_fp32_vs_bare_loop": f">= {TARGET_RATIO}",
        "target_met": ratio >= TARGET_RATIO,
        "fastest_mode": max(modes, key=rate.get),
        "fastest_mode_vs_fp32": max(rate[m] for m in modes) / rate["fp32"],
        "fp32_modes_match_fp32": all(
            r["matches_fp32"]
            for r in rows
            if r.get("contender") in modes and r["contender"] not in REDUCED_PRECISION
        ),
        "timed_updates_per_round": n_time,
        "rounds": rounds,
    }
    if fast:
        summary["cuda_graph_ms_per_update"] = 1e3 / rate["cuda_graph"]
        summary["cuda_graph_target_ms"] = TARGET_GRAPH_MS
        summary["cuda_graph_met"] = 1e3 / rate["cuda_graph"] <= TARGET_GRAPH_MS
    write_results("learner", _same_columns(rows), summary, out_dir)
    return summary
