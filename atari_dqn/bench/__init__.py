"""Throughput and memory benchmarks, each ours beside a peer in the same run.

They live inside the package (not only under `benchmarks/`) so that `python -m atari_dqn
bench ...` works from an installed copy; results go to `benchmarks/results/`.
"""
