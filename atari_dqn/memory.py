"""What a run needs in memory, checked before it starts, and what it uses, logged as it runs.

The frame ring is allocated lazily (the OS maps its pages as it fills), so a replay too
large for the machine would otherwise fail hours into a run, or in a 24-line traceback at
its first write. `check_fits` compares the run's needs with the memory available (the
smaller of the kernel's MemAvailable and a cgroup's limit) before anything is created.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from atari_dqn.config import Config
from atari_dqn.errors import ConfigError
from atari_dqn.shapes import ring_bytes

TRAINER_BYTES = 1_000_000_000
"""The trainer process besides its replay: torch, the networks, the logs (about 0.3 GB
measured eager on the CPU; compiled code and CUDA contexts take more)."""
WORKER_BYTES = 100_000_000
"""One env worker process (about 60 MB measured for two envs with their spare emulators)."""


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def needed_bytes(cfg: Config) -> int:
    """Bytes a run of `cfg` needs at most: its full replay, the trainer, one env worker per
    env at most (fewer on a machine with fewer cores)."""
    workers = min(cfg.loop.num_envs, os.cpu_count() or 1)
    return _replay_bytes(cfg) + TRAINER_BYTES + workers * WORKER_BYTES


def _replay_bytes(cfg: Config) -> int:
    replay = cfg.replay
    return ring_bytes(replay.capacity, cfg.loop.num_envs, cfg.env.screen_size, replay.prioritized)


def available_bytes() -> int | None:
    """Memory this process can still take: MemAvailable, capped by a cgroup v2 limit;
    None where neither can be read (not Linux)."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_fits(cfg: Config, available: int | None = None) -> None:
    """A ConfigError naming what to lower when a run of `cfg` cannot fit in memory."""
    available = available_bytes() if available is None else available
    need = needed_bytes(cfg)
    if available is None or need <= available:
        return
    per_transition = ring_bytes(1, 1, cfg.env.screen_size)
    replay = _replay_bytes(cfg)
    room = max(0, available - (need - replay)) // per_transition
    lower = (
        f"lower replay.capacity to at most {room:,}"
        if room >= 1_000
        else "free some memory, or lower loop.num_envs"
    )
    raise ConfigError(
        f"replay.capacity={cfg.replay.capacity:,} needs {_gb(replay)} of memory for the "
        f"replay ({per_transition:,} bytes per transition) plus about {_gb(need - replay)} "
        f"for the trainer and its env workers, and this machine has {_gb(available)} "
        f"available: {lower} (the paper's 1,000,000 needs {_gb(ring_bytes(10**6, 1, 84))})"
    )


def trainer_peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports it in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def processes_rss_mb(pids: list[int]) -> float:
    """Resident memory of the processes `pids` now, summed, in MB (nan where unreadable)."""
    total = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            return float("nan")
    return total
