"""DrQ's augmentation against a naive numpy reference written here: pad each stack by 4
pixels replicating its edges, crop 84x84 at the given corner, scale by the clipped factor."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from atari_dqn.augment import PAD, augment, draw_shifts, intensity, shift_on_host


def _reference(stacks: np.ndarray, offsets: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Dopamine's `drq_image_augmentation` as printed, one sample and one frame at a time."""
    out = np.empty(stacks.shape, np.float32)
    _, _, h, w = stacks.shape
    for b in range(stacks.shape[0]):
        factor = np.float32(1.0 + 0.05 * np.clip(normals[b], -2.0, 2.0))
        for c in range(stacks.shape[1]):
            padded = np.pad(stacks[b, c], PAD, mode="edge")
            y, x = offsets[b]
            out[b, c] = padded[y : y + h, x : x + w].astype(np.float32) * factor
    return out


def _shifted_on_host(stacks: torch.Tensor, offsets: torch.Tensor, normals: torch.Tensor):
    return intensity(shift_on_host(stacks, offsets), normals)


@pytest.mark.parametrize("augmented", [augment, _shifted_on_host], ids=["torch", "numba"])
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 5),
    height=st.integers(9, 20),
    width=st.integers(9, 20),
    normals=st.lists(st.floats(-4.0, 4.0, width=32), min_size=5, max_size=5),
)
def test_augment_equals_pad_crop_and_scale_pixel_for_pixel(
    augmented, seed, batch, height, width, normals
):
    rng = np.random.default_rng(seed)
    # The stacks as a batch holds them: views of the first 4 frames of longer windows.
    window = rng.integers(0, 256, (batch, 6, height, width), dtype=np.uint8)
    stacks = window[:, :4]
    offsets = rng.integers(0, 2 * PAD + 1, (batch, 2))  # every corner the pad allows
    offsets[0] = (0, 2 * PAD) if batch > 1 else offsets[0]  # the extremes, both sides
    normal = np.asarray(normals[:batch], np.float32)
    got = augmented(
        torch.from_numpy(window)[:, :4], torch.from_numpy(offsets), torch.from_numpy(normal)
    )
    np.testing.assert_allclose(got.numpy(), _reference(stacks, offsets, normal), rtol=1e-6)


def test_the_centre_offset_and_a_factor_of_one_give_the_frames_back():
    stacks = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    out = augment(stacks, torch.full((3, 2), PAD), torch.zeros(3))
    assert torch.equal(out, stacks.float())


def test_draws_are_per_sample_within_dopamines_range_and_apart_for_s_and_s_prime():
    offsets, normals = draw_shifts(torch.Generator().manual_seed(0), 4096, torch.device("cpu"))
    assert offsets.shape == (2, 4096, 2) and normals.shape == (2, 4096)
    # Dopamine's randint(0, padded - 84): 0..7, all of them, rows and columns alike.
    assert set(offsets.unique().tolist()) == set(range(2 * PAD))
    assert not torch.equal(offsets[0], offsets[1]) and not torch.equal(normals[0], normals[1])
    assert normals.std().item() == pytest.approx(1.0, abs=0.05)
    again = draw_shifts(torch.Generator().manual_seed(0), 4096, torch.device("cpu"))
    assert torch.equal(again[0], offsets) and torch.equal(again[1], normals)
