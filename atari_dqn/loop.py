"""The training loop: act in N envs, store frames in the ring, learn every 4 agent steps.

Schedule (DeepMind's `NeuralQLearner.lua`, all counts in agent steps summed over envs):
random actions until `replay_start_steps`; then one update per `update_every_steps`
transitions added, whatever the number of envs (the paper's replay ratio); epsilon
anneals linearly over `epsilon_decay_steps` counted from the end of replay start; the
target network is copied every `target_update_steps`.

The loop builds nothing: it is handed its parts (`atari_dqn.parts.Parts`: envs, ring,
learner, policy, the batch feed and the run's state), built once by `atari_dqn.build` from
the config or a checkpoint, or by a test. Every moment of it is charged to a phase
(`atari_dqn.timers`).

Overlap (the runtime's `overlap`): the learner and the envs work at the same time. Each
step sends the actions to the env workers, runs the updates owed so far while they play,
then waits for the frames. The schedule and the replay ratio are unchanged; what differs
from the plain order is that the agent acts on weights one step's updates older, and that
those updates' batches cannot contain the transitions of the step in flight.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from atari_dqn.acting import Acting
from atari_dqn.checkpoint import CheckpointWriter
from atari_dqn.config import Config
from atari_dqn.configfile import to_dict
from atari_dqn.env.step import VecStep
from atari_dqn.errors import DivergedError, Interrupted, UserError
from atari_dqn.evaluate import evaluate_and_film
from atari_dqn.logs import RunLogs
from atari_dqn.memory import processes_rss_mb, trainer_peak_rss_mb
from atari_dqn.parts import Parts
from atari_dqn.rundir import RunDir
from atari_dqn.runtime import Runtime
from atari_dqn.stop import SecondStop, StopRequest
from atari_dqn.timers import GpuClock, NullGpuClock, PhaseTimer, summary
from atari_dqn.video import VideoError


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


def importance_exponent_at(cfg: Config, agent_steps: int) -> float:
    """Prioritized replay's beta after `agent_steps`: `replay.importance_exponent_start`
    through replay start, then rising linearly to 1 at `loop.total_steps` (Schaul et al.
    2016, section 3.4: the correction is complete when the run ends)."""
    start, end = cfg.loop.replay_start_steps, cfg.loop.total_steps
    beta_0 = cfg.replay.importance_exponent_start
    if end <= start:
        return 1.0
    done = min(1.0, max(0.0, (agent_steps - start) / (end - start)))
    return beta_0 + (1.0 - beta_0) * done


def updates_due(cfg: Config, agent_steps: int) -> int:
    """Learner updates owed after `agent_steps`: one per `update_every_steps` past replay start."""
    return max(0, agent_steps - cfg.loop.replay_start_steps) // cfg.loop.update_every_steps


class Trainer:
    """Trains `parts` to `loop.total_steps`: `run()` owns them from then on and closes them."""

    def __init__(
        self,
        cfg: Config,
        run: RunDir,
        runtime: Runtime,
        parts: Parts,
        logs: RunLogs,
        checkpoint_step: int | None = None,
    ) -> None:
        """`checkpoint_step`: the agent step of the checkpoint `parts` were restored from."""
        self.cfg, self.rundir, self.runtime, self.parts, self.logs = cfg, run, runtime, parts, logs
        self.state = parts.state
        self.acting = Acting(parts.envs, parts.ring, cfg.replay.history_length, cfg.env.screen_size)
        self.timer = PhaseTimer()
        self.run_seconds = dict.fromkeys(self.timer.take(), 0.0)
        """Seconds per phase over this process's part of the run (`run.log`'s last line)."""
        self.gpu = GpuClock() if runtime.on_cuda else NullGpuClock()
        self.checkpoints = CheckpointWriter(run, saved_step=checkpoint_step)
        self._interval = _Interval(parts.envs.n_actions, self.state.agent_steps)
        self._updates_at_start = self.state.updates

    # -- the checkpoint -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs besides the replay (`atari_dqn.build` reads it back)."""
        parts = self.parts
        return {
            "game": self.cfg.env.game,
            "n_actions": parts.envs.n_actions,
            "config": to_dict(self.cfg),
            **self.state.state_dict(),
            "learner": parts.learner.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "envs": parts.envs.get_state(),
            # The batch the feed drew ahead, so a resumed run learns from it too.
            "prefetch_pending": parts.feed.pending(),
        }

    def save(self, background: bool) -> None:
        """Checkpoint now, unless the learner has diverged (then the last good one stays).
        With `background`, the replay is written while training goes on."""
        self._check_finite()
        s = self.state
        games = {
            "agent_steps": s.agent_steps,
            "emulator_frames": s.agent_steps * self.cfg.env.frame_skip,
            "scores": list(s.recent_returns),
        }
        replay = self.parts.ring if self.cfg.checkpoint.save_replay else None
        self.checkpoints.save(
            s.agent_steps,
            self.state_dict(),
            replay,
            background=background,
            also=lambda: self.rundir.write_record(self.rundir.training_games, games),
        )

    def _check_finite(self) -> None:
        """Stop with DivergedError once an update's loss or Q-values were NaN or infinite."""
        first = self.parts.learner.first_nonfinite_update()
        if first is None or not self.cfg.learner.stop_on_nonfinite:
            return
        raise DivergedError(
            f"the loss or the Q-values became NaN or infinite at update "
            f"{self._updates_at_start + first:,} (found by agent step "
            f"{self.state.agent_steps:,}); the run stopped, keeping its last good checkpoint "
            f"({self.checkpoints.describe_kept()}): a lower learner.learning_rate "
            "may help (learner.stop_on_nonfinite=false trains on regardless)"
        )

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> int:
        """Train, checkpoint at the end or on a stop request; the exit status."""
        logs, s = self.logs, self.state
        try:
            with StopRequest(self.rundir.stop_request) as stop:
                try:
                    self._train(stop)
                    with self.timer.checkpoint:
                        self.checkpoints.wait()
                        self.save(background=False)
                except SecondStop as second:
                    raise self._interrupted(second.signal_name, second.exit_code) from None
            if stop.signal is not None:
                logs.event(
                    f"{stop.reason}: checkpoint saved at {s.agent_steps:,} agent steps. "
                    f"Resume with:\n  {self.rundir.resume_command()}"
                )
                return stop.exit_code
            logs.event(
                f"done: {s.agent_steps:,} agent steps "
                f"({s.agent_steps * self.cfg.env.frame_skip:,} frames) in {self.rundir}"
            )
            return 0
        except UserError as exc:  # a full disk, a diverged run: in the run's log too
            logs.event(f"stopped at {s.agent_steps:,} agent steps: {exc}", echo=False)
            raise
        finally:
            self._add_interval_times()
            logs.event(f"time: {summary(self.run_seconds)}", echo=False)
            self.checkpoints.abandon()
            self.parts.close()
            logs.close()

    def _interrupted(self, signal_name: str, exit_code: int) -> Interrupted:
        """What a second stop signal says: no new checkpoint, and which one remains."""
        self.checkpoints.abandon()
        kept = self.checkpoints.describe_kept()
        then = (
            f"resume with {self.rundir.resume_command()}"
            if self.checkpoints.saved_step is not None
            else f"{self.rundir.resume_command()} will start the run again from step 0"
        )
        return Interrupted(
            f"a second {signal_name}: the run stopped without a new checkpoint; "
            f"{kept} remains: {then}",
            exit_code,
        )

    def _train(self, stop: StopRequest) -> None:
        cfg, s, timer, parts = self.cfg, self.state, self.timer, self.parts
        n = cfg.loop.num_envs
        if not parts.envs_started:
            self.acting.start()
            parts.envs_started = True
        learning_from = max(cfg.loop.replay_start_steps, s.learn_after_steps)
        self.logs.progress.begin(s.agent_steps, learning_from)
        while s.agent_steps < cfg.loop.total_steps and not stop.requested:
            epsilon = epsilon_at(cfg, s.agent_steps)
            with timer.act:
                actions = self.acting.begin(parts.policy, epsilon, s.rng)
            if self.runtime.overlap:  # the updates owed so far run while the workers step
                self._learn()
            with timer.env:
                out = self.acting.wait()
            with timer.ring:
                self.acting.record(out)
            previous = s.agent_steps
            s.agent_steps += n
            self._interval.actions += np.bincount(actions, minlength=parts.envs.n_actions)
            with timer.log:
                self._games_over(out)
            if not self.runtime.overlap:
                self._learn()
            self._after_step(previous, epsilon)

    def _games_over(self, out: VecStep) -> None:
        s = self.state
        for i in np.flatnonzero(out.game_over):
            s.games += 1
            s.recent_returns.append(float(out.episode_returns[i]))
            self.logs.tensorboard.scalars(
                s.agent_steps, {"episode/return": float(out.episode_returns[i])}
            )

    def _learn(self) -> None:
        """Run the updates owed at the current step count (none while a ring refills)."""
        cfg, s, timer = self.cfg, self.state, self.timer
        if s.agent_steps < s.learn_after_steps:
            s.updates = updates_due(cfg, s.agent_steps)  # refilling: learn nothing
        feed = self.parts.feed
        beta = importance_exponent_at(cfg, s.agent_steps)
        while s.updates < updates_due(cfg, s.agent_steps):
            with timer.batch:
                batch = feed.next(beta)
            with timer.update:
                self.gpu.start()
                metrics = self.parts.learner.update(batch)
                self.gpu.stop()
            with timer.batch:  # prioritized replay's priorities (nothing for a uniform one)
                feed.set_priorities(metrics["priority_each"])
            s.updates += 1

    def _after_step(self, previous: int, epsilon: float) -> None:
        """What happens at step counts: target copies, logs, evaluations, checkpoints."""
        cfg, s, timer = self.cfg, self.state, self.timer
        now = s.agent_steps
        if _crossed(previous, now, cfg.learner.target_update_steps):
            with timer.update:
                self.parts.learner.sync_target()
        with timer.log:
            self.logs.progress.tick(now, epsilon, s.recent_returns, self.parts.learner)
            if _crossed(previous, now, cfg.logging.interval_steps):
                self._log_interval(epsilon)
        if cfg.eval.interval_steps and _crossed(previous, now, cfg.eval.interval_steps):
            with timer.eval:
                self._evaluate()
        with timer.checkpoint:
            self.checkpoints.poll()
            if _crossed(previous, now, cfg.checkpoint.interval_steps):
                self.save(background=True)

    def _add_interval_times(self) -> dict[str, float]:
        """This interval's seconds per phase, a background save's hold on the ring charged
        to the checkpoint; added to the run's totals."""
        self.timer.move(self.parts.ring.take_held_seconds(), "ring", "checkpoint")
        seconds = self.timer.take()
        for phase, value in seconds.items():
            self.run_seconds[phase] += value
        return seconds

    def _log_interval(self, epsilon: float) -> None:
        self._check_finite()
        cfg, s, parts, runtime = self.cfg, self.state, self.parts, self.runtime
        seconds = self._add_interval_times()
        means = parts.learner.take_metrics()
        gpu_seconds, gpu_updates = self.gpu.take()
        steps_per_second, actions = self._interval.flush(s.agent_steps)
        row = {
            "agent_steps": s.agent_steps,
            "emulator_frames": s.agent_steps * cfg.env.frame_skip,
            "updates": s.updates,
            "games": s.games,
            "epsilon": epsilon,
            "steps_per_second": steps_per_second,
            "mean_return_100": float(np.mean(s.recent_returns)) if s.recent_returns else np.nan,
            "loss": float(means.get("loss", np.nan)),
            "mean_q": float(means.get("mean_q", np.nan)),
            "mean_max_q": float(means.get("max_q", np.nan)),
            "replay_size": len(parts.ring),
        }
        usage = {
            "gpu_ms_per_update": 1e3 * gpu_seconds / gpu_updates if gpu_updates else np.nan,
            "gpu_memory_peak_mb": (
                torch.cuda.max_memory_allocated(runtime.torch_device) / 2**20
                if runtime.on_cuda
                else np.nan
            ),
            "trainer_rss_peak_mb": trainer_peak_rss_mb(),
            "workers_rss_mb": processes_rss_mb(parts.envs.worker_pids),
        }
        q_per_action = means.get("q_per_action", np.full(parts.envs.n_actions, np.nan))
        self.logs.train_row(row, q_per_action, actions, seconds, usage)

    def _evaluate(self) -> None:
        cfg, s = self.cfg, self.state
        try:
            result = evaluate_and_film(
                self.parts.policy.without_noise(),
                cfg,
                episodes=cfg.eval.episodes,
                seed=cfg.seed + 1 + s.agent_steps,
                agent_steps=s.agent_steps,
                film=["median"] if cfg.eval.video else None,
                video_folder=self.rundir.training_videos,
                say=self.logs.event,
            )
        except VideoError as exc:  # a video is not worth a run: say so and go on training
            self.logs.event(f"no video of the evaluation at {s.agent_steps:,} steps: {exc}")
            return
        self.logs.eval_row(result.record(cfg, s.agent_steps))


def _crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, after]: an interval boundary was passed."""
    return after // every > before // every


class _Interval:
    """One logging interval: the actions taken and the steps made since it began."""

    def __init__(self, n_actions: int, agent_steps: int) -> None:
        self.n_actions = n_actions
        self._reset(agent_steps)

    def _reset(self, agent_steps: int) -> None:
        self.actions = np.zeros(self.n_actions, dtype=np.int64)
        self._start_steps = agent_steps
        self._start_time = time.perf_counter()

    def flush(self, agent_steps: int) -> tuple[float, np.ndarray]:
        """(agent steps/s, action counts) of the interval ending now; a new one begins."""
        elapsed = time.perf_counter() - self._start_time
        rate = (agent_steps - self._start_steps) / max(elapsed, 1e-9)
        actions = self.actions
        self._reset(agent_steps)
        return rate, actions
