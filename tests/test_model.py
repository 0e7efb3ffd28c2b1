"""Random sequences of operations against a plain Python model of the rules.

Hypothesis draws turns, KVS writes, clock moves and janitor runs; after every step the
memory must show exactly what the model says: nothing outlives its expiry, nothing
comes back after it was deleted, nothing set is lost.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botmemory import ManualClock, Memory

USERS = ("u1", "u2")
NAMES = ("mood", "name", "tmp_a")
POLICIES = {"mood": 3600.0, "tmp_*": 60.0}
SESSION, TEMP = 1800.0, 300.0

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("user"), st.sampled_from(USERS), st.sampled_from(NAMES), st.integers(0, 3)
        ),
        st.tuples(
            st.just("session"), st.sampled_from(USERS), st.sampled_from(NAMES), st.integers(0, 3)
        ),
        st.tuples(
            st.just("temp"), st.sampled_from(USERS), st.sampled_from(NAMES), st.integers(0, 3)
        ),
        st.tuples(st.just("delete"), st.sampled_from(USERS), st.sampled_from(NAMES), st.just(0)),
        st.tuples(st.just("end_flow"), st.sampled_from(USERS), st.just(""), st.just(0)),
        st.tuples(st.just("kvs"), st.just(""), st.sampled_from(NAMES), st.integers(0, 400)),
        st.tuples(
            st.just("wait"),
            st.just(""),
            st.just(""),
            st.sampled_from([1, 59, 60, 61, 299, 300, 1799, 1800, 3599, 3600]),
        ),
        st.tuples(st.just("janitor"), st.just(""), st.just(""), st.just(0)),
    ),
    min_size=3,
    max_size=40,
)


@dataclass
class Model:
    """What the rules say the memory holds."""

    now: float = 1_700_000_000.0
    user: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)
    session: dict[str, dict[str, int]] = field(default_factory=dict)
    temp: dict[str, dict[str, int]] = field(default_factory=dict)
    last_turn: dict[str, float] = field(default_factory=dict)
    kvs: dict[str, tuple[int, float | None]] = field(default_factory=dict)

    def ttl(self, name: str) -> float | None:
        return POLICIES.get(name, POLICIES["tmp_*"] if name.startswith("tmp_") else None)

    def visible_user(self, user: str) -> dict[str, int]:
        out = {}
        for name, (value, changed) in self.user.get(user, {}).items():
            ttl = self.ttl(name)
            if ttl is None or changed + ttl > self.now:
                out[name] = value
        return out

    def begin(self, user: str) -> None:
        last = self.last_turn.get(user)
        if last is None or self.now >= last + SESSION:
            self.session[user], self.temp[user] = {}, {}
        elif self.now >= last + TEMP:
            self.temp[user] = {}
        visible = self.visible_user(user)
        self.user[user] = {n: v for n, v in self.user.get(user, {}).items() if n in visible}

    def set_user(self, user: str, name: str, value: int) -> None:
        old = self.user[user].get(name)
        if old is None or old[0] != value:
            self.user[user][name] = (value, self.now)


async def replay(url: str, ops: list[tuple[str, str, str, int]]) -> None:
    clock = ManualClock(1_700_000_000.0)
    model = Model()
    config: dict[str, Any] = {
        "dataRetention": {"policies": {"mood": "1h", "tmp_*": "1m"}},
        "dialog": {"timeoutInterval": "5m", "sessionTimeoutInterval": "30m"},
        "session": {"lastMessages": 0},
    }
    async with await Memory.open(url, config, clock=clock) as mem:
        kvs = mem.kvs.for_bot("b")
        for kind, user, name, number in ops:
            if kind == "wait":
                clock.advance(timedelta(seconds=number))
                model.now += number
            elif kind == "janitor":
                await mem.janitor.run_once()
            elif kind == "kvs":
                await kvs.set(name, number, expiry=f"{number + 1}s")
                model.kvs[name] = (number, model.now + number + 1)
            else:
                async with mem.turn("b", user) as state:
                    model.begin(user)
                    if kind == "user":
                        state.user[name] = number
                        model.set_user(user, name, number)
                    elif kind in ("session", "temp"):
                        getattr(state, kind)[name] = number
                        getattr(model, kind)[user][name] = number
                    elif kind == "delete":
                        state.user.pop(name, None)
                        model.user[user].pop(name, None)
                    elif kind == "end_flow":
                        state.end_flow()
                        model.temp[user] = {}
                model.last_turn[user] = model.now
            await check(mem, model)


async def check(mem: Memory, model: Model) -> None:
    for user in USERS:
        view = await mem.peek("b", user)
        scopes = view.scopes
        assert {n: e.value for n, e in scopes["user"].items()} == model.visible_user(user)
        last = model.last_turn.get(user)
        alive = last is not None and model.now < last + SESSION
        expected_session = model.session.get(user, {}) if alive else {}
        assert {n: e.value for n, e in scopes["session"].items()} == expected_session
        temp_alive = alive and last is not None and model.now < last + TEMP
        expected_temp = model.temp.get(user, {}) if temp_alive else {}
        assert {n: e.value for n, e in scopes["temp"].items()} == expected_temp
    kvs = mem.kvs.for_bot("b")
    live = {k: v for k, (v, exp) in model.kvs.items() if exp is None or exp > model.now}
    assert {k: await kvs.get(k) for k in await kvs.keys()} == live


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_memory_backend_follows_the_rules(ops: list[tuple[str, str, str, int]]) -> None:
    asyncio.run(replay("memory://", ops))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_sqlite_backend_follows_the_rules(ops: list[tuple[str, str, str, int]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(replay(f"sqlite:///{folder}/m.db", ops))
