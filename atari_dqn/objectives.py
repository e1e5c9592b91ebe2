"""What an update minimises: the network passes an agent needs, then its loss.

Two objectives cover the DQN family. `ValueObjective` is the Nature DQN's Huber (or
squared) TD loss on Q-values, with the Nature target or Double DQN's; `CategoricalObjective`
is C51's cross-entropy against the projected target distribution (Bellemare et al. 2017),
with the same two choices of the bootstrap action. The learner picks one at construction
(`make_objective`) and calls it the same way on every update: `forward` runs the networks
(under the learner's autocast), `loss` is maths on float32 tensors from
`atari_dqn.losses`. Every choice an agent makes (which network picks the next action,
which loss) is made here once, not on each update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from atari_dqn.config import LearnerConfig
from atari_dqn.losses import (
    categorical_loss,
    categorical_target,
    double_q_learning_target,
    q_learning_target,
    td_loss,
)
from atari_dqn.network import NatureCNN

Noise = tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]
"""One update's noise for a noisy network: a draw each for the online network at s_tm1,
the target network at s_t and the online network choosing the action at s_t (Fortunato et
al. 2018, Algorithm 1: independent noise for each); all None without noisy layers."""


class Outcome(NamedTuple):
    """What one update's loss gives back, all float32."""

    loss: torch.Tensor
    """Scalar: the weighted mean loss, the one with gradients."""
    q_tm1: torch.Tensor
    """[B, A], detached: the online Q-values at s_tm1 (means of the distributions for C51)."""
    td_error: torch.Tensor
    """[B], detached: the target's mean less Q(s_tm1, a_tm1)."""
    priority: torch.Tensor
    """[B], detached: what prioritized replay writes back: |TD error| for a value loss,
    the unweighted cross-entropy for C51 (Hessel et al. 2018, section 3)."""


def _online_choice(
    online: NatureCNN, next_obs: torch.Tensor, noise: torch.Tensor | None, q_t: torch.Tensor
) -> torch.Tensor:
    """Double DQN's selector: the online network's Q-values at s_t, with their own noise."""
    return online(next_obs, noise).float()


def _target_choice(
    online: NatureCNN, next_obs: torch.Tensor, noise: torch.Tensor | None, q_t: torch.Tensor
) -> torch.Tensor:
    """The Nature selector: the target network's own Q-values at s_t."""
    return q_t


Selector = Callable[[NatureCNN, torch.Tensor, torch.Tensor | None, torch.Tensor], torch.Tensor]


def _selector(cfg: LearnerConfig, target_is_online: bool) -> Selector:
    """Which Q-values pick the action at s_t: the online network's under Double DQN. When
    the target network is the online one and draws no noise, its own pass on s_t is the
    online network's: Double DQN then costs no second pass."""
    same_pass = target_is_online and not cfg.noisy
    return _online_choice if cfg.double_dqn and not same_pass else _target_choice


def _max_target(
    r_t: torch.Tensor, discount_t: torch.Tensor, q_t: torch.Tensor, q_t_selector: torch.Tensor
) -> torch.Tensor:
    return q_learning_target(r_t, discount_t, q_t)


class ValueObjective:
    """The TD loss on Q-values (`learner.loss`: Huber or squared), bootstrapping from the
    target network's max (Nature) or from its value of the online network's choice
    (`learner.double_dqn`)."""

    def __init__(self, cfg: LearnerConfig, target_is_online: bool) -> None:
        self._loss = cfg.loss
        self._choose = _selector(cfg, target_is_online)
        self._bootstrap = double_q_learning_target if cfg.double_dqn else _max_target

    def forward(
        self,
        online: NatureCNN,
        target: NatureCNN,
        obs: torch.Tensor,
        next_obs: torch.Tensor,
        noise: Noise,
    ) -> tuple[torch.Tensor, ...]:
        """(q_tm1 [B, A] with gradients, q_t [B, A], q_t_selector [B, A] or q_t)."""
        q_tm1 = online(obs, noise[0]).float()
        with torch.no_grad():
            q_t = target(next_obs, noise[1]).float()
            q_t_selector = self._choose(online, next_obs, noise[2], q_t)
        return q_tm1, q_t, q_t_selector

    def loss(
        self,
        outputs: tuple[torch.Tensor, ...],
        action: torch.Tensor,
        reward: torch.Tensor,
        discount: torch.Tensor,
        weight: torch.Tensor,
    ) -> Outcome:
        q_tm1, q_t, q_t_selector = outputs
        with torch.no_grad():
            target = self._bootstrap(reward, discount, q_t, q_t_selector)
        loss, td_error = td_loss(q_tm1, action, target, loss=self._loss, weights=weight)
        return Outcome(loss, q_tm1.detach(), td_error, td_error.abs())


class CategoricalObjective:
    """C51: the cross-entropy of the online distribution of the action taken against the
    target network's distribution for the next action, shifted by the n-step return and
    projected onto the support; the next action is the one of largest mean Q-value, under
    the target network (C51) or the online network (`learner.double_dqn`, as Rainbow)."""

    def __init__(self, cfg: LearnerConfig, support: torch.Tensor, target_is_online: bool) -> None:
        self._choose = _selector(cfg, target_is_online)
        self._support = support

    def forward(
        self,
        online: NatureCNN,
        target: NatureCNN,
        obs: torch.Tensor,
        next_obs: torch.Tensor,
        noise: Noise,
    ) -> tuple[torch.Tensor, ...]:
        """(logits_tm1 [B, A, N] with gradients, p_t [B, A, N], q_t_selector [B, A])."""
        logits_tm1 = online.logits(obs, noise[0]).float()
        with torch.no_grad():
            logits_t = target.logits(next_obs, noise[1]).float()
            p_t = F.softmax(logits_t, dim=2)
            q_t = (p_t * self._support).sum(dim=2)
            q_t_selector = self._choose(online, next_obs, noise[2], q_t)
        return logits_tm1, p_t, q_t_selector

    def loss(
        self,
        outputs: tuple[torch.Tensor, ...],
        action: torch.Tensor,
        reward: torch.Tensor,
        discount: torch.Tensor,
        weight: torch.Tensor,
    ) -> Outcome:
        logits_tm1, p_t, q_t_selector = outputs
        support = self._support
        with torch.no_grad():
            target = categorical_target(reward, discount, p_t, q_t_selector, support)
        loss, cross_entropy = categorical_loss(logits_tm1, action, target, weights=weight)
        with torch.no_grad():
            q_tm1 = (F.softmax(logits_tm1, dim=2) * support).sum(dim=2)
            qa_tm1 = q_tm1.gather(1, action.unsqueeze(1)).squeeze(1)
            td_error = (target * support).sum(dim=1) - qa_tm1
        return Outcome(loss, q_tm1, td_error, cross_entropy)


Objective = ValueObjective | CategoricalObjective


def make_objective(cfg: LearnerConfig, online: NatureCNN, target_is_online: bool) -> Objective:
    """The objective of `cfg`'s agent, for `online` (on its device); `target_is_online`:
    the target network is the online one (synced before every update)."""
    if cfg.distributional:
        return CategoricalObjective(cfg, online.support, target_is_online)
    return ValueObjective(cfg, target_is_online)
