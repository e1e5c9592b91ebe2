"""What the training loop is handed: its parts, and the state of the run they make.

`atari_dqn.build` makes them from a config (a new run) or a checkpoint (a resumed one); a
test may hand in its own. The loop builds nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from atari_dqn.acting import Policy
from atari_dqn.env.vector import VectorEnv
from atari_dqn.learner import Learner
from atari_dqn.replay.feed import Feed
from atari_dqn.replay.ring import FrameRing

RECENT_GAMES = 100


@dataclass
class TrainState:
    """Where a run is: its counters, its last games' scores and its exploration stream."""

    rng: np.random.Generator
    """The exploration draws (explore or not, random actions)."""
    agent_steps: int = 0
    updates: int = 0
    games: int = 0
    learn_after_steps: int = 0
    """> 0 while a replay restored empty refills: no update before this step."""
    recent_returns: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_GAMES))

    @classmethod
    def new(cls, seed: int) -> TrainState:
        return cls(rng=np.random.default_rng([seed, 1]))

    def state_dict(self) -> dict[str, Any]:
        return {
            "counters": {
                "agent_steps": self.agent_steps,
                "updates": self.updates,
                "games": self.games,
                "learn_after_steps": self.learn_after_steps,
            },
            "recent_returns": list(self.recent_returns),
            "exploration_rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state["counters"].items():
            setattr(self, key, value)
        self.recent_returns.extend(state["recent_returns"])
        self.rng.bit_generator.state = state["exploration_rng"]


@dataclass
class Parts:
    """What the loop is given (`atari_dqn.build` makes them; a test may hand in its own)."""

    envs: VectorEnv
    ring: FrameRing
    learner: Learner
    policy: Policy
    feed: Feed
    state: TrainState
    envs_started: bool = False
    """The envs are mid-game and the ring holds their frames (a resumed run's)."""

    def close(self) -> None:
        self.feed.close()
        self.envs.close()
