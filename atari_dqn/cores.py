"""The CPU cores a run can use, and how torch's threads wait for each other on them.

torch's default thread count follows the cores this process may run on (its affinity, and
Ray's `OMP_NUM_THREADS` for a sweep's task), not a cgroup's CPU quota: a container given one
CPU of two gets two threads. And by default its OpenMP threads spin while they wait for one
another: on 2 cores with another process busy on them, an update's second thread waits its
turn behind the busy process while the first spins, and a run measured 7-52 agent steps/s
where two threads that sleep while they wait ran 83-103, and one thread 85-103.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

WAIT_POLICY = "OMP_WAIT_POLICY"


def usable_cores() -> int:
    """Cores this process can use: its affinity, capped by a cgroup's CPU quota (v2's
    `cpu.max`, v1's `cpu.cfs_quota_us` over `cpu.cfs_period_us`), at least 1."""
    cores = len(os.sched_getaffinity(0))
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def _cgroup_quota() -> float | None:
    """The CPUs a cgroup's quota allows (1.5 for 150,000 us per 100,000), or None."""
    root = Path("/sys/fs/cgroup")
    try:
        quota, period = (root / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def wait_passively() -> None:
    """OpenMP threads that sleep rather than spin while they wait (`OMP_WAIT_POLICY=PASSIVE`),
    unless the user chose a policy; called before torch is loaded, which reads it once."""
    os.environ.setdefault(WAIT_POLICY, "PASSIVE")
