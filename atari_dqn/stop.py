"""What ends a run early, so that it can checkpoint first: a signal or a stop request file.

SIGINT (Ctrl-C), SIGTERM and SIGHUP (a closed terminal, a dropped SSH session) become a flag
the training loop checks between steps. So does a file `stop` in the run directory, which a
sweep writes to stop its runs wherever they train (a Ray worker has no terminal, and its
task may not run in a process's main thread, where Python handles signals). A second
signal, while the run checkpoints, raises `SecondStop` wherever the run is: the user
insists, and the run stops without that checkpoint.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

# The request file is looked for at most this often: one stat() per step would be noise.
_FILE_CHECK_S = 0.5


class SecondStop(KeyboardInterrupt):
    """A second stop signal: stop now, without the checkpoint the first one asked for."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum


class StopRequest:
    """A flag raised by a stop signal or by the stop file appearing; a context manager."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, request_file: Path) -> None:
        self.signal: int | None = None
        """The signal that asked to stop; SIGINT for the stop file."""
        self.reason = ""
        """What asked to stop, in words: the signal's name, or the file."""
        self._file = request_file
        self._next_check = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:  # a second Ctrl-C: the user insists
            raise SecondStop(signum)
        self.signal, self.reason = signum, signal.Signals(signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process the signal ended."""
        return 128 + (self.signal or 0)

    @property
    def requested(self) -> bool:
        """Whether to stop now (checks the request file twice a second at most)."""
        if self.signal is None and time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + _FILE_CHECK_S
            if self._file.exists():
                self.signal, self.reason = signal.SIGINT, f"a stop request ({self._file})"
        return self.signal is not None

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        # Obeyed, or written too late to be seen: either way a resume must not stop at once.
        self._file.unlink(missing_ok=True)
