"""From the ring to the learner: batches as torch tensors on its device, when they are due.

The only replay code that knows torch. A batch crosses to the device as its 5-frame window
(`Batch.frames`), and obs / next_obs are views of the copy, so 5 frames per transition cross
the bus, not 8; on CUDA it goes straight into the learner's static input buffers, which its
captured update reads. Two feeds hand out batches: `Sampler` draws each one when it is
asked for, `Prefetcher` draws the next one in a background thread (the Numba sampler
releases the GIL) while the learner works on the current one.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Protocol

import numpy as np
import torch

from atari_dqn.errors import ReplayError
from atari_dqn.replay.batch import DTYPES, Batch, batch_shapes
from atari_dqn.replay.ring import FrameRing, check_batch_size


def tensor_batch(
    batch_size: int,
    window: tuple[int, int, int],
    device: torch.device | str = "cpu",
    pin: bool = False,
) -> Batch:
    """Uninitialised tensors for `batch_size` transitions of `window` = (history + 1, H, W)
    frames on `device`; pinned host memory with `pin`."""
    shapes = batch_shapes(batch_size, window)
    dtypes = (torch.from_numpy(np.empty(0, d)).dtype for d in DTYPES)
    return Batch(
        *(
            torch.empty(shape, dtype=dtype, device=device, pin_memory=pin)
            for shape, dtype in zip(shapes, dtypes, strict=True)
        )
    )


def as_tensors(batch: Batch) -> Batch:
    """A numpy batch as CPU tensors sharing its memory (valid until it is sampled into)."""
    return Batch(*(torch.from_numpy(a) for a in batch))


def deliver(host: Batch, device: torch.device, destination: Batch | None = None) -> Batch:
    """Host tensors where the learner reads them: themselves on the CPU, else copied into
    `destination` (the learner's static buffers) or to `device`, asynchronously when the
    host tensors are pinned."""
    if destination is not None:
        for mine, theirs in zip(host, destination, strict=True):
            theirs.copy_(mine, non_blocking=True)
        return destination
    if device.type == "cpu":
        return host
    return Batch(*(t.to(device, non_blocking=True) for t in host))


class Feed(Protocol):
    """Where the learner's batches come from (`Sampler` or `Prefetcher`)."""

    def next(self) -> Batch:
        """The next batch as tensors where the learner reads them."""
        ...

    def pending(self) -> list[torch.Tensor] | None:
        """A batch drawn but not yet handed out (CPU tensors, for a checkpoint), or None."""
        ...

    def close(self) -> None: ...


class _HostBatch:
    """A preallocated batch in host memory, pinned when it feeds a CUDA device, seen both
    as the torch tensors that own the memory and as numpy arrays (for the sampler)."""

    def __init__(self, batch_size: int, ring: FrameRing, pin: bool) -> None:
        self.tensors = tensor_batch(batch_size, ring.window, pin=pin)
        self.arrays = Batch(*(t.numpy() for t in self.tensors))

    def copy(self) -> list[torch.Tensor]:
        return [t.clone() for t in self.tensors]

    def fill(self, saved: list[torch.Tensor]) -> None:
        for t, s in zip(self.tensors, saved, strict=True):
            t.copy_(s)


class Sampler:
    """Draws each batch from the ring when it is asked for, into one reused host batch.

    `pending=` (a checkpoint's drawn-ahead batch) is handed out first, so a run resumed
    from a prefetching one learns from that batch too."""

    def __init__(
        self,
        ring: FrameRing,
        batch_size: int,
        device: torch.device | str,
        pending: list[torch.Tensor] | None = None,
        destination: Batch | None = None,
    ) -> None:
        check_batch_size(batch_size)
        self._ring, self._device, self._destination = ring, torch.device(device), destination
        self._host = _HostBatch(batch_size, ring, pin=self._device.type == "cuda")
        self._pending = pending

    def next(self) -> Batch:
        if self._pending is not None:
            self._host.fill(self._pending)
            self._pending = None
        else:
            self._ring.sample_into(self._host.arrays)
        return deliver(self._host.tensors, self._device, self._destination)

    def pending(self) -> list[torch.Tensor] | None:
        return None if self._pending is None else [t.clone() for t in self._pending]

    def close(self) -> None: ...


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
        pending: list[torch.Tensor] | None = None,
        destination: Batch | None = None,
    ) -> None:
        check_batch_size(batch_size)
        self._ring = ring
        self._device = torch.device(device)
        self._destination = destination
        pin = self._device.type == "cuda"
        self._batches = [_HostBatch(batch_size, ring, pin) for _ in range(2)]
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

    def next(self) -> Batch:
        if self._closed:
            raise ReplayError("Prefetcher.next() after close()")
        self._wait()
        current = self._next
        if not self._ready:  # the very first batch: nothing was drawn ahead
            self._ring.sample_into(self._batches[current].arrays)
        tensors = deliver(self._batches[current].tensors, self._device, self._destination)
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

    def pending(self) -> list[torch.Tensor] | None:
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
