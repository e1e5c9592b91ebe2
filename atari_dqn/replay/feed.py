"""From the ring to the learner: batches as torch tensors on its device, when they are due.

The only replay code that knows torch. A batch crosses to the device as its window
(`Batch.frames`), and obs / next_obs are views of the copy, so for one-step transitions 5
frames per transition cross the bus, not 8; on CUDA it goes straight into the learner's
static input buffers, which its captured update reads. Two feeds hand out batches: `Sampler`
draws each one when it is asked for, `Prefetcher` draws the next one in a background thread
(the Numba sampler releases the GIL) while the learner works on the current one.

Prioritized replay: `next(beta)` passes the importance exponent to the draw, and
`set_priorities(td_abs)` sends the |TD errors| of the batch last handed out back to the
ring, from whichever device they are on; the Prefetcher does so without waiting for the
device (see `Prefetcher`).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from atari_dqn.errors import ReplayError
from atari_dqn.replay.arguments import check_batch_size
from atari_dqn.replay.batch import DTYPES, Batch, batch_shapes
from atari_dqn.replay.ring import FrameRing


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

    def next(self, beta: float = 1.0) -> Batch:
        """The next batch as tensors where the learner reads them; `beta` is the importance
        exponent of a prioritized ring's draw (a uniform ring's weights are 1)."""
        ...

    def set_priorities(self, td_abs: torch.Tensor) -> None:
        """The priorities (float[B], on any device: each sample's |TD error|, or its
        cross-entropy for C51) of the batch last handed out, for a prioritized ring; a
        uniform ring's feed ignores them."""
        ...

    def pending(self) -> list[torch.Tensor] | None:
        """A batch drawn but not yet handed out, or None: CPU tensors for a checkpoint, the
        batch's fields, its draw's write counts, then (index, td_abs, drawn) of priorities
        not yet written, if any. `pending=` of either feed takes it back."""
        ...

    def close(self) -> None: ...


class _HostBatch:
    """A preallocated batch in host memory, pinned when it feeds a CUDA device, seen both
    as the torch tensors that own the memory and as numpy arrays (for the sampler); with
    each env's write count at its draw (int64[N]) and room for its |TD errors| (float32[B])
    on their way back."""

    def __init__(self, batch_size: int, ring: FrameRing, pin: bool) -> None:
        self.tensors = tensor_batch(batch_size, ring.window, pin=pin)
        self.arrays = Batch(*(t.numpy() for t in self.tensors))
        self.drawn = torch.zeros(ring.num_envs, dtype=torch.int64)
        self.td_abs = torch.empty(batch_size, dtype=torch.float32, pin_memory=pin)

    def draw(self, ring: FrameRing, beta: float) -> None:
        self.drawn.numpy()[:] = ring.sample_into(self.arrays, beta)

    def copy(self) -> list[torch.Tensor]:
        """The batch's tensors, then its draw's write counts."""
        return [t.clone() for t in (*self.tensors, self.drawn)]

    def fill(self, saved: list[torch.Tensor]) -> None:
        """Restore a `copy()`."""
        for t, s in zip((*self.tensors, self.drawn), saved, strict=True):
            t.copy_(s)


_SAVED_BATCH = len(DTYPES) + 1  # a pending list's batch tensors and write counts


@dataclass
class _PriorityUpdate:
    """A handed-out batch's |TD errors| on their way to the ring's priorities."""

    index: np.ndarray  # int64[B]: the batch's `Batch.index`, a host copy
    td_abs: torch.Tensor  # float32[B] in host memory (pinned when copied from CUDA)
    drawn: np.ndarray  # int64[N]: the write counts at the batch's draw
    copied: Any = None  # a CUDA event recorded after the copy into td_abs, else None

    @classmethod
    def send(cls, host: _HostBatch, td_abs: torch.Tensor) -> _PriorityUpdate:
        """Start copying `td_abs` (float[B], any device) into `host`'s pinned buffer without
        waiting for the device."""
        if tuple(td_abs.shape) != tuple(host.td_abs.shape):
            raise ReplayError(
                f"set_priorities: expected td_abs of shape {tuple(host.td_abs.shape)} (one per "
                f"transition of the batch), got {tuple(td_abs.shape)}"
            )
        host.td_abs.copy_(td_abs.detach(), non_blocking=True)
        copied = None
        if td_abs.device.type == "cuda":
            copied = torch.cuda.Event()
            copied.record()
        return cls(host.arrays.index.copy(), host.td_abs, host.drawn.numpy().copy(), copied)

    @classmethod
    def restore(cls, saved: list[torch.Tensor]) -> _PriorityUpdate:
        """An update from its `saved()` tensors."""
        index, td_abs, drawn = saved
        return cls(index.numpy().copy(), td_abs.clone(), drawn.numpy().copy())

    def _wait_for_copy(self) -> None:
        if self.copied is not None:
            self.copied.synchronize()

    def write(self, ring: FrameRing) -> None:
        """Wait for the copy, then write the priorities into `ring`."""
        self._wait_for_copy()
        ring.update_priorities(self.index, self.td_abs.numpy(), self.drawn)

    def saved(self) -> list[torch.Tensor]:
        """CPU tensors of the update, for a checkpoint: index, td_abs, drawn."""
        self._wait_for_copy()
        return [torch.from_numpy(a.copy()) for a in (self.index, self.td_abs.numpy(), self.drawn)]


def _saved_update(pending: list[torch.Tensor] | None) -> _PriorityUpdate | None:
    """The priority update a pending list carries after its batch, if any."""
    if pending is None or len(pending) <= _SAVED_BATCH:
        return None
    return _PriorityUpdate.restore(pending[_SAVED_BATCH:])


class Sampler:
    """Draws each batch from the ring when it is asked for, into one reused host batch;
    writes priorities back at once (on a GPU, `set_priorities` waits for the device).

    `pending=` (a checkpoint's drawn-ahead batch, and the priorities of the batch before it
    not yet written) is handed out first, so a run resumed from a prefetching one learns
    from that batch too."""

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

    def next(self, beta: float = 1.0) -> Batch:
        if self._pending is not None:
            if update := _saved_update(self._pending):
                update.write(self._ring)
            self._host.fill(self._pending[:_SAVED_BATCH])
            self._pending = None
        else:
            self._host.draw(self._ring, beta)
        return deliver(self._host.tensors, self._device, self._destination)

    def set_priorities(self, td_abs: torch.Tensor) -> None:
        """Write the priorities of the batch last handed out now (a no-op for a uniform
        ring)."""
        if self._ring.prioritized:
            _PriorityUpdate.send(self._host, td_abs).write(self._ring)

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

    Priorities, without a host sync: `set_priorities(td_abs)` starts copying td_abs into
    pinned memory (non_blocking), records a CUDA event after it, and keeps the batch's
    indices; the next `next()` hands that to the thread with its draw, and the thread waits
    for the event and writes the priorities just before drawing. In the loop's order
    next(k), update(k), set_priorities(k), next(k+1), batch k's priorities are written
    (with the writers paused, so at a fixed point of the run) before batch k+2 is drawn;
    batch k+1 was drawn while k was learned from. A checkpoint's `pending()` carries the
    priorities not yet written, and `pending=` writes them at the same point.

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
        self._handed: int | None = None  # the batch `next()` handed out last
        self._ready = False  # whether batch `_next` holds a drawn batch
        self._in_flight = False  # whether the thread is drawing into batch `_next`
        self._update = _saved_update(pending)  # priorities for the thread's next request
        self._requests: queue.Queue[tuple[int, Any, float, Any] | None] = queue.Queue()
        self._done: queue.Queue[BaseException | None] = queue.Queue()
        self._closed = False
        if pending is not None:
            self._batches[0].fill(pending[:_SAVED_BATCH])
            self._ready = True
        self._thread = threading.Thread(target=self._work, name="replay-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            i, gate, beta, update = request
            try:
                if update is not None:
                    update.write(self._ring)
                self._batches[i].draw(self._ring, beta)
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

    def next(self, beta: float = 1.0) -> Batch:
        """The batch drawn at the previous call (the first call draws its own); starts the
        draw of the following one, with `beta`."""
        if self._closed:
            raise ReplayError("Prefetcher.next() after close()")
        self._wait()
        current = self._next
        if not self._ready:  # the very first batch: nothing was drawn ahead
            self._batches[current].draw(self._ring, beta)
        tensors = deliver(self._batches[current].tensors, self._device, self._destination)
        if self._device.type == "cuda":
            event = torch.cuda.Event()
            event.record()
            self._copied[current] = event
        following = 1 - current
        if self._copied[following] is not None:
            self._copied[following].synchronize()
        update, self._update = self._update, None
        self._requests.put((following, self._ring.pause_writes(), beta, update))
        self._handed = current
        self._next, self._ready, self._in_flight = following, False, True
        return tensors

    def set_priorities(self, td_abs: torch.Tensor) -> None:
        """Send the priorities of the batch last handed out (a no-op for a uniform ring);
        written before the draw after the next one. Called twice, the last call wins."""
        if not self._ring.prioritized:
            return
        if self._handed is None:
            raise ReplayError("set_priorities() before next(): no batch was handed out yet")
        self._update = _PriorityUpdate.send(self._batches[self._handed], td_abs)

    def pending(self) -> list[torch.Tensor] | None:
        """The drawn-ahead batch and its write counts, then the priorities not yet written
        (index, td_abs, drawn), if any."""
        self._wait()
        if not self._ready:
            return None
        saved = self._batches[self._next].copy()
        return saved + self._update.saved() if self._update is not None else saved

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
