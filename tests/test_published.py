"""The vendored Atari 100k results load as their source files have them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from atari_dqn import published
from atari_dqn.errors import ConfigError, UnknownGameError
from atari_dqn.games import game_name


def _file(name: str) -> dict:
    return json.loads((published.DATA / name).read_text())


def test_the_benchmark_has_26_games_in_the_projects_spelling():
    assert len(published.GAMES) == 26
    assert all(game_name(game) == game for game in published.GAMES)
    for name in ("DrQ(eps).json", "SPR.json", "DER_paper.json", "random_human.json"):
        assert sorted(_file(name)) == list(published.GAMES), name


@pytest.mark.parametrize("algorithm", ["DrQ(eps)", "SPR"])
def test_each_game_has_100_published_runs(algorithm):
    for game in published.GAMES:
        scores = published.runs(algorithm, game)
        assert scores.shape == (100,) and np.isfinite(scores).all(), game


def test_values_are_those_of_the_source_files():
    # Read off the files (published_data/README.md says where each comes from).
    assert published.runs("DrQ(eps)", "Pong")[0] == -20.29
    assert published.runs("DrQ(eps)", "Breakout")[-1] == 15.49
    assert published.runs("SPR", "Boxing")[99] == 20.62
    assert published.der_score("Alien") == 739.9
    assert published.der_score("Pong") == -19.3
    assert (published.random_score("Pong"), published.human_score("Pong")) == (-20.7, 14.6)
    assert published.random_score("Freeway") == 0.0


def test_human_normalised_is_0_at_random_and_100_at_human_for_scalars_and_arrays():
    for game in published.GAMES:
        low, high = published.random_score(game), published.human_score(game)
        assert published.human_normalized(game, low) == pytest.approx(0.0)
        assert published.human_normalized(game, high) == pytest.approx(100.0)
    both = published.human_normalized("Pong", np.array([-20.7, 14.6]))
    np.testing.assert_allclose(both, [0.0, 100.0])
    assert isinstance(published.human_normalized("Pong", 0.0), float)


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.0, 0.0), (5.0, 100.0), (2.0, 37.5), (2.5, 50.0), (4.0, 87.5)],
)
def test_percentile_is_the_share_of_runs_beaten_with_ties_counting_half(score, expected):
    assert published.percentile(score, np.array([4.0, 1.0, 3.0, 2.0])) == expected


def test_percentile_edge_cases():
    assert published.percentile(7.0, np.array([7.0, 7.0, 7.0])) == 50.0  # ties with all
    assert published.percentile(-1.0, np.array([-1.0])) == 50.0
    with pytest.raises(ValueError, match="no published runs"):
        published.percentile(1.0, np.array([]))


def test_a_game_or_algorithm_without_published_results_is_a_clear_error():
    with pytest.raises(UnknownGameError, match="26 games"):
        published.runs("DrQ(eps)", "Tetris")
    with pytest.raises(UnknownGameError):
        published.der_score("SpaceInvaders")
    with pytest.raises(ConfigError, match="DrQ\\(eps\\), SPR"):
        published.runs("DER", "Pong")
