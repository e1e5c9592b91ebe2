"""The runs and parts the tests build: the smoke config on the CPU, quiet, without
torch.compile; learners and policies built as a run builds them."""

from __future__ import annotations

from pathlib import Path

from atari_dqn import build
from atari_dqn.config import Config, EnvConfig, LearnerConfig
from atari_dqn.learner import Learner
from atari_dqn.policy import EpsilonGreedy
from atari_dqn.runtime import resolve

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
QUIET = ["logging.progress=false", "learner.device=cpu", "learner.compile=false"]
"""Overrides every such run takes: no progress bar, the CPU whatever the machine, eager."""


def learner_and_policy(
    n_actions: int = 4, seed: int = 0, screen_size: int = 84, **learner: object
) -> tuple[Learner, EpsilonGreedy]:
    """A learner of `n_actions` (its network initialised from `seed`) built as a run builds
    it, from learner.* settings (default: the CPU, eager), and the policy over its network."""
    settings = {"device": "cpu", "compile": False, **learner}
    cfg = Config(
        env=EnvConfig(screen_size=screen_size), learner=LearnerConfig(**settings), seed=seed
    )
    runtime = resolve(cfg)
    made = build.learner(cfg, runtime, n_actions)
    return made, build.policy(cfg, runtime, made.online, noise=made.noise)


def make_learner(
    n_actions: int = 4, seed: int = 0, screen_size: int = 84, **learner: object
) -> Learner:
    """`learner_and_policy`'s learner."""
    return learner_and_policy(n_actions, seed, screen_size, **learner)[0]
