"""glibc's allocator told to keep the memory a training step frees, for the next step.

By default glibc maps each large block on its own and unmaps it when freed, and trims the
top of its heap as soon as it shrinks: each CPU update of the Nature CNN then takes 4 to 20
MB of fresh pages back from the system (1,000 to 5,000 minor page faults an update, on this
project's 2-core EPYC), to zero and map again. Told to keep them, an update takes next to
none once the first few have grown the heap, and runs of `configs/atari100k/drq_eps.yaml`
resumed from one checkpoint updated faster: 32.4-33.9 ms an update with the `MALLOC_*_`
variables below, 33.7-35.3 ms with this `mallopt` call, against 35.5-37.6 ms without (same
2 cores, one run at a time). The cost: the process keeps its peak heap, which the replay
memory dwarfs.

Set at run time with `mallopt`, as the `MALLOC_*_` environment variables would at start;
a user who set any of those keeps their own choice. Nothing happens outside glibc.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_SETTINGS = {
    # Blocks up to 32 MB (glibc's largest threshold) come from the heap, kept when freed.
    _M_MMAP_THRESHOLD: 32 << 20,
    # Trim the heap's free top only beyond 2 GB (an int's largest), and grow it 256 MB at a time.
    _M_TRIM_THRESHOLD: 2**31 - 1,
    _M_TOP_PAD: 256 << 20,
}
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
"""The environment variables that say the user chose these settings themselves."""


def keep_freed_memory() -> bool:
    """Keep freed blocks in this process for reuse; True if glibc took every setting (False
    elsewhere, or where the user chose them in the environment)."""
    if not sys.platform.startswith("linux") or any(k in os.environ for k in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(option, value) == 1 for option, value in _SETTINGS.items())
