"""The training loop: act in N envs, store frames in the ring, learn every 4 agent steps.

Schedule (DeepMind's `NeuralQLearner.lua`, all counts in agent steps summed over envs):
random actions until `replay_start_steps`; then one update per `update_every_steps`
transitions added, whatever the number of envs (the paper's replay ratio); epsilon
anneals linearly over `epsilon_decay_steps` counted from the end of replay start; the
target network is copied every `target_update_steps`.

Overlap (`loop.overlap`): the learner and the envs work at the same time. Each step sends
the actions to the env workers, runs the updates owed so far while they play, then waits
for the frames. The schedule and the replay ratio are unchanged; what differs from the
plain order is that the agent acts on weights one step's updates older, and that those
updates' batches cannot contain the transitions of the step in flight.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np
import torch

from atari_dqn import checkpoint as ckpt
from atari_dqn.acting import Acting
from atari_dqn.config import Config
from atari_dqn.configfile import to_dict
from atari_dqn.env.vector import VectorEnv
from atari_dqn.errors import CheckpointError, DivergedError, UserError
from atari_dqn.evaluate import eval_env_config, evaluate
from atari_dqn.learner import Learner, resolve_device
from atari_dqn.logs import RunLogs
from atari_dqn.replay.feed import Prefetcher, to_tensors
from atari_dqn.replay.ring import FrameRing
from atari_dqn.rundir import RunDir
from atari_dqn.stop import StopRequest
from atari_dqn.video import GameRecorder, VideoError, choose, write_videos

_RECENT_GAMES = 100
_PROGRESS_STEPS = 200  # agent steps between moves of the progress bar


def epsilon_at(cfg: Config, agent_steps: int) -> float:
    """Exploration rate after `agent_steps`: 1.0 through replay start, then a linear decay.

    DeepMind's code anneals over `ep_endt` steps counted from `learn_start`, not from 0.
    """
    loop = cfg.loop
    since_start = max(0, agent_steps - loop.replay_start_steps)
    if loop.epsilon_decay_steps == 0:
        return loop.epsilon_end
    remaining = max(0.0, 1.0 - since_start / loop.epsilon_decay_steps)
    return loop.epsilon_end + (loop.epsilon_start - loop.epsilon_end) * remaining


def updates_due(cfg: Config, agent_steps: int) -> int:
    """Learner updates owed after `agent_steps`: one per `update_every_steps` past replay start."""
    return max(0, agent_steps - cfg.loop.replay_start_steps) // cfg.loop.update_every_steps


class Trainer:
    """One run's envs, replay, learner and counters; `run()` trains to `loop.total_steps`."""

    def __init__(self, cfg: Config, run: RunDir) -> None:
        self.cfg = cfg
        self.rundir = run
        n, history, size = cfg.loop.num_envs, cfg.replay.history_length, cfg.env.screen_size
        on_cuda = resolve_device(cfg.learner.device).type == "cuda"
        self.overlap = cfg.loop.overlap == "true" or (cfg.loop.overlap == "auto" and on_cuda)
        """Updates run while worker processes step the envs (so none steps in-process)."""
        self.envs = VectorEnv(cfg.env, n, seed=cfg.seed, in_process=not self.overlap)
        self.n_actions = self.envs.n_actions
        self.ring = FrameRing(
            cfg.replay.capacity, n, history_length=history, frame_shape=(size, size), seed=cfg.seed
        )
        torch.manual_seed(cfg.seed)
        self.learner = Learner(
            self.n_actions, cfg.learner, history_length=history, screen_size=size, seed=cfg.seed
        )
        self.acting = Acting(self.envs, self.ring, history, size)
        self.rng = np.random.default_rng([cfg.seed, 1])  # exploration draws
        self.agent_steps = 0
        self.updates = 0
        self.games = 0
        self.recent_returns: deque[float] = deque(maxlen=_RECENT_GAMES)
        self.env_started = False
        self.learn_after_steps = 0  # > 0 while a ring restored empty refills (see restore)
        self.prefetch: Prefetcher | None = None
        self.pending_batch: dict[str, torch.Tensor] | None = None  # restored by restore

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "game": self.cfg.env.game,
            "n_actions": self.n_actions,
            "config": to_dict(self.cfg),
            "counters": {
                "agent_steps": self.agent_steps,
                "updates": self.updates,
                "games": self.games,
                "learn_after_steps": self.learn_after_steps,
            },
            "recent_returns": list(self.recent_returns),
            "learner": self.learner.state_dict(),
            "exploration_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "envs": self.envs.get_state(),
            # The batch the prefetch thread drew ahead, so a resumed run learns from it too.
            "prefetch_pending": self.prefetch.pending() if self.prefetch else None,
        }

    def restore(self, state: dict[str, Any], ring: FrameRing | None) -> None:
        """Continue from a checkpoint: its `state_dict()` and its saved ring, if any.

        Without a saved ring (`checkpoint.save_replay=false`) every env starts a new game
        and the ring refills for `loop.replay_start_steps` before learning resumes."""
        counters = state["counters"]
        self.agent_steps = counters["agent_steps"]
        self.updates = counters["updates"]
        self.games = counters["games"]
        self.learn_after_steps = counters["learn_after_steps"]
        self.recent_returns.extend(state["recent_returns"])
        self.learner.load_state_dict(state["learner"])
        self.rng.bit_generator.state = state["exploration_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.envs.set_state(state["envs"])
        self.pending_batch = state["prefetch_pending"]
        self.env_started = True
        if ring is not None:
            if ring.spec() != self.ring.spec():
                raise CheckpointError(
                    f"the checkpoint's replay in '{self.rundir}' is {ring.spec()}, but the run's "
                    f"config makes {self.ring.spec()}: resume with the run's own "
                    "replay.capacity, replay.history_length, loop.num_envs and env.screen_size"
                )
            self.ring = self.acting.memory = ring
        elif self.cfg.checkpoint.save_replay:
            raise CheckpointError(f"checkpoint in '{self.rundir}' has no replay file")
        else:
            self.acting.start()
            self.learn_after_steps = self.agent_steps + self.cfg.loop.replay_start_steps
            print("the checkpoint has no replay (checkpoint.save_replay=false): refilling it first")

    def save(self) -> None:
        """Write a checkpoint, unless the learner has diverged (then the last good one stays)."""
        self._check_finite()
        replay = self.ring if self.cfg.checkpoint.save_replay else None
        ckpt.save_checkpoint(self.rundir, self.state_dict(), replay)
        self.checkpoint_step = self.agent_steps
        self.rundir.write_record(
            self.rundir.training_games,
            {
                "agent_steps": self.agent_steps,
                "emulator_frames": self.agent_steps * self.cfg.env.frame_skip,
                "scores": list(self.recent_returns),
            },
        )

    def _check_finite(self) -> None:
        """Stop with DivergedError once an update's loss or Q-values were NaN or infinite."""
        first = self.learner.first_nonfinite_update()
        if first is None or not self.cfg.learner.stop_on_nonfinite:
            return
        raise DivergedError(
            f"the loss or the Q-values became NaN or infinite at update "
            f"{self._updates_at_start + first:,} (found by agent step {self.agent_steps:,}); "
            f"the run stopped, and its last good checkpoint (agent step "
            f"{self.checkpoint_step:,}) is kept: a lower learner.learning_rate may help "
            "(learner.stop_on_nonfinite=false trains on regardless)"
        )

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.cfg
        self._updates_at_start = self.updates
        self.checkpoint_step = self.agent_steps
        logs = RunLogs(
            self.rundir,
            cfg.logging,
            total_steps=cfg.loop.total_steps,
            start_step=self.agent_steps,
            game=cfg.env.game,
            action_names=self.envs.action_meanings,
        )
        prefetch = cfg.replay.prefetch
        if prefetch == "always" or (prefetch == "auto" and self.learner.device.type == "cuda"):
            self.prefetch = Prefetcher(
                self.ring,
                cfg.learner.batch_size,
                self.learner.device,
                pending=self.pending_batch,
                destination=self.learner.input_buffers(cfg.learner.batch_size),
            )
        try:
            with StopRequest(self.rundir.stop_request) as stop:
                self._train(logs, stop)
            if stop.signal is not None:
                self.save()
                logs.event(
                    f"{stop.reason}: checkpoint saved at {self.agent_steps:,} agent steps. "
                    f"Resume with:\n  python -m atari_dqn train --resume {self.rundir}"
                )
                return stop.exit_code
            self.save()
            logs.event(
                f"done: {self.agent_steps:,} agent steps "
                f"({self.agent_steps * cfg.env.frame_skip:,} frames) in {self.rundir}"
            )
            return 0
        except UserError as exc:  # a full disk, a diverged run: in the run's log too
            logs.event(f"stopped at {self.agent_steps:,} agent steps: {exc}")
            raise
        finally:
            if self.prefetch is not None:
                self.prefetch.close()
            logs.close()
            self.envs.close()

    def _train(self, logs: RunLogs, stop: StopRequest) -> None:
        cfg = self.cfg
        n = cfg.loop.num_envs
        if not self.env_started:
            self.acting.start()
            self.env_started = True
        interval = _Interval(self.n_actions, self.agent_steps)
        while self.agent_steps < cfg.loop.total_steps and not stop.requested:
            epsilon = epsilon_at(cfg, self.agent_steps)
            actions = self.acting.begin(self.learner, epsilon, self.rng)
            if self.overlap:  # the updates owed so far run while the workers step the envs
                self._learn()
            out = self.acting.finish()
            previous = self.agent_steps
            self.agent_steps += n
            interval.actions += np.bincount(actions, minlength=self.n_actions)
            for i in np.flatnonzero(out.game_over):
                self.games += 1
                self.recent_returns.append(float(out.episode_returns[i]))
                logs.tensorboard.scalars(
                    self.agent_steps, {"episode/return": float(out.episode_returns[i])}
                )

            if not self.overlap:
                self._learn()

            if _crossed(previous, self.agent_steps, _PROGRESS_STEPS):
                logs.progress.advance(self.agent_steps)
            if _crossed(previous, self.agent_steps, cfg.learner.target_update_steps):
                self.learner.sync_target()
            if _crossed(previous, self.agent_steps, cfg.logging.interval_steps):
                logs.train_row(*interval.flush(self, epsilon))
                self._check_finite()
            if cfg.eval.interval_steps and _crossed(
                previous, self.agent_steps, cfg.eval.interval_steps
            ):
                self._evaluate(logs)
            if _crossed(previous, self.agent_steps, cfg.checkpoint.interval_steps):
                self.save()

    def _learn(self) -> None:
        """Run the updates owed at the current step count (none while a ring refills)."""
        cfg = self.cfg
        if self.agent_steps < self.learn_after_steps:
            self.updates = updates_due(cfg, self.agent_steps)  # refilling: learn nothing
        while self.updates < updates_due(cfg, self.agent_steps):
            batch = (
                self.prefetch.next()
                if self.prefetch is not None
                else to_tensors(self.ring.sample(cfg.learner.batch_size), self.learner.device)
            )
            self.learner.update(batch)
            self.updates += 1

    def _evaluate(self, logs: RunLogs) -> None:
        cfg = self.cfg
        recorder = GameRecorder() if cfg.eval.video else None
        result = evaluate(
            self.learner,
            cfg,
            episodes=cfg.eval.episodes,
            seed=cfg.seed + 1 + self.agent_steps,
            recorder=recorder,
        )
        if recorder is not None:  # the median game, as a video: how the play changes
            names, median = self.envs.action_meanings, choose(result.scores, ["median"])
            folder = self.rundir.training_videos
            try:
                for path in write_videos(recorder.traces(), median, eval_env_config(cfg), names,
                                         folder, self.agent_steps):  # fmt: skip
                    logs.event(f"wrote {path}")
            except VideoError as exc:  # a video is not worth a run: say so and go on training
                logs.event(f"no video of the evaluation at {self.agent_steps:,} steps: {exc}")
        logs.eval_row(
            {
                "agent_steps": self.agent_steps,
                "emulator_frames": self.agent_steps * cfg.env.frame_skip,
                "episodes": len(result.scores),
                "mean_score": result.mean,
                "ci95": result.ci95,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "min_score": min(result.scores),
                "max_score": max(result.scores),
                "scores": " ".join(f"{x:g}" for x in result.scores),
            }
        )


def _crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, after]: an interval boundary was passed."""
    return after // every > before // every


class _Interval:
    """One logging interval: its actions, its speed, and (from the learner, read once at
    `flush`) the means of the update metrics."""

    def __init__(self, n_actions: int, agent_steps: int) -> None:
        self.n_actions = n_actions
        self._reset(agent_steps)

    def _reset(self, agent_steps: int) -> None:
        self.actions = np.zeros(self.n_actions, dtype=np.int64)
        self.start_steps = agent_steps
        self.start_time = time.perf_counter()

    def flush(
        self, trainer: Trainer, epsilon: float
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        means = trainer.learner.take_metrics()
        elapsed = time.perf_counter() - self.start_time
        steps = trainer.agent_steps
        recent = trainer.recent_returns
        row = {
            "agent_steps": steps,
            "emulator_frames": steps * trainer.cfg.env.frame_skip,
            "updates": trainer.updates,
            "games": trainer.games,
            "epsilon": epsilon,
            "steps_per_second": (steps - self.start_steps) / max(elapsed, 1e-9),
            "mean_return_100": float(np.mean(recent)) if recent else float("nan"),
            "loss": float(means["loss"]) if "loss" in means else float("nan"),
            "mean_q": float(means["mean_q"]) if "mean_q" in means else float("nan"),
            "mean_max_q": float(means["max_q"]) if "max_q" in means else float("nan"),
            "replay_size": len(trainer.ring),
        }
        q_per_action = means.get("q_per_action", np.full(self.n_actions, np.nan))
        actions = self.actions
        self._reset(steps)
        return row, q_per_action, actions
