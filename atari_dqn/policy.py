"""Acting: epsilon-greedy actions from a Q-network, for N envs at once.

The same policy acts in training (on the learner's online network, which it reads live) and
in evaluation (on a network loaded from a checkpoint); it never learns. On a CUDA device
the greedy forward pass for N stacks is one fixed shape, captured as a graph when the
runtime says so, fed from a pinned buffer. A noisy network acts in training with new noise
at every step (one draw for the N envs' stacks), and in evaluation with its mean weights.
"""

from __future__ import annotations

import numpy as np
import torch

from atari_dqn import runtime as rt
from atari_dqn.cuda_graphs import CapturedStep, StateSnapshot
from atari_dqn.network import NatureCNN
from atari_dqn.runtime import Runtime


class EpsilonGreedy:
    """Epsilon-greedy over `network`'s Q-values (a network already on the runtime's device).

    `bf16` and `tf32` are the learner config's maths switches: acting computes Q-values as
    the update does. `noise`: for a noisy network, the generator each step's noise is drawn
    from (None: its mean weights)."""

    def __init__(
        self,
        network: NatureCNN,
        n_actions: int,
        runtime: Runtime,
        *,
        bf16: bool = False,
        tf32: bool = False,
        noise: torch.Generator | None = None,
    ) -> None:
        self.network = network
        self.n_actions = n_actions
        self._runtime = runtime
        self._bf16, self._tf32 = bf16, tf32
        self.noise = noise
        self._on_cuda: dict[int, _CudaQValues] = {}  # by number of envs
        self._noiseless: EpsilonGreedy | None = None

    def without_noise(self) -> EpsilonGreedy:
        """This policy with a noisy network's mean weights, for evaluation (itself when it
        draws no noise)."""
        if self.noise is None:
            return self
        if self._noiseless is None:
            self._noiseless = EpsilonGreedy(
                self.network, self.n_actions, self._runtime, bf16=self._bf16, tf32=self._tf32
            )
        return self._noiseless

    def forward(self, stacks: torch.Tensor) -> torch.Tensor:
        """Q(s, .) of stacks already on the device, with this step's noise if any."""
        noise = None if self.noise is None else self.network.sample_noise(self.noise)[0]
        return self.network(stacks, noise)

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
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """`act` with the same draws and so the same actions, and with, for recording,
        Q(s, .) float32[N, A] of every stack, which actions were random, bool[N], and for a
        distributional network each stack's return distribution under its action (`support`'s
        probabilities, float32[N, atoms]; None for other networks).

        The distributions take one more forward pass, with the network's mean weights: what
        is recorded is an evaluation, which plays them."""
        actions, q, explored = self._decide(stacks, epsilon, rng, every_env=True)
        if not self.network.distributional:
            return actions, q, explored, None
        device = self._runtime.torch_device
        with torch.inference_mode(), rt.autocast(device, self._bf16), rt.tf32(self._tf32):
            obs = torch.as_tensor(stacks).to(device)
            logits = self.network.logits(obs.contiguous(memory_format=self._runtime.memory_format))
        rows, taken = torch.arange(len(actions), device=device), torch.as_tensor(actions).to(device)
        return actions, q, explored, logits.float().softmax(dim=2)[rows, taken].cpu().numpy()

    @property
    def support(self) -> np.ndarray | None:
        """The returns a distributional network's atoms stand for, float32[atoms]; None for
        other networks."""
        return self.network.support.cpu().numpy() if self.network.distributional else None

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
        runtime = self._runtime
        if not runtime.on_cuda:
            with torch.inference_mode(), rt.autocast(runtime.torch_device, self._bf16):
                obs = torch.as_tensor(stacks[rows])
                q = self.forward(obs.contiguous(memory_format=runtime.memory_format))
            return q.float().numpy()
        n = len(stacks)
        with rt.tf32(self._tf32):
            if n not in self._on_cuda:  # made (and captured) once per N, under the same TF32
                self._on_cuda[n] = _CudaQValues(self, stacks.shape)
            return self._on_cuda[n](stacks)[rows]


class _CudaQValues:
    """Q(s, .) of N stacks on a CUDA device: one H2D copy from a pinned buffer, one
    fixed-shape forward pass (a replayed graph with the runtime's `cuda_graph`), one D2H
    copy, one wait."""

    def __init__(self, policy: EpsilonGreedy, shape: tuple[int, ...]) -> None:
        runtime = policy._runtime
        self._host = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        self._stacks = torch.empty(shape, dtype=torch.uint8, device=runtime.torch_device)
        self._q = torch.empty((shape[0], policy.n_actions), dtype=torch.float32, pin_memory=True)
        self._done = torch.cuda.Event()
        self._policy = policy
        self._forward_q = (
            CapturedStep(
                self._forward, undo_warmup=StateSnapshot([], generator=policy.noise).restore
            )
            if runtime.cuda_graph
            else self._forward
        )

    @torch.no_grad()
    def _forward(self) -> torch.Tensor:
        policy = self._policy
        runtime = policy._runtime
        with rt.autocast(runtime.torch_device, policy._bf16):
            stacks = self._stacks.contiguous(memory_format=runtime.memory_format)
            return policy.forward(stacks).float()

    def __call__(self, stacks: np.ndarray) -> np.ndarray:
        self._host.numpy()[:] = stacks
        self._stacks.copy_(self._host, non_blocking=True)
        self._q.copy_(self._forward_q(), non_blocking=True)
        self._done.record()
        self._done.synchronize()
        return self._q.numpy()
