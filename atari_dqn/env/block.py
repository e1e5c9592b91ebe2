"""A block of envs stepped in sequence into shared arrays, each keeping a spare game ready.

The single implementation of vectorised stepping: `VectorEnv` runs one block in its own
process and the others in worker processes, all writing rows of the same arrays.

Spare games. Starting a new game (ALE's reset, then the no-ops and FIRE: 5.7 ms in
Breakout, as long as 17 agent steps) is the most expensive thing an env does, and in lock
step every other block would wait it out. So each env here plays its games on two
emulators in turn (`SpareGames`): while one plays, the other's next game can be started
whenever the vector env chooses, and a game over is then only a swap. Each game still
starts with a real ALE reset and its own random no-ops; only the emulator instance
differs from one game to the next, and when a spare game is started never changes the
frames.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from atari_dqn.config import EnvConfig
from atari_dqn.env.atari import AtariEnv, Emulator, Games
from atari_dqn.env.step import step_row


def env_seed(seed: int, index: int) -> int:
    """Env `index`'s seed, a function of (seed, index) only: the same whatever N is."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def spare_seed(seed: int | None) -> int | None:
    """The spare emulator's seed: a function of the env's seed, unrelated to it."""
    return None if seed is None else int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])


class GameStart(NamedTuple):
    """Where a game began: the emulator state (with its RNG), enough to play the game again
    from its actions, and the screen then, which restoring a state does not bring back (the
    ALE's screen keeps whatever its emulator drew last)."""

    state: bytes
    screen: np.ndarray  # (210, 160, 3) RGB


class SpareGames(Games):
    """Games on two emulators in turn; the next one can be started ahead (`prepare`)."""

    def __init__(self, cfg: EnvConfig, seed: int | None) -> None:
        super().__init__(cfg, seed)
        self.spare = Emulator(cfg, spare_seed(seed))
        """The emulator that plays the next game."""
        self._spare_noops: int | None = None  # None: the spare's next game is not started

    @property
    def pending(self) -> bool:
        """The spare emulator's next game is not started yet."""
        return self._spare_noops is None

    def prepare(self) -> bool:
        """Start the spare emulator's next game now, so the next game over costs no reset.

        Returns whether there was anything to do. The frames are the same whenever (or
        whether) this is called: it only moves the work."""
        if not self.pending:
            return False
        self._spare_noops = self.spare.new_game()
        return True

    def new_game(self, seed: int | None) -> int:
        if seed is not None:  # a reseed restarts the spare's games too
            self.spare.reseed(spare_seed(seed))
            self._spare_noops = None
        if seed is not None or not self.current.seeded:
            return self.current.new_game(seed)  # a reseed, or the very first game
        self.prepare()
        noops = self._spare_noops
        self.current, self.spare, self._spare_noops = self.spare, self.current, None
        return noops

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "spare": self.spare.get_state(), "noops": self._spare_noops}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.spare.set_state(state["spare"])
        self._spare_noops = state["noops"]

    def close(self) -> None:
        super().close()
        self.spare.close()


class EnvBlock:
    """Envs [lo, hi) of a vector env, stepped in sequence, writing their rows of `arrays`.

    `arrays` are the shared arrays of `atari_dqn.env.workers.Layout`; the block writes the
    per-env rows of its envs and, in `pending[k]`, how many of its envs have a spare game
    still to start.
    """

    def __init__(
        self,
        cfg: EnvConfig,
        seed: int,
        lo: int,
        hi: int,
        k: int,
        arrays: dict,
        record_starts: bool = False,
    ):
        self.envs = [AtariEnv(cfg, env_seed(seed, i), games=SpareGames) for i in range(lo, hi)]
        # With `record_starts`, where each game starts (`GameStart`), per env: enough to
        # play a game again from its actions and film it (atari_dqn.video).
        self.starts: list[list[GameStart]] | None = (
            [[] for _ in self.envs] if record_starts else None
        )
        per_block = ("control", "status", "pending")
        self.rows = {name: a[lo:hi] for name, a in arrays.items() if name not in per_block}
        self.pending = arrays["pending"][k : k + 1]

    def _count_pending(self) -> None:
        self.pending[0] = sum(env.games.pending for env in self.envs)

    def _started_game(self, j: int) -> None:
        if self.starts is not None:
            ale = self.envs[j].ale
            state = ale.cloneState(include_rng=True).serialize()
            self.starts[j].append(GameStart(state, ale.getScreenRGB()))

    def reset(self) -> None:
        for j, env in enumerate(self.envs):
            self.rows["frames"][j] = env.reset()[0]
            self._started_game(j)
            env.games.prepare()
        self._count_pending()

    def step(self, prepare: bool = False) -> None:
        """Step every env; with `prepare`, then start one pending spare game."""
        rows = self.rows
        for j, env in enumerate(self.envs):
            frame, reward, terminated, truncated, info = env.step(rows["actions"][j])
            for name, value in step_row(frame, reward, terminated, truncated, info).items():
                rows[name][j] = value
            if terminated or truncated:
                rows["first_frames"][j] = env.reset()[0]
                if info["game_over"]:
                    self._started_game(j)
        if prepare:
            for env in self.envs:
                if env.games.prepare():
                    break
        self._count_pending()

    def get_state(self) -> list[dict[str, Any]]:
        return [env.get_state() for env in self.envs]

    def set_state(self, states: list[dict[str, Any]]) -> None:
        for env, state in zip(self.envs, states, strict=True):
            env.set_state(state)
        self._count_pending()

    def close(self) -> None:
        for env in self.envs:
            env.close()
