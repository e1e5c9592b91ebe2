"""The vector env's processes: shared-memory arrays, the commands, and the worker loop.

Every array of a vector step lives in one shared buffer (`Layout`); the parent writes a
`Command` per block into `control` and posts a semaphore, each worker runs it on its own
block's rows and posts back. Only semaphore posts cross between processes per step;
states for checkpoints travel down a pipe.

Semaphores, not pipe messages, carry the wake-ups: Linux wakes a pipe reader on the
writer's core ("sync" wake-up), which in a ping-pong keeps worker and parent on one core.

A worker never outlives the process that made its VectorEnv: it checks that process every
half second while idle and exits when it is gone (killed with SIGKILL, or by the OOM
killer), so no worker of a dead run keeps its cores. The forkserver that forked the
workers exits once they have, and the shared memory, unlinked at creation, goes with them.
"""

from __future__ import annotations

import enum
import os
import select
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from atari_dqn.config import EnvConfig
from atari_dqn.env.block import EnvBlock
from atari_dqn.env.step import VecStep


@dataclass(frozen=True)
class Layout:
    """The shared arrays of N envs in `blocks` blocks: the actions, VecStep's fields, and
    per block the command to run, its status (0 ok, 1 failed) and how many of its envs
    have a spare game still to start. Each array starts on an 8-byte boundary."""

    num_envs: int
    blocks: int
    screen_size: int

    def _fields(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        per_block = (np.dtype(np.int8), (self.blocks,))
        return {
            "control": per_block,
            "status": per_block,
            "pending": (np.dtype(np.int32), (self.blocks,)),
            "actions": (np.dtype(np.int64), (self.num_envs,)),
            **VecStep.specs(self.num_envs, self.screen_size),
        }

    @staticmethod
    def _padded(dtype: np.dtype, shape: tuple[int, ...]) -> int:
        return -(-dtype.itemsize * int(np.prod(shape)) // 8) * 8

    def nbytes(self) -> int:
        return sum(self._padded(*spec) for spec in self._fields().values())

    def views(self, buffer: Any) -> dict[str, np.ndarray]:
        """Numpy arrays over one flat buffer (local memory or shared)."""
        out, offset = {}, 0
        for name, (dtype, shape) in self._fields().items():
            out[name] = np.frombuffer(buffer, dtype, int(np.prod(shape)), offset).reshape(shape)
            offset += self._padded(dtype, shape)
        return out


class Command(enum.IntEnum):
    """What the parent asks of every block, through `control[k]`."""

    STEP = 1
    STEP_AND_PREPARE = 2  # step, then start one spare game
    RESET = 3
    GET_STATE = 4  # send the block's env states down the pipe
    SET_STATE = 5  # read them from the pipe
    GET_STARTS = 6  # send the recorded game start states down the pipe
    CLOSE = 7


def run_stepping(block: EnvBlock, command: Command) -> None:
    """The commands every block runs alike on its own rows, in a worker or in the parent."""
    if command is Command.RESET:
        block.reset()
    else:
        block.step(prepare=command is Command.STEP_AND_PREPARE)


@dataclass(frozen=True)
class BlockSpec:
    """What worker `k` needs to build its block: envs [lo, hi) of `layout`."""

    k: int
    lo: int
    hi: int
    cfg: EnvConfig
    seed: int
    layout: Layout
    owner: int
    """Process id of the VectorEnv's process: the worker exits when it is gone."""
    record_starts: bool = False
    """Keep each game's start state (EnvBlock)."""


# Waking a sleeping process costs tens of microseconds, a tenth of an env step: both sides
# poll briefly before they sleep. The worker polls less, so it yields its core to torch
# soon after the last step when the learner runs.
PARENT_SPIN_S, WORKER_SPIN_S = 2e-3, 2e-4


_OWNER_CHECK_S = 0.5  # how often an idle worker checks that its owner still runs


def _watch(pid: int) -> Callable[[], bool]:
    """A function telling whether process `pid` still runs.

    A pidfd (Linux 5.3+) becomes readable when the process ends and cannot be confused by
    a later process reusing the pid; elsewhere, signal 0 probes the pid."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):

        def probe() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True

        return probe
    return lambda: not select.select([fd], [], [], 0)[0]


def spin_acquire(sem: Any, seconds: float) -> bool:
    """Try `sem` without sleeping for up to `seconds`; whether it was acquired."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if sem.acquire(False):
            return True
    return False


def worker(spec: BlockSpec, conn: Any, go: Any, done: Any, shared: Any) -> None:
    """Worker `spec.k`: wait on `go`, run the command in `control[k]`, post `done`.

    Errors set `status[k]` and send the traceback down `conn`.
    """
    cv2.setNumThreads(1)  # one core per worker; OpenCV's pool would only compete
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it closes us)
    k = spec.k
    try:
        arrays = spec.layout.views(shared)
        block = EnvBlock(spec.cfg, spec.seed, spec.lo, spec.hi, k, arrays, spec.record_starts)
        conn.send(block.envs[0].action_meanings)
    except BaseException:
        conn.send(traceback.format_exc())
        return
    owner_alive = _watch(spec.owner)
    while True:
        if not spin_acquire(go, WORKER_SPIN_S) and not go.acquire(timeout=_OWNER_CHECK_S):
            if not owner_alive():  # orphaned: the owner died without closing us
                break
            continue
        command = Command(int(arrays["control"][k]))
        if command is Command.CLOSE:
            break
        try:
            if command is Command.GET_STATE:
                conn.send(block.get_state())
            elif command is Command.GET_STARTS:
                conn.send(block.starts)
            elif command is Command.SET_STATE:
                block.set_state(conn.recv())
            else:
                run_stepping(block, command)
            arrays["status"][k] = 0
        except BaseException:
            arrays["status"][k] = 1
            conn.send(traceback.format_exc())
        done.release()
    block.close()
