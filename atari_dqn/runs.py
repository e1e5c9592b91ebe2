"""Starting, resuming and evaluating a run in its directory: what `train`, `train --resume`,
`eval` and a sweep's tasks call.

Each resolves the config and the runtime once, checks that the run fits in memory before
anything is created, builds the parts (`atari_dqn.build`) and hands them to the loop. One
process trains a run at a time (the run's lock), and a resume keeps what a checkpoint is
made of (`config.fixed_on_resume_keys`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from rich.progress import Progress

from atari_dqn import checkpoint as ckpt
from atari_dqn.agent_name import what_it_is
from atari_dqn.budget import budget_warnings
from atari_dqn.build import evaluation_policy, new_parts, parts_from_checkpoint
from atari_dqn.config import Config
from atari_dqn.configfile import parse_overrides
from atari_dqn.env.atari import action_meanings
from atari_dqn.errors import ConfigError
from atari_dqn.evaluate import evaluate_and_film, too_few_games
from atari_dqn.logs import RunLogs
from atari_dqn.loop import Trainer
from atari_dqn.memory import check_fits
from atari_dqn.parts import Parts
from atari_dqn.provenance import code_version, describe_code
from atari_dqn.rundir import RunDir
from atari_dqn.runtime import Runtime, apply, resolve
from atari_dqn.sweeprecord import last_row
from atari_dqn.video import parse_choice

PAPER_STEPS = 50_000_000


def train(cfg: Config, run_dir: Path, source: str | None = None) -> int:
    """Start a new run of `cfg` (read from the file `source`) in `run_dir`, which must not
    hold one already."""
    run = RunDir(run_dir)
    if run.path.exists() and not run.path.is_dir():
        raise ConfigError(f"--run-dir '{run}' is a file, not a directory: choose another --run-dir")
    if run.holds_run():
        raise ConfigError(
            f"'{run}' already holds a run; continue it with `{run.resume_command()}` "
            "or choose another --run-dir"
        )
    check_fits(cfg)
    runtime = resolve(cfg)
    with run.locked():  # first: a directory it cannot write is refused before a word
        _say_what_it_is(cfg, run, runtime, source)
        run.write_config(cfg)
        return _train_new(cfg, run, runtime)


def _say_what_it_is(cfg: Config, run: RunDir, runtime: Runtime, source: str | None) -> None:
    """The run's first lines: what it trains, for how long, where, and how to resume it."""
    steps = cfg.loop.total_steps
    frames = steps * cfg.env.frame_skip
    print(
        f"training {cfg.env.game} with {source or 'its config'}: {steps:,} agent steps "
        f"({frames / 1e6:g}M emulator frames) into {run}"
    )
    print(f"  {what_it_is(cfg)}")
    if steps >= PAPER_STEPS and not runtime.on_cuda:
        print(
            f"  {steps // 10**6}M agent steps, the paper's full run or longer: on a CPU that "
            "takes days; configs/cpu_demo.yaml learns Breakout in one to two hours on 2 cores"
        )
    print(f"  Ctrl-C stops it with a checkpoint; resume with: {run.resume_command()}")


def _train_new(cfg: Config, run: RunDir, runtime: Runtime, notes: Sequence[str] = ()) -> int:
    apply(runtime)
    return _run(cfg, run, runtime, new_parts(cfg, runtime), notes)


def _run(
    cfg: Config,
    run: RunDir,
    runtime: Runtime,
    parts: Parts,
    notes: Sequence[str] = (),
    checkpoint_step: int | None = None,
) -> int:
    """Train `parts`; `notes` (what the sitting before lost) are said first."""
    try:
        logs = RunLogs(
            run, cfg, start_step=parts.state.agent_steps, action_names=parts.envs.action_meanings
        )
    except BaseException:
        parts.close()
        raise
    for note in notes:
        logs.event(note)
    code = code_version()
    logs.event(what_it_is(cfg), echo=False)
    for line in budget_warnings(cfg):  # at each start: a resume may change the budget
        logs.event(f"warning: {line}")
    logs.event(runtime.describe(), echo=False)
    logs.event(f"code: {describe_code(code)}", echo=False)
    run.record_start(runtime.to_dict(), code, parts.state.agent_steps)
    _fail_writes_past_file_size_limits()
    return Trainer(cfg, run, runtime, parts, logs, checkpoint_step).run()


def resume(run_dir: Path, overrides: list[str] | None = None) -> int:
    """Continue the run in `run_dir` from its checkpoint (overrides may extend it); a run
    stopped before its first checkpoint starts again from step 0 with its saved config."""
    run = RunDir(run_dir)
    cfg = run.resumed_config(overrides)
    check_fits(cfg)
    runtime = resolve(cfg)
    with run.locked():  # from here, no other sitting of the run is alive
        run.write_config(cfg)
        if not ckpt.has_checkpoint(run):
            print(f"'{run}' has no checkpoint yet: starting it from step 0 with its config")
            lost = _what_was_lost(run, 0)
            run.clear_attempt()
            return _train_new(cfg, run, runtime, lost)
        apply(runtime)
        parts, step = parts_from_checkpoint(cfg, runtime, run, say=print)
        print(
            f"resuming {cfg.env.game} in {run} at {step:,} of {cfg.loop.total_steps:,} "
            f"agent steps; resume later with: {run.resume_command()}"
        )
        return _run(cfg, run, runtime, parts, _what_was_lost(run, step), checkpoint_step=step)


def _what_was_lost(run: RunDir, step: int) -> list[str]:
    """What a start from agent step `step` says of the sitting before it: that it ended
    without a trace (killed), and the steps it trained past `step`, lost and trained again."""
    notes = []
    sitting = run.unfinished_sitting()
    if sitting is not None:
        notes.append(
            f"the last sitting ({sitting}) ended without a trace: it was killed (kill -9, "
            "out of memory, a power cut)"
        )
    logged = last_row(run.metrics_csv).get("agent_steps")
    if logged is not None and int(logged) > step:
        notes.append(
            f"agent steps {step:,} -> {int(logged):,} (logged after the checkpoint) are lost "
            "and trained again"
        )
    return notes


def _fail_writes_past_file_size_limits() -> None:
    """Under a file-size limit (ulimit -f), a checkpoint write past it then fails, and the
    run reports that in one line, instead of the kernel killing the process (SIGXFSZ).
    Python sets signal handlers in the main thread only; elsewhere the default stays."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def start_or_resume(cfg: Config, run_dir: Path) -> int:
    """Resume the run in `run_dir` if one was started there, else start `cfg` there."""
    if RunDir(run_dir).holds_run():
        return resume(run_dir)
    return train(cfg, run_dir)


def evaluate_run(
    run_dir: Path,
    *,
    episodes: int | None = None,
    seed: int | None = None,
    overrides: list[str] | None = None,
    video: str | None = None,
) -> int:
    """`atari-dqn eval`: score the latest checkpoint of `run_dir`, print it, write eval.json;
    with `video` (`best,median,worst` or game numbers), also those games as videos."""
    if set(parse_overrides(overrides or [])) - {"eval"}:
        raise ConfigError("eval takes only eval.* overrides, e.g. eval.epsilon=0.05")
    if episodes is not None and episodes <= 0:
        raise ConfigError(f"--episodes must be positive, got {episodes}")
    run = RunDir(run_dir)
    cfg = run.read_config(overrides)
    episodes = cfg.eval.episodes if episodes is None else episodes
    seed = cfg.seed + 1 if seed is None else seed
    film = parse_choice(video, episodes) if video is not None else None
    state = ckpt.load_state(run)
    n_actions = len(action_meanings(cfg.env))
    ckpt.check_compatible(state, game=cfg.env.game, n_actions=n_actions, run=run)
    runtime = resolve(cfg)
    apply(runtime)
    steps = state["counters"]["agent_steps"]
    films: list[str] = []  # said after the scores, which say which games they are
    with Progress() as bar:
        task = bar.add_task(f"evaluating {cfg.env.game}", total=episodes)
        result = evaluate_and_film(
            evaluation_policy(cfg, runtime, state),
            cfg,
            episodes=episodes,
            seed=seed,
            agent_steps=steps,
            film=film,
            video_folder=run.videos,
            say=films.append,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    for i, (score, frames) in enumerate(zip(result.scores, result.frames, strict=True)):
        print(f"game {i + 1:>3}: score {score:>8.1f}  ({frames:,} frames)")
    print(
        f"{cfg.env.game} after {steps:,} agent steps ({steps * cfg.env.frame_skip:,} frames): "
        f"mean {result.mean:.1f}, 95% CI [{result.ci_low:.1f}, {result.ci_high:.1f}] "
        f"over {episodes} games (epsilon {cfg.eval.epsilon}, seed {seed}){too_few_games(episodes)}"
    )
    run.write_record(run.eval_record, result.record(cfg, steps))
    print(f"wrote {run.eval_record}")
    print(*films, sep="\n")
    return 0
