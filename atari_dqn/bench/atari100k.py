"""Atari 100k on the CPU: our DrQ(ε) beside Dopamine's own, learning the same game.

Both run DrQ(ε) as Dopamine's `labs/atari_100k/configs/DrQ_eps.gin` sets it (ours is
`configs/atari100k/drq_eps.yaml`, which cites that file line by line) on Breakout: random
play until 1,600 transitions are stored, then one update per agent step, each on a batch
of 32 with DrQ's augmentation and 10-step Double DQN targets. Both are timed in the
learning phase only, each in its own process, from its 800th update to the end, so that
neither's compilation is timed: ours from its run's timers (its logging intervals of 400
steps after the first two that learned, pooled: steps over seconds), Dopamine's read from
its own step counter by a driver that wraps its update method and leaves the agent as
shipped (`dopamine_driver.py`). Ours also runs with `learner.bf16_autocast=true`, and its
timers give the update's share of the learning phase.

Beside them, the floor under ours: the same network and update maths (the online network
on s with gradients, the same weights on s' without, the Huber loss, Adam as the preset
sets it) as a bare compiled torch loop on fixed batches, with no augmentation, metrics,
acting, env or replay (`bench.learner.BareLoop`). Dopamine's time a step over the floor's
time an update is the most any torch fp32 DrQ(ε) could be ahead of Dopamine's on this
machine: the ratio ours would reach if everything but a bare update cost nothing.

Dopamine is not a dependency: it runs from its own source tree and virtual environment,
named by the environment variables DOPAMINE_SRC and DOPAMINE_PYTHON (`docs/atari100k.md`
says how to make them). Without them, ours is measured alone and the record says why it
has no ratio.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from atari_dqn.bench.isolated import in_process, result_of, train_quietly
from atari_dqn.bench.results import RESULTS_DIR, Headline, write_results
from atari_dqn.configfile import PRESETS

GAME = "Breakout"
PRESET = PRESETS / "atari100k" / "drq_eps.yaml"
TARGET_RATIO = 3.0  # ours / Dopamine's agent steps/s while learning, same game
TARGET_UPDATE_SHARE = 0.9  # of our learning phase's time
HEADLINES = (
    Headline("ratio_vs_dopamine", "Atari 100k DrQ(ε): ours / Dopamine's, fp32", TARGET_RATIO),
    Headline("bf16_ratio_vs_dopamine", "Atari 100k DrQ(ε): ours bf16 / Dopamine's", TARGET_RATIO),
    Headline("update_share", "Atari 100k DrQ(ε): the update's share of ours", TARGET_UPDATE_SHARE),
    Headline(
        "floor_ratio_vs_dopamine",
        "Atari 100k DrQ(ε): a bare fp32 torch update alone / Dopamine's step (ours at most)",
        TARGET_RATIO,
    ),
)
LOG_EVERY = 400  # agent steps per logging interval of ours
# Ours learns from step 1,600 (updates_due is 0 there); its first two intervals that learn
# are not timed (the first holds torch.compile's work): timing starts at update 800.
TIMED_FROM_UPDATE = 2 * LOG_EVERY
BF16 = ("learner.bf16_autocast=true",)
DRIVER = Path(__file__).with_name("dopamine_driver.py")
SETUP = "set DOPAMINE_SRC and DOPAMINE_PYTHON (docs/atari100k.md, 'Dopamine beside ours')"


def time_ours(total_steps: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train our DrQ(ε) for `total_steps` agent steps; its learning phase's rate and the
    update's share of it, from the run's own record (`bench.realrun`)."""
    from atari_dqn.bench.realrun import summarise

    overrides = [f"loop.total_steps={total_steps}", f"logging.interval_steps={LOG_EVERY}", *extra]
    _, summary = train_quietly(PRESET, overrides, GAME, read=summarise)
    return {
        "steps_per_second": summary["learning_agent_steps_per_s"],
        "steps_timed": summary["agent_steps_timed"],
        "update_share": summary["time_shares"]["update"],
        "time_shares": summary["time_shares"],
    }


def dopamine() -> tuple[Path, Path] | str:
    """(Dopamine's source tree, its Python) from the environment, or why not."""
    src, python = os.environ.get("DOPAMINE_SRC"), os.environ.get("DOPAMINE_PYTHON")
    if not src or not python:
        return f"Dopamine not measured: {SETUP}"
    if not (Path(src) / "dopamine" / "labs" / "atari_100k").is_dir():
        return f"Dopamine not measured: DOPAMINE_SRC={src} holds no dopamine/labs/atari_100k"
    if not os.access(python, os.X_OK):
        return f"Dopamine not measured: DOPAMINE_PYTHON={python} is not an executable"
    return Path(src), Path(python)


def time_dopamine(src: Path, python: Path, total_steps: int) -> dict[str, Any]:
    """Dopamine's DrQ(ε) on GAME for `total_steps` agent steps, run by `dopamine_driver.py`
    in Dopamine's own Python: its learning phase's rate by its own step counter."""
    with tempfile.TemporaryDirectory() as tmp:
        return result_of(
            [
                str(python),
                str(DRIVER),
                *("--game", GAME, "--steps", str(total_steps)),
                *("--timed-from-update", str(TIMED_FROM_UPDATE), tmp),
            ],
            "Dopamine's run",
            cwd=src,
            env={**os.environ, "PYTHONPATH": str(src)},
        )


def time_floor(updates: int) -> dict[str, Any]:
    """ms per update of the bare loop (`bench.learner.BareLoop`, compiled as the preset
    compiles ours) at the preset's network and optimiser, timed over `updates` updates
    after as many to compile and warm up."""
    import torch

    from atari_dqn.bench.learner import BareLoop, fixed_batches, learner_of, time_updates
    from atari_dqn.configfile import load_config

    cfg = load_config(PRESET, [], game=GAME)
    torch.manual_seed(cfg.seed)
    reference = learner_of(cfg)
    bare = BareLoop(reference, compiled=reference.runtime.compile)
    device = reference.device
    batches = fixed_batches(cfg.learner.batch_size, 4, device)
    time_updates(bare.update, batches, updates, device)
    seconds = time_updates(bare.update, batches, updates, device)
    return {"ms_per_update": 1e3 * seconds, "updates_timed": updates}


_PARTS = {"ours": time_ours, "floor": time_floor}


def run(quick: bool = False, out_dir: Path | str = RESULTS_DIR) -> dict[str, Any]:
    """Ours in fp32 and bf16 and, where it is set up, Dopamine's, on the same game and
    steps; write the `...-atari100k` records."""
    total = 4_000 if quick else 6_000
    module = "atari_dqn.bench.atari100k"
    ours = in_process(module, "ours", {"total_steps": total})
    bf16 = in_process(module, "ours", {"total_steps": total, "extra": BF16})
    floor = in_process(module, "floor", {"updates": 300 if quick else 600})
    rows = [
        {"agent": "ours DrQ(ε), fp32", **_columns(ours)},
        {"agent": "ours DrQ(ε), bf16 autocast", **_columns(bf16)},
        {
            "agent": "the floor: a bare fp32 update alone, one per step",
            "steps/s while learning": 1e3 / floor["ms_per_update"],
            "steps timed": floor["updates_timed"],
            "update share": 1.0,
        },
    ]
    summary: dict[str, Any] = {
        "game": GAME,
        "agent_steps": total,
        "ours_steps_per_s": ours["steps_per_second"],
        "ours_bf16_steps_per_s": bf16["steps_per_second"],
        "update_share": ours["update_share"],
        "update_share_bf16": bf16["update_share"],
        "time_shares": ours["time_shares"],
        # one update per agent step: the update's share of a step's time
        "ours_ms_per_update": 1e3 * ours["update_share"] / ours["steps_per_second"],
        "floor_ms_per_update": floor["ms_per_update"],
        "targets": {"ratio": TARGET_RATIO, "update_share": TARGET_UPDATE_SHARE},
        "rate": f"agent steps / seconds from update {TIMED_FROM_UPDATE} to the end, both",
    }
    peer = dopamine()
    if isinstance(peer, str):
        summary["dopamine"] = peer
        print(f"bench atari100k: {peer}", file=sys.stderr)
    else:
        theirs = time_dopamine(*peer, total_steps=total)
        rows.append({"agent": "Dopamine DrQ(ε) (JAX)", **_columns(theirs)})
        summary |= {
            "dopamine_steps_per_s": theirs["steps_per_second"],
            # Dopamine's update period, as run: one update per agent step, as ours
            "dopamine_updates_per_step": theirs["updates_timed"] / theirs["steps_timed"],
            "dopamine": theirs.get("versions", {}),
            "ratio_vs_dopamine": ours["steps_per_second"] / theirs["steps_per_second"],
            "bf16_ratio_vs_dopamine": bf16["steps_per_second"] / theirs["steps_per_second"],
            "floor_ratio_vs_dopamine": 1e3 / floor["ms_per_update"] / theirs["steps_per_second"],
        }
    write_results("atari100k", rows, summary, out_dir)
    return summary


def _columns(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "steps/s while learning": result["steps_per_second"],
        "steps timed": result["steps_timed"],
        "update share": result.get("update_share", "n/a"),
    }
