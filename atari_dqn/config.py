"""Typed, frozen run configuration: YAML files plus dotted `key=value` overrides.

Every count is in AGENT STEPS (one action = `env.frame_skip` emulator frames) unless its
name ends in `_frames`. The defaults are the Nature paper's values (Mnih et al. 2015,
Extended Data Table 1, as run by DeepMind's code); `configs/nature.yaml` restates each one
with its citation.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A bad config file, key or value; the message names the problem and the fix."""


@dataclass(frozen=True)
class EnvConfig:
    """The Atari environment and its preprocessing (DESIGN.md, Environment)."""

    game: str = "Breakout"
    """Game name: `Breakout`, `breakout` or `ALE/Breakout-v5`."""
    frame_skip: int = 4
    """Emulator frames per agent step; the action is repeated on each."""
    max_pool_frames: bool = True
    """Max over the last two raw frames of a step (removes sprite flicker)."""
    screen_size: int = 84
    """Side of the square grayscale frame, in pixels."""
    noop_max: int = 30
    """Up to this many random no-op actions after each reset."""
    fire_reset: bool = True
    """Press FIRE after reset in games that wait for it."""
    terminal_on_life_loss: bool = True
    """A lost life ends the episode for learning (never for scoring)."""
    clip_rewards: bool = True
    """Rewards clipped to [-1, 1] for learning; the raw reward is kept in `info`."""
    max_episode_frames: int = 108_000
    """Training episode cap in emulator frames (30 minutes at 60 Hz)."""
    repeat_action_probability: float = 0.0
    """Sticky actions (0.0 in the Nature paper; 0.25 per Machado et al. 2018)."""
    full_action_space: bool = False
    """All 18 actions instead of the game's minimal set."""


@dataclass(frozen=True)
class ReplayConfig:
    """The frame-ring replay memory (DESIGN.md, Replay)."""

    capacity: int = 1_000_000
    """Transitions stored, summed over all envs."""
    history_length: int = 4
    """Frames stacked into one observation."""
    prefetch: Literal["auto", "always", "never"] = "auto"
    """Sample the next batch in a background thread while the learner runs. `auto`: on a GPU
    only; on a CPU the thread competes with torch's for the same cores (-8% on 2 cores)."""


@dataclass(frozen=True)
class LearnerConfig:
    """The Q-network, its loss and its optimiser (DESIGN.md, Learner)."""

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
    """Agent steps between copies of the online network into the target network."""
    device: str = "auto"
    """`auto` (CUDA when present, else CPU), `cpu`, `cuda` or `cuda:N`."""
    torch_threads: int = 0
    """Intra-op threads for torch on the CPU; 0 keeps torch's default."""
    channels_last: bool = True
    """Channels-last convolutions: faster kernels, the same fp32 maths."""
    bf16_autocast: bool = False
    """bfloat16 autocast for forward passes (changes the maths; off for faithfulness)."""
    compile: bool = True
    """torch.compile the update step (fp32 as eager; falls back to eager if it fails)."""


@dataclass(frozen=True)
class LoopConfig:
    """The acting and learning schedule (DESIGN.md, Loop)."""

    num_envs: int = 1
    """Environments stepped together; 1 is the paper's single stream."""
    total_steps: int = 50_000_000
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


@dataclass(frozen=True)
class EvalConfig:
    """The paper's evaluation protocol (Methods, "Evaluation procedure")."""

    interval_steps: int = 250_000
    """Agent steps between evaluations during training; 0 turns them off."""
    episodes: int = 30
    """Full games per evaluation."""
    epsilon: float = 0.05
    """Exploration rate while evaluating."""
    max_episode_frames: int = 18_000
    """Evaluation episode cap in emulator frames (5 minutes at 60 Hz)."""
    noop_max: int = 30
    """Up to this many random no-op actions at the start of each evaluation game."""


@dataclass(frozen=True)
class LoggingConfig:
    """Where progress goes while training."""

    interval_steps: int = 10_000
    """Agent steps between rows of metrics.csv and TensorBoard scalars."""
    tensorboard: bool = True
    """Write TensorBoard event files into the run directory."""
    progress: bool = True
    """Show a live progress bar."""


@dataclass(frozen=True)
class CheckpointConfig:
    """What is saved, and how often, so no work is lost."""

    interval_steps: int = 1_000_000
    """Agent steps between checkpoints; one is also written at the end and on Ctrl-C."""
    save_replay: bool = True
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
    seed: int = 0
    """Seeds the envs, the replay sampler, the network and exploration."""

    def __post_init__(self) -> None:
        _validate(self)


def _validate(cfg: Config) -> None:
    """Reject values that would fail later, deep inside a run, with the key that caused it."""
    positive = {
        "env.frame_skip": cfg.env.frame_skip,
        "env.screen_size": cfg.env.screen_size,
        "env.max_episode_frames": cfg.env.max_episode_frames,
        "replay.history_length": cfg.replay.history_length,
        "learner.batch_size": cfg.learner.batch_size,
        "learner.target_update_steps": cfg.learner.target_update_steps,
        "loop.num_envs": cfg.loop.num_envs,
        "loop.update_every_steps": cfg.loop.update_every_steps,
        "eval.episodes": cfg.eval.episodes,
        "eval.max_episode_frames": cfg.eval.max_episode_frames,
        "logging.interval_steps": cfg.logging.interval_steps,
        "checkpoint.interval_steps": cfg.checkpoint.interval_steps,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    non_negative = {
        "env.noop_max": cfg.env.noop_max,
        "loop.total_steps": cfg.loop.total_steps,
        "loop.replay_start_steps": cfg.loop.replay_start_steps,
        "loop.epsilon_decay_steps": cfg.loop.epsilon_decay_steps,
        "eval.interval_steps": cfg.eval.interval_steps,
        "eval.noop_max": cfg.eval.noop_max,
        "learner.torch_threads": cfg.learner.torch_threads,
        "seed": cfg.seed,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")
    probabilities = {
        "env.repeat_action_probability": cfg.env.repeat_action_probability,
        "loop.epsilon_start": cfg.loop.epsilon_start,
        "loop.epsilon_end": cfg.loop.epsilon_end,
        "eval.epsilon": cfg.eval.epsilon,
        "learner.discount": cfg.learner.discount,
    }
    for key, value in probabilities.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{key} must be in [0, 1], got {value}")
    min_capacity = cfg.replay.history_length + 1
    if cfg.replay.capacity < min_capacity * cfg.loop.num_envs:
        raise ConfigError(
            f"replay.capacity={cfg.replay.capacity} is too small: each of the "
            f"{cfg.loop.num_envs} env(s) needs at least history_length + 1 = {min_capacity} "
            "transitions"
        )


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _closest(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Check `value` against the field's type hint, converting the harmless cases."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(
                f"{key}: expected one of {', '.join(map(repr, choices))}, got {value!r}"
                + _closest(str(value), [str(c) for c in choices])
            )
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        # `1e6` reads as a float (or, in YAML 1.1, a string); accept it when it is whole.
        try:
            as_float = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            as_float = None
        if as_float is not None and as_float.is_integer():
            return int(as_float)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    elif hint is str:
        return str(value)
    raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r} ({type(value).__name__})")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """Make dataclass `cls` from a nested dict, naming any unknown key and its closest match."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for name, value in values.items():
        if name not in names:
            where = f"section '{prefix.rstrip('.')}'" if prefix else "the top level"
            raise ConfigError(
                f"unknown config key '{prefix}{name}'{_closest(str(name), names)} "
                f"(valid keys in {where}: {', '.join(names)})"
            )
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(f"{prefix}{name}", hint, value)
    return cls(**kwargs)


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"'{key}': '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn `["replay.capacity=100000", ...]` into a nested dict (values read as YAML)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"override '{item}' is not of the form key=value (e.g. replay.capacity=100000)"
            )
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
    return tree


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(values: dict[str, Any]) -> Config:
    """Build a Config from nested plain values, checking every key and type."""
    try:
        return _build(Config, values, "")
    except TypeError as exc:  # a dataclass rejected its arguments
        raise ConfigError(str(exc)) from exc


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    game: str | None = None,
) -> Config:
    """Read a YAML config (or the defaults), then apply `key=value` overrides and `game`."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file '{path}' not found (the ones shipped are in configs/)")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from exc
    values = _merge(values, parse_overrides(overrides or []))
    if game is not None:
        values = _merge(values, {"env": {"game": game}})
    return from_dict(values)


def to_dict(cfg: Config) -> dict[str, Any]:
    """Nested plain values, ready for YAML or JSON."""
    return dataclasses.asdict(cfg)


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML, as written into each run directory."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def valid_keys() -> list[str]:
    """Every dotted key a config may set, for help texts."""
    keys = []
    for name, hint in _section_types().items():
        if dataclasses.is_dataclass(hint):
            keys += [f"{name}.{f.name}" for f in dataclasses.fields(hint)]
        else:
            keys.append(name)
    return keys
