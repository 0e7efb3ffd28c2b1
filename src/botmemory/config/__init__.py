"""Load the configuration: one global file and one optional file per bot.

A data folder holds ``global/botmemory.config.json`` and ``bots/<botId>/bot.config.json``,
both JSON5 and both optional. A bot's file may set only ``dialog``, ``session``,
``converse``, ``sessionIntervalTimeout`` and ``dataRetention.policies``; its values win
over the global ones key by key, its policies are merged over the global ones. All
problems in all files are raised as one :class:`ConfigError`, each with its file, line,
key and bad value. ``files`` holds the schema, ``problems`` the reporting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

from botmemory.config.files import BOT_FILE, GLOBAL_FILE, BotFile, GlobalFile, Section
from botmemory.config.problems import (
    Document,
    dangling_link,
    key_problem,
    read_document,
    validate,
)
from botmemory.durations import Seconds, format_duration
from botmemory.errors import ConfigError
from botmemory.ids import BOT_ID_PATTERN, unknown_bot
from botmemory.urls import mask_url

__all__ = [
    "BOT_FILE",
    "DATABASE_URL_ENV",
    "GLOBAL_FILE",
    "BotSettings",
    "Settings",
    "load_data_dir",
    "load_settings",
]

DATABASE_URL_ENV: Final = "BOTMEMORY_DATABASE_URL"
_DEFAULTED_KEPT: Final = 1024
"""How many bots without their own settings keep a resolved copy of the defaults."""


@dataclass(frozen=True)
class BotSettings:
    """Resolved settings that apply to one bot (every duration a :data:`Seconds`)."""

    bot_id: str | None  # None for the defaults of a bot without its own file
    session_timeout: Seconds  # dialog.sessionTimeoutInterval
    dialog_timeout: Seconds  # dialog.timeoutInterval
    dialog_janitor_interval: Seconds  # dialog.janitorInterval
    last_messages: int  # session.lastMessages
    message_ids: int  # session.messageIds
    policies: Mapping[str, Seconds | None]  # global merged with the bot's; None: never expires
    max_value_bytes: int  # limits.maxValueBytes
    error_reply: str  # dialog.errorReply
    max_steps: int  # dialog.maxSteps
    converse_public: bool  # converse.public
    max_message_bytes: int = 65_536  # limits.maxMessageBytes


@dataclass(frozen=True)
class Settings:
    """The whole resolved configuration."""

    database_url: str | None  # None when built from dicts without database.url
    janitor_interval: Seconds  # dataRetention.janitorInterval
    defaults: BotSettings  # what a bot without its own file gets (bot_id None)
    bots: Mapping[str, BotSettings]  # bots that have a folder or an entry in bot_configs
    data_dir: Path | None  # the absolute data folder; None when built from dicts
    admin_tokens: tuple[str, ...] = ()  # auth.adminTokens
    bot_tokens: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # auth.botTokens
    max_body_bytes: int = 2_097_152  # server.maxBodyBytes
    max_attempts: int = 10  # concurrency.maxAttempts
    _defaulted: dict[str, BotSettings] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def for_bot(self, bot_id: str) -> BotSettings:
        """Return the settings of ``bot_id``: its own, or the defaults."""
        found = self.bots.get(bot_id) or self._defaulted.get(bot_id)
        if found is None:
            found = replace(self.defaults, bot_id=bot_id)
            if len(self._defaulted) >= _DEFAULTED_KEPT:
                self._defaulted.clear()
            self._defaulted[bot_id] = found
        return found

    def describe(self) -> dict[str, object]:
        """Return a JSON-able view of the resolved settings, password masked."""
        url = None if self.database_url is None else mask_url(self.database_url)
        return {
            "dataDir": None if self.data_dir is None else str(self.data_dir),
            "database": {"url": url},
            "dataRetention": {"janitorInterval": format_duration(self.janitor_interval)},
            "auth": {
                "adminTokens": len(self.admin_tokens),
                "botTokens": {bot: len(tokens) for bot, tokens in self.bot_tokens.items()},
            },
            "server": {"maxBodyBytes": self.max_body_bytes},
            "concurrency": {"maxAttempts": self.max_attempts},
            "defaults": _describe_bot(self.defaults),
            "bots": {bot_id: _describe_bot(bot) for bot_id, bot in self.bots.items()},
        }


def _describe_bot(bot: BotSettings) -> dict[str, object]:
    policies = {key: format_duration(ttl) for key, ttl in sorted(bot.policies.items())}
    return {
        "dialog": {
            "janitorInterval": format_duration(bot.dialog_janitor_interval),
            "timeoutInterval": format_duration(bot.dialog_timeout),
            "sessionTimeoutInterval": format_duration(bot.session_timeout),
            "errorReply": bot.error_reply,
            "maxSteps": bot.max_steps,
        },
        "session": {"lastMessages": bot.last_messages, "messageIds": bot.message_ids},
        "converse": {"public": bot.converse_public},
        "dataRetention": {"policies": policies},
        "limits": {
            "maxValueBytes": bot.max_value_bytes,
            "maxMessageBytes": bot.max_message_bytes,
        },
    }


def load_settings(
    config: Mapping[str, object] | None = None,
    bot_configs: Mapping[str, Mapping[str, object]] | None = None,
) -> Settings:
    """Build settings from dicts shaped like the files (``config`` is the global file)."""
    problems: list[str] = []
    bot_docs: dict[str, Document | None] = {}
    for bot_id, data in (bot_configs or {}).items():
        if _valid_bot_id(bot_id, f"bots.{bot_id}", problems):
            bot_docs[bot_id] = Document(f"bots.{bot_id}", _plain(data))
    global_doc = Document("config", _plain(config or {}))
    return _resolve(global_doc, bot_docs, problems, data_dir=None)


def load_data_dir(path: str | os.PathLike[str]) -> Settings:
    """Load a data folder; a non-empty ``BOTMEMORY_DATABASE_URL`` overrides ``database.url``."""
    root = Path(path)
    if root.is_symlink() and not root.exists():  # `cp -r` of examples/data copies its link
        raise ConfigError(
            [
                f"data folder {str(path)!r} is a link to {os.readlink(root)!r}, which does not "
                "exist from there: copy the folder itself (cp -rL)"
            ]
        )
    if not root.is_dir():
        raise ConfigError([f"data folder {str(path)!r} does not exist or is not a folder"])
    root = root.resolve()
    problems: list[str] = []
    bot_ids = _bot_folders(root, problems)
    global_doc = read_document(root, GLOBAL_FILE, problems)
    bot_docs = {
        bot_id: read_document(root, f"bots/{bot_id}/{BOT_FILE}", problems) for bot_id in bot_ids
    }
    _check_bot_tokens(global_doc, bot_ids, problems)
    settings = _resolve(global_doc, bot_docs, problems, data_dir=root)
    env_url = os.environ.get(DATABASE_URL_ENV)
    return replace(settings, database_url=_database_url(env_url, root)) if env_url else settings


def _check_bot_tokens(doc: Document | None, bot_ids: list[str], problems: list[str]) -> None:
    """Report ``auth.botTokens`` entries for bots that have no folder."""
    if doc is None or not isinstance(doc.data, dict):
        return
    auth = doc.data.get("auth")
    tokens = auth.get("botTokens") if isinstance(auth, dict) else None
    for bot_id in tokens if isinstance(tokens, dict) else ():
        if bot_id not in bot_ids:
            message = unknown_bot(str(bot_id), bot_ids, f"(no folder bots/{bot_id}/)")
            problems.append(key_problem(doc, ["auth", "botTokens", str(bot_id)], message))


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _valid_bot_id(bot_id: object, place: str, problems: list[str]) -> bool:
    if isinstance(bot_id, str) and BOT_ID_PATTERN.fullmatch(bot_id):
        return True
    rule = "use 1 to 64 letters, digits, '_' or '-'"
    problems.append(f"{place}: {bot_id!r} is not a valid bot id: {rule}")
    return False


def _bot_folders(root: Path, problems: list[str]) -> list[str]:
    """The bots' folders; a hidden one (``bots/.git``) is no bot, and no problem, but a
    link to nothing is one: the bot would silently be gone."""
    folder = root / "bots"
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    entries = [e for e in entries if not e.name.startswith(".")]
    for link in (e for e in entries if e.is_symlink() and not e.exists()):
        problems.append(dangling_link(f"bots/{link.name}", link))
    names = [e.name for e in entries if e.is_dir()]
    return [name for name in names if _valid_bot_id(name, f"bots/{name}", problems)]


_F = TypeVar("_F", bound=BotFile)
_S = TypeVar("_S", bound=Section)


def _resolve(
    global_doc: Document | None,
    bot_docs: Mapping[str, Document | None],
    problems: list[str],
    data_dir: Path | None,
) -> Settings:
    base = validate(GlobalFile, global_doc, problems)
    bots = {bot_id: validate(BotFile, doc, problems) for bot_id, doc in bot_docs.items()}
    if problems or base is None:
        raise ConfigError(problems)
    base = _normalized(base)
    resolved = {
        bot_id: _bot_settings(bot_id, _overlay(base, _normalized(bot)))
        for bot_id, bot in sorted(bots.items())
        if bot is not None
    }
    return Settings(
        database_url=_database_url(base.database.url, data_dir),
        janitor_interval=base.data_retention.janitor_interval,
        defaults=_bot_settings(None, base),
        bots=MappingProxyType(resolved),
        data_dir=data_dir,
        admin_tokens=tuple(base.auth.admin_tokens),
        bot_tokens=MappingProxyType({b: tuple(t) for b, t in base.auth.bot_tokens.items()}),
        max_body_bytes=base.server.max_body_bytes,
        max_attempts=base.concurrency.max_attempts,
    )


def _database_url(url: str | None, data_dir: Path | None) -> str | None:
    """The URL to open: from dicts, ``url`` as given; in a data folder, ``url`` (else
    ``memory.db``) with a SQLite file's path made absolute from the folder, wherever a
    command runs from, and its scheme written ``sqlite``."""
    if data_dir is None:
        return url
    scheme, _, rest = (url or "sqlite:///memory.db").partition("://")
    if url is not None and scheme.lower() != "sqlite":
        return url
    path = rest[1:] if rest.startswith("/") else rest  # as sqlite_path reads it
    if path in ("", ":memory:"):  # a database in memory, of this process only
        return f"sqlite://{rest}"
    return f"sqlite:///{(data_dir / path).as_posix()}"


def _normalized(file: _F) -> _F:
    """Move the top-level ``sessionIntervalTimeout`` into ``dialog``."""
    if file.session_interval_timeout is None:
        return file
    update = {"session_timeout_interval": file.session_interval_timeout}
    return file.model_copy(update={"dialog": file.dialog.model_copy(update=update)})


def _overlay(base: _S, top: Section) -> _S:
    """Return ``base`` with every value ``top`` sets; objects merge key by key."""
    update: dict[str, Any] = {}
    for name in top.model_fields_set:
        new, old = getattr(top, name), getattr(base, name)
        if isinstance(new, Section):
            update[name] = _overlay(old, new)
        elif isinstance(new, dict):
            update[name] = {**old, **new}
        else:
            update[name] = new
    return base.model_copy(update=update)


def _bot_settings(bot_id: str | None, file: GlobalFile) -> BotSettings:
    return BotSettings(
        bot_id=bot_id,
        session_timeout=file.dialog.session_timeout_interval,
        dialog_timeout=file.dialog.timeout_interval,
        dialog_janitor_interval=file.dialog.janitor_interval,
        last_messages=file.session.last_messages,
        message_ids=file.session.message_ids,
        policies=MappingProxyType(dict(file.data_retention.policies)),
        max_value_bytes=file.limits.max_value_bytes,
        max_message_bytes=file.limits.max_message_bytes,
        error_reply=file.dialog.error_reply,
        max_steps=file.dialog.max_steps,
        converse_public=file.converse.public,
    )
