"""A tour of botmemory's four memories and its retention policies, on a data folder.

Run it with ``.venv/bin/python examples/demo.py``. It writes ``examples/demo-data/``
(embedded SQLite) and moves a simulated clock forward, so a day passes in an instant.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from datetime import timedelta
from pathlib import Path

from botmemory import ManualClock, Memory

DATA = Path(__file__).parent / "demo-data"
CONFIG = """{
  // The seed's example: keep email 60 days, mood 1 day, someChoice 5 minutes.
  dataRetention: {
    janitorInterval: '2m',
    policies: { email: '60d', mood: '1d', someChoice: '5m' },
  },
  sessionIntervalTimeout: '30m',
}
"""
DAY = 86400


def show(title: str, scopes: dict[str, object]) -> None:
    print(f"\n== {title}")
    for name, values in scopes.items():
        print(f"   {name:8} {json.dumps(values, default=str)}")


async def main() -> None:
    shutil.rmtree(DATA, ignore_errors=True)
    (DATA / "global").mkdir(parents=True)
    (DATA / "global" / "botmemory.config.json").write_text(CONFIG)
    (DATA / "bots" / "welcome").mkdir(parents=True)

    clock = ManualClock(time.time())
    async with await Memory.from_data_dir(DATA, clock=clock) as mem:
        print(f"data folder: {DATA} (database: {mem.storage.url})")
        message = {"type": "text", "text": "Hi, I'm Ada"}
        async with mem.turn("welcome", "ada", message=message) as state:
            state.user.update(name="Ada", email="ada@example.com", mood="happy", someChoice="b")
            state.session["topic"] = "billing"
            state.temp["step"] = 1
            state.bot["conversations"] = state.bot.get("conversations", 0) + 1  # type: ignore[operator]
        await mem.kvs.for_bot("welcome").incr("storage/global/visits")

        async def look(title: str) -> None:
            async with mem.turn("welcome", "ada") as state:
                scopes = {
                    "user": dict(state.user),
                    "session": {k: v for k, v in state.session.items() if k != "lastMessages"},
                    "temp": dict(state.temp),
                    "bot": dict(state.bot),
                }
                show(title, scopes)

        await look("right away: all four memories")
        clock.advance(timedelta(seconds=6 * 60))
        await look("6 minutes later: someChoice (5m) and temp (dialog timeout 5m) are gone")
        clock.advance(timedelta(seconds=DAY))
        await look("a day later: the session timed out, mood (1d) is forgotten")
        clock.advance(timedelta(seconds=60 * DAY))
        await look("61 days later: email (60d) is gone too; the name has no policy")
        report = await mem.janitor.run_once()
        print(f"\n{report.summary()}")
        exported = (await mem.export_user("welcome", "ada")).to_json()
        print("\nexport of ada:", json.dumps(exported, indent=2))
        print("forget ada:", (await mem.forget_user("welcome", "ada")).to_json())


if __name__ == "__main__":
    asyncio.run(main())
