"""The learner: gradient steps on batches, target copies, and the metrics of both.

`Learner` owns the online network it is given, a target copy of it, the optimiser and, for
a noisy network or an augmented batch, the generator their random draws come from. What an
update minimises is the agent's objective (`atari_dqn.objectives`, chosen once at
construction; its maths are the pure functions of `atari_dqn.losses`), so every agent of
the family runs the same update.
Its hot path is free of host syncs: metrics are summed on the device and read once per
logging interval (`take_metrics`). How the update runs (eagerly, compiled, or as one
captured CUDA graph) is the runtime's decision. Acting is not the learner's job:
`atari_dqn.policy` reads the online network (and draws its noise from the same generator).

With the target synced at every update (DrQ's `target_update_period = 1`), the target
network is the online one itself: each update bootstraps from the weights before it, with
no copy made and, for Double DQN, one pass on s' serving both choosing and valuing.
"""

from __future__ import annotations

import copy
import logging
import warnings

import numpy as np
import torch

from atari_dqn import runtime as rt
from atari_dqn.augment import draw_shifts, intensity, shift, shift_on_host
from atari_dqn.config import LearnerConfig
from atari_dqn.cuda_graphs import CapturedStep, StateSnapshot
from atari_dqn.network import NatureCNN
from atari_dqn.objectives import Noise, make_objective
from atari_dqn.optim import DeepMindRMSprop, make_optimizer
from atari_dqn.replay.batch import Batch
from atari_dqn.replay.feed import deliver, tensor_batch
from atari_dqn.runtime import Runtime


class Learner:
    """Learns `online` (a Q-network, moved here to the runtime's device) from batches:
    its target copy, the optimiser, the update and the metric sums.

    `generator`: where a noisy network's noise and the batch augmentation's draws come from
    (`Runtime.generator`, on the runtime's device); None when there are neither.
    `target_is_online`: the target is synced before every update, so it is the online
    network itself (`sync_target` then has nothing to do)."""

    METRICS = ("loss", "mean_q", "max_q", "q_per_action", "td_abs")

    def __init__(
        self,
        online: NatureCNN,
        cfg: LearnerConfig,
        runtime: Runtime,
        generator: torch.Generator | None = None,
        target_is_online: bool = False,
    ) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.device = runtime.torch_device
        self.online = runtime.place(online)
        if target_is_online:
            self.target = self.online
        else:
            self.target = copy.deepcopy(self.online).requires_grad_(False)
        augmented = cfg.augmentation != "none"
        if (generator is None) != (online.noise_size == 0 and not augmented):
            raise ValueError("a noisy network or augmented batches need a generator, and only they")
        self.generator = generator
        self._draw_noise = self._fresh_noise if online.noise_size else self._no_noise
        self._augmented = augmented
        self._objective = make_objective(cfg, self.online, target_is_online)
        self.n_actions: int = online.n_actions
        self.optimizer = make_optimizer(
            self.online.parameters(), cfg, capturable=runtime.cuda_graph
        )
        self._history = online.input_shape[0]
        self._inputs: Batch | None = None  # static device buffers (not on the CPU)
        # Sums of each update's metrics since `take_metrics`, on the device.
        self._sums = {
            k: torch.zeros(self.n_actions if k == "q_per_action" else (), device=self.device)
            for k in self.METRICS
        }
        self._count = 0
        # Updates made, and the first whose loss or Q-values were not finite (-1: none yet),
        # counted on the device so that checking costs no sync per update.
        self._made = torch.zeros((), dtype=torch.int64, device=self.device)
        self._first_nonfinite = torch.full((), -1, dtype=torch.int64, device=self.device)
        self._graph: CapturedStep | None = None
        self._loss_fn = self._forward_loss
        self._step_fn = self.optimizer.step
        if runtime.compile:
            # Compiling optimizer.step logs that torch.optim's profiler annotation is
            # ignored: harmless, and it would break into the progress bar.
            logging.getLogger("torch._dynamo.variables.ctx_manager").setLevel(logging.ERROR)
            self._loss_fn = torch.compile(self._forward_loss)
            # A compiled step resumes exactly only if the optimiser's state exists before its
            # first step, as DeepMindRMSprop's does: torch's optimisers create theirs lazily,
            # so a fresh and a resumed run would trace different graphs (measured: Adam's
            # weights then differ after a resume). Their foreach step stays eager.
            if isinstance(self.optimizer, DeepMindRMSprop):
                self._step_fn = torch.compile(self.optimizer.step)
        self.compiled_ok = not runtime.compile
        """Whether the update runs as the runtime asked: False until a compiled one ran."""

    # -- one update -------------------------------------------------------------------------

    def _forward_loss(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        discount: torch.Tensor,
        next_obs: torch.Tensor,
        weight: torch.Tensor,
        noise: Noise,
        offsets: torch.Tensor | None,
        normals: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The augmentation (its shift unless already made: `_augmentation`), the forward
        passes and the loss; the part of an update that torch.compile fuses."""
        if offsets is not None:
            obs, next_obs = shift(obs, offsets[0]), shift(next_obs, offsets[1])
        if normals is not None:
            obs, next_obs = intensity(obs, normals[0]), intensity(next_obs, normals[1])
        memory_format = self.runtime.memory_format
        obs = obs.contiguous(memory_format=memory_format)
        next_obs = next_obs.contiguous(memory_format=memory_format)
        with rt.autocast(self.device, self.cfg.bf16_autocast):
            outputs = self._objective.forward(self.online, self.target, obs, next_obs, noise)
        # The loss and its reductions stay in float32, outside autocast.
        out = self._objective.loss(outputs, action, reward, discount, weight)
        q = out.q_tm1
        metrics = {
            "loss": out.loss.detach(),
            "mean_q": q.gather(1, action.unsqueeze(1)).mean(),
            "max_q": q.max(dim=1).values.mean(),
            "q_per_action": q.mean(dim=0),
            "td_abs": out.td_error.abs().mean(),
            "priority_each": out.priority,
        }
        return out.loss, metrics

    def _fresh_noise(self) -> Noise:
        """New noise for one update: online at s_tm1, target at s_t, online at s_t."""
        return tuple(self.online.sample_noise(self.generator, 3).unbind(0))

    @staticmethod
    def _no_noise() -> Noise:
        return (None, None, None)

    def _augmentation(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple:
        """(obs, next_obs, offsets, normals) for `_forward_loss`: new augmentation draws
        (made outside the compiled function, which takes no generator), or Nones.

        On a GPU the shift runs in the captured graph; on a CPU it is made here
        (`shift_on_host`), and only the intensity is left to the compiled function."""
        if not self._augmented:
            return obs, next_obs, None, None
        offsets, normals = draw_shifts(self.generator, len(obs), self.device)
        if self.runtime.on_cuda:
            return obs, next_obs, offsets, normals
        return shift_on_host(obs, offsets[0]), shift_on_host(next_obs, offsets[1]), None, normals

    def _step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step, its metrics summed on the device; the metrics of the batch
        before the step."""
        obs, next_obs, offsets, normals = self._augmentation(*batch.stacks(self._history))
        loss, metrics = self._loss_fn(
            obs,
            batch.action,
            batch.reward,
            batch.discount,
            next_obs,
            batch.weight,
            self._draw_noise(),
            offsets,
            normals,
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.max_grad_norm:  # the global norm, without a host sync (capturable)
            torch.nn.utils.clip_grad_norm_(
                self.online.parameters(), self.cfg.max_grad_norm, foreach=True
            )
        self._step_fn()
        torch._foreach_add_(list(self._sums.values()), [metrics[k] for k in self._sums])
        self._made += 1
        finite = torch.isfinite(metrics["loss"]) & torch.isfinite(metrics["max_q"])
        first = (self._first_nonfinite < 0) & ~finite
        self._first_nonfinite.copy_(torch.where(first, self._made, self._first_nonfinite))
        return metrics

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step on `batch` (tensors on any device); detached metrics, on the
        device and measured before the step, valid until the next update (no host sync).

        Metrics: `loss` (mean batch loss), `mean_q` (mean Q(s, a) of the actions taken),
        `max_q` (mean of max_a Q(s, a)), `q_per_action` float[A] (mean Q per action) and
        `td_abs` (mean |TD error|, the target's mean less Q(s, a) for C51), whose means over many
        updates `take_metrics` returns; and `priority_each` float[B], each sample's priority
        for prioritized replay (its |TD error|, or its cross-entropy for C51).
        """
        self._count += 1
        if not self.runtime.on_cuda:
            return self._eager_or_compiled(batch)
        inputs = self.input_buffers(len(batch.action), tuple(batch.frames.shape[1:]))
        if batch.frames.data_ptr() != inputs.frames.data_ptr():  # not fed straight in
            deliver(batch, self.device, inputs)
        with rt.tf32(self.cfg.tf32):
            if not self.runtime.cuda_graph:
                return self._eager_or_compiled(inputs)
            if self._graph is None:
                self._capture_update(inputs)
            return self._graph()

    def _eager_or_compiled(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self._step(batch) if self.compiled_ok else self._first_compiled(batch)

    def input_buffers(self, batch_size: int, window: tuple[int, int, int]) -> Batch | None:
        """The static device buffers updates read from, for batches of `batch_size`
        transitions of `window` frames (the replay's; None on the CPU): a feed that copies
        each batch straight into them (`destination=`) saves a copy."""
        if not self.runtime.on_cuda:
            return None
        if self._inputs is None:
            self._inputs = tensor_batch(batch_size, window, self.device)
        return self._inputs

    def _capture_update(self, inputs: Batch) -> None:
        """Capture one whole update, metric sums included, as the graph each update replays;
        the warm-up's effect on the weights, the optimiser and the sums is undone first."""
        counters = [*self._sums.values(), self._made, self._first_nonfinite]
        snapshot = StateSnapshot(
            [*self.online.parameters(), *counters], self.optimizer, generator=self.generator
        )
        self.optimizer.zero_grad(set_to_none=True)
        self._graph = CapturedStep(lambda: self._step(inputs), undo_warmup=snapshot.restore)

    def _first_compiled(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Run the first compiled update; if compiling fails, warn and go on in eager mode.

        Compilation happens before the compiled code runs, so a failure leaves the weights
        and optimiser state untouched and the eager retry performs the same update.
        """
        try:
            metrics = self._step(batch)
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eager
            warnings.warn(
                f"torch.compile failed on this machine ({type(exc).__name__}: {exc}); "
                "running the update eagerly (set learner.compile=false to silence this)",
                RuntimeWarning,
                stacklevel=3,
            )
            self._loss_fn, self._step_fn = self._forward_loss, self.optimizer.step
            metrics = self._step(batch)
        self.compiled_ok = True
        return metrics

    @property
    def noise(self) -> torch.Generator | None:
        """The generator a noisy network's noise comes from (for acting too), or None."""
        return self.generator if self.online.noise_size else None

    # -- what the loop reads -----------------------------------------------------------------

    def first_nonfinite_update(self) -> int | None:
        """Which update (1 = this learner's first) first had a NaN or infinite loss or
        Q-value, or None (one host sync)."""
        first = int(self._first_nonfinite)
        return first if first > 0 else None

    def peek_metrics(self) -> dict[str, np.ndarray]:
        """Mean of each metric over the updates since the last `take_metrics` (one host
        sync); {} if there were none."""
        if not self._count:
            return {}
        return {k: (v / self._count).float().cpu().numpy() for k, v in self._sums.items()}

    def take_metrics(self) -> dict[str, np.ndarray]:
        """`peek_metrics`, then start summing afresh: once per logging interval."""
        means = self.peek_metrics()
        for v in self._sums.values():
            v.zero_()
        self._count = 0
        return means

    def sync_target(self) -> None:
        """Copy the online weights into the target network (every `target_update_steps`);
        nothing to do when the target is the online network."""
        if self.target is not self.online:
            self.target.load_state_dict(self.online.state_dict())

    def state_dict(self) -> dict:
        """Online and target weights, the optimiser state and, for a noisy network or an
        augmented batch, the generator's state (a noisy network's acting draws from it
        too), for checkpoints."""
        state = {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned, so the next update is the one that would have run.

        The weights are copied in place; the optimiser's state tensors are replaced, so a
        captured update is captured again at the next update."""
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.generator is not None:
            self.generator.set_state(state["generator"])
        self._graph = None
