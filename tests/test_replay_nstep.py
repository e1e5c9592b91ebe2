"""n-step transitions (Rainbow, Hessel et al. 2018) assembled from the frame ring on sample,
against hand-computed returns and the reference replay fed the same counter stream."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from replay_reference import (
    CONTINUE,
    RESTART,
    TERMINATED,
    TRUNCATED,
    CounterStream,
    FamilySpec,
    ReferenceReplay,
    decode,
    encode,
    family_streams,
    transitions_of,
)

from atari_dqn.errors import ReplayError
from atari_dqn.replay.inspection import gather, valid_transitions
from atari_dqn.replay.ring import FrameRing

SMALL = (2, 2)


def by_first_frame(ring: FrameRing) -> dict[int, tuple]:
    """Every valid transition of a one-env ring, keyed by the serial of its obs's last frame."""
    return {
        t[1][-1]: t for t in transitions_of(gather(ring, *valid_transitions(ring)), ring.n_step)
    }


def written_by_hand(history: int, n_step: int, gamma: float, steps: list[tuple[float, int]]):
    """A one-env ring fed frames 1, 2, ... and the (reward, end code) of each step; an ended
    episode restarts with the next serial."""
    ring = FrameRing(
        40, 1, history_length=history, frame_shape=SMALL, n_step=n_step, discount=gamma
    )
    serial = 1
    ring.start_episodes(np.array([0]), encode([serial], [0], SMALL))
    for reward, end in steps:
        serial += 1
        frame = encode([serial], [0], SMALL)
        ring.add([0], [reward], [end == TERMINATED], [end == TRUNCATED], frame)
        if end != CONTINUE:
            serial += 1
            ring.start_episodes(np.array([0]), encode([serial], [0], SMALL))
    return ring


def check_family_stream(spec: FamilySpec) -> None:
    ring, stream = spec.make()
    for ends in [[], *spec.ends]:
        if ends:
            stream.step(ends)
        expected = stream.ref.valid()
        got = transitions_of(gather(ring, *valid_transitions(ring)), spec.n_step)
        assert len(got) == len(set(got)), "a transition is stored twice"
        assert set(got) == expected
        assert len(ring) == len(expected)
        acting, _ = decode(ring.stacks())
        assert [tuple(a) for a in acting.tolist()] == [
            stream.ref.current_obs(e) for e in range(spec.num_envs)
        ]
        if expected:
            drawn = ring.sample(min(len(expected), 8))
            assert set(transitions_of(drawn, spec.n_step)) <= expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family_streams())
def test_n_step_ring_holds_exactly_the_reference_transitions(spec):
    check_family_stream(spec)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family_streams(max_envs=6, max_steps=120))
def test_n_step_ring_holds_exactly_the_reference_transitions_thorough(spec):
    check_family_stream(spec)


def test_n_step_return_sums_the_discounted_rewards_and_bootstraps_after_n_steps():
    ring = written_by_hand(2, 3, 0.5, [(1.0, CONTINUE), (2.0, CONTINUE), (4.0, CONTINUE)] * 2)
    got = by_first_frame(ring)
    # from frame 1: r = 1 + 0.5 * 2 + 0.25 * 4 = 3, discount 0.5 ** 3, next stack ends at 4
    assert got[1][1:] == ((1, 1), 0, 3.0, (3, 4), 0.125)
    assert got[2][3:] == (2 + 0.5 * 4 + 0.25 * 1, (4, 5), 0.125)
    assert got[4][3:] == (1 + 0.5 * 2 + 0.25 * 4, (6, 7), 0.125)
    assert set(got) == {1, 2, 3, 4}  # frames 5, 6 have fewer than 3 steps after them yet


def test_a_termination_inside_the_n_steps_ends_the_return_without_bootstrapping():
    ring = written_by_hand(2, 3, 0.5, [(1.0, CONTINUE), (2.0, TERMINATED), (8.0, CONTINUE)])
    got = by_first_frame(ring)
    assert got[1][3:] == (1 + 0.5 * 2, (2, 3), 0.0)  # 2 steps, the second terminal
    assert got[2][3:] == (2.0, (2, 3), 0.0)
    assert 3 not in got  # the terminal frame acts no more
    assert 4 not in got  # the next episode's first frame: 1 step of 3, still running


def test_a_truncation_inside_the_n_steps_bootstraps_from_its_true_last_frame():
    ring = written_by_hand(2, 3, 0.5, [(1.0, CONTINUE), (2.0, TRUNCATED), (8.0, CONTINUE)])
    got = by_first_frame(ring)
    assert got[1][3:] == (1 + 0.5 * 2, (2, 3), 0.25)  # discount gamma ** 2: the time limit
    assert got[2][3:] == (2.0, (2, 3), 0.5)


def test_a_transition_is_not_sampleable_until_its_n_steps_are_recorded():
    steps = [(1.0, CONTINUE), (1.0, CONTINUE), (1.0, CONTINUE), (1.0, TERMINATED)]
    counts = [len(written_by_hand(4, 3, 0.9, steps[:k])) for k in range(len(steps) + 1)]
    assert counts == [0, 0, 0, 1, 4]  # the third step completes frame 1's; the end, all
    with pytest.raises(ReplayError, match="only 0 are stored"):
        written_by_hand(4, 3, 0.9, steps[:2]).sample(1)


def test_n_step_windows_hold_both_stacks_one_after_the_other():
    ring = written_by_hand(4, 3, 1.0, [(0.0, CONTINUE)] * 12)
    assert ring.window == (8, *SMALL)
    batch = ring.sample(10)  # frames 1-10 have 3 steps after them
    obs, next_obs = batch.stacks(4)
    np.testing.assert_array_equal(obs, batch.frames[:, :4])
    np.testing.assert_array_equal(next_obs, batch.frames[:, 4:])
    serials, _ = decode(batch.frames)
    for row in serials.tolist():  # the stacks end at p and p + 3 (no episode ends here)
        assert row[7] == row[3] + 3
        for stack in (row[:4], row[4:]):  # the episode's first frame, 1, pads the start
            assert stack == [max(stack[3] - 3 + k, 1) for k in range(4)]


def test_one_step_transitions_keep_the_five_frame_window_and_discount_by_gamma():
    ring = written_by_hand(4, 1, 0.99, [(1.0, CONTINUE), (1.0, TERMINATED), (1.0, CONTINUE)])
    assert ring.window == (5, *SMALL)
    got = by_first_frame(ring)
    assert got[1][4:] == ((1, 1, 1, 2), float(np.float32(0.99)))
    assert got[2][4:] == ((1, 1, 2, 3), 0.0)


def test_an_episode_cut_by_a_restart_never_offers_its_last_n_minus_1_steps():
    ring = FrameRing(60, 2, history_length=2, frame_shape=SMALL, n_step=3, discount=0.5)
    stream = CounterStream(ring, ReferenceReplay(30, 2, 2, 3, 0.5))
    for ends in [[CONTINUE, CONTINUE]] * 3 + [[RESTART, CONTINUE]] + [[CONTINUE, CONTINUE]] * 4:
        stream.step(ends)
    got = set(transitions_of(gather(ring, *valid_transitions(ring)), 3))
    assert got == stream.ref.valid()
    env0 = sorted(t[1][-1] for t in got if t[0] == 0)
    assert env0 == [1, 3, 11, 12]  # frames 5 and 7, 2 and 1 steps before the cut, never


def test_several_envs_each_assemble_their_own_returns():
    spec = FamilySpec(3, 2, 3, 14, 0.5, False, [])
    ring, stream = spec.make()
    rng = np.random.default_rng(4)
    for _ in range(40):
        stream.step([CONTINUE, int(rng.random() < 0.3), TRUNCATED if rng.random() < 0.2 else 0])
    got = [t for _ in range(16) for t in transitions_of(ring.sample(16), 3)]
    assert {t[0] for t in got} == {0, 1, 2}  # every env drawn; transitions_of: no window mixes
    assert set(got) <= stream.ref.valid()
    assert {t[5] for t in got} == {0.0, 0.125, 0.25, 0.5}  # the ends fell inside the 3 steps


def test_n_step_sampling_is_uniform_over_valid_transitions():
    """Chi-square over all valid transitions of two envs holding different counts; the
    statistic of K - 1 degrees of freedom is held under df + 5 * sqrt(2 df), as the
    one-step test holds it (fixed seeds: the same on every run)."""
    spec = FamilySpec(2, 4, 3, 60, 0.99, False, [])
    ring, stream = spec.make(seed=7)
    rng = np.random.default_rng(1)
    for _ in range(80):
        stream.step([CONTINUE if rng.random() < 0.7 else TERMINATED, CONTINUE])
    expected = sorted(stream.ref.valid())
    index = {t: i for i, t in enumerate(expected)}
    counts = np.zeros(len(expected))
    for _ in range(400):
        for t in transitions_of(ring.sample(64), 3):
            counts[index[t]] += 1
    mean = counts.sum() / len(expected)
    chi2 = ((counts - mean) ** 2 / mean).sum()
    df = len(expected) - 1
    assert chi2 < df + 5 * np.sqrt(2 * df), (chi2, df)


def test_a_ring_too_small_for_its_n_steps_or_with_a_bad_setting_is_refused():
    with pytest.raises(ReplayError, match="history_length \\+ n_step = 7"):
        FrameRing(12, 2, history_length=4, n_step=3)  # 6 slots per env, 7 needed
    for bad, match in (({"n_step": 0}, "n_step"), ({"discount": 1.5}, "discount")):
        with pytest.raises(ReplayError, match=match):
            FrameRing(100, 1, **bad)
