"""Training beside a busy core: our run with a CPU-bound process beside it, over the same run
alone.

Users run tests, sweeps and evaluations beside a training. The run is `bench e2e`'s (1 env,
Breakout, batch 32, one update per 4 agent steps, timed from the end of its learning phase's
first quarter, each run its own process), once alone and once with one process spinning
beside it for the whole run, the two in turn, `repeats` times. On 2 cores with one of them
taken a run keeps at best about half its speed; the target asks for 0.4 of it. With
torch's threads spinning as long as libgomp's default has them, such a run kept a
fifteenth (`atari_dqn.cores`).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atari_dqn.bench.e2e import in_subprocess
from atari_dqn.bench.results import RESULTS_DIR, Headline, write_results
from atari_dqn.cores import SPIN_COUNT, WAIT_POLICY

TARGET = 0.4  # of the lone run's agent steps/s, with one of 2 cores taken
HEADLINES = (
    Headline("contended_vs_alone", "a busy core beside: ours / ours alone, 1 env", TARGET),
)


@contextlib.contextmanager
def busy_core() -> Iterator[subprocess.Popen]:
    """One process spinning on a core (as a test run or another training would) while the
    block runs."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield spinner
    finally:
        spinner.kill()
        spinner.wait()


def run(
    quick: bool = False, out_dir: Path | str = RESULTS_DIR, repeats: int | None = None
) -> dict[str, Any]:
    """Our rate alone and beside a busy core, each the median of `repeats` runs (default 3,
    1 in `quick`); write the `...-contended` records."""
    repeats = repeats or (1 if quick else 3)
    learn_steps, start_steps = (4_000, 2_000) if quick else (10_000, 5_000)
    kwargs = dict(learn_steps=learn_steps, start_steps=start_steps, capacity=100_000, num_envs=1)
    rates: dict[str, list[float]] = {"alone": [], "a busy core beside": []}
    for _ in range(repeats):  # in turn, so that a slow spell of the machine hits both
        for name, beside in (("alone", contextlib.nullcontext), ("a busy core beside", busy_core)):
            with beside():
                rates[name].append(in_subprocess("ours", **kwargs)["steps_per_second"])
            print(f"bench contended: {name}: {rates[name][-1]:.1f} steps/s", file=sys.stderr)
    rows = [
        {
            "run": name,
            "envs": 1,
            "median of runs": repeats,
            "steps/s": statistics.median(values),
            "each run": " ".join(f"{v:.1f}" for v in values),
        }
        for name, values in rates.items()
    ]
    alone, contended = (row["steps/s"] for row in rows)
    summary = {
        "contended_vs_alone": contended / alone,
        "contended_target": TARGET,
        "alone_steps_per_s": alone,
        "contended_steps_per_s": contended,
        "median_of_runs": repeats,
        # how torch's threads waited (atari_dqn.cores): unset is libgomp's default
        "openmp_wait": {name: os.environ.get(name, "unset") for name in (WAIT_POLICY, SPIN_COUNT)},
        "rate": "pooled: agent steps / wall seconds over the timed window (bench e2e's)",
    }
    write_results("contended", rows, summary, out_dir)
    return summary
