"""A run's parts, built once: from the config for a new run, from its checkpoint for a
resumed one, and the acting policy alone for an evaluation.

As DQN Zoo's `run_atari.py` does, every part the loop uses is made here and handed to it
(`atari_dqn.parts.Parts`); a resumed run is built once, from its checkpoint, not built new
and then patched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from atari_dqn import checkpoint as ckpt
from atari_dqn.config import Config
from atari_dqn.env.vector import VectorEnv
from atari_dqn.errors import CheckpointError
from atari_dqn.learner import Learner
from atari_dqn.network import NatureCNN, make_support
from atari_dqn.parts import Parts, TrainState
from atari_dqn.policy import EpsilonGreedy
from atari_dqn.replay.feed import Prefetcher, Sampler
from atari_dqn.replay.ring import FrameRing
from atari_dqn.replay.ringfile import load_ring
from atari_dqn.rundir import RunDir
from atari_dqn.runtime import Runtime


def _network(cfg: Config, n_actions: int) -> NatureCNN:
    # Its own generator: the init depends on the seed only, not on torch's global RNG.
    generator = torch.Generator().manual_seed(cfg.seed)
    learner = cfg.learner
    support = (
        make_support(learner.v_min, learner.v_max, learner.num_atoms)
        if learner.distributional
        else None
    )
    return NatureCNN(
        n_actions,
        cfg.replay.history_length,
        cfg.env.screen_size,
        dueling=learner.dueling,
        support=support,
        noise_sigma0=learner.noisy_sigma0 if learner.noisy else None,
        generator=generator,
    )


def _ring_spec(cfg: Config) -> dict[str, Any]:
    """What a ring of `cfg` is built from (`FrameRing.spec()`): what a saved one must match."""
    size = cfg.env.screen_size
    return FrameRing.make_spec(
        cfg.replay.capacity,
        cfg.loop.num_envs,
        cfg.replay.history_length,
        (size, size),
        n_step=cfg.learner.n_step,
        prioritized=cfg.replay.prioritized,
    )


def _ring_settings(cfg: Config) -> dict[str, float]:
    """How a ring of `cfg` samples, which a resumed run may change (`FrameRing.settings()`)."""
    replay = cfg.replay
    return {
        "discount": cfg.learner.discount,
        "priority_exponent": replay.priority_exponent,
        "priority_epsilon": replay.priority_epsilon,
    }


def _ring(cfg: Config) -> FrameRing:
    return FrameRing(**_ring_spec(cfg), **_ring_settings(cfg), seed=cfg.seed)


def policy(
    cfg: Config,
    runtime: Runtime,
    network: NatureCNN,
    noise: torch.Generator | None = None,
) -> EpsilonGreedy:
    """The epsilon-greedy policy over `network` (on the runtime's device), computing its
    Q-values with the learner config's maths, but in fp32 on a CPU (`bf16_autocast`'s
    docstring says why); a noisy network acts with new noise from `noise` at each step, or
    with its mean weights when `noise` is None."""
    learner = cfg.learner
    return EpsilonGreedy(
        network,
        network.n_actions,
        runtime,
        bf16=learner.bf16_autocast and runtime.on_cuda,
        tf32=learner.tf32,
        noise=noise,
    )


def learner(cfg: Config, runtime: Runtime, n_actions: int) -> Learner:
    """A learner of a new network for `n_actions` actions, initialised from `cfg.seed`
    (and, for noisy layers or augmented batches, its generator seeded from it)."""
    draws = cfg.learner.noisy or cfg.learner.augmentation != "none"
    return Learner(
        _network(cfg, n_actions),
        cfg.learner,
        runtime,
        generator=runtime.generator(cfg.seed + 1) if draws else None,
        target_is_online=cfg.learner.target_update_steps <= cfg.loop.update_every_steps,
    )


def _assemble(
    cfg: Config,
    runtime: Runtime,
    envs: VectorEnv,
    ring: FrameRing,
    state: TrainState,
    pending: list[torch.Tensor] | None = None,
) -> Parts:
    torch.manual_seed(cfg.seed)
    learns = learner(cfg, runtime, envs.n_actions)
    batch_size = cfg.learner.batch_size
    feed = (Prefetcher if runtime.prefetch else Sampler)(
        ring,
        batch_size,
        runtime.torch_device,
        pending=pending,
        destination=learns.input_buffers(batch_size, ring.window),
    )
    acts = policy(cfg, runtime, learns.online, noise=learns.noise)
    return Parts(envs, ring, learns, acts, feed, state)


def _envs(cfg: Config, runtime: Runtime) -> VectorEnv:
    # With overlap every env block runs in a worker process, so the updates can run here.
    return VectorEnv(cfg.env, cfg.loop.num_envs, seed=cfg.seed, in_process=not runtime.overlap)


def new_parts(cfg: Config, runtime: Runtime) -> Parts:
    """The parts of a new run of `cfg`."""
    envs = _envs(cfg, runtime)
    try:
        return _assemble(cfg, runtime, envs, _ring(cfg), TrainState.new(cfg.seed))
    except BaseException:
        envs.close()
        raise


def parts_from_checkpoint(
    cfg: Config, runtime: Runtime, run: RunDir, say: Callable[[str], None]
) -> tuple[Parts, int]:
    """The parts of `run` as its checkpoint left them, and the checkpoint's agent step.

    Without a saved replay (`checkpoint.save_replay=false`) every env starts a new game and
    the ring refills for `loop.replay_start_steps` before learning resumes."""
    state = ckpt.load_state(run)
    ring = _saved_ring(cfg, run, say)
    envs = _envs(cfg, runtime)
    try:
        ckpt.check_compatible(state, game=cfg.env.game, n_actions=envs.n_actions, run=run)
        envs.set_state(state["envs"])
        progress = TrainState.new(cfg.seed)
        progress.load_state_dict(state)
        refilling = ring is None
        if refilling:
            ring = _ring(cfg)
            progress.learn_after_steps = progress.agent_steps + cfg.loop.replay_start_steps
            say(
                "the checkpoint has no replay (checkpoint.save_replay=false): refilling it "
                f"with {cfg.loop.replay_start_steps:,} agent steps before learning again"
            )
        parts = _assemble(cfg, runtime, envs, ring, progress, state["prefetch_pending"])
    except BaseException:
        envs.close()
        raise
    parts.envs_started = not refilling  # else each env starts a new game into the new ring
    parts.learner.load_state_dict(state["learner"])
    torch.set_rng_state(state["torch_rng"])
    return parts, progress.agent_steps


def _saved_ring(cfg: Config, run: RunDir, say: Callable[[str], None]) -> FrameRing | None:
    """The checkpoint's replay, checked to fit the run's config (None if it saved none)."""
    path = ckpt.replay_file(run)
    if path is None:
        if cfg.checkpoint.save_replay:
            raise CheckpointError(f"checkpoint in '{run}' has no replay file")
        return None
    say(f"loading the replay ({path.stat().st_size / 1e9:.2f} GB) from {path}")
    ring = load_ring(path, **_ring_settings(cfg))
    expected = _ring_spec(cfg)
    if ring.spec() != expected:
        raise CheckpointError(
            f"the checkpoint's replay in '{run}' is {ring.spec()}, but the run's "
            f"config makes {expected}: resume with the run's own replay.capacity, "
            "replay.history_length, replay.prioritized, learner.n_step, loop.num_envs and "
            "env.screen_size"
        )
    return ring


def evaluation_policy(cfg: Config, runtime: Runtime, state: dict[str, Any]) -> EpsilonGreedy:
    """The policy of a checkpoint's online network (`state` from `checkpoint.load_state`);
    a noisy network plays with its mean weights, as Dopamine's evaluation does."""
    network = _network(cfg, state["n_actions"])
    network.load_state_dict(state["learner"]["online"])
    return policy(cfg, runtime, runtime.place(network))
