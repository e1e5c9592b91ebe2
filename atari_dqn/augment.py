"""DrQ's image augmentation of a batch's stacks: a random shift, then a random intensity.

Kostrikov, Yarats and Fergus (2020), as Dopamine's `labs/atari_100k` applies it to DrQ(ε):
each 84x84 stack is padded by 4 pixels replicating its edges and an 84x84 window is cropped
from it at a random offset (one offset for the 4 frames of a stack, drawn per sample, for s
and s' independently), and the pixels are then scaled by 1 + 0.05 * clip(N(0, 1), -2, 2),
one factor per stack. Dopamine draws each offset with `randint(0, padded - 84)`, whose upper
bound is exclusive: offsets 0..7 of the 9 a 4-pixel pad allows; we draw the same 0..7.

The random numbers are drawn apart from the maths (`draw_shifts`), on the learner's
generator, so that `augment` is a pure function of tensors: the part of an update that
torch.compile fuses or a CUDA graph captures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
    """`stacks` (uint8 [B, C, H, W]) padded by PAD replicated pixels and cropped back to H x W
    at `offsets` (int64 [B, 2], the crop's corner in the padded frame), then scaled by
    1 + 0.05 * clip(`normals`, -2, 2) (float32 [B]): float32 [B, C, H, W] on the pixels'
    0..255 scale."""
    batch, _, height, width = stacks.shape
    padded = F.pad(stacks.float(), (PAD, PAD, PAD, PAD), mode="replicate")
    # Every window as a view [B, C, 2 PAD + 1, 2 PAD + 1, H, W]; each sample takes one, for
    # all its frames (measured: 1.1 ms for a batch's s and s', a third of indexing each pixel).
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)
    shifted = windows[torch.arange(batch, device=stacks.device), :, offsets[:, 0], offsets[:, 1]]
    factor = 1.0 + INTENSITY_SCALE * normals.clamp(-2.0, 2.0)
    return shifted * factor[:, None, None, None]
