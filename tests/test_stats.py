"""Confidence intervals: ours against rliable's on the same scores (Agarwal et al. 2021)."""

from __future__ import annotations

import numpy as np
import pytest

from atari_dqn.stats import bootstrap_ci, iqm, stratified_bootstrap_ci


def _median_of_game_means(per_game: list[np.ndarray]) -> float:
    return float(np.median([g.mean() for g in per_game]))


def _iqm_of_all_runs(per_game: list[np.ndarray]) -> float:
    return iqm(np.concatenate(per_game))


def test_stratified_bootstrap_agrees_with_rliable_on_the_same_scores():
    from rliable import library as rliable
    from rliable import metrics

    rng = np.random.default_rng(0)
    # 5 seeds x 8 games of human-normalised scores, games of very different levels.
    scores = rng.gamma(2.0, 1.0, size=(5, 8)) * rng.uniform(0.1, 3.0, size=8)
    np.random.seed(0)  # noqa: NPY002 - rliable draws from numpy's global generator
    points, intervals = rliable.get_interval_estimates(
        {"ours": scores},
        lambda x: np.array([metrics.aggregate_median(x), metrics.aggregate_iqm(x)]),
        reps=10000,
    )
    per_game = [scores[:, g] for g in range(scores.shape[1])]
    for i, statistic in enumerate((_median_of_game_means, _iqm_of_all_runs)):
        point, low, high = stratified_bootstrap_ci(per_game, statistic, resamples=10000)
        assert point == pytest.approx(points["ours"][i], rel=1e-9)
        width = intervals["ours"][1, i] - intervals["ours"][0, i]
        assert low == pytest.approx(intervals["ours"][0, i], abs=0.03 * width)
        assert high == pytest.approx(intervals["ours"][1, i], abs=0.03 * width)


def test_stratified_bootstrap_resamples_within_each_game_only():
    # One seed per game: nothing to resample, so no interval, whatever the games' spread.
    assert stratified_bootstrap_ci([np.array([1.0]), np.array([9.0])], _iqm_of_all_runs) == (
        5.0,
        5.0,
        5.0,
    )
    # Games of different seed counts: each keeps its own.
    point, low, high = stratified_bootstrap_ci(
        [np.array([1.0, 2.0, 3.0]), np.array([10.0])], _median_of_game_means
    )
    assert point == pytest.approx(6.0) and 5.5 <= low <= point <= high <= 6.5


def test_iqm_is_the_mean_of_the_middle_half_and_bootstrap_ci_brackets_the_mean():
    assert iqm(np.array([0.0, 1.0, 2.0, 3.0, 100.0, -100.0, 4.0, 5.0])) == pytest.approx(2.5)
    point, low, high = bootstrap_ci(np.arange(30.0))
    assert point == pytest.approx(14.5) and low < point < high
