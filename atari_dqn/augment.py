"""DrQ's image augmentation of a batch's stacks: a random shift, then a random intensity.

Kostrikov, Yarats and Fergus (2020), as Dopamine's `labs/atari_100k` applies it to DrQ(ε):
each 84x84 stack is padded by 4 pixels replicating its edges and an 84x84 window is cropped
from it at a random offset (one offset for the 4 frames of a stack, drawn per sample, for s
and s' independently), and the pixels are then scaled by 1 + 0.05 * clip(N(0, 1), -2, 2),
one factor per stack. Dopamine draws each offset with `randint(0, padded - 84)`, whose upper
bound is exclusive: offsets 0..7 of the 9 a 4-pixel pad allows; we draw the same 0..7.

The random numbers are drawn apart from the maths (`draw_shifts`), on the learner's
generator, so that the shift and the intensity are pure functions of tensors. On a GPU
both run inside the update's captured CUDA graph (`augment`); on a CPU the shift is a Numba
copy of the uint8 pixels made before the compiled update (`shift_on_host`; inductor's
fused gather for the same shift measured 3.9 ms an update, this copy 0.12 ms), and the
intensity is fused into the compiled update.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn.functional as F

from atari_dqn.replay.kernels import copy_frame

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
    return intensity(shift(stacks, offsets), normals)


def intensity(pixels: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """`pixels` ([B, C, H, W], uint8 or float32) scaled by 1 + 0.05 * clip(`normals`, -2, 2),
    one factor per sample: float32."""
    factor = 1.0 + INTENSITY_SCALE * normals.clamp(-2.0, 2.0)
    return pixels.float() * factor[:, None, None, None]


def shift(stacks: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """`stacks` (uint8 [B, C, H, W]) padded by PAD replicated pixels and cropped back to H x W
    at `offsets` (int64 [B, 2]): float32, in torch ops a CUDA graph can capture."""
    batch, _, height, width = stacks.shape
    padded = F.pad(stacks.float(), (PAD, PAD, PAD, PAD), mode="replicate")
    # Every window as a view [B, C, 2 PAD + 1, 2 PAD + 1, H, W]; each sample takes one, for
    # all its frames (measured: 1.1 ms for a batch's s and s', a third of indexing each pixel).
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)
    return windows[torch.arange(batch, device=stacks.device), :, offsets[:, 0], offsets[:, 1]]


def shift_on_host(stacks: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """`shift` of CPU tensors as uint8 pixels, by `_shift_kernel`: the same crop, ten
    times faster on a CPU than any torch form of it we measured."""
    batch, frames, height, width = stacks.shape
    out = torch.empty((batch, frames, height * width), dtype=torch.uint8)
    # Flat frames: each frame of a batch's stacks is contiguous, though the stacks may be
    # views into a longer window of frames.
    flat = stacks.numpy().reshape(batch, frames, height * width)
    _shift_kernel(flat, offsets.numpy(), width, out.numpy())
    return out.view(stacks.shape)


@numba.njit(nogil=True, cache=True)
def _shift_kernel(stacks: np.ndarray, offsets: np.ndarray, width: int, out: np.ndarray) -> None:
    """out[b, c] = the window at offsets[b] of frame stacks[b, c] (flattened rows of `width`
    pixels) padded by PAD replicated pixels.

    Inside the frame, pixel (y, x) reads the source at the same flat index plus
    dy * W + dx (dy, dx = the offset less PAD): one contiguous copy covers every row, and
    the few columns it fills from the neighbouring row are then overwritten with the row's
    edge pixel; the rows beyond the top or bottom edge repeat the first or last row."""
    _, frames, size = stacks.shape
    height = size // width
    for b in range(stacks.shape[0]):
        dy, dx = offsets[b, 0] - PAD, offsets[b, 1] - PAD
        top, bottom = max(0, -dy), min(height, height - dy)  # rows read inside the frame
        left, right = max(0, -dx), min(width, width - dx)  # columns likewise
        skew = dy * width + dx
        for c in range(frames):
            src, dst = stacks[b, c], out[b, c]
            start, stop = top * width + left, (bottom - 1) * width + right
            copy_frame(dst[start:stop], src[start + skew : stop + skew])
            for y in range(top, bottom):
                row = y * width
                first, last = dst[row + left], dst[row + right - 1]
                for x in range(left):
                    dst[row + x] = first
                for x in range(right, width):
                    dst[row + x] = last
            inside_top, inside_bottom = top * width, (bottom - 1) * width
            for y in range(top):
                copy_frame(dst[y * width : (y + 1) * width], dst[inside_top : inside_top + width])
            for y in range(bottom, height):
                copy_frame(
                    dst[y * width : (y + 1) * width], dst[inside_bottom : inside_bottom + width]
                )
