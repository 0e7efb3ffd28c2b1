"""The standard turn of ``bench/turns.py`` on LangGraph's blocking ``SqliteStore``.

Each memory is a namespace: ``(bot, "user", user)`` with 10 items, ``(bot, "bot")`` with
20, ``(bot, "session", session)`` with 6, ``(bot, "temp", session)`` with 3, and the
session record is an item of ``(bot, "sessions")``. A turn reads all of them in one
``batch`` (one transaction), then writes 2 user items, 2 session items and the session
record in another. The store gets WAL and synchronous=NORMAL like botmemory; no event
loop is counted. Needs ``pip install langgraph-checkpoint-sqlite`` (the ``bench`` extra).
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

BOT = "bench"


def _items(user: int) -> list[tuple[tuple[str, ...], str, dict[str, Any]]]:
    """The stored state of one user, as ``(namespace, key, value)``."""
    u, s = f"user{user}", f"session{user}"
    items = [((BOT, "user", u), f"u{i}", {"v": i, "s": "x" * 20}) for i in range(10)]
    items += [((BOT, "session", s), f"s{i}", {"value": f"session value {i}"}) for i in range(6)]
    items += [((BOT, "temp", s), f"t{i}", {"value": i}) for i in range(3)]
    items.append(((BOT, "sessions"), s, {"user": u, "last_seen": 0.0, "expires_at": 1e12}))
    return items


def langgraph_turn_rate(folder: Path, users: int, turns: int) -> float | None:
    """Standard turns per second on ``SqliteStore``, or None if it cannot be imported."""
    try:
        from langgraph.store.base import GetOp, PutOp, SearchOp
        from langgraph.store.sqlite import SqliteStore
    except ImportError:
        return None
    with SqliteStore.from_conn_string(str(folder / "langgraph.db")) as store:
        conn: sqlite3.Connection = store.conn
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        store.setup()
        ops = [PutOp((BOT, "bot"), f"b{i}", {"value": i}) for i in range(20)]
        for first in range(0, users, 100):
            for user in range(first, min(first + 100, users)):
                ops += [PutOp(ns, key, value) for ns, key, value in _items(user)]
            store.batch(ops)
            ops = []

        def turn(user: int, n: int) -> None:
            u, s = f"user{user}", f"session{user}"
            found = store.batch(
                [
                    SearchOp((BOT, "user", u), limit=100),
                    SearchOp((BOT, "bot"), limit=100),
                    SearchOp((BOT, "session", s), limit=100),
                    SearchOp((BOT, "temp", s), limit=100),
                    GetOp((BOT, "sessions"), s),
                ]
            )
            sizes = [len(items) for items in found[:4]]  # type: ignore[arg-type]
            assert sizes == [10, 20, 6, 3], sizes
            assert found[4] is not None
            store.batch(
                [
                    PutOp((BOT, "user", u), "u0", {"v": n, "s": "changed"}),
                    PutOp((BOT, "user", u), "u1", {"value": n}),
                    PutOp((BOT, "session", s), "s0", {"value": n}),
                    PutOp((BOT, "session", s), "s1", {"value": f"turn {n}"}),
                    PutOp((BOT, "sessions"), s, {"user": u, "last_seen": n, "expires_at": 1e12}),
                ]
            )

        picks = [random.randrange(users) for _ in range(turns + 200)]
        for n, user in enumerate(picks[:200]):  # warm up
            turn(user, n)
        started = time.perf_counter()
        for n, user in enumerate(picks[200:]):
            turn(user, n)
        return turns / (time.perf_counter() - started)
