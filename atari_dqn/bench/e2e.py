"""End-to-end training throughput: our trainer beside Stable-Baselines3's DQN, on equal terms.

Both learn Breakout with batch 32, one update per 4 agent steps summed over envs, the same
replay capacity, target period, discount, loss and learning rate, on the same device and
the same number of envs N, and both are timed in the learning phase only, from the end of
its first quarter (compile and other warm-ups are not timed). Both explore at the same rate
there: each anneals epsilon to 0.1 by the end of replay start, so both run the network on
~90% of steps (at epsilon ~1, a DQN skips its network and looks faster than it is); the
record shows the epsilon each run reports in its timed window and how many agent steps it
timed, read from the run, not assumed. Both rates are pooled: agent steps over wall time
across the timed window. Each figure is the median of `repeats` runs. What still differs is
listed in the record (`differences`). Each run is its own subprocess, so neither inherits the
other's threads or memory. A second part reports the peak RSS of our trainer's process
holding a 1M-transition replay (the paper's size), filled with frames.
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from atari_dqn.bench.isolated import in_process, train_quietly
from atari_dqn.bench.results import RESULTS_DIR, Headline, write_results
from atari_dqn.runtime import cuda_present, resolve

GAME = "Breakout"
EPSILON = 0.1  # both agents' configured exploration in the timed window (the Nature end)
TARGET_RATIO = 2.0  # ours / SB3 at the same number of envs
TARGET_GPU_STEPS = {1: 1_000, 16: 2_800}  # agent steps/s on one H100 / H200
TARGET_RSS_GB = 7.5
# Beside the peer at these N, on a GPU and on a CPU (`--quick`: the first only); SB3 steps
# its envs one after another in one process, so more envs speed it up little.
COMPARED_ENVS_GPU = (1, 16)
COMPARED_ENVS_CPU = (1, 2)


def ratio_key(num_envs: int, gpu: bool, eager: bool = False) -> str:
    """The summary key of ours / SB3 at `num_envs` each: `[eager_]ratio_vs_sb3_<N>env[_gpu]`
    (`_gpu`: a GPU's ratio is not a CPU's; `eager_`: ours without compile and channels-last,
    as SB3 runs, beside the default)."""
    return f"{'eager_' if eager else ''}ratio_vs_sb3_{num_envs}env{'_gpu' if gpu else ''}"


def _headline(num_envs: int, gpu: bool, eager: bool = False) -> Headline:
    envs = f"{num_envs} env{'s' if num_envs > 1 else ''} each"
    where = " (GPU)" if gpu else ""
    ours = "ours eager / SB3 DQN (both eager)" if eager else "ours / SB3 DQN"
    return Headline(
        ratio_key(num_envs, gpu, eager), f"end to end{where}: {ours}, {envs}", TARGET_RATIO
    )


HEADLINES = (
    *(_headline(n, gpu=False) for n in COMPARED_ENVS_CPU),
    *(_headline(n, gpu=False, eager=True) for n in COMPARED_ENVS_CPU),
    *(_headline(n, gpu=True) for n in COMPARED_ENVS_GPU),
)
DIFFERENCES = (
    "SB3's env is its AtariWrapper on gymnasium: 1 to 30 no-ops (ours 0 to 30), and every "
    "reset, a life loss included, presses FIRE then action 2 (ours: NOOP then FIRE)",
    "SB3 uses torch's centred RMSprop (eps outside the square root); ours DeepMind's",
    "SB3 computes the gradient norm each update (max_grad_norm=inf: it never clips)",
    "SB3 stacks frames in a VecFrameStack and stores stacks; ours stores frames once",
    "on a GPU ours runs its updates while its env workers step (loop.overlap=auto); on a "
    "CPU it does not (a row shows it with loop.overlap=true)",
    "on a CPU ours compiles its update and uses channels-last by default (SB3 runs eager): "
    "the eager ratios compare ours without both",
)


def _timed_from(learn_steps: int, start_steps: int) -> int:
    """The agent step where timing starts: the end of the learning phase's first quarter."""
    return start_steps + learn_steps // 4


def timed_window(rows: list[dict[str, str]], timed_from: int) -> dict[str, Any]:
    """Our rate, steps timed and epsilon, from the metrics.csv rows at or past `timed_from`:
    pooled over the timed intervals (each interval's steps over its time, steps / rate);
    epsilon as logged at each row, the window's first included."""
    window = [row for row in rows if int(row["agent_steps"]) >= timed_from]
    steps = seconds = 0.0
    for before, row in zip(window, window[1:], strict=False):
        span = int(row["agent_steps"]) - int(before["agent_steps"])
        steps += span
        seconds += span / float(row["steps_per_second"])
    epsilons = [float(row["epsilon"]) for row in window]
    return {
        "steps_per_second": steps / seconds,
        "steps_timed": int(steps),
        "epsilon_min": min(epsilons),
        "epsilon_max": max(epsilons),
    }


def time_ours(
    learn_steps: int, start_steps: int, capacity: int, num_envs: int, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Train our DQN for `start_steps + learn_steps` agent steps; its timed window's figures."""
    overrides = [
        f"loop.total_steps={start_steps + learn_steps}",
        f"loop.replay_start_steps={start_steps}",
        "loop.epsilon_decay_steps=1",  # epsilon 0.1 from the end of replay start
        f"loop.epsilon_end={EPSILON}",
        f"loop.num_envs={num_envs}",
        f"replay.capacity={capacity}",
        f"logging.interval_steps={learn_steps // 8}",
        *extra,
    ]
    rows = train_quietly(None, overrides, GAME, read=_metrics_rows)
    return timed_window(rows, _timed_from(learn_steps, start_steps))


def _metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


class _Reading(NamedTuple):
    """SB3's state at one edge of the timed window."""

    clock: float  # seconds, time.perf_counter()
    agent_steps: int
    epsilon: float


def sb3_schedule(num_envs: int) -> tuple[int, int]:
    """SB3's `(train_freq, gradient_steps)` for one update per 4 transitions summed over
    `num_envs` envs, as ours: SB3 counts train_freq in vector steps of N transitions each."""
    return (1, num_envs // 4) if num_envs >= 4 else (4 // num_envs, 1)


def time_sb3(learn_steps: int, start_steps: int, capacity: int, num_envs: int) -> dict[str, Any]:
    """Train SB3's DQN as ours trains; its rate, steps timed and epsilon in the timed window
    (SB3's `exploration_rate` at the window's two ends: its schedule is monotonic)."""
    import ale_py
    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    timed_from = _timed_from(learn_steps, start_steps)

    class TimedWindow(BaseCallback):
        """The clock, agent steps and exploration rate at the timed window's start and end."""

        def _on_step(self) -> bool:
            if self.num_timesteps >= timed_from and not hasattr(self, "start"):
                self.start = self._reading()
            return True

        def _on_training_end(self) -> None:
            self.end = self._reading()

        def _reading(self) -> _Reading:
            return _Reading(time.perf_counter(), self.num_timesteps, self.model.exploration_rate)

    env = VecFrameStack(
        make_atari_env(
            f"ALE/{GAME}-v5",
            n_envs=num_envs,
            seed=0,
            env_kwargs={"frameskip": 1, "repeat_action_probability": 0.0},
        ),
        n_stack=4,
    )
    total = start_steps + learn_steps
    train_freq, gradient_steps = sb3_schedule(num_envs)
    model = DQN(
        "CnnPolicy",
        env,
        buffer_size=capacity,
        learning_starts=start_steps,
        batch_size=32,
        gamma=0.99,
        train_freq=train_freq,
        gradient_steps=gradient_steps,
        target_update_interval=10_000,
        exploration_initial_eps=1.0,
        exploration_final_eps=EPSILON,
        exploration_fraction=start_steps / total,  # at EPSILON from the end of replay start
        learning_rate=2.5e-4,
        max_grad_norm=float("inf"),
        policy_kwargs={
            "optimizer_class": torch.optim.RMSprop,
            "optimizer_kwargs": {"alpha": 0.95, "eps": 0.01, "centered": True},
        },
        optimize_memory_usage=True,
        replay_buffer_kwargs={"handle_timeout_termination": False},
        seed=0,
        device="cuda" if cuda_present() else "cpu",
    )
    window = TimedWindow()
    model.learn(total_timesteps=total, callback=window)
    start, end = window.start, window.end
    return {
        "steps_per_second": (end.agent_steps - start.agent_steps) / (end.clock - start.clock),
        "steps_timed": end.agent_steps - start.agent_steps,
        "epsilon_min": min(start.epsilon, end.epsilon),
        "epsilon_max": max(start.epsilon, end.epsilon),
    }


def _peak_rss(capacity: int) -> dict[str, Any]:
    """Peak RSS of a process holding our full replay plus the learner and one env."""
    import resource

    import numpy as np

    from atari_dqn import build
    from atari_dqn.config import Config, LearnerConfig
    from atari_dqn.configfile import load_config
    from atari_dqn.env.vector import VectorEnv
    from atari_dqn.replay.feed import as_tensors
    from atari_dqn.replay.ring import FrameRing

    envs = VectorEnv(load_config(None, game=GAME).env, 1, seed=0)
    cfg = Config(learner=LearnerConfig(device="cpu"))
    learner = build.learner(cfg, resolve(cfg), envs.n_actions)
    ring = FrameRing(capacity, 1, seed=0)
    frames = np.random.default_rng(0).integers(0, 256, (64, 84, 84), dtype=np.uint8)
    ring.start_episodes(np.arange(1), frames[:1])
    zero_a, zero_r, no = np.zeros(1, np.int64), np.zeros(1, np.float32), np.zeros(1, bool)
    for i in range(capacity + 10):
        ring.add(zero_a, zero_r, no, no, frames[i % 64 : i % 64 + 1])
    learner.update(as_tensors(ring.sample(32)))
    envs.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_rss_gb": peak_kb / 1024**2, "capacity": capacity}


# The same maths without the default speed options (torch.compile, channels-last).
EAGER = ("learner.compile=false", "learner.channels_last=false")

_PARTS = {"ours": time_ours, "sb3": time_sb3, "rss": _peak_rss}


def in_subprocess(part: str, **kwargs: Any) -> dict[str, Any]:
    """Run `part` ("ours", "sb3" or "rss") with `kwargs` in a fresh Python process."""
    return in_process("atari_dqn.bench.e2e", part, kwargs)


# The row's ratio columns; each is a headline under `ratio_key(N, gpu, eager)`.
RATIO, EAGER_RATIO = "ratio ours / SB3 (same N)", "ratio ours eager / SB3 (same N)"
# The row's columns (after "ours " or "SB3 ") read from the runs about their timed windows.
WINDOW_COLUMNS = ("epsilon min", "epsilon max", "steps timed")


def _median_of(repeats: int, part: str, kwargs: dict[str, Any]) -> tuple[float, list[dict]]:
    """`repeats` runs of `part`, each in its own process: their median rate, and the runs."""
    runs = [in_subprocess(part, **kwargs) for _ in range(repeats)]
    return statistics.median(run["steps_per_second"] for run in runs), runs


def _window_columns(who: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What `who`'s runs read from themselves about their timed windows: the lowest and
    highest epsilon any of them saw, and the fewest agent steps any of them timed."""
    low, high, timed = (f"{who} {column}" for column in WINDOW_COLUMNS)
    return {
        low: min(run["epsilon_min"] for run in runs),
        high: max(run["epsilon_max"] for run in runs),
        timed: min(run["steps_timed"] for run in runs),
    }


def _row(
    kwargs: dict[str, Any], repeats: int, *, compared: bool, with_eager: bool
) -> dict[str, Any]:
    """One N's figures (N is `kwargs["num_envs"]`), each the median of `repeats` runs: ours;
    where `compared`, SB3 at the same N; where `with_eager` too, ours eager and ours with
    overlap beside them. The "ours" window columns pool all of our runs in the row."""
    row: dict[str, Any] = {"envs": kwargs["num_envs"], "median of runs": repeats}
    row["ours steps/s"], ours = _median_of(repeats, "ours", kwargs)
    if with_eager:
        row["ours eager steps/s"], eager = _median_of(repeats, "ours", {**kwargs, "extra": EAGER})
        overlap = {**kwargs, "extra": ("loop.overlap=true",)}
        row["ours with overlap steps/s"], with_overlap = _median_of(repeats, "ours", overlap)
        ours += eager + with_overlap
    row |= _window_columns("ours", ours)
    if compared:
        row["SB3 DQN steps/s"], sb3 = _median_of(repeats, "sb3", kwargs)
        row[RATIO] = row["ours steps/s"] / row["SB3 DQN steps/s"]
        if with_eager:
            row[EAGER_RATIO] = row["ours eager steps/s"] / row["SB3 DQN steps/s"]
        row |= _window_columns("SB3", sb3)
    return row


def run(
    quick: bool = False, out_dir: Path | str = RESULTS_DIR, repeats: int | None = None
) -> dict[str, Any]:
    """Measure ours beside SB3 at the same N, ours alone at more N, and the peak RSS.

    `repeats`: runs per figure, the median reported; default 3 on a GPU, and 1 in `quick`
    and on a CPU (where three would add about an hour on 2 cores).
    """
    import torch

    gpu = cuda_present()
    if repeats is None:
        repeats = 3 if gpu and not quick else 1
    learn_steps, start_steps = (4_000, 2_000) if quick else (10_000, 5_000)
    if gpu:  # updates are fast: time more of them
        learn_steps, start_steps = (16_000, 4_000) if quick else (40_000, 10_000)
    # Beside SB3 at `compared`; ours alone at the other N, for the scaling curve.
    if gpu:
        compared, scaling_only = COMPARED_ENVS_GPU, (4, 8)
    elif quick:
        compared, scaling_only = COMPARED_ENVS_CPU[:1], ()
    else:
        compared, scaling_only = COMPARED_ENVS_CPU, (4, 8)
    rows = []
    for num_envs in sorted(compared + scaling_only):
        kwargs = dict(
            learn_steps=learn_steps, start_steps=start_steps, capacity=100_000, num_envs=num_envs
        )
        is_compared = num_envs in compared
        with_eager = is_compared and not gpu and not quick
        rows.append(_row(kwargs, repeats, compared=is_compared, with_eager=with_eager))
        print(f"bench e2e: {rows[-1]}", file=sys.stderr, flush=True)  # the figures so far
    rss = in_subprocess("rss", capacity=100_000 if quick else 1_000_000)
    summary: dict[str, Any] = {
        **{
            ratio_key(r["envs"], gpu, eager): r[column]
            for r in rows
            for column, eager in ((RATIO, False), (EAGER_RATIO, True))
            if column in r
        },
        "ours_steps_per_s_by_envs": {r["envs"]: r["ours steps/s"] for r in rows},
        "sb3_steps_per_s_by_envs": {
            r["envs"]: r["SB3 DQN steps/s"] for r in rows if "SB3 DQN steps/s" in r
        },
        "ratio_target": TARGET_RATIO,
        "median_of_runs": repeats,  # each steps/s figure, each run in its own process
        "timed_window_by_envs": {
            r["envs"]: {k: v for k, v in r.items() if k.endswith(WINDOW_COLUMNS)} for r in rows
        },
        "rate": "pooled: agent steps / wall seconds over the timed window, both",
        "device": torch.cuda.get_device_name(0) if gpu else "cpu",
        "differences": list(DIFFERENCES),
        "peak_rss_gb": rss["peak_rss_gb"],
        "rss_replay_capacity": rss["capacity"],
        "rss_target_gb": TARGET_RSS_GB,
        "rss_met": rss["peak_rss_gb"] <= TARGET_RSS_GB if rss["capacity"] == 1_000_000 else None,
    }
    if gpu:
        summary["gpu_steps_targets"] = {
            n: {"target": t, "ours": summary["ours_steps_per_s_by_envs"].get(n)}
            for n, t in TARGET_GPU_STEPS.items()
        }
    write_results("e2e", rows, summary, out_dir)
    return summary
