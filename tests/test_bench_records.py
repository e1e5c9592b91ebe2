"""Benchmark records: their file names say which machine, and which GPU, they measured."""

from __future__ import annotations

from atari_dqn.bench.results import record_stem


def test_a_record_names_its_gpu_so_a_hosts_gpu_and_cpu_records_never_collide():
    cpu, gpu = {"host": "vm", "gpu": None}, {"host": "vm", "gpu": "NVIDIA H200"}
    assert record_stem("e2e", cpu).endswith("-vm-e2e")
    assert record_stem("e2e", gpu).endswith("-vm-nvidia-h200-e2e")
    assert record_stem(None, gpu).endswith("-vm-nvidia-h200")
