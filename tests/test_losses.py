"""Each agent's maths against references written here, without networks: the TD loss and
the Nature and Double DQN targets against hand-computed values; C51's categorical
projection against a naive per-sample, per-atom loop (Bellemare et al. 2017, Algorithm 1)
and its loss against the cross-entropy computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from atari_dqn.losses import (
    categorical_loss,
    categorical_projection,
    categorical_target,
    double_q_learning_target,
    q_learning_target,
    td_loss,
)

# Three transitions, gamma 0.9 (the replay's discount_t holds it: 0 after a terminal step):
#   0: terminal (discount 0): target = r = 1,                  Q(s,a) = 2, td = -1
#   1: bootstrap:             target = 0 + 0.9 * max(5, -5) = 4.5, Q(s,a) = 3, td = 1.5
#   2: truncated (bootstraps): -1 + 0.9 * 3 = 1.7,              Q(s,a) = 0, td = 1.7
Q_TM1 = [[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]
A_TM1 = [1, 0, 1]
R_T = [1.0, 0.0, -1.0]
DISCOUNT_T = [0.0, 0.9, 0.9]
Q_T = [[10.0, 20.0], [5.0, -5.0], [0.0, 3.0]]
# Double DQN: the online network's Q-values at s_t pick the action, the target's value it.
#   0: terminal: 1 whatever is picked; 1: online picks action 1: 0 + 0.9 * -5 = -4.5;
#   2: online picks action 0: -1 + 0.9 * 0 = -1
Q_T_SELECTOR = [[0.0, 1.0], [1.0, 2.0], [7.0, -7.0]]


def _td(loss, weights=None, double=False):
    q_tm1 = torch.tensor(Q_TM1, requires_grad=True)
    q_t = torch.tensor(Q_T, requires_grad=True)
    r_t, discount_t = torch.tensor(R_T), torch.tensor(DISCOUNT_T)
    target = (
        double_q_learning_target(r_t, discount_t, q_t, torch.tensor(Q_T_SELECTOR))
        if double
        else q_learning_target(r_t, discount_t, q_t)
    )
    value, td_error = td_loss(q_tm1, torch.tensor(A_TM1), target, loss=loss, weights=weights)
    value.backward()
    return value, td_error, q_tm1.grad, q_t.grad


def test_td_error_bootstraps_except_after_terminal():
    _, td_error, _, _ = _td("huber")
    torch.testing.assert_close(td_error, torch.tensor([-1.0, 1.5, 1.7]))


def test_double_dqn_values_the_online_networks_choice_with_the_target_network():
    _, td_error, _, _ = _td("huber", double=True)
    torch.testing.assert_close(td_error, torch.tensor([1.0 - 2.0, -4.5 - 3.0, -1.0 - 0.0]))


def test_huber_loss_is_quadratic_inside_one_and_linear_outside():
    # 0.5 * 1^2, 1.5 - 0.5, 1.7 - 0.5
    value, _, _, _ = _td("huber")
    assert value.item() == pytest.approx((0.5 + 1.0 + 1.2) / 3)


def test_importance_weights_scale_each_samples_loss_and_gradient():
    value, _, grad, _ = _td("huber", weights=torch.tensor([1.0, 0.5, 0.25]))
    assert value.item() == pytest.approx((0.5 + 0.5 * 1.0 + 0.25 * 1.2) / 3)
    expected = torch.tensor([[0.0, 1.0], [-0.5, 0.0], [0.0, -0.25]]) / 3
    torch.testing.assert_close(grad, expected)


def test_huber_gradient_is_td_error_clipped_to_plus_minus_one():
    _, _, grad, _ = _td("huber")
    expected = torch.tensor([[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]) / 3
    torch.testing.assert_close(grad, expected)


def test_mse_gradient_is_the_unclipped_td_error():
    value, _, grad, _ = _td("mse")
    assert value.item() == pytest.approx(0.5 * (1.0 + 2.25 + 2.89) / 3)
    expected = torch.tensor([[0.0, 1.0], [-1.5, 0.0], [0.0, -1.7]]) / 3
    torch.testing.assert_close(grad, expected)


def test_no_gradient_flows_into_target_q():
    _, _, _, target_grad = _td("huber")
    assert target_grad is None


def _algorithm_1(rewards, discounts, probs, support):
    """Algorithm 1 of Bellemare et al. 2017 as printed, one sample and one atom at a time,
    in float64, with the one fix every implementation needs: an atom that lands exactly on
    a support point (floor = ceil) gives it all its mass (as printed, both shares are 0)."""
    v_min, v_max, n = support[0], support[-1], len(support)
    delta_z = (v_max - v_min) / (n - 1)
    m = np.zeros((len(rewards), n))
    for b in range(len(rewards)):
        for j in range(n):
            tz = min(max(rewards[b] + discounts[b] * support[j], v_min), v_max)
            # Clamped: (v_max - v_min) / delta_z can round to just above n - 1.
            b_j = min((tz - v_min) / delta_z, n - 1)
            low, up = math.floor(b_j), math.ceil(b_j)
            if low == up:
                m[b, low] += probs[b, j]
            else:
                m[b, low] += probs[b, j] * (up - b_j)
                m[b, up] += probs[b, j] * (b_j - low)
    return m


def _project(rewards, discounts, probs, support):
    """Our projection of the n-step target `r + discount * z`, in float32, as numpy."""
    support_t = torch.tensor(support, dtype=torch.float32)
    r = torch.tensor(rewards, dtype=torch.float32)
    d = torch.tensor(discounts, dtype=torch.float32)
    z_t = r[:, None] + d[:, None] * support_t[None, :]
    return categorical_projection(z_t, torch.tensor(probs, dtype=torch.float32), support_t)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    atoms=st.integers(2, 21),
    v_max=st.floats(0.5, 20.0),
    batch=st.integers(1, 8),
)
def test_the_projection_equals_algorithm_1_over_random_supports_rewards_and_discounts(
    seed, atoms, v_max, batch
):
    rng = np.random.default_rng(seed)
    v_min = -v_max * rng.uniform(0.2, 1.5)
    support = np.linspace(v_min, v_max, atoms)
    # Rewards well outside the support too (their mass clips to v_min or v_max), and the
    # replay's discounts: 0 after a terminal step, gamma ** n otherwise.
    rewards = rng.uniform(3 * v_min, 3 * v_max, batch)
    discounts = rng.choice([0.0, 0.99, 0.99**3, 0.99**10], batch)
    probs = rng.dirichlet(np.ones(atoms), batch)
    ours = _project(rewards, discounts, probs, support)
    np.testing.assert_allclose(
        ours.numpy(), _algorithm_1(rewards, discounts, probs, support), atol=2e-5
    )
    np.testing.assert_allclose(ours.sum(dim=1).numpy(), 1.0, rtol=1e-5)


def test_atoms_landing_exactly_on_support_points_keep_all_their_mass():
    # Support -2..2 in steps of 1; reward 1 and discount 1 move every atom one point up
    # (the top one clips onto 2), reward 0 and discount 0 put everything on 0.
    support = np.linspace(-2.0, 2.0, 5)
    probs = np.array([[0.1, 0.2, 0.3, 0.25, 0.15], [0.1, 0.2, 0.3, 0.25, 0.15]])
    ours = _project([1.0, 0.0], [1.0, 0.0], probs, support).numpy()
    np.testing.assert_allclose(ours[0], [0.0, 0.1, 0.2, 0.3, 0.4], atol=1e-6)
    np.testing.assert_allclose(ours[1], [0.0, 0.0, 1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(ours, _algorithm_1([1.0, 0.0], [1.0, 0.0], probs, support))


def test_a_return_between_two_points_is_shared_by_distance():
    # All mass on the atom 0, shifted to 0.25 (reward 0.25, terminal): 3/4 to 0, 1/4 to 1.
    support = np.linspace(-2.0, 2.0, 5)
    probs = np.array([[0.0, 0.0, 1.0, 0.0, 0.0]])
    ours = _project([0.25], [0.0], probs, support).numpy()
    np.testing.assert_allclose(ours[0], [0.0, 0.0, 0.75, 0.25, 0.0], atol=1e-6)


SUPPORT = torch.tensor([-1.0, 0.0, 1.0])


def test_the_c51_loss_is_the_cross_entropy_of_the_taken_actions_distribution():
    # Two samples, two actions, three atoms. Sample 0 took action 1 (logits 0, ln 2, ln 2:
    # probabilities 1/5, 2/5, 2/5); sample 1 took action 0 (logits 0, 0, 0: 1/3 each).
    logits = torch.tensor(
        [
            [[5.0, -5.0, 0.0], [0.0, math.log(2.0), math.log(2.0)]],
            [[0.0, 0.0, 0.0], [9.0, 9.0, 9.0]],
        ],
        requires_grad=True,
    )
    target = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    loss, per_sample = categorical_loss(logits, torch.tensor([1, 0]), target)
    ce_0 = -(0.5 * math.log(1 / 5) + 0.5 * math.log(2 / 5))
    ce_1 = -math.log(1 / 3)
    torch.testing.assert_close(per_sample, torch.tensor([ce_0, ce_1]))
    assert loss.item() == pytest.approx((ce_0 + ce_1) / 2, rel=1e-6)
    loss.backward()  # the gradient of a cross-entropy: (softmax - target) / B, taken actions only
    expected = torch.zeros(2, 2, 3)
    expected[0, 1] = (torch.tensor([0.2, 0.4, 0.4]) - target[0]) / 2
    expected[1, 0] = (torch.tensor([1 / 3, 1 / 3, 1 / 3]) - target[1]) / 2
    torch.testing.assert_close(logits.grad, expected)


def test_importance_weights_scale_the_loss_but_not_the_priorities():
    logits = torch.zeros(2, 1, 3)
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    action = torch.zeros(2, dtype=torch.int64)
    plain, each = categorical_loss(logits, action, target)
    weighted, each_weighted = categorical_loss(
        logits, action, target, weights=torch.tensor([1.0, 0.0])
    )
    assert weighted.item() == pytest.approx(plain.item() / 2)
    torch.testing.assert_close(each_weighted, each)  # Rainbow's priority: the raw loss


# The target network's distributions at s_t for two actions: action 0 is all on +1 (mean
# 1), action 1 all on -1 (mean -1). The target's own means pick action 0; an online network
# that prefers action 1 makes Double DQN bootstrap from action 1's distribution instead.
P_T = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])


def test_c51_bootstraps_from_the_target_networks_mean_q_argmax():
    q_t = (P_T * SUPPORT).sum(dim=2)  # [1, -1]
    target = categorical_target(torch.tensor([0.0]), torch.tensor([1.0]), P_T, q_t, SUPPORT)
    torch.testing.assert_close(target, torch.tensor([[0.0, 0.0, 1.0]]))


def test_double_c51_bootstraps_from_the_online_networks_mean_q_argmax():
    online_q_t = torch.tensor([[0.2, 0.7]])  # the online network disagrees: action 1
    target = categorical_target(torch.tensor([0.5]), torch.tensor([0.5]), P_T, online_q_t, SUPPORT)
    # Action 1's distribution (all on -1), shifted to 0.5 + 0.5 * -1 = 0: all on 0.
    torch.testing.assert_close(target, torch.tensor([[0.0, 1.0, 0.0]]))
