"""The README a newcomer finishes: short, and every link in it and in docs/ resolves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchor of each heading: lower case, punctuation dropped, spaces as dashes."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def _broken(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # a web address: not ours to check offline
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (anchor and anchor not in _anchors(resolved)):
            broken.append(target)
    return broken


def test_the_readme_is_under_250_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) < 250


def test_every_link_of_the_readme_and_the_docs_resolves():
    assert len(PAGES) > 5
    assert {page.name: bad for page in PAGES if (bad := _broken(page))} == {}


def test_a_missing_file_or_heading_is_a_broken_link(tmp_path):
    (tmp_path / "there.md").write_text("# A heading, here\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading-here) ![gone](nope.png) "
        "[gone](there.md#elsewhere) [web](https://example.org/x)\n"
    )
    assert _broken(page) == ["nope.png", "there.md#elsewhere"]
