"""One Atari env against gymnasium's own preprocessing and the paper's protocol, on real ROMs."""

from __future__ import annotations

import cv2
import gymnasium
import numpy as np
import pytest
from env_helpers import PLAIN, assert_same_trace, trace
from gymnasium.wrappers import AtariPreprocessing

from atari_dqn.env.atari import make_env
from atari_dqn.errors import ConfigError
from atari_dqn.games import gymnasium_id


def _gymnasium_reference(game: str, sticky: float) -> gymnasium.Env:
    base = gymnasium.make(gymnasium_id(game), frameskip=1, repeat_action_probability=sticky)
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


def test_make_env_is_reproducible_per_seed() -> None:
    kwargs = dict(repeat_action_probability=0.25, noop_max=30)
    actions = np.random.default_rng(0).integers(4, size=200)
    a = trace(make_env("Breakout", seed=5, **kwargs), actions)
    b = trace(make_env("Breakout", seed=5, **kwargs), actions)
    c = trace(make_env("Breakout", seed=6, **kwargs), actions)
    assert_same_trace(a, b)
    differs = (not np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))
    assert len(a) != len(c) or any(differs)


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
