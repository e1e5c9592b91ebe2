"""Benchmark records: their file names say which machine, and which GPU, they measured; their
contents say which commit, and whether its work tree was dirty; and `--update-readme` takes
its figures from committed code only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from atari_dqn.bench import suite
from atari_dqn.bench.results import machine_info, record_stem
from atari_dqn.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[1] / "atari_dqn"


def git(root: Path, *args: str) -> str:
    identity = ("-c", "user.name=test", "-c", "user.email=test@example.invalid")
    done = subprocess.run(
        ["git", *identity, "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def checkout(tmp_path: Path, *, committed: bool = True) -> Path:
    """A copy of the package with a README holding the performance block, committed to a
    fresh git repository (or, with `committed=False`, in a plain directory)."""
    root = tmp_path / "checkout"
    shutil.copytree(PACKAGE, root / "atari_dqn", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "README.md").write_text(f"# x\n\n{suite.README_START}\nold\n{suite.README_END}\n")
    if committed:
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "start")
    return root


def dirty(root: Path) -> None:
    """Change a tracked code file without committing it."""
    with (root / "atari_dqn" / "bench" / "e2e.py").open("a") as f:
        f.write("# an uncommitted change\n")


def write_record(root: Path, name: str) -> tuple[dict, str]:
    """Write a record the way a benchmark does, from the package copy at `root`, into its
    own `benchmarks/results/`; return its JSON and its markdown."""
    code = (
        "from atari_dqn.bench.results import write_results; "
        f"j, m = write_results({name!r}, [{{'envs': 1}}], {{}}, 'benchmarks/results'); "
        "print(j); print(m)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    json_path, md_path = (root / line for line in done.stdout.split())
    return json.loads(json_path.read_text()), md_path.read_text()


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "atari_dqn", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_record_names_its_gpu_so_a_hosts_gpu_and_cpu_records_never_collide():
    cpu, gpu = {"host": "vm", "gpu": None}, {"host": "vm", "gpu": "NVIDIA H200"}
    assert record_stem("e2e", cpu).endswith("-vm-e2e")
    assert record_stem("e2e", gpu).endswith("-vm-nvidia-h200-e2e")
    assert record_stem(None, gpu).endswith("-vm-nvidia-h200")


def test_a_record_names_the_commit_it_measured_and_whether_the_tree_was_clean_or_dirty(
    tmp_path,
):
    root = checkout(tmp_path)
    head = git(root, "rev-parse", "HEAD")
    # The second record finds the first one's files untracked beside it: records are not
    # code, so the tree is still clean.
    for name in ("first", "second"):
        record, markdown = write_record(root, name)
        assert (record["commit"], record["dirty"]) == (head, False)
        assert f"commit `{head}` (work tree clean)" in markdown.splitlines()[2]
    dirty(root)
    record, markdown = write_record(root, "third")
    assert (record["commit"], record["dirty"]) == (head, True)
    assert f"commit `{head}` (work tree dirty" in markdown.splitlines()[2]


def test_a_record_written_outside_a_git_checkout_says_its_commit_is_unknown(tmp_path):
    record, markdown = write_record(checkout(tmp_path, committed=False), "e2e")
    assert (record["commit"], record["dirty"]) == ("unknown", "unknown")
    assert "commit `unknown` (work tree state unknown)" in markdown


def test_update_readme_refuses_a_dirty_tree_in_one_line_before_measuring_anything(tmp_path):
    root = checkout(tmp_path)
    dirty(root)
    done = cli(root, "bench", "e2e", "--update-readme")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "is dirty" in done.stderr and "commit first, then measure" in done.stderr
    assert "== bench" not in done.stdout  # no part started
    assert not (root / "benchmarks").exists()  # and no record written


def test_update_readme_lets_a_clean_tree_past_the_dirt_check(tmp_path):
    # Without the README's block the command stops at its next check, still before any
    # measurement: so reaching that check shows that a clean tree is not refused as dirty.
    root = checkout(tmp_path)
    (root / "README.md").write_text("# no performance block\n")
    git(root, "commit", "-q", "-am", "drop the block")
    done = cli(root, "bench", "e2e", "--update-readme")
    assert done.returncode == 2
    assert "no <!-- bench:start -->" in done.stderr and "dirty" not in done.stderr
    assert not (root / "benchmarks").exists()


def fake_part_record(
    out_dir: Path, part: str, commit: str, dirty: bool | str, command: str | None = None
) -> None:
    """A part's record as `write_results` leaves it, with one headline ratio for `e2e`."""
    summary = {"ratio_vs_sb3_1env": 1.5, "median_of_runs": 1} if part == "e2e" else {}
    record = {
        "benchmark": part,
        "time_utc": "2026-01-01T00:00:00+00:00",
        "command": command or f"python -m atari_dqn bench {part}",
        "commit": commit,
        "dirty": dirty,
        "summary": summary,
        "rows": [],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{record_stem(part, machine_info())}.json").write_text(json.dumps(record))


def test_the_readme_section_names_the_commit_of_the_records_it_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("README.md").write_text(f"{suite.README_START}\nold\n{suite.README_END}\n")
    out = tmp_path / "results"
    fake_part_record(out, "env", "a" * 40, False)
    fake_part_record(out, "e2e", "b" * 40, False)
    record = suite.summarise(out, update_readme=True)
    assert (record["commit"], record["dirty"]) == ("mixed", False)
    assert record["code"] == {
        "env": {"commit": "a" * 40, "dirty": False},
        "e2e": {"commit": "b" * 40, "dirty": False},
    }
    readme = Path("README.md").read_text()
    assert f"env at commit `{'a' * 40}` (work tree clean)" in readme
    assert f"e2e at commit `{'b' * 40}` (work tree clean)" in readme
    # Each part was measured by a command of its own, and the section says which.
    assert "env: `python -m atari_dqn bench env`; e2e: `python -m atari_dqn bench e2e`" in readme
    assert "Runs: e2e: one run per figure." in readme
    fake_part_record(out, "env", "b" * 40, False, command="python -m atari_dqn bench all")
    fake_part_record(out, "e2e", "b" * 40, False, command="python -m atari_dqn bench all")
    assert suite.summarise(out, update_readme=True)["commit"] == "b" * 40
    assert "Measured by `python -m atari_dqn bench all` on" in Path("README.md").read_text()


def test_update_readme_refuses_to_show_a_record_measured_from_a_dirty_tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = f"{suite.README_START}\nold\n{suite.README_END}\n"
    Path("README.md").write_text(before)
    out = tmp_path / "results"
    fake_part_record(out, "env", "a" * 40, False)
    fake_part_record(out, "e2e", "a" * 40, True)
    with pytest.raises(ConfigError, match="records of e2e were not measured from a clean"):
        suite.summarise(out, update_readme=True)
    assert Path("README.md").read_text() == before
