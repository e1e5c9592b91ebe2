"""The frame ring against a naive reference replay fed the same counter stream."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from replay_reference import (
    CONTINUE,
    TERMINATED,
    TRUNCATED,
    CounterStream,
    ReferenceReplay,
    decode,
    encode,
    transitions_of,
)

from atari_dqn.errors import ConfigError, ReplayError, UserError
from atari_dqn.replay.feed import Prefetcher, Sampler, as_tensors, deliver, tensor_batch
from atari_dqn.replay.inspection import gather, valid_transitions
from atari_dqn.replay.ring import FrameRing
from atari_dqn.replay.ringfile import RingSave, load_ring, save_ring

SMALL = (2, 2)  # frame shape of the counter tests: 4 pixels hold serial and env id


def make(slots: int, num_envs: int = 1, history: int = 4, extra: int = 0, seed: int = 0,
         frame_shape: tuple[int, int] = SMALL) -> tuple[FrameRing, CounterStream]:  # fmt: skip
    ring = FrameRing(slots * num_envs + extra, num_envs, history_length=history,
                     frame_shape=frame_shape, seed=seed)  # fmt: skip
    assert ring.slots == slots
    return ring, CounterStream(ring, ReferenceReplay(slots, num_envs, history))


def run_steps(stream: CounterStream, ends: list[list[int]]) -> None:
    for step in ends:
        stream.step(step)


def assert_matches_reference(ring: FrameRing, stream: CounterStream) -> None:
    """Same valid set and count as the reference, same acting stacks, samples inside it."""
    ref = stream.ref
    expected = ref.valid()
    got = transitions_of(gather(ring, *valid_transitions(ring)))
    assert len(got) == len(set(got)), "a transition is stored twice"
    assert set(got) == expected
    assert len(ring) == len(expected)
    acting, _ = decode(ring.stacks())
    for env in range(ring.num_envs):
        assert tuple(acting[env].tolist()) == ref.current_obs(env)
    if expected:
        assert set(transitions_of(ring.sample(min(len(expected), 16)))) <= expected


@st.composite
def streams(draw, max_envs: int = 8, max_steps: int = 60):
    """(num_envs, history, slots, extra capacity, per-step end codes)."""
    num_envs = draw(st.integers(1, max_envs))
    history = draw(st.integers(1, 4))
    slots = draw(st.integers(history + 1, history + 10))
    extra = draw(st.integers(0, num_envs - 1))  # capacity not a multiple of num_envs
    p_end = draw(st.sampled_from([0.0, 0.1, 0.4, 0.9]))  # 0.9: mostly 1-step episodes
    n_steps = draw(st.integers(0, max_steps))
    codes = st.sampled_from([TERMINATED, TRUNCATED])
    ends = [
        [draw(codes) if draw(st.floats(0, 1)) < p_end else CONTINUE for _ in range(num_envs)]
        for _ in range(n_steps)
    ]
    return num_envs, history, slots, extra, ends


def check_stream(spec) -> None:
    num_envs, history, slots, extra, ends = spec
    ring, stream = make(slots, num_envs, history, extra)
    assert_matches_reference(ring, stream)
    for step in ends:
        stream.step(step)
        assert_matches_reference(ring, stream)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_ring_holds_exactly_the_reference_transitions(spec):
    check_stream(spec)


@pytest.mark.slow
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(max_steps=150))
def test_ring_holds_exactly_the_reference_transitions_thorough(spec):
    check_stream(spec)


def test_stack_pads_episode_start_with_first_frame():
    ring, stream = make(slots=10)
    stream.step([CONTINUE])  # frames 1 (first), 2
    assert decode(ring.stacks())[0].tolist() == [[1, 1, 1, 2]]
    (t,) = transitions_of(ring.sample(1))
    assert t[1] == (1, 1, 1, 1) and t[4] == (1, 1, 1, 2)


def test_sample_never_crosses_episode_start():
    ring, stream = make(slots=20)
    run_steps(stream, [[CONTINUE], [CONTINUE], [TERMINATED], [CONTINUE]])  # 1..4 | 5, 6
    got = transitions_of(gather(ring, *valid_transitions(ring)))
    assert [(t[1], t[4]) for t in got if t[1][-1] == 5] == [((5, 5, 5, 5), (5, 5, 5, 6))]
    for t in got:
        episode = {1, 2, 3, 4} if t[1][-1] <= 4 else {5, 6}
        assert set(t[1]) | set(t[4]) <= episode


def test_truncated_episode_bootstraps_from_its_true_last_frame():
    ring, stream = make(slots=20)
    run_steps(stream, [[CONTINUE], [TRUNCATED], [CONTINUE], [TERMINATED]])  # 1,2,3 | 4,5,6
    got = {t[1][-1]: t for t in transitions_of(gather(ring, *valid_transitions(ring)))}
    assert got[2][4] == (1, 1, 2, 3) and got[2][5] == 1.0  # time limit: bootstrap from 3
    assert got[5][4] == (4, 4, 5, 6) and got[5][5] == 0.0  # terminal: no bootstrap
    assert 3 not in got and 6 not in got  # no action was taken from a last frame


def test_sample_never_returns_an_unfilled_slot():
    """SB3 #1503: a nearly empty ring must not sample slots it never wrote."""
    ring, stream = make(slots=1000, num_envs=3)
    run_steps(stream, [[CONTINUE, CONTINUE, TERMINATED]] * 3)
    written = set(range(1, stream.serial + 1))
    for _ in range(50):
        serials, _ = decode(ring.sample(8).frames)
        assert set(serials.ravel().tolist()) <= written


@pytest.mark.parametrize("slots", [40, 200])  # wrapped many times / still filling
def test_sample_is_uniform_over_valid_transitions(slots):
    """Chi-square over all valid transitions; envs hold different counts (weights matter)."""
    ring, stream = make(slots=slots, num_envs=3, history=4, seed=7)
    rng = np.random.default_rng(1)
    for _ in range(60):
        stream.step([CONTINUE, int(rng.random() < 0.3), TRUNCATED if rng.random() < 0.1 else 0])
    expected = sorted(stream.ref.valid())
    index = {t: i for i, t in enumerate(expected)}
    counts = np.zeros(len(expected))
    for _ in range(500):
        for t in transitions_of(ring.sample(64)):
            counts[index[t]] += 1
    mean = counts.sum() / len(expected)
    chi2 = ((counts - mean) ** 2 / mean).sum()
    df = len(expected) - 1
    assert chi2 < df + 5 * np.sqrt(2 * df), (chi2, df)


def test_full_size_frames_round_trip_through_stacks_and_sample():
    ring, stream = make(slots=50, num_envs=2, frame_shape=(84, 84))
    run_steps(stream, [[CONTINUE, TERMINATED], [CONTINUE, CONTINUE]] * 40)
    batch = ring.sample(32)
    assert batch.frames.shape == (32, 5, 84, 84) and batch.frames.dtype == np.uint8
    assert batch.action.dtype == np.int64 and batch.reward.dtype == np.float32
    obs, next_obs = batch.stacks(4)
    assert np.shares_memory(obs, batch.frames) and np.shares_memory(next_obs, batch.frames)
    np.testing.assert_array_equal(obs, batch.frames[:, :4])
    np.testing.assert_array_equal(next_obs, batch.frames[:, 1:])
    serials, envs = decode(batch.frames)
    expect = encode(serials.ravel(), envs.ravel(), (84, 84)).reshape(batch.frames.shape)
    np.testing.assert_array_equal(batch.frames, expect)  # every pixel, not just the code
    assert set(transitions_of(batch)) <= stream.ref.valid()
    assert ring.stacks().shape == (2, 4, 84, 84)


def test_capacity_of_a_million_is_allocated_lazily():
    rss = lambda: int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    before = rss()
    ring = FrameRing(1_000_000, 1)
    assert ring.state_views(ring.slots)["frames"].nbytes == 1_000_000 * 84 * 84
    assert rss() - before < 200 << 20  # metadata only: 7.06 GB of frames are not touched
    assert len(ring) == 0


def test_save_then_load_gives_identical_next_batches(tmp_path):
    ring, stream = make(slots=30, num_envs=3, seed=3)
    run_steps(stream, [[CONTINUE, TERMINATED, CONTINUE], [TRUNCATED, CONTINUE, CONTINUE]] * 20)
    ring.sample(8)  # advance the sampler's RNG so its state, not the seed, is what is restored
    save_ring(ring, tmp_path / "replay.ring")
    loaded = load_ring(tmp_path / "replay.ring")
    for _ in range(5):
        np.testing.assert_array_equal(ring.sample(16).frames, loaded.sample(16).frames)
    # The restored ring also continues the stream exactly: swap it in and keep going.
    original, stream.ring = ring, loaded
    run_steps(stream, [[CONTINUE, CONTINUE, TERMINATED]] * 25)
    assert_matches_reference(loaded, stream)
    twin = FrameRing(ring.capacity, 3, frame_shape=SMALL)
    twin.load_state_dict(loaded.state_dict())
    np.testing.assert_array_equal(twin.sample(16).frames, loaded.sample(16).frames)
    assert original is not loaded


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage_header"])
def test_damaged_file_raises_replay_error_naming_it(tmp_path, damage):
    ring, stream = make(slots=30)
    run_steps(stream, [[CONTINUE]] * 25)
    path = tmp_path / "replay.ring"
    save_ring(ring, path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 4] ^= 0xFF  # inside the frames
    elif damage == "empty":
        data = bytearray()
    else:
        data[-30] ^= 0xFF  # inside the JSON header
    path.write_bytes(bytes(data))
    with pytest.raises(ReplayError, match="replay.ring"):
        load_ring(path)


def test_missing_file_raises_replay_error(tmp_path):
    with pytest.raises(ReplayError, match="nope.ring"):
        load_ring(tmp_path / "nope.ring")


def test_load_state_dict_rejects_another_configuration():
    ring, _ = make(slots=10)
    other = FrameRing(20, 2, frame_shape=SMALL)
    with pytest.raises(ReplayError, match="num_envs"):
        other.load_state_dict(ring.state_dict())


def test_misuse_raises_replay_errors_that_name_the_problem():
    assert issubclass(ReplayError, UserError) and not issubclass(ReplayError, ConfigError)
    with pytest.raises(ReplayError, match="too small"):
        FrameRing(9, 2)  # 2 envs x (4 + 1) slots needed
    ring = FrameRing(100, 2, frame_shape=SMALL)
    zero = np.zeros(2)
    with pytest.raises(ReplayError, match="before start_episodes"):
        ring.add(zero.astype(int), zero, zero, zero, np.zeros((2, *SMALL), np.uint8))
    with pytest.raises(ReplayError, match="uint8"):
        ring.start_episodes(np.array([0, 1]), np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ReplayError, match="uint8"):
        ring.start_episodes(np.array([0, 1]), np.zeros((2, *SMALL), np.float32))
    with pytest.raises(ReplayError, match="out of range"):
        ring.start_episodes(np.array([2]), np.zeros((1, *SMALL), np.uint8))
    with pytest.raises(ReplayError, match="no frame yet"):
        ring.stacks()
    ring.start_episodes(np.array([0, 1]), np.zeros((2, *SMALL), np.uint8))
    with pytest.raises(ReplayError, match="actions"):
        ring.add(np.zeros(3, int), zero, zero, zero, np.zeros((2, *SMALL), np.uint8))
    with pytest.raises(ReplayError, match="integer"):
        ring.add(zero, zero, zero, zero, np.zeros((2, *SMALL), np.uint8))
    with pytest.raises(ReplayError, match="next_frames"):
        ring.add(zero.astype(int), zero, zero, zero, np.zeros((1, *SMALL), np.uint8))
    ring.add(zero.astype(int), zero, zero, zero, np.zeros((2, *SMALL), np.uint8))
    with pytest.raises(ReplayError, match="only 2 are stored"):
        ring.sample(3)
    for bad in (0, -1):
        with pytest.raises(ReplayError, match="batch_size"):
            ring.sample(bad)


def test_tensors_of_a_batch_share_its_five_frame_window():
    ring, stream = make(slots=30)
    run_steps(stream, [[CONTINUE]] * 20)
    batch = ring.sample(4)
    tb = as_tensors(batch)
    obs, next_obs = tb.stacks(4)
    assert obs.shape == (4, 4, 2, 2) and next_obs.shape == (4, 4, 2, 2)
    assert tb.action.dtype == torch.int64 and tb.discount.dtype == torch.float32
    assert torch.equal(obs[:, 1:], next_obs[:, :-1])
    np.testing.assert_array_equal(next_obs.numpy(), batch.frames[:, 1:])
    assert tb.weight.tolist() == [1.0] * 4  # uniform sampling
    env, slot = np.divmod(tb.index.numpy(), ring.slots)
    np.testing.assert_array_equal(
        decode(batch.frames)[0][:, -1], decode(gather(ring, env, slot).frames)[0][:, -1]
    )


def test_prefetcher_yields_the_batches_sample_would():
    rings = []
    for _ in range(2):
        ring, stream = make(slots=40, num_envs=2, seed=11)
        run_steps(stream, [[CONTINUE, TERMINATED], [TRUNCATED, CONTINUE]] * 15)
        rings.append(ring)
    with Prefetcher(rings[0], 8, "cpu") as prefetcher:
        for _ in range(10):
            tb = prefetcher.next()
            expected = rings[1].sample(8)
            np.testing.assert_array_equal(tb.frames.numpy(), expected.frames)
            np.testing.assert_array_equal(tb.action.numpy(), expected.action)
            np.testing.assert_array_equal(tb.discount.numpy(), expected.discount)


def test_prefetcher_batches_stay_valid_while_the_loop_adds():
    ring, stream = make(slots=25, num_envs=2, seed=5)
    run_steps(stream, [[CONTINUE, CONTINUE]] * 10)
    rng = np.random.default_rng(0)
    windows = []
    with Prefetcher(ring, 8, "cpu") as prefetcher:
        adder = threading.Thread(
            target=run_steps,
            args=(stream, [[int(rng.random() < 0.2), CONTINUE] for _ in range(300)]),
        )
        adder.start()
        for _ in range(100):
            tb = prefetcher.next()
            windows.append(tb.frames.numpy().copy())
        adder.join()
    produced = {(t[0], t[1], t[4]) for t, _ in stream.ref.transitions}
    for frames in windows:  # each gathered window is one the stream really produced
        serials, envs = decode(frames)
        for b in range(len(frames)):
            assert (int(envs[b, 0]), tuple(serials[b, :4]), tuple(serials[b, 1:])) in produced


def test_prefetcher_reports_sampling_errors_to_the_learner():
    ring, _ = make(slots=10)
    prefetcher = Prefetcher(ring, 4, "cpu")
    with pytest.raises(ReplayError, match="cannot sample"):
        prefetcher.next()
    prefetcher.close()


def _stepped_rings(n: int = 2) -> list[tuple[FrameRing, CounterStream]]:
    """`n` identical rings fed identical streams."""
    out = []
    for _ in range(n):
        ring, stream = make(slots=40, num_envs=2, seed=3)
        run_steps(stream, [[CONTINUE, TERMINATED], [TRUNCATED, CONTINUE]] * 8)
        out.append((ring, stream))
    return out


def _more_steps(stream: CounterStream, k: int) -> None:
    run_steps(stream, [[CONTINUE, CONTINUE], [TERMINATED, CONTINUE]] * k)


def test_prefetched_batch_is_drawn_when_the_previous_one_is_handed_out():
    (ring, stream), (ref_ring, ref_stream) = _stepped_rings()
    with Prefetcher(ring, 8, "cpu") as prefetcher:
        expected = ref_ring.sample(8).frames.copy()  # the first batch: drawn on demand
        for _ in range(6):
            got = prefetcher.next().stacks(4)[0].numpy()
            np.testing.assert_array_equal(got, expected[:, :4])
            # the following batch sees the ring exactly as it is now, before the adds below
            expected = ref_ring.sample(8).frames.copy()
            _more_steps(stream, 2)
            _more_steps(ref_stream, 2)


def test_pending_batch_carries_the_prefetch_stream_through_a_checkpoint():
    (ring, stream), (twin, twin_stream) = _stepped_rings()
    with Prefetcher(ring, 8, "cpu") as prefetcher:
        for _ in range(3):
            prefetcher.next()
            _more_steps(stream, 1)
        pending = prefetcher.pending()
        state = {
            k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in ring.state_dict().items()
        }
        state["arrays"] = {k: v.copy() for k, v in state["arrays"].items()}
        uninterrupted = [prefetcher.next().frames.numpy().copy() for _ in range(3)]
    restored = FrameRing(ring.capacity, 2, frame_shape=SMALL, seed=99)
    restored.load_state_dict(state)
    with Prefetcher(restored, 8, "cpu", pending=pending) as resumed:
        for expected in uninterrupted:
            np.testing.assert_array_equal(resumed.next().frames.numpy(), expected)


def test_batches_for_an_accelerator_copy_the_five_frame_window_once():
    # The non-CPU path of the feeds, run on torch's "meta" device (no GPU here): one copy of
    # the (B, 5, H, W) window, with obs and next_obs as views of it.
    (ring, _), _ = _stepped_rings()
    with Prefetcher(ring, 8, "meta") as prefetcher:
        prefetched = prefetcher.next()
    sampled = Sampler(ring, 8, "meta").next()
    delivered = deliver(as_tensors(ring.sample(8)), torch.device("meta"))
    for tensors in (delivered, prefetched, sampled):
        obs, next_obs = tensors.stacks(4)
        assert obs.device.type == "meta" and tensors.action.device.type == "meta"
        assert obs.shape == next_obs.shape == (8, 4, *SMALL)
        assert obs.untyped_storage().nbytes() == 8 * 5 * SMALL[0] * SMALL[1]
        assert next_obs.storage_offset() == SMALL[0] * SMALL[1]


def test_prefetcher_copies_each_batch_into_the_destination_buffers_it_is_given():
    # What the learner's static CUDA buffers receive; shown here with CPU buffers.
    (ring, _), (twin, _) = _stepped_rings()
    destination = tensor_batch(8, (5, *SMALL))
    with Prefetcher(ring, 8, "cpu", destination=destination) as prefetcher:
        for _ in range(4):
            got = prefetcher.next()
            assert got is destination
            expected = twin.sample(8)
            np.testing.assert_array_equal(got.frames.numpy(), expected.frames)
            np.testing.assert_array_equal(got.action.numpy(), expected.action)
            np.testing.assert_array_equal(got.discount.numpy(), expected.discount)


def test_the_sampler_hands_out_a_checkpointed_pending_batch_first_then_samples():
    (ring, _), (twin, _) = _stepped_rings()
    (prefetched_ring, _), _ = _stepped_rings()
    with Prefetcher(prefetched_ring, 8, "cpu") as prefetcher:
        prefetcher.next()
        pending = prefetcher.pending()
    sampler = Sampler(ring, 8, "cpu", pending=pending)
    assert sampler.pending() is not None
    np.testing.assert_array_equal(sampler.next().frames.numpy(), pending[0].numpy())
    assert sampler.pending() is None
    np.testing.assert_array_equal(sampler.next().frames.numpy(), twin.sample(8).frames)


@pytest.mark.parametrize("wrapped", [True, False])
def test_a_save_written_while_the_ring_goes_on_holds_the_ring_as_it_was_when_begun(
    tmp_path, wrapped
):
    # The background checkpoint's replay: begun at one moment, written by another thread
    # while the trainer overwrites every slot it holds; the file must be that moment's ring.
    slots, n = 3000, 2
    ring = FrameRing(slots * n, n, seed=5)
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (64, n, 84, 84), dtype=np.uint8)
    ring.start_episodes(np.arange(n), pool[0])

    def steps(count: int) -> None:
        for i in range(count):
            ended = rng.random(n) < 0.01
            ring.add(rng.integers(0, 4, n), rng.random(n), ended, np.zeros(n, bool), pool[i % 64])
            if ended.any():
                ring.start_episodes(np.flatnonzero(ended), pool[(i + 1) % 64][ended])

    steps(slots + slots // 2 if wrapped else slots // 2)  # a full ring's cursor mid-way
    ring.sample(8)
    state = ring.state_dict()
    expected = {k: v.copy() for k, v in state["arrays"].items()}
    save = RingSave(ring)
    writer = threading.Thread(target=save.write, args=(tmp_path / "replay.ring",))
    writer.start()
    steps(slots + 100)  # overwrites every slot the save holds
    writer.join()
    loaded = load_ring(tmp_path / "replay.ring")
    assert loaded.spec() == ring.spec()
    got = loaded.state_dict()
    assert got["filled_slots"] == state["filled_slots"]
    for name, array in expected.items():
        np.testing.assert_array_equal(got["arrays"][name], array, err_msg=name)
    assert not np.array_equal(ring.state_dict()["arrays"]["frames"], expected["frames"])
