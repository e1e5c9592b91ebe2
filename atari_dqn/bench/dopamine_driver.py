"""Times Dopamine's own DrQ(ε) learning phase, for `bench atari100k`.

Run by Dopamine's Python from its source tree (it imports nothing of ours):

    python dopamine_driver.py --game Breakout --steps 6000 --timed-from-update 800 BASE_DIR

It loads `labs/atari_100k/configs/DrQ_eps.gin` with the game and one training phase of
`--steps` agent steps, and runs that phase alone (no evaluation) in Dopamine's
`DataEfficientAtariRunner`. The agent runs as shipped; its update method is wrapped only to
read the clock and the agent's own step counter (`training_steps`) when the update
numbered `--timed-from-update` (counted from 0) starts, so that its compilation is not
timed. Prints `RESULT {json}`: agent steps per second from there to the end of the phase,
the steps and updates counted, and the versions of jax and Dopamine's source.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import time

GIN = "dopamine/labs/atari_100k/configs/DrQ_eps.gin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--game", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--timed-from-update", type=int, default=0)
    parser.add_argument("base_dir")
    args = parser.parse_args()

    import jax
    from dopamine.discrete_domains import iteration_statistics, run_experiment
    from dopamine.labs.atari_100k import atari_100k_rainbow_agent, atari_100k_runner, train

    run_experiment.load_gin_configs(
        [GIN],
        [
            f"atari_lib.create_atari_environment.game_name = '{args.game}'",
            "Runner.num_iterations = 1",
            f"Runner.training_steps = {args.steps}",
        ],
    )
    agent_class = atari_100k_rainbow_agent.Atari100kRainbowAgent
    update = agent_class._training_step_update
    first: dict[str, float] = {}
    updates = 0

    def timed_update(agent: object) -> object:
        nonlocal updates
        if updates == args.timed_from_update:
            first.update(clock=time.perf_counter(), steps=agent.training_steps, update=updates)
        updates += 1
        return update(agent)

    agent_class._training_step_update = timed_update
    make_agent = functools.partial(train.create_agent, seed=1, agent_name="DrQ_eps")
    runner = atari_100k_runner.DataEfficientAtariRunner(args.base_dir, make_agent)
    runner._run_train_phase(iteration_statistics.IterationStatistics())
    end, steps = time.perf_counter(), runner._agent.training_steps
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    result = {
        "steps_per_second": (steps - first["steps"]) / (end - first["clock"]),
        "steps_timed": steps - first["steps"],
        "updates_timed": updates - first["update"],
        "timed_from_step": first["steps"],
        "versions": {"jax": jax.__version__, "dopamine_commit": commit or "not a git checkout"},
    }
    print("RESULT", json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
