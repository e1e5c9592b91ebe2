"""What every config section shares: its range checks, and the two kinds of setting that
are not plain experiment settings (how a run runs; what a checkpoint is made of).

`atari_dqn.config` builds its sections from these; `experiment_keys` and
`fixed_on_resume_keys` there read the field metadata set here.
"""

from __future__ import annotations

import typing
from dataclasses import field, fields
from typing import Any, ClassVar, Literal

from atari_dqn.errors import ConfigError, did_you_mean


class Section:
    """A config section: checks its own ranges when built (`KEY_RANGES`, by field name)."""

    NAME: ClassVar[str]
    KEY_RANGES: ClassVar[dict[str, str]] = {}
    """Field -> `positive`, `non_negative` or `probability`."""

    def __post_init__(self) -> None:
        for name, rule in self.KEY_RANGES.items():
            check_range(f"{self.NAME}.{name}", getattr(self, name), rule)
        # A word setting is one of its words, however the section was built (in Python,
        # `channels_last=True` would otherwise read as neither "true" nor "auto").
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            choices, value = typing.get_args(hints[f.name]), getattr(self, f.name)
            if typing.get_origin(hints[f.name]) is Literal and value not in choices:
                raise ConfigError(
                    f"{self.NAME}.{f.name}: expected one of {', '.join(map(repr, choices))}, "
                    f"got {value!r}" + did_you_mean(str(value), [str(c) for c in choices])
                )


def not_experiment(default: Any) -> Any:
    """A setting that is not part of the experiment: how a run runs (device, speed, logs,
    checkpoints), or which run of the experiment it is (its seed, its budget). Runs that
    differ only in such settings are the same experiment (`experiment_keys`)."""
    return field(default=default, metadata={"experiment": False})


def fixed(default: Any) -> Any:
    """A setting a checkpoint is made of (env states, the replay, the network's input): a
    resumed run cannot change it (`fixed_on_resume_keys`)."""
    return field(default=default, metadata={"fixed_on_resume": True})


def check_range(key: str, value: float, rule: str) -> None:
    """Raise ConfigError naming `key` unless `value` satisfies `rule` (`positive`,
    `non_negative` or `probability`)."""
    if rule == "positive" and value <= 0:
        raise ConfigError(f"{key} must be positive, got {value}")
    if rule == "non_negative" and value < 0:
        raise ConfigError(f"{key} must be >= 0, got {value}")
    if rule == "probability" and not 0.0 <= value <= 1.0:
        raise ConfigError(f"{key} must be in [0, 1], got {value}")
