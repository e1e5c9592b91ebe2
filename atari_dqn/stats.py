"""Summary statistics with bootstrap confidence intervals, for scores that are not normal.

Episode scores are bounded, skewed and few (30 games), so intervals come from a seeded
percentile bootstrap rather than a normal approximation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (Agarwal et al. 2021), robust to outliers."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    n = len(values)
    return float(values[n // 4 : n - n // 4].mean()) if n >= 4 else float(values.mean())


def bootstrap_ci(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(statistic, low, high): the statistic of `values` and its percentile-bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no values to summarise")
    point = float(statistic(values))
    if values.size == 1:
        return point, point, point
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, values.size, size=(resamples, values.size))
    stats = np.array([statistic(values[row]) for row in draws])
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return point, float(low), float(high)


def stratified_bootstrap_ci(
    groups: list[np.ndarray],
    statistic: Callable[[list[np.ndarray]], float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(statistic, low, high) of a statistic across groups (games) of values (seeds), with
    the percentile interval of the stratified bootstrap: each replicate resamples every
    group's values within that group (Agarwal et al. 2021, "Deep RL at the edge of the
    statistical precipice"; rliable's StratifiedBootstrap). Groups may differ in size."""
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    if not groups or any(g.size == 0 for g in groups):
        raise ValueError("every group needs a value")
    point = float(statistic(groups))
    if all(g.size == 1 for g in groups):
        return point, point, point
    rng = np.random.default_rng(seed)
    stats = np.array(
        [statistic([g[rng.integers(0, g.size, g.size)] for g in groups]) for _ in range(resamples)]
    )
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return point, float(low), float(high)


ACROSS_GAMES: dict[str, Callable[[list[np.ndarray]], float]] = {
    "median": lambda games: float(np.median([g.mean() for g in games])),
    "mean": lambda games: float(np.mean([g.mean() for g in games])),
    "IQM": lambda games: iqm(np.concatenate(games)),
}
"""Aggregates over games of runs' scores, as rliable computes them: the median and mean over
games of each game's mean over runs, the IQM over every run."""


def aggregates(
    per_game: list[np.ndarray], names: tuple[str, ...] = tuple(ACROSS_GAMES)
) -> dict[str, tuple[float, float, float]]:
    """(point, low, high) of each aggregate `names` of `ACROSS_GAMES` over `per_game` (each
    game's runs' scores), with its 95% stratified-bootstrap interval over runs."""
    return {name: stratified_bootstrap_ci(per_game, ACROSS_GAMES[name]) for name in names}
