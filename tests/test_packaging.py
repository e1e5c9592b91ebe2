"""The package as pip builds it: the install `make` runs prints no warning of its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from quick_runs import ROOT


def test_building_the_package_warns_of_nothing_and_declares_its_license(tmp_path):
    # What `pip install -e .` asks setuptools for, on a copy of the sources (the build
    # writes its egg-info beside them).
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "atari_dqn", source / "atari_dqn")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    code = f"from setuptools import build_meta; build_meta.build_editable({str(wheels)!r})"
    built = subprocess.run(
        [sys.executable, "-c", code], cwd=source, capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    assert "Warning" not in built.stdout + built.stderr, built.stderr
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith("METADATA")))
    assert "License-Expression: MIT" in metadata.decode().splitlines()
