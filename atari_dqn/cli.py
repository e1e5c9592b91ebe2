"""Command line: `python -m atari_dqn {train,eval,sweep,bench,report,games}` (or `atari-dqn`).

Bad input never shows a traceback: a `UserError` prints one `error: ...` line and exits
with status 2. Heavy imports (torch, numba) happen inside the commands that need them, so
`--help` is quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from atari_dqn.bench.suite import PARTS as BENCH_PARTS
from atari_dqn.configfile import load_config, to_yaml, valid_keys
from atari_dqn.cores import flush_denormals, wait_briefly
from atari_dqn.errors import ConfigError, UnknownGameError, UserError
from atari_dqn.games import game_name

DEFAULT_CONFIG = "configs/nature.yaml"


def _cmd_games(args: argparse.Namespace) -> int:
    from rich.console import Console

    from atari_dqn.games import list_games

    # Loading every ROM to read its action set takes several seconds: say so meanwhile.
    with Console(stderr=True).status("loading each ROM to read its action set"):
        games = list_games()
    width = max(len(name) for name, _ in games)
    for name, n_actions in games:
        print(f"{name:<{width}}  {n_actions:>2} actions")
    print(f"{len(games)} games (ale-py ships the ROMs)")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    if args.resume:
        return _resume(args)
    if not args.game:
        raise ConfigError("train needs --game (e.g. --game Breakout) or --resume RUN_DIR")
    _check_game_in_one_word("--game", args.game, args.overrides)
    source = args.config or DEFAULT_CONFIG
    cfg = load_config(source, args.overrides, game=args.game)
    if args.dry_run:
        print(to_yaml(cfg), end="")
        return 0
    flush_denormals()
    from atari_dqn.rundir import RunDir
    from atari_dqn.runs import train

    run_dir = Path(args.run_dir) if args.run_dir else RunDir.new(cfg.env.game).path
    return train(cfg, run_dir, source=source)


def _check_game_in_one_word(flag: str, given: str, overrides: list[str]) -> None:
    """`--game Space Invaders` (a name with a space, unquoted) reaches us as the game `Space`
    and the override `Invaders`: name the game, not the override."""
    words = [item for item in overrides if "=" not in item]
    if not words:
        return
    split = " ".join([given.rsplit(",", 1)[-1], *words])
    try:
        game = game_name(split)
    except UnknownGameError:
        return  # not a game: the override's own error says what is wrong
    raise ConfigError(
        f"the game '{split}' came as {len(words) + 1} words ({flag} {given}, then "
        f"{' '.join(words)}); did you mean {game}? (write it as one word, or quote it)"
    )


def _resume(args: argparse.Namespace) -> int:
    """`train --resume`: the run's own game, config and directory, changed only by
    key=value overrides; with --dry-run the config the resume would run, checked as it is."""
    given = [
        flag
        for flag, value in (
            ("--game", args.game),
            ("--config", args.config),
            ("--run-dir", args.run_dir),
        )
        if value
    ]
    if given:
        raise ConfigError(
            f"--resume continues a run with its own game, config and directory: drop "
            f"{', '.join(given)} (change what a resume may change with key=value, e.g. "
            f"loop.total_steps=1000000)"
        )
    if args.dry_run:
        from atari_dqn.rundir import RunDir

        print(to_yaml(RunDir(Path(args.resume)).resumed_config(args.overrides)), end="")
        return 0
    flush_denormals()
    from atari_dqn.runs import resume

    return resume(Path(args.resume), overrides=args.overrides)


def _cmd_eval(args: argparse.Namespace) -> int:
    flush_denormals()
    from atari_dqn.runs import evaluate_run

    return evaluate_run(
        Path(args.run_dir),
        episodes=args.episodes,
        seed=args.seed,
        overrides=args.overrides,
        video=(args.video_games or "best,median,worst") if args.video or args.video_games else None,
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    from atari_dqn.bench import suite

    if args.compare:
        return suite.compare(Path(args.compare[0]), Path(args.compare[1]))
    if not args.part:
        raise ConfigError(f"bench needs a part: one of {', '.join(suite.PARTS)}, all")
    parts = suite.PARTS if args.part == "all" else (args.part,)
    suite.run(parts, quick=args.quick, out_dir=Path(args.out), update_readme=args.update_readme)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from atari_dqn import sweep

    if args.status:
        return sweep.status(Path(args.status))
    if args.games is None:
        raise ConfigError("sweep needs --games (e.g. --games Breakout,Pong or nature49)")
    _check_game_in_one_word("--games", args.games, args.overrides)
    if args.cpus_per_run is not None and args.cpus_per_run <= 0:
        raise ConfigError(f"--cpus-per-run must be positive, got {args.cpus_per_run:g}")
    if args.gpus_per_run < 0:
        raise ConfigError(f"--gpus-per-run must be >= 0, got {args.gpus_per_run:g}")
    if args.max_retries < 0:
        raise ConfigError(f"--max-retries must be >= 0, got {args.max_retries}")
    from atari_dqn.rundir import RunDir

    out = Path(args.out) if args.out else RunDir.new("sweep").path
    runs = sweep.plan(
        sweep.parse_games(args.games),
        sweep.parse_seeds(args.seeds),
        args.config,
        args.overrides,
        out,
    )
    return sweep.run_sweep(
        runs,
        out,
        config=args.config,
        overrides=args.overrides,
        address=args.address,
        cpus_per_run=args.cpus_per_run,
        gpus_per_run=args.gpus_per_run,
        max_retries=args.max_retries,
    )


def _cmd_report(args: argparse.Namespace) -> int:
    from atari_dqn.report import write_report

    return write_report([Path(r) for r in args.runs], Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atari-dqn",
        description="Train, evaluate and benchmark the Nature DQN (Mnih et al. 2015) on Atari.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    overrides_help = (
        "config overrides as key=value with dotted keys, e.g. replay.capacity=100000 "
        "loop.num_envs=4; valid keys: " + ", ".join(valid_keys())
    )

    p = sub.add_parser("train", help="train a DQN on one game")
    p.add_argument("--game", help="Atari game, e.g. Breakout (see `games`)")
    p.add_argument("--config", help=f"YAML config (default {DEFAULT_CONFIG})")
    p.add_argument("--run-dir", help="output directory (default runs/<game>-<timestamp>)")
    p.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint"
    )
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a run's latest checkpoint with the paper protocol")
    p.add_argument("--run-dir", required=True, help="a run directory written by `train`")
    p.add_argument("--episodes", type=int, help="games to play (default: the run's eval.episodes)")
    p.add_argument("--seed", type=int, default=None, help="evaluation seed (default: run seed + 1)")
    p.add_argument(
        "--video",
        action="store_true",
        help="also write videos of the best, median and worst games, Q-values beside the screen",
    )
    p.add_argument(
        "--video-games",
        metavar="K",
        help="which games to film: best,median,worst (default) or numbers, e.g. 1,5",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="eval.* overrides")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("bench", help="throughput and memory benchmarks, ours beside the peers")
    p.add_argument("part", nargs="?", choices=[*BENCH_PARTS, "all"], help="what to measure")
    p.add_argument("--quick", action="store_true", help="a run of a few minutes")
    p.add_argument("--out", default="benchmarks/results", help="results directory")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="diff two results")
    p.add_argument(
        "--update-readme",
        action="store_true",
        help="also rewrite the performance section of ./README.md from the latest records",
    )
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser(
        "sweep", help="train many games and seeds on Ray, on this machine or a Ray cluster"
    )
    p.add_argument(
        "--games",
        help="comma-separated games or lists (nature49, nips7, atari57, atari100k), or both",
    )
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})"
    )
    p.add_argument("--out", help="sweep directory (default runs/sweep-<timestamp>)")
    p.add_argument(
        "--address",
        help="join the Ray cluster there ('auto' or HOST:PORT); default: a local Ray",
    )
    p.add_argument(
        "--cpus-per-run", type=float, help="CPUs Ray reserves per run (default loop.num_envs + 1)"
    )
    p.add_argument(
        "--gpus-per-run", type=float, default=0.0, help="GPUs per run, e.g. 0.25 (default 0)"
    )
    p.add_argument(
        "--max-retries", type=int, default=3, help="retries of a run whose worker dies (3)"
    )
    p.add_argument("--status", metavar="OUT", help="show a sweep's table and report, and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("report", help="score tables and plots for runs, beside the paper's")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", default="report", help="output directory (default report/)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("games", help="list the games the installed ale-py ships")
    p.set_defaults(func=_cmd_games)
    return parser


def main(argv: list[str] | None = None) -> int:
    wait_briefly()  # before any command loads torch (and for the Ray workers it starts)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines())  # one line, always
        print(f"error: {message}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # The reader left early (`games | head`): stop quietly, as Unix tools do. Point stdout
        # at /dev/null so the flush at exit does not raise again (Python's documented recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
