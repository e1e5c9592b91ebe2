"""The Nature DQN Q-network (Mnih et al. 2015, Methods, "Model architecture"), and its
dueling head (Wang et al. 2016).

Input: the last `history_length` 84x84 grayscale frames as uint8; output: one Q-value per
action. Scaling to [0, 1] happens inside `forward`, so replay and acting hand over raw bytes
(4x less memory traffic than float32).
"""

from __future__ import annotations

import math

import torch
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
    """Q = V + A - mean(A) from two streams of fc 512 each (Wang et al. 2016, eq. 9).

    Both streams send their gradient into the last convolution, so it is scaled by 1/sqrt(2)
    on its way there, as the paper does."""

    def __init__(self, features: int, n_actions: int) -> None:
        super().__init__()
        self.value = nn.Sequential(nn.Linear(features, 512), nn.ReLU(), nn.Linear(512, 1))
        self.advantage = nn.Sequential(
            nn.Linear(features, 512), nn.ReLU(), nn.Linear(512, n_actions)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = _ScaleGradient.apply(features, 1 / math.sqrt(2))
        advantage = self.advantage(features)
        return self.value(features) + advantage - advantage.mean(dim=1, keepdim=True)


class NatureCNN(nn.Module):
    """conv 32x8x8/4, conv 64x4x4/2, conv 64x3x3/1, fc 512, fc n_actions; ReLU between.

    1,686,180 parameters for 4 actions at the default 4x84x84 input. With `dueling`, the
    two fully connected layers are the dueling head's two streams instead (3,292,837
    parameters for 4 actions); without, the network is exactly the Nature one.
    """

    def __init__(
        self,
        n_actions: int,
        history_length: int = 4,
        screen_size: int = 84,
        *,
        dueling: bool = False,
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
        layers: list[nn.Module] = []
        channels = history_length
        for out, kernel, stride in NATURE_CONVS:
            layers += [nn.Conv2d(channels, out, kernel_size=kernel, stride=stride), nn.ReLU()]
            channels = out
        features = channels * conv_side(screen_size) ** 2
        layers.append(nn.Flatten())
        if dueling:
            self.layers = nn.Sequential(*layers)
            self.head: nn.Module = DuelingHead(features, n_actions)
        else:
            layers += [nn.Linear(features, 512), nn.ReLU(), nn.Linear(512, n_actions)]
            self.layers = nn.Sequential(*layers)
            self.head = nn.Identity()
        for layer in self.modules():  # convolutions first, then the layers after them
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                _init_uniform_fan_in(layer, generator)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8[B, history, side, side] frames -> float32[B, n_actions] Q-values."""
        if obs.dtype != torch.uint8 or obs.dim() != 4 or tuple(obs.shape[1:]) != self.input_shape:
            raise ValueError(
                f"NatureCNN expects uint8[B, {', '.join(map(str, self.input_shape))}] frames, "
                f"got {str(obs.dtype).removeprefix('torch.')}{list(obs.shape)}"
            )
        return self.head(self.layers(obs.float() / 255.0))
