"""The soak (bench/soak.py), shortened to 10 s: ``botmemory serve`` under 32 clients.

``make soak`` runs it for 60 s with 64 clients on every backend. The clock is real here,
as it must be for a server process under load; the checks do not depend on timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def soak_backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """A backend and its fresh database URL (SQLite: the soak's own data folder)."""
    if request.param == "sqlite":
        return "sqlite", None
    return request.param, str(request.getfixturevalue(f"{request.param}_url"))


def test_the_soak_holds_its_promises(soak_backend: tuple[str, str | None]) -> None:
    backend, url = soak_backend
    command = [sys.executable, str(ROOT / "bench" / "soak.py"), "--backend", backend]
    command += ["--duration", "10", "--clients", "32"] + (["--url", url] if url else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{backend}: " in result.stdout
