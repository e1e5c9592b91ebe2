"""Typed, frozen run configuration: what each setting means, its unit and its rules.

Every count is in AGENT STEPS (one action = `env.frame_skip` emulator frames) unless its
name ends in `_frames`. The defaults are the Nature paper's values (Mnih et al. 2015,
Extended Data Table 1, as run by DeepMind's code); `configs/nature.yaml` restates each one
with its citation, and `atari_dqn.configfile` reads such files and `key=value` overrides.

Every rule a value must satisfy is checked here, when the config is built, naming the key:
a section checks its own fields, and `Config` the rules that tie sections together. The
rest of the code takes sections whole and trusts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from atari_dqn.errors import ConfigError
from atari_dqn.games import game_name
from atari_dqn.sections import Section, check_range, fixed, not_experiment
from atari_dqn.shapes import min_capacity, min_screen_size


@dataclass(frozen=True)
class EnvConfig(Section):
    """The Atari environment and its preprocessing (Methods, "Preprocessing")."""

    NAME = "env"
    KEY_RANGES = {
        "frame_skip": "positive",
        "screen_size": "positive",
        "max_episode_frames": "positive",
        "noop_max": "non_negative",
        "repeat_action_probability": "probability",
    }

    game: str = fixed("Breakout")
    """Game name: `Breakout`, `breakout` or `ALE/Breakout-v5` (stored as `Breakout`)."""
    frame_skip: int = fixed(4)
    """Emulator frames per agent step; the action is repeated on each."""
    max_pool_frames: bool = fixed(True)
    """Max over the last two raw frames of a step (removes sprite flicker)."""
    screen_size: int = fixed(84)
    """Side of the square grayscale frame, in pixels (the replay and the network follow it)."""
    noop_max: int = fixed(30)
    """Up to this many random no-op actions after each reset."""
    fire_reset: bool = fixed(True)
    """Press FIRE after reset in games that wait for it."""
    terminal_on_life_loss: bool = fixed(True)
    """A lost life ends the episode for learning (never for scoring)."""
    clip_rewards: bool = fixed(True)
    """Rewards clipped to [-1, 1] for learning; the raw reward is kept in `info`."""
    max_episode_frames: int = fixed(108_000)
    """Training episode cap in emulator frames (30 minutes at 60 Hz)."""
    repeat_action_probability: float = fixed(0.0)
    """Sticky actions (0.0 in the Nature paper; 0.25 per Machado et al. 2018)."""
    full_action_space: bool = fixed(False)
    """All 18 actions instead of the game's minimal set."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "game", game_name(self.game))


@dataclass(frozen=True)
class ReplayConfig(Section):
    """The frame-ring replay memory (Methods, "Training details": experience replay)."""

    NAME = "replay"
    KEY_RANGES = {
        "history_length": "positive",
        "priority_exponent": "non_negative",
        "importance_exponent_start": "probability",
        "priority_epsilon": "positive",
    }

    capacity: int = fixed(1_000_000)
    """Transitions stored, summed over all envs."""
    history_length: int = fixed(4)
    """Frames stacked into one observation."""
    prefetch: Literal["auto", "always", "never"] = not_experiment("auto")
    """Sample the next batch in a background thread while the learner runs. `auto`: on a GPU
    only; on a CPU the thread competes with torch's for the same cores (-8% on 2 cores)."""
    prioritized: bool = fixed(False)
    """Proportional prioritized replay (Schaul et al. 2016): draw transitions with
    probability proportional to priority ** `priority_exponent`, a priority being the last
    |TD error| (+ `priority_epsilon`), a new transition's the largest so far; correct the
    bias with importance-sampling weights. False: uniform, as the Nature paper."""
    priority_exponent: float = 0.6
    """alpha: how much the priorities count (0 is uniform); 0.6, Schaul et al.'s for Atari."""
    importance_exponent_start: float = 0.4
    """beta at replay start, annealed linearly to 1 at loop.total_steps; 0.4, Schaul et al.'s."""
    priority_epsilon: float = 1e-6
    """Added to |TD error| so that no sampleable transition's priority is 0."""


@dataclass(frozen=True)
class LearnerConfig(Section):
    """The Q-network, its loss and its optimiser (Methods, "Model architecture")."""

    NAME = "learner"
    KEY_RANGES = {
        "batch_size": "positive",
        "target_update_steps": "positive",
        "discount": "probability",
        "learning_rate": "positive",
        "min_squared_gradient": "positive",
        "torch_threads": "non_negative",
        "n_step": "positive",
        "max_grad_norm": "non_negative",
        "noisy_sigma0": "non_negative",
    }

    batch_size: int = 32
    """Transitions per update."""
    discount: float = 0.99
    """Discount factor gamma."""
    loss: Literal["huber", "mse"] = "huber"
    """`huber` is the paper's clipping of the TD error to [-1, 1]."""
    optimizer: Literal["deepmind_rmsprop", "rmsprop", "adam"] = "deepmind_rmsprop"
    """`deepmind_rmsprop` adds the epsilon inside the square root, as DeepMind's code."""
    learning_rate: float = 0.00025
    """Optimiser step size."""
    gradient_momentum: float = 0.95
    """RMSProp running-mean decay of the gradient (centred RMSProp)."""
    squared_gradient_momentum: float = 0.95
    """RMSProp running-mean decay of the squared gradient."""
    min_squared_gradient: float = 0.01
    """Constant added to the second moment (inside the square root for DeepMind's RMSProp)."""
    target_update_steps: int = 10_000
    """Agent steps between copies of the online network into the target network. At most
    `loop.update_every_steps` (DrQ's 1): synced before every update, so the target is the
    online network itself (no copy is made)."""
    device: str = not_experiment("auto")
    """`auto` (CUDA when present, else CPU), `cpu`, `cuda` or `cuda:N`."""
    torch_threads: int = not_experiment(0)
    """Intra-op threads for torch on the CPU; 0 keeps torch's default."""
    channels_last: Literal["auto", "true", "false"] = not_experiment("auto")
    """Channels-last convolutions; `auto`: on the CPU only. On a CPU its kernels are faster
    for the same fp32 maths; on CUDA `bench learner` measured cuDNN's slower (0.79 against
    0.67 ms per captured update on an H200), and they sum in another order."""
    bf16_autocast: bool = False
    """bfloat16 autocast for forward passes (changes the maths; off for faithfulness). On a
    CPU, for the update's only: acting at batch 1 casts every weight anew at each step, and
    measured 1.8 ms a step in bf16 against 0.8 ms in fp32 (a 2-core Intel Xeon)."""
    compile: bool = not_experiment(True)
    """torch.compile the update step (fp32 as eager; falls back to eager if it fails).
    Not with a CUDA graph, which replaces it."""
    cuda_graph: Literal["auto", "true", "false"] = not_experiment("auto")
    """Capture the whole update (and greedy acting) as CUDA graphs, replayed each step;
    `auto`: when the learner is on CUDA."""
    tf32: bool = False
    """Let cuDNN and cuBLAS use TF32 on CUDA: faster, but not fp32 maths (drift: `bench
    learner`)."""
    n_step: int = fixed(1)
    """Steps of reward summed before bootstrapping (Rainbow's multi-step returns); 1 is the
    Nature paper's one-step target. Cut at an episode's end: a terminal step bootstraps
    nothing, a truncated one from its true last frame."""
    double_dqn: bool = False
    """Double DQN (van Hasselt et al. 2016): the online network picks the next action, the
    target network values it; False is the Nature target, the target network's max."""
    dueling: bool = fixed(False)
    """The dueling head (Wang et al. 2016): value and advantage streams after the
    convolutions, combined as V + A - mean(A); False is the Nature CNN's single head."""
    max_grad_norm: float = 0.0
    """Clip the gradient's global norm to this (10 in Wang et al. 2016); 0 turns it off."""
    distributional: bool = fixed(False)
    """C51 (Bellemare et al. 2017): a distribution over `num_atoms` returns in [v_min, v_max]
    per action, learnt by cross-entropy (also its priority); Q-values are the means."""
    num_atoms: int = fixed(51)
    """Atoms of the distributional head's support (51: C51)."""
    v_min: float = fixed(-10.0)
    """Smallest return on the support (-10: C51 with clipped rewards)."""
    v_max: float = fixed(10.0)
    """Largest return on the support."""
    noisy: bool = fixed(False)
    """Noisy networks (Fortunato et al. 2018): factorised Gaussian fully connected layers, new
    noise each acting step and each network pass of an update, none in evaluation."""
    noisy_sigma0: float = fixed(0.5)
    """The noisy layers' initial scale is sigma_0 / sqrt(inputs) (0.5: Fortunato et al.)."""
    augmentation: Literal["none", "drq"] = "none"
    """`drq`: each sampled stack (s and s' apart) shifted by up to 4 pixels with replicated
    edges, then scaled by 1 + 0.05 * clip(N(0, 1), -2, 2) (DrQ, Kostrikov et al. 2020, as
    Dopamine's Atari 100k agents); for learning only, never acting."""
    stop_on_nonfinite: bool = not_experiment(True)
    """Stop the run when the loss or a Q-value becomes NaN or infinite, keeping the last
    good checkpoint (checked at each logging interval and before each checkpoint)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("gradient_momentum", "squared_gradient_momentum"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"learner.{key} must be in [0, 1), got {value}")
        if self.num_atoms < 2 or self.v_min >= self.v_max:
            raise ConfigError(
                f"learner.num_atoms={self.num_atoms} must be at least 2 and learner.v_min="
                f"{self.v_min} below learner.v_max={self.v_max}"
            )


@dataclass(frozen=True)
class LoopConfig(Section):
    """The acting and learning schedule (Methods, "Training details")."""

    NAME = "loop"
    KEY_RANGES = {
        "num_envs": "positive",
        "update_every_steps": "positive",
        "total_steps": "non_negative",
        "replay_start_steps": "non_negative",
        "epsilon_decay_steps": "non_negative",
        "epsilon_start": "probability",
        "epsilon_end": "probability",
    }

    num_envs: int = fixed(1)
    """Environments stepped together; 1 is the paper's single stream."""
    total_steps: int = not_experiment(50_000_000)
    """Agent steps to train for, summed over envs (50M steps = 200M emulator frames)."""
    replay_start_steps: int = 50_000
    """Agent steps of uniformly random actions before learning starts."""
    update_every_steps: int = 4
    """Agent steps (summed over envs) per learner update: the paper's replay ratio."""
    epsilon_start: float = 1.0
    """Initial exploration rate."""
    epsilon_end: float = 0.1
    """Final exploration rate."""
    epsilon_decay_steps: int = 1_000_000
    """Agent steps over which epsilon falls linearly from start to end."""
    overlap: Literal["auto", "true", "false"] = not_experiment("auto")
    """Run the owed updates while worker processes step the envs (acting then uses weights
    one step's updates older); `false`: the plain order, step then learn. `auto`: on when
    the learner is on CUDA (on a 2-core CPU the updates and the envs share the cores, and
    it measured no faster)."""


@dataclass(frozen=True)
class EvalConfig(Section):
    """The paper's evaluation protocol (Methods, "Evaluation procedure")."""

    NAME = "eval"
    KEY_RANGES = {
        "interval_steps": "non_negative",
        "episodes": "positive",
        "num_envs": "non_negative",
        "epsilon": "probability",
        "max_episode_frames": "positive",
        "noop_max": "non_negative",
    }

    interval_steps: int = not_experiment(250_000)
    """Agent steps between evaluations during training; 0 turns them off."""
    episodes: int = not_experiment(30)
    """Full games per evaluation."""
    num_envs: int = not_experiment(0)
    """Games played at once, one batched forward pass per step; 0: `loop.num_envs`."""
    epsilon: float = 0.05
    """Exploration rate while evaluating."""
    max_episode_frames: int = 18_000
    """Evaluation episode cap in emulator frames (5 minutes at 60 Hz)."""
    noop_max: int = 30
    """Up to this many random no-op actions at the start of each evaluation game."""
    video: bool = not_experiment(False)
    """Film the median game of each evaluation during training (`videos/` of the run)."""
    benchmark: Literal["nature", "atari100k"] = "nature"
    """Whose published scores the report sets a run beside: the Nature paper's table, or the
    Atari 100k benchmark's published runs (Kaiser et al. 2020; Agarwal et al. 2021)."""
    scores_from: Literal["evaluation", "training"] = "evaluation"
    """Where a run's score comes from: `evaluation`, separate games with this protocol (the
    Nature paper), or `training`, its last 100 training games (Machado et al. 2018;
    Dopamine)."""


@dataclass(frozen=True)
class LoggingConfig(Section):
    """Where progress goes while training."""

    NAME = "logging"
    KEY_RANGES = {"interval_steps": "positive"}

    interval_steps: int = not_experiment(10_000)
    """Agent steps between rows of metrics.csv and TensorBoard scalars."""
    tensorboard: bool = not_experiment(True)
    """Write TensorBoard event files into the run directory."""
    progress: bool = not_experiment(True)
    """Show a live progress bar."""


@dataclass(frozen=True)
class CheckpointConfig(Section):
    """What is saved, and how often, so no work is lost."""

    NAME = "checkpoint"
    KEY_RANGES = {"interval_steps": "positive"}

    interval_steps: int = not_experiment(1_000_000)
    """Agent steps between checkpoints; one is also written at the end and on Ctrl-C."""
    save_replay: bool = not_experiment(True)
    """Include the replay memory, so a resumed run continues exactly."""


@dataclass(frozen=True)
class Config:
    """A whole run. Sections group the keys: `replay.capacity=100000` on the command line."""

    env: EnvConfig = field(default_factory=EnvConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    seed: int = not_experiment(0)
    """Seeds the envs, the replay sampler, the network and exploration."""

    def __post_init__(self) -> None:
        check_range("seed", self.seed, "non_negative")
        _check_across_sections(self)


def _check_across_sections(cfg: Config) -> None:
    """The rules that tie sections together; each names every key involved."""
    replay, loop = cfg.replay, cfg.loop
    n_step = cfg.learner.n_step
    needed = min_capacity(loop.num_envs, replay.history_length, n_step)
    if replay.capacity < needed:
        raise ConfigError(
            f"replay.capacity={replay.capacity} is too small: each of the "
            f"{loop.num_envs} env(s) (loop.num_envs) needs at least replay.history_length + "
            f"learner.n_step = {replay.history_length + n_step} transitions; raise "
            f"replay.capacity to {needed}"
        )
    smallest = min_screen_size()
    if cfg.env.screen_size < smallest:
        raise ConfigError(
            f"env.screen_size={cfg.env.screen_size} is too small for the Nature CNN's three "
            f"convolutions; use at least {smallest} (the paper uses 84)"
        )
    if loop.replay_start_steps < cfg.learner.batch_size:
        raise ConfigError(
            f"loop.replay_start_steps={loop.replay_start_steps} must be at least "
            f"learner.batch_size={cfg.learner.batch_size}"
        )


def _keys_where(flag: str, default: bool) -> frozenset[str]:
    """The dotted keys whose field metadata says `flag` (or whose default is `default`)."""
    keys = []
    for top in fields(Config):
        section = top.default_factory() if callable(top.default_factory) else None
        if section is None:
            keys += [top.name] if top.metadata.get(flag, default) else []
            continue
        keys += [f"{top.name}.{f.name}" for f in fields(section) if f.metadata.get(flag, default)]
    return frozenset(keys)


def experiment_keys() -> frozenset[str]:
    """Keys that define the experiment: runs that differ in any of them are not pooled.
    The others say how a run runs or which run it is (seed, budget)."""
    return _keys_where("experiment", True)


def fixed_on_resume_keys() -> frozenset[str]:
    """Keys a resume cannot change: what a checkpoint is made of (game, env settings, the
    replay's shape, the number of envs)."""
    return _keys_where("fixed_on_resume", False)
