"""The Atari environment of the Nature DQN paper, with OpenCV preprocessing, vectorised.

One agent step repeats the action `frame_skip` emulator frames (summing rewards, stopping
early at game over), takes the max over the last two raw frames (sprite flicker), reads
luminance straight from the ALE and resizes to 84x84 with `cv2.INTER_AREA`: exactly what
gymnasium's `AtariPreprocessing` computes, but calling the ALE directly instead of going
through four wrapped `env.step` calls that each copy an RGB screen.

The env returns ONE frame per step; stacking is the replay's job (DESIGN.md). Life loss ends
an episode for learning only: the next `reset()` continues the same game, and `info` reports
the raw score of the whole game once it is over.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import multiprocessing as mp
import os
import re
import signal
import time
import traceback
import weakref
from dataclasses import dataclass
from typing import Any

import ale_py
import cv2
import gymnasium
import numpy as np

from atari_dqn.config import ConfigError, EnvConfig, from_dict
from atari_dqn.names import fold

gymnasium.register_envs(ale_py)
# Quiet ALE's banner (logged at Info level by every new emulator); keep its warnings.
ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Warning)

_GAMES_HINT = "python -m atari_dqn games lists all {n}"


class UnknownGameError(ConfigError):
    """A game name that matches no ROM shipped with the installed ale-py."""


# ---------------------------------------------------------------------------------------------
# Game names


@functools.lru_cache(maxsize=1)
def _games() -> dict[str, str]:
    """{key: CamelCase name} for every single-player game ale-py registers as `ALE/<Name>-v5`."""
    games = {}
    for env_id in gymnasium.registry:
        match = re.fullmatch(r"ALE/(\w+)-v5", env_id)
        if match:
            games[fold(match[1])] = match[1]
    return games


def _suggest(name: str) -> str:
    keys = difflib.get_close_matches(fold(name), list(_games()), n=3, cutoff=0.6)
    names = [f"'{_games()[k]}'" for k in keys]
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"; did you mean {listed}?"


def game_name(name: str) -> str:
    """Canonical CamelCase name: `breakout`, `ALE/Breakout-v5` -> `Breakout`.

    Also accepts the legacy ids (`BreakoutNoFrameskip-v4`). Raises UnknownGameError with up
    to three close matches when nothing fits.
    """
    game = _games().get(fold(name))
    if game is None:
        raise UnknownGameError(
            f"unknown game '{name}'{_suggest(name)} ({_GAMES_HINT.format(n=len(_games()))})"
        )
    return game


def resolve_game(name: str) -> str:
    """The gymnasium id of a game: `space_invaders` -> `ALE/SpaceInvaders-v5`."""
    return f"ALE/{game_name(name)}-v5"


@functools.lru_cache(maxsize=1)
def list_games() -> list[tuple[str, int]]:
    """(CamelCase name, size of its minimal action set) for every game, sorted by name.

    Loads each ROM once (about 9 s in all on a 2-core Xeon), so the answer is cached.
    """
    ale = ale_py.ALEInterface()
    out = []
    for name in sorted(_games().values()):
        rom = gymnasium.spec(f"ALE/{name}-v5").kwargs["game"]
        ale.loadROM(ale_py.roms.get_rom_path(rom))
        out.append((name, len(ale.getMinimalActionSet())))
    return out


# ---------------------------------------------------------------------------------------------
# One environment


def env_overrides(cfg: EnvConfig) -> dict[str, Any]:
    """Every field of `cfg` but the game: the keyword arguments of make_env and VectorEnv."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "game"}


def env_config(game: str, **overrides: Any) -> EnvConfig:
    """An EnvConfig for `game` with `overrides`, checked like a config file's `env` section."""
    return from_dict({"env": {"game": game, **overrides}}).env


class _Emulator:
    """One ALE emulator with its own no-op RNG, its screens and the score of its game.

    The unit that a new game restarts: AtariEnv plays one, and may keep a second one whose
    next game is already started (see `spare_emulator`).
    """

    def __init__(self, cfg: EnvConfig, seed: int | None):
        self.cfg = cfg
        # frameskip=1: we repeat actions ourselves. The ALE enforces the episode frame cap,
        # which replaces v5's default of 108,000 frames with ours.
        self.base = gymnasium.make(
            resolve_game(cfg.game),
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
        self.seeded = False
        self.game_return = 0.0
        """Raw score of the current game, reset actions included."""

    def capture(self) -> None:
        """Preprocess the current screen alone (no earlier frame to pool with) into `frame`."""
        self.ale.getScreenGrayscale(self.last_screen)
        self._resize()

    def _resize(self) -> None:
        size = self.cfg.screen_size
        cv2.resize(self.last_screen, (size, size), dst=self.frame, interpolation=cv2.INTER_AREA)

    def repeat(self, action: ale_py.Action) -> float:
        """Act `frame_skip` frames (fewer at game over); leave the preprocessed frame in `frame`."""
        ale, skip = self.ale, self.cfg.frame_skip
        reward = 0.0
        for t in range(skip):
            reward += ale.act(action)
            if ale.game_over():  # game over or frame cap: the final screen is the last frame
                self.capture()
                return reward
            if self.pool and t == skip - 2:
                ale.getScreenGrayscale(self.prev_screen)
        ale.getScreenGrayscale(self.last_screen)
        if self.pool:
            np.maximum(self.prev_screen, self.last_screen, out=self.last_screen)
        self._resize()
        return reward

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
        return {
            "ale": self.ale.cloneState(include_rng=True).serialize(),
            "np_random": self.base.unwrapped.np_random.bit_generator.state,
            "seeded": self.seeded,
            "game_return": self.game_return,
            "frame": self.frame.tobytes(),  # bytes: checkpoints load with weights_only
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if not self.seeded:  # gymnasium seeds (and loads the ROM) on its first reset
            self.base.reset(seed=self.seed)
        self.ale.restoreState(ale_py.ALEState(state["ale"]))
        self.base.unwrapped.np_random.bit_generator.state = state["np_random"]
        self.seeded = state["seeded"]
        self.game_return = state["game_return"]
        if "frame" in state:  # absent in checkpoints written before the spare emulator
            self.frame[:] = np.frombuffer(state["frame"], np.uint8).reshape(self.frame.shape)

    def close(self) -> None:
        self.base.close()


def _spare_seed(seed: int | None) -> int | None:
    """The spare emulator's seed: a function of the env's seed, unrelated to it."""
    return None if seed is None else int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])


class AtariEnv(gymnasium.Env):
    """One Atari game with the paper's preprocessing; observations are uint8[S, S] frames.

    `step` returns `(frame, reward, terminated, truncated, info)`; `info` always holds
    `raw_reward`, `lives` and `game_over`, and when `game_over` also `episode_return` (raw
    score summed over every life of the game, reset actions included) and `episode_frames`
    (emulator frames of the game, no-ops included). `reset` info holds `lives` and `noops`
    (no-ops taken; 0 after a life-loss reset, which continues the same game).

    With `spare_emulator`, the env owns a second emulator and alternates games between the
    two: while one plays, `prepare_next_game()` can start the other's next game (ALE reset,
    no-ops, FIRE: 5.7 ms in Breakout, as long as 17 agent steps) when the caller chooses, and the
    reset at game over is then only a swap. VectorEnv uses this to keep a game's reset from
    stalling every env in lock step. Each game still starts with a real ALE reset and random
    no-ops; only the emulator instance differs from one game to the next.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, cfg: EnvConfig, seed: int | None = None, *, spare_emulator: bool = False):
        self.cfg = cfg
        self._game = _Emulator(cfg, seed)
        self._spare = _Emulator(cfg, _spare_seed(seed)) if spare_emulator else None
        self._spare_noops: int | None = None  # None: the spare's next game is not started
        ale = self._game.ale
        self._action_set = (
            ale.getLegalActionSet() if cfg.full_action_space else ale.getMinimalActionSet()
        )
        self.action_meanings: list[str] = list(self._game.base.unwrapped.get_action_meanings())
        size = cfg.screen_size
        self.observation_space = gymnasium.spaces.Box(0, 255, (size, size), np.uint8)
        self.action_space = gymnasium.spaces.Discrete(len(self._action_set))
        self._life_lost = False  # the last step ended an episode by a life loss only
        self._lives = 0
        self._started = False  # an episode is under way

    @property
    def ale(self) -> ale_py.ALEInterface:
        """The ALE interface of the emulator playing the current game."""
        return self._game.ale

    @property
    def spare_pending(self) -> bool:
        """The spare emulator's next game is not started yet (always False without a spare)."""
        return self._spare is not None and self._spare_noops is None

    def prepare_next_game(self) -> bool:
        """Start the spare emulator's next game now, so the next game over costs no reset.

        Returns whether there was anything to do. The frames are the same whenever (or
        whether) this is called: it only moves the work.
        """
        if not self.spare_pending:
            return False
        self._spare_noops = self._spare.new_game()
        return True

    def _new_game(self, seed: int | None) -> int:
        """Start a new game (on the spare emulator when there is one); returns no-ops taken."""
        if seed is not None and self._spare is not None:  # a reseed restarts the spare's too
            self._spare.seed, self._spare.seeded, self._spare_noops = _spare_seed(seed), False, None
        if self._spare is None or seed is not None or not self._game.seeded:
            return self._game.new_game(seed)  # no spare, a reseed, or the very first game
        self.prepare_next_game()
        noops = self._spare_noops
        self._game, self._spare, self._spare_noops = self._spare, self._game, None
        return noops

    def _continue_game(self) -> None:
        """After a life loss: one NOOP step (as SB3's EpisodicLifeEnv), then FIRE."""
        game = self._game
        game.game_return += game.repeat(ale_py.Action.NOOP)
        if game.fire_on_reset and not game.ale.game_over():
            game.game_return += game.repeat(ale_py.Action.FIRE)
        if game.ale.game_over():
            # The game ended (frame cap) during the reset actions; its score is not reported.
            self._new_game(None)

    # -- gymnasium API ---------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """First frame of the next episode: a new game, or after a life loss the same game."""
        noops = 0
        if self._life_lost and seed is None:
            self._continue_game()
        else:
            noops = self._new_game(seed)
        self._life_lost = False
        self._started = True
        self._lives = self._game.ale.lives()
        return self._game.frame.copy(), {"lives": self._lives, "noops": noops}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Repeat `action` (an index into the action set) for `frame_skip` frames."""
        if not self._started:
            raise RuntimeError("call reset() before step(), and after an episode ends")
        game = self._game
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
        state = {
            **self._game.get_state(),
            "life_lost": self._life_lost,
            "lives": self._lives,
            "started": self._started,
        }
        if self._spare is not None:
            state["spare"] = {**self._spare.get_state(), "noops": self._spare_noops}
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a `get_state()` of an env of the same game and settings."""
        self._game.set_state(state)
        self._life_lost = state["life_lost"]
        self._lives = state["lives"]
        self._started = state["started"]
        spare = state.get("spare")
        if self._spare is not None and spare is not None:
            self._spare.set_state(spare)
            self._spare_noops = spare["noops"]

    def close(self) -> None:
        self._game.close()
        if self._spare is not None:
            self._spare.close()


def make_env(
    game: str, *, seed: int | None = None, spare_emulator: bool = False, **overrides: Any
) -> AtariEnv:
    """One preprocessed game; `overrides` are EnvConfig fields (`noop_max=0`, ...).

    Raises ConfigError for an unknown field or a bad value (checked by the config's own
    validation), UnknownGameError for the game.
    """
    return AtariEnv(env_config(game, **overrides), seed, spare_emulator=spare_emulator)


def action_meanings(cfg: EnvConfig) -> list[str]:
    """The game's action names (`NOOP`, `FIRE`, ...) in the order the agent indexes them."""
    env = AtariEnv(cfg)
    try:
        return env.action_meanings
    finally:
        env.close()


# ---------------------------------------------------------------------------------------------
# Many environments


@dataclass(frozen=True)
class VecStep:
    """One step of N envs; every array has N rows, one per env."""

    frames: np.ndarray
    """uint8[N, S, S] the frame after the action (for an ended episode: its true last frame)."""
    rewards: np.ndarray
    """float32[N] as the env returns them (clipped when clip_rewards)."""
    raw_rewards: np.ndarray
    """float32[N] unclipped."""
    terminated: np.ndarray
    """bool[N] episode ended (a life loss counts when terminal_on_life_loss)."""
    truncated: np.ndarray
    """bool[N] the episode frame cap was reached."""
    first_frames: np.ndarray
    """uint8[N, S, S] where terminated | truncated: the next episode's first frame."""
    game_over: np.ndarray
    """bool[N] a full game ended this step (game over or frame cap), not just a life."""
    episode_returns: np.ndarray
    """float64[N] raw score of the full game where game_over, else nan."""
    episode_frames: np.ndarray
    """int64[N] emulator frames of the full game where game_over, else 0."""


_VECSTEP_FIELDS = tuple(f.name for f in dataclasses.fields(VecStep))


def _layout(num_envs: int, size: int, blocks: int) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Dtype and shape of each shared array: VecStep's fields, the actions, and per block of
    envs the command to run, its status (0 ok, 1 failed) and how many of its envs have a
    spare game still to prepare."""
    frames = (np.dtype(np.uint8), (num_envs, size, size))
    return {
        "control": (np.dtype(np.int8), (blocks,)),
        "status": (np.dtype(np.int8), (blocks,)),
        "pending": (np.dtype(np.int32), (blocks,)),
        "actions": (np.dtype(np.int64), (num_envs,)),
        "frames": frames,
        "rewards": (np.dtype(np.float32), (num_envs,)),
        "raw_rewards": (np.dtype(np.float32), (num_envs,)),
        "terminated": (np.dtype(np.bool_), (num_envs,)),
        "truncated": (np.dtype(np.bool_), (num_envs,)),
        "first_frames": frames,
        "game_over": (np.dtype(np.bool_), (num_envs,)),
        "episode_returns": (np.dtype(np.float64), (num_envs,)),
        "episode_frames": (np.dtype(np.int64), (num_envs,)),
    }


def _nbytes(num_envs: int, blocks: int, size: int) -> int:
    return sum(
        -(-dt.itemsize * int(np.prod(shape)) // 8) * 8
        for dt, shape in _layout(num_envs, size, blocks).values()
    )


def _views(buffer: Any, num_envs: int, size: int, blocks: int) -> dict[str, np.ndarray]:
    """Numpy arrays over one flat buffer (local memory or shared), 8-byte aligned."""
    out, offset = {}, 0
    for name, (dtype, shape) in _layout(num_envs, size, blocks).items():
        count = int(np.prod(shape))
        out[name] = np.frombuffer(buffer, dtype, count, offset).reshape(shape)
        offset += -(-dtype.itemsize * count // 8) * 8
    return out


def _env_seed(seed: int, index: int) -> int:
    """Env `index`'s seed, a function of (seed, index) only: the same whatever N is."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class _EnvGroup:
    """Block k of envs, stepped in sequence, writing rows [lo, hi) of the output arrays.

    The single implementation of vectorised stepping, run in-process or in a worker. Each
    env has a spare emulator (AtariEnv's `spare_emulator`): at game over it swaps in a game
    started earlier, and the block records in `pending[k]` how many spares wait for their
    next game. Blocks start those games together (see VectorEnv.step), so that ALE's reset,
    the most expensive thing an env does, is not a stall that every other block waits out.
    """

    def __init__(
        self,
        game: str,
        seeds: list[int],
        overrides: dict[str, Any],
        arrays: dict,
        lo: int,
        k: int,
    ):
        self.envs = [make_env(game, seed=s, spare_emulator=True, **overrides) for s in seeds]
        per_block = ("control", "status", "pending")
        hi = lo + len(seeds)
        self.rows = {name: a[lo:hi] for name, a in arrays.items() if name not in per_block}
        self.pending = arrays["pending"][k : k + 1]

    def _count_pending(self) -> None:
        self.pending[0] = sum(env.spare_pending for env in self.envs)

    def reset(self) -> None:
        for j, env in enumerate(self.envs):
            self.rows["frames"][j] = env.reset()[0]
            env.prepare_next_game()
        self._count_pending()

    def step(self, prepare: bool = False) -> None:
        """Step every env; with `prepare`, then start one pending spare game."""
        rows = self.rows
        for j, env in enumerate(self.envs):
            frame, reward, terminated, truncated, info = env.step(rows["actions"][j])
            rows["frames"][j] = frame
            rows["rewards"][j] = reward
            rows["raw_rewards"][j] = info["raw_reward"]
            rows["terminated"][j] = terminated
            rows["truncated"][j] = truncated
            rows["game_over"][j] = info["game_over"]
            rows["episode_returns"][j] = info.get("episode_return", np.nan)
            rows["episode_frames"][j] = info.get("episode_frames", 0)
            if terminated or truncated:
                rows["first_frames"][j] = env.reset()[0]
        if prepare:
            for env in self.envs:
                if env.prepare_next_game():
                    break
        self._count_pending()

    def run(self, command: int) -> None:
        """One of the commands every block runs alike on its own arrays (_STEPPING)."""
        if command == _RESET:
            self.reset()
        else:
            self.step(prepare=command == _STEP_AND_PREPARE)

    def get_state(self) -> list[dict[str, Any]]:
        return [env.get_state() for env in self.envs]

    def set_state(self, states: list[dict[str, Any]]) -> None:
        for env, state in zip(self.envs, states, strict=True):
            env.set_state(state)
        self._count_pending()

    def close(self) -> None:
        for env in self.envs:
            env.close()


_STEP, _RESET, _CLOSE, _GET_STATE, _SET_STATE, _STEP_AND_PREPARE = 1, 2, 3, 4, 5, 6
_STEPPING = (_STEP, _STEP_AND_PREPARE, _RESET)


def _worker(
    k: int,
    conn: Any,
    go: Any,
    done: Any,
    game: str,
    seeds: list[int],
    overrides: dict,
    shared: Any,
    num_envs: int,
    blocks: int,
    lo: int,
) -> None:
    """Worker k: wait on `go`, run the command in the shared `control[k]`, post `done`.

    Semaphores, not pipe messages, carry the wake-ups: Linux wakes a pipe reader on the
    writer's core ("sync" wake-up), which in a ping-pong keeps worker and parent on one core.
    Errors set `status[k]` and send the traceback down `conn`.
    """
    cv2.setNumThreads(1)  # one core per worker; OpenCV's pool would only compete
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it closes us)
    try:
        size = env_config(game, **overrides).screen_size
        arrays = _views(shared, num_envs, size, blocks)
        group = _EnvGroup(game, seeds, overrides, arrays, lo, k)
        conn.send(group.envs[0].action_meanings)
    except BaseException:
        conn.send(traceback.format_exc())
        return
    parent = os.getppid()
    commands = {
        **{c: functools.partial(group.run, c) for c in _STEPPING},
        # States travel down the pipe; the parent reads (or writes) them before it waits.
        _GET_STATE: lambda: conn.send(group.get_state()),
        _SET_STATE: lambda: group.set_state(conn.recv()),
    }
    while True:
        if not _spin_acquire(go, _WORKER_SPIN_S) and not go.acquire(timeout=2.0):
            if os.getppid() != parent:  # orphaned: the parent died without closing us
                break
            continue
        command = int(arrays["control"][k])
        if command == _CLOSE:
            break
        try:
            commands[command]()
            arrays["status"][k] = 0
        except BaseException:
            arrays["status"][k] = 1
            conn.send(traceback.format_exc())
        done.release()
    group.close()


# Waking a sleeping process costs tens of microseconds, a tenth of an env step: both sides
# poll briefly before they sleep. The worker polls less, so it yields its core to torch
# soon after the last step when the learner runs.
_PARENT_SPIN_S, _WORKER_SPIN_S = 2e-3, 2e-4


def _spin_acquire(sem: Any, seconds: float) -> bool:
    """Try `sem` without sleeping for up to `seconds`; whether it was acquired."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if sem.acquire(False):
            return True
    return False


def _shutdown(procs: list, gos: list, control: np.ndarray) -> None:
    control[:] = _CLOSE
    for go in gos:
        go.release()
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join()


class VectorEnv:
    """N preprocessed games stepped together; ended episodes reset automatically.

    The N envs are split into `workers` contiguous blocks (default: one per core, at most N).
    This process steps the first block itself while worker processes step the others, so
    N=1 runs entirely in-process (the paper's single stream) and no core sits idle waiting.
    Every array lives in shared memory; only semaphore posts cross between processes. Env i
    is `make_env(game, seed=s_i, spare_emulator=True)` with s_i from (seed, i) only, so env 0
    gives the same stream whatever N and `workers` are; the spares start each env's next
    game ahead of its game over, at steps chosen so that no block stalls the others (see
    `step`). As with any multiprocessing code, a script that makes one with N > 1 needs the
    `if __name__ == "__main__":` guard.
    """

    def __init__(
        self, game: str, num_envs: int, *, seed: int, workers: int | None = None, **overrides: Any
    ):
        if num_envs <= 0:
            raise ConfigError(f"num_envs must be positive, got {num_envs}")
        if workers is not None and workers <= 0:
            raise ConfigError(f"workers must be positive, got {workers}")
        cfg = env_config(game, **overrides)
        self.num_envs = num_envs
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        blocks = min(num_envs, workers or cores or 1)
        bounds = [int(b) for b in np.linspace(0, num_envs, blocks + 1).round()]
        seeds = [_env_seed(seed, i) for i in range(num_envs)]
        nbytes = _nbytes(num_envs, blocks, cfg.screen_size)
        self._procs: list = []
        self._conns: list = []
        self._gos: list = []
        self._dones: list = []
        self._closed = False
        if blocks == 1:
            self._arrays = _views(bytearray(nbytes), num_envs, cfg.screen_size, blocks)
        else:
            # fork is unsafe once torch, OpenCV or a prefetch thread runs; the forkserver
            # imports this module once, and each worker is forked from it.
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["__main__", __name__])
            shared = ctx.RawArray("b", nbytes)
            self._arrays = _views(shared, num_envs, cfg.screen_size, blocks)
            for k in range(1, blocks):
                lo, hi = bounds[k], bounds[k + 1]
                parent, child = ctx.Pipe()
                go, done = ctx.Semaphore(0), ctx.Semaphore(0)
                proc = ctx.Process(
                    target=_worker,
                    args=(
                        k,
                        child,
                        go,
                        done,
                        game,
                        seeds[lo:hi],
                        overrides,
                        shared,
                        num_envs,
                        blocks,
                        lo,
                    ),
                    name=f"atari-env-{lo}-{hi - 1}",
                    daemon=True,
                )
                proc.start()
                child.close()
                self._procs.append(proc)
                self._conns.append(parent)
                self._gos.append(go)
                self._dones.append(done)
            self._finalizer = weakref.finalize(
                self, _shutdown, self._procs, self._gos, self._arrays["control"]
            )
        self._local = _EnvGroup(game, seeds[: bounds[1]], overrides, self._arrays, 0, 0)
        self.action_meanings: list[str] = self._local.envs[0].action_meanings
        self.n_actions = len(self.action_meanings)
        for i in range(len(self._procs)):
            reply = self._reply(i, self._conns[i].recv)
            if isinstance(reply, str):
                self.close()
                raise RuntimeError(f"env worker {self._procs[i].name} failed to start:\n{reply}")

    def _reply(self, i: int, wait: Any) -> Any:
        """Run `wait` for worker i, turning a dead worker into a clear error."""
        try:
            return wait()
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass
        self._raise_dead(i)

    def _raise_dead(self, i: int) -> None:
        proc = self._procs[i]
        proc.join(timeout=1)
        self.close()
        raise RuntimeError(
            f"env worker {proc.name} died (exit code {proc.exitcode}); the VectorEnv is closed"
        )

    def _command(self, command: int) -> None:
        """Run `command` in every block: the workers' in parallel with this process's own."""
        self._start(command)
        try:
            self._local.run(command)
        finally:  # even if ours failed or was interrupted, so no worker is left mid-command
            self._collect()

    def _start(self, command: int) -> None:
        """Post `command` to every worker."""
        if self._closed:
            raise RuntimeError("this VectorEnv is closed")
        self._arrays["control"][:] = command
        for go in self._gos:
            go.release()

    def _collect(self) -> None:
        """Wait until every worker has finished its command; raise the first worker error."""
        for i, done in enumerate(self._dones):
            if _spin_acquire(done, _PARENT_SPIN_S):
                continue
            while not done.acquire(timeout=1.0):
                if not self._procs[i].is_alive():
                    self._raise_dead(i)
        for i in np.flatnonzero(self._arrays["status"][1:]):
            error = self._reply(i, self._conns[i].recv)
            raise RuntimeError(f"env worker {self._procs[i].name} raised:\n{error}")

    def get_state(self) -> list[dict[str, Any]]:
        """Every env's state (AtariEnv.get_state), in env order: a checkpoint resumes exactly."""
        self._start(_GET_STATE)
        try:
            states = self._local.get_state()
            for i, conn in enumerate(self._conns):
                reply = self._reply(i, conn.recv)
                if isinstance(reply, str):  # a worker's traceback
                    raise RuntimeError(f"env worker {self._procs[i].name} raised:\n{reply}")
                states += reply
        finally:
            self._collect()
        return states

    def set_state(self, states: list[dict[str, Any]]) -> None:
        """Restore what `get_state` returned, from a VectorEnv of the same game and size."""
        if len(states) != self.num_envs:
            raise ConfigError(
                f"saved env state is for {len(states)} envs, not {self.num_envs}: "
                "resume with the run's own loop.num_envs"
            )
        self._start(_SET_STATE)
        try:
            local = len(self._local.envs)
            self._local.set_state(states[:local])
            for conn, proc in zip(self._conns, self._procs, strict=True):
                lo, hi = (int(x) for x in proc.name.removeprefix("atari-env-").split("-"))
                conn.send(states[lo : hi + 1])
        finally:
            self._collect()

    def reset(self) -> np.ndarray:
        """First frames of all envs, uint8[N, S, S]: the start of each env's first game."""
        self._command(_RESET)
        return self._arrays["frames"].copy()

    def step(self, actions: np.ndarray) -> VecStep:
        """Act in every env (actions: int[N] indices into the action set); auto-resets."""
        actions = np.asarray(actions)
        if not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        if actions.min() < 0 or actions.max() >= self.n_actions:
            raise ValueError(f"actions must be in [0, {self.n_actions}), got {actions}")
        self._arrays["actions"][:] = actions
        # Start spare games only when every block has one to start: all then pay a reset's
        # cost in the same step instead of each stalling the others in turn. A spare that
        # is needed before then is started at its game over, as without spares.
        prepare = self._arrays["pending"].min() > 0
        self._command(_STEP_AND_PREPARE if prepare else _STEP)
        return VecStep(**{name: self._arrays[name].copy() for name in _VECSTEP_FIELDS})

    def close(self) -> None:
        """Stop the workers and close the envs (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._procs:
            self._finalizer()
            for conn in self._conns:
                conn.close()
        if hasattr(self, "_local"):
            self._local.close()

    def __enter__(self) -> VectorEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
