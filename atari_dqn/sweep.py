"""Many games and seeds on Ray: one ordinary run directory per (game, seed), here or on a cluster.

`sweep --games Breakout,Pong --seeds 0,1,2` plans one run per (game, seed) in
`OUT/<Game>-seed<S>/`, the directory `train` writes, so `eval`, `report` and `--resume` work
on it unchanged. Each run is one Ray task with its resources declared (CPUs, a fraction of
a GPU), and Ray places the tasks on the machines it has: a local Ray started here, or an
existing cluster (`--address`). Nothing is home-made that Ray does: scheduling, placement
and retries are Ray's. A task whose worker dies is retried by Ray and resumes its run from
the last checkpoint; the same command run again resumes what is unfinished and skips what
is done; Ctrl-C, SIGTERM, SIGHUP or a file `OUT/stop` ask every run to checkpoint and stop
(through its run directory's stop file: Ray's workers see no signal of ours), then the
command that continues is printed. `OUT/sweep.json` records the command, the config and
each run's state.

On a cluster, OUT must be a directory every machine sees at the same path (a shared
filesystem): Ray moves tasks, not files.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Any

from atari_dqn.configfile import from_dict, load_config, to_dict
from atari_dqn.errors import ConfigError
from atari_dqn.games import game_name
from atari_dqn.rundir import RunDir
from atari_dqn.scores import GAME_LISTS
from atari_dqn.shell import rerun_command
from atari_dqn.stop import StopRequest
from atari_dqn.sweeprecord import SweepRecord, SweepRun, progress_table

_WAIT_S = 120.0  # how long a stop waits for the runs to checkpoint and stop


def parse_games(text: str) -> list[str]:
    """`Breakout,pong` or a named list (`nature49`, `nips7`, `atari57`), in order, once each."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(
            f"--games is empty: name games (Breakout,Pong) or a list ({', '.join(GAME_LISTS)})"
        )
    games: list[str] = []
    for item in items:
        named = GAME_LISTS.get(item.lower())
        games += named if named is not None else (game_name(item),)
    return list(dict.fromkeys(games))


def parse_seeds(text: str) -> list[int]:
    """`0,1,2` as integers >= 0, in order, once each."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError("--seeds is empty: give seeds such as 0,1,2")
    try:
        seeds = [int(item) for item in items]
    except ValueError:
        raise ConfigError(f"--seeds must be integers such as 0,1,2, got '{text}'") from None
    if min(seeds) < 0:
        raise ConfigError(f"--seeds must be >= 0, got '{text}'")
    return list(dict.fromkeys(seeds))


def plan(
    games: list[str], seeds: list[int], config: str | None, overrides: list[str], out: Path
) -> list[SweepRun]:
    """Every run of the sweep, each config built and checked before anything is written."""
    runs = []
    for game in games:
        for seed in seeds:
            cfg = load_config(config, [*overrides, f"seed={seed}"], game=game)
            runs.append(SweepRun(game, seed, RunDir(out / f"{game}-seed{seed}"), cfg))
    return runs


def _connect(address: str | None) -> Any:
    """Ray, started here (no address) or joined at `address` ('auto' or HOST:PORT)."""
    import ray

    if address is None:
        # A local Ray on this machine, its traffic kept on the loopback interface.
        ray.init(
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            logging_level="ERROR",
        )
        return ray
    try:
        if address != "auto":  # fail in seconds, not after Ray's own minute of retries
            host, _, port = address.removeprefix("ray://").rpartition(":")
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except (OSError, RuntimeError, ValueError) as exc:  # ConnectionError is an OSError
        raise ConfigError(
            f"cannot join a Ray cluster at --address {address} ({_error_line(exc)}); start "
            "one with `ray start --head`, or leave --address out to run on this machine"
        ) from None
    return ray


def _check_resources(ray: Any, cpus: float, gpus: float) -> None:
    """Refuse runs that no machine of the cluster can ever hold (they would wait forever)."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if gpus > 0 and not any(n.get("GPU", 0) > 0 for n in nodes):
        raise ConfigError(
            f"--gpus-per-run {gpus:g} asks for a GPU, and this Ray cluster has none; "
            "use --gpus-per-run 0"
        )
    if not any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
        most = max((n.get("CPU", 0) for n in nodes), default=0)
        raise ConfigError(
            f"--cpus-per-run {cpus:g} is more than any machine of this Ray cluster has "
            f"({most:g}); lower it (a run needs loop.num_envs + 1 to keep its envs busy)"
        )


def _train_task(run_dir: str, cfg: dict[str, Any]) -> int:
    """A Ray task: the run, resumed from its checkpoint if it has one (a retry does)."""
    from atari_dqn.cores import flush_denormals

    flush_denormals()  # first: a task's process is a run's, as `train`'s is
    from atari_dqn.configfile import from_dict
    from atari_dqn.runs import start_or_resume

    return start_or_resume(from_dict(cfg), Path(run_dir))


def _error_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def run_sweep(
    runs: list[SweepRun],
    out: Path,
    *,
    config: str | None,
    overrides: list[str],
    address: str | None,
    cpus_per_run: float | None,
    gpus_per_run: float,
    max_retries: int,
) -> int:
    """Train every run that is not done, on Ray; then print the table and the report."""
    from rich.live import Live

    record = SweepRecord(out)
    record.check_same_sweep(config, overrides)
    todo = [r for r in runs if record.state(r.name) != "done"]
    print(f"sweep: {len(todo)} run(s) to train, {len(runs) - len(todo)} done, in {out}")
    if not todo:  # a finished sweep: its table and report, no Ray to start
        return summarise(out, runs, record)
    cpus = cpus_per_run if cpus_per_run is not None else runs[0].cfg.loop.num_envs + 1
    ray = _connect(address)
    try:
        _check_resources(ray, cpus, gpus_per_run)
        # orig_argv keeps `-m atari_dqn`, which argv turns into the path of __main__.py
        record.start(sys.orig_argv, config, overrides, runs)
        task = ray.remote(_train_task)
        options = dict(num_cpus=cpus, num_gpus=gpus_per_run, max_retries=max_retries)
        refs = {}
        submitted = time.time()
        # Entered after Ray's start, whose own SIGTERM handler would end the sweep at once
        # and its runs with it, without a checkpoint.
        with StopRequest(out / "stop") as stop:
            for run in todo:
                run.run.stop_request.unlink(missing_ok=True)  # left by a sweep stopped before
                ref = task.options(name=run.name, **options).remote(
                    str(run.run.path), to_dict(run.cfg)
                )
                refs[ref] = run
                record.set(run.name, "pending")  # until Ray starts it (it then writes run.log)
            # transient: the live table gives way to the one `summarise` prints, once
            table = progress_table(runs, record)
            with Live(table, refresh_per_second=1, transient=True) as live:
                while refs and not stop.requested:
                    _collect(ray, refs, record, timeout=1.0)
                    _mark_started(refs.values(), record, submitted)
                    live.update(progress_table(runs, record))
            if stop.requested:
                return _stop(ray, refs, record, submitted, stop)
    finally:
        ray.shutdown()
    return summarise(out, runs, record)


def _collect(ray: Any, refs: dict, record: SweepRecord, timeout: float) -> None:
    """Record the tasks that return within `timeout` seconds, and forget them."""
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    for ref in ready:
        run = refs.pop(ref)
        try:
            code = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - the run's own error, recorded
            record.set(run.name, "failed", _error_line(exc))
        else:
            record.set(run.name, "done" if code == 0 else "stopped")


def _mark_started(runs: Any, record: SweepRecord, since: float) -> None:
    """Pending runs that Ray has started: their `run.log` has grown since submission."""
    for run in runs:
        log = run.run.log_file
        if record.state(run.name) == "pending" and log.exists() and log.stat().st_mtime > since:
            record.set(run.name, "running")


def _stop(ray: Any, refs: dict, record: SweepRecord, submitted: float, stop: StopRequest) -> int:
    """Every running run checkpoints and stops; print how to continue; the exit status."""
    _mark_started(refs.values(), record, submitted)  # those started since the last look
    print(
        f"{stop.reason}: stopping {len(refs)} run(s), each checkpoints first "
        f"(up to {_WAIT_S:.0f} s)"
    )
    for ref, run in list(refs.items()):
        if record.state(run.name) == "running":  # it checkpoints, then returns
            run.run.stop_request.touch()
        else:  # still waiting for a machine: it never starts
            ray.cancel(ref)
            refs.pop(ref)
            record.set(run.name, "stopped")
    deadline = time.monotonic() + _WAIT_S
    try:
        while refs and time.monotonic() < deadline:
            _collect(ray, refs, record, timeout=1.0)
    except KeyboardInterrupt:  # a second signal (SecondStop)
        print("a second stop signal: not waiting for the runs to checkpoint")
    for run in refs.values():
        record.set(run.name, "stopped")
    print(f"sweep stopped. Continue it with:\n  {rerun_command()}")
    return stop.exit_code


def summarise(out: Path, runs: list[SweepRun], record: SweepRecord) -> int:
    """The table of every run, then the report over the finished ones."""
    from rich.console import Console

    from atari_dqn.report import write_report

    Console().print(progress_table(runs, record))
    finished = [r.run.path for r in runs if record.state(r.name) == "done"]
    if not finished:
        print("no finished run to report yet")
    else:
        try:  # the report leaves out, and names, a run finished without a score
            write_report(finished, out / "report")
        except ConfigError as exc:  # none of them has one
            print(f"no report yet: {exc}")
    return 0 if all(record.state(r.name) == "done" for r in runs) else 1


def status(out: Path) -> int:
    """`sweep --status OUT`: the table and the report, from what the sweep has written."""
    record = SweepRecord(out)
    if not record.exists():
        raise ConfigError(f"'{out}' holds no sweep (no sweep.json)")
    runs = [
        SweepRun(e["game"], e["seed"], RunDir(out / name), from_dict(record.data["resolved"]))
        for name, e in record.data["runs"].items()
    ]
    return summarise(out, runs, record)
