"""N envs stepped together in worker processes: the same streams as single envs, auto-reset,
spare games started in step, and dead or failing workers reported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from env_helpers import spare_env, vector
from procs import alive, descendants, wait_for

from atari_dqn.env.block import env_seed
from atari_dqn.env.vector import VectorEnv


def _vec_rollout(vec: VectorEnv, steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = [vec.reset()]
    for _ in range(steps):
        step = vec.step(rng.integers(vec.n_actions, size=vec.num_envs))
        ended = step.terminated | step.truncated
        out += [step.frames, step.rewards, step.first_frames[ended], step.episode_returns]
    return out


def test_vector_env_is_reproducible_and_env_i_is_the_singleenv_seeded_from_seed_and_i() -> None:
    with vector("Breakout", 2, seed=11) as vec:
        assert vec.n_actions == 4 and vec.action_meanings[1] == "FIRE"
        first = _vec_rollout(vec, 150)
    with vector("Breakout", 2, seed=11) as vec:
        second = _vec_rollout(vec, 150)
    for x, y in zip(first, second, strict=True):
        np.testing.assert_array_equal(x, y)
    # Env 1 (stepped in a worker process) is exactly an env seeded from (seed, 1).
    single = spare_env("Breakout", seed=env_seed(11, 1))
    rng = np.random.default_rng(0)
    frame, _ = single.reset()
    np.testing.assert_array_equal(first[0][1], frame)
    for t in range(150):
        action = rng.integers(4, size=2)[1]
        frame, reward, terminated, truncated, _ = single.step(action)
        frames, rewards, _, _ = first[1 + 4 * t : 5 + 4 * t]
        np.testing.assert_array_equal(frames[1], frame)
        assert rewards[1] == reward
        if terminated or truncated:
            single.reset()


def test_vector_env_streams_do_not_depend_on_num_envs_or_workers() -> None:
    # Over several games: when each spare game is started depends on the other blocks.
    rng = np.random.default_rng(0)
    actions = rng.integers(4, size=(700, 3))
    one = vector("Breakout", 1, seed=2)
    three = vector("Breakout", 3, seed=2, workers=2)
    with one, three:
        np.testing.assert_array_equal(one.reset()[0], three.reset()[0])
        games = 0
        for t in range(len(actions)):
            a, b = one.step(actions[t, :1]), three.step(actions[t])
            np.testing.assert_array_equal(a.frames[0], b.frames[0])
            assert (a.rewards[0], a.terminated[0], a.game_over[0]) == (
                b.rewards[0],
                b.terminated[0],
                b.game_over[0],
            )
            if a.terminated[0]:
                np.testing.assert_array_equal(a.first_frames[0], b.first_frames[0])
            games += a.game_over[0]
    assert games >= 2


def test_vector_env_starts_spare_games_ahead_once_every_block_has_one() -> None:
    rng = np.random.default_rng(0)
    with vector("Breakout", 2, seed=0, workers=1) as one_block:
        one_block.reset()
        pending_after_game_over = 0
        for _ in range(600):
            step = one_block.step(rng.integers(4, size=2))
            # with a single block, the step after a game over starts the spare's next game
            pending_after_game_over += one_block.spares_to_start().sum()
            assert one_block.spares_to_start().sum() <= step.game_over.sum()
        assert pending_after_game_over >= 2
    with vector("Breakout", 2, seed=0, workers=2) as two_blocks:
        two_blocks.reset()
        waited = prepared = 0
        for _ in range(600):
            before = two_blocks.spares_to_start()
            step = two_blocks.step(rng.integers(4, size=2))
            pending = two_blocks.spares_to_start()
            ahead = before.min() > 0
            waited += before.max() > 0 and not ahead  # one block waits for the other
            prepared += ahead
            if ahead:  # both blocks started a spare game in the same step
                assert (pending <= before - 1 + step.game_over).all()
        assert waited >= 1 and prepared >= 1


def test_vector_env_auto_reset_returns_true_last_frame_and_next_first_frame() -> None:
    seed, num_envs = 4, 3
    singles = [spare_env("Breakout", seed=env_seed(seed, i), noop_max=5) for i in range(num_envs)]
    rng = np.random.default_rng(4)
    with vector("Breakout", num_envs, seed=seed, noop_max=5) as vec:
        frames = vec.reset()
        for i, env in enumerate(singles):
            np.testing.assert_array_equal(frames[i], env.reset()[0])
        life_losses = games = 0
        for _ in range(300):
            actions = rng.integers(4, size=num_envs)
            step = vec.step(actions)
            for i, env in enumerate(singles):
                frame, reward, terminated, truncated, info = env.step(actions[i])
                np.testing.assert_array_equal(step.frames[i], frame)
                assert step.rewards[i] == reward and step.raw_rewards[i] == info["raw_reward"]
                assert step.game_over[i] == info["game_over"]
                if info["game_over"]:
                    games += 1
                    assert step.episode_returns[i] == info["episode_return"]
                    assert step.episode_frames[i] == info["episode_frames"]
                else:
                    assert np.isnan(step.episode_returns[i]) and step.episode_frames[i] == 0
                if terminated or truncated:
                    life_losses += 1
                    np.testing.assert_array_equal(step.first_frames[i], env.reset()[0])
                    assert not np.array_equal(step.first_frames[i], step.frames[i])
    assert life_losses > games >= 1


def test_vector_env_reports_a_dead_worker_and_leaves_no_process() -> None:
    vec = vector("Pong", 2, seed=0)
    vec.reset()
    (worker,) = vec.worker_pids
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(RuntimeError, match="died"):
        vec.step(np.zeros(2, np.int64))
    assert vec.worker_exit_codes == [-signal.SIGKILL]
    vec.close()  # idempotent


def test_vector_env_reports_a_worker_exception_with_its_traceback() -> None:
    with vector("Pong", 2, seed=0, in_process=False) as vec:
        vec.reset()
        # States no env can take: each worker's env fails inside it, past the parent's checks.
        with pytest.raises(RuntimeError, match=r"atari-env-0-0 raised:(.|\n)*KeyError"):
            vec.set_state([{}, {}])


def test_vector_env_close_stops_its_workers() -> None:
    with vector("Pong", 3, seed=0, workers=3) as vec:
        assert len(vec.worker_pids) == 2  # the first block runs in this process
        vec.reset()
    assert vec.worker_exit_codes == [0, 0]
    with pytest.raises(RuntimeError, match="closed"):
        vec.reset()


def test_vector_env_rejects_actions_of_the_wrong_shape() -> None:
    with vector("Pong", 1, seed=0) as vec:
        vec.reset()
        with pytest.raises(ValueError, match=r"shape \(1,\)"):
            vec.step(np.zeros(2, np.int64))
        with pytest.raises(ValueError, match=r"\[0, 6\)"):
            vec.step(np.array([6]))


def test_with_every_block_in_a_worker_the_streams_are_the_same_and_steps_can_overlap():
    rng = np.random.default_rng(3)
    actions = rng.integers(4, size=(120, 2))
    with (
        vector("Breakout", 2, seed=5) as local,
        vector("Breakout", 2, seed=5, in_process=False) as remote,
    ):
        assert len(remote.worker_pids) == 2 and len(local.worker_pids) == 1
        np.testing.assert_array_equal(local.reset(), remote.reset())
        for t in range(len(actions)):
            expected = local.step(actions[t])
            remote.step_async(actions[t])  # the caller is free until step_wait
            got = remote.step_wait()
            np.testing.assert_array_equal(got.frames, expected.frames)
            np.testing.assert_array_equal(got.first_frames, expected.first_frames)
            np.testing.assert_array_equal(got.rewards, expected.rewards)
        states = remote.get_state()
        assert len(states) == 2


def test_a_step_in_flight_must_be_waited_for_before_anything_else():
    with vector("Pong", 1, seed=0, in_process=False) as vec:
        with pytest.raises(RuntimeError, match="without step_async"):
            vec.step_wait()
        vec.reset()
        vec.step_async(np.zeros(1, np.int64))
        with pytest.raises(RuntimeError, match="step_wait\\(\\) is due"):
            vec.reset()
        vec.step_wait()
        vec.reset()


ORPHAN = """
import os, sys, time
from atari_dqn.configfile import load_config
from atari_dqn.env.vector import VectorEnv
if __name__ == "__main__":
    env = VectorEnv(load_config(None, game="Pong").env, 2, seed=0, in_process=False)
    env.reset()
    print("ready", flush=True)
    time.sleep(600)
"""


def _semaphores() -> set[str]:
    """The named semaphores multiprocessing has made on this machine (Linux: /dev/shm)."""
    return {p.name for p in Path("/dev/shm").glob("sem.mp-*")}


def test_workers_of_a_process_killed_with_sigkill_exit_within_seconds(tmp_path):
    before = _semaphores()
    script = tmp_path / "owner.py"
    script.write_text(ORPHAN)
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert owner.stdout.readline().strip() == "ready"
    tree = descendants(owner.pid)
    assert len(tree) >= 4  # two workers, their forkserver, the resource tracker
    assert _semaphores() - before  # the workers' wake-up semaphores
    owner.kill()
    owner.wait()
    wait_for(lambda: not alive(tree), timeout=5)
    # The resource tracker, last to go, unlinks the semaphores; the shared arrays were an
    # unlinked file from the start, freed with the last process that mapped them.
    wait_for(lambda: not (_semaphores() - before), timeout=5)
