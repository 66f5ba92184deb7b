"""Every relative link of the repository's Markdown pages (README, docs/, help pages, API.md) resolves: to a
file or folder that exists and, with a #fragment, to a heading of that page (GitHub's heading anchors)."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def markdown_pages() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / name for name in listed.stdout.split()]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in map(anchor, HEADING.findall(linked.read_text())):
            broken.append(f"{target}: no such heading")
    return broken


def test_every_relative_markdown_link_resolves():
    pages = markdown_pages()
    assert any(page.name == "development.md" for page in pages)
    broken = {str(page.relative_to(ROOT)): links for page in pages if (links := broken_links(page))}
    assert not broken, broken


def test_a_missing_file_and_a_missing_heading_are_found(tmp_path):
    (tmp_path / "other.md").write_text("# Where things are\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#where-things-are) [gone](missing.md) [no heading](other.md#nowhere) "
                    "[web](https://example.com/x.md)\n")
    assert broken_links(page) == ["missing.md: no such file", "other.md#nowhere: no such heading"]
