"""The Atari env against gymnasium's own preprocessing and the paper's protocol, on real ROMs."""

from __future__ import annotations

import os
import signal

import cv2
import gymnasium
import numpy as np
import pytest
from gymnasium.wrappers import AtariPreprocessing

from atari_dqn.config import ConfigError
from atari_dqn.envs import (
    _STEP,
    UnknownGameError,
    VectorEnv,
    _env_seed,
    game_name,
    list_games,
    make_env,
    resolve_game,
)

# Our env with every extra of the protocol off: what gymnasium's wrapper computes.
PLAIN = dict(noop_max=0, fire_reset=False, terminal_on_life_loss=False, clip_rewards=False)


def _gymnasium_reference(game: str, sticky: float) -> gymnasium.Env:
    base = gymnasium.make(resolve_game(game), frameskip=1, repeat_action_probability=sticky)
    return AtariPreprocessing(
        base,
        noop_max=0,
        frame_skip=4,
        screen_size=84,
        terminal_on_life_loss=False,
        grayscale_obs=True,
        scale_obs=False,
    )


@pytest.mark.parametrize(("game", "sticky"), [("Breakout", 0.0), ("Pong", 0.25)])
def test_frames_and_rewards_match_gymnasium_atari_preprocessing(game: str, sticky: float) -> None:
    ours = make_env(game, seed=7, repeat_action_probability=sticky, **PLAIN)
    ref = _gymnasium_reference(game, sticky)
    frame, _ = ours.reset()
    ref_frame, _ = ref.reset(seed=7)
    np.testing.assert_array_equal(frame, ref_frame)
    rng = np.random.default_rng(0)
    games_ended = 0
    for _ in range(400):
        action = int(rng.integers(ours.action_space.n))
        frame, reward, terminated, truncated, _ = ours.step(action)
        ref_frame, ref_reward, ref_terminated, ref_truncated, _ = ref.step(action)
        assert (reward, terminated, truncated) == (ref_reward, ref_terminated, ref_truncated)
        if terminated or truncated:
            # gymnasium returns the previous step's frame when the game ends mid-skip (it skips
            # the screen reads after `break`); ours is the true final screen, so only the
            # frames after the reset are compared again.
            games_ended += 1
            frame, _ = ours.reset()
            ref_frame, _ = ref.reset()
        np.testing.assert_array_equal(frame, ref_frame)
    assert game != "Breakout" or games_ended >= 1  # random Breakout loses within 400 steps


def test_game_over_frame_is_the_final_screen() -> None:
    env = make_env("Breakout", seed=0, **PLAIN)
    env.reset()
    rng = np.random.default_rng(1)
    while True:
        frame, _, terminated, _, info = env.step(int(rng.integers(4)))
        if terminated:
            break
    screen = env.ale.getScreenGrayscale()  # the emulator's last frame, unpooled
    expected = cv2.resize(screen, (84, 84), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(frame, expected)
    assert info["game_over"]


def test_noop_starts_take_zero_to_noop_max_frames_and_vary_with_seed() -> None:
    counts = []
    for seed in range(12):
        env = make_env("Pong", seed=seed, noop_max=30, fire_reset=False)
        _, info = env.reset()
        counts.append(info["noops"])
        assert env.ale.getEpisodeFrameNumber() == info["noops"]  # one frame per no-op
    assert all(0 <= n <= 30 for n in counts)
    assert len(set(counts)) >= 4


def test_fire_reset_presses_fire_for_one_step_only_in_games_with_fire() -> None:
    breakout = make_env("Breakout", seed=0, noop_max=0, fire_reset=True)
    breakout_frame, _ = breakout.reset()
    assert breakout.ale.getEpisodeFrameNumber() == 4  # one FIRE agent step of 4 frames
    # The same as pressing FIRE for 4 frames by hand on a plain env.
    plain = make_env("Breakout", seed=0, **PLAIN)
    plain.reset()
    fire = plain.action_meanings.index("FIRE")
    frame_after_fire = plain.step(fire)[0]
    np.testing.assert_array_equal(breakout_frame, frame_after_fire)
    freeway = make_env("Freeway", seed=0, noop_max=0, fire_reset=True)
    assert "FIRE" not in freeway.action_meanings
    freeway.reset()
    assert freeway.ale.getEpisodeFrameNumber() == 0


def test_life_loss_ends_episode_for_learning_but_the_game_and_its_score_go_on() -> None:
    env = make_env("Breakout", seed=3, noop_max=0)
    _, info = env.reset()
    lives = info["lives"]
    rng = np.random.default_rng(3)
    game_return, life_episodes = 0.0, 0
    while True:
        _, _, terminated, truncated, info = env.step(int(rng.integers(4)))
        game_return += info["raw_reward"]
        if info["game_over"]:
            break
        if terminated:
            life_episodes += 1
            assert info["lives"] == lives - 1
            frame_number = env.ale.getEpisodeFrameNumber()
            _, reset_info = env.reset()
            lives = reset_info["lives"]
            assert reset_info["noops"] == 0  # a soft reset: same game, emulator not reset
            assert lives == info["lives"]
            assert env.ale.getEpisodeFrameNumber() == frame_number + 8  # NOOP + FIRE steps
    assert life_episodes == 4  # five lives: four life-loss episodes, then game over
    assert terminated and not truncated
    assert info["episode_return"] == game_return
    assert info["episode_frames"] == env.ale.getEpisodeFrameNumber()
    _, reset_info = env.reset()
    assert reset_info["lives"] == 5 and env.ale.getEpisodeFrameNumber() == 4  # new game


def test_without_life_loss_terminal_the_episode_is_the_full_game() -> None:
    env = make_env("Breakout", seed=3, noop_max=0, terminal_on_life_loss=False)
    env.reset()
    rng = np.random.default_rng(3)
    while True:
        _, _, terminated, _, info = env.step(int(rng.integers(4)))
        if terminated:
            break
        assert not info["game_over"]
    assert info["game_over"] and info["lives"] == 0


def test_rewards_are_clipped_and_raw_reward_is_kept() -> None:
    clipped = make_env("SpaceInvaders", seed=0, noop_max=0)
    raw = make_env("SpaceInvaders", seed=0, noop_max=0, clip_rewards=False)
    clipped.reset()
    raw.reset()
    rng = np.random.default_rng(0)
    raw_rewards = []
    for _ in range(300):
        action = int(rng.integers(clipped.action_space.n))
        _, reward, terminated, truncated, info = clipped.step(action)
        _, unclipped, *_ = raw.step(action)
        assert reward == np.sign(info["raw_reward"]) and unclipped == info["raw_reward"]
        raw_rewards.append(info["raw_reward"])
        if terminated or truncated:
            clipped.reset()
            raw.reset()
    assert max(raw_rewards) > 1  # Space Invaders scores 5 to 30 per alien


def test_episode_frame_caps_truncate_the_full_game() -> None:
    assert make_env("Pong").ale.getInt("max_num_frames_per_episode") == 108_000
    assert (
        make_env("Pong", max_episode_frames=18_000).ale.getInt("max_num_frames_per_episode")
        == 18_000
    )
    for cap, steps in [(100, 25), (102, 26)]:  # 102: the cap stops the 26th step after 2 frames
        env = make_env("Pong", seed=0, max_episode_frames=cap, **PLAIN)
        env.reset()
        for step in range(1, steps + 1):
            _, _, terminated, truncated, info = env.step(0)
            assert truncated == (step == steps) and not terminated
        assert info["game_over"] and info["episode_frames"] == cap
        env.reset()
        assert env.ale.getEpisodeFrameNumber() == 0  # a new game


def _trace(env, actions, after_step=lambda t: None, out=None, reset=True) -> list:
    """Everything `env` returns over `actions` (resetting ended episodes), reset infos included."""
    out = [] if out is None else out
    if reset:
        out.append(env.reset())
    for t, action in enumerate(actions):
        frame, reward, terminated, truncated, info = env.step(int(action))
        out.append((frame, reward, terminated, truncated, info))
        if terminated or truncated:
            out.append(env.reset())
        after_step(t)
    return out


def _assert_same_trace(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]


def test_make_env_is_reproducible_per_seed() -> None:
    kwargs = dict(repeat_action_probability=0.25, noop_max=30)
    actions = np.random.default_rng(0).integers(4, size=200)
    a = _trace(make_env("Breakout", seed=5, **kwargs), actions)
    b = _trace(make_env("Breakout", seed=5, **kwargs), actions)
    c = _trace(make_env("Breakout", seed=6, **kwargs), actions)
    _assert_same_trace(a, b)
    differs = (not np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))
    assert len(a) != len(c) or any(differs)


def _game_overs(trace: list) -> int:
    return sum(len(r) == 5 and r[4]["game_over"] for r in trace)


SPARE_ACTIONS = np.random.default_rng(1).integers(4, size=900)


def test_a_spare_emulator_only_moves_the_reset_work_never_the_frames() -> None:
    eager = make_env("Breakout", seed=3, spare_emulator=True)
    lazy = make_env("Breakout", seed=3, spare_emulator=True)
    prepared = []
    reference = _trace(eager, SPARE_ACTIONS, lambda t: prepared.append(eager.prepare_next_game()))
    _assert_same_trace(reference, _trace(lazy, SPARE_ACTIONS))  # started at game over instead
    assert _game_overs(reference) >= 3 and sum(prepared) >= 3
    assert not eager.prepare_next_game() and not make_env("Breakout").prepare_next_game()


def test_each_game_on_a_spare_emulator_starts_with_an_ale_reset_noops_and_fire() -> None:
    env = make_env("Breakout", seed=5, spare_emulator=True)
    _, info = env.reset()
    emulators, noops, rng = [env.ale], [info["noops"]], np.random.default_rng(0)
    while len(noops) < 6:
        _, _, terminated, _, info = env.step(int(rng.integers(4)))
        if terminated:
            if info["game_over"]:
                env.prepare_next_game()
            _, reset_info = env.reset()
            if info["game_over"]:
                noops.append(reset_info["noops"])
                emulators.append(env.ale)
                # a fresh game: its no-ops, then one FIRE step of 4 frames
                assert env.ale.getEpisodeFrameNumber() == reset_info["noops"] + 4
                assert reset_info["lives"] == 5
    assert all(0 <= n <= 30 for n in noops) and len(set(noops)) >= 3
    assert emulators[0] is not emulators[1] and emulators[0] is emulators[2]  # games alternate


def test_reseeding_a_spare_emulator_env_restarts_both_its_emulators() -> None:
    used = make_env("Breakout", seed=1, spare_emulator=True)
    assert _game_overs(_trace(used, SPARE_ACTIONS[:400])) >= 1
    fresh = make_env("Breakout", seed=3, spare_emulator=True)
    first, reseeded = fresh.reset(), used.reset(seed=3)
    np.testing.assert_array_equal(first[0], reseeded[0])
    assert first[1] == reseeded[1]
    again = _trace(used, SPARE_ACTIONS, reset=False)
    _assert_same_trace(again, _trace(fresh, SPARE_ACTIONS, reset=False))
    assert _game_overs(again) >= 3


def test_a_spare_emulator_env_resumes_exactly_from_its_state() -> None:
    env = make_env("Breakout", seed=8, spare_emulator=True)
    reference: list = []
    saved = []  # (step, records so far, state)

    def save(t: int) -> None:
        if t % 97 == 0:  # with the spare's next game both started and not
            saved.append((t, len(reference), env.get_state(), env.spare_pending))
            if t % 2:
                env.prepare_next_game()

    _trace(env, SPARE_ACTIONS, save, out=reference)
    assert {pending for *_, pending in saved} == {True, False}
    for t, n, state, _ in saved:
        resumed = make_env("Breakout", seed=8, spare_emulator=True)
        resumed.set_state(state)
        _assert_same_trace(_trace(resumed, SPARE_ACTIONS[t + 1 :], reset=False), reference[n:])
    # A state saved before envs had spares resumes the game under way exactly.
    t, n, state, _ = saved[1]
    old = {k: v for k, v in state.items() if k not in ("spare", "frame")}
    resumed = make_env("Breakout", seed=8, spare_emulator=True)
    resumed.set_state(old)
    rest = _trace(resumed, SPARE_ACTIONS[t + 1 :], reset=False)
    game_over = next(i for i, r in enumerate(rest) if len(r) == 5 and r[4]["game_over"])
    _assert_same_trace(rest[: game_over + 1], reference[n : n + game_over + 1])


def _vec_rollout(vec: VectorEnv, steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = [vec.reset()]
    for _ in range(steps):
        step = vec.step(rng.integers(vec.n_actions, size=vec.num_envs))
        ended = step.terminated | step.truncated
        out += [step.frames, step.rewards, step.first_frames[ended], step.episode_returns]
    return out


def test_vector_env_is_reproducible_and_env_i_is_the_single_env_seeded_from_seed_and_i() -> None:
    with VectorEnv("Breakout", 2, seed=11) as vec:
        assert vec.n_actions == 4 and vec.action_meanings[1] == "FIRE"
        first = _vec_rollout(vec, 150)
    with VectorEnv("Breakout", 2, seed=11) as vec:
        second = _vec_rollout(vec, 150)
    for x, y in zip(first, second, strict=True):
        np.testing.assert_array_equal(x, y)
    # Env 1 (stepped in a worker process) is exactly make_env seeded from (seed, 1).
    single = make_env("Breakout", seed=_env_seed(11, 1), spare_emulator=True)
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
    one = VectorEnv("Breakout", 1, seed=2)
    three = VectorEnv("Breakout", 3, seed=2, workers=2)
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
    with VectorEnv("Breakout", 2, seed=0, workers=1) as one_block:
        one_block.reset()
        envs = one_block._local.envs
        pending_after_game_over = 0
        for _ in range(600):
            step = one_block.step(rng.integers(4, size=2))
            # with a single block, the step after a game over starts the spare's next game
            pending_after_game_over += sum(env.spare_pending for env in envs)
            assert sum(env.spare_pending for env in envs) <= step.game_over.sum()
        assert pending_after_game_over >= 2
    with VectorEnv("Breakout", 2, seed=0, workers=2) as two_blocks:
        two_blocks.reset()
        pending = two_blocks._arrays["pending"]
        waited = prepared = 0
        for _ in range(600):
            before = pending.copy()
            step = two_blocks.step(rng.integers(4, size=2))
            ahead = before.min() > 0
            waited += before.max() > 0 and not ahead  # one block waits for the other
            prepared += ahead
            if ahead:  # both blocks started a spare game in the same step
                assert (pending <= before - 1 + step.game_over).all()
        assert waited >= 1 and prepared >= 1


def test_vector_env_auto_reset_returns_true_last_frame_and_next_first_frame() -> None:
    seed, num_envs = 4, 3
    singles = [
        make_env("Breakout", seed=_env_seed(seed, i), noop_max=5, spare_emulator=True)
        for i in range(num_envs)
    ]
    rng = np.random.default_rng(4)
    with VectorEnv("Breakout", num_envs, seed=seed, noop_max=5) as vec:
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
    vec = VectorEnv("Pong", 2, seed=0)
    vec.reset()
    (worker,) = vec._procs
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(RuntimeError, match="died"):
        vec.step(np.zeros(2, np.int64))
    assert not worker.is_alive()
    vec.close()  # idempotent


def test_vector_env_reports_a_worker_exception_with_its_traceback() -> None:
    with VectorEnv("Pong", 2, seed=0) as vec:
        vec.reset()
        vec._arrays["actions"][:] = 99  # past the checks in step(): fails inside every env
        with pytest.raises(RuntimeError, match=r"atari-env-1-1 raised:(.|\n)*IndexError"):
            vec._command(_STEP)


def test_vector_env_close_stops_its_workers() -> None:
    with VectorEnv("Pong", 3, seed=0, workers=3) as vec:
        procs = list(vec._procs)
        assert len(procs) == 2  # the first block runs in this process
        vec.reset()
    assert all(not p.is_alive() and p.exitcode == 0 for p in procs)
    with pytest.raises(RuntimeError, match="closed"):
        vec.reset()


def test_vector_env_rejects_actions_of_the_wrong_shape() -> None:
    with VectorEnv("Pong", 1, seed=0) as vec:
        vec.reset()
        with pytest.raises(ValueError, match=r"shape \(1,\)"):
            vec.step(np.zeros(2, np.int64))
        with pytest.raises(ValueError, match=r"\[0, 6\)"):
            vec.step(np.array([6]))


@pytest.mark.parametrize(
    "name",
    ["Breakout", "breakout", "ALE/Breakout-v5", "BreakoutNoFrameskip-v4", " BREAKOUT "],
)
def test_game_names_resolve_to_the_v5_id(name: str) -> None:
    assert resolve_game(name) == "ALE/Breakout-v5"
    assert game_name(name) == "Breakout"


def test_snake_case_and_camel_case_names_agree() -> None:
    assert resolve_game("space_invaders") == resolve_game("SpaceInvaders")
    assert game_name("space_invaders") == "SpaceInvaders"
    assert game_name("montezuma_revenge") == "MontezumaRevenge"


def test_unknown_game_error_suggests_close_names_and_the_games_command() -> None:
    count = len(list_games())
    with pytest.raises(UnknownGameError) as err:
        resolve_game("Breakot")
    assert str(err.value) == (
        f"unknown game 'Breakot'; did you mean 'Breakout'? "
        f"(python -m atari_dqn games lists all {count})"
    )
    assert isinstance(err.value, ConfigError)
    with pytest.raises(UnknownGameError, match=r"did you mean '\w+', '\w+' or '\w+'\?"):
        resolve_game("Pon")
    with pytest.raises(UnknownGameError, match=r"^unknown game 'zzzzzz' \(python"):
        make_env("zzzzzz")


def test_list_games_has_breakout_with_four_actions_and_is_sorted() -> None:
    games = list_games()
    assert dict(games)["Breakout"] == 4
    assert dict(games)["Pong"] == 6
    assert [g for g, _ in games] == sorted(g for g, _ in games)
    assert len(games) > 100


def test_make_env_rejects_an_unknown_option_naming_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="frame_skip") as err:
        make_env("Pong", frameskip=4)
    assert "did you mean 'frame_skip'" in str(err.value)
    with pytest.raises(ConfigError, match="noop_max"):
        make_env("Pong", noop_max=-1)


def test_observation_and_action_spaces() -> None:
    env = make_env("Pong", screen_size=64, full_action_space=True)
    frame, _ = env.reset()
    assert frame.shape == (64, 64) and frame.dtype == np.uint8
    assert env.observation_space.shape == (64, 64)
    assert env.action_space.n == 18
