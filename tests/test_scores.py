"""Tests for atari_dqn.scores: the published score tables and the human-normalised score."""

from __future__ import annotations

import dataclasses

import pytest

from atari_dqn import scores
from atari_dqn.errors import UnknownGameError
from atari_dqn.games import game_name, gymnasium_id
from atari_dqn.scores import (
    ATARI57_GAMES,
    GAME_LISTS,
    NATURE_GAMES,
    NIPS_GAMES,
    PaperScores,
    human_normalized,
    lookup,
    paper_scores,
)

# (game, random, human, nature_dqn, nips_dqn, nips_dqn_best), read from the sources named in
# the module docstring: Nature Extended Data Table 2 and NIPS 2013 Table 1.
SPOT_CHECKS = [
    ("Breakout", 1.7, 31.8, 401.2, 168.0, 225.0),
    ("Pong", -20.7, 9.3, 18.9, 20.0, 21.0),
    ("SpaceInvaders", 148.0, 1652.3, 1976.0, 581.0, 1075.0),
    ("Enduro", 0.0, 309.6, 301.8, 470.0, 661.0),
    ("BeamRider", 363.9, 5774.7, 6846.0, 4092.0, 5184.0),
    ("Seaquest", 68.4, 20181.8, 5286.0, 1705.0, 1740.0),
    ("Qbert", 163.9, 13455.0, 10596.0, 1952.0, 4500.0),
    ("MontezumaRevenge", 0.0, 4366.7, 0.0, None, None),
    ("Atlantis", 12850.0, 29028.1, 85641.0, None, None),
    ("Asteroids", 719.1, 13156.7, 1629.0, None, None),
    ("VideoPinball", 16256.9, 17297.6, 42684.0, None, None),
    ("DoubleDunk", -18.6, -15.5, -18.1, None, None),
]


@pytest.mark.parametrize(("game", "random", "human", "nature", "nips", "nips_best"), SPOT_CHECKS)
def test_spot_checks_match_the_papers(game, random, human, nature, nips, nips_best):
    assert paper_scores(game) == PaperScores(random, human, nature, nips, nips_best)


def test_nature_table_has_exactly_49_games():
    games = list(NATURE_GAMES)
    assert len(games) == 49
    assert len(set(games)) == 49
    assert games == sorted(games)
    assert all(paper_scores(g).nature_dqn is not None for g in games)


def test_game_lists_by_name_are_the_paper_tables():
    assert GAME_LISTS["nature49"] == NATURE_GAMES and len(GAME_LISTS["nips7"]) == 7
    assert GAME_LISTS["atari57"] == ATARI57_GAMES


def test_nips_table_has_its_seven_games():
    assert set(NIPS_GAMES) == {
        "BeamRider",
        "Breakout",
        "Enduro",
        "Pong",
        "Qbert",
        "Seaquest",
        "SpaceInvaders",
    }
    assert set(NIPS_GAMES) <= set(NATURE_GAMES)
    for game in NIPS_GAMES:
        row = paper_scores(game)
        assert row.nips_dqn is not None and row.nips_dqn_best is not None
        assert row.nips_dqn <= row.nips_dqn_best


def test_games_outside_nips_have_no_nips_scores():
    for game in set(ATARI57_GAMES) - set(NIPS_GAMES):
        row = paper_scores(game)
        assert row.nips_dqn is None and row.nips_dqn_best is None


def test_atari57_extras_have_baselines_but_no_nature_dqn():
    extras = set(ATARI57_GAMES) - set(NATURE_GAMES)
    assert len(ATARI57_GAMES) == 57
    assert extras == {
        "Berzerk",
        "Defender",
        "Phoenix",
        "Pitfall",
        "Skiing",
        "Solaris",
        "Surround",
        "YarsRevenge",
    }
    for game in extras:
        assert paper_scores(game).nature_dqn is None
    assert paper_scores("Pitfall") == PaperScores(-229.4, 6463.7, None, None)


def test_human_beats_random_in_every_game():
    # Otherwise the normalisation would flip sign.
    for game in ATARI57_GAMES:
        row = paper_scores(game)
        assert row.human > row.random, game


@pytest.mark.parametrize("game", ATARI57_GAMES)
def test_human_normalized_maps_random_to_0_and_human_to_100(game):
    row = paper_scores(game)
    assert human_normalized(game, row.random) == pytest.approx(0.0, abs=1e-9)
    assert human_normalized(game, row.human) == pytest.approx(100.0)
    midpoint = (row.random + row.human) / 2
    assert human_normalized(game, midpoint) == pytest.approx(50.0)


def test_human_normalized_formula_on_breakout_and_montezuma():
    assert human_normalized("Breakout", 401.2) == pytest.approx(100 * (401.2 - 1.7) / 30.1)
    assert human_normalized("Breakout", 401.2) > 1000  # the paper's headline superhuman game
    assert human_normalized("MontezumaRevenge", 0.0) == 0.0
    assert human_normalized("Pong", -21.0) < 0  # worse than random is negative


def test_human_normalized_uses_nature_human_not_dqn_zoo():
    # DQN Zoo's human Pong score is 14.6; the Nature table's is 9.3 and is the one we use.
    assert human_normalized("Pong", 9.3) == pytest.approx(100.0)
    assert human_normalized("Pong", 14.6) > 100.0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Breakout", "Breakout"),
        ("breakout", "Breakout"),
        ("BREAKOUT", "Breakout"),
        ("ALE/Breakout-v5", "Breakout"),
        ("BreakoutNoFrameskip-v4", "Breakout"),
        ("space_invaders", "SpaceInvaders"),
        ("SpaceInvaders", "SpaceInvaders"),
        ("Space Invaders", "SpaceInvaders"),
        ("ALE/SpaceInvaders-v5", "SpaceInvaders"),
        ("montezuma_revenge", "MontezumaRevenge"),
        ("ALE/MontezumaRevenge-v5", "MontezumaRevenge"),
        ("up_n_down", "UpNDown"),
        ("kung_fu_master", "KungFuMaster"),
        (" pong ", "Pong"),
    ],
)
def test_name_resolution_accepts_common_spellings(name, expected):
    assert game_name(name) == expected
    assert paper_scores(name) == paper_scores(expected)


def test_gymnasium_id_round_trips():
    for game in ATARI57_GAMES:
        assert gymnasium_id(game) == f"ALE/{game}-v5"
        assert game_name(gymnasium_id(game)) == game
    assert gymnasium_id("space_invaders") == "ALE/SpaceInvaders-v5"


def test_every_table_game_is_an_ale_rom():
    roms = pytest.importorskip("ale_py.roms")
    rom_games = {game_name(r) for r in roms.get_all_rom_ids() if _known(r)}
    assert set(ATARI57_GAMES) <= rom_games


def _known(rom_id: str) -> bool:
    try:
        game_name(rom_id)
    except UnknownGameError:
        return False
    return True


def test_unknown_game_raises_unknown_game_error_with_suggestion():
    with pytest.raises(UnknownGameError) as info:
        paper_scores("Breakot")
    message = str(info.value)
    assert message.startswith("unknown game 'Breakot'")
    assert "did you mean 'Breakout'?" in message


def test_a_game_outside_the_tables_has_no_scores_and_says_so():
    assert lookup("Tetris") is None  # an ALE ROM, but in no paper table
    with pytest.raises(UnknownGameError, match="no published scores for 'Tetris'"):
        human_normalized("Tetris", 0.0)


def test_paper_scores_are_frozen():
    row = paper_scores("Pong")
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.human = 14.6  # type: ignore[misc]
    assert scores.paper_scores("Pong").human == 9.3
