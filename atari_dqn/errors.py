"""The errors a user can cause, and fix: the command line prints each as one line, exit 2
(an `Interrupted` run: the signal's status).

Anything else that goes wrong is a bug or a broken machine and keeps its traceback.
"""

from __future__ import annotations

import difflib


class UserError(Exception):
    """Bad input from the user; the message names the problem and what to do instead."""

    exit_code = 2


class ConfigError(UserError, ValueError):
    """A bad config file, key or value, or a bad command-line argument."""


class UnknownGameError(ConfigError):
    """A game name that matches no ROM shipped with the installed ale-py."""


class ReplayError(UserError):
    """Misuse of the replay memory, or a replay file that cannot be read."""


class CheckpointError(UserError):
    """A missing, corrupt or mismatched checkpoint."""


class DivergedError(UserError):
    """The loss or the Q-values became NaN or infinite: the run stopped, keeping its last
    good checkpoint (learner.stop_on_nonfinite)."""


class Interrupted(UserError):
    """The user stopped a run a second time while it checkpointed: it ended without that
    checkpoint (the message says which one remains), with the signal's exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def did_you_mean(name: str, options: list[str]) -> str:
    """`; did you mean 'x'?` for the option closest to a misspelt `name`, else ''."""
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""
