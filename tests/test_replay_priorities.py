"""Proportional prioritized replay (Schaul et al. 2016) on the frame ring: priorities kept
0 exactly at the invalid slots, draws against a naive proportional sampler, importance
weights against the paper's formula, updates, and the tree through saves and loads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from replay_reference import (
    CONTINUE,
    FamilySpec,
    family_streams,
    scripted_step,
)

from atari_dqn.errors import ReplayError
from atari_dqn.replay import sumtree
from atari_dqn.replay.inspection import valid_transitions
from atari_dqn.replay.ring import FrameRing
from atari_dqn.replay.ringfile import RingSave, load_ring, save_ring

ALPHA, EPS = 0.6, 1e-6


def brute_force_validity(ring: FrameRing) -> np.ndarray:
    """bool[N, S]: each slot's validity, recomputed from the metadata alone."""
    flags = np.zeros((ring.num_envs, ring.slots), bool)
    flags[valid_transitions(ring)] = True
    return flags


def check_priorities_follow_validity(spec: FamilySpec) -> None:
    ring, stream = spec.make()
    rng = np.random.default_rng(len(spec.ends))
    running_max = sumtree.FIRST_MAX_PRIORITY  # Algorithm 1's max_i p_i, over leaf values
    before = np.zeros((ring.num_envs, ring.slots), bool)
    drawn = []  # earlier draws, some of them invalid by now: updates must not revive them
    for ends in [[], *spec.ends]:
        if ends:
            stream.step(ends)
        valid = brute_force_validity(ring)
        priorities = ring.priorities()
        np.testing.assert_array_equal(priorities > 0, valid)
        np.testing.assert_array_equal(ring.valid_flags().astype(bool), valid)
        assert len(ring) == valid.sum()
        entered = valid & ~before
        assert np.all(priorities[entered] == running_max), "a new transition below the maximum"
        before = valid
        if valid.sum() >= 4:
            batch = ring.sample(4, beta=0.5)
            assert valid.reshape(-1)[batch.index].all()
            drawn.append(batch.index.copy())
            index = drawn[rng.integers(len(drawn))]  # this draw's or an older one's
            td = rng.exponential(2.0, index.size)
            ring.update_priorities(index, td)
            applied = sumtree.priorities(td, ALPHA, EPS)[valid.reshape(-1)[index]]
            running_max = float(np.max(applied, initial=running_max))
            np.testing.assert_array_equal(ring.priorities() > 0, valid)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family_streams(prioritized=True))
def test_priority_is_zero_exactly_at_the_invalid_slots_after_every_write(spec):
    check_priorities_follow_validity(spec)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family_streams(max_envs=6, max_steps=120, prioritized=True))
def test_priority_is_zero_exactly_at_the_invalid_slots_after_every_write_thorough(spec):
    check_priorities_follow_validity(spec)


def test_draws_follow_the_priorities_over_the_valid_set_chi_square():
    """200,000 draws (stratified batches of 32) against a naive proportional sampler over
    the brute-force valid set: P(i) = p_i / sum of the valid p_j.

    The ring (2 envs, history 4, 3-step returns, episode ends, wrapped) holds 42 valid
    transitions beside 18 invalid slots; Pearson's statistic has 41 degrees of freedom, its
    critical value at significance 0.001 is 74.745 (scipy.stats.chi2.ppf(0.999, 41)).
    Stratified batches vary less than multinomial draws, so the bound is conservative.
    Fixed seeds: the outcome is the same on every run."""
    ring, _ = FamilySpec(2, 4, 3, 30, 0.99, True, []).filled(70, seed=3)
    env_ids, slots = valid_transitions(ring)
    index = env_ids * ring.slots + slots
    assert index.size == 42 and ring.priorities().size - index.size == 18
    td = np.random.default_rng(5).uniform(0.0, 4.0, index.size)
    ring.update_priorities(index, td)
    naive = sumtree.priorities(td, ALPHA, EPS)  # the valid set's weights, by hand
    counts = np.zeros(ring.num_envs * ring.slots)
    for _ in range(200_000 // 32):
        counts += np.bincount(ring.sample(32, beta=0.4).index, minlength=counts.size)
    assert counts.sum() == counts[index].sum(), "an invalid slot was drawn"
    expected = counts.sum() * naive / naive.sum()
    statistic = float(((counts[index] - expected) ** 2 / expected).sum())
    assert statistic < 74.745, f"chi-square {statistic:.1f} over 41 degrees of freedom"


def test_invalid_slots_are_never_drawn():
    ring, _ = FamilySpec(3, 4, 5, 12, 1.0, True, []).filled(50, seed=1, p_end=0.3)
    valid = brute_force_validity(ring).reshape(-1)
    assert 0 < valid.sum() < valid.size / 2  # most slots are invalid here
    for _ in range(1000):
        assert valid[ring.sample(4).index].all()


def test_importance_weights_are_the_papers_formula_over_the_batch_maximum():
    ring, _ = FamilySpec(2, 4, 3, 40, 0.99, True, []).filled(60, seed=2)
    env_ids, slots = valid_transitions(ring)
    index = env_ids * ring.slots + slots
    ring.update_priorities(index, np.random.default_rng(0).uniform(0, 5, index.size))
    for beta in (0.4, 0.7, 1.0):
        batch = ring.sample(32, beta=beta)
        p = ring.priorities().reshape(-1)
        probability = p[batch.index] / p.sum()
        w = (len(ring) * probability) ** -beta  # Algorithm 1, line 10
        np.testing.assert_allclose(batch.weight, w / w.max(), rtol=1e-6)
        assert batch.weight.dtype == np.float32 and batch.weight.max() == 1.0
    uniform, _ = FamilySpec(2, 4, 3, 40, 0.99, False, []).filled(60, seed=2)
    assert uniform.sample(32, beta=0.4).weight.tolist() == [1.0] * 32


def test_a_priority_update_is_seen_by_the_next_draw():
    ring, _ = FamilySpec(2, 4, 1, 40, 1.0, True, []).filled(60)
    batch = ring.sample(32)
    chosen = int(batch.index[5])
    ring.update_priorities(batch.index, np.full(32, 1e-3))
    ring.update_priorities([chosen], [1e9])
    assert ring.sample(32).index.tolist() == [chosen] * 32


def test_an_update_for_a_slot_invalid_or_rewritten_since_its_draw_changes_nothing():
    ring, stream = FamilySpec(1, 2, 1, 12, 1.0, True, []).filled(30, p_end=0.0)
    batch = ring.sample(8)
    drawn = ring.sample_into(batch)
    rewritten = np.unique(batch.index)
    for _ in range(12):  # a whole lap: every drawn slot is overwritten
        stream.step([CONTINUE])
    before = ring.priorities()
    assert (before.reshape(-1)[rewritten] == 1.0).sum() > 0  # some valid again, at the max
    ring.update_priorities(batch.index, np.full(8, 5.0), drawn)
    np.testing.assert_array_equal(ring.priorities(), before)
    ring.update_priorities(batch.index, np.full(8, 5.0))  # without `drawn` they take it
    assert ring.priorities().max() == sumtree.priorities(np.array([5.0]), ALPHA, EPS)[0]
    newest = ring.priorities()
    band = ~brute_force_validity(ring)  # the invalid ones stay 0 either way
    ring.update_priorities(np.flatnonzero(band.reshape(-1)), np.ones(band.sum()))
    np.testing.assert_array_equal(ring.priorities(), newest)


def test_save_and_load_give_the_same_next_draws_and_the_same_ring_after(tmp_path):
    def go_on(ring: FrameRing, steps: range) -> list:
        out = []
        for k in steps:
            batch = ring.sample(16, beta=0.5)
            out.append((batch.frames.copy(), batch.index.copy(), batch.weight.copy()))
            ring.update_priorities(batch.index, (batch.index % 7) * 0.5 + k)
            scripted_step(ring, k)
        return out

    ring, _ = FamilySpec(2, 4, 3, 40, 0.99, True, []).filled(60, seed=4)
    go_on(ring, range(5))  # priorities and the sampler's state moved on from their start
    save_ring(ring, tmp_path / "replay.ring")
    twin = FrameRing(ring.capacity, 2, frame_shape=(2, 2), n_step=3, prioritized=True)
    twin.load_state_dict(ring.state_dict())
    loaded = load_ring(tmp_path / "replay.ring")
    assert loaded.spec() == ring.spec() and loaded.settings() == ring.settings()
    expected = go_on(ring, range(5, 15))
    for other in (loaded, twin):
        for got, want in zip(go_on(other, range(5, 15)), expected, strict=True):
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(other.priorities(), ring.priorities())


def test_a_background_save_holds_the_priorities_of_the_moment_it_began(tmp_path):
    ring, stream = FamilySpec(2, 4, 3, 40, 0.99, True, []).filled(60, seed=6)
    at_begin = ring.priorities()
    save = RingSave(ring)
    writer = threading.Thread(target=save.write, args=(tmp_path / "replay.ring",))
    writer.start()
    for k in range(30):  # while it writes: new priorities, and overwritten slots
        batch = ring.sample(8)
        ring.update_priorities(batch.index, np.full(8, 10.0 + k))
        stream.step([CONTINUE, CONTINUE])
    writer.join()
    assert not np.array_equal(ring.priorities(), at_begin)
    np.testing.assert_array_equal(load_ring(tmp_path / "replay.ring").priorities(), at_begin)


def test_a_state_whose_priorities_disagree_with_its_validity_is_refused(tmp_path):
    ring, _ = FamilySpec(2, 4, 3, 40, 0.99, True, []).filled(60, seed=2)
    invalid = np.flatnonzero(~brute_force_validity(ring).reshape(-1))[0]
    state = ring.state_dict()
    state["arrays"] = {k: v.copy() for k, v in state["arrays"].items()}
    sumtree.set_kernel(state["arrays"]["priority_tree"], np.array([invalid]), np.array([1.0]))
    twin = FrameRing(ring.capacity, 2, frame_shape=(2, 2), n_step=3, prioritized=True)
    with pytest.raises(ReplayError, match="not positive exactly at its valid transitions"):
        twin.load_state_dict(state)
    # The same tree in a file whose checksums are right: the loader checks it too.
    tree = ring.state_views(ring.slots)["priority_tree"]
    sumtree.set_kernel(tree, np.array([invalid]), np.array([1.0]))
    save_ring(ring, tmp_path / "replay.ring")
    with pytest.raises(ReplayError, match="replay.ring.*not positive exactly"):
        load_ring(tmp_path / "replay.ring")


def test_update_priorities_refuses_what_it_cannot_use():
    uniform = FrameRing(100, 1, frame_shape=(2, 2))
    with pytest.raises(ReplayError, match="uniform ring"):
        uniform.update_priorities([0], [1.0])
    ring = FrameRing(100, 2, frame_shape=(2, 2), prioritized=True)
    for index, td, match in (
        ([100], [1.0], "outside"),
        ([0, 1], [1.0], "one per index"),
        ([0], [np.nan], "NaN or infinite"),
        ([0.5], [1.0], "integers"),
    ):
        with pytest.raises(ReplayError, match=match):
            ring.update_priorities(index, td)
    with pytest.raises(ReplayError, match="beta"):
        ring.sample(1, beta=1.5)


def test_memory_per_transition_at_84x84_is_at_most_7_2_kb():
    # A million transitions, prioritized: frames, slot metadata, validity flags and the
    # tree (2 ** 21 float64 nodes), from the arrays' sizes (allocated lazily: no RSS).
    ring = FrameRing(1_000_000, 1, prioritized=True, n_step=3)
    arrays = ring.state_views(ring.slots)
    total = sum(a.nbytes for a in arrays.values()) + ring.valid_flags().nbytes
    assert arrays["priority_tree"].nbytes == 2**21 * 8
    assert total / 1_000_000 <= 7200, total / 1_000_000
