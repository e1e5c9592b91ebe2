"""Random, human and published DQN scores for Atari, and the human-normalised score.

One table, ``_TABLE``, keyed by the CamelCase game name of the gymnasium / ale-py v5 ids
(``ALE/Breakout-v5`` -> ``"Breakout"``; ale-py's ROM id ``montezuma_revenge`` ->
``"MontezumaRevenge"``). Every figure is copied from a source named below; none is computed.

Sources
-------
Nature 2015 (the 49 games with ``nature_dqn`` set)
    Mnih et al., "Human-level control through deep reinforcement learning", Nature (2015),
    doi:10.1038/nature14236, Extended Data Table 2, columns "Random Play", "Human" and
    "DQN". The DQN column is the mean score of the trained agent in the paper's evaluation
    (epsilon-greedy, epsilon = 0.05, episodes start with up to 30 no-op actions); the table
    prints it with a standard deviation, and we keep the mean. Transcribed from seungjaeryanlee/rldb
    (``rldb/db/paper__dqn/algo__{random,human,dqn}/entries.py``) and cross-checked, all 49
    games, against:
      * pfnet/pfrl ``examples/atari/reproduction/dqn/README.md``, "Original Reported Scores",
        which cites Extended Data Table 2 (DQN column: identical for all 49 games);
      * Kaixhin/Atari ``Evaluator.lua`` (random and human: identical for all 49 games);
      * van Hasselt et al. 2015, "Deep Reinforcement Learning with Double Q-learning"
        (arXiv:1509.06461), no-op raw-score table, read from a public transcription: random
        and human identical for all 49 games; its DQN column has two decimals (e.g. Boxing
        71.83 vs 71.8) and agrees after rounding except Atlantis, 85950.00 there vs 85641 in
        the Nature table. We keep 85641 (the Nature table, as two sources transcribe it).
    The paper's own human-normalised percentages (its last column) are
    100 * (DQN - random) / (human - random) with these random and human columns, so
    ``human_normalized`` uses them for these games: that is what makes our numbers comparable
    with the paper's.

NIPS 2013 (``nips_dqn`` and ``nips_dqn_best``, 7 games)
    Mnih et al., "Playing Atari with Deep Reinforcement Learning", NIPS Deep Learning
    Workshop 2013 (arXiv:1312.5602), Table 1: row "DQN" (average total reward of the
    epsilon = 0.05 policy) and row "DQN Best" (best single episode). Transcribed from
    seungjaeryanlee/rldb ``rldb/db/paper__dqn2013``; the "DQN" row cross-checked against a
    public lecture-slide transcription of Table 1 and the "DQN Best" row against Papers with
    Code's entry for the paper. That table has its own "Random" and "Human" rows (e.g.
    Breakout 1.2 and 31, Pong -20.4 and -3), which differ from the Nature ones; we do not
    store them: ``random`` / ``human`` are always the Nature (or DQN Zoo) figures.

Atari-57 extras (8 games with ``nature_dqn`` None)
    Berzerk, Defender, Phoenix, Pitfall, Skiing, Solaris, Surround and YarsRevenge were not
    in the Nature paper. Their random and human come from google-deepmind/dqn_zoo
    ``dqn_zoo/atari_data.py`` (the Atari-57 set used by later DeepMind papers).

DQN Zoo versus the Nature table
    DQN Zoo's random scores equal the Nature ones for all 49 Nature games. Its human scores
    differ for 34 of the 49, sometimes a lot: Pong 14.6 (Nature 9.3), Breakout 30.5 (31.8),
    Asteroids 47388.7 (13156.7), Enduro 860.5 (309.6), MsPacman 6951.6 (15693.4). The 15
    that agree: Asterix, Atlantis, Freeway, Frostbite, IceHockey, Kangaroo, PrivateEye,
    Qbert, RoadRunner, Robotank, StarGunner, Tutankham, Venture, WizardOfWor, Zaxxon. We use
    the Nature human scores for the 49 Nature games because this project reproduces the
    Nature paper and its human-normalised figures; a score normalised here is therefore not
    comparable with one normalised by DQN Zoo / rliable for those 34 games.
"""

from __future__ import annotations

from dataclasses import dataclass

from atari_dqn.errors import UnknownGameError
from atari_dqn.games import game_name
from atari_dqn.published import GAMES as ATARI100K_GAMES


@dataclass(frozen=True)
class PaperScores:
    """Published scores for one game (undiscounted episode returns, game points)."""

    random: float
    """Uniform-random agent: Nature Extended Data Table 2 "Random Play" (DQN Zoo for extras)."""
    human: float
    """Professional human tester: Nature Extended Data Table 2 "Human" (DQN Zoo for extras)."""
    nature_dqn: float | None
    """Nature 2015 DQN mean evaluation score; None for games outside the paper's 49."""
    nips_dqn: float | None
    """NIPS 2013 Table 1 "DQN" row (average reward); None outside its 7 games."""
    nips_dqn_best: float | None = None
    """NIPS 2013 Table 1 "DQN Best" row (best single episode); None outside its 7 games."""


# Columns: random, human, nature_dqn, nips_dqn[, nips_dqn_best]. Sources: module docstring.
_TABLE: dict[str, PaperScores] = {
    "Alien": PaperScores(227.8, 6875.4, 3069.0, None),
    "Amidar": PaperScores(5.8, 1675.8, 739.5, None),
    "Assault": PaperScores(222.4, 1496.4, 3359.0, None),
    "Asterix": PaperScores(210.0, 8503.3, 6012.0, None),
    "Asteroids": PaperScores(719.1, 13156.7, 1629.0, None),
    "Atlantis": PaperScores(12850.0, 29028.1, 85641.0, None),
    "BankHeist": PaperScores(14.2, 734.4, 429.7, None),
    "BattleZone": PaperScores(2360.0, 37800.0, 26300.0, None),
    "BeamRider": PaperScores(363.9, 5774.7, 6846.0, 4092.0, 5184.0),
    "Bowling": PaperScores(23.1, 154.8, 42.4, None),
    "Boxing": PaperScores(0.1, 4.3, 71.8, None),
    "Breakout": PaperScores(1.7, 31.8, 401.2, 168.0, 225.0),
    "Centipede": PaperScores(2090.9, 11963.2, 8309.0, None),
    "ChopperCommand": PaperScores(811.0, 9881.8, 6687.0, None),
    "CrazyClimber": PaperScores(10780.5, 35410.5, 114103.0, None),
    "DemonAttack": PaperScores(152.1, 3401.3, 9711.0, None),
    "DoubleDunk": PaperScores(-18.6, -15.5, -18.1, None),
    "Enduro": PaperScores(0.0, 309.6, 301.8, 470.0, 661.0),
    "FishingDerby": PaperScores(-91.7, 5.5, -0.8, None),
    "Freeway": PaperScores(0.0, 29.6, 30.3, None),
    "Frostbite": PaperScores(65.2, 4334.7, 328.3, None),
    "Gopher": PaperScores(257.6, 2321.0, 8520.0, None),
    "Gravitar": PaperScores(173.0, 2672.0, 306.7, None),
    "Hero": PaperScores(1027.0, 25762.5, 19950.0, None),
    "IceHockey": PaperScores(-11.2, 0.9, -1.6, None),
    "Jamesbond": PaperScores(29.0, 406.7, 576.7, None),
    "Kangaroo": PaperScores(52.0, 3035.0, 6740.0, None),
    "Krull": PaperScores(1598.0, 2394.6, 3805.0, None),
    "KungFuMaster": PaperScores(258.5, 22736.2, 23270.0, None),
    "MontezumaRevenge": PaperScores(0.0, 4366.7, 0.0, None),
    "MsPacman": PaperScores(307.3, 15693.4, 2311.0, None),
    "NameThisGame": PaperScores(2292.3, 4076.2, 7257.0, None),
    "Pong": PaperScores(-20.7, 9.3, 18.9, 20.0, 21.0),
    "PrivateEye": PaperScores(24.9, 69571.3, 1788.0, None),
    "Qbert": PaperScores(163.9, 13455.0, 10596.0, 1952.0, 4500.0),
    "Riverraid": PaperScores(1338.5, 13513.3, 8316.0, None),
    "RoadRunner": PaperScores(11.5, 7845.0, 18257.0, None),
    "Robotank": PaperScores(2.2, 11.9, 51.6, None),
    "Seaquest": PaperScores(68.4, 20181.8, 5286.0, 1705.0, 1740.0),
    "SpaceInvaders": PaperScores(148.0, 1652.3, 1976.0, 581.0, 1075.0),
    "StarGunner": PaperScores(664.0, 10250.0, 57997.0, None),
    "Tennis": PaperScores(-23.8, -8.9, -2.5, None),
    "TimePilot": PaperScores(3568.0, 5925.0, 5947.0, None),
    "Tutankham": PaperScores(11.4, 167.6, 186.7, None),
    "UpNDown": PaperScores(533.4, 9082.0, 8456.0, None),
    "Venture": PaperScores(0.0, 1187.5, 380.0, None),
    "VideoPinball": PaperScores(16256.9, 17297.6, 42684.0, None),
    "WizardOfWor": PaperScores(563.5, 4756.5, 3393.0, None),
    "Zaxxon": PaperScores(32.5, 9173.3, 4977.0, None),
    # --- Atari-57 games outside the Nature set: DQN Zoo's random/human ---
    "Berzerk": PaperScores(123.7, 2630.4, None, None),
    "Defender": PaperScores(2874.5, 18688.9, None, None),
    "Phoenix": PaperScores(761.4, 7242.6, None, None),
    "Pitfall": PaperScores(-229.4, 6463.7, None, None),
    "Skiing": PaperScores(-17098.1, -4336.9, None, None),
    "Solaris": PaperScores(1236.3, 12326.7, None, None),
    "Surround": PaperScores(-10.0, 6.5, None, None),
    "YarsRevenge": PaperScores(3092.9, 54576.9, None, None),
}

ATARI57_GAMES: tuple[str, ...] = tuple(sorted(_TABLE))
"""The 57 games of the Atari-57 benchmark (Nature's 49 plus 8), sorted."""
NATURE_GAMES: tuple[str, ...] = tuple(g for g in ATARI57_GAMES if _TABLE[g].nature_dqn is not None)
"""The 49 games of the Nature paper's Extended Data Table 2, sorted."""
NIPS_GAMES: tuple[str, ...] = tuple(g for g in ATARI57_GAMES if _TABLE[g].nips_dqn is not None)
"""The 7 games of the NIPS 2013 paper's Table 1, sorted."""

GAME_LISTS: dict[str, tuple[str, ...]] = {
    "nature49": NATURE_GAMES,
    "nips7": NIPS_GAMES,
    "atari57": ATARI57_GAMES,
    "atari100k": ATARI100K_GAMES,
}
"""Named game lists, for commands that take many games (`--games nature49`)."""


def lookup(game: str) -> PaperScores | None:
    """Published scores for ``game`` (any spelling `game_name` takes), or None for an ALE
    game outside the tables (Tetris, say)."""
    return _TABLE.get(game_name(game))


def paper_scores(game: str) -> PaperScores:
    """Random, human and published DQN scores for ``game``; UnknownGameError outside the
    tables (the 57 Atari-57 games, of which the Nature paper's 49 have DQN scores)."""
    row = lookup(game)
    if row is None:
        raise UnknownGameError(
            f"no published scores for '{game}': the score tables hold the 57 Atari-57 games "
            f"(atari_dqn.scores.ATARI57_GAMES), of which the Nature paper's 49 have DQN scores"
        )
    return row


def human_normalized(game: str, score: float) -> float:
    """Human-normalised score in percent: 100 * (score - random) / (human - random).

    0 is random play and 100 the human tester, as in the last column of the Nature paper's
    Extended Data Table 2 (whose random and human we use; see the module docstring).
    """
    row = paper_scores(game)
    return 100.0 * (score - row.random) / (row.human - row.random)
