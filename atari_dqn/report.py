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

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atari_dqn.agent_name import what_it_is
from atari_dqn.config import Config
from atari_dqn.env.atari import action_meanings
from atari_dqn.errors import ConfigError
from atari_dqn.presets import experiment_changes, preset_label
from atari_dqn.provenance import describe_code
from atari_dqn.report_atari100k import atari100k_lines, references
from atari_dqn.report_figures import (
    film_lines,
    nature_references,
    plot_run,
    read_csv,
    run_labels,
)
from atari_dqn.rundir import RunDir
from atari_dqn.scores import human_normalized, lookup
from atari_dqn.stats import aggregates, bootstrap_ci

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
    interval: tuple[float, float] | None = None  # the 95% CI recorded with the scores
    what: str = ""  # the agent and the protocol (`agent_name.what_it_is`)
    benchmark: str = "nature"  # whose published scores it is set beside (eval.benchmark)

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def cut_short(self) -> bool:
        """Whether its games were cut before the paper's evaluation games would have been: a
        game stopped early is scored on part of it, so its score is not the paper's kind."""
        return self.game_frames_cap < PAPER_GAME_FRAMES


def _final_scores(
    run: RunDir, cfg: Config
) -> tuple[int, list[float], str, int, tuple[float, float] | None]:
    """(frames trained, scores, where they come from, the emulator frames at which their
    games were cut, the interval recorded with them) by the run's `eval.scores_from`."""
    if cfg.eval.scores_from == "training":
        record = run.read_record(run.training_games)
        if not record or not record["scores"]:
            raise ConfigError(f"'{run}' has finished no training game yet (eval.scores_from)")
        # Training games are cut by the training cap. They are marked by the same rule as
        # evaluation games: a game cut short is scored on part of it, whatever it was for.
        source = "its last 100 training games"
        cap = cfg.env.max_episode_frames
        return record["emulator_frames"], record["scores"], source, cap, None
    # An evaluation's record (`EvalResult.record`): eval.json, else the last evaluation
    # during training. `eval` takes eval.* overrides, so the protocol recorded is the one
    # its games were played by, and its interval is the one it reported.
    source, record = "eval.json", run.read_record(run.eval_record)
    if record is None:
        evals = read_csv(run.evals_csv)
        if not evals:
            raise ConfigError(_no_evaluation(run))
        source, record = "evals.csv (last evaluation)", _from_csv_row(evals[-1])
    cap = int(record["protocol"]["max_episode_frames"])
    interval = (float(record["ci_low"]), float(record["ci_high"]))
    return int(record["emulator_frames"]), record["scores"], source, cap, interval


def _no_evaluation(run: RunDir) -> str:
    """Why `run` has no score, and the command that gives it one, as the user would type it:
    `eval`, or, with no checkpoint to evaluate, the resume that trains one."""
    from atari_dqn.checkpoint import has_checkpoint  # torch: only for a run without a score

    if has_checkpoint(run):
        return f"'{run}' has no evaluation yet: run `{run.eval_command()}`"
    return (
        f"'{run}' has no evaluation and no checkpoint to evaluate yet: train it on with "
        f"`{run.resume_command()}`"
    )


def _from_csv_row(row: dict[str, str]) -> dict[str, Any]:
    """An evals.csv row as the record it was written from (`logs.CsvLog` flattened it)."""
    return {
        "emulator_frames": int(row["emulator_frames"]),
        "scores": [float(x) for x in row["scores"].split()],
        "ci_low": float(row["ci_low"]),
        "ci_high": float(row["ci_high"]),
        "protocol": {"max_episode_frames": int(row["protocol.max_episode_frames"])},
    }


def summarise_run(run_dir: Path) -> RunSummary:
    """The run's final scores: with `eval.scores_from=evaluation`, `eval.json` when `eval`
    was run, else its last evaluation; with `training`, its last 100 training games."""
    run = RunDir(run_dir)
    cfg = run.read_config()
    frames, scores, source, cap, interval = _final_scores(run, cfg)
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
        interval,
        what_it_is(cfg),
        cfg.eval.benchmark,
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
    """Each config by its preset's file name (`presets.preset_label`), in the order of
    `groups`."""
    return {changes: preset_label(changes) for _, changes, _ in groups}


def _group_scores(group: list[RunSummary]) -> tuple[float, float, float, str]:
    """Mean and 95% CI: over the seeds' means with several seeds, else over its games (the
    interval its evaluation recorded, when it recorded one)."""
    if len(group) > 1:
        return (*bootstrap_ci(np.array([r.mean for r in group])), f"{len(group)} seeds")
    run = group[0]
    games = f"{len(run.scores)} game{'s' if len(run.scores) != 1 else ''}"
    if run.interval is not None:
        return (run.mean, *run.interval, games)
    return (*bootstrap_ci(np.array(run.scores)), games)


def game_table(groups: dict[Group, list[RunSummary]]) -> str:
    """One row per (game, config, budget) group, beside the paper; `CUT` marks the scores of
    games cut short, and a legend under the table says at what."""
    labels = _config_labels(groups)
    lines = [
        "| game | config | frames trained | ours: mean [95% CI] | Nature DQN | random "
        "| human | ours HNS % | Nature HNS % | seeds (which) |",
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
            f"| {_fmt(mean)}{mark} [{_fmt(low)}, {_fmt(high)}] over {over} | {_fmt(nature)} "
            f"| {_fmt(paper.random if paper else None)} | {_fmt(paper.human if paper else None)} "
            f"| {_fmt(ours_hns)}{mark if ours_hns is not None else ''} | {_fmt(nature_hns)} "
            f"| {len(group)} ({', '.join(str(r.seed) for r in group)}) |"
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
    return aggregates(hns, ("median", "IQM")), [key for key, _ in chosen.values()]


def _aggregate_lines(groups: dict[Group, list[RunSummary]]) -> list[str]:
    """An aggregate (`aggregate`) per config, never across configs: its name, then its
    lines, its score marked if a game of it is, and the groups it takes."""
    labels = _config_labels(groups)
    lines = []
    for changes, label in sorted(labels.items(), key=lambda item: item[1]):
        ones = {key: group for key, group in groups.items() if key[1] == changes}
        stats, used = aggregate(ones)
        if used:
            lines += [f"{label}:", *_stats_lines(ones, stats, used)]
    return lines


def _stats_lines(
    groups: dict[Group, list[RunSummary]],
    stats: dict[str, tuple[float, float, float]],
    used: list[Group],
) -> list[str]:
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
    taken = "; ".join(
        f"{key[0]}{_mark(groups[key])} ({_frames_text(key[2])} frames, {len(groups[key])} seed(s))"
        for key in used
    )
    return [*lines, f"- from: {taken}"]


def _atari100k_configs(groups: dict[Group, list[RunSummary]]) -> dict[str, dict[str, np.ndarray]]:
    """The Atari 100k runs' scores, {config and budget: {game: each run's mean}}: nothing
    that differs is pooled."""
    labels = _config_labels(groups)
    configs: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for (game, changes, frames), group in groups.items():
        if group[0].benchmark == "atari100k":
            title = f"{labels[changes]}, {_frames_text(frames)} frames trained"
            configs[title][game] = np.array([run.mean for run in group])
    return dict(configs)


def _code_text(starts: list[dict[str, Any]]) -> str:
    """Which code trained a run (`RunDir.trained_by`), in words: one commit, or each start's
    from the step it started at when a resume changed it."""
    if not starts:
        return "Code: not recorded."
    if len({(s["commit"], s["dirty"]) for s in starts}) == 1:
        return f"Code: {describe_code(starts[0])}."
    each = ", ".join(f"{describe_code(s)} from step {s['step']:,}" for s in starts)
    return f"Code: {each}."


def _run_lines(run: RunSummary, label: str, out: Path) -> list[str]:
    """The run's section of report.md, under its `label`: what it is, its score (marked if
    cut short), the code that trained it, its plot and its films."""
    lines = references if run.benchmark == "atari100k" else nature_references
    png = plot_run(run.path, label, run.game, run.actions, lines(run.game), out)
    return [
        f"### {label}",
        f"{run.game}, seed {run.seed}, {run.frames:,} frames; score {_fmt(run.mean)}"
        f"{_mark([run])} from {run.source}. {run.what[0].upper()}{run.what[1:]}. "
        f"{_code_text(RunDir(run.path).trained_by())}",
        "",
        f"![{label}]({png.name})",
        "",
        *film_lines(run.path, label, out),
    ]


def _summaries(dirs: list[Path]) -> tuple[list[RunSummary], list[str]]:
    """The runs that can be reported, and for each that cannot, a line saying why and what
    to do about it."""
    runs, left_out = [], []
    for path in dirs:
        try:
            runs.append(summarise_run(path))
        except ConfigError as exc:
            left_out.append(str(exc))
    return runs, left_out


def write_report(run_dirs: list[Path], out: Path) -> int:
    """Write `report.md` and one PNG per run into `out`; print the table. Runs without a
    score are left out, each named with the reason and the command that gives it one."""
    dirs = [d for d in run_dirs if d.is_dir()]
    if not dirs:
        raise ConfigError(f"no run directories among {', '.join(map(str, run_dirs))}")
    runs, left_out = _summaries(dirs)
    if not runs:
        raise ConfigError(
            left_out[0] if len(left_out) == 1 else f"no run to report: {'; '.join(left_out)}"
        )
    groups = group_runs(runs)
    out.mkdir(parents=True, exist_ok=True)
    nature = {key: group for key, group in groups.items() if group[0].benchmark == "nature"}
    lines = ["# atari-dqn report", ""]
    if nature:
        table, summary = game_table(nature), _aggregate_lines(nature)
        lines += [table, "## Aggregate (human-normalised %)", "", *summary]
    atari100k = atari100k_lines(_atari100k_configs(groups), out)
    lines += atari100k
    if left_out:
        lines += ["", "## Runs left out", "", *(f"- {why}" for why in left_out)]
    lines += ["", "## Runs", ""]
    labels = run_labels([run.path for run in runs])
    for run in runs:
        lines += _run_lines(run, labels[run.path], out)
    (out / "report.md").write_text("\n".join(lines))
    if nature:
        print(table)
        print("human-normalised %, per config:", *summary, sep="\n")
    if atari100k:
        print(*atari100k, sep="\n")
    for why in left_out:
        print(f"left out: {why}")
    print(f"wrote {out / 'report.md'}")
    return 0
