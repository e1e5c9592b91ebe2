"""The allocator setting against the page faults it exists to remove, measured in a fresh
process (it is process-wide)."""

import os
import subprocess
import sys

import pytest

# Updates of the Nature CNN at batch 32 (forward and backward passes), then the minor page
# faults of six more: the allocation pattern of a run's updates.
PROBE = """
import resource, sys
import torch
from atari_dqn.malloc import keep_freed_memory
from atari_dqn.network import NatureCNN
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.set_num_threads(1)
net = NatureCNN(6, generator=torch.Generator().manual_seed(0))
frames = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8)
def update():
    net.zero_grad(set_to_none=True)
    net(frames).square().mean().backward()
for _ in range(4):
    update()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(6):
    update()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, env: dict | None = None) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_kept_memory_is_reused_without_faulting_its_pages_in_again():
    _, default = _faults("default")
    kept, reused = _faults("keep")
    assert default > 6 * 1000  # each update's blocks mapped afresh (measured ~5,000)
    # Measured over 8 probes: 8,366-30,384 faults by default, 0-1,568 kept.
    assert kept == "True" and reused < default / 2


def test_a_users_own_allocator_setting_is_left_alone():
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072"}
    kept, _ = _faults("keep", env)
    assert kept == "False"
