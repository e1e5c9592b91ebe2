"""Configs by name: what sets a run's experiment apart from the Nature paper's, and the
shipped preset (`configs/*.yaml`) that names it.

A run directory holds its resolved config, not the file it came from; a report names each
config by the preset whose experiment settings it has (`cpu_demo.yaml`), or by the nearest
preset and what differs from it (`smoke.yaml + replay.capacity=2000`), so runs read the same
whichever copy of a preset started them.
"""

from __future__ import annotations

import functools

from atari_dqn.config import Config, experiment_keys
from atari_dqn.configfile import PRESETS, flatten, load_config

NATURE = "nature.yaml"


def experiment_changes(cfg: Config) -> tuple[str, ...]:
    """`key=value` for each experiment setting of `cfg` that differs from the Nature paper's."""
    nature = flatten(Config(env=type(cfg.env)(game=cfg.env.game)))
    experiment = experiment_keys()
    return tuple(
        f"{key}={value}"
        for key, value in flatten(cfg).items()
        if value != nature[key] and key in experiment
    )


@functools.lru_cache(maxsize=1)
def _presets() -> dict[str, frozenset[str]]:
    """{file name: its experiment changes} of each shipped preset, Nature's first."""
    found = {NATURE: frozenset()}
    if PRESETS.is_dir():
        for path in sorted(PRESETS.rglob("*.yaml")):
            name = path.relative_to(PRESETS).as_posix()  # `atari100k/drq_eps.yaml`
            found.setdefault(name, frozenset(experiment_changes(load_config(path))))
    return found


def preset_label(changes: tuple[str, ...]) -> str:
    """The preset whose experiment settings are `changes`, by its file name; else the one
    that differs from them in the fewest keys (Nature's on a tie), `+` what the run changed
    from it (a key the run left at Nature's value is named with that value)."""
    wanted = dict(change.split("=", 1) for change in changes)
    nature = flatten(Config())
    best, best_diff = NATURE, list(changes)
    for name, preset in _presets().items():
        theirs = dict(change.split("=", 1) for change in preset)
        diff = [f"{k}={v}" for k, v in wanted.items() if theirs.get(k) != v]
        diff += [f"{k}={nature[k]}" for k in theirs if k not in wanted]
        if len(diff) < len(best_diff):
            best, best_diff = name, diff
    return f"{best} + {', '.join(best_diff)}" if best_diff else best
