"""The report's pictures of one run: its learning curves, and frames of its latest film.

Read from what the run wrote (`metrics.csv`, `evals.csv`, `eval.json`, `videos/`), so they
can be drawn wherever the run directory is copied to.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from atari_dqn.rundir import RunDir
from atari_dqn.scores import lookup
from atari_dqn.video import film_step_and_game, frame_strip, videos_by_step


def read_csv(path: Path) -> list[dict[str, str]]:
    """A run's CSV log as rows of strings ([] if it has none yet)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def frames_unit(largest: int) -> tuple[float, str]:
    """(divisor, x-axis label) for emulator frames up to `largest`: frames in millions,
    thousands or ones, whichever keeps a tick label to a few digits (8,000 frames in
    millions ran the labels of a short run together: 0.00400.0045...)."""
    if largest >= 1_000_000:
        return 1e6, "emulator frames (M)"
    if largest >= 10_000:
        return 1e3, "emulator frames (thousands)"
    return 1.0, "emulator frames"


def nature_references(game: str) -> dict[str, float]:
    """The published scores a Nature-protocol run's plot draws as lines: the Nature DQN's
    and random play's (none for a game outside the table)."""
    paper = lookup(game)
    if paper is None:
        return {}
    lines = {"Nature DQN (200M frames)": paper.nature_dqn} if paper.nature_dqn is not None else {}
    return {**lines, "random": paper.random}


def run_labels(paths: list[Path]) -> dict[Path, str]:
    """Each run's name in a report: its folder's name, with as many of the folders above it
    as tell it from another run of that name (`atari100k-der/Boxing-seed0` and
    `atari100k-drq_eps/Boxing-seed0`), since the run's figures are files named after it."""
    every = {path: Path(os.path.abspath(path)).parts for path in paths}
    distinct = set(every.values())
    labels = {}
    for path, parts in every.items():
        others = [other for other in distinct if other != parts]
        n = 1
        while n < len(parts) and any(other[-n:] == parts[-n:] for other in others):
            n += 1
        labels[path] = "/".join(parts[-n:])
    return labels


def _file_stem(label: str) -> str:
    return label.replace("/", "-")


def plot_run(
    run_path: Path,
    label: str,
    game: str,
    actions: list[str],
    references: dict[str, float],
    out: Path,
) -> Path:
    """`run_figure`, saved in `out` as a file named after the run's `label` (`run_labels`)."""
    import matplotlib.pyplot as plt

    fig = run_figure(run_path, game, actions, references)
    path = out / f"{_file_stem(label)}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _series(ax: Any, x: np.ndarray, y: Any, **style: Any) -> None:
    """A curve through the points, or, for one or two of them (no trend to draw), the
    points alone as markers."""
    if len(x) < 3:
        style = {**style, "marker": style.get("marker", "o"), "linestyle": "none"}
    ax.plot(x, y, **style)


def run_figure(run_path: Path, game: str, actions: list[str], references: dict[str, float]) -> Any:
    """Eval score against frames (each of `references`, label -> published score, as a
    line; the score of `eval.json` as its own marker), training return, loss, mean max-Q,
    epsilon and the action histogram (labelled with the game's `actions`), as a matplotlib
    figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    run_dir = RunDir(run_path)
    metrics = read_csv(run_dir.metrics_csv)
    evals = read_csv(run_dir.evals_csv)
    final = run_dir.read_record(run_dir.eval_record)
    eval_frames = np.array([int(r["emulator_frames"]) for r in evals])
    frames = np.array([int(r["emulator_frames"]) for r in metrics])
    last = [int(final["emulator_frames"])] if final else []
    divisor, xlabel = frames_unit(max([*eval_frames, *frames, *last], default=0))
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    ax = axes[0, 0]
    if evals:
        y = np.array([float(r["mean"]) for r in evals])
        lo = np.array([float(r["ci_low"]) for r in evals])
        hi = np.array([float(r["ci_high"]) for r in evals])
        epsilon = float(evals[-1]["protocol.epsilon"])
        _series(ax, eval_frames / divisor, y, marker="o", label=f"ours (eval, eps {epsilon:g})")
        ax.fill_between(eval_frames / divisor, lo, hi, alpha=0.2)
    if final:
        mean = float(final["mean"])
        ax.errorbar(
            [last[0] / divisor],
            [mean],
            yerr=[[mean - float(final["ci_low"])], [float(final["ci_high"]) - mean]],
            marker="*",
            markersize=14,
            color="C3",
            capsize=4,
            linestyle="none",
            label=f"eval.json ({final['episodes']} games)",
        )
    for (label, score), style in zip(references.items(), ("--", ":", "-."), strict=False):
        ax.axhline(score, color="grey" if label == "random" else "k", ls=style, label=label)
    ax.set(title=f"{game}: evaluation score", ylabel="raw score")
    ax.legend(fontsize=8)
    for ax, key, title in (
        (axes[0, 1], "mean_return_100", "training return (last 100 games)"),
        (axes[0, 2], "loss", "loss"),
        (axes[1, 0], "mean_max_q", "mean max Q"),
        (axes[1, 1], "epsilon", "epsilon"),
    ):
        _series(ax, frames / divisor, [float(r[key]) for r in metrics])
        ax.set(title=title)
    ax = axes[1, 2]
    if metrics:
        counts = np.array([[int(c) for c in r["action_counts"].split()] for r in metrics], float)
        fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        if len(frames) < 3:  # a stack of areas needs a span: stacked bars at the points
            width = 0.4 * (np.ptp(frames) or frames.max() or 1) / divisor
            bottom = np.zeros(len(frames))
            for label, share in zip(actions, fractions.T, strict=False):
                ax.bar(frames / divisor, share, width, bottom=bottom, label=label)
                bottom += share
        else:
            ax.stackplot(frames / divisor, fractions.T, labels=actions)
        ax.legend(fontsize=7, loc="upper right")
    ax.set(title="action histogram", ylabel="fraction")
    for ax in axes.flat:
        ax.set_xlabel(xlabel)
        # At most seven round numbers: four-digit labels then fit side by side in a panel.
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
        ax.set_xlim(left=0)  # from the run's start: a lone point reads in its place
    fig.tight_layout()
    return fig


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


def film_lines(run_path: Path, label: str, out: Path) -> list[str]:
    """Report lines showing the run's latest film (`_strip_film`) as a strip of frames, and
    links to all its films; the strip's file is named after the run's `label`."""
    run_dir = RunDir(run_path)
    videos = videos_by_step(run_dir.videos)
    if not videos:
        return []
    step, latest = _strip_film(run_dir, videos)
    strip = frame_strip(latest, out / f"{_file_stem(label)}-strip.png")
    links = ", ".join(f"[{path.name}]({os.path.relpath(path, out)})" for _, path in videos)
    lines = [f"The agent at {step:,} agent steps ({latest.name}):", ""]
    if strip is not None:
        lines += [f"![{latest.name}]({strip.name})", ""]
    return [*lines, f"Videos: {links}", ""]
