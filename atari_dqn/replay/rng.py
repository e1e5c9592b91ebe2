"""The replay's random numbers: splitmix64 (Steele et al. 2014) on one uint64 of state.

The state lives in a uint64[1] array that the caller owns and saves (the ring's `rng`), so a
restored replay draws the same numbers. Inlined into the kernels that call them; uint64
arithmetic wraps in numba, as the generator needs.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, inline="always")
def next_u64(rng: np.ndarray) -> np.uint64:
    """The next uint64 of the stream whose state is `rng[0]` (advanced in place)."""
    z = rng[0] + np.uint64(0x9E3779B97F4A7C15)
    rng[0] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(nogil=True, cache=True, inline="always")
def uniform(rng: np.ndarray) -> float:
    """Uniform float in [0, 1): the top 53 bits of one draw, scaled by 2**-53."""
    return float(next_u64(rng) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(nogil=True, cache=True, inline="always")
def below(rng: np.ndarray, n: int) -> int:
    """Uniform integer in [0, n): one `uniform` scaled (bias below n / 2**53)."""
    return min(int(uniform(rng) * n), n - 1)
