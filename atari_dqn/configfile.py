"""Config files and overrides: YAML in, `key=value` on the command line, YAML out.

The only way values reach a `Config`: every key is checked against the dataclasses of
`atari_dqn.config` (an unknown key names the valid ones and the closest), every value
against its field's type, and then the sections check their own rules.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from atari_dqn.config import Config
from atari_dqn.errors import ConfigError, did_you_mean
from atari_dqn.shell import near

PRESETS = Path(__file__).resolve().parents[1] / "configs"
"""The configs shipped with the sources (`nature.yaml`, `cpu_demo.yaml`, ...)."""


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Check `value` against the field's type hint, converting the harmless cases."""
    origin = typing.get_origin(hint)
    if origin is Literal:  # the section checks that it is one of its words
        if isinstance(value, bool) and str(value).lower() in typing.get_args(hint):
            value = str(value).lower()  # YAML reads `true` as a bool; the choice is the word
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
                f"unknown config key '{prefix}{name}'{did_you_mean(str(name), names)} "
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


def _nearest_preset(path: Path) -> str:
    """`; did you mean 'configs/combined.yaml'?` for the YAML file beside a missing `path`, or
    among the shipped presets, whose name is closest to its name (`combind.yaml`,
    `cpu_demo`), else ''."""
    files = {}
    for folder in dict.fromkeys((PRESETS, path.parent)):  # the user's folder wins a tie
        if folder.is_dir():
            files |= {found.stem: found for found in sorted(folder.glob("*.yaml"))}
    match = difflib.get_close_matches(path.stem, list(files), n=1, cutoff=0.6)
    return f"; did you mean '{near(files[match[0]])}'?" if match else ""


def _kind(value: Any) -> str:
    """What a YAML document that is not a mapping reads as: a string, a list, a single value."""
    return {str: "a string", list: "a list"}.get(type(value), "a single value")


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
        if path.is_dir():
            raise ConfigError(
                f"--config '{path}' is a directory; name a YAML file in it, such as "
                f"{path / 'nature.yaml'}"
            )
        if not path.is_file():
            raise ConfigError(
                f"config file '{path}' not found{_nearest_preset(path)} (the ones shipped are "
                f"in {near(PRESETS)}/)"
            )
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from exc
        if not isinstance(values, dict):
            raise ConfigError(
                f"config file '{path}' is not a config: it reads as {_kind(values)}, not as "
                f"sections of key: value lines; name one such as {near(PRESETS / 'nature.yaml')}"
            )
    values = _merge(values, parse_overrides(overrides or []))
    if game is not None:
        values = _merge(values, {"env": {"game": game}})
    return from_dict(values)


def to_dict(cfg: Config) -> dict[str, Any]:
    """Nested plain values, ready for YAML or JSON."""
    return dataclasses.asdict(cfg)


def flatten(cfg: Config) -> dict[str, Any]:
    """Every setting by its dotted key: {'env.game': 'Breakout', ..., 'seed': 0}."""
    out: dict[str, Any] = {}
    for section, values in to_dict(cfg).items():
        if isinstance(values, dict):
            out |= {f"{section}.{key}": value for key, value in values.items()}
        else:
            out[section] = values
    return out


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML, as written into each run directory."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def valid_keys() -> list[str]:
    """Every dotted key a config may set, for help texts."""
    keys = []
    for name, hint in typing.get_type_hints(Config).items():
        if dataclasses.is_dataclass(hint):
            keys += [f"{name}.{f.name}" for f in dataclasses.fields(hint)]
        else:
            keys.append(name)
    return keys
