"""`make bench`: every benchmark in one run, then one record, one plot and the README table.

Each part (env, replay, learner, e2e) measures ours beside its peer and writes its own
record; this module gathers their summaries into `<date>-<host>.json` / `.md`, draws the
headline ratios as a bar chart, and rewrites the README's performance section from them,
so no figure there is typed by hand.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from atari_dqn.bench.results import RESULTS_DIR, machine_info, markdown_table, record_stem

PARTS = ("env", "replay", "learner", "e2e")
README = Path("README.md")
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"

# (part, summary key, what the ratio compares, target): the figures a reader looks for.
HEADLINES = (
    ("env", "single_vs_gymnasium", "env: ours / gymnasium AtariPreprocessing (1 env)", 0.95),
    ("env", "vector_speedup_vs_single", "env: ours N envs (best N) / ours 1 env", 1.7),
    ("replay", "speedup_vs_sb3_optimized", "replay: batches/s, ours / SB3 optimised", 3.0),
    (
        "replay",
        "memory_vs_sb3_optimized",
        "replay: bytes per transition, SB3 optimised / ours",
        28_224 / 7_100,
    ),  # fmt: skip
    ("learner", "fp32_vs_bare_loop", "learner: fp32 update, ours / bare torch loop", 0.9),
    ("e2e", "ratio_vs_sb3", "end to end: agent steps/s, ours / SB3 DQN", 2.0),
)


def _derived(part: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Ratios computed from a part's raw figures (memory is reported as bytes per transition)."""
    if part == "replay" and "bytes_per_transition_ours_rss" in summary:
        return {
            "memory_vs_sb3_optimized": summary["bytes_per_transition_sb3_optimized_rss"]
            / summary["bytes_per_transition_ours_rss"]
        }
    return {}


def headline_rows(parts: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per headline ratio found in `parts` (part name -> its summary)."""
    rows = []
    for part, key, label, target in HEADLINES:
        summary = {**parts.get(part, {}), **_derived(part, parts.get(part, {}))}
        if key in summary:
            value = float(summary[key])
            rows.append(
                {
                    "figure": label,
                    "ratio": round(value, 2),
                    "target": round(target, 2),
                    "met": "yes" if value >= target else "NO",
                }  # fmt: skip
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
        left.plot([r["envs"] for r in env], [r["agent_steps_per_s"] for r in env], "o-",
                  label="env stepping (random actions)")  # fmt: skip
    if e2e:
        left.plot([r["envs"] for r in e2e], [r["ours steps/s"] for r in e2e], "s-",
                  label="end-to-end training")  # fmt: skip
    left.set(xscale="log", yscale="log", xlabel="envs", ylabel="agent steps/s",
             title=f"scaling with envs ({machine['cores']} cores)")  # fmt: skip
    left.set_xticks([1, 2, 4, 8, 16], ["1", "2", "4", "8", "16"])
    left.legend()
    if batch:
        sizes = [int(r["contender"].split()[-1]) for r in batch]
        right.plot(sizes, [r["ms_per_update"] for r in batch], "o-")
    right.set(xscale="log", yscale="log", xlabel="batch size", ylabel="ms per update",
              title="update cost against batch size (fp32)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    curve = [{"envs": r["envs"], "env steps/s": r["agent_steps_per_s"]} for r in env]
    for row in curve:
        match = [r["ours steps/s"] for r in e2e if r["envs"] == row["envs"]]
        row["training steps/s"] = match[0] if match else None
    return curve


def update_readme(section: str, readme: Path = README) -> bool:
    """Replace the README's performance block with `section`; False when there is none."""
    if not readme.is_file():
        return False
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{section}{README_END}{tail}")
    return True


def run(quick: bool = False, out_dir: Path | str = RESULTS_DIR) -> dict[str, Any]:
    """Run every part, then write the combined record, the plots and the README section."""
    for part in PARTS:
        print(f"== bench {part}", flush=True)
        importlib.import_module(f"atari_dqn.bench.{part}").run(quick=quick, out_dir=out_dir)
    return summarise(out_dir)


def summarise(out_dir: Path | str = RESULTS_DIR) -> dict[str, Any]:
    """The combined record, plots and README section from this machine's latest part records.

    Called after `bench all` and after any single part, so the README always shows the
    latest measurement of each part on this machine.
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
    record = {
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
        f"Measured by `python -m atari_dqn bench all` (`make bench`) on {where} (UTC: {when}); "
        f"each ratio compares ours with the peer in the same run. Full records: "
        f"`{out_dir / stem}.json` and the per-part files beside it.\n\n{markdown_table(rows)}\n"
        f"![benchmark ratios]({plot.as_posix()})\n"
        f"\nScaling with the number of envs (agent steps/s):\n\n{markdown_table(curve)}\n"
        f"![scaling]({scaling_plot.as_posix()})\n"
    )
    (out_dir / f"{stem}.md").write_text(f"# Benchmarks\n\n{section}")
    if update_readme(section):
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
    from atari_dqn.config import ConfigError

    records = []
    for path in (a, b):
        try:
            records.append(_flatten(json.loads(path.read_text())))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read benchmark record '{path}': {exc}") from exc
    old, new = records
    rows = [
        {"figure": key, f"A: {a.name}": old[key], f"B: {b.name}": new[key],
         "change": f"{(new[key] / old[key] - 1) * 100:+.1f}%" if old[key] else "n/a"}
        for key in sorted(old.keys() & new.keys())
    ]  # fmt: skip
    if not rows:
        raise ConfigError(f"'{a}' and '{b}' share no figures to compare")
    print(markdown_table(rows), end="")
    return 0
