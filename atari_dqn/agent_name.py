"""What a run is, in words: the agent its config trains and the protocol that scores it.

The one place that names them, for the start of a run, its `run.log` and the report: a new
switch of the DQN family is named here, once, and every place that says what a run is
says it.
"""

from __future__ import annotations

from atari_dqn.config import Config


def agent_name(cfg: Config) -> str:
    """`Nature DQN`, `Double DQN`, `DQN + dueling`, `Double DQN + dueling + prioritized +
    3-step`, `DQN + C51`: the paper's agent when no switch of the family is on, else the
    switches on; all six are `Rainbow (...)` (Hessel et al. 2018); DrQ's augmentation is
    named as a switch too."""
    learner = cfg.learner
    parts = [
        "Double DQN" if learner.double_dqn else "DQN",
        *(["dueling"] if learner.dueling else []),
        *(["prioritized"] if cfg.replay.prioritized else []),
        *([f"{learner.n_step}-step"] if learner.n_step > 1 else []),
        *(["C51"] if learner.distributional else []),
        *(["noisy nets"] if learner.noisy else []),
        *(["DrQ augmentation"] if learner.augmentation == "drq" else []),
    ]
    if parts == ["DQN"]:
        return "Nature DQN"
    named = " + ".join(parts)
    return f"Rainbow ({named})" if len(parts) == 6 and learner.double_dqn else named


def protocol_name(cfg: Config) -> str:
    """How the run's score is measured: by evaluation games (epsilon, no-op starts, their
    frame cap), or from its last 100 training games; with sticky actions when it has them."""
    env, ev = cfg.env, cfg.eval
    if ev.scores_from == "training":
        scored = "scored on its last 100 training games"
    else:
        scored = (
            f"scored by {ev.episodes} evaluation games (epsilon {ev.epsilon:g}, up to "
            f"{ev.noop_max} no-ops, {ev.max_episode_frames:,} frames at most)"
        )
    if env.repeat_action_probability > 0:
        scored += f", sticky actions {env.repeat_action_probability:g}"
    if ev.benchmark == "atari100k":
        scored = f"Atari 100k benchmark, {scored}"
    return scored


def what_it_is(cfg: Config) -> str:
    """`agent: Nature DQN; scored by 30 evaluation games (...)`: the line a run starts with."""
    return f"agent: {agent_name(cfg)}; {protocol_name(cfg)}"
