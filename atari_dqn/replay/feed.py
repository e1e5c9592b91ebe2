"""From the ring to the learner: batches as torch tensors on its device, drawn ahead.

The only replay code that knows torch. A batch crosses to the device as its 5-frame window
(`frames uint8[B, h+1, H, W]`), and obs / next_obs are views of the copy, so 5 frames per
transition cross the bus, not 8; on CUDA it goes straight into the learner's static input
buffers, which its captured update reads. `Prefetcher` draws the next batch in a background thread
(the Numba sampler releases the GIL) while the learner works on the current one.
"""

from __future__ import annotations

import queue
import threading
import weakref
from typing import Any, NamedTuple

import torch

from atari_dqn.errors import ReplayError
from atari_dqn.replay.ring import Batch, FrameRing, check_batch_size


class TensorBatch(NamedTuple):
    """A batch as torch tensors (obs / next_obs still uint8), on the host or a device."""

    frames: torch.Tensor
    """uint8[B, history + 1, H, W]: the window [p-h+1 .. p+1] of each transition."""
    action: torch.Tensor
    reward: torch.Tensor
    discount: torch.Tensor

    @classmethod
    def empty(
        cls,
        batch_size: int,
        window: tuple[int, int, int],
        device: torch.device | str = "cpu",
        pin: bool = False,
    ) -> TensorBatch:
        """Uninitialised buffers for `batch_size` transitions of `window` = (history + 1,
        H, W) frames; pinned host memory with `pin`."""
        shapes = ((batch_size, *window), batch_size, batch_size, batch_size)
        dtypes = (torch.uint8, torch.int64, torch.float32, torch.float32)
        return cls(
            *(
                torch.empty(shape, dtype=dtype, device=device, pin_memory=pin)
                for shape, dtype in zip(shapes, dtypes, strict=True)
            )
        )

    @property
    def obs(self) -> torch.Tensor:
        """uint8[B, history, H, W]: view `frames[:, :-1]`, the stack acted on (s_tm1)."""
        return self.frames[:, :-1]

    @property
    def next_obs(self) -> torch.Tensor:
        """uint8[B, history, H, W]: view `frames[:, 1:]`, the stack after the step (s_t)."""
        return self.frames[:, 1:]

    def to(self, device: torch.device) -> TensorBatch:
        """This batch on `device`: itself on the CPU, else one `non_blocking` copy per array
        (asynchronous when this batch is in pinned memory)."""
        if device.type == "cpu":
            return self
        return TensorBatch(*(t.to(device, non_blocking=True) for t in self))

    def copy_into(self, destination: TensorBatch) -> TensorBatch:
        """`destination` (same shapes, any device) filled with this batch, asynchronously
        when this batch is in pinned memory."""
        for mine, theirs in zip(self, destination, strict=True):
            theirs.copy_(mine, non_blocking=True)
        return destination


# Each batch's arrays as tensors, made once: batches are reused for every sample, and
# wrapping them again each time costs a fifth of the sample itself (measured at batch 32).
_TENSORS: weakref.WeakKeyDictionary[Batch, TensorBatch] = weakref.WeakKeyDictionary()


def to_tensors(batch: Batch, device: torch.device | str) -> TensorBatch:
    """Tensors for `batch` on `device`.

    On the CPU they are zero-copy views of the batch arrays (valid until the next sample
    into them); on another device the 5-frame window is copied once."""
    host = _TENSORS.get(batch)
    if host is None:
        arrays = (batch.frames, batch.action, batch.reward, batch.discount)
        host = _TENSORS[batch] = TensorBatch(*(torch.from_numpy(a) for a in arrays))
    return host.to(torch.device(device))


class HostBatch:
    """A preallocated batch in host memory, pinned when it feeds a CUDA device, seen both
    as numpy arrays (for the sampler) and as the torch tensors that own the memory."""

    def __init__(self, batch_size: int, ring: FrameRing, pin: bool) -> None:
        window = (ring.history_length + 1, *ring.frame_shape)
        self.tensors = TensorBatch.empty(batch_size, window, pin=pin)
        self.arrays = Batch(*(t.numpy() for t in self.tensors))

    def copy(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the contents, by field name (for checkpoints)."""
        return {name: t.clone() for name, t in zip(TensorBatch._fields, self.tensors, strict=True)}

    def fill(self, saved: dict[str, torch.Tensor]) -> None:
        """Restore what `copy` returned."""
        for name, t in zip(TensorBatch._fields, self.tensors, strict=True):
            t.copy_(saved[name])


class Prefetcher:
    """Samples the next batch in a background thread while the learner uses this one.

    Deterministic: `next()` hands out the batch drawn at the previous `next()` and, before
    returning, pauses the ring's writers and asks the thread to draw the following one, so
    that draw sees the ring exactly as it is at that moment: an `add` made meanwhile waits
    until the draw is done, and thread scheduling never changes which batch is drawn.
    Staleness: a batch misses the transitions added since the previous `next()` (one
    update's worth: 4 steps in the paper's schedule). `pending()` returns the drawn but
    unused batch, and `pending=` restores it, so a resumed run uses the very same batches.

    Two preallocated batches (pinned on CUDA) alternate; the tensors from `next()` stay
    valid until the following `next()` call. With `destination` (the learner's static input
    buffers, `Learner.input_buffers`) each batch is copied straight into it.
    """

    def __init__(
        self,
        ring: FrameRing,
        batch_size: int,
        device: torch.device | str,
        pending: dict[str, torch.Tensor] | None = None,
        destination: TensorBatch | None = None,
    ) -> None:
        check_batch_size(batch_size)
        self._ring = ring
        self._device = torch.device(device)
        self._destination = destination
        pin = self._device.type == "cuda"
        self._batches = [HostBatch(batch_size, ring, pin) for _ in range(2)]
        # CUDA: the copy out of a pinned batch is asynchronous; wait on this event before
        # drawing into that batch again.
        self._copied: list[Any] = [None, None]
        self._next = 0  # the batch that `next()` hands out
        self._ready = False  # whether batch `_next` holds a drawn batch
        self._in_flight = False  # whether the thread is drawing into batch `_next`
        self._requests: queue.Queue[tuple[int, Any] | None] = queue.Queue()
        self._done: queue.Queue[BaseException | None] = queue.Queue()
        self._closed = False
        if pending is not None:
            self._batches[0].fill(pending)
            self._ready = True
        self._thread = threading.Thread(target=self._work, name="replay-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            i, gate = request
            try:
                self._ring.sample_into(self._batches[i].arrays)
                error = None
            except BaseException as exc:  # handed to the learner's thread by next()
                error = exc
            finally:
                gate.release()  # the ring's writers may go on
            self._done.put(error)

    def _wait(self) -> None:
        """Let the draw in flight finish; re-raise its error in this thread."""
        if self._in_flight:
            self._in_flight = False
            error = self._done.get()
            if error is not None:
                self.close()
                raise error
            self._ready = True

    def next(self) -> TensorBatch:
        """The next batch as tensors on the device; starts drawing the one after it."""
        if self._closed:
            raise ReplayError("Prefetcher.next() after close()")
        self._wait()
        current = self._next
        if not self._ready:  # the very first batch: nothing was drawn ahead
            self._ring.sample_into(self._batches[current].arrays)
        host = self._batches[current].tensors
        if self._destination is not None:
            tensors = host.copy_into(self._destination)
        else:
            tensors = host.to(self._device)
        if self._device.type == "cuda":
            event = torch.cuda.Event()
            event.record()
            self._copied[current] = event
        following = 1 - current
        if self._copied[following] is not None:
            self._copied[following].synchronize()
        self._requests.put((following, self._ring.pause_writes()))
        self._next, self._ready, self._in_flight = following, False, True
        return tensors

    def pending(self) -> dict[str, torch.Tensor] | None:
        """A copy of the drawn but unused batch (CPU tensors), for a checkpoint; else None."""
        self._wait()
        return self._batches[self._next].copy() if self._ready else None

    def close(self) -> None:
        """Stop the thread (waiting for a draw in progress). Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._requests.put(None)
            self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
