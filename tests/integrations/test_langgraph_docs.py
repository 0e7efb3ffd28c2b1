"""docs/langgraph.md's example runs as written and prints what the page says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_agent_in_docs_langgraph_md_remembers_and_forgets_as_it_says() -> None:
    text = (ROOT / "docs" / "langgraph.md").read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", text, re.DOTALL)
    example = next(code for lang, code in blocks if lang == "python" and "StateGraph" in code)
    printed = next(code for lang, code in blocks if not lang and "Hello Ada" in code)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, env=env, check=True
    )
    assert run.stdout == printed
