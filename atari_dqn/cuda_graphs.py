"""The learner's update and its greedy acting as captured CUDA graphs.

On a GPU the DQN update (batch 32, a 1.7M-parameter CNN) is bound by kernel launches, not
arithmetic: replaying the same launches as one captured graph removes the per-launch CPU
cost (measured on an H200: 3.0 ms eager, 0.59 ms as one graph). Capture follows torch's
documented recipe for whole-network capture (the "CUDA Graphs" notes of torch.cuda):
static input buffers, warm-up runs on a side stream before capture, gradients set to None
before capture so backward allocates them in the graph's memory pool, an optimiser whose
state lives on the device (`capturable=True` for torch's; DeepMindRMSprop's always does),
and then each step is one copy into the buffers and one `replay()`. Everything a step
reads or writes persists between replays and is updated in place, so target copies and
checkpoints read the live tensors as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class CapturedStep:
    """`step()`, a function of static buffers, captured once as a CUDA graph; each call
    replays it and returns the captured step's outputs (static tensors it overwrites).

    The learner's update and the policy's greedy forward pass are both one of these.
    Capture runs `step()` for real `warmups` times on a side stream (that creates cuBLAS and
    cuDNN workspaces, autograd's state and lazily made optimiser state), then
    `undo_warmup()` puts whatever the warm-up changed back as it was, in place; capturing
    itself runs nothing. So the first replay is exactly the step that would have run
    eagerly.
    """

    def __init__(
        self,
        step: Callable[[], Any],
        *,
        undo_warmup: Callable[[], None] = lambda: None,
        warmups: int = 3,
    ) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmups):
                step()
        torch.cuda.current_stream().wait_stream(side)
        undo_warmup()
        self._graph = torch.cuda.CUDAGraph()
        # thread_local: the prefetch thread and the env workers may run meanwhile.
        with torch.cuda.graph(self._graph, capture_error_mode="thread_local"):
            self.outputs = step()

    def __call__(self) -> Any:
        self._graph.replay()
        return self.outputs


class StateSnapshot:
    """Copies of tensors that a warm-up will change, put back in place by `restore()`.

    `optimizer` state made during the warm-up (torch's optimisers make theirs on their
    first step) is zeroed on restore, which is how those optimisers start. A `generator`
    the step draws from (a noisy network's) is put back where it was, so the first replay
    draws the noise an eager step would have."""

    def __init__(
        self,
        tensors: list[torch.Tensor],
        optimizer: torch.optim.Optimizer | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self._tensors = [(t, t.detach().clone()) for t in tensors]
        self._optimizer = optimizer
        self._optimizer_state = {
            id(p): {k: v.detach().clone() for k, v in s.items() if torch.is_tensor(v)}
            for p, s in (optimizer.state.items() if optimizer is not None else ())
        }
        self._generator = generator
        self._generator_state = generator.get_state() if generator is not None else None

    @torch.no_grad()
    def restore(self) -> None:
        for live, saved in self._tensors:
            live.copy_(saved)
        if self._generator is not None:
            self._generator.set_state(self._generator_state)
        if self._optimizer is None:
            return
        for p, state in self._optimizer.state.items():
            saved = self._optimizer_state.get(id(p), {})
            for key, value in state.items():
                if not torch.is_tensor(value):
                    continue
                if key in saved:
                    value.copy_(saved[key])
                else:
                    value.zero_()
