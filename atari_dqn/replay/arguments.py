"""What callers hand the frame ring, checked at its boundary: shapes, dtypes and ranges.

Each check returns its argument in the form the kernels take (contiguous, of their dtype),
or raises a ReplayError that names the argument, what was expected and what came.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from atari_dqn.errors import ReplayError


def check_batch_size(batch_size: Any) -> int:
    """`batch_size` as an int, or a ReplayError when it is not a positive integer."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ReplayError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def check_settings(n_step: Any, discount: Any, exponent: Any, epsilon: Any) -> None:
    """n_step an integer >= 1, discount (gamma) in [0, 1], priority exponent (alpha) >= 0,
    priority epsilon > 0."""
    if not isinstance(n_step, (int, np.integer)) or n_step < 1:
        raise ReplayError(f"n_step must be an integer >= 1, got {n_step!r}")
    if not 0.0 <= discount <= 1.0:
        raise ReplayError(f"discount (gamma) must be in [0, 1], got {discount!r}")
    if not (exponent >= 0.0 and epsilon > 0.0):
        raise ReplayError(
            f"priority_exponent must be >= 0 and priority_epsilon > 0, got {exponent!r} and "
            f"{epsilon!r}"
        )


def as_frames(name: str, frames: Any, count: int, frame_shape: tuple[int, int]) -> np.ndarray:
    """`frames` checked to be uint8[count, H, W], as a C-contiguous array."""
    frames = np.asarray(frames)
    expected = (count, *frame_shape)
    if frames.dtype != np.uint8 or frames.shape != expected:
        raise ReplayError(
            f"{name}: expected uint8{list(expected)}, got {frames.dtype}{list(frames.shape)} "
            "(one preprocessed grayscale frame per env)"
        )
    return np.ascontiguousarray(frames)


def as_vector(name: str, values: Any, count: int, dtype: type) -> np.ndarray:
    """`values` checked to be a length-`count` vector, converted to `dtype` (integers only
    for an integer dtype)."""
    values = np.asarray(values)
    if values.shape != (count,):
        raise ReplayError(f"{name}: expected shape ({count},), got {values.shape}")
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(values.dtype, np.integer):
        raise ReplayError(f"{name}: expected integers, got dtype {values.dtype}")
    return np.ascontiguousarray(values, dtype=dtype)


def as_env_ids(env_ids: Any, num_envs: int) -> np.ndarray:
    """`env_ids` checked to be distinct env indices in [0, num_envs), as int64[k]."""
    env_ids = np.asarray(env_ids)
    if env_ids.ndim != 1 or not np.issubdtype(env_ids.dtype, np.integer):
        raise ReplayError(f"env_ids: expected a 1-d integer array, got {env_ids!r}")
    if np.any((env_ids < 0) | (env_ids >= num_envs)):
        raise ReplayError(f"env_ids {env_ids.tolist()} out of range [0, {num_envs})")
    if np.unique(env_ids).size != env_ids.size:
        raise ReplayError(f"env_ids {env_ids.tolist()} lists an env twice")
    return env_ids.astype(np.int64)


def priority_update_problem(
    index: np.ndarray, td_abs: np.ndarray, drawn: np.ndarray, written: np.ndarray, slots: int
) -> str:
    """Why a priority update was refused (its kernel checks, this says which failed):
    indices (int64[B]) outside [0, N * slots), TD errors (float64[B]) not finite, or the
    write counts at the draw (int64[N]) past the ring's."""
    size = written.size * slots
    if index.size and (index.min() < 0 or index.max() >= size):
        return f"update_priorities index outside [0, {size}): {index.tolist()}"
    if not np.all(np.isfinite(td_abs)):
        bad = int(np.sum(~np.isfinite(td_abs)))
        return (
            f"update_priorities: {bad} of the {td_abs.size} TD errors are NaN or infinite: the "
            "learner diverged, and a priority cannot be (a lower learner.learning_rate may help)"
        )
    return f"update_priorities: drawn {drawn.tolist()} is past the write counts {written.tolist()}"
