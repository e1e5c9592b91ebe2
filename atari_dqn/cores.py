"""The CPU cores a run can use, how torch's threads wait for each other on them, and how
they treat denormal floats.

torch's default thread count follows the cores this process may run on (its affinity, and
Ray's `OMP_NUM_THREADS` for a sweep's task), not a cgroup's CPU quota: a container given one
CPU of two gets two threads.

How torch's OpenMP threads wait for each other at the end of each parallel step is a
trade-off, measured on 2-core VMs. libgomp's default spins for about 300,000 turns before
it sleeps: with another process busy on one of the 2 cores (an AMD EPYC), an update's
second thread waits its turn behind that process while the first spins on the other core,
and a run measured 7-52 agent steps/s where threads that sleep at once
(`OMP_WAIT_POLICY=PASSIVE`) ran 83-103. But sleeping at once costs a run alone a wake-up at
each of the hundred-odd parallel steps of an update, and a sleeping core of a VM wakes
slowly. 3,000 turns of spinning first (`GOMP_SPINCOUNT=3000`) measured (an Intel Xeon),
against sleeping at once: 20.5 against 22.3 ms a DrQ(ε) update in a run alone, 182 against
158 agent steps/s in `bench contended`'s run alone, and 106 against 122 with a busy core
beside it (0.58 of alone, against 0.77); 10,000 turns: 18.4 ms, 204, and 83 (0.41).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

WAIT_POLICY, SPIN_COUNT = "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"
SPINS = "3000"


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


def wait_briefly() -> None:
    """OpenMP threads that spin SPINS turns, then sleep, while they wait for each other
    (`GOMP_SPINCOUNT`), unless the user chose a policy or a spin count; called before torch
    is loaded, which reads them once."""
    if WAIT_POLICY not in os.environ:
        os.environ.setdefault(SPIN_COUNT, SPINS)


def flush_denormals() -> None:
    """Denormal floats (below 1.2e-38) flushed to zero by this process's torch maths, as JAX
    and TensorFlow do on the CPU (so Dopamine's agents run that way too).

    Adam's moments decay into denormals wherever a weight's gradient stays zero (the
    checkpoint of a 100k-step DrQ(eps) run held ~27,000 in one layer's first moment), and an
    x86 core takes ~100 times as long over an operation on one: measured on an Intel Xeon, a
    DrQ(eps) update early in a game took 28.5 ms with them and 22.9 ms flushed
    (docs/atari100k.md, "Denormal floats").

    The flag is per thread, and a thread inherits it from the thread that creates it: so it
    is set where a process that trains or evaluates starts (the command line's `train` and
    `eval`, a sweep's task, a benchmark's process), before torch's first parallel operation
    makes its thread pool. Not in the library's `runs.train`, whose process (a test's) may
    hold code that needs IEEE floats."""
    import torch

    torch.set_flush_denormal(True)
