"""A naive proportional sampler to test the sum tree against: a plain array of priorities,
drawn with `np.searchsorted` on its cumulative sum from the same uniform points, which a
pure-Python splitmix64 computes from the same state as the kernels."""

from __future__ import annotations

import numpy as np

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment
MUL1 = 0xBF58476D1CE4E5B9
MUL2 = 0x94D049BB133111EB
ALL_ONES = MASK  # the draw whose uniform is the largest below 1, 1 - 2**-53


def splitmix64(state: int) -> tuple[int, int]:
    """(next state, output) of one splitmix64 step."""
    state = (state + GOLDEN) & MASK
    z = ((state ^ (state >> 30)) * MUL1) & MASK
    z = ((z ^ (z >> 27)) * MUL2) & MASK
    return state, z ^ (z >> 31)


def uniform(state: int) -> tuple[int, float]:
    """(next state, uniform float in [0, 1)) from the top 53 bits of one output."""
    state, out = splitmix64(state)
    return state, (out >> 11) * 2.0**-53


def _unxorshift(x: int, shift: int) -> int:
    """The y with y ^ (y >> shift) == x: each pass fixes `shift` more high bits."""
    y = x
    for _ in range(64 // shift + 1):
        y = x ^ (y >> shift)
    return y


def state_drawing(output: int, draws_before: int = 0) -> int:
    """The state whose draw number `draws_before` (0-based) outputs `output`: splitmix64's
    mix is a bijection (xorshifts and odd multipliers), so it runs backwards."""
    z = _unxorshift(output, 31)
    z = (z * pow(MUL2, -1, 1 << 64)) & MASK
    z = _unxorshift(z, 27)
    z = (z * pow(MUL1, -1, 1 << 64)) & MASK
    z = _unxorshift(z, 30)
    return (z - (draws_before + 1) * GOLDEN) & MASK


class NaiveTree:
    """Priorities in a plain float64 array, with the running maximum of Algorithm 1."""

    def __init__(self, size: int) -> None:
        self.priorities = np.zeros(size, np.float64)
        self.max_priority = 1.0

    def set(self, indices, values) -> None:
        for i, v in zip(indices, values, strict=True):  # in order: the last write wins
            self.priorities[i] = v
            self.max_priority = max(self.max_priority, float(v))

    def probabilities(self) -> np.ndarray:
        return self.priorities / self.priorities.sum()

    def sample(self, state: int, batch_size: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(indices, probabilities, next state): one point per equal segment of [0, total),
        placed with searchsorted; a point at or past the total takes the last positive leaf."""
        cumulative = np.cumsum(self.priorities)
        total = cumulative[-1]
        last_positive = int(np.flatnonzero(self.priorities)[-1])
        indices = np.empty(batch_size, np.int64)
        for b in range(batch_size):
            state, u = uniform(state)
            i = int(np.searchsorted(cumulative, (b + u) * (total / batch_size), side="right"))
            indices[b] = min(i, last_positive)
        return indices, self.priorities[indices] / total, state


def importance_weights(probabilities, n: int, beta: float) -> list[float]:
    """Algorithm 1, line 10, element by element: (N * P(j)) ** -beta / max_i w_i."""
    weights = [(n * float(p)) ** -beta for p in probabilities]
    return [w / max(weights) for w in weights]
