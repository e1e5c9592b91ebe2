"""Schedules that do not fit a run's budget: said once, at its start, one line each.

A budget (`loop.total_steps`) cut short of a preset's schedules is legal, and often meant (a
quick look at a config), but it changes what the run is: a target network never refreshed,
epsilon that never comes down, no evaluation. The run goes ahead; these lines say so.
"""

from __future__ import annotations

from atari_dqn.config import Config


def budget_warnings(cfg: Config) -> list[str]:
    """A line for each schedule of `cfg` that its `loop.total_steps` cuts short."""
    from atari_dqn.loop import epsilon_at  # the schedule itself, not a copy of it

    loop, total = cfg.loop, cfg.loop.total_steps
    start = loop.replay_start_steps
    budget = f"loop.total_steps={total:,}"
    if start >= total:
        return [
            f"loop.replay_start_steps={start:,} is at least {budget}: the run plays at random "
            "and never learns; raise loop.total_steps or lower loop.replay_start_steps"
        ]
    lines = []
    every = cfg.learner.target_update_steps
    if (start // every + 1) * every >= total:
        lines.append(
            f"learner.target_update_steps={every:,} copies the target network at no step "
            f"between learning's start ({start:,}) and the end ({budget}): it learns "
            "against its first target network; lower learner.target_update_steps"
        )
    end = epsilon_at(cfg, total)
    if start + loop.epsilon_decay_steps > total and end != loop.epsilon_end:
        lines.append(
            f"loop.epsilon_decay_steps={loop.epsilon_decay_steps:,} ends after {budget}: "
            f"epsilon ends at {end:.2f}, not loop.epsilon_end={loop.epsilon_end:g}; lower "
            "loop.epsilon_decay_steps"
        )
    interval = cfg.eval.interval_steps
    if cfg.eval.scores_from == "evaluation" and interval > total:
        lines.append(
            f"eval.interval_steps={interval:,} is more than {budget}: no evaluation runs "
            "during training; score the run with eval afterwards, or lower eval.interval_steps"
        )
    return lines
