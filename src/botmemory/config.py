"""Load the configuration: one global file and one optional file per bot.

A data folder holds ``global/botmemory.config.json`` and ``bots/<botId>/bot.config.json``,
both JSON5 and both optional. A bot's file may set only ``dialog``, ``session``,
``sessionIntervalTimeout`` and ``dataRetention.policies``; its values win over the global
ones key by key, its policies are merged over the global ones. All problems in all files
are raised as one :class:`ConfigError`, each with its file, line, key and bad value.
To add a setting, add a field to a section model and carry it into the resolved settings.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, TypeVar

import json5
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from botmemory.durations import format_duration, parse_duration, parse_interval
from botmemory.errors import ConfigError, InvalidDurationError, InvalidValueError
from botmemory.ids import BOT_ID_PATTERN
from botmemory.values import parse_path

__all__ = [
    "BOT_FILE",
    "BOT_ID_PATTERN",
    "DATABASE_URL_ENV",
    "GLOBAL_FILE",
    "BotSettings",
    "Settings",
    "load_data_dir",
    "load_settings",
]

GLOBAL_FILE: Final = "global/botmemory.config.json"
BOT_FILE: Final = "bot.config.json"
DATABASE_URL_ENV: Final = "BOTMEMORY_DATABASE_URL"

_WHERE: Final = "value"
_SYNTAX: Final = re.compile(r"<string>:(?P<line>\d+) (?P<reason>.*) at column (?P<column>\d+)")
_COMMENT: Final = re.compile(r"(?:^|\s)//")


# --- Values -------------------------------------------------------------------------


def _duration(parse: Callable[[object], float | None], value: object) -> float | None:
    """Run ``parse``; turn its error into a pydantic error that keeps the message."""
    try:
        return parse(value)
    except InvalidDurationError as exc:
        reason = str(exc).removeprefix(f"{_WHERE}: ")
        raise PydanticCustomError("config", "{reason}", {"reason": reason}) from None


def _interval(value: object) -> float | None:
    return _duration(lambda v: parse_interval(v, where=_WHERE), value)


def _policy(value: object) -> float | None:
    seconds = _duration(lambda v: parse_duration(v, where=_WHERE, allow_never=True), value)
    if seconds == 0:
        reason = f"{value!r} would expire data at once: give a duration above zero, or 'never'"
        raise PydanticCustomError("config", "{reason}", {"reason": reason})
    return seconds


Interval = Annotated[float, BeforeValidator(_interval)]
"""An interval in seconds, written as a duration (``"10s"``); zero and ``"never"`` fail."""
OptionalInterval = Annotated[float | None, BeforeValidator(_interval)]
Policy = Annotated[float | None, BeforeValidator(_policy)]
"""A retention time in seconds, above zero; ``None`` when written ``"never"``."""


# --- Sections of the files ----------------------------------------------------------


class Section(BaseModel):
    """A JSON object in a config file: unknown keys fail, values are never coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DialogSection(Section):
    """``dialog``: when dialogs and sessions end."""

    janitor_interval: Interval = Field(default=parse_interval("10s"), alias="janitorInterval")
    """Seconds between two sweeps for timed-out dialogs; default ``"10s"``."""
    timeout_interval: Interval = Field(
        default=parse_interval("5m"),
        validation_alias=AliasChoices("timeoutInterval", "intervalTimeout"),
    )
    """Seconds of silence that end a dialog and its temp memory; default ``"5m"``."""
    session_timeout_interval: Interval = Field(
        default=parse_interval("30m"), alias="sessionTimeoutInterval"
    )
    """Seconds of silence that end a session; default ``"30m"``."""


class SessionSection(Section):
    """``session``: what a session keeps."""

    last_messages: int = Field(default=5, alias="lastMessages", ge=0)
    """How many of the user's last messages a session keeps; default 5."""


class BotRetentionSection(Section):
    """``dataRetention`` as a bot's file may set it."""

    policies: dict[str, Policy] = Field(default_factory=dict)
    """Variable name, dotted path or glob -> retention time in seconds; default none."""

    @field_validator("policies")
    @classmethod
    def _policy_keys(cls, policies: dict[str, float | None]) -> dict[str, float | None]:
        for key in policies:
            try:
                parse_path(key)
            except InvalidValueError:
                reason = f"policy key {key!r} is not a variable name, dotted path or glob"
                raise PydanticCustomError("config", "{reason}", {"reason": reason}) from None
        return policies


class RetentionSection(BotRetentionSection):
    """``dataRetention`` in the global file."""

    janitor_interval: Interval = Field(default=parse_interval("10m"), alias="janitorInterval")
    """Seconds between two sweeps for expired data; default ``"10m"``."""


class DatabaseSection(Section):
    """``database``: where the memory is stored."""

    url: str | None = Field(default=None, min_length=1)
    """Storage URL; default ``sqlite:///<data folder>/memory.db``."""


class LimitsSection(Section):
    """``limits``: sizes botmemory refuses to exceed."""

    max_value_bytes: int = Field(default=1_048_576, alias="maxValueBytes", gt=0)
    """Largest serialized value in bytes; default 1048576 (1 MiB)."""


class BotFile(Section):
    """What ``bots/<botId>/bot.config.json`` may set."""

    dialog: DialogSection = Field(default_factory=DialogSection)
    session: SessionSection = Field(default_factory=SessionSection)
    data_retention: BotRetentionSection = Field(
        default_factory=BotRetentionSection, alias="dataRetention"
    )
    session_interval_timeout: OptionalInterval = Field(default=None, alias="sessionIntervalTimeout")
    """Another name for ``dialog.sessionTimeoutInterval``; default unset."""

    @field_validator("session_interval_timeout")
    @classmethod
    def _one_spelling(cls, value: float | None, info: ValidationInfo) -> float | None:
        dialog = info.data.get("dialog")
        if isinstance(dialog, DialogSection) and "session_timeout_interval" in (
            dialog.model_fields_set
        ):
            raise PydanticCustomError(
                "config",
                "another name for dialog.sessionTimeoutInterval, which is also given: "
                "give only one",
            )
        return value


class GlobalFile(BotFile):
    """What ``global/botmemory.config.json`` may set."""

    database: DatabaseSection = Field(default_factory=DatabaseSection)
    data_retention: RetentionSection = Field(
        default_factory=RetentionSection, alias="dataRetention"
    )
    limits: LimitsSection = Field(default_factory=LimitsSection)


# --- Resolved settings --------------------------------------------------------------


@dataclass(frozen=True)
class BotSettings:
    """Resolved settings that apply to one bot (every duration in seconds)."""

    bot_id: str | None  # None for the defaults of a bot without its own file
    session_timeout: float  # dialog.sessionTimeoutInterval
    dialog_timeout: float  # dialog.timeoutInterval
    dialog_janitor_interval: float  # dialog.janitorInterval
    last_messages: int  # session.lastMessages
    policies: Mapping[str, float | None]  # global merged with the bot's; None: never expires
    max_value_bytes: int  # limits.maxValueBytes


@dataclass(frozen=True)
class Settings:
    """The whole resolved configuration."""

    database_url: str | None  # None when built from dicts without database.url
    janitor_interval: float  # dataRetention.janitorInterval, seconds
    defaults: BotSettings  # what a bot without its own file gets (bot_id None)
    bots: Mapping[str, BotSettings]  # bots that have a folder or an entry in bot_configs
    data_dir: Path | None  # the absolute data folder; None when built from dicts

    def for_bot(self, bot_id: str) -> BotSettings:
        """Return the settings of ``bot_id``: its own, or the defaults."""
        found = self.bots.get(bot_id)
        return found if found is not None else replace(self.defaults, bot_id=bot_id)

    def describe(self) -> dict[str, object]:
        """Return a JSON-able view of the resolved settings, password masked."""
        from botmemory.storage import mask_url  # here: storage may import config

        url = None if self.database_url is None else mask_url(self.database_url)
        return {
            "dataDir": None if self.data_dir is None else str(self.data_dir),
            "database": {"url": url},
            "dataRetention": {"janitorInterval": format_duration(self.janitor_interval)},
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
        },
        "session": {"lastMessages": bot.last_messages},
        "dataRetention": {"policies": policies},
        "limits": {"maxValueBytes": bot.max_value_bytes},
    }


# --- Loading ------------------------------------------------------------------------


def load_settings(
    config: Mapping[str, object] | None = None,
    bot_configs: Mapping[str, Mapping[str, object]] | None = None,
) -> Settings:
    """Build settings from dicts shaped like the files (``config`` is the global file)."""
    problems: list[str] = []
    bot_docs: dict[str, _Document | None] = {}
    for bot_id, data in (bot_configs or {}).items():
        if _valid_bot_id(bot_id, f"bots.{bot_id}", problems):
            bot_docs[bot_id] = _Document(f"bots.{bot_id}", _plain(data))
    global_doc = _Document("config", _plain(config or {}))
    return _resolve(global_doc, bot_docs, problems, data_dir=None)


def load_data_dir(path: str | os.PathLike[str]) -> Settings:
    """Load a data folder; a non-empty ``BOTMEMORY_DATABASE_URL`` overrides ``database.url``."""
    root = Path(path)
    if not root.is_dir():
        raise ConfigError([f"data folder {str(path)!r} does not exist or is not a folder"])
    root = root.resolve()
    problems: list[str] = []
    bot_ids = _bot_folders(root, problems)
    global_doc = _read(root, GLOBAL_FILE, problems)
    bot_docs = {bot_id: _read(root, f"bots/{bot_id}/{BOT_FILE}", problems) for bot_id in bot_ids}
    settings = _resolve(global_doc, bot_docs, problems, data_dir=root)
    env_url = os.environ.get(DATABASE_URL_ENV)
    return replace(settings, database_url=env_url) if env_url else settings


@dataclass(frozen=True)
class _Document:
    """One source of configuration: where it comes from, what it holds, its text."""

    place: str
    data: object
    text: str | None = None


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
    folder = root / "bots"
    entries = sorted(e for e in folder.iterdir() if e.is_dir()) if folder.is_dir() else []
    return [e.name for e in entries if _valid_bot_id(e.name, f"bots/{e.name}", problems)]


def _read(root: Path, relative: str, problems: list[str]) -> _Document | None:
    path = root / relative
    if not path.exists():
        return _Document(relative, {})
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeError) as exc:
        problems.append(f"{relative}: cannot be read: {exc}")
        return None
    try:
        return _Document(relative, json5.loads(text), text)
    except ValueError as exc:
        problems.append(_syntax_problem(relative, exc))
        return None


def _syntax_problem(place: str, exc: ValueError) -> str:
    match = _SYNTAX.fullmatch(str(exc))
    if match is None:
        return f"{place}: not valid JSON5: {exc}"
    reason = match["reason"]
    if reason.startswith('Unexpected "'):
        reason += " (is a comma, quote or bracket missing before it?)"
    return f"{place}, line {match['line']}, column {match['column']}: not valid JSON5: {reason}"


_F = TypeVar("_F", bound=BotFile)
_S = TypeVar("_S", bound=Section)


def _resolve(
    global_doc: _Document | None,
    bot_docs: Mapping[str, _Document | None],
    problems: list[str],
    data_dir: Path | None,
) -> Settings:
    base = _validate(GlobalFile, global_doc, problems)
    bots = {bot_id: _validate(BotFile, doc, problems) for bot_id, doc in bot_docs.items()}
    if problems or base is None:
        raise ConfigError(problems)
    base = _normalized(base)
    resolved = {
        bot_id: _bot_settings(bot_id, _overlay(base, _normalized(bot)))
        for bot_id, bot in sorted(bots.items())
        if bot is not None
    }
    return Settings(
        database_url=base.database.url or _default_url(data_dir),
        janitor_interval=base.data_retention.janitor_interval,
        defaults=_bot_settings(None, base),
        bots=MappingProxyType(resolved),
        data_dir=data_dir,
    )


def _default_url(data_dir: Path | None) -> str | None:
    return None if data_dir is None else f"sqlite:///{data_dir.as_posix().lstrip('/')}/memory.db"


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
        policies=MappingProxyType(dict(file.data_retention.policies)),
        max_value_bytes=file.limits.max_value_bytes,
    )


# --- Problems -----------------------------------------------------------------------


def _validate(model: type[_F], doc: _Document | None, problems: list[str]) -> _F | None:
    if doc is None:
        return None
    if not isinstance(doc.data, dict):
        problems.append(f"{doc.place}: the top level must be an object, got {_quote(doc.data)}")
        return None
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        found = [_problem(model, doc, error) for error in exc.errors()]
        problems.extend(text for _, text in sorted(found, key=lambda item: item[0]))
        return None


def _problem(model: type[Section], doc: _Document, error: ErrorDetails) -> tuple[int, str]:
    """Return the line (0 if unknown) and the text of one validation error."""
    loc = [str(part) for part in error["loc"]]
    line = None if doc.text is None else _key_line(doc.text, loc)
    where = doc.place if line is None else f"{doc.place}, line {line}"
    detail = _detail(model, loc, error)
    return line or 0, (f"{where}: {'.'.join(loc)}: {detail}" if loc else f"{where}: {detail}")


def _detail(model: type[Section], loc: list[str], error: ErrorDetails) -> str:
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return _unknown_key(model, loc)
    if kind == "config":
        return message
    if kind in ("model_type", "dict_type"):
        return f"should be an object, got {_quote(error['input'])}"
    return f"{message.removeprefix('Input ')}, got {_quote(error['input'])}"


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:76]}...{text[-1]}"


def _unknown_key(model: type[Section], loc: list[str]) -> str:
    parent, key = loc[:-1], loc[-1]
    keys = _keys(_section_at(model, parent))
    if key in keys:
        return f"another name for {keys[key][0]!r}, which is also given: give only one"
    if key in _keys(_section_at(GlobalFile, parent)):
        return f"only allowed in the global file ({GLOBAL_FILE}), not in a bot's file"
    hint = difflib.get_close_matches(key, keys, n=1)
    if hint:
        return f"unknown key {key!r}: did you mean {hint[0]!r}?"
    return f"unknown key {key!r}: the keys here are {', '.join(sorted(keys))}"


def _keys(section: type[Section] | None) -> dict[str, tuple[str, FieldInfo]]:
    """Map every spelling of a key in ``section`` to its main spelling and its field."""
    keys: dict[str, tuple[str, FieldInfo]] = {}
    for name, field in (section.model_fields if section else {}).items():
        alias = field.validation_alias
        spellings = alias.choices if isinstance(alias, AliasChoices) else [field.alias or name]
        for spelling in spellings:
            keys[str(spelling)] = (str(spellings[0]), field)
    return keys


def _section_at(model: type[Section], path: Sequence[str]) -> type[Section] | None:
    section: type[Section] = model
    for key in path:
        found = _keys(section).get(key)
        annotation = None if found is None else found[1].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, Section)):
            return None
        section = annotation
    return section


def _key_line(text: str, loc: Sequence[str]) -> int | None:
    """Return the line of the key at ``loc`` in ``text``, or of its deepest parent found."""
    position, line = 0, None
    for key in loc:
        match = _find_key(text, key, position)
        if match is None:
            break
        position, line = match.end(), text.count("\n", 0, match.start()) + 1
    return line


def _find_key(text: str, key: str, start: int) -> re.Match[str] | None:
    """Find ``key:`` (bare or quoted) from ``start``, skipping ``//`` comments."""
    pattern = re.compile(rf"(?<![\w$])(['\"]?){re.escape(key)}\1\s*:")
    for match in pattern.finditer(text, start):
        line_start = text.rfind("\n", 0, match.start()) + 1
        if not _COMMENT.search(text[line_start : match.start()]):
            return match
    return None
