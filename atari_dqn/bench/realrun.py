"""A real training run, summarised as a benchmark record: what a user's run does, not a
window of a benchmark.

`python -m atari_dqn.bench.realrun RUN_DIR [--nvidia-smi LOG]` reads what the run wrote
(`metrics.csv` with its loop-phase timers and memory columns, `eval.json`, `config.yaml`)
and writes `<date>-<host>[-<gpu>]-run.{json,md}`: the sustained agent steps/s of its
learning phase (pooled over the logging intervals after the first learning one, with the
epsilon of those rows), where the time went, the GPU's time per update, the peak memory
(torch's allocator, `nvidia-smi` when its log is given, the trainer's and the env workers'
resident memory) and the evaluation's score with its interval beside random play's.
`make gpu-check` runs it after a real run of `configs/nature.yaml` on a GPU.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Any

from atari_dqn.bench.results import RESULTS_DIR, write_results
from atari_dqn.errors import ConfigError, UserError
from atari_dqn.rundir import RunDir
from atari_dqn.scores import lookup
from atari_dqn.timers import PHASES


def _number(row: dict[str, str], key: str) -> float:
    try:
        return float(row.get(key, "nan"))
    except ValueError:
        return math.nan


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def learning_intervals(rows: list[dict[str, str]]) -> list[tuple[int, dict[str, str]]]:
    """(agent steps, row) of each logging interval spent entirely learning, less the first
    one (its warm-ups: a graph's capture, torch.compile, the prefetch thread's start)."""
    learning = [
        (int(row["agent_steps"]) - int(before["agent_steps"]), row)
        for before, row in zip(rows, rows[1:], strict=False)
        if float(before["updates"]) > 0 and float(row["updates"]) > float(before["updates"])
    ]
    return learning[1:] if len(learning) > 1 else learning


def nvidia_smi_peak_mib(log: Path) -> float:
    """The largest `memory.used` in a log of `nvidia-smi --query-gpu=memory.used
    --format=csv,noheader,nounits -lms 500` (MiB); nan when it holds no reading."""
    readings = []
    for line in log.read_text().splitlines():
        try:
            readings.append(float(line.split(",")[0]))
        except ValueError:
            continue
    return max(readings, default=math.nan)


def summarise(run_dir: Path, nvidia_smi: Path | None = None) -> tuple[list, dict[str, Any]]:
    """(rows: one per learning interval, summary) of the run in `run_dir`."""
    run = RunDir(run_dir)
    cfg = run.read_config()
    if not run.metrics_csv.is_file():
        raise ConfigError(f"'{run}' has no metrics.csv: train it first")
    with run.metrics_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    intervals = learning_intervals(rows)
    if not intervals:
        raise ConfigError(f"'{run}' logged no interval while learning: train it longer")
    steps = sum(n for n, _ in intervals)
    timed = [row for _, row in intervals]
    phases = {p: sum(_number(r, f"time_{p}_s") for r in timed) for p in PHASES}
    wall = sum(phases.values())
    epsilons = [_number(r, "epsilon") for r in timed]
    record = run.read_record(run.eval_record)
    paper = lookup(cfg.env.game)
    gpu_ms = sorted(_finite([_number(r, "gpu_ms_per_update") for r in timed]))
    summary: dict[str, Any] = {
        "game": cfg.env.game,
        "num_envs": cfg.loop.num_envs,
        "replay_capacity": cfg.replay.capacity,
        "agent_steps_reached": int(rows[-1]["agent_steps"]),
        "learning_intervals_timed": len(timed),
        "agent_steps_timed": steps,
        "learning_agent_steps_per_s": steps / wall if wall else math.nan,
        "rate": "pooled: agent steps over the phases' wall seconds, learning intervals only",
        "epsilon_min": min(epsilons),
        "epsilon_max": max(epsilons),
        "time_shares": {p: round(s / wall, 4) for p, s in phases.items()} if wall else {},
        "gpu_ms_per_update_median": gpu_ms[len(gpu_ms) // 2] if gpu_ms else None,
        "gpu_memory_peak_mb_torch": max(
            _finite([_number(r, "gpu_memory_peak_mb") for r in rows]), default=None
        ),
        "gpu_memory_peak_mib_nvidia_smi": nvidia_smi_peak_mib(nvidia_smi) if nvidia_smi else None,
        "trainer_rss_peak_mb": max(_finite([_number(r, "trainer_rss_peak_mb") for r in rows])),
        "workers_rss_mb_max": max(
            _finite([_number(r, "workers_rss_mb") for r in rows]), default=None
        ),
    }
    if record is not None:
        summary["eval"] = {
            "agent_steps": record["agent_steps"],
            "episodes": record["episodes"],
            "mean": record["mean"],
            "ci95": [record["ci_low"], record["ci_high"]],
            "random_play": paper.random if paper else None,
        }
    table = [
        {
            "agent_steps": int(r["agent_steps"]),
            "steps/s": _number(r, "steps_per_second"),
            "epsilon": _number(r, "epsilon"),
            **{p: _number(r, f"time_{p}_s") for p in PHASES},
            "gpu ms/update": _number(r, "gpu_ms_per_update"),
        }
        for r in timed
    ]
    return table, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m atari_dqn.bench.realrun", description=__doc__)
    parser.add_argument("run_dir", help="a run directory written by `train`")
    parser.add_argument("--nvidia-smi", help="a log of nvidia-smi's memory.used readings")
    parser.add_argument("--out", default=str(RESULTS_DIR), help="results directory")
    args = parser.parse_args(argv)
    try:
        rows, summary = summarise(
            Path(args.run_dir), Path(args.nvidia_smi) if args.nvidia_smi else None
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json_path, _ = write_results("run", rows, summary, args.out)
    for key, value in summary.items():
        print(f"{key}: {value}")
    print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
