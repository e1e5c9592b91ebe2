"""`make report`: runs' scores beside the paper's, human-normalised, with learning curves.

Reads what runs write (`config.yaml`, `metrics.csv`, `evals.csv`, `eval.json`) and the
game's action names from ale-py, so a report can be made wherever the run directories are
copied to and atari-dqn is installed. Every row states the frames a run trained for: a short
run is never silently compared with the paper's 200M-frame figure.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atari_dqn.env.atari import action_meanings
from atari_dqn.errors import ConfigError
from atari_dqn.rundir import RunDir
from atari_dqn.scores import human_normalized, lookup
from atari_dqn.stats import bootstrap_ci, iqm

PAPER_FRAMES = 200_000_000  # 50M agent steps x 4 frames (Nature, Methods)


@dataclass(frozen=True)
class RunSummary:
    """What one run contributes to the report."""

    path: Path
    game: str
    seed: int
    frames: int
    scores: list[float]
    source: str  # "eval.json" or "evals.csv (last evaluation)"
    actions: list[str]  # the game's action names, in the order of metrics.csv's counts

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def summarise_run(run_dir: Path) -> RunSummary:
    """The run's final scores: `eval.json` when `eval` was run, else its last evaluation."""
    run = RunDir(run_dir)
    cfg = run.read_config()
    actions = action_meanings(cfg.env)
    record = run.read_eval_record()
    if record is not None:
        return RunSummary(
            run.path,
            cfg.env.game,
            cfg.seed,
            record["emulator_frames"],
            record["scores"],
            "eval.json",
            actions,
        )
    evals = _read_csv(run.evals_csv)
    if not evals:
        raise ConfigError(
            f"'{run}' has no evaluation yet: run `python -m atari_dqn eval --run-dir {run}`"
        )
    last = evals[-1]
    return RunSummary(
        run.path,
        cfg.env.game,
        cfg.seed,
        int(last["emulator_frames"]),
        [float(x) for x in last["scores"].split()],
        "evals.csv (last evaluation)",
        actions,
    )


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def game_table(runs: list[RunSummary]) -> str:
    """One row per game: our mean and CI over all its games and seeds, beside the paper."""
    by_game: dict[str, list[RunSummary]] = defaultdict(list)
    for run in runs:
        by_game[run.game].append(run)
    lines = [
        "| game | frames trained | ours (mean, 95% CI) | Nature DQN | random | human "
        "| ours HNS % | Nature HNS % | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for game, group in sorted(by_game.items()):
        scores = np.concatenate([r.scores for r in group])
        mean, low, high = bootstrap_ci(scores)
        paper = lookup(game)
        frames = sorted({r.frames for r in group})
        budget = ", ".join(f"{f / 1e6:.1f}M" if f >= 100_000 else f"{f:,}" for f in frames)
        if max(frames) < PAPER_FRAMES:
            budget += f" (paper: {PAPER_FRAMES / 1e6:.0f}M)"
        nature = paper.nature_dqn if paper else None
        ours_hns = human_normalized(game, mean) if paper else None
        nature_hns = human_normalized(game, nature) if nature is not None else None
        lines.append(
            f"| {game} | {budget} | {_fmt(mean)} [{_fmt(low)}, {_fmt(high)}] | {_fmt(nature)} "
            f"| {_fmt(paper.random if paper else None)} | {_fmt(paper.human if paper else None)} "
            f"| {_fmt(ours_hns)} | {_fmt(nature_hns)} "
            f"| {', '.join(str(r.seed) for r in group)} |"
        )
    return "\n".join(lines) + "\n"


def aggregate(runs: list[RunSummary]) -> dict[str, tuple[float, float, float]]:
    """Median and interquartile mean of human-normalised scores across games and seeds.

    Runs of games outside the paper's tables have no human score and are left out.
    """
    hns = np.array([human_normalized(r.game, r.mean) for r in runs if lookup(r.game)])
    if hns.size == 0:
        return {}
    return {"median": bootstrap_ci(hns, np.median), "IQM": bootstrap_ci(hns, iqm)}


def plot_run(run: RunSummary, out: Path) -> Path:
    """Eval score against frames (Nature's score as a line), loss, mean Q, epsilon, actions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir, game = RunDir(run.path), run.game
    metrics = _read_csv(run_dir.metrics_csv)
    evals = _read_csv(run_dir.evals_csv)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    ax = axes[0, 0]
    if evals:
        x = np.array([int(r["emulator_frames"]) for r in evals]) / 1e6
        y = np.array([float(r["mean_score"]) for r in evals])
        lo = np.array([float(r["ci_low"]) for r in evals])
        hi = np.array([float(r["ci_high"]) for r in evals])
        ax.plot(x, y, marker="o", label="ours (eval, eps 0.05)")
        ax.fill_between(x, lo, hi, alpha=0.2)
    paper = lookup(game)
    if paper is not None and paper.nature_dqn is not None:
        ax.axhline(paper.nature_dqn, color="k", ls="--", label="Nature DQN (200M frames)")
    if paper is not None:
        ax.axhline(paper.random, color="grey", ls=":", label="random")
    ax.set(title=f"{game}: evaluation score", xlabel="emulator frames (M)", ylabel="raw score")
    ax.legend(fontsize=8)
    frames = np.array([int(r["emulator_frames"]) for r in metrics]) / 1e6
    for ax, key, title in (
        (axes[0, 1], "mean_return_100", "training return (last 100 games)"),
        (axes[0, 2], "loss", "loss"),
        (axes[1, 0], "mean_max_q", "mean max Q"),
        (axes[1, 1], "epsilon", "epsilon"),
    ):
        ax.plot(frames, [float(r[key]) for r in metrics])
        ax.set(title=title, xlabel="emulator frames (M)")
    ax = axes[1, 2]
    if metrics:
        counts = np.array([[int(c) for c in r["action_counts"].split()] for r in metrics], float)
        fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.stackplot(frames, fractions.T, labels=run.actions)
        ax.legend(fontsize=7, loc="upper right")
    ax.set(title="action histogram", xlabel="emulator frames (M)", ylabel="fraction")
    fig.tight_layout()
    path = out / f"{run_dir.name}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_report(run_dirs: list[Path], out: Path) -> int:
    """Write `report.md` and one PNG per run into `out`; print the table."""
    dirs = [d for d in run_dirs if d.is_dir()]
    if not dirs:
        raise ConfigError(f"no run directories among {', '.join(map(str, run_dirs))}")
    runs = [summarise_run(d) for d in dirs]
    out.mkdir(parents=True, exist_ok=True)
    table = game_table(runs)
    scored = sum(lookup(r.game) is not None for r in runs)
    summary = []
    for name, (point, low, high) in aggregate(runs).items():
        # Resampling a single run gives that run back: there is no interval to report.
        spread = f"95% bootstrap CI [{low:.1f}, {high:.1f}]" if scored > 1 else "one run, no CI"
        summary.append(f"- {name}: {point:.1f} ({spread}) over {scored} run(s)")
    lines = ["# atari-dqn report", "", table, "## Aggregate (human-normalised %)", "", *summary]
    lines += ["", "## Runs", ""]
    for run in runs:
        png = plot_run(run, out)
        lines += [
            f"### {run.path.name}",
            f"{run.game}, seed {run.seed}, {run.frames:,} frames; score from {run.source}.",
            "",
            f"![{run.path.name}]({png.name})",
            "",
        ]
    (out / "report.md").write_text("\n".join(lines))
    print(table)
    print("human-normalised %:", *summary, sep="\n")
    print(f"wrote {out / 'report.md'}")
    return 0
