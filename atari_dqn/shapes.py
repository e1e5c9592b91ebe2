"""Sizes that several parts must agree on, computed without torch or numba.

The config checks its values against them when it is built (so `--dry-run` and `--help`
load neither library), the network and the frame ring build themselves from them, and a
run's memory is estimated from them before anything is allocated.
"""

from __future__ import annotations

NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
"""(out channels, kernel, stride) of the Nature CNN's three convolutions (Methods, "Model
architecture")."""

SLOT_METADATA_BYTES = 4 + 4 + 5 * 1
"""Per ring slot besides its frame: action (int32), reward (float32) and five uint8 flags
(first, has_next, terminated, truncated, valid)."""


def conv_side(screen_size: int) -> int:
    """Side of the last convolution's output for a square input of `screen_size` pixels."""
    side = screen_size
    for _, kernel, stride in NATURE_CONVS:
        side = (side - kernel) // stride + 1  # a 'valid' (unpadded) convolution
    return side


def min_screen_size() -> int:
    """The smallest square input the three convolutions accept (36 pixels)."""
    size = 1
    while conv_side(size) <= 0:
        size += 1
    return size


def min_capacity(num_envs: int, history_length: int, n_step: int = 1) -> int:
    """The smallest capacity a ring of `num_envs` envs can have: each env needs a window of
    `history_length + n_step` slots to hold a single n-step transition."""
    return (history_length + n_step) * num_envs


def ring_bytes(capacity: int, num_envs: int, screen_size: int, prioritized: bool = False) -> int:
    """Bytes a full frame ring holds: one frame and its metadata per slot (capacity //
    num_envs slots per env), and a prioritized ring's sum tree (2 * L float64 nodes, L the
    smallest power of two at least the slots)."""
    slots = (capacity // num_envs) * num_envs
    tree = 2 * (1 << max(slots - 1, 0).bit_length()) * 8 if prioritized else 0
    return slots * (screen_size * screen_size + SLOT_METADATA_BYTES) + tree
