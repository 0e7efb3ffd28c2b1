"""The README's Python examples run as written (in a fresh folder, as a new user would)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def examples() -> list[str]:
    return BLOCK.findall((ROOT / "README.md").read_text())


def test_the_readme_python_examples_run_as_written(tmp_path: Path) -> None:
    library, engine = examples()  # the library tour, then the dialog engine
    shutil.copytree(ROOT / "examples" / "data", tmp_path / "playground")  # what make run makes
    for number, code in enumerate((library, engine)):
        script = tmp_path / f"example{number}.py"
        script.write_text(code)
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        if number == 0:
            lines = done.stdout.splitlines()
            assert lines[0].startswith("Ada [{")
            export = json.loads(lines[-1])  # printed as JSON, not as a Python dict
            assert export["userId"] == "user-42"
        else:
            assert "welcome bot" in done.stdout
