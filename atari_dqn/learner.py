"""The DQN learner: the TD loss, epsilon-greedy acting, gradient steps and target copies.

`td_loss` is a pure function of tensors (DQN Zoo's `q_tm1, a_tm1, r_t, discount_t, q_t`),
so the maths is tested without networks or environments. `Learner` owns the online and
target NatureCNNs and the optimiser, and keeps its hot path free of host syncs: metrics are
summed on the device and read once per logging interval (`take_metrics`). On a CUDA device
the whole update is one captured graph (`learner.cuda_graph`, see `atari_dqn.cuda_graphs`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from atari_dqn.config import LearnerConfig
from atari_dqn.cuda_graphs import QValues, StateSnapshot, capture
from atari_dqn.errors import ConfigError
from atari_dqn.network import NatureCNN
from atari_dqn.optim import DeepMindRMSprop, make_optimizer
from atari_dqn.replay.feed import TensorBatch


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


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """cuDNN's and cuBLAS's TF32 switched to `enabled` for the block, then back: the
    switches are global, and a learner must not change another's maths (nor torch's
    default, TF32 on for cuDNN convolutions, change ours)."""
    backends = torch.backends
    before = backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32
    backends.cudnn.allow_tf32 = backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32 = before


def _uses_graphs(cfg: LearnerConfig, device: torch.device) -> bool:
    if cfg.cuda_graph == "auto":
        return device.type == "cuda"
    if cfg.cuda_graph == "true" and device.type != "cuda":
        raise ConfigError(
            f"learner.cuda_graph=true needs a CUDA device, and the learner is on {device}; "
            "use learner.cuda_graph=auto"
        )
    return cfg.cuda_graph == "true"


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
        self.graphs = _uses_graphs(cfg, self.device)
        """Whether updates and greedy acting run as captured CUDA graphs."""
        # Its own generator: the init depends on `seed` only, not on torch's global RNG.
        generator = torch.Generator().manual_seed(seed)
        online = NatureCNN(n_actions, history_length, screen_size, generator=generator)
        channels_last = cfg.channels_last == "true" or (
            cfg.channels_last == "auto" and self.device.type == "cpu"
        )
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.online = online.to(self.device, memory_format=self._memory_format)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = make_optimizer(self.online.parameters(), cfg, capturable=self.graphs)
        self._window = (history_length + 1, screen_size, screen_size)
        self._inputs: TensorBatch | None = None  # static device buffers (not on the CPU)
        # Sums of each update's metrics since `take_metrics`, on the device.
        self._sums = {
            k: torch.zeros(n_actions if k == "q_per_action" else (), device=self.device)
            for k in ("loss", "mean_q", "max_q", "q_per_action", "td_abs")
        }
        self._count = 0
        # Updates made, and the first whose loss or Q-values were not finite (-1: none yet),
        # counted on the device so that checking costs no sync per update.
        self._made = torch.zeros((), dtype=torch.int64, device=self.device)
        self._first_nonfinite = torch.full((), -1, dtype=torch.int64, device=self.device)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_metrics: dict[str, torch.Tensor] = {}
        self._acting: dict[int, QValues] = {}  # by number of envs, on CUDA
        self._loss_fn = self._forward_loss
        self._step_fn = self.optimizer.step
        if cfg.compile and not self.graphs:
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
        self._compiled_ok = not cfg.compile or self.graphs  # set once a compiled step ran

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for forward passes when `cfg.bf16_autocast`, else a no-op.

        Its weight cache is off: a captured graph must not keep casts from its capture."""
        if not self.cfg.bf16_autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)

    # -- acting -----------------------------------------------------------------------------

    def act(self, stacks: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
        """Epsilon-greedy actions int64[N] for frame stacks uint8[N, history, S, S].

        The random draws (explore or not, and a uniform action) are made for every env
        whatever the network says, so the `rng` stream does not depend on Q-values. Ties in
        the greedy choice go to the lowest action index. On the CPU only the greedy envs'
        stacks go through the network; on CUDA all N do, one fixed shape.
        """
        return self._decide(stacks, epsilon, rng, every_env=False)[0]

    def act_and_values(
        self, stacks: np.ndarray, epsilon: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`act` with the same draws and so the same actions, and with, for recording,
        Q(s, .) float32[N, A] of every stack and which actions were random, bool[N]."""
        return self._decide(stacks, epsilon, rng, every_env=True)

    def _decide(
        self, stacks: np.ndarray, epsilon: float, rng: np.random.Generator, every_env: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(stacks)
        explore = rng.random(n) < epsilon
        actions = rng.integers(0, self.n_actions, size=n, dtype=np.int64)
        q = np.full((n, self.n_actions), np.nan, np.float32)
        rows = np.ones(n, dtype=bool) if every_env else ~explore
        if rows.any():
            q[rows] = self._q_values(stacks, rows)
            actions[~explore] = q[~explore].argmax(axis=1)
        return actions, q, explore

    def _q_values(self, stacks: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Q(s, .) float32[k, A] of the stacks where `rows`."""
        if self.device.type == "cpu":
            with torch.inference_mode(), self._autocast():
                obs = torch.as_tensor(stacks[rows])
                q = self.online(obs.contiguous(memory_format=self._memory_format))
            return q.float().numpy()
        n = len(stacks)
        with _tf32(self.cfg.tf32):
            if n not in self._acting:  # captured (once per N) with the same TF32 setting
                self._acting[n] = QValues(
                    self.online, stacks.shape, self.n_actions, self._memory_format,
                    self._autocast, self.graphs,
                )  # fmt: skip
            return self._acting[n](stacks)[rows]

    # -- learning ---------------------------------------------------------------------------

    def _forward_loss(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        discount: torch.Tensor,
        next_obs: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Both forward passes and the loss; the part of an update that torch.compile fuses."""
        obs = obs.contiguous(memory_format=self._memory_format)
        next_obs = next_obs.contiguous(memory_format=self._memory_format)
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

    def _step(self, batch: TensorBatch) -> dict[str, torch.Tensor]:
        """One gradient step; the metrics of the batch before it."""
        loss, metrics = self._loss_fn(
            batch.obs, batch.action, batch.reward, batch.discount, batch.next_obs
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._step_fn()
        return metrics

    def _accumulate(self, metrics: dict[str, torch.Tensor]) -> None:
        torch._foreach_add_(list(self._sums.values()), [metrics[k] for k in self._sums])
        self._made += 1
        finite = torch.isfinite(metrics["loss"]) & torch.isfinite(metrics["max_q"])
        first = (self._first_nonfinite < 0) & ~finite
        self._first_nonfinite.copy_(torch.where(first, self._made, self._first_nonfinite))

    def update(self, batch: TensorBatch) -> dict[str, torch.Tensor]:
        """One gradient step on `batch` (tensors on any device); detached metrics, on the
        device and measured before the step, valid until the next update (no host sync).

        Metrics: `loss` (mean batch loss), `mean_q` (mean Q(s, a) of the actions taken),
        `max_q` (mean of max_a Q(s, a)), `q_per_action` float[A] (mean Q per action) and
        `td_abs` (mean |TD error|); `take_metrics` returns their means over many updates.
        """
        if self.device.type == "cpu":
            return self._update(batch)
        with _tf32(self.cfg.tf32):
            return self._update(self._into_inputs(batch))

    def _update(self, batch: TensorBatch) -> dict[str, torch.Tensor]:
        if self.graphs:
            if self._graph is None:
                self._capture_update(batch)
            self._graph.replay()
            metrics = self._graph_metrics
        else:
            metrics = self._step(batch) if self._compiled_ok else self._first_compiled(batch)
            self._accumulate(metrics)
        self._count += 1
        return metrics

    def input_buffers(self, batch_size: int) -> TensorBatch | None:
        """The static device buffers updates read from (None on the CPU): a feed that copies
        each batch straight into them (`Prefetcher(destination=...)`) saves a copy."""
        if self.device.type == "cpu":
            return None
        if self._inputs is None:
            self._inputs = TensorBatch.empty(batch_size, self._window, self.device)
        return self._inputs

    def _into_inputs(self, batch: TensorBatch) -> TensorBatch:
        """`batch` in the static device buffers: copied there (asynchronously from pinned
        memory) unless a feed already put it there."""
        inputs = self.input_buffers(len(batch.action))
        if batch.frames.data_ptr() != inputs.frames.data_ptr():
            batch.copy_into(inputs)
        return inputs

    def _capture_update(self, batch: TensorBatch) -> None:
        """Capture one whole update, metric sums included, as the graph each update replays."""
        counters = [*self._sums.values(), self._made, self._first_nonfinite]
        snapshot = StateSnapshot([*self.online.parameters(), *counters], self.optimizer)

        def step() -> dict[str, torch.Tensor]:
            metrics = self._step(batch)
            self._accumulate(metrics)
            return metrics

        self.optimizer.zero_grad(set_to_none=True)
        self._graph, self._graph_metrics = capture(step, undo_warmup=snapshot.restore)

    def _first_compiled(self, batch: TensorBatch) -> dict[str, torch.Tensor]:
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
        self._compiled_ok = True
        return metrics

    def first_nonfinite_update(self) -> int | None:
        """Which update (1 = this learner's first) first had a NaN or infinite loss or
        Q-value, or None (one host sync)."""
        first = int(self._first_nonfinite)
        return first if first > 0 else None

    def take_metrics(self) -> dict[str, np.ndarray]:
        """Mean of each metric over the updates since the last call (one host sync); {} if
        there were none."""
        if not self._count:
            return {}
        means = {k: (v / self._count).float().cpu().numpy() for k, v in self._sums.items()}
        for v in self._sums.values():
            v.zero_()
        self._count = 0
        return means

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
        """Restore what `state_dict` returned, so the next update is the one that would have run.

        The weights are copied in place; the optimiser's state tensors are replaced, so a
        captured update is captured again at the next update."""
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._graph = None
