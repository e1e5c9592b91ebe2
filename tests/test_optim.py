"""DeepMind's RMSProp against hand-computed steps, and the optimiser factory."""

import math

import pytest
import torch

from atari_dqn.config import LearnerConfig
from atari_dqn.optim import DeepMindRMSprop, make_optimizer

# Three steps of   g_avg = m g_avg + (1-m) g;  sq_avg = m2 sq_avg + (1-m2) g^2;
#                  w -= lr g / sqrt(sq_avg - g_avg^2 + eps)
# with lr=0.1, m=0.9, m2=0.8, eps=0.01 from w=[1, -2], computed with plain Python floats.
# Step 1 by hand for w[0]: g_avg=0.05, sq_avg=0.05, var=0.0475, w = 1 - 0.05/sqrt(0.0575).
GRADS = ([0.5, -1.0], [0.1, 2.0], [-0.3, 0.0])
EXPECTED_W = (
    [0.7914855859429252, -1.776393202250021],
    [0.7462986620504684, -1.980740975222015],
    [0.8675469119888032, -1.980740975222015],
)


def test_deepmind_rmsprop_matches_hand_computed_steps():
    w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = DeepMindRMSprop(
        [w], lr=0.1, gradient_momentum=0.9, squared_gradient_momentum=0.8, min_squared_gradient=0.01
    )
    for grad, expected in zip(GRADS, EXPECTED_W, strict=True):
        w.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
        torch.testing.assert_close(w.detach(), torch.tensor(expected, dtype=torch.float64))


def test_deepmind_rmsprop_skips_parameters_without_gradient():
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(3, requires_grad=True)
    opt = DeepMindRMSprop([a, b])
    a.grad = torch.ones(3)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(3))
    assert not torch.equal(a.detach(), torch.ones(3))


@pytest.mark.parametrize("grad", [1.0, 0.01])
def test_eps_inside_sqrt_differs_from_torch_centered_rmsprop_as_derived(grad):
    # One step from zero state, m = m2 = 0.95: centred variance is 0.05 g^2 - (0.05 g)^2.
    lr, eps = 0.1, 0.01
    var = 0.05 * grad**2 - (0.05 * grad) ** 2
    ours_expected = lr * grad / math.sqrt(var + eps)
    torch_expected = lr * grad / (math.sqrt(var) + eps)

    def one_step(make):
        w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = make([w])
        w.grad = torch.full((1,), grad, dtype=torch.float64)
        opt.step()
        return -w.item()

    ours = one_step(lambda p: DeepMindRMSprop(p, lr=lr, min_squared_gradient=eps))
    theirs = one_step(lambda p: torch.optim.RMSprop(p, lr=lr, alpha=0.95, eps=eps, centered=True))
    assert ours == pytest.approx(ours_expected, rel=1e-12)
    assert theirs == pytest.approx(torch_expected, rel=1e-12)
    # small gradients: torch's step is ~8x DeepMind's; this is why we have our own optimiser
    assert theirs / ours == pytest.approx(torch_expected / ours_expected, rel=1e-12)
    assert abs(theirs - ours) > 0.01 * ours


def test_make_optimizer_scales_deepmind_constant_for_a_mean_loss():
    params = [torch.zeros(2, requires_grad=True)]
    opt = make_optimizer(params, LearnerConfig(batch_size=32))
    assert isinstance(opt, DeepMindRMSprop)
    group = opt.param_groups[0]
    assert group["min_squared_gradient"] == pytest.approx(0.01 / 32**2)
    assert group["lr"] == 0.00025
    assert group["gradient_momentum"] == group["squared_gradient_momentum"] == 0.95


def test_mean_loss_step_equals_deepmind_sum_loss_step_with_0_01():
    # The Lua code back-propagates the batch SUM with 0.01 inside the root; we back-propagate
    # the MEAN with 0.01 / B^2. Both must move the weights identically.
    batch = 32
    per_sample = torch.randn(
        3, batch, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    w_sum = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    w_mean = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt_sum = DeepMindRMSprop([w_sum], min_squared_gradient=0.01)
    opt_mean = make_optimizer([w_mean], LearnerConfig(batch_size=batch))
    for grads in per_sample:
        w_sum.grad = grads.sum(0)
        w_mean.grad = grads.mean(0)
        opt_sum.step()
        opt_mean.step()
    torch.testing.assert_close(w_mean.detach(), w_sum.detach(), rtol=1e-10, atol=1e-14)


def test_make_optimizer_builds_torch_rmsprop_and_adam():
    params = [torch.zeros(2, requires_grad=True)]
    rms = make_optimizer(params, LearnerConfig(optimizer="rmsprop"))
    assert isinstance(rms, torch.optim.RMSprop)
    assert rms.param_groups[0]["centered"] and rms.param_groups[0]["eps"] == 0.01
    assert rms.param_groups[0]["alpha"] == 0.95
    adam = make_optimizer(params, LearnerConfig(optimizer="adam"))
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["eps"] == pytest.approx(0.01 / 32)


def test_on_the_cpu_adam_is_fused_and_steps_as_torchs_default_loop_does():
    # The fused step against torch's reference loop over the tensors: ten steps on the
    # same gradients land within float32 rounding of each other.
    torch.manual_seed(0)
    start = [torch.randn(64, 32), torch.randn(32)]
    grads = [[torch.randn_like(w) for w in start] for _ in range(10)]
    cfg = LearnerConfig(optimizer="adam", min_squared_gradient=0.0048)
    ours = [w.clone().requires_grad_() for w in start]
    loop = [w.clone().requires_grad_() for w in start]
    fused = make_optimizer(ours, cfg)
    reference = torch.optim.Adam(loop, lr=cfg.learning_rate, eps=0.0048 / 32, foreach=False)
    assert fused.param_groups[0]["fused"]
    for step in grads:
        for w, v, g in zip(ours, loop, step, strict=True):
            w.grad, v.grad = g.clone(), g.clone()
        fused.step()
        reference.step()
    for w, v, w0 in zip(ours, loop, start, strict=True):
        assert not torch.equal(w, w0)
        torch.testing.assert_close(w, v, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.0},
        {"gradient_momentum": 1.0},
        {"squared_gradient_momentum": -0.1},
        {"min_squared_gradient": 0.0},
    ],
)
def test_bad_hyperparameters_are_rejected_with_their_name(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs)).replace("lr", "learning rate")):
        DeepMindRMSprop([torch.zeros(1, requires_grad=True)], **kwargs)
