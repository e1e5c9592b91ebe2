"""The Nature DQN Q-network (Mnih et al. 2015, Methods, "Model architecture").

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


class NatureCNN(nn.Module):
    """conv 32x8x8/4, conv 64x4x4/2, conv 64x3x3/1, fc 512, fc n_actions; ReLU between.

    1,686,180 parameters for 4 actions at the default 4x84x84 input.
    """

    def __init__(
        self,
        n_actions: int,
        history_length: int = 4,
        screen_size: int = 84,
        *,
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
        side = conv_side(screen_size)
        layers += [nn.Flatten(), nn.Linear(channels * side * side, 512), nn.ReLU()]
        self.layers = nn.Sequential(*layers, nn.Linear(512, n_actions))
        for layer in self.layers:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                _init_uniform_fan_in(layer, generator)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8[B, history, side, side] frames -> float32[B, n_actions] Q-values."""
        if obs.dtype != torch.uint8 or obs.dim() != 4 or tuple(obs.shape[1:]) != self.input_shape:
            raise ValueError(
                f"NatureCNN expects uint8[B, {', '.join(map(str, self.input_shape))}] frames, "
                f"got {str(obs.dtype).removeprefix('torch.')}{list(obs.shape)}"
            )
        return self.layers(obs.float() / 255.0)
