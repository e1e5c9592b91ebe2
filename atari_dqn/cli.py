"""Command line: `python -m atari_dqn {train,eval,bench,report,games}` (also `atari-dqn`).

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
from atari_dqn.errors import ConfigError, UserError

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
        from atari_dqn.loop import resume

        return resume(Path(args.resume), overrides=args.overrides)
    if not args.game:
        raise ConfigError("train needs --game (e.g. --game Breakout) or --resume RUN_DIR")
    cfg = load_config(args.config, args.overrides, game=args.game)
    if args.dry_run:
        print(to_yaml(cfg), end="")
        return 0
    from atari_dqn.loop import train
    from atari_dqn.rundir import RunDir

    run_dir = Path(args.run_dir) if args.run_dir else RunDir.new(cfg.env.game).path
    return train(cfg, run_dir)


def _cmd_eval(args: argparse.Namespace) -> int:
    from atari_dqn.evaluate import evaluate_run

    return evaluate_run(
        Path(args.run_dir), episodes=args.episodes, seed=args.seed, overrides=args.overrides
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
    p.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})"
    )
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

    p = sub.add_parser("report", help="score tables and plots for runs, beside the paper's")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", default="report", help="output directory (default report/)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("games", help="list the games the installed ale-py ships")
    p.set_defaults(func=_cmd_games)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines())  # one line, always
        print(f"error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader left early (`games | head`): stop quietly, as Unix tools do. Point stdout
        # at /dev/null so the flush at exit does not raise again (Python's documented recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
