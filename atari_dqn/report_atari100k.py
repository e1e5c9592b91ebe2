"""The report's Atari 100k section: runs set beside the benchmark's published runs.

For runs whose config has `eval.benchmark: atari100k`, a section per config: per game our
score beside DrQ(ε)'s 100 published runs (their mean, and where ours falls among them), DER's
published mean, random and human; then the median, mean and IQM of human-normalised scores
over the games run, ours and DrQ(ε)'s over the same games, with stratified-bootstrap
intervals (Agarwal et al. 2021), drawn beside report.md. The data: `published.py`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from atari_dqn import published
from atari_dqn.stats import ACROSS_GAMES, aggregates

REFERENCE = "DrQ(eps)"
"""The published runs a score is placed among: DrQ(ε), whose preset this project ships."""
SHOWN = "DrQ(ε)"
"""`REFERENCE` as the report names it."""
REPRODUCED = (5.0, 95.0)
"""A score reproduces the published result when it lies within these percentiles of the
game's published runs."""
NOT_IN_BENCHMARK = "‡"
"""Marks a game outside the benchmark's 26: it has no published runs to compare with."""


def references(game: str) -> dict[str, float]:
    """The published scores an Atari 100k run's plot draws as lines: DrQ(ε)'s mean over its
    runs, DER's paper's mean and random play's (none for a game outside the benchmark)."""
    if game not in published.GAMES:
        return {}
    mean = float(published.runs(REFERENCE, game).mean())
    return {
        f"{SHOWN}, mean of its published runs": mean,
        "DER, its paper's mean": published.der_score(game),
        "random": published.random_score(game),
    }


def _cell(value: float) -> str:
    return f"{value:,.1f}"


def game_rows(games: dict[str, np.ndarray]) -> list[str]:
    """The table of one config: a row per game (sorted) of its runs' scores in `games`."""
    lines = [
        f"| game | ours: mean (runs) | {SHOWN}: mean (runs) | ours among {SHOWN}'s runs "
        f"(percentile) | DER (paper) | random | human | ours HNS % | within {SHOWN}'s "
        "5th-95th |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for game, ours in sorted(games.items()):
        mean = float(ours.mean())
        if game not in published.GAMES:
            cells = [f"{game}{NOT_IN_BENCHMARK}", f"{_cell(mean)} ({ours.size})", *["n/a"] * 7]
        else:
            theirs = published.runs(REFERENCE, game)
            percentile = published.percentile(mean, theirs)
            cells = [
                game,
                f"{_cell(mean)} ({ours.size})",
                f"{_cell(float(theirs.mean()))} ({theirs.size})",
                _cell(percentile),
                _cell(published.der_score(game)),
                _cell(published.random_score(game)),
                _cell(published.human_score(game)),
                _cell(float(published.human_normalized(game, mean))),
                "yes" if REPRODUCED[0] <= percentile <= REPRODUCED[1] else "no",
            ]
        lines.append(f"| {' | '.join(cells)} |")
    return lines


def _interval(stats: tuple[float, float, float], spread: bool) -> str:
    point, low, high = stats
    return f"{point:.1f} [{low:.1f}, {high:.1f}]" if spread else f"{point:.1f} (no interval)"


def aggregate_rows(games: dict[str, np.ndarray]) -> tuple[list[str], dict[str, dict]]:
    """The aggregate table over the benchmark games in `games`, ours beside DrQ(ε)'s runs on
    the same games, and the aggregates themselves ({} without such a game)."""
    played = sorted(game for game in games if game in published.GAMES)
    if not played:
        return [], {}
    ours = [published.human_normalized(g, games[g]) for g in played]
    theirs = [published.human_normalized(g, published.runs(REFERENCE, g)) for g in played]
    stats = {"ours": aggregates(ours), SHOWN: aggregates(theirs)}
    # With one run a game every stratified resample is the same runs: no interval to show.
    several = any(g.size > 1 for g in ours)
    count = sum(g.size for g in ours)
    lines = [
        f"Human-normalised %, over {len(played)} of the 26 games ({', '.join(played)}); "
        "95% stratified bootstrap intervals over runs:",
        "",
        f"| aggregate | ours ({count} run{'s' if count > 1 else ''}) | {SHOWN} "
        f"({sum(g.size for g in theirs)} published runs) |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {_interval(stats['ours'][name], several)} "
        f"| {_interval(stats[SHOWN][name], True)} |"
        for name in ACROSS_GAMES
    ]
    return lines, stats


def plot_aggregates(stats: dict[str, dict], title: str, path: Path) -> Path:
    """Each aggregate of `stats` ({who: {aggregate: (point, low, high)}}) as a point and its
    interval, one panel an aggregate, saved to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ACROSS_GAMES), figsize=(4 * len(ACROSS_GAMES), 2.2))
    for ax, name in zip(axes, ACROSS_GAMES, strict=True):
        for row, by_name in enumerate(stats.values()):
            point, low, high = by_name[name]
            ax.errorbar([point], [row], xerr=[[point - low], [high - point]], fmt="o", capsize=4)
        ax.set_yticks(range(len(stats)), list(stats))
        ax.set_ylim(-0.7, len(stats) - 0.3)
        ax.set(title=name, xlabel="human-normalised %")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def atari100k_lines(configs: dict[str, dict[str, np.ndarray]], out: Path) -> list[str]:
    """The report's Atari 100k section: for each config (by its title), the game table and
    the aggregates of `configs[title]` ({game: its runs' scores}), the plot written to
    `out`; none without a config."""
    if not configs:
        return []
    lines = [
        "## Atari 100k, beside the published runs",
        "",
        f"Published: {SHOWN}'s runs from rliable (Agarwal et al. 2021), DER's means from "
        "its paper (van Hasselt et al. 2019); random and human are the benchmark's, not the "
        f"Nature table's (atari_dqn/published_data/README.md). Within {SHOWN}'s 5th-95th: "
        f"our score lies between the {REPRODUCED[0]:g}th and {REPRODUCED[1]:g}th percentiles "
        f"of {SHOWN}'s runs of the game, which for a {SHOWN} run reproduces the published "
        "result; DER's paper published no runs, only a mean a game, so a DER run's column "
        f"places it among {SHOWN}'s, not DER's.",
    ]
    for title, games in configs.items():
        lines += ["", f"### {title}", "", *game_rows(games)]
        if any(game not in published.GAMES for game in games):
            lines += [
                "",
                f"{NOT_IN_BENCHMARK} not one of the benchmark's 26 games: no published runs",
            ]
        table, stats = aggregate_rows(games)
        if stats:
            slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
            png = plot_aggregates(stats, title, out / f"aggregates-{slug}.png")
            lines += ["", *table, "", f"![{title}]({png.name})"]
    return lines
