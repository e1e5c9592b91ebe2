"""Game names in any spelling users type, resolved against the ROMs ale-py ships.

The one resolver: the config, the env, the score tables and the command line all call
`game_name`, so `breakout`, `ALE/Breakout-v5` and `BreakoutNoFrameskip-v4` mean the same
game everywhere, and a misspelt name fails the same way everywhere.
"""

from __future__ import annotations

import difflib
import functools
import re

import ale_py
import gymnasium

from atari_dqn.errors import UnknownGameError
from atari_dqn.shell import atari_dqn_command

_ID_SUFFIX = re.compile(r"(NoFrameskip|Deterministic)?-v\d+$")


def fold(name: str) -> str:
    """The lookup key: 'ALE/SpaceInvaders-v5', 'space_invaders', 'Space Invaders' and
    'SpaceInvadersNoFrameskip-v4' all give 'spaceinvaders'."""
    name = name.strip().rsplit("/", 1)[-1]  # drop a namespace such as 'ALE/'
    name = _ID_SUFFIX.sub("", name)  # drop '-v5', 'NoFrameskip-v4', ...
    return re.sub(r"[^a-z0-9]", "", name.lower())


@functools.lru_cache(maxsize=1)
def _games() -> dict[str, str]:
    """{key: CamelCase name} for every single-player game ale-py registers as `ALE/<Name>-v5`.

    Every emulator is made from a name resolved here, so this first call is where ale-py's
    envs are registered with gymnasium and ALE's banner (logged at Info level by every new
    emulator) is quieted, keeping its warnings: not at import, which has no side effects."""
    gymnasium.register_envs(ale_py)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Warning)
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

    Also accepts ROM ids (`space_invaders`) and the v4 ids (`BreakoutNoFrameskip-v4`).
    Raises UnknownGameError with up to three close matches when nothing fits.
    """
    game = _games().get(fold(name))
    if game is None:
        raise UnknownGameError(
            f"unknown game '{name}'{_suggest(name)} "
            f"({atari_dqn_command('games')} lists all {len(_games())})"
        )
    return game


def gymnasium_id(name: str) -> str:
    """The gymnasium id of a game: `space_invaders` -> `ALE/SpaceInvaders-v5`."""
    return f"ALE/{game_name(name)}-v5"


@functools.lru_cache(maxsize=1)
def list_games() -> list[tuple[str, int]]:
    """(CamelCase name, size of its minimal action set) for every game, sorted by name.

    Loads each ROM once (about 9 s in all on a 2-core Xeon), so the answer is cached.
    """
    names = sorted(_games().values())  # first: it quiets the banner of the emulator below
    ale = ale_py.ALEInterface()
    out = []
    for name in names:
        rom = gymnasium.spec(gymnasium_id(name)).kwargs["game"]
        ale.loadROM(ale_py.roms.get_rom_path(rom))
        out.append((name, len(ale.getMinimalActionSet())))
    return out
