"""What is specific to the SQLite backend."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from botmemory import ManualClock, Memory, SchemaVersionError
from botmemory.storage.sqlite import MIGRATIONS, sqlite_path


def test_url_paths() -> None:
    assert sqlite_path("sqlite:///data/x.db") == "data/x.db"  # relative, as in SQLAlchemy
    assert sqlite_path("sqlite:////abs/x.db") == "/abs/x.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"


async def test_erased_values_are_not_left_in_the_file(tmp_path: Path, clock: ManualClock) -> None:
    secret = "ZZSECRET-EMAIL-7c1e@example.com"
    async with await Memory.open(f"sqlite:///{tmp_path}/secure.db", clock=clock) as mem:
        async with mem.turn("b", "u1") as state:
            state.user["email"] = secret
            state.user["note"] = secret * 3
        async with mem.turn("b", "u1") as state:
            state.user["email"] = secret + "-changed"
        for other in range(50):  # plenty of other rows on the same pages
            async with mem.turn("b", f"other{other}") as state:
                state.user["email"] = f"{other}@example.com"
        await mem.forget_user("b", "u1")
        files = list(tmp_path.glob("secure.db*"))
        assert files
        for path in files:
            assert secret.encode() not in path.read_bytes(), path.name


async def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    async with await Memory.open(f"sqlite:///{path}"):
        pass
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(SchemaVersionError, match="newer"):
        await Memory.open(f"sqlite:///{path}")


async def test_janitor_queries_use_the_expiry_indexes(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    async with await Memory.open(f"sqlite:///{path}"):
        pass
    db = sqlite3.connect(path)
    plans = {
        "variables": "SELECT * FROM variables WHERE expires_at <= 1 AND scope = 'user' "
        "ORDER BY expires_at LIMIT 10",
        "sessions": "SELECT bot_id, key FROM sessions WHERE expires_at <= 1 LIMIT 10",
        "temp": "SELECT bot_id, key FROM sessions WHERE temp_expires_at <= 1 LIMIT 10",
        "kvs": "SELECT namespace, key FROM kvs WHERE expires_at <= 1 LIMIT 10",
    }
    for table, query in plans.items():
        plan = " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (table, plan)
    db.close()


async def test_data_survives_a_restart(tmp_path: Path, clock: ManualClock) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    async with await Memory.open(url, clock=clock) as mem, mem.turn("b", "u1") as state:
        state.user["name"] = "Ada"
        state.session["topic"] = "x"
    async with await Memory.open(url, clock=clock) as mem, mem.turn("b", "u1") as state:
        assert state.user["name"] == "Ada"
        assert state.session["topic"] == "x"
