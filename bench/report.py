"""Writing a benchmark's results into docs/benchmarks.md, each script owning one section."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(section: str, path: Path = BENCHMARKS) -> None:
    """Replace the section that starts with `section`'s first line (up to the next `## `),
    or append it."""
    heading = section.split("\n", 1)[0]
    text = path.read_text()
    start = text.find(heading)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + ("" if end == -1 else text[end:])
    path.write_text(text)
