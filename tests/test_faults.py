"""Nothing lost, nothing left behind: real trainer processes killed, signalled, starved of
disk and driven to divergence, and replay files damaged byte by byte."""

from __future__ import annotations

import csv
import json
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from procs import alive, descendants, wait_for
from quick_runs import QUIET, ROOT, SMOKE
from replay_reference import CONTINUE, TERMINATED, TRUNCATED, CounterStream, ReferenceReplay

from atari_dqn import checkpoint as ckpt
from atari_dqn.configfile import load_config
from atari_dqn.errors import CheckpointError, ConfigError, ReplayError
from atari_dqn.replay.inspection import gather, valid_transitions
from atari_dqn.replay.ring import FrameRing
from atari_dqn.replay.ringfile import load_ring, save_ring
from atari_dqn.rundir import RunDir
from atari_dqn.runs import resume, train

FAST = [*QUIET, "eval.interval_steps=0"]


def start(run: Path, *overrides: str, resume_run: bool = False, **popen) -> subprocess.Popen:
    """`python -m atari_dqn train` on the smoke config in a process of its own."""
    if resume_run:
        args = ["train", "--resume", str(run), *overrides]
    else:
        args = ["train", "--game", "Breakout", "--config", str(SMOKE), "--run-dir", str(run)]
        args += [*FAST, *overrides]
    return subprocess.Popen(
        [sys.executable, "-m", "atari_dqn", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def checkpoint_step(run: Path) -> int:
    try:
        return ckpt.load_state(RunDir(run))["counters"]["agent_steps"]
    except CheckpointError:
        return -1


def read_steps(path: Path) -> list[int]:
    with path.open(newline="") as f:
        return [int(row["agent_steps"]) for row in csv.DictReader(f)]


RUN = (
    "loop.num_envs=2",
    "replay.capacity=3000",
    "loop.replay_start_steps=300",
    "learner.target_update_steps=200",
    "logging.interval_steps=100",
    "checkpoint.interval_steps=200",
    "loop.total_steps=1000",
)


def test_a_run_killed_with_sigkill_three_times_ends_as_one_never_killed_and_leaves_no_process(
    tmp_path,
):
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert train(load_config(SMOKE, [*FAST, *RUN]), full) == 0
    rng = np.random.default_rng(0)
    proc = start(killed, *RUN)
    last = -1
    for _ in range(3):
        wait_for(lambda: checkpoint_step(killed) > last)  # noqa: B023 - read at each poll
        time.sleep(rng.uniform(0.0, 1.5))  # a random moment after a fresh checkpoint
        tree = descendants(proc.pid)
        assert tree, "the trainer has no env worker"
        proc.kill()
        proc.wait(timeout=10)
        wait_for(lambda: not alive(tree), timeout=5)  # noqa: B023
        last = checkpoint_step(killed)
        proc = start(killed, resume_run=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    a, b = ckpt.load_state(RunDir(full)), ckpt.load_state(RunDir(killed))
    assert a["counters"] == b["counters"]
    for key, value in a["learner"]["online"].items():
        assert torch.equal(value, b["learner"]["online"][key]), key
    steps = read_steps(killed / "metrics.csv")
    assert steps == sorted(set(steps)) == read_steps(full / "metrics.csv")


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_a_stop_signal_saves_a_checkpoint_that_resumes_and_says_how(tmp_path, sig, code):
    # SIGHUP is what a closed terminal or a dropped SSH session sends.
    run = tmp_path / "run"
    proc = start(run, "loop.total_steps=50000000")
    wait_for(lambda: (run / "metrics.csv").exists())
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, out
    if json.loads((run / "runtime.json").read_text())["device"] == "cpu":
        # The paper's length on a CPU: the run says what that costs and what learns sooner.
        assert "50M agent steps, the paper's full run or longer: on a CPU that takes days; " in out
        assert "configs/cpu_demo.yaml learns Breakout in one to two hours on 2 cores" in out
    assert f"--resume {run}" in out and "Traceback" not in out
    assert f"--resume {run}" in (run / "run.log").read_text()  # the terminal may be gone
    saved = checkpoint_step(run)
    assert saved > 0
    if sig == signal.SIGHUP:
        assert resume(run, ["loop.total_steps=" + str(saved + 100)]) == 0
        assert checkpoint_step(run) == saved + 100


def test_a_second_ctrl_c_while_the_stop_checkpoint_is_written_stops_without_it(tmp_path):
    # A replay of 20,000 frames (140 MB) takes long enough to write (its CRCs, its fsync)
    # that the second Ctrl-C lands inside it: sent as soon as checkpoint.tmp appears.
    run = tmp_path / "run"
    proc = start(
        run,
        "replay.capacity=100000",
        "loop.replay_start_steps=1000000",  # random play: fast, no learning needed
        "checkpoint.interval_steps=15000",
        "loop.total_steps=10000000",
    )
    wait_for(lambda: checkpoint_step(run) >= 15000)
    wait_for(lambda: read_steps(run / "metrics.csv")[-1] >= 20_000)
    kept = checkpoint_step(run)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)  # two signals close together reach Python's handler as one
    deadline = time.monotonic() + 30
    while not (run / "checkpoint.tmp").exists():  # polled tightly: the write takes ~0.2 s
        assert time.monotonic() < deadline
        time.sleep(0.0005)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in out, out
    assert "a second SIGINT: the run stopped without a new checkpoint" in errors[0]
    assert f"the checkpoint at agent step {checkpoint_step(run):,} remains" in errors[0]
    assert f"--resume {run}" in errors[0]
    assert not (run / "checkpoint.tmp").exists()
    assert kept == checkpoint_step(run) == 15000


def _limit_file_size(size: int):
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def test_a_checkpoint_that_cannot_be_written_stops_the_run_and_keeps_the_previous_one(
    tmp_path,
):
    # A file-size limit stands in for a full disk: the first checkpoint (state 27 MB, replay
    # 22 MB at step 3,000) fits under 32 MiB a file, the second one's replay (44 MB) does not.
    run = tmp_path / "run"
    proc = start(
        run, "replay.capacity=10000", "loop.replay_start_steps=100000",
        "checkpoint.interval_steps=3000", "loop.total_steps=6000",
        preexec_fn=_limit_file_size(32 << 20),
    )  # fmt: skip
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "cannot write a checkpoint" in errors[0], out
    assert out.count("cannot write a checkpoint") == 1  # said once, not also by the run
    assert "free beside the previous checkpoint" in errors[0] and "Traceback" not in out
    assert "checkpoint.save_replay=false" in errors[0]
    assert checkpoint_step(run) == 3000
    ring = ckpt.load_replay(RunDir(run))
    assert ring is not None and len(ring) > 2900
    assert not (run / "checkpoint.tmp").exists()


def test_a_run_that_saves_no_replay_is_not_told_to_stop_saving_it(tmp_path):
    # No replay: the state (27 MB) alone does not fit under 16 MiB a file.
    run = tmp_path / "run"
    proc = start(
        run,
        "checkpoint.save_replay=false",
        "checkpoint.interval_steps=1000",
        "loop.total_steps=2000",
        preexec_fn=_limit_file_size(16 << 20),
    )
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "cannot write a checkpoint" in errors[0], out
    assert "save_replay" not in errors[0] and "the run has no earlier checkpoint" in errors[0]
    assert not (run / "checkpoint.tmp").exists() and checkpoint_step(run) == -1


def test_a_run_whose_loss_becomes_nan_stops_and_keeps_its_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc = start(
        run, "learner.learning_rate=1e30", "loop.replay_start_steps=400",
        "checkpoint.interval_steps=400", "logging.interval_steps=200", "loop.total_steps=3000",
    )  # fmt: skip
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "became NaN or infinite at update" in errors[0], out
    assert "last good checkpoint (the checkpoint at agent step 400)" in errors[0]
    state = ckpt.load_state(RunDir(run))
    assert state["counters"]["agent_steps"] == 400
    assert all(torch.isfinite(v).all() for v in state["learner"]["online"].values())


# -- the replay file ----------------------------------------------------------------------


def _tiny_ring() -> FrameRing:
    ring = FrameRing(14, 2, history_length=2, frame_shape=(2, 2), seed=5)
    stream = CounterStream(ring, ReferenceReplay(7, 2, 2))
    for step in ([CONTINUE, TERMINATED], [TRUNCATED, CONTINUE]) * 5 + ([CONTINUE, CONTINUE],):
        stream.step(step)
    return ring


def _same(a: FrameRing, b: FrameRing) -> bool:
    if a.spec() != b.spec():
        return False
    sa, sb = a.state_dict(), b.state_dict()
    if sa["filled_slots"] != sb["filled_slots"]:
        return False
    if not all(np.array_equal(sa["arrays"][k], sb["arrays"][k]) for k in sa["arrays"]):
        return False
    valid = valid_transitions(a)
    return all(
        np.array_equal(x, y)
        for x, y in zip(
            (gather(a, *valid).frames, a.sample(8).frames),
            (gather(b, *valid_transitions(b)).frames, b.sample(8).frames),
            strict=True,
        )
    )


def test_every_byte_flip_and_truncation_of_a_ring_file_loads_the_same_ring_or_fails_clearly(
    tmp_path,
):
    path = tmp_path / "replay.ring"
    save_ring(_tiny_ring(), path)
    data = path.read_bytes()
    damaged = tmp_path / "damaged.ring"
    outcomes = {"refused": 0, "same": 0}
    for i in range(len(data)):
        for flipped in (data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :], data[:i]):
            damaged.write_bytes(flipped)
            try:
                ring = load_ring(damaged)
            except ReplayError as exc:
                assert "damaged.ring" in str(exc) and "\n" not in str(exc)
                outcomes["refused"] += 1
            else:
                assert _same(ring, _tiny_ring()), f"byte {i} loads a different ring"
                outcomes["same"] += 1
    assert outcomes["refused"] == 2 * len(data)  # every flip and cut is caught


def test_a_ring_file_whose_header_was_rewritten_consistently_is_still_checked(tmp_path):
    # A header edited with its checksum recomputed (capacity 14 -> 42): the arrays in the
    # file no longer match the ring it describes.
    import json
    import struct
    import zlib

    path = tmp_path / "replay.ring"
    save_ring(_tiny_ring(), path)
    data = path.read_bytes()
    trailer = struct.Struct("<QI16s")
    length, _, magic = trailer.unpack(data[-trailer.size :])
    header = json.loads(data[-trailer.size - length : -trailer.size])
    # (A consistent rewrite of history_length describes another valid ring: resume refuses
    # it against the run's config, below.)
    for key, value in (("capacity", 42), ("version", 1)):
        edited = json.dumps({**header, key: value}).encode()
        body = data[: -trailer.size - length]
        path.write_bytes(body + edited + trailer.pack(len(edited), zlib.crc32(edited), magic))
        with pytest.raises(ReplayError, match="replay.ring"):
            load_ring(path)


def test_resume_refuses_a_replay_that_does_not_fit_the_runs_config(tmp_path):
    run = tmp_path / "run"
    assert train(load_config(SMOKE, [*FAST, "loop.total_steps=600"]), run) == 0
    for change in ("replay.capacity=4000", "replay.history_length=2", "loop.num_envs=2"):
        with pytest.raises(ConfigError, match=f"change {change.split('=')[0]}"):
            resume(run, [change, "loop.total_steps=700"])
    # A replay file from another run, copied in: the ring itself is checked too.
    other = tmp_path / "other"
    train(load_config(SMOKE, [*FAST, "loop.total_steps=600", "replay.capacity=4000"]), other)
    ring = other / "checkpoint" / "replay.ring"
    ring.replace(run / "checkpoint" / "replay.ring")
    with pytest.raises(CheckpointError, match="replay.capacity"):
        resume(run, ["loop.total_steps=700"])


def test_a_resumed_run_logs_each_step_once_in_the_csv_files_and_in_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from atari_dqn.logs import CsvLog

    run = tmp_path / "run"
    args = [*FAST, "logging.interval_steps=100", "loop.total_steps=400"]
    assert train(load_config(SMOKE, args), run) == 0
    # What a run killed at step 600 leaves after its checkpoint at 400: two more rows and
    # their TensorBoard scalars.
    with (run / "metrics.csv").open(newline="") as f:
        last = list(csv.DictReader(f))[-1]
    writer = SummaryWriter(str(run / "tensorboard"))
    for step in (500, 600):
        CsvLog(run / "metrics.csv").write({**last, "agent_steps": step})
        writer.add_scalar("train/agent_steps", step, step)
    writer.close()
    assert resume(run, ["loop.total_steps=800"]) == 0
    steps = read_steps(run / "metrics.csv")
    assert steps == list(range(100, 801, 100))
    tb = EventAccumulator(str(run / "tensorboard"))
    tb.Reload()
    assert sorted(e.step for e in tb.Scalars("train/agent_steps")) == steps


def test_a_resume_after_sigkill_says_the_sitting_was_killed_and_which_steps_it_redoes(tmp_path):
    run = tmp_path / "run"
    every = ("checkpoint.interval_steps=1000", "logging.interval_steps=100")
    proc = start(run, *every, "loop.total_steps=100000")
    # Killed between two checkpoints, once it has logged steps past the first.
    wait_for(lambda: checkpoint_step(run) >= 1000 and read_steps(run / "metrics.csv")[-1] >= 1200)
    proc.kill()
    proc.wait(timeout=10)
    saved, logged = checkpoint_step(run), read_steps(run / "metrics.csv")[-1]
    assert logged > saved
    (pid,) = re.findall(
        r"started Breakout at 0 agent steps \(pid (\d+)\)", (run / "run.log").read_text()
    )
    RunDir(run).stop_request.touch()  # the resume stops at once, with a checkpoint
    out, _ = start(run, resume_run=True).communicate(timeout=300)
    said = [
        f"the last sitting (pid {pid}, from ",
        f"agent steps {saved:,} -> {logged:,} (logged after the checkpoint) are lost and "
        "trained again",
    ]
    log = (run / "run.log").read_text()
    for line in said:
        assert line in out and line in log, out
    assert "ended without a trace: it was killed (kill -9, out of memory, a power cut)" in log
