"""Game names in any spelling users type: one key per game for the lookups in envs and scores."""

from __future__ import annotations

import re

_ID_SUFFIX = re.compile(r"(NoFrameskip|Deterministic)?-v\d+$")


def fold(name: str) -> str:
    """The lookup key: 'ALE/SpaceInvaders-v5', 'space_invaders', 'Space Invaders' and
    'SpaceInvadersNoFrameskip-v4' all give 'spaceinvaders'."""
    name = name.strip().rsplit("/", 1)[-1]  # drop a namespace such as 'ALE/'
    name = _ID_SUFFIX.sub("", name)  # drop '-v5', 'NoFrameskip-v4', ...
    return re.sub(r"[^a-z0-9]", "", name.lower())
