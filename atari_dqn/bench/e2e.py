"""End-to-end training throughput: our trainer beside Stable-Baselines3's DQN, same settings.

Both learn from the same game with batch 32, one update per 4 agent steps, the same replay
capacity and target period, and are timed only in the learning phase (after replay start),
where the update dominates. Each runs in its own subprocess so neither inherits the other's
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
TARGET_RATIO = 2.0
TARGET_RSS_GB = 7.5
HEADLINES = (Headline("ratio_vs_sb3", "end to end: agent steps/s, ours / SB3 DQN", TARGET_RATIO),)


def _ours(
    learn_steps: int, start_steps: int, capacity: int, num_envs: int, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    from atari_dqn.configfile import load_config
    from atari_dqn.loop import Trainer
    from atari_dqn.rundir import RunDir

    overrides = [
        f"loop.total_steps={start_steps + learn_steps}",
        f"loop.replay_start_steps={start_steps}",
        f"loop.num_envs={num_envs}",
        f"replay.capacity={capacity}",
        "eval.interval_steps=0",
        f"logging.interval_steps={learn_steps // 4}",
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
    # Steady state: the first quarter of learning (torch.compile's warm-up) is not timed.
    learning = [
        float(r["steps_per_second"])
        for r in rows
        if int(r["agent_steps"]) - learn_steps // 4 > start_steps
    ]
    return {"steps_per_second": sum(learning) / len(learning)}


def _sb3(learn_steps: int, start_steps: int, capacity: int, num_envs: int) -> dict[str, Any]:
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)

    class LearningClock(BaseCallback):
        def _on_step(self) -> bool:
            # Timed like ours: from the end of the first quarter of learning.
            if self.num_timesteps >= start_steps + learn_steps // 4 and not hasattr(self, "start"):
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
    model = DQN(
        "CnnPolicy",
        env,
        buffer_size=capacity,
        learning_starts=start_steps,
        batch_size=32,
        train_freq=max(1, 4 // num_envs),  # one update per 4 transitions, whatever N
        gradient_steps=1,
        target_update_interval=10_000,
        exploration_fraction=0.1,
        learning_rate=2.5e-4,
        optimize_memory_usage=True,
        replay_buffer_kwargs={"handle_timeout_termination": False},
        seed=0,
        device="cpu",
    )
    clock = LearningClock()
    model.learn(total_timesteps=start_steps + learn_steps, callback=clock)
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
    learner = Learner(envs.n_actions, LearnerConfig())
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
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def run(quick: bool = False, out_dir: Path | str = RESULTS_DIR) -> dict[str, Any]:
    learn_steps, start_steps = (4_000, 2_000) if quick else (10_000, 5_000)
    capacity = 100_000
    rows = []
    # Beside the peers at 1 and 2 envs; ours alone at 4 and 8 envs for the scaling curve.
    compared, scaling_only = ((1,), ()) if quick else ((1, 2), (4, 8))
    for num_envs in compared + scaling_only:
        kwargs = dict(
            learn_steps=learn_steps, start_steps=start_steps, capacity=capacity, num_envs=num_envs
        )
        ours = _in_subprocess("ours", **kwargs)["steps_per_second"]
        row = {"envs": num_envs, "ours steps/s": ours}
        if num_envs in compared:
            eager = _in_subprocess("ours", **kwargs, extra=_EAGER)["steps_per_second"]
            peer = _in_subprocess("sb3", **kwargs)["steps_per_second"]
            row.update({"ours eager steps/s": eager, "SB3 DQN steps/s": peer,
                        "ratio": ours / peer, "eager ratio": eager / peer})  # fmt: skip
        rows.append({**row, "learning steps timed": learn_steps})
    rss = _in_subprocess("rss", capacity=100_000 if quick else 1_000_000)
    best = max((r for r in rows if "ratio" in r), key=lambda r: r["ratio"])
    summary = {
        "ratio_vs_sb3": best["ratio"],
        "ratio_vs_sb3_envs": best["envs"],
        "eager_ratio_vs_sb3": best["eager ratio"],
        "ratio_target": TARGET_RATIO,
        "ratio_met": best["ratio"] >= TARGET_RATIO,
        "peak_rss_gb": rss["peak_rss_gb"],
        "rss_replay_capacity": rss["capacity"],
        "rss_target_gb": TARGET_RSS_GB,
        "rss_met": rss["peak_rss_gb"] <= TARGET_RSS_GB if rss["capacity"] == 1_000_000 else None,
    }
    write_results("e2e", rows, summary, out_dir)
    return summary
