"""What ``serve`` refuses in a data folder, all found at once: ``botmemory config check``
reports it, and ``serve`` refuses to start with it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from botmemory.config import DATABASE_URL_ENV, GLOBAL_FILE, Settings, load_data_dir
from botmemory.config.problems import Document, key_problem, read_document
from botmemory.errors import BotMemoryError, ConfigError
from botmemory.storage import create_storage

__all__ = ["check_data_dir", "no_bot_problem"]


def check_data_dir(
    data_dir: str, *, allow_empty: bool = False
) -> tuple[Settings | None, list[str]]:
    """Return the settings of ``data_dir`` and every problem ``serve`` would refuse.

    Call it where no event loop runs (it closes the storage it builds to check the URL).
    """
    from botmemory.dialog.bots import load_bots

    settings: Settings | None = None
    problems: list[str] = []
    try:
        settings = load_data_dir(data_dir)
    except ConfigError as exc:
        problems += exc.problems
    if Path(data_dir).is_dir():
        try:
            load_bots(data_dir)
        except ConfigError as exc:
            problems += exc.problems
        if not allow_empty and (problem := no_bot_problem(data_dir)) is not None:
            problems.append(problem)
    if settings is not None and settings.database_url is not None:
        try:
            storage = create_storage(settings.database_url)  # checks the URL, connects not
        except BotMemoryError as exc:
            problems += _url_problems(Path(data_dir), exc)
        else:  # SQLite's starts its worker thread: stop it, `serve` runs on
            asyncio.run(storage.close())
    return settings, problems


def _url_problems(root: Path, exc: BotMemoryError) -> list[str]:
    """The problems of the database URL, each naming where the URL was set."""
    texts = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
    reasons = [text.removeprefix("database.url").removeprefix(":").strip() for text in texts]
    if os.environ.get(DATABASE_URL_ENV):
        return [f"{DATABASE_URL_ENV}: {reason}" for reason in reasons]
    doc = read_document(root.resolve(), GLOBAL_FILE, []) or Document(GLOBAL_FILE, {})
    database = doc.data.get("database") if isinstance(doc.data, dict) else None
    if not (isinstance(database, dict) and database.get("url")):  # the data folder's default
        return [f"{reason} (the default database: database.url is not set)" for reason in reasons]
    return [key_problem(doc, ["database", "url"], reason) for reason in reasons]


def no_bot_problem(data_dir: str) -> str | None:
    """Why ``serve`` refuses ``data_dir`` without ``--allow-empty``; ``None`` if it has a bot."""
    bots = Path(data_dir) / "bots"
    if bots.is_dir() and any((folder / "flows").is_dir() for folder in bots.iterdir()):
        return None
    return (
        f"no bot in {data_dir!r}: a bot is a folder bots/<botId>/ with flows/main.flow.json "
        "(botmemory init creates one); pass --allow-empty to serve it anyway"
    )
