"""The DQN learner: the TD loss, epsilon-greedy acting, gradient steps and target copies.

`td_loss` is a pure function of tensors (DQN Zoo's `q_tm1, a_tm1, r_t, discount_t, q_t`),
so the maths is tested without networks or environments. `Learner` owns the online and
target NatureCNNs and the optimiser, and keeps its hot path free of host syncs: `update`
returns metrics as device tensors, to be read once per logging interval.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from atari_dqn.config import LearnerConfig
from atari_dqn.errors import ConfigError
from atari_dqn.network import NatureCNN
from atari_dqn.optim import DeepMindRMSprop, make_optimizer


class TransitionBatch(Protocol):
    """What `Learner.update` reads (torch tensors or numpy arrays, on any device)."""

    obs: torch.Tensor  # uint8[B, history, S, S], s_tm1
    action: torch.Tensor  # int64[B], a_tm1
    reward: torch.Tensor  # float32[B], r_t (clipped by the env)
    discount: torch.Tensor  # float32[B], 0 after a terminal, 1 otherwise (truncation included)
    next_obs: torch.Tensor  # uint8[B, history, S, S], s_t


def _huber(qa_tm1: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.huber_loss(qa_tm1, target, reduction="none", delta=1.0)


def _mse(qa_tm1: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * (target - qa_tm1).square()


_LOSSES = {"huber": _huber, "mse": _mse}


def td_loss(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t: torch.Tensor,
    *,
    gamma: float,
    loss: Literal["huber", "mse"] = "huber",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean one-step Q-learning loss over a batch, and the per-sample TD errors.

    Args:
        q_tm1: float[B, A] online-network Q-values at s_tm1 (gradients flow into these only).
        a_tm1: int64[B] actions taken at s_tm1.
        r_t: float[B] rewards.
        discount_t: float[B] 0 where s_t is terminal (no bootstrap), 1 otherwise.
        q_t: float[B, A] TARGET-network Q-values at s_t (treated as constants).
        gamma: the discount factor.
        loss: `huber` (delta 1: quadratic within |td| <= 1, linear outside, so each sample's
            gradient is the TD error clipped to [-1, 1], the paper's error clipping) or `mse`
            (0.5 * td^2, the same curve without the clipping).

    Returns:
        (scalar mean loss, detached td_error[B] = target - Q(s_tm1, a_tm1)).
    """
    qa_tm1 = q_tm1.gather(1, a_tm1.unsqueeze(1)).squeeze(1)
    with torch.no_grad():
        target = r_t + gamma * discount_t * q_t.max(dim=1).values
    return _LOSSES[loss](qa_tm1, target).mean(), (target - qa_tm1).detach()


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when present, else CPU; a CUDA device that is absent is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(
            f"learner.device={name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"learner.device={name!r} but torch sees no CUDA device; use learner.device=cpu "
            "(or auto), or install a CUDA build of torch"
        )
    return device


class Learner:
    """Online and target NatureCNNs, their optimiser, epsilon-greedy acting and updates."""

    def __init__(
        self,
        n_actions: int,
        cfg: LearnerConfig,
        *,
        history_length: int = 4,
        screen_size: int = 84,
        seed: int = 0,
    ) -> None:
        self.cfg = cfg
        self.n_actions = n_actions
        self.device = resolve_device(cfg.device)
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        # Its own generator: the init depends on `seed` only, not on torch's global RNG.
        generator = torch.Generator().manual_seed(seed)
        online = NatureCNN(n_actions, history_length, screen_size, generator=generator)
        self._memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.online = online.to(self.device, memory_format=self._memory_format)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = make_optimizer(self.online.parameters(), cfg)
        self._loss_fn = self._forward_loss
        self._step_fn = self.optimizer.step
        if cfg.compile:
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
        self._compiled_ok = False  # set once a compiled step has run

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for forward passes when `cfg.bf16_autocast`, else a no-op."""
        if not self.cfg.bf16_autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _to_device(self, x: torch.Tensor | np.ndarray, frames: bool = False) -> torch.Tensor:
        """Move (without a copy where possible) to the learner's device and memory format."""
        x = torch.as_tensor(x).to(self.device, non_blocking=True)
        return x.contiguous(memory_format=self._memory_format) if frames else x

    def act(self, stacks: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
        """Epsilon-greedy actions int64[N] for frame stacks uint8[N, history, S, S].

        The random draws (explore or not, and a uniform action) are made for every env
        whatever the network says, so the `rng` stream does not depend on Q-values. Ties in
        the greedy choice go to the lowest action index (torch.argmax).
        """
        n = len(stacks)
        explore = rng.random(n) < epsilon
        actions = rng.integers(0, self.n_actions, size=n, dtype=np.int64)
        if explore.all():
            return actions
        greedy = ~explore
        with torch.inference_mode(), self._autocast():
            q = self.online(self._to_device(stacks[greedy], frames=True))
        actions[greedy] = q.argmax(dim=1).cpu().numpy()
        return actions

    def _forward_loss(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        discount: torch.Tensor,
        next_obs: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Both forward passes and the loss; the part of an update that torch.compile fuses."""
        with self._autocast():
            q_tm1 = self.online(obs)
            with torch.no_grad():
                q_t = self.target(next_obs)
        q_tm1 = q_tm1.float()  # the loss and its reductions stay in float32
        loss, td_error = td_loss(
            q_tm1,
            action,
            reward,
            discount,
            q_t.float(),
            gamma=self.cfg.discount,
            loss=self.cfg.loss,
        )
        q_detached = q_tm1.detach()
        metrics = {
            "loss": loss.detach(),
            "mean_q": q_detached.gather(1, action.unsqueeze(1)).mean(),
            "max_q": q_detached.max(dim=1).values.mean(),
            "q_per_action": q_detached.mean(dim=0),
            "td_abs": td_error.abs().mean(),
        }
        return loss, metrics

    def update(self, batch: TransitionBatch) -> dict[str, torch.Tensor]:
        """One gradient step on `batch`; detached metric tensors on the device (no host sync).

        Metrics: `loss` (mean batch loss), `mean_q` (mean Q(s, a) of the actions taken),
        `max_q` (mean of max_a Q(s, a)), `q_per_action` float[A] (mean Q per action) and
        `td_abs` (mean |TD error|), all measured before the step.
        """
        args = (
            self._to_device(batch.obs, frames=True),
            self._to_device(batch.action),
            self._to_device(batch.reward),
            self._to_device(batch.discount),
            self._to_device(batch.next_obs, frames=True),
        )
        if self.cfg.compile and not self._compiled_ok:
            return self._first_compiled_update(args)
        return self._update(args)

    def _update(self, args: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        loss, metrics = self._loss_fn(*args)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._step_fn()
        return metrics

    def _first_compiled_update(self, args: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Run the first compiled update; if compiling fails, warn and go on in eager mode.

        Compilation happens before the compiled code runs, so a failure leaves the weights
        and optimiser state untouched and the eager retry performs the same update.
        """
        try:
            metrics = self._update(args)
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eager
            warnings.warn(
                f"torch.compile failed on this machine ({type(exc).__name__}: {exc}); "
                "running the update eagerly (set learner.compile=false to silence this)",
                RuntimeWarning,
                stacklevel=3,
            )
            self._loss_fn, self._step_fn = self._forward_loss, self.optimizer.step
            metrics = self._update(args)
        self._compiled_ok = True
        return metrics

    def sync_target(self) -> None:
        """Copy the online weights into the target network (every `target_update_steps`)."""
        self.target.load_state_dict(self.online.state_dict())

    def state_dict(self) -> dict:
        """Online and target weights and the optimiser state, for checkpoints."""
        return {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned, so the next update is the one that would have run."""
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
