"""`make report`: runs' scores beside the paper's, human-normalised, with learning curves.

Reads what runs write (`config.yaml`, `metrics.csv`, `evals.csv`, `eval.json`) and the
game's action names from ale-py, so a report can be made wherever the run directories are
copied to and atari-dqn is installed. Every row states the frames a run trained for: a short
run is never silently compared with the paper's 200M-frame figure, and a score from games
cut shorter than the paper's 5-minute evaluation games is marked wherever it is shown.

Nothing that differs is pooled: each row is one (game, config, budget) group, whose seeds
pool; the same seed twice in a group is an error. The aggregate across games takes one
group per game (the longest-trained, then the one with most seeds) and lists which.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atari_dqn.config import Config
from atari_dqn.configfile import flatten
from atari_dqn.env.atari import action_meanings
from atari_dqn.errors import ConfigError
from atari_dqn.rundir import RunDir
from atari_dqn.scores import human_normalized, lookup
from atari_dqn.stats import bootstrap_ci, iqm, stratified_bootstrap_ci
from atari_dqn.video import film_step_and_game, frame_strip, videos_by_step

PAPER_FRAMES = 200_000_000  # 50M agent steps x 4 frames (Nature, Methods)
PAPER_GAME_FRAMES = 18_000  # an evaluation game's cap: 5 minutes at 60 Hz (Methods)
CUT = "†"
"""Marks a score from games cut shorter than the paper's (`game_table` says at what)."""


@dataclass(frozen=True)
class RunSummary:
    """What one run contributes to the report."""

    path: Path
    game: str
    seed: int
    frames: int
    scores: list[float]
    source: str  # "eval.json", "evals.csv (last evaluation)" or "its last 100 training games"
    actions: list[str]  # the game's action names, in the order of metrics.csv's counts
    scored_games: str  # "evaluation" or "training": the games the scores are of
    game_frames_cap: int  # emulator frames at which those games were cut
    changes: tuple[str, ...] = ()  # the experiment's settings that differ from Nature's

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def cut_short(self) -> bool:
        """Whether its games were cut before the paper's evaluation games would have been: a
        game stopped early is scored on part of it, so its score is not the paper's kind."""
        return self.game_frames_cap < PAPER_GAME_FRAMES


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# Settings that change how a run is computed or logged, not the experiment: runs that
# differ only in them pool. The budget (loop.total_steps) is a column of its own.
_NOT_THE_EXPERIMENT = {
    "seed",
    "env.game",
    "loop.total_steps",
    "eval.interval_steps",
    "eval.episodes",
    "replay.prefetch",
    "loop.overlap",
    "learner.device",
    "learner.torch_threads",
    "learner.compile",
    "learner.channels_last",
    "learner.cuda_graph",
    "learner.stop_on_nonfinite",
    "eval.video",
}
_SECTIONS_NOT_THE_EXPERIMENT = ("logging.", "checkpoint.")


def experiment_changes(cfg: Config) -> tuple[str, ...]:
    """`key=value` for each experiment setting of `cfg` that differs from the Nature paper's."""
    nature = flatten(Config(env=type(cfg.env)(game=cfg.env.game)))
    return tuple(
        f"{key}={value}"
        for key, value in flatten(cfg).items()
        if value != nature[key]
        and key not in _NOT_THE_EXPERIMENT
        and not key.startswith(_SECTIONS_NOT_THE_EXPERIMENT)
    )


def _final_scores(run: RunDir, cfg: Config) -> tuple[int, list[float], str, int]:
    """(frames trained, scores, where they come from, the emulator frames at which their
    games were cut) by the run's `eval.scores_from`."""
    if cfg.eval.scores_from == "training":
        record = run.read_record(run.training_games)
        if not record or not record["scores"]:
            raise ConfigError(f"'{run}' has finished no training game yet (eval.scores_from)")
        # Training games are cut by the training cap. They are marked by the same rule as
        # evaluation games: a game cut short is scored on part of it, whatever it was for.
        source = "its last 100 training games"
        return record["emulator_frames"], record["scores"], source, cfg.env.max_episode_frames
    record = run.read_record(run.eval_record)
    if record is not None:
        # `eval` takes eval.* overrides, so the protocol it records is the one its games were
        # played by; a record without one was played by the run's config.
        protocol = record.get("protocol", {})
        cap = protocol.get("max_episode_frames", cfg.eval.max_episode_frames)
        return record["emulator_frames"], record["scores"], "eval.json", cap
    evals = _read_csv(run.evals_csv)
    if not evals:
        raise ConfigError(
            f"'{run}' has no evaluation yet: run `python -m atari_dqn eval --run-dir {run}`"
        )
    last = evals[-1]
    scores = [float(x) for x in last["scores"].split()]
    source = "evals.csv (last evaluation)"
    return int(last["emulator_frames"]), scores, source, cfg.eval.max_episode_frames


def summarise_run(run_dir: Path) -> RunSummary:
    """The run's final scores: with `eval.scores_from=evaluation`, `eval.json` when `eval`
    was run, else its last evaluation; with `training`, its last 100 training games."""
    run = RunDir(run_dir)
    cfg = run.read_config()
    frames, scores, source, cap = _final_scores(run, cfg)
    return RunSummary(
        run.path,
        cfg.env.game,
        cfg.seed,
        frames,
        scores,
        source,
        action_meanings(cfg.env),
        cfg.eval.scores_from,
        cap,
        experiment_changes(cfg),
    )


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def _frames_text(frames: int) -> str:
    """Emulator frames, readable at every size: `8,000`, `0.11M`, `2.4M`, `200.0M`."""
    if frames < 100_000:
        return f"{frames:,}"
    return f"{frames / 1e6:.{2 if frames < 1_000_000 else 1}f}M"


def _mark(runs: list[RunSummary]) -> str:
    """`CUT` if any of `runs` is scored from games cut short, else nothing."""
    return CUT if any(run.cut_short for run in runs) else ""


def _cut_legend(runs: list[RunSummary]) -> list[str]:
    """What `CUT` means, a line for each kind of games and cap among `runs` that is marked."""
    cuts = sorted({(run.scored_games, run.game_frames_cap) for run in runs if run.cut_short})
    return [
        f"{CUT} scores from {games} games cut at {cap:,} frames, under the paper's "
        f"{PAPER_GAME_FRAMES:,}-frame cap: not comparable with the paper's scores"
        for games, cap in cuts
    ]


Group = tuple[str, tuple[str, ...], int]  # game, experiment changes, frames trained


def group_runs(runs: list[RunSummary]) -> dict[Group, list[RunSummary]]:
    """Runs by (game, experiment, budget), each group's seeds distinct, sorted."""
    groups: dict[Group, list[RunSummary]] = defaultdict(list)
    for run in runs:
        group = groups[(run.game, run.changes, run.frames)]
        twin = next((r for r in group if r.seed == run.seed), None)
        if twin is not None:
            raise ConfigError(
                f"'{twin.path}' and '{run.path}' are the same experiment with the same seed "
                f"({run.game}, seed {run.seed}, {run.frames:,} frames): report one of them"
            )
        group.append(run)
    return {key: sorted(group, key=lambda r: r.seed) for key, group in sorted(groups.items())}


def _config_labels(groups: dict[Group, list[RunSummary]]) -> dict[tuple[str, ...], str]:
    """`nature` for the paper's settings, C1, C2, ... for the others."""
    labels: dict[tuple[str, ...], str] = {(): "nature"}
    for _, changes, _ in groups:
        labels.setdefault(changes, f"C{len(labels)}")
    return labels


def _group_scores(group: list[RunSummary]) -> tuple[float, float, float, str]:
    """Mean and 95% CI: over the seeds' means with several seeds, else over its games."""
    if len(group) > 1:
        return (*bootstrap_ci(np.array([r.mean for r in group])), "seeds")
    return (*bootstrap_ci(np.array(group[0].scores)), "games")


def game_table(groups: dict[Group, list[RunSummary]]) -> str:
    """One row per (game, config, budget) group, beside the paper; `CUT` marks the scores of
    games cut short, and a legend under the table says at what."""
    labels = _config_labels(groups)
    lines = [
        "| game | config | frames trained | ours (mean, 95% CI over) | Nature DQN | random "
        "| human | ours HNS % | Nature HNS % | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (game, changes, frames), group in groups.items():
        mean, low, high, over = _group_scores(group)
        paper = lookup(game)
        budget = _frames_text(frames)
        if frames < PAPER_FRAMES:
            budget += f" (paper: {PAPER_FRAMES / 1e6:.0f}M)"
        nature = paper.nature_dqn if paper else None
        ours_hns = human_normalized(game, mean) if paper else None
        nature_hns = human_normalized(game, nature) if nature is not None else None
        mark = _mark(group)
        lines.append(
            f"| {game} | {labels[changes]} | {budget} "
            f"| {_fmt(mean)}{mark} [{_fmt(low)}, {_fmt(high)}] {over} | {_fmt(nature)} "
            f"| {_fmt(paper.random if paper else None)} | {_fmt(paper.human if paper else None)} "
            f"| {_fmt(ours_hns)}{mark if ours_hns is not None else ''} | {_fmt(nature_hns)} "
            f"| {', '.join(str(r.seed) for r in group)} |"
        )
    cut = _cut_legend([run for group in groups.values() for run in group])
    if cut:
        lines += ["", *cut]
    legend = [f"- {label}: {', '.join(changes)}" for changes, label in labels.items() if changes]
    if legend:
        lines += ["", "Configs other than the Nature paper's, by what they change:", *legend]
    return "\n".join(lines) + "\n"


def aggregate(
    groups: dict[Group, list[RunSummary]],
) -> tuple[dict[str, tuple[float, float, float]], list[Group]]:
    """Median and IQM of human-normalised scores across games, with 95% stratified-bootstrap
    intervals over seeds (Agarwal et al. 2021, as rliable computes them), and the groups
    used: one per game, its longest-trained (then most seeded) group. Games outside the
    paper's tables have no human score and are left out."""
    chosen: dict[str, tuple[Group, list[RunSummary]]] = {}
    for key, group in groups.items():
        best = chosen.get(key[0])
        if lookup(key[0]) and (best is None or (key[2], len(group)) > (best[0][2], len(best[1]))):
            chosen[key[0]] = (key, group)
    if not chosen:
        return {}, []
    hns = [np.array([human_normalized(r.game, r.mean) for r in g]) for _, g in chosen.values()]
    stats = {
        "median": stratified_bootstrap_ci(
            hns, lambda per_game: np.median([g.mean() for g in per_game])
        ),
        "IQM": stratified_bootstrap_ci(hns, lambda per_game: iqm(np.concatenate(per_game))),
    }
    return stats, [key for key, _ in chosen.values()]


def _frames_unit(largest: int) -> tuple[float, str]:
    """(divisor, x-axis label) for emulator frames up to `largest`: frames in millions,
    thousands or ones, whichever keeps a tick label to a few digits (8,000 frames in
    millions ran the labels of a short run together: 0.00400.0045...)."""
    if largest >= 1_000_000:
        return 1e6, "emulator frames (M)"
    if largest >= 10_000:
        return 1e3, "emulator frames (thousands)"
    return 1.0, "emulator frames"


def plot_run(run: RunSummary, out: Path) -> Path:
    """Eval score against frames (Nature's score as a line), loss, mean Q, epsilon, actions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    run_dir, game = RunDir(run.path), run.game
    metrics = _read_csv(run_dir.metrics_csv)
    evals = _read_csv(run_dir.evals_csv)
    eval_frames = np.array([int(r["emulator_frames"]) for r in evals])
    frames = np.array([int(r["emulator_frames"]) for r in metrics])
    divisor, xlabel = _frames_unit(max([*eval_frames, *frames], default=0))
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    ax = axes[0, 0]
    if evals:
        y = np.array([float(r["mean_score"]) for r in evals])
        lo = np.array([float(r["ci_low"]) for r in evals])
        hi = np.array([float(r["ci_high"]) for r in evals])
        ax.plot(eval_frames / divisor, y, marker="o", label="ours (eval, eps 0.05)")
        ax.fill_between(eval_frames / divisor, lo, hi, alpha=0.2)
    paper = lookup(game)
    if paper is not None and paper.nature_dqn is not None:
        ax.axhline(paper.nature_dqn, color="k", ls="--", label="Nature DQN (200M frames)")
    if paper is not None:
        ax.axhline(paper.random, color="grey", ls=":", label="random")
    ax.set(title=f"{game}: evaluation score", ylabel="raw score")
    ax.legend(fontsize=8)
    for ax, key, title in (
        (axes[0, 1], "mean_return_100", "training return (last 100 games)"),
        (axes[0, 2], "loss", "loss"),
        (axes[1, 0], "mean_max_q", "mean max Q"),
        (axes[1, 1], "epsilon", "epsilon"),
    ):
        ax.plot(frames / divisor, [float(r[key]) for r in metrics])
        ax.set(title=title)
    ax = axes[1, 2]
    if metrics:
        counts = np.array([[int(c) for c in r["action_counts"].split()] for r in metrics], float)
        fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.stackplot(frames / divisor, fractions.T, labels=run.actions)
        ax.legend(fontsize=7, loc="upper right")
    ax.set(title="action histogram", ylabel="fraction")
    for ax in axes.flat:
        ax.set_xlabel(xlabel)
        # At most seven round numbers: four-digit labels then fit side by side in a panel.
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    fig.tight_layout()
    path = out / f"{run_dir.name}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _strip_film(run: RunDir, videos: list[tuple[int, Path]]) -> tuple[int, Path]:
    """The film the strip shows, and its step: the latest film, except that of the games
    `eval --video` filmed for eval.json (best, median and worst by default), the
    median-scoring one rather than whichever was written last."""
    step, latest = videos[-1]
    record = run.read_record(run.eval_record)
    if record is None or record["agent_steps"] != step or latest.parent != run.videos:
        return step, latest
    scores = record["scores"]
    films = sorted(
        (scores[game - 1], path)
        for at, path in videos
        if at == step
        and path.parent == run.videos
        and (game := film_step_and_game(path)[1]) <= len(scores)
    )
    return step, films[(len(films) - 1) // 2][1] if films else latest


def _watch(run: RunSummary, out: Path) -> list[str]:
    """Report lines showing the run's latest film (`_strip_film`) as a strip of frames, and
    links to all its films."""
    run_dir = RunDir(run.path)
    videos = videos_by_step(run_dir.videos)
    if not videos:
        return []
    step, latest = _strip_film(run_dir, videos)
    strip = frame_strip(latest, out / f"{run.path.name}-strip.png")
    links = ", ".join(f"[{path.name}]({os.path.relpath(path, out)})" for _, path in videos)
    lines = [f"The agent at {step:,} agent steps ({latest.name}):", ""]
    if strip is not None:
        lines += [f"![{latest.name}]({strip.name})", ""]
    return [*lines, f"Videos: {links}", ""]


def _aggregate_lines(groups: dict[Group, list[RunSummary]]) -> list[str]:
    """The aggregate's lines (`aggregate`), its score marked if a game of it is, and the
    groups it takes."""
    stats, used = aggregate(groups)
    if not used:
        return []
    runs = [run for key in used for run in groups[key]]
    mark = _mark(runs)
    # The stratified bootstrap resamples each game's seeds: with one seed per game every
    # resample is the same runs, so its interval has no width and says nothing.
    several = any(len(groups[key]) > 1 for key in used)
    lines = []
    for name, (point, low, high) in stats.items():
        spread = (
            f"95% stratified bootstrap CI [{low:.1f}, {high:.1f}]"
            if several
            else "one run per game: no interval"
        )
        lines.append(
            f"- {name}: {point:.1f}{mark} ({spread}) over {len(used)} game(s), {len(runs)} run(s)"
        )
    labels = _config_labels(groups)
    taken = "; ".join(
        f"{game}{_mark(groups[(game, changes, frames)])} ({labels[changes]}, "
        f"{_frames_text(frames)} frames, {len(groups[(game, changes, frames)])} seed(s))"
        for game, changes, frames in used
    )
    return [*lines, f"- from: {taken}"]


def _run_lines(run: RunSummary, out: Path) -> list[str]:
    """The run's section of report.md: what it is, its score (marked if cut short), its plot
    and its films."""
    png = plot_run(run, out)
    return [
        f"### {run.path.name}",
        f"{run.game}, seed {run.seed}, {run.frames:,} frames; score {_fmt(run.mean)}"
        f"{_mark([run])} from {run.source}.",
        "",
        f"![{run.path.name}]({png.name})",
        "",
        *_watch(run, out),
    ]


def write_report(run_dirs: list[Path], out: Path) -> int:
    """Write `report.md` and one PNG per run into `out`; print the table."""
    dirs = [d for d in run_dirs if d.is_dir()]
    if not dirs:
        raise ConfigError(f"no run directories among {', '.join(map(str, run_dirs))}")
    runs = [summarise_run(d) for d in dirs]
    groups = group_runs(runs)
    out.mkdir(parents=True, exist_ok=True)
    table = game_table(groups)
    summary = _aggregate_lines(groups)
    lines = ["# atari-dqn report", "", table, "## Aggregate (human-normalised %)", "", *summary]
    lines += ["", "## Runs", ""]
    for run in runs:
        lines += _run_lines(run, out)
    (out / "report.md").write_text("\n".join(lines))
    print(table)
    print("human-normalised %:", *summary, sep="\n")
    print(f"wrote {out / 'report.md'}")
    return 0
