"""What each switch of the DQN family costs end to end: ours with it beside ours without.

The same training as `bench e2e`'s (Breakout, batch 32, one update per 4 agent steps, the
learning phase timed from the end of its first quarter at epsilon 0.1, each run its own
process, rates pooled over the timed window), plain DQN and then each switch alone: Double
DQN, the dueling head, proportional prioritized replay, 3-step returns, C51's distributional
head and loss, noisy networks; then the first four together and all six (Rainbow's parts).
A switch's figure is its rate over plain DQN's, in the same run of the benchmark, at the
same number of envs. With noisy networks the network acts at every step whatever epsilon
says (Rainbow's epsilon is 0): its figure includes that cost.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from atari_dqn.bench.e2e import in_subprocess
from atari_dqn.bench.results import RESULTS_DIR, Headline, write_results

FOUR = (
    "learner.double_dqn=true",
    "learner.dueling=true",
    "replay.prioritized=true",
    "learner.n_step=3",
)
SWITCHES = {
    "plain DQN": (),
    "Double DQN": ("learner.double_dqn=true",),
    "dueling": ("learner.dueling=true",),
    "prioritized replay": ("replay.prioritized=true",),
    "3-step returns": ("learner.n_step=3",),
    "C51": ("learner.distributional=true",),
    "noisy nets": ("learner.noisy=true",),
    "all four": FOUR,
    "Rainbow (all six)": (*FOUR, "learner.distributional=true", "learner.noisy=true"),
}
TARGET_PRIORITIZED = 0.85  # prioritized replay costs at most 15% of the agent steps/s
HEADLINES = (
    Headline(
        "prioritized_vs_plain",
        "end to end: prioritized replay / uniform, same N",
        TARGET_PRIORITIZED,
    ),
)


def run(quick: bool = False, out_dir: Path | str = RESULTS_DIR) -> dict[str, Any]:
    """Measure each switch's agent steps/s beside plain DQN's; write `...-variants` records."""
    learn_steps, start_steps = (4_000, 2_000) if quick else (10_000, 5_000)
    repeats = 1 if quick else 3
    kwargs = dict(learn_steps=learn_steps, start_steps=start_steps, capacity=100_000, num_envs=1)
    rows = []
    for name, extra in SWITCHES.items():
        runs = [in_subprocess("ours", **kwargs, extra=extra) for _ in range(repeats)]
        rate = statistics.median(r["steps_per_second"] for r in runs)
        rows.append(
            {
                "switch": name,
                "overrides": " ".join(extra),
                "envs": 1,
                "median of runs": repeats,
                "steps/s": rate,
                "steps timed": min(r["steps_timed"] for r in runs),
            }
        )
        print(f"bench variants: {rows[-1]}", file=sys.stderr, flush=True)
    plain = rows[0]["steps/s"]
    for row in rows:
        row["/ plain"] = row["steps/s"] / plain
    ratios = {row["switch"]: row["/ plain"] for row in rows[1:]}
    summary = {
        "ratios_vs_plain_1env": ratios,
        "prioritized_vs_plain": ratios["prioritized replay"],
        "prioritized_target": TARGET_PRIORITIZED,
        "median_of_runs": repeats,
        "rate": "pooled: agent steps / wall seconds over the timed window (bench e2e's)",
    }
    write_results("variants", rows, summary, out_dir)
    return summary
