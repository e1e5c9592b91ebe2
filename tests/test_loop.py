"""The training loop end to end on a real game: schedule, logs, checkpoints, resume, Ctrl-C."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
from quick_runs import QUIET, SMOKE

from atari_dqn import checkpoint as ckpt
from atari_dqn.config import Config
from atari_dqn.configfile import load_config
from atari_dqn.errors import CheckpointError, ConfigError
from atari_dqn.loop import epsilon_at, importance_exponent_at, updates_due
from atari_dqn.provenance import code_version, describe_code
from atari_dqn.rundir import RunDir
from atari_dqn.runs import evaluate_run, resume, train
from atari_dqn.timers import PHASES


def smoke(*overrides: str) -> Config:
    return load_config(SMOKE, [*QUIET, *overrides])


def test_epsilon_is_one_through_replay_start_then_anneals_linearly_over_1m_steps():
    cfg = Config()
    assert epsilon_at(cfg, 0) == 1.0
    assert epsilon_at(cfg, 50_000) == 1.0
    assert epsilon_at(cfg, 50_000 + 500_000) == pytest.approx(0.55)
    assert epsilon_at(cfg, 1_050_000) == pytest.approx(0.1)
    assert epsilon_at(cfg, 5_000_000) == pytest.approx(0.1)


def test_beta_rises_linearly_from_its_start_at_replay_start_to_1_at_the_last_step():
    cfg = Config()  # replay start 50,000, 50M steps, beta 0.4
    assert importance_exponent_at(cfg, 0) == importance_exponent_at(cfg, 50_000) == 0.4
    assert importance_exponent_at(cfg, 50_000 + 24_975_000) == pytest.approx(0.7)
    assert importance_exponent_at(cfg, 50_000_000) == importance_exponent_at(cfg, 6e7) == 1.0


def test_one_update_per_four_agent_steps_after_replay_start_whatever_the_env_count():
    cfg = Config()
    assert updates_due(cfg, 50_000) == 0
    assert updates_due(cfg, 50_003) == 0
    assert updates_due(cfg, 50_004) == 1
    assert updates_due(cfg, 50_000 + 4 * 1000) == 1000


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_smoke_run_learns_and_writes_metrics_tensorboard_evals_and_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert train(smoke(), run) == 0
    rows = read_csv(run / "metrics.csv")
    assert [int(r["agent_steps"]) for r in rows] == list(range(500, 2001, 500))
    learning = [r for r in rows if int(r["updates"]) > 0]
    assert learning and all(math.isfinite(float(r["loss"])) for r in learning)
    assert int(rows[-1]["updates"]) == (2000 - 500) // 4
    assert len(rows[-1]["action_counts"].split()) == 4
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    evals = read_csv(run / "evals.csv")
    assert [int(r["agent_steps"]) for r in evals] == [1000, 2000]
    assert all(int(r["episodes"]) == 2 for r in evals)
    assert all(len(r["scores"].split()) == 2 for r in evals)
    state = ckpt.load_state(RunDir(run))
    assert state["counters"]["agent_steps"] == 2000
    assert ckpt.load_replay(RunDir(run)) is not None
    assert (run / "config.yaml").is_file()
    code = code_version()
    assert RunDir(run).trained_by() == [{"step": 0, **code}]
    assert f"code: {describe_code(code)}" in (run / "run.log").read_text()


def test_a_run_directory_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    train(smoke("loop.total_steps=600", "eval.interval_steps=0"), run)
    with pytest.raises(ConfigError, match="--resume"):
        train(smoke(), run)


def _resume_base(num_envs: int, prefetch: str, optimizer: str, overlap: str) -> tuple:
    return (
        f"learner.optimizer={optimizer}",
        "eval.interval_steps=0",
        "replay.capacity=2000",
        "loop.replay_start_steps=300",
        "learner.target_update_steps=200",
        "checkpoint.interval_steps=100000",
        f"loop.num_envs={num_envs}",
        f"replay.prefetch={prefetch}",
        f"loop.overlap={overlap}",
    )


def _full_and_resumed(tmp_path: Path, base: tuple, *extra: str) -> tuple[dict, dict]:
    """The final states of a 1,000-step run and of one stopped at 500 steps and resumed
    (whose two starts each record this checkout's code)."""
    full, split = tmp_path / "full", tmp_path / "split"
    assert train(smoke(*base, *extra, "loop.total_steps=1000"), full) == 0
    assert train(smoke(*base, *extra, "loop.total_steps=500"), split) == 0
    assert resume(split, ["loop.total_steps=1000"]) == 0
    code = code_version()  # this checkout's commit: each start of the run names it
    assert RunDir(split).trained_by() == [{"step": 0, **code}, {"step": 500, **code}]
    return ckpt.load_state(RunDir(full)), ckpt.load_state(RunDir(split))


@pytest.mark.parametrize(
    ("num_envs", "prefetch", "optimizer", "overlap", "compile"),
    [
        # The plainest case is slow-only: the two below cover each of its settings.
        pytest.param(1, "never", "deepmind_rmsprop", "false", "false", marks=pytest.mark.slow),
        (2, "always", "deepmind_rmsprop", "true", "false"),
        (1, "never", "adam", "false", "true"),  # torch.compile: exact with Adam too
    ],
)
def test_resumed_run_matches_an_uninterrupted_one(
    tmp_path, num_envs, prefetch, optimizer, overlap, compile
):
    # Exact: env emulator and RNG states, the replay, the prefetched batch, the optimiser and
    # every RNG are checkpointed, so the resumed run sees the very same data. Adam is the
    # optimiser of configs/cpu_demo.yaml; its state, unlike ours, is created on first step.
    # With overlap the updates run while the env workers step: still the same data.
    base = (*_resume_base(num_envs, prefetch, optimizer, overlap), f"learner.compile={compile}")
    a, b = _full_and_resumed(tmp_path, base)
    assert a["counters"] == b["counters"]
    assert a["recent_returns"] == b["recent_returns"]
    for key, value in a["learner"]["online"].items():
        assert torch.equal(value, b["learner"]["online"][key]), key


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    train(smoke("loop.total_steps=600", "eval.interval_steps=0"), run)
    (run / "checkpoint" / "state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        resume(run)


def test_checkpoint_of_another_game_is_refused(tmp_path):
    run = tmp_path / "run"
    train(smoke("loop.total_steps=600", "eval.interval_steps=0"), run)
    state = ckpt.load_state(RunDir(run))
    with pytest.raises(CheckpointError, match="for Breakout with 4 actions, not Pong"):
        ckpt.check_compatible(state, game="Pong", n_actions=6, run=RunDir(run))
    with pytest.raises(ConfigError, match="keeps its game"):
        resume(run, ["env.game=Pong"])


def test_missing_run_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        resume(tmp_path / "nope")


def test_interrupted_checkpoint_write_leaves_the_previous_one_loadable(tmp_path):
    run = tmp_path / "run"
    train(smoke("loop.total_steps=600", "eval.interval_steps=0"), run)
    # A crash between the two renames leaves only checkpoint.old/: it is still found.
    (run / "checkpoint").rename(run / "checkpoint.old")
    (run / "checkpoint.tmp").mkdir()
    assert ckpt.load_state(RunDir(run))["counters"]["agent_steps"] == 600


def test_a_run_with_a_smaller_screen_trains_end_to_end(tmp_path):
    # env.screen_size reaches the ring and the network: 64x64 frames are stored and learned.
    run = tmp_path / "run"
    cfg = smoke("env.screen_size=64", "loop.total_steps=1000", "eval.interval_steps=0")
    assert train(cfg, run) == 0
    rows = read_csv(run / "metrics.csv")
    assert int(rows[-1]["updates"]) == (1000 - 500) // 4
    assert all(math.isfinite(float(r["loss"])) for r in rows if int(r["updates"]) > 0)
    state = ckpt.load_state(RunDir(run))
    assert state["learner"]["online"]["layers.7.weight"].shape == (512, 64 * 4 * 4)


@pytest.mark.parametrize("overlap", ["false", "true"])
def test_overlap_runs_the_owed_updates_while_the_envs_step_and_false_keeps_the_plain_order(
    tmp_path, overlap
):
    # Plain order: step, then every update owed at the new count. Overlap: the updates owed
    # before a step run while it is in flight, so each row is one step's updates behind.
    run = tmp_path / "run"
    cfg = smoke("loop.total_steps=1000", "eval.interval_steps=0", "learner.compile=false",
                "loop.num_envs=2", f"loop.overlap={overlap}")  # fmt: skip
    assert train(cfg, run) == 0
    for row in read_csv(run / "metrics.csv"):
        steps = int(row["agent_steps"])
        behind = 2 if overlap == "true" else 0
        assert int(row["updates"]) == updates_due(cfg, steps - behind), row


@pytest.mark.cuda
def test_on_cuda_a_resumed_run_with_graphs_matches_an_uninterrupted_one(tmp_path):
    # CUDA graphs for the update and acting, overlap and prefetch on (the CUDA defaults).
    # Within a float tolerance: cuDNN's backward may sum in a different order run to run.
    base = _resume_base(2, "auto", "deepmind_rmsprop", "auto")
    a, b = _full_and_resumed(tmp_path, base, "learner.device=cuda", "learner.cuda_graph=auto")
    assert a["counters"] == b["counters"]
    for key, value in a["learner"]["online"].items():
        torch.testing.assert_close(value, b["learner"]["online"][key], rtol=1e-4, atol=1e-5)


def test_the_loop_phases_add_up_to_each_logging_intervals_wall_time(tmp_path):
    # Every moment of the loop is charged to one phase: per row of metrics.csv, the phases'
    # seconds are the interval's wall time (its steps over its steps/s), within 3%.
    run = tmp_path / "run"
    assert train(smoke("loop.total_steps=1500", "logging.interval_steps=250"), run) == 0
    rows = read_csv(run / "metrics.csv")
    previous = 0
    for row in rows:
        steps = int(row["agent_steps"]) - previous
        previous = int(row["agent_steps"])
        wall = steps / float(row["steps_per_second"])
        phases = {p: float(row[f"time_{p}_s"]) for p in PHASES}
        assert sum(phases.values()) == pytest.approx(wall, rel=0.03), row
        assert min(phases.values()) >= 0
    learning = rows[-1]
    assert float(learning["time_update_s"]) > 0 and float(learning["time_env_s"]) > 0
    assert float(rows[4]["time_eval_s"]) > 0  # the evaluation at step 1,000, logged next
    assert float(learning["trainer_rss_peak_mb"]) > 100
    assert "time: " in (run / "run.log").read_text().splitlines()[-1]


@pytest.mark.cuda
def test_on_cuda_training_fed_through_prefetch_and_graphs_matches_the_same_training_eager(
    tmp_path,
):
    # The whole fed path (prefetch thread -> pinned batch -> the graph's static buffers ->
    # the captured update) against eager updates of the same batches: 300 updates, overlap
    # on, under cuDNN's deterministic algorithms (conftest.py), the same weights.
    base = (*_resume_base(2, "always", "deepmind_rmsprop", "true"), "learner.device=cuda")
    states = {}
    for graph in ("true", "false"):
        cfg = smoke(*base, "loop.total_steps=1500", f"learner.cuda_graph={graph}")
        assert train(cfg, tmp_path / graph) == 0
        states[graph] = ckpt.load_state(RunDir(tmp_path / graph))
    assert states["true"]["counters"] == states["false"]["counters"]
    assert states["true"]["counters"]["updates"] == (1500 - 300) // 4
    for key, value in states["false"]["learner"]["online"].items():
        torch.testing.assert_close(
            states["true"]["learner"]["online"][key], value, rtol=1e-4, atol=1e-5
        )


FAMILY = (
    "learner.double_dqn=true",
    "learner.dueling=true",
    "replay.prioritized=true",
    # beta anneals over loop.total_steps, which these tests' resume extends: held at 1
    "replay.importance_exponent_start=1.0",
    "learner.n_step=3",
    "learner.max_grad_norm=10",
)


def test_the_dqn_family_together_trains_resumes_exactly_and_evaluates(tmp_path):
    # Double DQN, the dueling head, prioritized replay (priorities written back through the
    # prefetch thread, beta annealed) and 3-step returns, with 2 envs and overlap: a run
    # stopped and resumed ends as one that never stopped, and its checkpoint evaluates.
    base = (*_resume_base(2, "always", "deepmind_rmsprop", "true"), *FAMILY)
    a, b = _full_and_resumed(tmp_path, base)
    assert a["counters"] == b["counters"]
    for key, value in a["learner"]["online"].items():
        assert torch.equal(value, b["learner"]["online"][key]), key
    assert "layers.7.weight" not in a["learner"]["online"]  # the dueling head's streams
    ring = ckpt.load_replay(RunDir(tmp_path / "full"))
    assert ring.prioritized and ring.n_step == 3 and ring.discount == pytest.approx(0.99)
    assert (
        evaluate_run(tmp_path / "full", episodes=1, overrides=["eval.max_episode_frames=400"]) == 0
    )


RAINBOW = (
    *FAMILY,
    "learner.distributional=true",
    "learner.num_atoms=21",
    "learner.noisy=true",
    "loop.epsilon_start=0",
    "loop.epsilon_end=0",
)


@pytest.mark.slow  # 11-15 s: the suite measured 10:48 on a fresh clone with both
def test_rainbow_trains_resumes_exactly_and_evaluates_with_its_mean_weights(tmp_path):
    # C51 and noisy nets with the four switches above, acting from the noisy network from
    # the first step, on 2 envs with the prefetch thread and overlapped updates: the noise
    # generator is checkpointed, so a resumed run ends as one that never stopped, and its
    # checkpoint evaluates (with the mean weights). 42x42 frames, to keep the test short;
    # compiled: the learner's slow test.
    base = (*_resume_base(2, "always", "adam", "true"), *RAINBOW, "env.screen_size=42")
    a, b = _full_and_resumed(tmp_path, base)
    assert a["counters"] == b["counters"]
    assert torch.equal(a["learner"]["generator"], b["learner"]["generator"])
    for key, value in a["learner"]["online"].items():
        assert torch.equal(value, b["learner"]["online"][key]), key
    assert "head.advantage.2.weight_sigma" in a["learner"]["online"]
    assert (
        evaluate_run(tmp_path / "full", episodes=1, overrides=["eval.max_episode_frames=400"]) == 0
    )


@pytest.mark.slow  # 11-15 s: the suite measured 10:48 on a fresh clone with both
def test_drq_eps_trains_resumes_exactly_and_evaluates_several_games_at_once(tmp_path):
    # DrQ(ε)'s learner (configs/atari100k/drq_eps.yaml) at a smaller size: an update every
    # step, the target being the online network, 10-step returns and the augmentation, whose
    # generator is checkpointed, so a resumed run ends as one that never stopped; its
    # checkpoint evaluates 4 games on 2 envs at once.
    drq = (
        "learner.dueling=true",
        "learner.double_dqn=true",
        "learner.n_step=10",
        "learner.target_update_steps=1",
        "loop.update_every_steps=1",
        "learner.augmentation=drq",
        "env.screen_size=42",
    )
    a, b = _full_and_resumed(tmp_path, (*_resume_base(1, "never", "adam", "false"), *drq))
    assert a["counters"] == b["counters"] and a["counters"]["updates"] == 700
    assert torch.equal(a["learner"]["generator"], b["learner"]["generator"])
    for key, value in a["learner"]["online"].items():
        assert torch.equal(value, b["learner"]["online"][key]), key
        assert torch.equal(value, a["learner"]["target"][key]), key  # the target is online
    settings = ["eval.max_episode_frames=400", "eval.num_envs=2"]
    assert evaluate_run(tmp_path / "full", episodes=4, overrides=settings) == 0
    (record,) = [json.loads((tmp_path / "full" / "eval.json").read_text())]
    assert record["episodes"] == 4


# What commit be8aa63 (before C51 and noisy nets) logged in the smoke run with torch 2.13.0
# on this project's CPU: metrics.csv's loss and mean Q at steps 1,000, 1,500 and 2,000, and a
# digest of the final online weights.
SMOKE_BEFORE_C51 = (
    ("0.002982706530019641", "0.03777971863746643"),
    ("0.0021713441237807274", "0.05569571256637573"),
    ("0.004023951943963766", "0.05984235927462578"),
)
SMOKE_WEIGHTS_BEFORE_C51 = "aff63b0d571deab1"


@pytest.mark.skipif(
    torch.__version__.split("+")[0] != "2.13.0", reason="pinned with torch 2.13.0's CPU kernels"
)
def test_on_the_cpu_with_c51_and_noisy_nets_off_the_smoke_run_is_the_one_before_them(tmp_path):
    run = tmp_path / "run"
    assert train(smoke(), run) == 0
    rows = read_csv(run / "metrics.csv")[1:]
    assert tuple((row["loss"], row["mean_q"]) for row in rows) == SMOKE_BEFORE_C51
    digest = hashlib.sha256()
    for value in ckpt.load_state(RunDir(run))["learner"]["online"].values():
        digest.update(value.numpy().tobytes())
    assert digest.hexdigest()[:16] == SMOKE_WEIGHTS_BEFORE_C51
