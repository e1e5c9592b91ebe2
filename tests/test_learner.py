"""td_loss against hand-computed values; Learner updates, acting, target sync and state."""

import copy
import types

import numpy as np
import pytest
import torch

from atari_dqn.config import LearnerConfig
from atari_dqn.errors import ConfigError
from atari_dqn.learner import Learner, td_loss

# Three transitions, gamma 0.9:
#   0: terminal (discount 0): target = r = 1,                  Q(s,a) = 2, td = -1
#   1: bootstrap:             target = 0 + 0.9 * max(5, -5) = 4.5, Q(s,a) = 3, td = 1.5
#   2: truncated (discount 1, bootstraps): -1 + 0.9 * 3 = 1.7,  Q(s,a) = 0, td = 1.7
Q_TM1 = [[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]
A_TM1 = [1, 0, 1]
R_T = [1.0, 0.0, -1.0]
DISCOUNT_T = [0.0, 1.0, 1.0]
Q_T = [[10.0, 20.0], [5.0, -5.0], [0.0, 3.0]]


def _td(loss):
    q_tm1 = torch.tensor(Q_TM1, requires_grad=True)
    q_t = torch.tensor(Q_T, requires_grad=True)
    value, td_error = td_loss(
        q_tm1,
        torch.tensor(A_TM1),
        torch.tensor(R_T),
        torch.tensor(DISCOUNT_T),
        q_t,
        gamma=0.9,
        loss=loss,
    )
    value.backward()
    return value, td_error, q_tm1.grad, q_t.grad


def test_td_error_bootstraps_except_after_terminal():
    _, td_error, _, _ = _td("huber")
    torch.testing.assert_close(td_error, torch.tensor([-1.0, 1.5, 1.7]))


def test_huber_loss_is_quadratic_inside_one_and_linear_outside():
    # 0.5 * 1^2, 1.5 - 0.5, 1.7 - 0.5
    value, _, _, _ = _td("huber")
    assert value.item() == pytest.approx((0.5 + 1.0 + 1.2) / 3)


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


def _batch(size=8, seed=0, n_actions=4):
    g = torch.Generator().manual_seed(seed)
    frames = lambda: torch.randint(0, 256, (size, 4, 84, 84), dtype=torch.uint8, generator=g)
    return types.SimpleNamespace(
        obs=frames(),
        action=torch.randint(0, n_actions, (size,), generator=g),
        reward=torch.randint(-1, 2, (size,), generator=g).float(),
        discount=(torch.rand(size, generator=g) > 0.2).float(),
        next_obs=frames(),
    )


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def _pairs(a, b):
    """Corresponding parameter tensors of two networks (or two parameter lists)."""
    a = a if isinstance(a, list) else _params(a)
    b = b if isinstance(b, list) else _params(b)
    return zip(a, b, strict=True)


def test_update_changes_online_network_only():
    learner = Learner(4, LearnerConfig())
    online, target = _params(learner.online), _params(learner.target)
    metrics = learner.update(_batch())
    assert all(not torch.equal(a, b) for a, b in _pairs(online, learner.online))
    assert all(torch.equal(a, b) for a, b in _pairs(target, learner.target))
    assert set(metrics) == {"loss", "mean_q", "max_q", "q_per_action", "td_abs"}
    assert metrics["q_per_action"].shape == (4,)
    assert all(not m.requires_grad for m in metrics.values())


def test_update_metrics_describe_the_batch_before_the_step():
    learner = Learner(4, LearnerConfig())
    batch = _batch()
    with torch.no_grad():
        q = learner.online(batch.obs)
        q_t = learner.target(batch.next_obs)
    expected_loss, td = td_loss(q, batch.action, batch.reward, batch.discount, q_t, gamma=0.99)
    metrics = learner.update(batch)
    torch.testing.assert_close(metrics["loss"], expected_loss)
    torch.testing.assert_close(metrics["mean_q"], q.gather(1, batch.action[:, None]).mean())
    torch.testing.assert_close(metrics["max_q"], q.max(1).values.mean())
    torch.testing.assert_close(metrics["q_per_action"], q.mean(0))
    torch.testing.assert_close(metrics["td_abs"], td.abs().mean())


def test_sync_target_copies_online_weights():
    learner = Learner(4, LearnerConfig())
    learner.update(_batch())
    learner.sync_target()
    assert all(torch.equal(a, b) for a, b in _pairs(learner.online, learner.target))
    assert not any(p.requires_grad for p in learner.target.parameters())


def test_act_with_epsilon_zero_is_argmax_of_online_q():
    learner = Learner(5, LearnerConfig(), seed=3)
    stacks = _batch(size=16, seed=1).obs.numpy()
    with torch.no_grad():
        expected = learner.online(torch.from_numpy(stacks)).argmax(1).numpy()
    actions = learner.act(stacks, 0.0, np.random.default_rng(0))
    assert actions.dtype == np.int64
    np.testing.assert_array_equal(actions, expected)


def test_act_with_epsilon_one_is_uniform_and_skips_the_network(monkeypatch):
    learner = Learner(4, LearnerConfig())
    monkeypatch.setattr(learner, "online", None)  # any network call would now fail
    stacks = np.zeros((8, 4, 84, 84), dtype=np.uint8)
    rng = np.random.default_rng(42)
    actions = np.concatenate([learner.act(stacks, 1.0, rng) for _ in range(500)])
    counts = np.bincount(actions, minlength=4)
    # 4000 draws, 1000 expected each, std ~27: 5 std either side
    assert counts.sum() == 4000
    assert np.all(np.abs(counts - 1000) < 140), counts
    # reproducible from the rng seed
    rng2 = np.random.default_rng(42)
    again = np.concatenate([learner.act(stacks, 1.0, rng2) for _ in range(500)])
    np.testing.assert_array_equal(actions, again)


def test_act_mixes_random_and_greedy_per_env():
    learner = Learner(4, LearnerConfig())
    stacks = _batch(size=64, seed=2).obs.numpy()
    with torch.no_grad():
        greedy = learner.online(torch.from_numpy(stacks)).argmax(1).numpy()
    rng = np.random.default_rng(5)
    explore = np.random.default_rng(5).random(64) < 0.5  # the draws act makes first
    actions = learner.act(stacks, 0.5, rng)
    np.testing.assert_array_equal(actions[~explore], greedy[~explore])
    assert 0 < explore.sum() < 64


def test_state_dict_round_trip_gives_identical_next_update():
    a = Learner(4, LearnerConfig(), seed=0)
    a.update(_batch(seed=1))
    a.sync_target()
    a.update(_batch(seed=2))
    state = copy.deepcopy(a.state_dict())
    b = Learner(4, LearnerConfig(), seed=99)
    b.load_state_dict(state)
    next_batch = _batch(seed=3)
    ma, mb = a.update(next_batch), b.update(next_batch)
    assert torch.equal(ma["loss"], mb["loss"])
    assert all(torch.equal(x, y) for x, y in _pairs(a.online, b.online))
    assert all(torch.equal(x, y) for x, y in _pairs(a.target, b.target))


def test_same_seed_gives_same_network_and_different_seed_does_not():
    a, b, c = (Learner(4, LearnerConfig(), seed=s) for s in (1, 1, 2))
    assert all(torch.equal(x, y) for x, y in _pairs(a.online, b.online))
    assert not torch.equal(_params(a.online)[0], _params(c.online)[0])


def test_overfitting_a_tiny_fixed_batch_reduces_loss():
    learner = Learner(4, LearnerConfig())
    batch = _batch(size=8, seed=4)
    first = learner.update(batch)["loss"].item()
    for _ in range(12):  # loss falls from ~0.38 to ~0.06 by then
        last = learner.update(batch)["loss"].item()
    assert last < 0.5 * first, (first, last)


def test_channels_last_update_matches_default_layout():
    batch = _batch()
    a = Learner(4, LearnerConfig())
    b = Learner(4, LearnerConfig(channels_last=True))
    for _ in range(2):
        ma, mb = a.update(batch), b.update(batch)
    torch.testing.assert_close(ma["loss"], mb["loss"], rtol=1e-4, atol=1e-6)


def test_failed_compile_warns_and_updates_eagerly():
    batch = _batch()
    eager = Learner(4, LearnerConfig())
    learner = Learner(4, LearnerConfig(compile=True))

    def broken(*args):
        raise RuntimeError("no C++ compiler")

    learner._loss_fn = broken  # what a failed torch.compile looks like on first call
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        metrics = learner.update(batch)
    torch.testing.assert_close(metrics["loss"], eager.update(batch)["loss"])
    assert all(torch.equal(x, y) for x, y in _pairs(eager.online, learner.online))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_device_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match="learner.device=cpu"):
        Learner(4, LearnerConfig(device="cuda"))


def test_torch_threads_is_applied():
    before = torch.get_num_threads()
    try:
        Learner(4, LearnerConfig(torch_threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_compiled_update_matches_eager_update():
    batch = _batch()
    eager = Learner(4, LearnerConfig())
    compiled = Learner(4, LearnerConfig(compile=True))
    for _ in range(3):
        me, mc = eager.update(batch), compiled.update(batch)
    torch.testing.assert_close(mc["loss"], me["loss"], rtol=1e-4, atol=1e-6)
    for x, y in _pairs(eager.online, compiled.online):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)
