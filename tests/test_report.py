"""`make report` from synthetic run directories: table rows, aggregate CI, plots."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from quick_runs import ROOT

from atari_dqn import published
from atari_dqn.configfile import PRESETS, load_config, to_yaml
from atari_dqn.env.atari import action_meanings
from atari_dqn.errors import ConfigError
from atari_dqn.evaluate import EvalResult
from atari_dqn.logs import CsvLog
from atari_dqn.report import CUT, aggregate, group_runs, summarise_run, write_report
from atari_dqn.report_atari100k import references
from atari_dqn.report_figures import frames_unit, nature_references, run_figure
from atari_dqn.rundir import RunDir
from atari_dqn.scores import human_normalized
from atari_dqn.stats import iqm


def fake_run(
    root: Path,
    game: str,
    seed: int,
    eval_scores: list[float],
    frames: int,
    *overrides: str,
    config: Path | None = None,
) -> Path:
    """A run directory as `train` writes it (of `config`, default Nature's), with made-up but
    well-formed contents."""
    run = root / f"{game}-{seed}-{len(list(root.glob('*'))) if root.exists() else 0}"
    run.mkdir(parents=True)
    cfg = load_config(config, [f"seed={seed}", *overrides], game=game)
    n_actions = len(action_meanings(cfg.env))
    (run / "config.yaml").write_text(to_yaml(cfg))
    metrics, evals = CsvLog(run / "metrics.csv"), CsvLog(run / "evals.csv")
    for i in range(1, 5):
        steps = i * frames // 16
        metrics.write(
            {
                "agent_steps": steps,
                "emulator_frames": steps * 4,
                "epsilon": 1.0 / i,
                "loss": 0.1 / i,
                "mean_max_q": 0.2 * i,
                "mean_return_100": float(i),
                "action_counts": " ".join(["10"] * n_actions),
            }
        )
        evals.write(_record(cfg, steps, [x * i / 4 for x in eval_scores]))
    (run / "eval.json").write_text(json.dumps(_record(cfg, frames // 4, eval_scores)))
    return run


def _record(cfg, agent_steps: int, scores: list[float]) -> dict:
    """An evaluation's record, as `eval` and training write it, with a made-up interval."""
    mean = float(np.mean(scores))
    games = len(scores)
    result = EvalResult(
        scores=list(scores),
        frames=[cfg.eval.max_episode_frames] * games,
        steps=[cfg.eval.max_episode_frames // 4] * games,
        mean=mean,
        ci_low=mean - 1,
        ci_high=mean + 1,
        seed=cfg.seed + 1,
    )
    return result.record(cfg, agent_steps)


def test_report_puts_our_scores_beside_the_papers_and_draws_each_run(tmp_path, capsys):
    runs = [
        fake_run(tmp_path / "runs", "Breakout", 0, [10.0, 12.0, 14.0], 10_000_000),
        fake_run(tmp_path / "runs", "Breakout", 1, [20.0, 22.0, 24.0], 10_000_000),
        fake_run(tmp_path / "runs", "Pong", 0, [-20.0, -19.0, -21.0], 200_000_000),
    ]
    out = tmp_path / "report"
    assert write_report(runs, out) == 0
    text = (out / "report.md").read_text()
    breakout = next(line for line in text.splitlines() if line.startswith("| Breakout"))
    cells = [c.strip() for c in breakout.strip("|").split("|")]
    assert cells[1] == "nature.yaml"
    assert cells[2] == "10.0M (paper: 200M)"  # a short run is labelled as such
    assert cells[3].startswith("17.0 [") and cells[3].endswith("] over 2 seeds")
    assert cells[4] == "401.2" and cells[5] == "1.7" and cells[6] == "31.8"
    assert float(cells[7]) == pytest.approx(human_normalized("Breakout", 17.0), abs=0.05)
    assert cells[9] == "2 (0, 1)"  # how many seeds, and which
    pong = next(line for line in text.splitlines() if line.startswith("| Pong"))
    assert "(paper:" not in pong
    for run in runs:
        assert (out / f"{run.name}.png").stat().st_size > 10_000
    assert "IQM" in text and "median" in text and "95% stratified bootstrap CI" in text


def test_report_of_one_run_gives_no_aggregate_interval(tmp_path):
    run = fake_run(tmp_path / "runs", "Breakout", 0, [10.0, 12.0, 14.0], 1000)
    write_report([run], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "- median: 34.2 (one run per game: no interval) over 1 game(s), 1 run(s)" in text


def aggregate_lines(text: str) -> list[str]:
    """The lines of a report's aggregate section, or of its printed summary."""
    section = text.split("human-normalised %", 1)[1].split("## Runs", 1)[0]
    return [line for line in section.splitlines() if line.startswith("- ")]


def test_one_seed_per_game_gives_no_interval_rather_than_one_of_no_width(tmp_path, capsys):
    runs = [
        fake_run(tmp_path / "runs", "Breakout", 0, [10.0, 12.0, 14.0], 1000),
        fake_run(tmp_path / "runs", "Pong", 0, [-20.0, -15.0, -21.0], 1000),
    ]
    write_report(runs, tmp_path / "report")
    report = aggregate_lines((tmp_path / "report" / "report.md").read_text())
    printed = aggregate_lines(capsys.readouterr().out)
    assert report == printed and len(report) == 3  # median, IQM, from
    for line in report[:2]:
        assert "(one run per game: no interval) over 2 game(s), 2 run(s)" in line
        assert not re.search(r"\[(-?[\d.,]+), \1\]", line)  # no [x, x]


def table_row(text: str, game: str) -> list[str]:
    """The cells of `game`'s row of a report's table."""
    row = next(line for line in text.splitlines() if line.startswith(f"| {game} "))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_scores_from_games_cut_shorter_than_the_papers_are_marked_where_shown(tmp_path):
    cut = fake_run(tmp_path, "Pong", 0, [-12.0, -13.0], 8000, "eval.max_episode_frames=2000")
    full = fake_run(tmp_path, "Breakout", 0, [10.0, 12.0], 8000)
    write_report([cut, full], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    pong, breakout = table_row(text, "Pong"), table_row(text, "Breakout")
    assert pong[3].startswith(f"-12.5{CUT} [") and pong[7].endswith(CUT)
    assert CUT not in "".join(breakout)
    legend = (
        f"{CUT} scores from evaluation games cut at 2,000 frames, under the paper's "
        "18,000-frame cap: not comparable with the paper's scores"
    )
    assert legend in text.splitlines()
    lines = aggregate_lines(text)  # an aggregate per config: Breakout's, then Pong's
    assert len(lines) == 6 and CUT not in "".join(lines[:3])
    median, iqm_line, taken = lines[3:]
    assert median.startswith("- median: ") and CUT in median and CUT in iqm_line
    assert f"Pong{CUT} (8,000 frames" in taken
    assert f"Pong, seed 0, 8,000 frames; score -12.5{CUT} from eval.json." in text
    assert "Breakout, seed 0, 8,000 frames; score 11.0 from eval.json." in text


def test_a_report_of_games_played_to_the_papers_cap_has_no_mark(tmp_path):
    run = fake_run(tmp_path, "Pong", 0, [-12.0, -13.0], 8000, "eval.max_episode_frames=18000")
    write_report([run], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert CUT not in text and "not comparable" not in text


def test_the_cap_that_marks_a_score_is_that_of_the_games_it_comes_from(tmp_path):
    # eval.json records the protocol `eval` played by, eval.* overrides included.
    run = fake_run(tmp_path, "Pong", 0, [-20.0], 4000)
    record = json.loads((run / "eval.json").read_text())
    record["protocol"] = {"max_episode_frames": 1200}
    (run / "eval.json").write_text(json.dumps(record))
    summary = summarise_run(run)
    assert summary.game_frames_cap == 1200 and summary.cut_short
    # Scores from training games: the training cap, not the evaluation's.
    for env_cap, cut_short in ((108_000, False), (4000, True)):
        caps = ["eval.max_episode_frames=2000", f"env.max_episode_frames={env_cap}"]
        run = fake_run(tmp_path, "Pong", 0, [-20.0], 4000, "eval.scores_from=training", *caps)
        (run / "training_games.json").write_text(
            json.dumps({"emulator_frames": 4000, "scores": [-21.0, -20.0]})
        )
        summary = summarise_run(run)
        assert summary.scored_games == "training"
        assert (summary.game_frames_cap, summary.cut_short) == (env_cap, cut_short)


@pytest.mark.parametrize(
    ("frames", "shown"), [(8000, "8,000"), (112_000, "0.11M"), (2_400_000, "2.4M")]
)
def test_frames_trained_read_plainly_at_every_size(tmp_path, frames, shown):
    write_report([fake_run(tmp_path, "Pong", 0, [1.0], frames)], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert table_row(text, "Pong")[2] == f"{shown} (paper: 200M)"
    assert f"- from: Pong ({shown} frames, 1 seed(s))" in text.splitlines()


@pytest.mark.parametrize(
    ("largest", "label"),
    [
        (8000, "emulator frames"),
        (50_000, "emulator frames (thousands)"),
        (999_999, "emulator frames (thousands)"),
        (2_400_000, "emulator frames (M)"),
        (200_000_000, "emulator frames (M)"),
    ],
)
def test_the_plots_frame_axis_unit_keeps_tick_labels_to_four_digits(largest, label):
    divisor, shown = frames_unit(largest)
    assert shown == label and 1 <= largest / divisor < 10_000


def test_aggregate_gives_median_and_iqm_with_intervals(tmp_path):
    runs = [
        summarise_run(fake_run(tmp_path, "Breakout", s, [1.7 + 30.1 * s / 4], 1000))
        for s in range(5)
    ]
    agg, used = aggregate(group_runs(runs))
    assert used == [("Breakout", (), 1000)]
    point, low, high = agg["median"]
    assert point == pytest.approx(50.0)  # human-normalised 0, 25, 50, 75, 100
    assert low <= point <= high
    assert agg["IQM"][0] == pytest.approx(50.0)


def test_report_of_a_directory_that_is_not_a_run_is_a_clear_error(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(ConfigError, match="not a run directory"):
        write_report([tmp_path / "junk"], tmp_path / "out")
    with pytest.raises(ConfigError, match="no run directories"):
        write_report([tmp_path / "missing"], tmp_path / "out")


def test_without_eval_json_the_last_evaluation_during_training_stands_for_the_run(tmp_path):
    run = fake_run(tmp_path, "Pong", 0, [-20.0], 4000)
    (run / "eval.json").unlink()
    (run / "evals.csv").unlink()
    cfg = load_config(run / "config.yaml")
    CsvLog(run / "evals.csv").write(_record(cfg, 2000, [-20.0, -18.0]))
    summary = summarise_run(run)
    assert summary.scores == [-20.0, -18.0]
    assert summary.interval == (-20.0, -18.0)  # the recorded one: mean -19 +- 1
    assert summary.frames == 8000
    assert summary.source.startswith("evals.csv")
    # The action histogram is labelled with the game's own action names.
    assert summary.actions == ["NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"]


def test_runs_that_differ_in_config_or_budget_are_not_pooled(tmp_path):
    # A 600k-step Adam run and a 28k-step Nature run of Breakout, both seed 0: two rows.
    adam = ["learner.optimizer=adam", "learner.learning_rate=0.0001"]
    demo = fake_run(tmp_path, "Breakout", 0, [50.0, 52.0], 2_400_000, *adam)
    short = fake_run(tmp_path, "Breakout", 0, [0.0, 0.0, 0.0], 112_000)
    write_report([demo, short], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| Breakout")]
    assert len(rows) == 2
    assert {[c.strip() for c in row.strip("|").split("|")][9] for row in rows} == {"1 (0)"}
    adam_label = "nature.yaml + learner.optimizer=adam, learner.learning_rate=0.0001"
    assert {table_row(text, "Breakout")[1]} <= {adam_label, "nature.yaml"}
    # An aggregate per config, each saying which groups it takes.
    assert f"{adam_label}:\n- median" in text and "nature.yaml:\n- median" in text
    assert "from: Breakout (2.4M frames, 1 seed(s))" in text


def test_runs_of_different_dqn_variants_are_different_rows(tmp_path):
    variants = [[], ["learner.double_dqn=true"], ["learner.dueling=true"]]
    runs = [fake_run(tmp_path, "Pong", 0, [1.0], 4000, *v) for v in variants]
    runs.append(fake_run(tmp_path, "Pong", 0, [1.0], 4000, "replay.prioritized=true"))
    write_report(runs, tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert len([line for line in text.splitlines() if line.startswith("| Pong")]) == 4
    for change in ("learner.double_dqn=True", "learner.dueling=True", "replay.prioritized=True"):
        assert change in text


def test_the_same_experiment_and_seed_twice_is_an_error(tmp_path):
    a = fake_run(tmp_path, "Pong", 3, [1.0], 4000)
    b = fake_run(tmp_path, "Pong", 3, [2.0], 4000)
    with pytest.raises(ConfigError, match="same experiment with the same seed"):
        write_report([a, b], tmp_path / "report")


def test_runs_differing_only_in_how_they_ran_pool(tmp_path):
    runs = [
        fake_run(
            tmp_path, "Pong", 0, [1.0], 4000, "learner.compile=false", "logging.progress=false"
        ),
        fake_run(tmp_path, "Pong", 1, [3.0], 4000, "loop.overlap=true"),
    ]
    assert len(group_runs([summarise_run(r) for r in runs])) == 1


def test_each_runs_section_names_the_code_that_trained_it_and_each_commit_of_a_resume(tmp_path):
    one, two, old = (
        fake_run(tmp_path / "runs", "Breakout", seed, [10.0], 8000) for seed in range(3)
    )
    runtime = {"device": "cpu"}
    clean, dirty = {"commit": "a" * 40, "dirty": False}, {"commit": "b" * 40, "dirty": True}
    RunDir(one).record_start(runtime, clean, step=0)
    RunDir(one).record_start(runtime, clean, step=1000)  # resumed on the same code
    RunDir(two).record_start(runtime, clean, step=0)
    RunDir(two).record_start(runtime, dirty, step=1500)  # resumed after a change
    write_report([one, two, old], tmp_path / "report")
    sections = (tmp_path / "report" / "report.md").read_text().split("### ")[1:]
    assert f"Code: commit `{'a' * 40}` (work tree clean).\n" in sections[0]
    assert (
        f"Code: commit `{'a' * 40}` (work tree clean) from step 0, commit `{'b' * 40}` "
        "(work tree dirty: uncommitted changes) from step 1,500.\n"
    ) in sections[1]
    assert "Code: not recorded.\n" in sections[2]  # a run directory without runtime.json


def test_a_start_from_an_older_checkpoint_drops_the_starts_whose_steps_it_redoes(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    codes = [{"commit": c * 40, "dirty": False} for c in "abc"]
    run.record_start({"device": "cpu"}, codes[0], step=0)
    run.record_start({"device": "cpu"}, codes[1], step=2000)
    run.record_start({"device": "cuda"}, codes[2], step=1000)  # killed after 2000, resumed at 1000
    assert run.trained_by() == [{"step": 0, **codes[0]}, {"step": 1000, **codes[2]}]
    assert run.read_record(run.runtime_record)["device"] == "cuda"  # the latest start's runtime


def test_an_aggregate_is_over_one_config_and_each_config_is_named_by_its_preset(tmp_path):
    demo = fake_run(
        tmp_path, "Breakout", 0, [30.0, 40.0, 50.0], 2_400_000, config=PRESETS / "cpu_demo.yaml"
    )
    combined = fake_run(
        tmp_path, "Pong", 0, [-3.0, -4.0, -5.0], 800_000, config=PRESETS / "combined.yaml"
    )
    write_report([demo, combined], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| game | config | frames trained | ours: mean [95% CI] |" in text
    breakout, pong = table_row(text, "Breakout"), table_row(text, "Pong")
    assert (breakout[1], pong[1]) == ("cpu_demo.yaml", "combined.yaml")
    assert breakout[3] == "40.0 [39.0, 41.0] over 3 games"
    section = text.split("## Aggregate", 1)[1].split("## Runs", 1)[0]
    assert "combined.yaml:\n- median: " in section and "cpu_demo.yaml:\n- median: " in section
    assert section.count("over 1 game(s), 1 run(s)") == 4  # median and IQM of each alone
    assert "2 game(s)" not in section


def test_a_run_without_a_score_is_left_out_and_named_with_the_make_command_that_gives_one(
    tmp_path,
):
    scored = fake_run(tmp_path, "Pong", 0, [-20.0], 4000)
    evaluable, untrained = fake_run(tmp_path, "Pong", 1, [1.0], 4000), tmp_path / "untrained"
    for run in (evaluable, untrained):
        if run.exists():
            (run / "eval.json").unlink()
            (run / "evals.csv").unlink()
    (evaluable / "checkpoint").mkdir()
    (evaluable / "checkpoint" / "state.pt").write_bytes(b"a checkpoint")
    untrained.mkdir()
    (untrained / "config.yaml").write_text((scored / "config.yaml").read_text())
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "atari_dqn", "report", str(scored), str(evaluable), str(untrained)]
        + ["--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ATARI_DQN_MAKE": "1"},  # as `make report` runs it
    )
    assert result.returncode == 0, result.stderr
    left_out = [line for line in result.stdout.splitlines() if line.startswith("left out: ")]
    assert left_out == [
        f"left out: '{evaluable}' has no evaluation yet: run `make eval RUN_DIR={evaluable}`",
        f"left out: '{untrained}' has no evaluation and no checkpoint to evaluate yet: train "
        f"it on with `make resume RUN_DIR={untrained}`",
    ]
    text = (out / "report.md").read_text()
    assert "## Runs left out" in text and f"make eval RUN_DIR={evaluable}" in text
    assert table_row(text, "Pong")[9] == "1 (0)"  # the scored run alone


@pytest.mark.parametrize(("rows", "joined"), [(1, False), (2, False), (4, True)])
def test_one_or_two_points_are_drawn_as_markers_and_the_final_evaluation_as_its_own(
    tmp_path, rows, joined
):
    # A run evaluated only at its end (`eval` after training: eval.json, no evals.csv).
    run = fake_run(tmp_path, "Pong", 0, [-20.0, -21.0], 4000)
    (run / "evals.csv").unlink()
    lines = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text("\n".join(lines[: 1 + rows]) + "\n")
    actions = action_meanings(load_config(run / "config.yaml").env)
    figure = run_figure(run, "Pong", actions, nature_references("Pong"))
    score, training_return, histogram = figure.axes[0], figure.axes[1], figure.axes[5]
    (final,) = [line for line in score.lines if line.get_marker() == "*"]
    assert final.get_xydata().tolist() == [[4000.0, -20.5]]  # eval.json's frames and mean
    assert "eval.json (2 games)" in [t.get_text() for t in score.get_legend().get_texts()]
    (curve,) = training_return.lines
    assert len(curve.get_xydata()) == rows and curve.get_marker() == ("None" if joined else "o")
    assert (curve.get_linestyle() != "None") == joined
    drawn = histogram.patches if not joined else histogram.collections
    assert len(drawn) == (rows * len(actions) if not joined else len(actions))


DRQ_EPS = PRESETS / "atari100k" / "drq_eps.yaml"


def atari100k_run(root: Path, game: str, seed: int, scores: list[float]) -> Path:
    """A run of the DrQ(ε) preset (`eval.benchmark: atari100k`), 100k agent steps."""
    return fake_run(root, game, seed, scores, 400_000, config=DRQ_EPS)


def test_an_atari100k_run_is_set_beside_the_published_runs_of_its_game(tmp_path, capsys):
    # Pong's first published DrQ(eps) run, tied on purpose: a tie counts half.
    tie = float(published.runs("DrQ(eps)", "Pong")[0])
    runs = [
        atari100k_run(tmp_path / "runs", "Pong", 0, [tie]),
        atari100k_run(tmp_path / "runs", "Pong", 1, [tie - 1.0, tie + 1.0]),
    ]
    write_report(runs, tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| Nature DQN |" not in text  # no Nature table without a Nature run
    assert "### atari100k/drq_eps.yaml, 0.40M frames trained" in text
    theirs = published.runs("DrQ(eps)", "Pong")
    pong = table_row(text, "Pong")
    assert pong[1] == f"{tie:,.1f} (2)"  # the mean of the two runs' means
    assert pong[2] == f"{theirs.mean():,.1f} (100)"
    share = 100 * (np.count_nonzero(theirs < tie) + 0.5 * np.count_nonzero(theirs == tie)) / 100
    assert float(pong[3]) == pytest.approx(share, abs=0.05)
    assert pong[4:7] == [f"{published.der_score('Pong'):,.1f}", "-20.7", "14.6"]
    assert float(pong[7]) == pytest.approx(100 * (tie + 20.7) / (14.6 + 20.7), abs=0.05)
    assert pong[8] == ("yes" if 5 <= share <= 95 else "no")
    assert "Atari 100k" in capsys.readouterr().out  # printed as well as written


def test_an_atari100k_score_reproduces_within_the_5th_to_95th_percentile_of_the_runs(tmp_path):
    theirs = np.sort(published.runs("DrQ(eps)", "Boxing"))
    scores = {"inside": float(np.median(theirs)), "above": float(theirs[-1]) + 1.0}
    for name, score in scores.items():
        run = atari100k_run(tmp_path / name, "Boxing", 0, [score])
        write_report([run], tmp_path / f"report-{name}")
        row = table_row((tmp_path / f"report-{name}" / "report.md").read_text(), "Boxing")
        assert row[8] == {"inside": "yes", "above": "no"}[name]


def test_atari100k_aggregates_are_ours_beside_drq_eps_runs_on_the_same_games(tmp_path):
    ours = {"Pong": [-20.0, -10.0], "Boxing": [0.0, 4.0]}
    runs = [
        atari100k_run(tmp_path, game, seed, [score])
        for game, scores in ours.items()
        for seed, score in enumerate(scores)
    ]
    out = tmp_path / "report"
    write_report(runs, out)
    text = (out / "report.md").read_text()
    assert "over 2 of the 26 games (Boxing, Pong)" in text
    mine = [published.human_normalized(g, np.array(s)) for g, s in sorted(ours.items())]
    theirs = [published.human_normalized(g, published.runs("DrQ(eps)", g)) for g in sorted(ours)]
    expected = {
        "median": [np.median([g.mean() for g in per_game]) for per_game in (mine, theirs)],
        "mean": [np.mean([g.mean() for g in per_game]) for per_game in (mine, theirs)],
        "IQM": [iqm(np.concatenate(per_game)) for per_game in (mine, theirs)],
    }
    for name, points in expected.items():
        row = table_row(text, name)
        for cell, point in zip(row[1:], points, strict=True):
            low, high = map(float, re.findall(r"\[(-?[\d.]+), (-?[\d.]+)\]", cell)[0])
            assert cell.startswith(f"{point:.1f} [") and low <= round(point, 1) <= high
    assert "| ours (4 runs) | DrQ(ε) (200 published runs) |" in text
    (png,) = out.glob("aggregates-*.png")
    assert png.stat().st_size > 5_000 and f"]({png.name})" in text


def test_a_game_outside_the_26_is_reported_and_flagged_with_no_published_runs(tmp_path):
    runs = [
        atari100k_run(tmp_path, "SpaceInvaders", 0, [150.0]),
        atari100k_run(tmp_path, "Pong", 0, [-19.0]),
    ]
    write_report(runs, tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert table_row(text, "SpaceInvaders‡") == ["SpaceInvaders‡", "150.0 (1)", *["n/a"] * 7]
    assert "‡ not one of the benchmark's 26 games: no published runs" in text
    assert "over 1 of the 26 games (Pong)" in text  # left out of the aggregates
    assert "(no interval)" in table_row(text, "median")[1]  # one run a game


def test_runs_of_one_name_from_two_sweeps_each_keep_their_own_section_and_plot(tmp_path):
    # `make report RUNS="runs/atari100k-*/*"`: DrQ(eps)'s and DER's sweeps both hold a
    # Boxing run of seed 0; each is named by its sweep's folder, a name used once stays bare.
    drq, der = tmp_path / "atari100k-drq_eps", tmp_path / "atari100k-der"
    runs = [
        atari100k_run(drq, "Boxing", 0, [10.0]),
        fake_run(der, "Boxing", 0, [-1.0], 400_000, config=PRESETS / "atari100k" / "der.yaml"),
        atari100k_run(drq, "Pong", 0, [-19.0]),
    ]
    assert runs[0].name == runs[1].name
    out = tmp_path / "report"
    write_report(runs, out)
    text = (out / "report.md").read_text()
    sections = re.findall(r"^### (.+)\n.*\n\n!\[.*\]\((.+)\)$", text, flags=re.MULTILINE)
    names = [f"{root.name}/{runs[0].name}" for root in (drq, der)] + [runs[2].name]
    assert sections == [(name, f"{name.replace('/', '-')}.png") for name in names]
    plots = [(out / png).read_bytes() for _, png in sections]
    assert len(set(plots)) == 3  # none drawn over another


def test_nature_and_atari100k_runs_are_each_reported_their_own_way(tmp_path):
    nature = fake_run(tmp_path, "Breakout", 0, [10.0, 12.0, 14.0], 10_000_000)
    drq = atari100k_run(tmp_path, "Breakout", 0, [6.0])
    write_report([nature, drq], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    nature_part, atari100k_part = text.split("## Atari 100k", 1)
    assert table_row(nature_part, "Breakout")[1] == "nature.yaml"
    assert "atari100k/drq_eps.yaml" not in nature_part.split("## Runs")[0]
    assert table_row(atari100k_part, "Breakout")[1] == "6.0 (1)"


def test_an_atari100k_runs_plot_draws_the_published_means_and_random_not_natures():
    lines = references("Pong")
    assert list(lines.values()) == [
        float(published.runs("DrQ(eps)", "Pong").mean()),
        published.der_score("Pong"),
        published.random_score("Pong"),
    ]
    assert references("Tetris") == {}  # outside the benchmark: nothing published
    assert "Nature DQN (200M frames)" in nature_references("Pong")


def test_a_runs_plot_names_the_epsilon_its_evaluations_played_at(tmp_path):
    run = atari100k_run(tmp_path, "Pong", 0, [-20.0])
    actions = action_meanings(load_config(run / "config.yaml").env)
    score = run_figure(run, "Pong", actions, references("Pong")).axes[0]
    labels = [t.get_text() for t in score.get_legend().get_texts()]
    assert "ours (eval, eps 0.001)" in labels  # the preset's, not the Nature paper's 0.05
