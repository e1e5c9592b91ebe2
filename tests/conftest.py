"""Tests marked `cuda` need a CUDA device: where torch sees none they are skipped, so the
suite passes on CI's CPU machine and on a GPU machine alike (`make bench-gpu` runs them)."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch sees none)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
