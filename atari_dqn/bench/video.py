"""What filming costs: an evaluation with recording and videos beside the same without.

The same evaluation (same learner, seed, games; the default protocol's 30 games, as
`eval --video` plays them) runs with and without a `GameRecorder`, interleaved round by
round; the recorded one also writes the videos of its best, median and worst games. The
figure is the evaluation's speed with recording over its speed without (1.0: free); the
target is a cost under 20% of the time without.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from atari_dqn.bench.results import RESULTS_DIR, Headline, write_results

GAME = "Breakout"
TARGET = 1 / 1.2  # time with recording at most 1.2x the time without
HEADLINES = (
    Headline(
        "speed_with_video_vs_without",
        "video: evaluation speed, recording and filming 3 games / without",
        TARGET,
    ),
)


def run(quick: bool = False, out_dir: Path | str = RESULTS_DIR) -> dict[str, Any]:
    from atari_dqn import build
    from atari_dqn.configfile import load_config
    from atari_dqn.env.atari import action_meanings
    from atari_dqn.evaluate import eval_env_config, evaluate
    from atari_dqn.runtime import resolve
    from atari_dqn.video import GameRecorder, choose, write_videos

    cfg = load_config(None, ["learner.compile=false"], game=GAME)
    episodes, rounds = (8, 2) if quick else (cfg.eval.episodes, 3)
    names = action_meanings(cfg.env)
    runtime = resolve(cfg)
    policy = build.policy(cfg, runtime, build.learner(cfg, runtime, len(names)).online)
    times: dict[str, list[float]] = {"without": [], "with": []}
    frames = 0
    for r in range(rounds):
        for mode in ("without", "with"):
            recorder = GameRecorder() if mode == "with" else None
            start = time.perf_counter()
            result = evaluate(policy, cfg, episodes=episodes, seed=r, recorder=recorder)
            if recorder is not None:
                with tempfile.TemporaryDirectory() as tmp:
                    games = choose(result.scores, ["best", "median", "worst"])
                    write_videos(
                        recorder.traces(), games, eval_env_config(cfg), names, Path(tmp), 0
                    )
                frames += sum(result.steps[i] for i in games)
            times[mode].append(time.perf_counter() - start)
    without, with_video = (statistics.median(times[m]) for m in ("without", "with"))
    rows = [
        {
            "mode": mode,
            "episodes": episodes,
            "median_seconds": statistics.median(t),
            "rounds": len(t),
        }
        for mode, t in times.items()
    ]
    summary = {
        "speed_with_video_vs_without": without / with_video,
        "recording_cost_fraction": with_video / without - 1,
        "target_cost_fraction": 0.2,
        "met": with_video <= 1.2 * without,
        "video_frames_written": frames,
        "episodes_per_evaluation": episodes,
    }
    write_results("video", rows, summary, out_dir)
    return summary
