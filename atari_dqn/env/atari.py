"""One Atari game of the Nature DQN paper, with OpenCV preprocessing.

One agent step repeats the action `frame_skip` emulator frames (summing rewards, stopping
early at game over), takes the max over the last two raw frames (sprite flicker), reads
luminance straight from the ALE and resizes to `screen_size` squared (84x84) with
`cv2.INTER_AREA`: exactly what gymnasium's `AtariPreprocessing` computes, but calling the
ALE directly instead of going through four wrapped `env.step` calls that each copy an RGB
screen.

The env returns ONE frame per step; stacking is the replay's job, so each frame is stored
once. Life loss ends an episode for learning only: the next `reset()` continues the same
game, and `info` reports the raw score of the whole game once it is over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ale_py
import cv2
import gymnasium
import numpy as np

from atari_dqn.config import EnvConfig
from atari_dqn.configfile import from_dict
from atari_dqn.games import gymnasium_id


class Emulator:
    """One ALE emulator with its own no-op RNG, its screens and the score of its game.

    The unit that a new game restarts. `frame` always holds the preprocessed frame of the
    emulator's current screen (max-pooled over the last two frames of a step).
    """

    def __init__(self, cfg: EnvConfig, seed: int | None):
        self.cfg = cfg
        # frameskip=1: we repeat actions ourselves. The ALE enforces the episode frame cap,
        # which replaces v5's default of 108,000 frames with ours.
        self.base = gymnasium.make(
            gymnasium_id(cfg.game),
            frameskip=1,
            repeat_action_probability=cfg.repeat_action_probability,
            full_action_space=cfg.full_action_space,
            max_num_frames_per_episode=cfg.max_episode_frames,
        )
        self.ale = self.base.unwrapped.ale
        # SB3 / baselines press FIRE on reset in every game whose (minimal) action set has it.
        self.fire_on_reset = cfg.fire_reset and ale_py.Action.FIRE in self.ale.getMinimalActionSet()
        height, width = self.ale.getScreenDims()
        self.last_screen = np.zeros((height, width), np.uint8)
        self.prev_screen = np.zeros((height, width), np.uint8)
        self.frame = np.zeros((cfg.screen_size, cfg.screen_size), np.uint8)
        self.pool = cfg.max_pool_frames and cfg.frame_skip > 1
        self.seed = seed
        self.seeded = False  # gymnasium seeds the emulator (and loads the ROM) on its first reset
        self.game_return = 0.0
        """Raw score of the current game, reset actions included."""

    def capture(self) -> None:
        """Preprocess the current screen alone (no earlier frame to pool with) into `frame`."""
        self.ale.getScreenGrayscale(self.last_screen)
        self._resize()

    def _resize(self) -> None:
        size = self.cfg.screen_size
        cv2.resize(self.last_screen, (size, size), dst=self.frame, interpolation=cv2.INTER_AREA)

    def repeat(self, action: ale_py.Action, observe: bool = True) -> float:
        """Act `frame_skip` frames (fewer at game over); leave the preprocessed frame in `frame`
        unless not `observe` (a replay that films the colour screen skips that cost)."""
        ale, skip = self.ale, self.cfg.frame_skip
        reward = 0.0
        for t in range(skip):
            reward += ale.act(action)
            if ale.game_over():  # game over or frame cap: the final screen is the last frame
                if observe:
                    self.capture()
                return reward
            if observe and self.pool and t == skip - 2:
                ale.getScreenGrayscale(self.prev_screen)
        if observe:
            ale.getScreenGrayscale(self.last_screen)
            if self.pool:
                np.maximum(self.prev_screen, self.last_screen, out=self.last_screen)
            self._resize()
        return reward

    def reseed(self, seed: int | None) -> None:
        """Seed the next `new_game` with `seed`, as if this emulator had just been made."""
        self.seed, self.seeded = seed, False

    def new_game(self, seed: int | None = None) -> int:
        """Emulator reset, up to noop_max random no-ops, FIRE. Returns the no-ops taken."""
        if seed is not None or not self.seeded:
            self.base.reset(seed=self.seed if seed is None else seed)
            self.seeded = True
        else:
            self.base.reset()
        self.game_return = 0.0
        # [0, noop_max] no-ops of one frame each, from the emulator's seeded RNG.
        noops = int(self.base.unwrapped.np_random.integers(0, self.cfg.noop_max + 1))
        for _ in range(noops):
            self.game_return += self.ale.act(ale_py.Action.NOOP)
            if self.ale.game_over():
                self.base.reset()
                self.game_return = 0.0
        self.capture()
        if self.fire_on_reset:
            self.game_return += self.repeat(ale_py.Action.FIRE)
        if self.ale.game_over():  # only a pathological ROM ends a game while starting it
            return self.new_game()
        return noops

    def get_state(self) -> dict[str, Any]:
        """Emulator (with its RNG), no-op RNG, score and frame: enough to go on exactly."""
        return {
            "ale": self.ale.cloneState(include_rng=True).serialize(),
            "np_random": self.base.unwrapped.np_random.bit_generator.state,
            "seeded": self.seeded,
            "game_return": self.game_return,
            "frame": self.frame.tobytes(),  # bytes: checkpoints load with weights_only
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a `get_state()` of an emulator of the same game and settings."""
        if not self.seeded:  # gymnasium seeds (and loads the ROM) on its first reset
            self.base.reset(seed=self.seed)
        self.ale.restoreState(ale_py.ALEState(state["ale"]))
        self.base.unwrapped.np_random.bit_generator.state = state["np_random"]
        self.seeded = state["seeded"]
        self.game_return = state["game_return"]
        self.frame[:] = np.frombuffer(state["frame"], np.uint8).reshape(self.frame.shape)

    def close(self) -> None:
        self.base.close()


class Games:
    """Where an env's games are played: one emulator, restarted for each new game.

    `AtariEnv` asks it for each new game; `atari_dqn.env.block.SpareGames` is the variant
    that starts the next game ahead of time on a second emulator.
    """

    def __init__(self, cfg: EnvConfig, seed: int | None) -> None:
        self.current = Emulator(cfg, seed)
        """The emulator playing the current game."""

    def new_game(self, seed: int | None) -> int:
        """Start a new game on `current` (reseeded when `seed` is given); returns no-ops."""
        return self.current.new_game(seed)

    def get_state(self) -> dict[str, Any]:
        return {"current": self.current.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.current.set_state(state["current"])

    def close(self) -> None:
        self.current.close()


class AtariEnv(gymnasium.Env):
    """One Atari game with the paper's preprocessing; observations are uint8[S, S] frames.

    `step` returns `(frame, reward, terminated, truncated, info)`; `info` always holds
    `raw_reward`, `lives` and `game_over`, and when `game_over` also `episode_return` (raw
    score summed over every life of the game, reset actions included) and `episode_frames`
    (emulator frames of the game, no-ops included). `reset` info holds `lives` and `noops`
    (no-ops taken; 0 after a life-loss reset, which continues the same game). `games` makes
    the env's `Games` (by default one emulator, restarted at each game over).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        cfg: EnvConfig,
        seed: int | None = None,
        *,
        games: Callable[[EnvConfig, int | None], Games] = Games,
    ) -> None:
        self.cfg = cfg
        self.games = games(cfg, seed)
        ale = self.games.current.ale
        self._action_set = (
            ale.getLegalActionSet() if cfg.full_action_space else ale.getMinimalActionSet()
        )
        self.action_meanings: list[str] = list(
            self.games.current.base.unwrapped.get_action_meanings()
        )
        size = cfg.screen_size
        self.observation_space = gymnasium.spaces.Box(0, 255, (size, size), np.uint8)
        self.action_space = gymnasium.spaces.Discrete(len(self._action_set))
        self._life_lost = False  # the last step ended an episode by a life loss only
        self._lives = 0
        self._started = False  # an episode is under way

    @property
    def ale(self) -> ale_py.ALEInterface:
        """The ALE interface of the emulator playing the current game."""
        return self.games.current.ale

    def _continue_game(self) -> None:
        """After a life loss: one NOOP step (as SB3's EpisodicLifeEnv), then FIRE."""
        game = self.games.current
        game.game_return += game.repeat(ale_py.Action.NOOP)
        if game.fire_on_reset and not game.ale.game_over():
            game.game_return += game.repeat(ale_py.Action.FIRE)
        if game.ale.game_over():
            # The game ended (frame cap) during the reset actions; its score is not reported.
            self.games.new_game(None)

    # -- gymnasium API ---------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """First frame of the next episode: a new game, or after a life loss the same game."""
        noops = 0
        if self._life_lost and seed is None:
            self._continue_game()
        else:
            noops = self.games.new_game(seed)
        self._life_lost = False
        self._started = True
        game = self.games.current
        self._lives = game.ale.lives()
        return game.frame.copy(), {"lives": self._lives, "noops": noops}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Repeat `action` (an index into the action set) for `frame_skip` frames."""
        if not self._started:
            raise RuntimeError("call reset() before step(), and after an episode ends")
        game = self.games.current
        raw = game.repeat(self._action_set[action])
        game.game_return += raw
        ale = game.ale
        lives = ale.lives()
        lost_life = lives < self._lives
        self._lives = lives
        game_ended = ale.game_over(with_truncation=False)
        truncated = not game_ended and ale.game_truncated()
        game_over = game_ended or truncated
        terminated = game_ended or (self.cfg.terminal_on_life_loss and lost_life)
        self._life_lost = terminated and not game_over
        self._started = not (terminated or truncated)
        info: dict[str, Any] = {"raw_reward": raw, "lives": lives, "game_over": game_over}
        if game_over:
            info["episode_return"] = game.game_return
            info["episode_frames"] = ale.getEpisodeFrameNumber()
        reward = float(np.sign(raw)) if self.cfg.clip_rewards else raw
        return game.frame.copy(), reward, terminated, truncated, info

    def get_state(self) -> dict[str, Any]:
        """Emulators (with their RNGs), no-op RNGs and episode bookkeeping: enough to resume
        exactly."""
        return {
            "games": self.games.get_state(),
            "life_lost": self._life_lost,
            "lives": self._lives,
            "started": self._started,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a `get_state()` of an env of the same game and settings."""
        self.games.set_state(state["games"])
        self._life_lost = state["life_lost"]
        self._lives = state["lives"]
        self._started = state["started"]

    def close(self) -> None:
        self.games.close()


def make_env(game: str, *, seed: int | None = None, **overrides: Any) -> AtariEnv:
    """One preprocessed game; `overrides` are `EnvConfig` fields (`noop_max=0`, ...).

    A shorthand for `AtariEnv(EnvConfig(...), seed)` that checks the fields as a config
    file's `env` section is checked: ConfigError for an unknown field or a bad value,
    UnknownGameError for the game.
    """
    return AtariEnv(from_dict({"env": {"game": game, **overrides}}).env, seed)


def action_meanings(cfg: EnvConfig) -> list[str]:
    """The game's action names (`NOOP`, `FIRE`, ...) in the order the agent indexes them."""
    env = AtariEnv(cfg)
    try:
        return env.action_meanings
    finally:
        env.close()
