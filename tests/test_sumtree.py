"""The prioritized-replay sum tree against a naive searchsorted sampler (sumtree_reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sumtree_reference import ALL_ONES, NaiveTree, state_drawing, uniform
from sumtree_reference import importance_weights as reference_weights

from atari_dqn.errors import ReplayError
from atari_dqn.replay import sumtree
from atari_dqn.replay.sumtree import SumTree, fill_kernel, sample_kernel, set_kernel


def draw(tree: SumTree, state: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """One `sample_kernel` call on `tree`'s nodes from splitmix64 state `state`."""
    indices = np.empty(batch_size, np.int64)
    probabilities = np.empty(batch_size, np.float64)
    rng = np.array([state], np.uint64)
    sample_kernel(tree.nodes, rng, batch_size, indices, probabilities)
    return indices, probabilities


def assert_is_sum_tree(tree: SumTree, leaves: np.ndarray) -> None:
    """Leaves as given, padding 0, each internal node the float sum of its two children
    and, within round-off, the exact sum of the leaves under it."""
    nodes, first = tree.nodes, tree.leaves
    np.testing.assert_array_equal(tree.leaf_priorities(), leaves)
    assert not nodes[first + tree.size :].any()
    for i in range(1, first):
        assert nodes[i] == nodes[2 * i] + nodes[2 * i + 1], f"node {i}"
        lo, hi = i, i + 1
        while lo < first:
            lo, hi = 2 * lo, 2 * hi
        assert math.isclose(nodes[i], math.fsum(nodes[lo:hi]), rel_tol=1e-12), f"node {i}"


ANY_PRIORITY = st.floats(0, 1e9) | st.just(0.0)


@st.composite
def set_streams(draw_, values=ANY_PRIORITY):
    """(size, operations): each ("set", indices, values), ("max", indices) or ("clear",
    indices), indices drawn with repeats."""
    size = draw_(st.integers(1, 70))
    index = st.integers(0, size - 1)
    ops = []
    for _ in range(draw_(st.integers(0, 25))):
        kind = draw_(st.sampled_from(["set", "max", "clear"]))
        indices = draw_(st.lists(index, max_size=12))
        values_ = [draw_(values) for _ in indices] if kind == "set" else None
        ops.append((kind, indices, values_))
    return size, ops


def run_stream(size: int, ops: list, check=None) -> tuple[SumTree, NaiveTree]:
    """Apply `ops` to a tree and to the naive reference, calling `check(tree, ref)` after each."""
    tree, ref = SumTree(size), NaiveTree(size)
    for kind, indices, values in ops:
        if kind == "set":
            tree.set(indices, values)
        elif kind == "max":
            values = [ref.max_priority] * len(indices)
            tree.set_max(indices)
        else:
            values = [0.0] * len(indices)
            tree.clear(indices)
        ref.set(indices, values)
        if check:
            check(tree, ref)
    return tree, ref


# ---- structure ------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(set_streams())
def test_every_internal_node_is_the_sum_of_its_leaves_after_any_stream_of_sets(stream):
    def check(tree, ref):
        assert_is_sum_tree(tree, ref.priorities)
        assert tree.max_priority == ref.max_priority
        assert sumtree.tree_problem(tree.nodes, tree.size) is None

    run_stream(*stream, check=check)


def test_of_an_index_repeated_in_one_call_the_last_write_wins():
    tree = SumTree(5)
    set_kernel(tree.nodes, np.array([3, 1, 3, 3, 1]), np.array([7.0, 2.0, 0.0, 4.0, 0.5]))
    assert_is_sum_tree(tree, np.array([0, 0.5, 0, 4.0, 0]))
    assert tree.max_priority == 7.0  # the running maximum saw 7.0 even though 4.0 won


def test_new_transitions_enter_at_the_largest_priority_ever_written():
    tree = SumTree(6)
    tree.set_max([0])
    assert tree.leaf_priorities()[0] == 1.0  # Algorithm 1: p_1 = 1
    tree.set([1], [5.0])
    tree.set([1], [0.25])  # lowered: the maximum remembers 5.0, as DQN Zoo and Dopamine do
    fill_kernel(tree.nodes, np.array([2, 3]), tree.nodes[sumtree.MAX])
    assert_is_sum_tree(tree, np.array([1.0, 0.25, 5.0, 5.0, 0, 0]))


def test_clearing_many_slots_leaves_only_the_others_drawable():
    tree = SumTree(1000)
    tree.set(np.arange(1000), np.linspace(0.5, 2.0, 1000))
    cleared = np.arange(0, 1000, 3)
    tree.clear(cleared)
    tree.clear(cleared)  # already 0: a no-op
    expected = np.linspace(0.5, 2.0, 1000)
    expected[cleared] = 0
    assert_is_sum_tree(tree, expected)
    indices, _ = tree.sample(4096)
    assert not np.isin(indices, cleared).any()


def test_a_one_leaf_tree_is_its_own_root():
    tree = SumTree(1)
    tree.set([0], [3.0])
    assert tree.total == 3.0 and tree.nodes.shape == (2,)
    indices, probabilities = tree.sample(3)
    assert indices.tolist() == [0, 0, 0] and probabilities.tolist() == [1.0, 1.0, 1.0]


# ---- sampling -------------------------------------------------------------------------

# Multiples of 1/8 up to 8: every sum of up to 128 of them is exact in float64, so the tree's
# pairwise sums and the reference's running cumsum agree bit for bit.
DYADIC = st.integers(0, 64).map(lambda k: k / 8) | st.just(0.0)


@settings(max_examples=150, deadline=None)
@given(set_streams(values=DYADIC), st.integers(1, 40), st.integers(0, 2**64 - 1))
def test_draws_equal_the_naive_searchsorted_draws_from_the_same_points(stream, batch, state):
    tree, ref = run_stream(*stream)
    if tree.total == 0:
        with pytest.raises(ReplayError, match="every priority is 0"):
            tree.sample(batch)
        return
    indices, probabilities = draw(tree, state, batch)
    want_indices, want_probabilities, _ = ref.sample(state, batch)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_array_equal(probabilities, want_probabilities)


@settings(max_examples=100, deadline=None)
@given(set_streams(), st.integers(1, 40), st.integers(0, 2**64 - 1))
def test_returned_probabilities_are_each_drawn_priority_over_the_total(stream, batch, state):
    tree, ref = run_stream(*stream)
    if tree.total == 0:
        return
    indices, probabilities = draw(tree, state, batch)
    np.testing.assert_allclose(probabilities, ref.probabilities()[indices], rtol=1e-12)
    assert np.all(ref.priorities[indices] > 0)


@pytest.mark.parametrize("batch_size", [1, 32])
def test_draws_follow_the_proportional_distribution_chi_square(batch_size):
    """200,000 draws over 37 leaves (6 of them 0) against P(i) = p_i / sum p.

    Pearson's statistic over the 31 positive leaves has 30 degrees of freedom; its critical
    value at significance 0.001 is 59.703 (scipy.stats.chi2.ppf(0.999, 30)). Batches of 1
    are plain multinomial draws, so the statistic follows that law; stratified batches of 32
    have less variance, so the same bound is conservative for them. Fixed seed: the outcome
    is the same on every run."""
    rng = np.random.default_rng(7)
    leaves = rng.uniform(0.1, 10.0, 37)
    leaves[[0, 5, 6, 20, 35, 36]] = 0.0
    tree = SumTree(37, seed=11)
    tree.set(np.arange(37), leaves)
    n_draws = 200_000
    indices = np.empty(n_draws, np.int64)
    probabilities = np.empty(n_draws, np.float64)
    for start in range(0, n_draws, batch_size):
        rows = slice(start, start + batch_size)
        sample_kernel(tree.nodes, tree.rng, batch_size, indices[rows], probabilities[rows])
    counts = np.bincount(indices, minlength=37)
    positive = leaves > 0
    assert counts[~positive].sum() == 0
    expected = n_draws * leaves[positive] / leaves.sum()
    statistic = float(((counts[positive] - expected) ** 2 / expected).sum())
    assert statistic < 59.703, f"chi-square {statistic:.1f} over 30 degrees of freedom"


def test_a_priority_update_is_seen_by_the_very_next_draw():
    tree = SumTree(50, seed=3)
    tree.set(np.arange(50), np.ones(50))
    tree.set([17], [1e12])
    indices, probabilities = tree.sample(32)
    assert indices.tolist() == [17] * 32 and probabilities[0] == 1e12 / (1e12 + 49)
    tree.set([17], [0.0])
    for _ in range(200):
        indices, probabilities = tree.sample(32)
        assert 17 not in indices.tolist()
        np.testing.assert_array_equal(probabilities, np.full(32, 1 / 49))


@pytest.mark.parametrize(
    ("size", "positive"),
    [(37, [36]), (32, [31]), (37, [0]), (37, [20]), (2, [1]), (37, list(range(3, 11)))],
    ids=["last", "last-of-full-tree", "first", "one-middle", "second-of-two", "run-amid-zeros"],
)
def test_zero_leaves_are_never_drawn_wherever_the_mass_lies(size, positive):
    tree = SumTree(size, seed=5)
    tree.set(positive, np.linspace(1.0, 2.0, len(positive)))
    for batch_size in (1, 7, 32):
        for _ in range(50):
            indices, _ = tree.sample(batch_size)
            assert set(indices.tolist()) <= set(positive)


@pytest.mark.parametrize("batch_size", [2, 32])
def test_a_point_at_exactly_the_total_draws_the_last_positive_leaf(batch_size):
    """The last segment's uniform is 1 - 2**-53: (B - 1 + u) rounds to B, so the point is
    B * (total / B) = total, past every leaf; a plain descent ends on padding leaf 63."""
    tree = SumTree(37)
    tree.set(range(3, 11), [1.0] * 8)
    assert (batch_size - 1 + (1 - 2**-53)) * (tree.total / batch_size) == tree.total
    indices, probabilities = draw(tree, state_drawing(ALL_ONES, batch_size - 1), batch_size)
    assert indices[-1] == 10 and probabilities[-1] == 1 / 8


def test_a_point_past_the_total_draws_the_last_positive_leaf():
    """A total whose segment rounds up: 3 * (total / 3) > total."""
    total = next(t for t in np.linspace(1.0, 2.0, 1001) if 3 * (t / 3) > t)
    tree = SumTree(20)
    tree.set([2, 9], [1.0, total - 1.0])
    assert tree.total == total
    indices, _ = draw(tree, state_drawing(ALL_ONES, 2), 3)
    assert indices[-1] == 9


def test_a_point_at_zero_draws_the_first_positive_leaf():
    tree = SumTree(40)
    tree.set([13, 30], [1.0, 1.0])
    _, u = uniform(state_drawing(0))
    assert u == 0.0
    indices, _ = draw(tree, state_drawing(0), 4)
    assert indices[0] == 13


@st.composite
def wild_trees(draw_):
    """Priorities of wildly mixed magnitude (round-off in every sum), and one row whose
    uniform is forced to 0, to its largest value, or to a random one."""
    size = draw_(st.integers(1, 70))
    magnitude = st.floats(1e-300, 1e250) | st.sampled_from([0.0, 1.0, 2**-1074, 1e250])
    leaves = draw_(st.lists(magnitude, min_size=size, max_size=size))
    batch = draw_(st.integers(1, 40))
    row = draw_(st.integers(0, batch - 1))
    output = draw_(st.sampled_from([0, ALL_ONES]) | st.integers(0, 2**64 - 1))
    return size, leaves, batch, row, output


@settings(max_examples=300, deadline=None)
@given(wild_trees())
def test_no_draw_lands_on_a_zero_leaf_whatever_the_round_off(case):
    size, leaves, batch, row, output = case
    tree = SumTree(size)
    tree.set(np.arange(size), leaves)
    if tree.total == 0:
        return
    indices, probabilities = draw(tree, state_drawing(output, row), batch)
    assert np.all(np.asarray(leaves)[indices] > 0), indices
    # P(i) itself may underflow to 0 here (1e-300 beside 1e23): no real priority ratio is so wide
    np.testing.assert_array_equal(probabilities, np.asarray(leaves)[indices] / tree.total)


# ---- weights and priorities -----------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(1e-9, 1.0), min_size=1, max_size=64),
    st.integers(1, 10**7),
    st.floats(0.0, 1.0),
)
def test_importance_weights_are_the_papers_formula_with_maximum_one(probabilities, n, beta):
    weights = sumtree.importance_weights(np.array(probabilities), n, beta)
    assert weights.dtype == np.float32 and weights.shape == (len(probabilities),)
    assert weights.max() == 1.0
    np.testing.assert_allclose(weights, reference_weights(probabilities, n, beta), rtol=1e-6)


def test_importance_weights_reject_a_zero_probability_and_a_beta_outside_0_1():
    with pytest.raises(ReplayError, match="positive"):
        sumtree.importance_weights(np.array([0.5, 0.0]), 10, 0.4)
    with pytest.raises(ReplayError, match="0 <= beta <= 1"):
        sumtree.importance_weights(np.array([0.5, 0.25]), 10, -0.4)


def test_priorities_are_td_error_plus_eps_to_the_alpha():
    td = np.array([0.0, -2.0, 3.0])
    np.testing.assert_allclose(
        sumtree.priorities(td, 0.6, 1e-6), [1e-6**0.6, (2 + 1e-6) ** 0.6, (3 + 1e-6) ** 0.6]
    )
    assert sumtree.priorities(td, 0.0, 1e-6).tolist() == [1.0, 1.0, 1.0]


# ---- state ----------------------------------------------------------------------------


def test_state_round_trips_to_the_same_draws():
    tree = SumTree(100, seed=9)
    rng = np.random.default_rng(0)
    tree.set(np.arange(100), rng.uniform(0, 3, 100))
    tree.clear([4, 5, 6])
    tree.sample(32)
    state = tree.state_dict()

    def continue_run(t: SumTree) -> list:
        out = []
        for k in range(20):
            indices, probabilities = t.sample(32)
            t.set(indices, (k + 1) * probabilities)
            t.set_max([k])
            out.append((indices.tolist(), probabilities.tolist(), t.max_priority))
        return out

    original = continue_run(tree)
    restored = SumTree(100, seed=123)  # another seed: the state's rng must replace it
    restored.load_state_dict(state)
    assert continue_run(restored) == original
    np.testing.assert_array_equal(restored.nodes, tree.nodes)


def test_loading_a_state_of_another_size_or_a_corrupt_tree_is_refused():
    state = SumTree(100).state_dict()
    with pytest.raises(ReplayError, match="100 leaves, this tree has 99"):
        SumTree(99).load_state_dict(state)
    tree = SumTree(100)
    tree.set([7], [2.0])
    state = tree.state_dict()
    state["nodes"][5] += 1.0
    with pytest.raises(ReplayError, match="not the sum of its children"):
        SumTree(100).load_state_dict(state)
    state = tree.state_dict()
    state["nodes"][sumtree.MAX] = 1.5  # below the 2.0 the tree holds
    with pytest.raises(ReplayError, match="running maximum"):
        SumTree(100).load_state_dict(state)
    state = tree.state_dict()
    state["rng"] = state["rng"].astype(np.int64)
    with pytest.raises(ReplayError, match="'rng': expected uint64"):
        SumTree(100).load_state_dict(state)


# ---- misuse ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("indices", "values", "message"),
    [
        ([10], [1.0], r"out of range \[0, 10\)"),
        ([-1], [1.0], "out of range"),
        ([1, 2], [1.0], "priorities for"),
        ([1], [-0.5], "finite and >= 0"),
        ([1], [np.nan], "finite and >= 0"),
        ([1], [np.inf], "finite and >= 0"),
        ([1.5], [1.0], "expected int"),
    ],
)
def test_bad_writes_are_refused_before_they_reach_the_tree(indices, values, message):
    tree = SumTree(10)
    with pytest.raises(ReplayError, match=message):
        tree.set(indices, values)
    assert tree.total == 0


def test_sampling_an_all_zero_tree_says_why():
    with pytest.raises(ReplayError, match="every priority is 0"):
        SumTree(10).sample(4)
