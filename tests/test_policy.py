"""Epsilon-greedy acting: the greedy choice is the network's argmax, exploration draws come
from the run's RNG whatever the network says, CUDA acting equals the CPU's, and on a CPU
a bf16 learner's policy acts in fp32."""

import numpy as np
import pytest
import torch
from quick_runs import learner_and_policy

from atari_dqn.replay.batch import Batch

cuda = pytest.mark.cuda  # skipped where torch sees no CUDA device (tests/conftest.py)


def _stacks(size: int, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (size, 4, 84, 84), dtype=torch.uint8, generator=g).numpy()


def _greedy(policy, stacks: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return policy.network(torch.from_numpy(stacks)).argmax(1).numpy()


def test_act_with_epsilon_zero_is_argmax_of_online_q():
    _, policy = learner_and_policy(5, seed=3)
    stacks = _stacks(16, seed=1)
    actions = policy.act(stacks, 0.0, np.random.default_rng(0))
    assert actions.dtype == np.int64
    np.testing.assert_array_equal(actions, _greedy(policy, stacks))


def test_on_the_cpu_a_bf16_learners_policy_acts_on_fp32_q_values():
    _, policy = learner_and_policy(5, seed=3, bf16_autocast=True)
    stacks = _stacks(4, seed=2)
    _, q, _, _ = policy.act_and_values(stacks, 0.0, np.random.default_rng(0))
    with torch.no_grad():
        fp32 = policy.network(torch.from_numpy(stacks)).numpy()
    np.testing.assert_array_equal(q, fp32)


def test_act_with_epsilon_one_is_uniform_and_skips_the_network():
    _, policy = learner_and_policy()
    policy.network = None  # any network call would now fail
    stacks = np.zeros((8, 4, 84, 84), dtype=np.uint8)
    rng = np.random.default_rng(42)
    actions = np.concatenate([policy.act(stacks, 1.0, rng) for _ in range(500)])
    counts = np.bincount(actions, minlength=4)
    # 4000 draws, 1000 expected each, std ~27: 5 std either side
    assert counts.sum() == 4000
    assert np.all(np.abs(counts - 1000) < 140), counts
    # reproducible from the rng seed
    rng2 = np.random.default_rng(42)
    again = np.concatenate([policy.act(stacks, 1.0, rng2) for _ in range(500)])
    np.testing.assert_array_equal(actions, again)


def test_act_mixes_random_and_greedy_per_env():
    _, policy = learner_and_policy()
    stacks = _stacks(64, seed=2)
    greedy = _greedy(policy, stacks)
    explore = np.random.default_rng(5).random(64) < 0.5  # the draws act makes first
    actions = policy.act(stacks, 0.5, np.random.default_rng(5))
    np.testing.assert_array_equal(actions[~explore], greedy[~explore])
    assert 0 < explore.sum() < 64


def test_a_noisy_policy_acts_with_new_noise_each_step_and_its_evaluation_twin_without():
    learner, policy = learner_and_policy(noisy=True)
    stacks = _stacks(4, seed=6)
    rng = np.random.default_rng(0)
    first, second = (policy.act_and_values(stacks, 0.0, rng)[1] for _ in range(2))
    assert not np.array_equal(first, second)  # a new draw for each step
    evaluation = policy.without_noise()
    assert evaluation.network is learner.online and evaluation.without_noise() is evaluation
    with torch.no_grad():
        mean = learner.online(torch.from_numpy(stacks), None).numpy()
    for _ in range(2):  # the mean weights, every time
        np.testing.assert_array_equal(evaluation.act_and_values(stacks, 0.0, rng)[1], mean)
    assert policy.without_noise() is evaluation


def test_the_policy_acts_on_the_learners_network_as_it_learns():
    learner, policy = learner_and_policy()
    assert policy.network is learner.online
    g = torch.Generator().manual_seed(0)
    batch = Batch(
        torch.randint(0, 256, (8, 5, 84, 84), dtype=torch.uint8, generator=g),
        torch.randint(0, 4, (8,), generator=g),
        torch.ones(8),
        torch.ones(8),
        torch.ones(8),
        torch.arange(8),
    )
    stacks = _stacks(4, seed=3)
    before = policy.act_and_values(stacks, 0.0, np.random.default_rng(0))[1]
    learner.update(batch)
    after = policy.act_and_values(stacks, 0.0, np.random.default_rng(0))[1]
    assert not np.array_equal(before, after)


@cuda
@pytest.mark.parametrize("tf32", [False, True])
def test_on_cuda_tf32_is_off_inside_acting_unless_asked_for(tf32):
    _, policy = learner_and_policy(device="cuda", cuda_graph="false", tf32=tf32)
    seen = []
    policy.network.register_forward_hook(
        lambda *_: seen.append(
            (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        )
    )
    policy.act(_stacks(4, seed=0), 0.0, np.random.default_rng(0))
    assert seen and set(seen) == {(tf32, tf32)}


@cuda
def test_on_cuda_acting_is_the_same_with_and_without_graphs():
    _, eager = learner_and_policy(device="cuda", cuda_graph="false")
    _, graphed = learner_and_policy(device="cuda", cuda_graph="true")
    assert graphed.network.layers[0].weight.is_contiguous()  # `auto`: no channels-last on CUDA
    stacks = _stacks(16, seed=7)
    for epsilon in (0.0, 0.3):
        a = eager.act(stacks, epsilon, np.random.default_rng(1))
        b = graphed.act(stacks, epsilon, np.random.default_rng(1))
        np.testing.assert_array_equal(a, b)
    _, cpu = learner_and_policy()
    np.testing.assert_array_equal(
        cpu.act(stacks, 0.0, np.random.default_rng(1)),
        graphed.act(stacks, 0.0, np.random.default_rng(1)),
    )


def test_recording_a_distributional_network_gives_each_actions_return_distribution():
    _, policy = learner_and_policy(5, seed=3, distributional=True, num_atoms=11)
    stacks = _stacks(6, seed=4)
    actions, q, _, distributions = policy.act_and_values(stacks, 0.5, np.random.default_rng(1))
    support = policy.support
    np.testing.assert_allclose(support, np.linspace(-10, 10, 11), atol=1e-6)
    assert distributions.shape == (6, 11)
    np.testing.assert_allclose(distributions.sum(axis=1), 1.0, atol=1e-5)
    # Each is the distribution of the action taken, random ones included: its mean is
    # that action's Q-value.
    np.testing.assert_allclose(distributions @ support, q[np.arange(6), actions], atol=1e-5)
    _, plain = learner_and_policy(5, seed=3)
    assert plain.support is None
    assert plain.act_and_values(stacks, 0.5, np.random.default_rng(1))[3] is None
