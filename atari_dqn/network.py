"""The Nature DQN Q-network (Mnih et al. 2015, Methods, "Model architecture") and the heads
of its successors: dueling (Wang et al. 2016), distributional over atoms (C51, Bellemare et
al. 2017) and noisy linear layers (Fortunato et al. 2018).

Input: the last `history_length` 84x84 grayscale frames as uint8; output: one Q-value per
action (the mean of each action's return distribution for a distributional head). Scaling
to [0, 1] happens inside `forward`, so replay and acting hand over raw bytes (4x less
memory traffic than float32).

Noise is an argument, not state: a noisy network's forward pass takes one draw of
`sample_noise` (or None: the mean weights, as evaluation uses them), so whoever calls it
decides when noise is new and which generator it comes from.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from atari_dqn.shapes import NATURE_CONVS, conv_side, min_screen_size


def _init_uniform_fan_in(layer: nn.Conv2d | nn.Linear, generator: torch.Generator | None) -> None:
    """DeepMind's DQN initialisation: weights AND biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    This is Torch7's default, which the original Lua DQN inherited, and DQN Zoo keeps it
    (`_dqn_default_initializer`). fan_in is in_channels * kernel area for a convolution and
    in_features for a linear layer. PyTorch's current defaults happen to give the same
    distribution; we set it explicitly so a change of torch defaults cannot change our agent,
    and so a `generator` can make it reproducible without touching torch's global RNG.
    """
    fan_in = layer.weight[0].numel()
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def factorised_noise(x: torch.Tensor) -> torch.Tensor:
    """f(x) = sgn(x) sqrt(|x|), applied to standard normal draws (Fortunato et al. 2018,
    section 3.2, factorised Gaussian noise)."""
    return x.sign() * x.abs().sqrt()


class NoisyLinear(nn.Module):
    """A linear layer whose weights and biases are Gaussian, factorised: y = (mu_w + sigma_w *
    eps_w) x + mu_b + sigma_b * eps_b with eps_w = f(eps_out) f(eps_in)^T and eps_b =
    f(eps_out) (Fortunato et al. 2018, eq. 9-11).

    Twice the parameters of `nn.Linear` (a mean and a scale for each weight and bias).
    Initialised as the paper's section 3.2: mu ~ U(-1/sqrt(p), 1/sqrt(p)) for p inputs,
    sigma = sigma_0 / sqrt(p).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        sigma_0: float,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.sigma_0 = in_features, out_features, sigma_0
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_sigma = nn.Parameter(torch.empty(out_features))
        self.initialise(generator)
        self.noise_slice = slice(0, self.noise_size)
        """Where this layer's noise lies in its network's draw (set by the network)."""

    def initialise(self, generator: torch.Generator | None) -> None:
        """The paper's initialisation, the means drawn from `generator`."""
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight_mu, -bound, bound, generator=generator)
        nn.init.uniform_(self.bias_mu, -bound, bound, generator=generator)
        nn.init.constant_(self.weight_sigma, self.sigma_0 * bound)
        nn.init.constant_(self.bias_sigma, self.sigma_0 * bound)

    @property
    def noise_size(self) -> int:
        """Noise values one draw needs: f(eps_in) and f(eps_out)."""
        return self.in_features + self.out_features

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """float[B, in] -> float[B, out]; `noise` float[in + out] is [f(eps_in), f(eps_out)],
        or None for the mean weights."""
        mean = F.linear(x, self.weight_mu, self.bias_mu)
        if noise is None:
            return mean
        eps_in, eps_out = noise[: self.in_features], noise[self.in_features :]
        # (sigma_w * eps_out eps_in^T) x = eps_out * (sigma_w (eps_in * x)): the p x q noise
        # matrix is never formed.
        return mean + (F.linear(x * eps_in, self.weight_sigma) + self.bias_sigma) * eps_out


class _Layers(nn.Sequential):
    """nn.Sequential whose noisy layers take their part of a noise draw."""

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, NoisyLinear):
                x = layer(x, None if noise is None else noise[layer.noise_slice])
            else:
                x = layer(x)
        return x


class _ScaleGradient(torch.autograd.Function):
    """The identity forward; the gradient multiplied by `scale` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


class DuelingHead(nn.Module):
    """Q = V + A - mean(A) from two streams of fc 512 each (Wang et al. 2016, eq. 9); over
    atoms, the same sum for each atom's logit (Hessel et al. 2018, section 3).

    Both streams send their gradient into the last convolution, so it is scaled by 1/sqrt(2)
    on its way there, as the paper does."""

    def __init__(
        self, features: int, n_actions: int, atoms: int, linear: Callable[[int, int], nn.Module]
    ) -> None:
        super().__init__()
        self.n_actions, self.atoms = n_actions, atoms
        self.value = _Layers(linear(features, 512), nn.ReLU(), linear(512, atoms))
        self.advantage = _Layers(linear(features, 512), nn.ReLU(), linear(512, n_actions * atoms))

    def forward(self, features: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """float[B, features] -> float[B, A] Q-values, or float[B, A, atoms] logits."""
        features = _ScaleGradient.apply(features, 1 / math.sqrt(2))
        value, advantage = self.value(features, noise), self.advantage(features, noise)
        if self.atoms > 1:
            value = value.view(-1, 1, self.atoms)
            advantage = advantage.view(-1, self.n_actions, self.atoms)
        return value + advantage - advantage.mean(dim=1, keepdim=True)


def _linear_layers(sigma_0: float | None) -> Callable[[int, int], nn.Module]:
    """What makes a network's fully connected layers: `nn.Linear`, or `NoisyLinear` with
    `sigma_0`; the network initialises either."""
    if sigma_0 is None:
        return nn.Linear
    return lambda in_features, out_features: NoisyLinear(in_features, out_features, sigma_0)


class _NoHead(nn.Identity):
    """The plain network's head: its last layer already gives the Q-values (or logits)."""

    def forward(self, features: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return features


def make_support(v_min: float, v_max: float, atoms: int) -> torch.Tensor:
    """The atoms of a distributional head: `atoms` evenly spaced values from v_min to v_max
    (C51: 51 in [-10, 10])."""
    return torch.linspace(v_min, v_max, atoms)


class NatureCNN(nn.Module):
    """conv 32x8x8/4, conv 64x4x4/2, conv 64x3x3/1, fc 512, fc n_actions; ReLU between.

    1,686,180 parameters for 4 actions at the default 4x84x84 input. With `dueling`, the
    two fully connected layers are the dueling head's two streams instead (3,292,837
    parameters for 4 actions). With a `support` of N atoms the last layer gives N logits per
    action, a softmax over the atoms (C51); with `noise_sigma0`, every fully connected
    layer is a `NoisyLinear`. With none of them, the network is exactly the Nature one.
    """

    def __init__(
        self,
        n_actions: int,
        history_length: int = 4,
        screen_size: int = 84,
        *,
        dueling: bool = False,
        support: torch.Tensor | None = None,
        noise_sigma0: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if n_actions <= 0 or history_length <= 0:
            raise ValueError(
                f"NatureCNN needs n_actions > 0 and history_length > 0, "
                f"got {n_actions} and {history_length}"
            )
        if screen_size < min_screen_size():
            raise ValueError(
                f"screen_size={screen_size} is too small for the Nature CNN's three "
                f"convolutions; use at least {min_screen_size()} (the paper uses 84)"
            )
        self.n_actions = n_actions
        self.input_shape = (history_length, screen_size, screen_size)
        self.distributional = support is not None
        atoms = 1 if support is None else len(support)
        # Not saved with the weights: it is the config's (learner.v_min, v_max, num_atoms).
        self.register_buffer("support", support, persistent=False)
        linear = _linear_layers(noise_sigma0)
        layers: list[nn.Module] = []
        channels = history_length
        for out, kernel, stride in NATURE_CONVS:
            layers += [nn.Conv2d(channels, out, kernel_size=kernel, stride=stride), nn.ReLU()]
            channels = out
        features = channels * conv_side(screen_size) ** 2
        layers.append(nn.Flatten())
        if dueling:
            self.layers = _Layers(*layers)
            self.head: nn.Module = DuelingHead(features, n_actions, atoms, linear)
        else:
            layers += [linear(features, 512), nn.ReLU(), linear(512, n_actions * atoms)]
            self.layers = _Layers(*layers)
            self.head = _NoHead()
        for layer in self.modules():  # convolutions first, then the layers after them
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                _init_uniform_fan_in(layer, generator)
            elif isinstance(layer, NoisyLinear):
                layer.initialise(generator)
        self.noise_size = 0
        """Values in one noise draw (`sample_noise`); 0 without noisy layers."""
        for layer in self.modules():
            if isinstance(layer, NoisyLinear):
                layer.noise_slice = slice(self.noise_size, self.noise_size + layer.noise_size)
                self.noise_size += layer.noise_size

    def sample_noise(self, generator: torch.Generator, draws: int = 1) -> torch.Tensor:
        """float[draws, noise_size]: `draws` independent draws of factorised noise for every
        noisy layer, on the generator's device; each row is one forward pass's `noise`."""
        normal = torch.randn((draws, self.noise_size), generator=generator, device=generator.device)
        return factorised_noise(normal)

    def _output(self, obs: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        # uint8 frames, or float32 ones on the same 0..255 scale (an augmented batch).
        pixels = obs.dtype in (torch.uint8, torch.float32)
        if not pixels or obs.dim() != 4 or tuple(obs.shape[1:]) != self.input_shape:
            raise ValueError(
                f"NatureCNN expects uint8[B, {', '.join(map(str, self.input_shape))}] frames "
                "(or float32 on the 0..255 scale), "
                f"got {str(obs.dtype).removeprefix('torch.')}{list(obs.shape)}"
            )
        return self.head(self.layers(obs.float() / 255.0, noise), noise)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """uint8[B, history, side, side] frames -> float32[B, n_actions] Q-values (for a
        distributional head, the means of the return distributions). `noise`: one row of
        `sample_noise` for a noisy network, or None for its mean weights."""
        if self.distributional:
            return self.q_values(self.logits(obs, noise))
        return self._output(obs, noise)

    def logits(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """A distributional head's logits float[B, n_actions, atoms]: a softmax over the
        atoms is each action's return distribution on `support`."""
        if not self.distributional:
            raise ValueError("logits() is for a distributional network (built with a support)")
        return self._output(obs, noise).view(-1, self.n_actions, len(self.support))

    def q_values(self, logits: torch.Tensor) -> torch.Tensor:
        """float[B, A]: the mean of each action's distribution, from `logits` [B, A, atoms]."""
        return (F.softmax(logits, dim=2) * self.support).sum(dim=2)
