"""Env throughput: agent steps per second with random actions, ours beside the peers.

Peers, measured in the same run with the same game and protocol settings:
- gymnasium's `AtariPreprocessing` stack on a `frameskip=1` base env (noop 30, frame skip 4)
  plus `ClipReward`: what most PyTorch DQN code runs. Compared with our single env on the
  same rules: full games (a lost life ends nothing on either side: gymnasium's wrapper
  would restart the whole game at each lost life, ours goes on, so they would not do the
  same work) and no FIRE at reset (the wrapper has none).
- ale-py's `AtariVectorEnv` (C++ threads, its own preprocessing), with `stack_num=1` so it
  returns one frame per step as ours does. Its frames are also checked against ours.

Configurations are measured in many short interleaved rounds and each keeps its median, so
a burst of load from other processes on the shared cores hits every configuration alike.
Single-process configurations also report CPU time per step, which sharing the cores does
not change; the single-env ratio against gymnasium uses it.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from ale_py.vector_env import AtariVectorEnv
from gymnasium.wrappers import AtariPreprocessing, ClipReward

from atari_dqn.bench.results import RESULTS_DIR, Headline, write_results
from atari_dqn.configfile import load_config
from atari_dqn.env.atari import make_env
from atari_dqn.env.vector import VectorEnv
from atari_dqn.games import gymnasium_id

GAME = "Breakout"
ROM = "breakout"
SINGLE_VS_GYMNASIUM_TARGET = 0.95
VECTOR_SPEEDUP_TARGET = 1.7
HEADLINES = (
    Headline(
        "single_vs_gymnasium",
        "env: ours / gymnasium AtariPreprocessing (1 env)",
        SINGLE_VS_GYMNASIUM_TARGET,
    ),
    Headline(
        "vector_speedup_vs_single", "env: ours N envs (best N) / ours 1 env", VECTOR_SPEEDUP_TARGET
    ),
)


def _gymnasium_stack() -> gymnasium.Env:
    base = gymnasium.make(gymnasium_id(GAME), frameskip=1, repeat_action_probability=0.0)
    env = AtariPreprocessing(base, noop_max=30, frame_skip=4, terminal_on_life_loss=False)
    return ClipReward(env, -1.0, 1.0)


def _single_stepper(env: gymnasium.Env, seed: int) -> Callable[[], int]:
    """A function that takes one random-action step (resetting ended episodes); returns 1."""
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    n = int(env.action_space.n)

    def step() -> int:
        _, _, terminated, truncated, _ = env.step(int(rng.integers(n)))
        if terminated or truncated:
            env.reset()
        return 1

    return step


def _vector_stepper(vec: VectorEnv, seed: int) -> Callable[[], int]:
    vec.reset()
    rng = np.random.default_rng(seed)

    def step() -> int:
        vec.step(rng.integers(vec.n_actions, size=vec.num_envs))
        return vec.num_envs

    return step


def _ale_vector_stepper(vec: AtariVectorEnv, seed: int) -> Callable[[], int]:
    vec.reset(seed=seed)
    rng = np.random.default_rng(seed)
    n = int(vec.single_action_space.n)

    def step() -> int:
        vec.step(rng.integers(n, size=vec.num_envs))
        return vec.num_envs

    return step


def _rate(step: Callable[[], int], seconds: float) -> tuple[float, float]:
    """Agent steps (summed over envs) per wall-clock second and per CPU second of this process."""
    for _ in range(5):  # warm-up
        step()
    steps, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            steps += step()
    return steps / elapsed, steps / (time.process_time() - cpu_start)


def ale_vector_frames_match(steps: int = 300) -> dict[str, Any]:
    """Does ale-py's vector env compute our frames? Same actions, no no-ops / FIRE / life loss."""
    ours = make_env(GAME, seed=0, noop_max=0, fire_reset=False, terminal_on_life_loss=False)
    theirs = AtariVectorEnv(
        ROM,
        1,
        noop_max=0,
        use_fire_reset=False,
        episodic_life=False,
        stack_num=1,
        reward_clipping=False,
    )
    try:
        frame, _ = ours.reset()
        obs, _ = theirs.reset(seed=0)
        diffs = [int(np.abs(frame.astype(int) - obs[0, -1]).max())]
        rng = np.random.default_rng(0)
        for _ in range(steps):
            action = int(rng.integers(ours.action_space.n))
            frame, _, terminated, truncated, _ = ours.step(action)
            obs, *_ = theirs.step(np.array([action]))
            diffs.append(int(np.abs(frame.astype(int) - obs[0, -1]).max()))
            if terminated or truncated:
                break
    finally:
        theirs.close()
    # A game that ends mid-skip: ours is the true final screen, theirs (as gymnasium's) is not.
    ended_mid_skip = terminated and diffs[-1] != 0
    return {
        "steps_compared": len(diffs),
        "identical_frames": sum(d == 0 for d in diffs),
        "identical_before_game_over": all(d == 0 for d in diffs[: len(diffs) - ended_mid_skip]),
        "game_over_frame_differs": ended_mid_skip,
    }


def run(quick: bool = False, out_dir: Path | str = RESULTS_DIR) -> dict[str, Any]:
    """Measure every configuration, write the record, return the headline figures."""
    seconds, rounds = (0.4, 4) if quick else (0.6, 12)
    # Lock step: each vector step waits for the slowest block, so what one block does alone
    # (a life-loss reset; a game's reset when its spare is not ready) stalls the others.
    # N=16 shows whether more envs per block amortise that.
    vector_sizes = (1, 2, 4) if quick else (1, 2, 4, 8, 16)
    ale_sizes = (1, 2, 4)
    # name -> (implementation, envs, runs in this process only, step function)
    configs: dict[str, tuple[str, int, bool, Callable[[], int]]] = {}
    closers: list[Callable[[], None]] = []
    try:
        # The rules gymnasium's stack plays by (module docstring); the vector envs below
        # play the Nature protocol.
        ours = make_env(GAME, seed=0, terminal_on_life_loss=False, fire_reset=False)
        closers.append(ours.close)
        configs["ours make_env"] = ("ours", 1, True, _single_stepper(ours, 0))
        gym_env = _gymnasium_stack()
        closers.append(gym_env.close)
        configs["gymnasium AtariPreprocessing"] = (
            "gymnasium",
            1,
            True,
            _single_stepper(gym_env, 0),
        )
        for n in vector_sizes:
            vec = VectorEnv(load_config(None, game=GAME).env, n, seed=0)
            closers.append(vec.close)
            configs[f"ours VectorEnv N={n}"] = ("ours", n, n == 1, _vector_stepper(vec, 0))
        for n in ale_sizes:
            ale_vec = AtariVectorEnv(ROM, n, stack_num=1, episodic_life=True)
            closers.append(ale_vec.close)
            # Its C++ threads run in this process, so its CPU time is measured too.
            stepper = _ale_vector_stepper(ale_vec, 0)
            configs[f"ale-py AtariVectorEnv N={n}"] = ("ale-py", n, True, stepper)
        load_before = os.getloadavg()[0]
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in configs}
        for _ in range(rounds):
            for name, (*_, step) in configs.items():
                samples[name].append(_rate(step, seconds))
    finally:
        for close in closers:
            close()

    rate = {name: statistics.median(w for w, _ in values) for name, values in samples.items()}
    cpu = {name: statistics.median(c for _, c in values) for name, values in samples.items()}
    single = rate["ours make_env"]
    rows = [
        {
            "config": name,
            "impl": impl,
            "envs": n,
            "agent_steps_per_s": round(rate[name], 1),
            "frames_per_s": round(4 * rate[name], 1),
            "vs_ours_single": round(rate[name] / single, 3),
            "cpu_us_per_step": round(1e6 / cpu[name], 1) if in_process else None,
            "rounds": len(samples[name]),
        }
        for name, (impl, n, in_process, _) in configs.items()
    ]
    vs_gym = cpu["ours make_env"] / cpu["gymnasium AtariPreprocessing"]
    vs_gym_wall = single / rate["gymnasium AtariPreprocessing"]
    ours_multi = {n: rate[f"ours VectorEnv N={n}"] for n in vector_sizes if n > 1}
    best_n = max(ours_multi, key=ours_multi.get)
    speedup = ours_multi[best_n] / single
    ale_best = max(rate[f"ale-py AtariVectorEnv N={n}"] for n in ale_sizes)
    summary = {
        "game": GAME,
        "single_vs_gymnasium": round(vs_gym, 3),
        "single_vs_gymnasium_wall_clock": round(vs_gym_wall, 3),
        "single_vs_gymnasium_target": SINGLE_VS_GYMNASIUM_TARGET,
        "single_vs_gymnasium_met": vs_gym >= SINGLE_VS_GYMNASIUM_TARGET,
        "vector_best_n": best_n,
        "vector_speedup_vs_single": round(speedup, 3),
        "vector_speedup_target": VECTOR_SPEEDUP_TARGET,
        "vector_speedup_met": speedup >= VECTOR_SPEEDUP_TARGET,
        "vector_speedup_by_n": {n: round(r / single, 3) for n, r in ours_multi.items()},
        "ale_vector_best_vs_ours_best": round(ale_best / max(ours_multi[best_n], single), 3),
        **{f"ale_vector_{k}": v for k, v in ale_vector_frames_match().items()},
        "load_avg_1min_before_after": f"{load_before:.2f} / {os.getloadavg()[0]:.2f}",
        "quick": quick,
    }
    write_results("env", rows, summary, out_dir)
    return summary
