"""Each env of a vector env plays its games on two emulators in turn (env.block.SpareGames):
starting the next game ahead of time only moves the reset's work, never the frames."""

from __future__ import annotations

import numpy as np
from env_helpers import assert_same_trace, game_overs, spare_env, trace

SPARE_ACTIONS = np.random.default_rng(1).integers(4, size=900)


def test_a_spare_emulator_only_moves_the_reset_work_never_the_frames() -> None:
    eager = spare_env("Breakout", seed=3)
    lazy = spare_env("Breakout", seed=3)
    prepared = []
    reference = trace(eager, SPARE_ACTIONS, lambda t: prepared.append(eager.games.prepare()))
    assert_same_trace(reference, trace(lazy, SPARE_ACTIONS))  # started at game over instead
    assert game_overs(reference) >= 3 and sum(prepared) >= 3
    assert not eager.games.prepare()  # nothing left to start


def test_each_game_on_a_spare_emulator_starts_with_an_ale_reset_noops_and_fire() -> None:
    env = spare_env("Breakout", seed=5)
    _, info = env.reset()
    emulators, noops, rng = [env.ale], [info["noops"]], np.random.default_rng(0)
    while len(noops) < 6:
        _, _, terminated, _, info = env.step(int(rng.integers(4)))
        if terminated:
            if info["game_over"]:
                env.games.prepare()
            _, reset_info = env.reset()
            if info["game_over"]:
                noops.append(reset_info["noops"])
                emulators.append(env.ale)
                # a fresh game: its no-ops, then one FIRE step of 4 frames
                assert env.ale.getEpisodeFrameNumber() == reset_info["noops"] + 4
                assert reset_info["lives"] == 5
    assert all(0 <= n <= 30 for n in noops) and len(set(noops)) >= 3
    assert emulators[0] is not emulators[1] and emulators[0] is emulators[2]  # games alternate


def test_reseeding_a_spare_emulator_env_restarts_both_its_emulators() -> None:
    used = spare_env("Breakout", seed=1)
    assert game_overs(trace(used, SPARE_ACTIONS[:400])) >= 1
    fresh = spare_env("Breakout", seed=3)
    first, reseeded = fresh.reset(), used.reset(seed=3)
    np.testing.assert_array_equal(first[0], reseeded[0])
    assert first[1] == reseeded[1]
    again = trace(used, SPARE_ACTIONS, reset=False)
    assert_same_trace(again, trace(fresh, SPARE_ACTIONS, reset=False))
    assert game_overs(again) >= 3


def test_a_spare_emulator_env_resumes_exactly_from_its_state() -> None:
    env = spare_env("Breakout", seed=8)
    reference: list = []
    saved = []  # (step, records so far, state)

    def save(t: int) -> None:
        if t % 97 == 0:  # with the spare's next game both started and not
            saved.append((t, len(reference), env.get_state(), env.games.pending))
            if t % 2:
                env.games.prepare()

    trace(env, SPARE_ACTIONS, save, out=reference)
    assert {pending for *_, pending in saved} == {True, False}
    for t, n, state, _ in saved:
        resumed = spare_env("Breakout", seed=8)
        resumed.set_state(state)
        assert_same_trace(trace(resumed, SPARE_ACTIONS[t + 1 :], reset=False), reference[n:])
