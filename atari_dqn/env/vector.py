"""N preprocessed games stepped together, in this process and in worker processes.

The N envs are split into contiguous blocks (`atari_dqn.env.block`), one per core at most.
By default this process steps the first block itself while worker processes step the
others (`atari_dqn.env.workers`), so N=1 runs entirely in-process (the paper's single
stream) and no core sits idle waiting. With `in_process=False` every block runs in a
worker, and `step_async` / `step_wait` leave this process free between them (the training
loop runs its updates there). Env i is `AtariEnv(cfg, env_seed(seed, i))` playing on
`SpareGames`, so env 0 gives the same stream whatever N and the worker count are.

Scheduling the spare games: a block with spares to start does not start them at once; it
waits until every block has one, and then all blocks start one in the same step, so they
pay a reset's cost side by side instead of stalling each other in turn. A spare needed
before then is started at its game over.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import weakref
from typing import Any

import numpy as np

from atari_dqn.config import EnvConfig
from atari_dqn.env import workers
from atari_dqn.env.block import EnvBlock, GameStart
from atari_dqn.env.step import VecStep
from atari_dqn.env.workers import BlockSpec, Command, Layout
from atari_dqn.errors import ConfigError


def _shutdown(procs: list, gos: list, control: np.ndarray) -> None:
    control[:] = Command.CLOSE
    for go in gos:
        go.release()
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class VectorEnv:
    """N preprocessed games of `cfg` stepped together; ended episodes reset automatically.

    `workers` is the number of blocks (default: one per core, at most N); every block but
    the first runs in a worker process, the first too when `in_process` is False. Every
    array lives in shared memory; only semaphore posts cross between processes. As with any
    multiprocessing code, a script that makes one with workers needs the
    `if __name__ == "__main__":` guard.
    """

    def __init__(
        self,
        cfg: EnvConfig,
        num_envs: int,
        *,
        seed: int,
        workers: int | None = None,
        in_process: bool = True,
        record_starts: bool = False,
    ) -> None:
        if num_envs <= 0:
            raise ConfigError(f"num_envs must be positive, got {num_envs}")
        if workers is not None and workers <= 0:
            raise ConfigError(f"workers must be positive, got {workers}")
        self.num_envs = num_envs
        blocks = min(num_envs, workers or _cores())
        self._bounds = [int(b) for b in np.linspace(0, num_envs, blocks + 1).round()]
        layout = Layout(num_envs, blocks, cfg.screen_size)
        self._procs: list = []
        self._conns: list = []
        self._gos: list = []
        self._dones: list = []
        self._closed = False
        self._first_worker = 1 if in_process else 0  # the block the first worker steps
        self._pending: Command | None = None  # a step posted by step_async, not yet waited
        if blocks == 1 and in_process:
            self._arrays = layout.views(bytearray(layout.nbytes()))
        else:
            self._start_workers(cfg, seed, layout, record_starts)
        self._local = (
            EnvBlock(cfg, seed, 0, self._bounds[1], 0, self._arrays, record_starts)
            if in_process
            else None
        )
        replies = [self._reply(i, conn.recv) for i, conn in enumerate(self._conns)]
        for i, reply in enumerate(replies):
            if isinstance(reply, str):
                self.close()
                raise RuntimeError(f"env worker {self._procs[i].name} failed to start:\n{reply}")
        self.action_meanings: list[str] = (
            self._local.envs[0].action_meanings if self._local is not None else replies[0]
        )
        self.n_actions = len(self.action_meanings)

    def _start_workers(
        self, cfg: EnvConfig, seed: int, layout: Layout, record_starts: bool
    ) -> None:
        # fork is unsafe once torch, OpenCV or a prefetch thread runs; the forkserver
        # imports the worker's module once, and each worker is forked from it.
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["__main__", workers.__name__])
        shared = ctx.RawArray("b", layout.nbytes())
        self._arrays = layout.views(shared)
        for k in range(self._first_worker, layout.blocks):
            lo, hi = self._bounds[k], self._bounds[k + 1]
            spec = BlockSpec(k, lo, hi, cfg, seed, layout, os.getpid(), record_starts)
            parent, child = ctx.Pipe()
            go, done = ctx.Semaphore(0), ctx.Semaphore(0)
            proc = ctx.Process(
                target=workers.worker,
                args=(spec, child, go, done, shared),
                name=f"atari-env-{lo}-{hi - 1}",
                daemon=True,
            )
            proc.start()
            child.close()
            self._procs.append(proc)
            self._conns.append(parent)
            self._gos.append(go)
            self._dones.append(done)
        self._finalizer = weakref.finalize(
            self, _shutdown, self._procs, self._gos, self._arrays["control"]
        )

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers (the first block runs in this process)."""
        return [proc.pid for proc in self._procs]

    @property
    def worker_exit_codes(self) -> list[int | None]:
        """Each worker's exit status, None while it runs."""
        return [proc.exitcode for proc in self._procs]

    def spares_to_start(self) -> np.ndarray:
        """Per block, how many of its envs have a spare game still to start (a copy)."""
        return self._arrays["pending"].copy()

    def _reply(self, i: int, wait: Any) -> Any:
        """Run `wait` for worker i, turning a dead worker into a clear error."""
        try:
            return wait()
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass
        self._raise_dead(i)

    def _raise_dead(self, i: int) -> None:
        proc = self._procs[i]
        proc.join(timeout=1)
        self.close()
        raise RuntimeError(
            f"env worker {proc.name} died (exit code {proc.exitcode}); the VectorEnv is closed"
        )

    def _command(self, command: Command) -> None:
        """Run `command` in every block: the workers' in parallel with this process's own."""
        self._start(command)
        self._finish(command)

    def _start(self, command: Command) -> None:
        """Post `command` to every worker."""
        if self._closed:
            raise RuntimeError("this VectorEnv is closed")
        if self._pending is not None:
            raise RuntimeError("step_wait() is due before the next command")
        self._arrays["control"][:] = command
        for go in self._gos:
            go.release()

    def _finish(self, command: Command) -> None:
        """Run `command` in this process's block, then wait for the workers."""
        try:
            if self._local is not None:
                workers.run_stepping(self._local, command)
        finally:  # even if ours failed or was interrupted, so no worker is left mid-command
            self._collect()

    def _collect(self) -> None:
        """Wait until every worker has finished its command; raise the first worker error."""
        for i, done in enumerate(self._dones):
            if workers.spin_acquire(done, workers.PARENT_SPIN_S):
                continue
            while not done.acquire(timeout=1.0):
                if not self._procs[i].is_alive():
                    self._raise_dead(i)
        for i in np.flatnonzero(self._arrays["status"][self._first_worker :]):
            error = self._reply(i, self._conns[i].recv)
            raise RuntimeError(f"env worker {self._procs[i].name} raised:\n{error}")

    def _gather(self, command: Command, local: Any) -> list:
        """Each env's answer to `command`, in env order: this process's block's (`local()`),
        then each worker's, sent down its pipe."""
        self._start(command)
        try:
            answers = local() if self._local is not None else []
            for i, conn in enumerate(self._conns):
                reply = self._reply(i, conn.recv)
                if isinstance(reply, str):  # a worker's traceback
                    raise RuntimeError(f"env worker {self._procs[i].name} raised:\n{reply}")
                answers += reply
        finally:
            self._collect()
        return answers

    def get_state(self) -> list[dict[str, Any]]:
        """Every env's state (AtariEnv.get_state), in env order: a checkpoint resumes exactly."""
        return self._gather(Command.GET_STATE, lambda: self._local.get_state())

    def game_starts(self) -> list[list[GameStart]]:
        """Per env, where each of its games started (with `record_starts`)."""
        return self._gather(Command.GET_STARTS, lambda: list(self._local.starts))

    def set_state(self, states: list[dict[str, Any]]) -> None:
        """Restore what `get_state` returned, from a VectorEnv of the same game and size."""
        if len(states) != self.num_envs:
            raise ConfigError(
                f"saved env state is for {len(states)} envs, not {self.num_envs}: "
                "resume with the run's own loop.num_envs"
            )
        self._start(Command.SET_STATE)
        try:
            if self._local is not None:
                self._local.set_state(states[: self._bounds[1]])
            for k, conn in enumerate(self._conns, start=self._first_worker):
                conn.send(states[self._bounds[k] : self._bounds[k + 1]])
        finally:
            self._collect()

    def reset(self) -> np.ndarray:
        """First frames of all envs, uint8[N, S, S]: the start of each env's first game."""
        self._command(Command.RESET)
        return self._arrays["frames"].copy()

    def step(self, actions: np.ndarray) -> VecStep:
        """Act in every env (actions: int[N] indices into the action set); auto-resets."""
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: np.ndarray) -> None:
        """Start `step(actions)` in the workers; `step_wait` returns its result."""
        actions = np.asarray(actions)
        if not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        if actions.min() < 0 or actions.max() >= self.n_actions:
            raise ValueError(f"actions must be in [0, {self.n_actions}), got {actions}")
        self._arrays["actions"][:] = actions
        # Start spare games only when every block has one to start (module docstring).
        prepare = self._arrays["pending"].min() > 0
        command = Command.STEP_AND_PREPARE if prepare else Command.STEP
        self._start(command)
        self._pending = command

    def step_wait(self) -> VecStep:
        """The step `step_async` started (this process's own block is stepped now)."""
        if self._pending is None:
            raise RuntimeError("step_wait() without step_async()")
        command, self._pending = self._pending, None
        self._finish(command)
        return VecStep.copy_from(self._arrays)

    def close(self) -> None:
        """Stop the workers and close the envs (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._procs:
            self._finalizer()
            for conn in self._conns:
                conn.close()
        if getattr(self, "_local", None) is not None:
            self._local.close()

    def __enter__(self) -> VectorEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
