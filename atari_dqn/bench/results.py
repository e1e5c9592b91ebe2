"""Benchmark records: the machine and the code they measured, as JSON plus a markdown table.

A record names the git commit of the code it measured and whether that work tree held
uncommitted changes, so a figure can be traced to the code behind it.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import re
import socket
import sys
from pathlib import Path
from typing import Any, NamedTuple

from atari_dqn.provenance import code_version, describe_code

RESULTS_DIR = Path("benchmarks/results")
_PACKAGES = (
    "torch",
    "numpy",
    "numba",
    "gymnasium",
    "ale-py",
    "opencv-python-headless",
    "stable-baselines3",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_name() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    from atari_dqn.runtime import cuda_present

    return torch.cuda.get_device_name(0) if cuda_present() else None


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def machine_info() -> dict[str, Any]:
    """What a figure depends on: CPU model, cores, GPU, host and package versions."""
    return {
        "host": socket.gethostname(),
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "gpu": _gpu_name(),
        "versions": _versions(),
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table whose columns are the keys of the first row."""
    if not rows:
        return ""
    columns = list(rows[0])

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def record_stem(name: str | None, machine: dict[str, Any]) -> str:
    """`<date>-<host>[-<gpu>][-<name>]`: one record per benchmark, machine and day; the GPU
    is named so that a host's GPU records never replace its CPU-only ones."""
    now = _dt.datetime.now(_dt.timezone.utc)
    gpu = re.sub(r"[^a-z0-9]+", "-", machine["gpu"].lower()).strip("-") if machine["gpu"] else ""
    return "-".join(part for part in (f"{now:%Y-%m-%d}", machine["host"], gpu, name) if part)


def write_results(
    name: str,
    rows: list[dict[str, Any]],
    summary: dict[str, Any] | None = None,
    out_dir: Path | str = RESULTS_DIR,
) -> tuple[Path, Path]:
    """Write `<date>-<host>-<name>.json` and `.md` stamped with the machine and the code
    (commit, dirty work tree); return both paths.

    `rows` become the markdown table; `summary` holds headline ratios and target checks.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    code = code_version(out_dir)
    now = _dt.datetime.now(_dt.timezone.utc)
    stem = record_stem(name, machine)
    record = {
        "benchmark": name,
        "time_utc": now.isoformat(timespec="seconds"),
        # orig_argv keeps `-m atari_dqn`, which argv turns into the path of __main__.py
        "command": " ".join([Path(sys.orig_argv[0]).name, *sys.orig_argv[1:]]),
        **code,
        "machine": machine,
        "summary": summary or {},
        "rows": rows,
    }
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    gpu = machine["gpu"] or "no GPU"
    md = [
        f"# Benchmark `{name}`",
        "",
        f"{now:%Y-%m-%d %H:%M} UTC on {machine['cpu']} ({machine['cores']} cores, {gpu}), "
        f"{describe_code(code)}.",
        f"Command: `{record['command']}`",
        "",
        markdown_table(rows),
    ]
    if summary:
        md += ["", markdown_table([{"figure": k, "value": v} for k, v in summary.items()])]
    md_path = out_dir / f"{stem}.md"
    md_path.write_text("\n".join(md))
    return json_path, md_path


class Headline(NamedTuple):
    """A ratio a benchmark part reports (a key of its summary) and the target it aims at."""

    key: str
    label: str
    target: float
