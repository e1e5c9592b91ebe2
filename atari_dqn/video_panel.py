"""What a video frame shows: the screen, and beside it the panel of Q-values and, for a
distributional network, the plot of a return distribution (`atari_dqn.video` films them).

The frame is the 210x160 screen scaled 2x, then the panel (320 x 420): the step's text and
a bar per Q(s, a) from a zero line, on one scale for the whole game; then, for a
distributional network, a column of 240 x 420 with the return distribution of the action
taken, a bar per atom on one scale for the whole game, and its mean (the action's Q-value)
as a line.
"""

from __future__ import annotations

import cv2
import numpy as np

SCALE = 2
SCREEN_WIDTH = 160 * SCALE
PANEL_WIDTH = 320
PLOT_WIDTH = 240  # a distributional network's return distribution, right of the panel
FRAME_SIZE = (210 * SCALE, SCREEN_WIDTH + PANEL_WIDTH)  # (height, width) = (420, 640)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
CHOSEN, OTHER, TEXT, RANDOM = (0, 165, 255), (150, 150, 150), (235, 235, 235), (60, 60, 230)
_BELOW_TEXT = 92  # the first row under a column's three lines of text (and a label)
# The distribution plot: its bars stand on _PLOT_BASE, at most _PLOT_HEIGHT tall.
_PLOT_BASE = FRAME_SIZE[0] - 40
_PLOT_HEIGHT = _PLOT_BASE - _BELOW_TEXT


def panel_rows(count: int) -> tuple[int, int]:
    """(top, height) of the panel's rows, one per action (18 at most, ale-py's full set)."""
    return _BELOW_TEXT, min(30, (FRAME_SIZE[0] - _BELOW_TEXT - 4) // count)


# The rows: the action's name, its bar, its value. Their text is as large as the rows of all
# 18 actions allow, to stay legible where a page shows the frame smaller (`video.frame_strip`).
_ROW_FONT = 0.5
_BAR_LEFT = 128  # right of the longest name, DOWNRIGHTFIRE
_VALUE_LEFT = PANEL_WIDTH - 62  # room for -99.999, right-aligned
_BAR_SPAN = _VALUE_LEFT - 8 - _BAR_LEFT


def bar_axis(low: float, high: float) -> tuple[int, float]:
    """(column of Q = 0 in the panel, pixels per unit of Q) for a game whose Q-values lie in
    [low, high]. One scale for the whole game, spanning zero as well as its values, so that
    a bar's length is its value's size: bars that started at the lowest value would make
    0.053 an empty bar beside a full one of 0.067."""
    low, high = min(low, 0.0), max(high, 0.0)
    pixels_per_unit = (_BAR_SPAN - 1) / max(high - low, 1e-6)  # the zero line takes a column
    return _BAR_LEFT + round(-low * pixels_per_unit), pixels_per_unit


def blank_frame(
    names: list[str], axis: tuple[int, float], support: np.ndarray | None = None
) -> np.ndarray:
    """A frame with what every frame of a game shares: the action names, and the bars' zero
    line (labelled 0) from `bar_axis`, in the panel; with a distributional network's
    `support`, the distribution plot's column, its base line and the support's ends."""
    width = FRAME_SIZE[1] + (PLOT_WIDTH if support is not None else 0)
    frame = np.zeros((FRAME_SIZE[0], width, 3), np.uint8)
    if support is not None:
        plot = frame[:, FRAME_SIZE[1] :]
        left, right = _plot_columns(len(support))
        cv2.line(plot, (left, _PLOT_BASE + 1), (right, _PLOT_BASE + 1), TEXT, 1)
        ticks = [(left, support[0]), (right - 24, support[-1])]
        if support[0] < 0 < support[-1]:  # and where a return of 0 lies
            ticks.append((_plot_column_of(0.0, support) - 4, 0))
        for x, value in ticks:
            cv2.putText(plot, f"{value:g}", (x, _PLOT_BASE + 20), _FONT, 0.4, TEXT, 1, cv2.LINE_AA)
    panel = frame[:, SCREEN_WIDTH:]  # a view: OpenCV draws into the frame
    top, row = panel_rows(len(names))
    for i, name in enumerate(names):
        cv2.putText(
            panel, name, (8, top + i * row + row - 6), _FONT, _ROW_FONT, TEXT, 1, cv2.LINE_AA
        )
    zero_x = axis[0]
    cv2.line(panel, (zero_x, top - 2), (zero_x, top + len(names) * row - 2), TEXT, 1)
    cv2.putText(panel, "0", (zero_x - 4, top - 5), _FONT, 0.4, TEXT, 1, cv2.LINE_AA)
    return frame


def draw_panel(
    panel: np.ndarray,
    q: np.ndarray,
    axis: tuple[int, float],
    action: int,
    explored: bool,
    header: str,
    name: str,
) -> None:
    """The step's text and a bar per Q(s, a) on `axis` (`bar_axis`): from the zero line
    that `blank_frame` drew, to its right for a positive value and to its left for a negative
    one, never over the line."""
    cv2.putText(panel, header, (8, 22), _FONT, 0.5, TEXT, 1, cv2.LINE_AA)
    cv2.putText(panel, f"action: {name}", (8, 46), _FONT, 0.5, TEXT, 1, cv2.LINE_AA)
    how, colour = ("random (epsilon)", RANDOM) if explored else ("greedy", CHOSEN)
    cv2.putText(panel, how, (8, 70), _FONT, 0.5, colour, 1, cv2.LINE_AA)
    top, row = panel_rows(len(q))
    zero_x, pixels_per_unit = axis
    for i, value in enumerate(q):
        y = top + i * row
        length = round(abs(float(value)) * pixels_per_unit)
        if length:
            side = 1 if value > 0 else -1
            cv2.rectangle(
                panel,
                (zero_x + side, y),
                (zero_x + side * length, y + row - 4),
                CHOSEN if i == action else OTHER,
                -1,
            )
        text = f"{value:.3f}"
        width = cv2.getTextSize(text, _FONT, _ROW_FONT, 1)[0][0]
        right_aligned = (PANEL_WIDTH - 6 - width, y + row - 6)  # the decimal points in line
        cv2.putText(panel, text, right_aligned, _FONT, _ROW_FONT, TEXT, 1, cv2.LINE_AA)


def _plot_columns(atoms: int) -> tuple[int, int]:
    """(left, right) columns of the plot's bars, one of `atoms` per atom, centred."""
    span = (PLOT_WIDTH - 16) // atoms * atoms
    left = (PLOT_WIDTH - span) // 2
    return left, left + span - 1


def _plot_column_of(value: float, support: np.ndarray) -> int:
    """The plot's column of a return `value` within [support[0], support[-1]]."""
    left, right = _plot_columns(len(support))
    return left + round((value - support[0]) / (support[-1] - support[0]) * (right - left))


def plot_scale(distributions: list[np.ndarray]) -> float:
    """Pixels per unit of probability for a game's distribution plots: its most probable
    atom's bar fills the plot's height."""
    highest = max(float(np.max(p)) for p in distributions)
    return _PLOT_HEIGHT / max(highest, 1e-6)


def draw_distribution(
    plot: np.ndarray, probabilities: np.ndarray, support: np.ndarray, scale: float, name: str
) -> None:
    """The return distribution of the step's action in the plot's column: a bar per atom of
    `support` standing on the base line, `scale` pixels per unit of probability (one scale
    for the whole game), and the mean, the action's Q-value, as a line across the bars."""
    probabilities = probabilities.astype(np.float32)
    mean = float(probabilities @ support)
    cv2.putText(plot, "return distribution", (8, 22), _FONT, 0.5, TEXT, 1, cv2.LINE_AA)
    cv2.putText(plot, f"of {name}", (8, 46), _FONT, 0.5, TEXT, 1, cv2.LINE_AA)
    cv2.putText(plot, f"mean {mean:.3f}", (8, 70), _FONT, 0.5, CHOSEN, 1, cv2.LINE_AA)
    left, right = _plot_columns(len(support))
    width = (right + 1 - left) // len(support)
    for i, p in enumerate(probabilities):
        height = round(float(p) * scale)
        if height:
            x = left + i * width
            cv2.rectangle(
                plot, (x, _PLOT_BASE - height + 1), (x + width - 2, _PLOT_BASE), OTHER, -1
            )
    x = _plot_column_of(mean, support)
    cv2.line(plot, (x, _PLOT_BASE - _PLOT_HEIGHT), (x, _PLOT_BASE), CHOSEN, 1)
