"""The Atari 100k benchmark's published results: per-run scores, DER's means, random and human.

Read from the files in `published_data/` (its README says where each comes from), so a run
of the benchmark can be set beside the published runs with no network. Game names are
ale-py's (`games.game_name`), which are also rliable's for these 26 games.

The human-normalised score here uses the benchmark's random and human scores (rliable's,
Dopamine's), which differ from the Nature table's in `scores.py` for some games: an Atari
100k score is normalised as the published runs it is compared with are.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from atari_dqn.errors import ConfigError, UnknownGameError

DATA = Path(__file__).resolve().parent / "published_data"
RUN_FILES = {"DrQ(eps)": "DrQ(eps).json", "SPR": "SPR.json"}
"""The algorithms whose every run is published (rliable), and their files."""


@functools.cache
def _read(name: str) -> Any:
    return json.loads((DATA / name).read_text())


GAMES: tuple[str, ...] = tuple(sorted(_read("random_human.json")))
"""The 26 games of the Atari 100k benchmark (Kaiser et al. 2020), sorted."""


def _game(game: str) -> str:
    if game not in GAMES:
        raise UnknownGameError(
            f"no published Atari 100k results for '{game}': the benchmark has 26 games "
            f"(atari_dqn.published.GAMES)"
        )
    return game


def runs(algorithm: str, game: str) -> np.ndarray:
    """The published final scores of every run of `algorithm` (a key of `RUN_FILES`) on
    `game`, in the file's order."""
    if algorithm not in RUN_FILES:
        raise ConfigError(f"no published runs of '{algorithm}': there are {', '.join(RUN_FILES)}")
    return np.array(_read(RUN_FILES[algorithm])[_game(game)], dtype=np.float64)


def der_score(game: str) -> float:
    """DER's published mean score on `game` (van Hasselt et al. 2019): a mean over its runs,
    whose runs are not published."""
    return float(_read("DER_paper.json")[_game(game)])


def random_score(game: str) -> float:
    """The uniform-random agent's score on `game`, as the benchmark normalises by it."""
    return float(_read("random_human.json")[_game(game)]["random"])


def human_score(game: str) -> float:
    """The human tester's score on `game`, as the benchmark normalises by it."""
    return float(_read("random_human.json")[_game(game)]["human"])


def human_normalized(game: str, score: float | np.ndarray) -> float | np.ndarray:
    """Human-normalised score in percent, 100 * (score - random) / (human - random), by the
    benchmark's random and human scores; element-wise for an array of scores."""
    low = random_score(game)
    normalized = 100.0 * (np.asarray(score, dtype=np.float64) - low) / (human_score(game) - low)
    return float(normalized) if normalized.ndim == 0 else normalized


def percentile(score: float, published: np.ndarray) -> float:
    """Where `score` falls among `published` runs, in percent: the share of them it beats,
    a tie counting half (so a score equal to every run is at 50, not 0 or 100)."""
    published = np.asarray(published, dtype=np.float64)
    if published.size == 0:
        raise ValueError("no published runs to place a score among")
    beaten = np.count_nonzero(published < score) + 0.5 * np.count_nonzero(published == score)
    return float(100.0 * beaten / published.size)
