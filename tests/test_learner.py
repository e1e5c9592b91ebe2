"""Learner updates against the loss functions fed by hand, target sync and state.

Every learner here names its device: the CPU tests run on any machine (a GPU one included),
and the CUDA tests at the end skip where torch sees no GPU.
"""

import copy
import hashlib

import numpy as np
import pytest
import torch
from quick_runs import make_learner

from atari_dqn.augment import augment, draw_shifts
from atari_dqn.config import Config, LearnerConfig
from atari_dqn.errors import ConfigError
from atari_dqn.losses import (
    categorical_loss,
    categorical_target,
    double_q_learning_target,
    q_learning_target,
    td_loss,
)
from atari_dqn.objectives import make_objective
from atari_dqn.replay.batch import Batch
from atari_dqn.runtime import resolve

cuda = pytest.mark.cuda  # skipped where torch sees no CUDA device (tests/conftest.py)


def _batch(size=8, seed=0, n_actions=4, device="cpu"):
    """Random 5-frame windows: obs = frames[:, :4], next_obs = frames[:, 1:]."""
    g = torch.Generator().manual_seed(seed)
    batch = Batch(
        torch.randint(0, 256, (size, 5, 84, 84), dtype=torch.uint8, generator=g),
        torch.randint(0, n_actions, (size,), generator=g),
        torch.randint(-1, 2, (size,), generator=g).float(),
        (torch.rand(size, generator=g) > 0.2).float(),
        torch.ones(size),
        torch.arange(size),
    )
    return Batch(*(t.to(device) for t in batch))


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def _pairs(a, b):
    """Corresponding parameter tensors of two networks (or two parameter lists)."""
    a = a if isinstance(a, list) else _params(a)
    b = b if isinstance(b, list) else _params(b)
    return zip(a, b, strict=True)


def test_update_changes_online_network_only():
    learner = make_learner()
    online, target = _params(learner.online), _params(learner.target)
    metrics = learner.update(_batch())
    assert all(not torch.equal(a, b) for a, b in _pairs(online, learner.online))
    assert all(torch.equal(a, b) for a, b in _pairs(target, learner.target))
    assert set(metrics) == {"loss", "mean_q", "max_q", "q_per_action", "td_abs", "priority_each"}
    assert metrics["q_per_action"].shape == (4,)
    assert all(not m.requires_grad for m in metrics.values())


def test_update_metrics_describe_the_batch_before_the_step():
    learner = make_learner()
    batch = _batch()
    with torch.no_grad():
        obs, next_obs = batch.stacks(4)
        q = learner.online(obs)
        q_t = learner.target(next_obs)
    target = q_learning_target(batch.reward, batch.discount, q_t)
    expected_loss, td = td_loss(q, batch.action, target)
    metrics = learner.update(batch)
    torch.testing.assert_close(metrics["loss"], expected_loss)
    torch.testing.assert_close(metrics["mean_q"], q.gather(1, batch.action[:, None]).mean())
    torch.testing.assert_close(metrics["max_q"], q.max(1).values.mean())
    torch.testing.assert_close(metrics["q_per_action"], q.mean(0))
    torch.testing.assert_close(metrics["td_abs"], td.abs().mean())
    torch.testing.assert_close(metrics["priority_each"], td.abs())


def test_a_double_dqn_learner_bootstraps_from_its_online_networks_choice():
    learner = make_learner(double_dqn=True)
    learner.target.load_state_dict(make_learner(seed=7).online.state_dict())  # another net
    batch = _batch()
    with torch.no_grad():
        obs, next_obs = batch.stacks(4)
        q = learner.online(obs)
        target = double_q_learning_target(
            batch.reward, batch.discount, learner.target(next_obs), learner.online(next_obs)
        )
        plain = q_learning_target(batch.reward, batch.discount, learner.target(next_obs))
    assert not torch.equal(target, plain)  # the two rules differ on this batch
    torch.testing.assert_close(learner.update(batch)["loss"], td_loss(q, batch.action, target)[0])


def test_importance_weights_of_the_batch_weight_each_samples_loss():
    weighted = _batch()._replace(weight=torch.tensor([2.0, 0.0, 1.0, 1.0, 0.5, 1.0, 1.0, 3.0]))
    learner = make_learner()
    with torch.no_grad():
        obs, next_obs = weighted.stacks(4)
        target = q_learning_target(weighted.reward, weighted.discount, learner.target(next_obs))
        expected = td_loss(learner.online(obs), weighted.action, target, weights=weighted.weight)
    torch.testing.assert_close(learner.update(weighted)["loss"], expected[0])


def _grad_norm(learner) -> float:
    return torch.stack([p.grad.norm() for p in learner.online.parameters()]).norm().item()


def test_max_grad_norm_clips_the_gradients_global_norm_and_zero_leaves_it():
    batch = _batch()
    free, clipped = make_learner(), make_learner(max_grad_norm=1e-3)
    free.update(batch)
    clipped.update(batch)
    assert _grad_norm(free) > 1e-2  # the clip below is a real one
    assert _grad_norm(clipped) == pytest.approx(1e-3, rel=1e-3)


def test_sync_target_copies_online_weights():
    learner = make_learner()
    learner.update(_batch())
    learner.sync_target()
    assert all(torch.equal(a, b) for a, b in _pairs(learner.online, learner.target))
    assert not any(p.requires_grad for p in learner.target.parameters())


def test_state_dict_round_trip_gives_identical_next_update():
    a = make_learner(seed=0)
    a.update(_batch(seed=1))
    a.sync_target()
    a.update(_batch(seed=2))
    state = copy.deepcopy(a.state_dict())
    b = make_learner(seed=99)
    b.load_state_dict(state)
    next_batch = _batch(seed=3)
    ma, mb = a.update(next_batch), b.update(next_batch)
    assert torch.equal(ma["loss"], mb["loss"])
    assert all(torch.equal(x, y) for x, y in _pairs(a.online, b.online))
    assert all(torch.equal(x, y) for x, y in _pairs(a.target, b.target))


def test_same_seed_gives_same_network_and_different_seed_does_not():
    a, b, c = (make_learner(seed=s) for s in (1, 1, 2))
    assert all(torch.equal(x, y) for x, y in _pairs(a.online, b.online))
    assert not torch.equal(_params(a.online)[0], _params(c.online)[0])


def test_overfitting_a_tiny_fixed_batch_reduces_loss():
    learner = make_learner()
    batch = _batch(size=8, seed=4)
    first = learner.update(batch)["loss"].item()
    for _ in range(20):  # loss falls from ~0.17 to ~0.07 by then
        last = learner.update(batch)["loss"].item()
    assert last < 0.5 * first, (first, last)


def test_channels_last_update_matches_the_contiguous_layout():
    batch = _batch()
    a = make_learner(channels_last="false")
    b = make_learner(channels_last="true")
    assert a.online.layers[0].weight.is_contiguous()
    assert b.online.layers[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not b.online.layers[0].weight.is_contiguous()
    default = make_learner()  # `auto`: channels-last on the CPU
    assert default.online.layers[0].weight.is_contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        ma, mb = a.update(batch), b.update(batch)
    torch.testing.assert_close(ma["loss"], mb["loss"], rtol=1e-4, atol=1e-6)
    for x, y in _pairs(a.online, b.online):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_failed_compile_warns_and_updates_eagerly(monkeypatch):
    batch = _batch()
    eager = make_learner()

    def broken(*args):
        raise RuntimeError("no C++ compiler")

    # What a failed torch.compile looks like: the compiled function fails on its first call.
    monkeypatch.setattr(torch, "compile", lambda fn, **options: broken)
    learner = make_learner(compile=True)
    assert not learner.compiled_ok
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        metrics = learner.update(batch)
    assert learner.compiled_ok
    torch.testing.assert_close(metrics["loss"], eager.update(batch)["loss"])
    assert all(torch.equal(x, y) for x, y in _pairs(eager.online, learner.online))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_device_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match="learner.device=cpu"):
        resolve(Config(learner=LearnerConfig(device="cuda")))
    with pytest.raises(ConfigError, match="learner.cuda_graph=true needs a CUDA device"):
        resolve(Config(learner=LearnerConfig(device="cpu", cuda_graph="true")))


@pytest.mark.slow
def test_compiled_update_matches_eager_update():
    batch = _batch()
    eager = make_learner()
    compiled = make_learner(compile=True)
    assert eager.compiled_ok and not compiled.compiled_ok  # one eager, one compiled
    for _ in range(3):
        me, mc = eager.update(batch), compiled.update(batch)
    torch.testing.assert_close(mc["loss"], me["loss"], rtol=1e-4, atol=1e-6)
    for x, y in _pairs(eager.online, compiled.online):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_a_compiled_rainbow_update_matches_the_eager_one_noise_included():
    # The noise rows are drawn eagerly and handed to the compiled forward passes and loss.
    batch = _batch()
    eager, compiled = make_learner(**RAINBOW), make_learner(compile=True, **RAINBOW)
    for _ in range(3):
        me, mc = eager.update(batch), compiled.update(batch)
        torch.testing.assert_close(mc["loss"], me["loss"], rtol=1e-4, atol=1e-6)
    assert torch.equal(eager.noise.get_state(), compiled.noise.get_state())
    for x, y in _pairs(eager.online, compiled.online):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_take_metrics_gives_the_means_over_the_updates_since_the_last_call():
    learner = make_learner()
    assert learner.take_metrics() == {}
    seen = [{k: v.clone() for k, v in learner.update(_batch(seed=s)).items()} for s in range(3)]
    means = learner.take_metrics()
    for key, value in means.items():
        expected = torch.stack([m[key] for m in seen]).mean(0)
        np.testing.assert_allclose(value, expected.numpy(), rtol=1e-6)
    assert means["q_per_action"].shape == (4,)
    assert learner.take_metrics() == {}  # the sums start again


def _cuda_learner(**options):
    return make_learner(device="cuda", **options)


@cuda
def test_on_cuda_a_captured_update_equals_the_eager_update_over_50_updates():
    batches = [_batch(size=32, seed=s, device="cuda") for s in range(5)]
    eager, graphed = _cuda_learner(cuda_graph="false"), _cuda_learner(cuda_graph="true")
    assert graphed.runtime.cuda_graph and not eager.runtime.cuda_graph
    for i in range(50):
        me, mg = eager.update(batches[i % 5]), graphed.update(batches[i % 5])
        torch.testing.assert_close(mg["loss"], me["loss"], rtol=1e-4, atol=1e-5)
        if i == 20:
            eager.sync_target()
            graphed.sync_target()
    for x, y in _pairs(eager.online, graphed.online):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)
    eager_means, graph_means = eager.take_metrics(), graphed.take_metrics()  # summed in-graph
    for key, value in eager_means.items():
        np.testing.assert_allclose(graph_means[key], value, rtol=1e-4, atol=1e-5)


@cuda
def test_on_cuda_a_captured_update_is_captured_again_after_a_load_and_resumes():
    batches = [_batch(size=32, seed=s, device="cuda") for s in range(4)]
    a = _cuda_learner(cuda_graph="true")
    for batch in batches[:2]:
        a.update(batch)
    b = _cuda_learner(cuda_graph="true")
    b.update(batches[3])  # captured, then replaced by the load below
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    for batch in batches[2:]:
        ma, mb = a.update(batch), b.update(batch)
        torch.testing.assert_close(ma["loss"], mb["loss"], rtol=1e-5, atol=1e-6)
    for x, y in _pairs(a.online, b.online):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


@cuda
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_on_cuda_torch_optimisers_are_captured_and_match_their_eager_steps(optimizer):
    batches = [_batch(size=32, seed=s, device="cuda") for s in range(3)]
    eager = _cuda_learner(cuda_graph="false", optimizer=optimizer)
    graphed = _cuda_learner(cuda_graph="true", optimizer=optimizer)
    for i in range(20):
        eager.update(batches[i % 3])
        graphed.update(batches[i % 3])
    for x, y in _pairs(eager.online, graphed.online):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


C51 = dict(distributional=True, num_atoms=11, v_min=-2.0, v_max=2.0)


@pytest.mark.parametrize("double_dqn", [False, True])
def test_a_c51_learner_minimises_the_cross_entropy_to_the_projected_target(double_dqn):
    # The update's loss and priorities against the loss functions fed by hand with the
    # networks' outputs. The target network is another network, so that the online and
    # target mean-Q argmaxes at s_t differ on this batch and the two rules give two targets.
    learner = make_learner(double_dqn=double_dqn, **C51)
    learner.target.load_state_dict(make_learner(seed=7, **C51).online.state_dict())
    batch = _batch()
    support = learner.online.support
    with torch.no_grad():
        obs, next_obs = batch.stacks(4)
        p_t = torch.softmax(learner.target.logits(next_obs), dim=2)
        online_q_t, target_q_t = learner.online(next_obs), learner.target(next_obs)
        assert not torch.equal(online_q_t.argmax(1), target_q_t.argmax(1))
        selector = online_q_t if double_dqn else target_q_t
        target = categorical_target(batch.reward, batch.discount, p_t, selector, support)
        loss, each = categorical_loss(learner.online.logits(obs), batch.action, target)
        q = learner.online(obs)
    metrics = learner.update(batch)
    torch.testing.assert_close(metrics["loss"], loss)
    torch.testing.assert_close(metrics["priority_each"], each)  # the loss, not |TD|
    torch.testing.assert_close(metrics["q_per_action"], q.mean(0))
    expected_td = (target * support).sum(1) - q.gather(1, batch.action[:, None]).squeeze(1)
    torch.testing.assert_close(metrics["td_abs"], expected_td.abs().mean())


RAINBOW = dict(noisy=True, dueling=True, double_dqn=True, **C51)
DRQ = dict(double_dqn=True, dueling=True, target_update_steps=1)
"""DrQ's learner but its augmentation: Double DQN and dueling, the target synced before
every update."""


def test_a_noisy_learner_draws_new_noise_for_each_update_from_its_generator():
    # Two learners alike but for their noise generator's seed take different steps on the
    # same batch; alike in everything, the same steps.
    batch = _batch()
    a, b = make_learner(**RAINBOW), make_learner(**RAINBOW)
    other = make_learner(**RAINBOW)
    other.noise.manual_seed(12345)
    ma, mb, mo = a.update(batch), b.update(batch), other.update(batch)
    assert torch.equal(ma["loss"], mb["loss"])
    assert not torch.equal(ma["loss"], mo["loss"])
    # The same learner on the same batch again: its noise is new (and its weights moved).
    state = a.noise.get_state()
    a.update(batch)
    assert not torch.equal(a.noise.get_state(), state)


def test_a_noisy_learners_state_holds_its_noise_generator_so_the_next_update_is_the_same():
    a = make_learner(**RAINBOW)
    a.update(_batch(seed=1))
    state = copy.deepcopy(a.state_dict())
    assert "generator" in state
    b = make_learner(seed=99, **RAINBOW)
    b.load_state_dict(state)
    ma, mb = a.update(_batch(seed=3)), b.update(_batch(seed=3))
    assert torch.equal(ma["loss"], mb["loss"])
    assert all(torch.equal(x, y) for x, y in _pairs(a.online, b.online))
    assert "generator" not in make_learner().state_dict()  # plain DQN's checkpoint as before


@cuda
@pytest.mark.parametrize("agent", ["rainbow", "drq"])
def test_on_cuda_a_captured_update_draws_its_noise_or_shifts_as_the_eager_one_does(agent):
    # Rainbow: C51's loss and the three noise draws inside the captured graph; DrQ: the
    # augmentation's draws and maths, the target being the online network. On CUDA the draws
    # come from the device's default generator, which each learner seeds as it is built:
    # the eager learner runs first, then the captured one from the same generator state.
    settings = RAINBOW if agent == "rainbow" else dict(augmentation="drq", **DRQ)
    batches = [_batch(size=32, seed=s, device="cuda") for s in range(3)]
    eager = _cuda_learner(cuda_graph="false", **settings)
    eager_losses = [eager.update(batches[i % 3])["loss"].clone() for i in range(20)]
    graphed = _cuda_learner(cuda_graph="true", **settings)
    assert graphed.generator is eager.generator  # the device's one generator, seeded again
    for i in range(20):
        loss = graphed.update(batches[i % 3])["loss"]
        torch.testing.assert_close(loss, eager_losses[i], rtol=1e-4, atol=1e-5)
    for x, y in _pairs(eager.online, graphed.online):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


# What commit be8aa63 (before C51 and noisy nets) computed with torch 2.13.0 on this
# project's CPU: three updates of `_batch(seed=0..2)` (a target copy after the second) from
# make_learner(**settings); the losses' float32 values and a digest of the final weights.
# Adam's digest is that of its fused CPU step (since commit "Adam fused on the CPU"), which
# rounds the weights' last bits apart from torch's default loop (same losses; the step
# itself is held against the loop by test_optim).
BEFORE_C51 = {
    "plain": ({}, ("0.24106082320213318", "0.38709113001823425", "0.3178268074989319"),
              "53220445d2cd022e"),
    "double_dueling": ({"double_dqn": True, "dueling": True, "max_grad_norm": 10.0},
                       ("0.250241756439209", "0.37884074449539185", "0.31603485345840454"),
                       "7b71c10ee8b6b5c7"),
    "adam_mse": ({"optimizer": "adam", "loss": "mse"},
                 ("0.24113048613071442", "0.3938426375389099", "0.3175068795681"),
                 "5bb89a459350ab51"),
}  # fmt: skip


@pytest.mark.skipif(
    torch.__version__.split("+")[0] != "2.13.0", reason="pinned with torch 2.13.0's CPU kernels"
)
@pytest.mark.parametrize("name", sorted(BEFORE_C51))
def test_with_c51_and_noisy_nets_off_the_updates_are_bit_for_bit_those_before_them(name):
    settings, losses, digest = BEFORE_C51[name]
    learner = make_learner(**settings)
    seen = []
    for seed in range(3):
        seen.append(repr(float(learner.update(_batch(seed=seed))["loss"])))
        if seed == 1:
            learner.sync_target()
    assert tuple(seen) == losses
    h = hashlib.sha256()
    for p in learner.online.parameters():
        h.update(p.detach().contiguous().numpy().tobytes())
    assert h.hexdigest()[:16] == digest


def test_a_target_synced_every_update_is_the_online_network_and_updates_as_a_copy_would():
    # The reference: a separate target network copied from the online one before each
    # update, its Double DQN choice made by a second pass of the online network.
    shared = make_learner(**DRQ)
    copied = make_learner(double_dqn=True, dueling=True)
    assert shared.target is shared.online and copied.target is not copied.online
    for seed in range(3):
        copied.sync_target()
        a, b = shared.update(_batch(seed=seed)), copied.update(_batch(seed=seed))
        assert torch.equal(a["loss"], b["loss"]) and torch.equal(a["max_q"], b["max_q"])
    assert all(torch.equal(x, y) for x, y in _pairs(shared.online, copied.online))
    shared.sync_target()  # nothing to copy
    assert shared.target is shared.online


def test_an_augmented_update_minimises_the_loss_of_the_stacks_its_generator_shifted():
    learner = make_learner(augmentation="drq", **DRQ)
    batch = _batch(seed=4)
    replica = torch.Generator().set_state(learner.generator.get_state())
    offsets, normals = draw_shifts(replica, len(batch.action), torch.device("cpu"))
    obs, next_obs = batch.stacks(4)
    objective = make_objective(learner.cfg, learner.online, target_is_online=True)
    with torch.no_grad():
        outputs = objective.forward(
            learner.online,
            learner.target,
            augment(obs, offsets[0], normals[0]),
            augment(next_obs, offsets[1], normals[1]),
            (None, None, None),
        )
        expected = objective.loss(outputs, batch.action, batch.reward, batch.discount, batch.weight)
    metrics = learner.update(batch)
    torch.testing.assert_close(metrics["loss"], expected.loss, rtol=1e-6, atol=0)
    # Not the loss of the stacks as stored: the augmentation did change the inputs.
    plain = make_learner(**DRQ).update(batch)
    assert not torch.equal(plain["loss"], metrics["loss"])
    assert torch.equal(learner.generator.get_state(), replica.get_state())  # drew the same


def test_an_augmented_learners_state_holds_its_generator_so_the_next_update_is_the_same():
    a = make_learner(augmentation="drq", **DRQ)
    a.update(_batch(seed=1))
    state = copy.deepcopy(a.state_dict())
    b = make_learner(seed=5, augmentation="drq", **DRQ)
    b.load_state_dict(state)
    assert torch.equal(a.update(_batch(seed=2))["loss"], b.update(_batch(seed=2))["loss"])
    assert all(torch.equal(x, y) for x, y in _pairs(a.online, b.online))
