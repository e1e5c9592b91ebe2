"""`make bench`: every benchmark in one run, then one record, one plot and one table.

Each part (env, replay, learner, e2e) measures ours beside its peer, writes its own record
and names its headline ratios and their targets (`HEADLINES`); this module gathers the
summaries into `<date>-<host>.json` / `.md` and draws the headline ratios as a bar chart.
With `--update-readme` it also rewrites the performance section of `./README.md` from
them, so no figure there is typed by hand; it measures only committed code (it refuses a
dirty work tree before measuring anything) and the section names the commit of each record.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from atari_dqn.bench.results import RESULTS_DIR, machine_info, markdown_table, record_stem
from atari_dqn.errors import ConfigError
from atari_dqn.provenance import code_root, code_version, describe_code
from atari_dqn.shell import atari_dqn_command

PARTS = ("env", "replay", "learner", "e2e", "contended", "variants", "atari100k", "video")
README = Path("README.md")
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def headline_rows(parts: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per headline ratio found in `parts` (part name -> its summary)."""
    rows = []
    for part in PARTS:
        summary = parts.get(part, {})
        for headline in importlib.import_module(f"atari_dqn.bench.{part}").HEADLINES:
            if headline.key in summary:
                value = float(summary[headline.key])
                rows.append(
                    {
                        "figure": headline.label,
                        "ratio": round(value, 2),
                        "target": round(headline.target, 2),
                        "met": "yes" if value >= headline.target else "NO",
                    }
                )
    return rows


def plot_headlines(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Horizontal bars of each ratio with its target marked: longer is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.6 * len(rows) + 1.2))
    labels = [r["figure"] for r in rows][::-1]
    values = [r["ratio"] for r in rows][::-1]
    targets = [r["target"] for r in rows][::-1]
    colors = ["tab:green" if v >= t else "tab:red" for v, t in zip(values, targets, strict=True)]
    ax.barh(labels, values, color=colors)
    ax.scatter(targets, labels, marker="|", s=400, color="k", label="target", zorder=3)
    ax.axvline(1.0, color="grey", lw=0.8)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}x", va="center")
    ax.set(xlabel="ratio (higher is better)", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _rows(out_dir: Path, part: str, machine: dict[str, Any]) -> list[dict[str, Any]]:
    path = out_dir / f"{record_stem(part, machine)}.json"
    return json.loads(path.read_text())["rows"] if path.is_file() else []


def plot_scaling(out_dir: Path, machine: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """Agent steps/s against envs (env stepping, end to end) and update cost against batch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = [r for r in _rows(out_dir, "env", machine) if r["config"].startswith("ours VectorEnv")]
    e2e = _rows(out_dir, "e2e", machine)
    batch = [r for r in _rows(out_dir, "learner", machine) if r["part"].startswith("batch scal")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if env:
        left.plot(
            [r["envs"] for r in env],
            [r["agent_steps_per_s"] for r in env],
            "o-",
            label="env stepping (random actions)",
        )
    if e2e:
        left.plot(
            [r["envs"] for r in e2e],
            [r["ours steps/s"] for r in e2e],
            "s-",
            label="end-to-end training",
        )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="envs",
        ylabel="agent steps/s",
        title=f"scaling with envs ({machine['cores']} cores)",
    )
    left.set_xticks([1, 2, 4, 8, 16], ["1", "2", "4", "8", "16"])
    if env or e2e:
        left.legend()
    if batch:
        sizes = [int(r["contender"].split()[-1]) for r in batch]
        right.plot(sizes, [r["ms_per_update"] for r in batch], "o-")
    right.set(
        xscale="log",
        yscale="log",
        xlabel="batch size",
        ylabel="ms per update",
        title="update cost against batch size (fp32)",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    curve = [{"envs": r["envs"], "env steps/s": r["agent_steps_per_s"]} for r in env]
    for row in curve:
        match = [r["ours steps/s"] for r in e2e if r["envs"] == row["envs"]]
        row["training steps/s"] = match[0] if match else None
    return curve


def _split_readme(readme: Path = README) -> tuple[str, str]:
    """The README's text before and after its performance block."""
    text = readme.read_text() if readme.is_file() else ""
    if README_START not in text or README_END not in text:
        raise ConfigError(
            f"--update-readme: '{readme}' has no {README_START} ... {README_END} block; "
            "run it from the repository's root"
        )
    head, rest = text.split(README_START, 1)
    return head, rest.split(README_END, 1)[1]


def write_readme_section(section: str, readme: Path = README) -> None:
    """Replace the README's performance block (between its two markers) with `section`."""
    head, tail = _split_readme(readme)
    readme.write_text(f"{head}{README_START}\n{section}{README_END}{tail}")


def _refuse_uncommitted_code(out_dir: Path) -> None:
    """A README figure must come from committed code: refuse a work tree with changes (or
    one whose state git cannot tell) before any measurement."""
    code = code_version(out_dir)
    if code["dirty"] is True:
        raise ConfigError(
            f"--update-readme: the work tree at {code_root()} is dirty (git status --porcelain "
            "lists changes); commit first, then measure: a README figure must come from "
            "committed code"
        )
    if code["dirty"] is not False:
        raise ConfigError(
            f"--update-readme: cannot tell which commit {code_root()} holds (no git, or not a "
            "repository's root); run it from a committed git checkout of the project"
        )


def run(
    parts: tuple[str, ...] = PARTS,
    *,
    quick: bool = False,
    out_dir: Path = RESULTS_DIR,
    update_readme: bool = False,
) -> dict[str, Any]:
    """Run `parts`, then write the combined record and plots (and the README section)."""
    if update_readme:  # both fail now, not after the measurements
        _refuse_uncommitted_code(out_dir)
        _split_readme()
    for part in parts:
        print(f"== bench {part}", flush=True)
        importlib.import_module(f"atari_dqn.bench.{part}").run(quick=quick, out_dir=out_dir)
    return summarise(out_dir, update_readme=update_readme)


def _code_of(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The code behind the records (part -> its record): the commit they share ("mixed"
    when they differ, each part's under "parts"), and whether any measured a dirty tree."""
    parts = {
        part: {"commit": r.get("commit", "unknown"), "dirty": r.get("dirty", "unknown")}
        for part, r in records.items()
    }
    commits = {code["commit"] for code in parts.values()}
    states = {code["dirty"] for code in parts.values()}
    dirty = True if True in states else states.pop() if len(states) == 1 else "unknown"
    return {
        "commit": commits.pop() if len(commits) == 1 else "mixed",
        "dirty": dirty,
        "parts": parts,
    }


def _code_words(code: dict[str, Any]) -> str:
    """Which code the records measured, in words: one commit and tree state, or each part's."""
    parts = code["parts"]
    if len({(c["commit"], c["dirty"]) for c in parts.values()}) == 1:
        return f"Code: {describe_code(code)}."
    each = "; ".join(f"{part} at {describe_code(c)}" for part, c in parts.items())
    return f"Code: the parts measured different code: {each}."


def _command_words(commands: dict[str, str]) -> str:
    """The command that measured the records, or each part's where they differ (a part
    measured alone, or with `--quick`)."""
    if len(set(commands.values())) == 1:
        return f"`{next(iter(commands.values()))}`"
    return "; ".join(f"{part}: `{command}`" for part, command in commands.items())


def _runs_words(summaries: dict[str, dict[str, Any]]) -> str:
    """How many runs each figure of the end-to-end parts is (their runs are long, and
    one run of them says so)."""
    counts = {p: s["median_of_runs"] for p, s in summaries.items() if "median_of_runs" in s}
    each = [
        f"{part}: {'one run' if n == 1 else f'the median of {n} runs'} per figure"
        for part, n in counts.items()
    ]
    return f" Runs: {'; '.join(each)}." if each else ""


def _refuse_uncommitted_records(code: dict[str, Any]) -> None:
    """The README shows only records of committed code, whenever they were measured."""
    unclean = [part for part, c in code["parts"].items() if c["dirty"] is not False]
    if unclean:
        raise ConfigError(
            f"--update-readme: today's records of {', '.join(unclean)} were not measured from "
            "a clean work tree (or do not say); measure them again from committed code "
            f"({atari_dqn_command('bench', unclean[0])}) before updating the README"
        )


def summarise(out_dir: Path = RESULTS_DIR, *, update_readme: bool = False) -> dict[str, Any]:
    """The combined record and plots from this machine's latest record of each part.

    Called after `bench all` and after any single part, so the combined record always
    holds the latest measurement of each part on this machine, with the commit each part
    measured.
    """
    out_dir = Path(out_dir)
    machine = machine_info()
    records = {}
    for part in PARTS:
        path = out_dir / f"{record_stem(part, machine)}.json"
        if path.is_file():
            records[part] = json.loads(path.read_text())
    if not records:
        return {}
    summaries = {part: record["summary"] for part, record in records.items()}
    stem = record_stem(None, machine)
    rows = headline_rows(summaries)
    code = _code_of(records)
    if update_readme:
        _refuse_uncommitted_records(code)
    record = {
        "commit": code["commit"],
        "dirty": code["dirty"],
        "code": code["parts"],
        "machine": machine,
        "commands": {part: r["command"] for part, r in records.items()},
        "headlines": rows,
        "parts": summaries,
    }
    (out_dir / f"{stem}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    gpu = machine["gpu"] or "no GPU"
    where = f"{machine['cpu']}, {machine['cores']} cores, {gpu}"
    plot = out_dir / f"{stem}.png"
    plot_headlines(rows, plot, f"atari-dqn vs peers ({where})")
    scaling_plot = out_dir / f"{stem}-scaling.png"
    curve = plot_scaling(out_dir, machine, scaling_plot)
    when = ", ".join(f"{part} {r['time_utc'][:16]}" for part, r in records.items())
    section = (
        f"Measured by {_command_words(record['commands'])} on {where} (UTC: {when}); "
        f"each ratio compares ours with the peer in the same run.{_runs_words(summaries)} "
        f"{_code_words(code)} Full "
        f"records: `{out_dir / stem}.json` and the per-part files beside it.\n\n"
        f"{markdown_table(rows)}\n"
        f"![benchmark ratios]({plot.as_posix()})\n"
        f"\nScaling with the number of envs (agent steps/s):\n\n{markdown_table(curve)}\n"
        f"![scaling]({scaling_plot.as_posix()})\n"
    )
    (out_dir / f"{stem}.md").write_text(f"# Benchmarks\n\n{section}")
    if update_readme:
        write_readme_section(section)
        print(f"updated the performance section of {README}")
    print(markdown_table(rows))
    return record


def _flatten(record: dict[str, Any]) -> dict[str, float]:
    """Every numeric summary figure of a combined or per-part record, by dotted name."""
    parts = record.get("parts") or {record.get("benchmark", "part"): record.get("summary", {})}
    return {
        f"{part}.{key}": float(value)
        for part, summary in parts.items()
        for key, value in summary.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def compare(a: Path, b: Path) -> int:
    """Print how each figure changed from record `a` to record `b`."""
    records = []
    for path in (a, b):
        try:
            records.append(_flatten(json.loads(path.read_text())))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read benchmark record '{path}': {exc}") from exc
    old, new = records
    rows = [
        {
            "figure": key,
            f"A: {a.name}": old[key],
            f"B: {b.name}": new[key],
            "change": f"{(new[key] / old[key] - 1) * 100:+.1f}%" if old[key] else "n/a",
        }
        for key in sorted(old.keys() & new.keys())
    ]
    if not rows:
        raise ConfigError(f"'{a}' and '{b}' share no figures to compare")
    print(markdown_table(rows), end="")
    return 0
