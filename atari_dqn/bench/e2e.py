"""End-to-end training throughput: our trainer beside Stable-Baselines3's DQN, on equal terms.

Both learn Breakout with batch 32, one update per 4 agent steps summed over envs, the same
replay capacity, target period, discount, loss and learning rate, on the same device, and
both are timed in the learning phase only, from the end of its first quarter (compile
and other warm-ups are not timed). Both explore at the same rate there: each anneals
epsilon to 0.1 by the end of replay start, so both run the network on ~90% of steps (at
epsilon ~1, a DQN skips its network and looks faster than it is). Both rates are pooled:
agent steps over wall time across the timed window. What still differs is listed in the
record (`differences`). Each run is its own subprocess, so neither inherits the other's
threads or memory. A second part reports the peak RSS of our trainer's process holding a
1M-transition replay (the paper's size), filled with frames.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from atari_dqn.bench.results import RESULTS_DIR, Headline, write_results

GAME = "Breakout"
EPSILON = 0.1  # both agents' exploration in the timed window (the Nature schedule's end)
TARGET_RATIO = 2.0  # ours / SB3 at the same number of envs
TARGET_GPU_RATIO = 8.0  # ours at our best N / SB3 at 1 env, on one GPU
TARGET_GPU_STEPS = {1: 1_000, 16: 2_800}  # agent steps/s on one H100 / H200
TARGET_RSS_GB = 7.5
HEADLINES = (
    Headline("ratio_vs_sb3_1env", "end to end: ours / SB3 DQN, 1 env each", TARGET_RATIO),
    Headline("ratio_vs_sb3_2env", "end to end: ours / SB3 DQN, 2 envs each", TARGET_RATIO),
    Headline(
        "best_vs_sb3_1env_gpu", "end to end (GPU): ours at best N / SB3 at 1 env", TARGET_GPU_RATIO
    ),
)
DIFFERENCES = (
    "SB3's env is its AtariWrapper on gymnasium: 1 to 30 no-ops (ours 0 to 30), and every "
    "reset, a life loss included, presses FIRE then action 2 (ours: NOOP then FIRE)",
    "SB3 uses torch's centred RMSprop (eps outside the square root); ours DeepMind's",
    "SB3 computes the gradient norm each update (max_grad_norm=inf: it never clips)",
    "SB3 stacks frames in a VecFrameStack and stores stacks; ours stores frames once",
    "on a GPU ours runs its updates while its env workers step (loop.overlap=auto); on a "
    "CPU it does not (a row shows it with loop.overlap=true)",
)


def _ours(
    learn_steps: int, start_steps: int, capacity: int, num_envs: int, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    from atari_dqn.configfile import load_config
    from atari_dqn.loop import Trainer
    from atari_dqn.rundir import RunDir

    interval = learn_steps // 8
    overrides = [
        f"loop.total_steps={start_steps + learn_steps}",
        f"loop.replay_start_steps={start_steps}",
        "loop.epsilon_decay_steps=1",  # epsilon 0.1 from the end of replay start
        f"loop.epsilon_end={EPSILON}",
        f"loop.num_envs={num_envs}",
        f"replay.capacity={capacity}",
        "eval.interval_steps=0",
        f"logging.interval_steps={interval}",
        "logging.progress=false",
        "logging.tensorboard=false",
        "checkpoint.interval_steps=1000000000",
        "checkpoint.save_replay=false",
        *extra,
    ]
    cfg = load_config(None, overrides, game=GAME)
    with tempfile.TemporaryDirectory() as tmp:
        # The final checkpoint is written after the last logging interval: it is not timed.
        Trainer(cfg, RunDir(tmp)).run()
        with (Path(tmp) / "metrics.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
    # Pooled over the timed intervals: each interval's steps over its time (steps / rate).
    timed_from = start_steps + learn_steps // 4
    steps = seconds = 0.0
    for before, row in zip(rows, rows[1:], strict=False):
        if int(before["agent_steps"]) >= timed_from:
            span = int(row["agent_steps"]) - int(before["agent_steps"])
            steps += span
            seconds += span / float(row["steps_per_second"])
    return {"steps_per_second": steps / seconds}


def _sb3(learn_steps: int, start_steps: int, capacity: int, num_envs: int) -> dict[str, Any]:
    import ale_py
    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    timed_from = start_steps + learn_steps // 4

    class LearningClock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= timed_from and not hasattr(self, "start"):
                self.start = (time.perf_counter(), self.num_timesteps)
            return True

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
    # One update per 4 transitions summed over envs, as ours: SB3 counts train_freq in
    # vector steps of N transitions each.
    train_freq, gradient_steps = (1, num_envs // 4) if num_envs >= 4 else (4 // num_envs, 1)
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
        device="cuda" if torch.cuda.is_available() else "cpu",
    )
    clock = LearningClock()
    model.learn(total_timesteps=total, callback=clock)
    elapsed = time.perf_counter() - clock.start[0]
    return {"steps_per_second": (model.num_timesteps - clock.start[1]) / elapsed}


def _peak_rss(capacity: int) -> dict[str, Any]:
    """Peak RSS of a process holding our full replay plus the learner and one env."""
    import resource

    import numpy as np

    from atari_dqn.config import LearnerConfig
    from atari_dqn.configfile import load_config
    from atari_dqn.env.vector import VectorEnv
    from atari_dqn.learner import Learner
    from atari_dqn.replay.feed import to_tensors
    from atari_dqn.replay.ring import FrameRing

    envs = VectorEnv(load_config(None, game=GAME).env, 1, seed=0)
    learner = Learner(envs.n_actions, LearnerConfig(device="cpu"))
    ring = FrameRing(capacity, 1, seed=0)
    frames = np.random.default_rng(0).integers(0, 256, (64, 84, 84), dtype=np.uint8)
    ring.start_episodes(np.arange(1), frames[:1])
    zero_a, zero_r, no = np.zeros(1, np.int64), np.zeros(1, np.float32), np.zeros(1, bool)
    for i in range(capacity + 10):
        ring.add(zero_a, zero_r, no, no, frames[i % 64 : i % 64 + 1])
    learner.update(to_tensors(ring.sample(32), "cpu"))
    envs.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_rss_gb": peak_kb / 1024**2, "capacity": capacity}


# The same maths without the default speed options (torch.compile, channels-last).
_EAGER = ("learner.compile=false", "learner.channels_last=false")

_PARTS = {"ours": _ours, "sb3": _sb3, "rss": _peak_rss}


def _in_subprocess(part: str, **kwargs: Any) -> dict[str, Any]:
    code = (
        "import json, sys; from atari_dqn.bench import e2e; "
        f"print('RESULT', json.dumps(e2e._PARTS[{part!r}](**{kwargs!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-30:])
        raise RuntimeError(f"bench e2e: part {part!r} {kwargs} failed:\n{tail}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def run(quick: bool = False, out_dir: Path | str = RESULTS_DIR) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.is_available()
    learn_steps, start_steps = (4_000, 2_000) if quick else (10_000, 5_000)
    if gpu:  # updates are fast: time more of them
        learn_steps, start_steps = (16_000, 4_000) if quick else (40_000, 10_000)
    capacity = 100_000
    # Beside the peer at these N (SB3 steps its envs one after another in one process, so
    # more envs do not speed it up); ours alone at the others, for the scaling curve.
    if gpu:
        compared, scaling_only = (1,), (4, 8, 16)
    else:
        compared, scaling_only = ((1,), ()) if quick else ((1, 2), (4, 8))
    rows = []
    for num_envs in compared + scaling_only:
        kwargs = dict(
            learn_steps=learn_steps, start_steps=start_steps, capacity=capacity, num_envs=num_envs
        )
        row: dict[str, Any] = {"envs": num_envs}
        row["ours steps/s"] = _in_subprocess("ours", **kwargs)["steps_per_second"]
        if num_envs in compared:
            if not gpu and not quick:
                eager = _in_subprocess("ours", **kwargs, extra=_EAGER)["steps_per_second"]
                overlap = _in_subprocess("ours", **kwargs, extra=("loop.overlap=true",))
                row["ours eager steps/s"] = eager
                row["ours with overlap steps/s"] = overlap["steps_per_second"]
            row["SB3 DQN steps/s"] = _in_subprocess("sb3", **kwargs)["steps_per_second"]
            row["ratio (same N)"] = row["ours steps/s"] / row["SB3 DQN steps/s"]
        rows.append({**row, "learning steps timed": learn_steps - learn_steps // 4})
        print(f"bench e2e: {rows[-1]}", file=sys.stderr, flush=True)  # the figures so far
    rss = _in_subprocess("rss", capacity=100_000 if quick else 1_000_000)
    best = max(rows, key=lambda r: r["ours steps/s"])
    summary: dict[str, Any] = {
        # `_gpu`: the CPU headlines' target (TARGET_RATIO) is not a GPU's
        **{
            f"ratio_vs_sb3_{r['envs']}env" + ("_gpu" if gpu else ""): r["ratio (same N)"]
            for r in rows
            if "ratio (same N)" in r
        },
        "ours_steps_per_s_by_envs": {r["envs"]: r["ours steps/s"] for r in rows},
        "ratio_target": TARGET_RATIO,
        "epsilon_in_timed_window": EPSILON,
        "rate": "pooled: agent steps / wall seconds over the timed window, both",
        "device": torch.cuda.get_device_name(0) if gpu else "cpu",
        "differences": list(DIFFERENCES),
        "peak_rss_gb": rss["peak_rss_gb"],
        "rss_replay_capacity": rss["capacity"],
        "rss_target_gb": TARGET_RSS_GB,
        "rss_met": rss["peak_rss_gb"] <= TARGET_RSS_GB if rss["capacity"] == 1_000_000 else None,
    }
    if gpu:
        sb3_one = rows[0]["SB3 DQN steps/s"]
        summary["best_vs_sb3_1env_gpu"] = best["ours steps/s"] / sb3_one
        summary["best_envs"] = best["envs"]
        summary["gpu_steps_targets"] = {
            n: {"target": t, "ours": summary["ours_steps_per_s_by_envs"].get(n)}
            for n, t in TARGET_GPU_STEPS.items()
        }
    write_results("e2e", rows, summary, out_dir)
    return summary
