"""docs/flows.md shows the example bot's files as they are."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
BLOCK = re.compile(r"```js\n// (examples/data/bots/welcome/\S+)\n(.*?)\n```", re.DOTALL)


def test_the_complete_example_in_the_docs_is_the_example_bot() -> None:
    shown = BLOCK.findall((ROOT / "docs" / "flows.md").read_text())
    assert len(shown) == 5
    for path, text in shown:
        assert text == (ROOT / path).read_text().rstrip("\n"), path
