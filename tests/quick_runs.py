"""The runs the tests train: the smoke config on the CPU, quiet, without torch.compile."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
QUIET = ["logging.progress=false", "learner.device=cpu", "learner.compile=false"]
"""Overrides every such run takes: no progress bar, the CPU whatever the machine, eager."""
