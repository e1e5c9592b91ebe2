"""Game names in any spelling resolve to one ROM, and a misspelt one suggests the closest."""

from __future__ import annotations

import re

import gymnasium
import pytest

from atari_dqn.env.atari import make_env
from atari_dqn.errors import ConfigError, UnknownGameError
from atari_dqn.games import game_name, gymnasium_id
from atari_dqn.shell import atari_dqn_command


@pytest.mark.parametrize(
    "name",
    ["Breakout", "breakout", "ALE/Breakout-v5", "BreakoutNoFrameskip-v4", " BREAKOUT "],
)
def test_game_names_resolve_to_the_v5_id(name: str) -> None:
    assert gymnasium_id(name) == "ALE/Breakout-v5"
    assert game_name(name) == "Breakout"


def test_snake_case_and_camel_case_names_agree() -> None:
    assert gymnasium_id("space_invaders") == gymnasium_id("SpaceInvaders")
    assert game_name("space_invaders") == "SpaceInvaders"
    assert game_name("montezuma_revenge") == "MontezumaRevenge"


def test_unknown_game_error_suggests_close_names_and_the_games_command() -> None:
    # The count of games it names, as gymnasium registers them (`games` lists the same;
    # tests/test_cli.py checks that list, which loads every ROM).
    count = sum(1 for env_id in gymnasium.registry if re.fullmatch(r"ALE/\w+-v5", env_id))
    with pytest.raises(UnknownGameError) as err:
        gymnasium_id("Breakot")
    assert str(err.value) == (
        f"unknown game 'Breakot'; did you mean 'Breakout'? "
        f"({atari_dqn_command('games')} lists all {count})"
    )
    assert isinstance(err.value, ConfigError)
    with pytest.raises(UnknownGameError, match=r"did you mean '\w+', '\w+' or '\w+'\?"):
        gymnasium_id("Pon")
    with pytest.raises(UnknownGameError, match=r"^unknown game 'zzzzzz' \("):
        make_env("zzzzzz")
