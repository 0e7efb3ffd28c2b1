"""docs/reliability.md names tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def defines(path: Path, name: str) -> bool:
    """Whether ``path`` defines the function ``name``, sync or async."""
    return re.search(rf"^(async )?def {name}\(", path.read_text(), re.MULTILINE) is not None


def test_every_test_named_in_reliability_md_exists() -> None:
    text = (ROOT / "docs" / "reliability.md").read_text()
    references = REFERENCE.findall(text)
    assert len(references) > 50
    missing = [
        f"{path}::{name}"
        for path, name in references
        if not (ROOT / path).is_file() or not defines(ROOT / path, name)
    ]
    assert missing == []


def test_every_table_row_of_reliability_md_names_a_test_or_says_why_not() -> None:
    rows = [
        line
        for line in (ROOT / "docs" / "reliability.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| promise")
    ]
    assert len(rows) > 50
    for row in rows:
        shown_by = row.rstrip(" |").rsplit(" | ", 1)[1]
        assert REFERENCE.search(shown_by) or "not" in shown_by or "none" in shown_by, row
