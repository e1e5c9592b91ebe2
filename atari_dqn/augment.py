"""DrQ's image augmentation of a batch's stacks: a random shift, then a random intensity.

Kostrikov, Yarats and Fergus (2020), as Dopamine's `labs/atari_100k` applies it to DrQ(ε):
each 84x84 stack is padded by 4 pixels replicating its edges and an 84x84 window is cropped
from it at a random offset (one offset for the 4 frames of a stack, drawn per sample, for s
and s' independently), and the pixels are then scaled by 1 + 0.05 * clip(N(0, 1), -2, 2),
one factor per stack. Dopamine draws each offset with `randint(0, padded - 84)`, whose upper
bound is exclusive: offsets 0..7 of the 9 a 4-pixel pad allows; we draw the same 0..7.

The random numbers are drawn apart from the maths (`draw_shifts`), on the learner's
generator, so that `augment` is a pure function of tensors: the part of an update that
torch.compile fuses or a CUDA graph captures. Padding with replicated edges and cropping is
the same as reading each pixel at its shifted position clamped to the frame, which is how
`augment` reads it: no padded copy is made.
"""

from __future__ import annotations

import torch

PAD = 4
"""Pixels of replicated edge on each side (DrQ's 4 for 84x84 frames)."""
INTENSITY_SCALE = 0.05
"""Standard deviation of the intensity factor around 1, before clipping at 2 of them."""


def draw_shifts(
    generator: torch.Generator, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """One update's augmentation draws for `batch_size` transitions, s and s' apart.

    Returns (offsets int64 [2, B, 2]: row and column of each crop's corner in the padded
    frame, in [0, 2 * PAD); normals float32 [2, B]: the intensity factors' N(0, 1) draws).
    Index 0 is for s, 1 for s'."""
    offsets = torch.randint(
        0, 2 * PAD, (2, batch_size, 2), generator=generator, device=device, dtype=torch.int64
    )
    normals = torch.randn((2, batch_size), generator=generator, device=device)
    return offsets, normals


def augment(stacks: torch.Tensor, offsets: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """`stacks` (uint8 [B, C, H, W]) shifted by `offsets` (int64 [B, 2], corners in the
    padded frame) with replicated edges, then scaled by 1 + 0.05 * clip(`normals`, -2, 2)
    (float32 [B]): float32 [B, C, H, W] on the pixels' 0..255 scale."""
    _, _, height, width = stacks.shape
    rows = (offsets[:, :1] - PAD + torch.arange(height, device=stacks.device)).clamp(0, height - 1)
    cols = (offsets[:, 1:] - PAD + torch.arange(width, device=stacks.device)).clamp(0, width - 1)
    batch = torch.arange(stacks.shape[0], device=stacks.device)
    # [B, H, W] indices broadcast over the channels: one offset for a stack's frames.
    shifted = stacks.permute(0, 2, 3, 1)[batch[:, None, None], rows[:, :, None], cols[:, None, :]]
    factor = 1.0 + INTENSITY_SCALE * normals.clamp(-2.0, 2.0)
    return shifted.permute(0, 3, 1, 2).float() * factor[:, None, None, None]
