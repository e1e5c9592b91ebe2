"""Each agent's maths as pure functions of tensors: targets and losses, no networks.

In the manner of DQN Zoo's rlax calls, with its `_tm1` / `_t` names: `q_tm1` are the online
network's values at s_tm1, `q_t` the target network's at s_t, `discount_t` what the replay
gives (gamma ** n, or 0 after a terminal step). The value losses (the Nature DQN's Huber TD
loss, Double DQN's target) and the distributional one (C51's cross-entropy after the
categorical projection, Bellemare et al. 2017) are tested here without networks or
environments; `atari_dqn.objectives` puts them together with the networks.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F


def _huber(qa_tm1: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.huber_loss(qa_tm1, target, reduction="none", delta=1.0)


def _mse(qa_tm1: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * (target - qa_tm1).square()


_LOSSES = {"huber": _huber, "mse": _mse}


def greedy_action(q_t_selector: torch.Tensor) -> torch.Tensor:
    """int64[B, 1]: the action of largest value in each row of float[B, A]; ties go to the
    lowest action, as in acting."""
    return q_t_selector.argmax(dim=1, keepdim=True)


def q_learning_target(
    r_t: torch.Tensor, discount_t: torch.Tensor, q_t: torch.Tensor
) -> torch.Tensor:
    """The Nature target `r_t + discount_t * max_a q_t(a)`, float[B], from the target
    network's Q-values q_t float[B, A] at s_t."""
    return r_t + discount_t * q_t.max(dim=1).values


def double_q_learning_target(
    r_t: torch.Tensor, discount_t: torch.Tensor, q_t: torch.Tensor, q_t_selector: torch.Tensor
) -> torch.Tensor:
    """Double DQN's target (van Hasselt et al. 2016, eq. 4): the action the ONLINE network's
    Q-values `q_t_selector` float[B, A] pick at s_t, valued by the target network's q_t."""
    return r_t + discount_t * q_t.gather(1, greedy_action(q_t_selector)).squeeze(1)


def td_loss(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    target: torch.Tensor,
    *,
    loss: Literal["huber", "mse"] = "huber",
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss over a batch of Q(s_tm1, a_tm1) against `target`, and the TD errors.

    Args:
        q_tm1: float[B, A] online-network Q-values at s_tm1 (gradients flow into these only).
        a_tm1: int64[B] actions taken at s_tm1.
        target: float[B] the bootstrapped targets (`q_learning_target`, ...), constants.
        loss: `huber` (delta 1: quadratic within |td| <= 1, linear outside, so each sample's
            gradient is the TD error clipped to [-1, 1], the paper's error clipping) or `mse`
            (0.5 * td^2, the same curve without the clipping).
        weights: float[B] importance-sampling weights multiplying each sample's loss
            (prioritized replay); None is all ones.

    Returns:
        (scalar mean loss, detached td_error[B] = target - Q(s_tm1, a_tm1)).
    """
    qa_tm1 = q_tm1.gather(1, a_tm1.unsqueeze(1)).squeeze(1)
    target = target.detach()
    per_sample = _LOSSES[loss](qa_tm1, target)
    if weights is not None:
        per_sample = weights * per_sample
    return per_sample.mean(), (target - qa_tm1).detach()


def categorical_projection(
    z_t: torch.Tensor, p_t: torch.Tensor, support: torch.Tensor
) -> torch.Tensor:
    """Project probabilities `p_t` float[B, N] on atoms `z_t` float[B, N] onto the fixed,
    evenly spaced `support` float[N] (Bellemare et al. 2017, eq. 7): float[B, N].

    Each atom z_t[b, j], clipped to [v_min, v_max], gives its mass to the one or two support
    points beside it, in proportion to how near it lies (`[1 - |z - z_i| / dz]` clipped to
    [0, 1]). Written as that closed form rather than Algorithm 1's floor and ceiling, an
    atom that lands exactly on a support point keeps all its mass there (Algorithm 1 as
    printed loses it when floor = ceil), and the projected mass is the mass given.
    """
    v_min, v_max = support[0], support[-1]
    delta_z = (v_max - v_min) / (support.shape[0] - 1)
    clipped = z_t.clamp(v_min, v_max)  # [B, N]
    # weight[b, i, j]: the share of atom j that support point i receives.
    weight = (1.0 - (clipped[:, None, :] - support[None, :, None]).abs() / delta_z).clamp(0, 1)
    return (weight * p_t[:, None, :]).sum(dim=2)


def categorical_target(
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    p_t: torch.Tensor,
    q_t_selector: torch.Tensor,
    support: torch.Tensor,
) -> torch.Tensor:
    """C51's target distribution float[B, N]: the return distribution of the action that
    `q_t_selector` float[B, A] picks at s_t (the target network's mean Q-values for C51, the
    online network's under Double DQN), taken from the target network's probabilities p_t
    float[B, A, N], shifted to `r_t + discount_t * z` and projected onto `support`."""
    a_t = greedy_action(q_t_selector)  # [B, 1]
    p_star = p_t.gather(1, a_t[:, :, None].expand(-1, -1, p_t.shape[2])).squeeze(1)
    z_t = r_t[:, None] + discount_t[:, None] * support[None, :]
    return categorical_projection(z_t, p_star, support)


def categorical_loss(
    logits_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    target: torch.Tensor,
    *,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """C51's loss: the cross-entropy of the online distribution of the action taken against
    the target distribution, weighted and averaged over the batch.

    Args:
        logits_tm1: float[B, A, N] online-network logits at s_tm1 (softmax over the N atoms).
        a_tm1: int64[B] actions taken at s_tm1.
        target: float[B, N] the projected target distributions (`categorical_target`),
            constants.
        weights: float[B] importance-sampling weights (prioritized replay); None is all ones.

    Returns:
        (scalar mean loss, detached per-sample cross-entropy float[B], unweighted: the
        priority Rainbow writes back).
    """
    n_atoms = logits_tm1.shape[2]
    chosen = logits_tm1.gather(1, a_tm1[:, None, None].expand(-1, 1, n_atoms)).squeeze(1)
    per_sample = -(target.detach() * F.log_softmax(chosen, dim=1)).sum(dim=1)
    weighted = per_sample if weights is None else weights * per_sample
    return weighted.mean(), per_sample.detach()
