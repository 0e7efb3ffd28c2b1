"""The schema of the configuration files: one pydantic model per JSON object.

To add a setting, add a field (with a docstring giving its unit and default) to a
section model here, and carry it into the resolved settings in ``config/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from botmemory.durations import Seconds, parse_interval, parse_lifetime
from botmemory.errors import InvalidDurationError, InvalidValueError
from botmemory.retention import GLOB_CHARS
from botmemory.storage import SCHEMES
from botmemory.values import parse_path

GLOBAL_FILE: Final = "global/botmemory.config.json"
BOT_FILE: Final = "bot.config.json"
DEFAULT_ERROR_REPLY: Final = "Sorry, something went wrong on my side. Please try again."
"""What a bot answers when a turn fails, unless ``dialog.errorReply`` says otherwise."""
MIN_TOKEN_LENGTH: Final = 16
URL_SCHEMES: Final = SCHEMES
"""The schemes of ``database.url`` that a backend serves."""

_WHERE: Final = "value"


def _duration(parse: Callable[[object], Seconds | None], value: object) -> Seconds | None:
    """Run ``parse``; turn its error into a pydantic error that keeps the message."""
    try:
        return parse(value)
    except InvalidDurationError as exc:
        reason = str(exc).removeprefix(f"{_WHERE}: ")
        raise PydanticCustomError("config", "{reason}", {"reason": reason}) from None


def _interval(value: object) -> Seconds | None:
    return _duration(lambda v: parse_interval(v, where=_WHERE), value)


def _policy(value: object) -> Seconds | None:
    return _duration(lambda v: parse_lifetime(v, where=_WHERE), value)


Interval = Annotated[Seconds, BeforeValidator(_interval)]
"""An interval, written as a duration (``"10s"``); zero and ``"never"`` fail."""

OptionalInterval = Annotated[Seconds | None, BeforeValidator(_interval)]

Policy = Annotated[Seconds | None, BeforeValidator(_policy)]
"""A retention time of at least 1 ms; ``None`` when written ``"never"``."""


def _policy_key(key: str) -> str:
    field = key.partition(".")[2]
    try:
        path = parse_path(key)
        reason = None
    except InvalidValueError:
        reason = f"policy key {key!r} is not a variable name, dotted path or glob"
    if reason is None and any(isinstance(segment, int) for segment in path):
        reason = (
            f"policy key {key!r} names a list item: a policy covers a variable or a field "
            "of an object, not an item of a list (the items after it move when it goes)"
        )
    elif reason is None and GLOB_CHARS.intersection(field):
        reason = (
            f"policy key {key!r} has a glob in its field: a glob may match variable names "
            "('prof*.phone'), the field after the first '.' is written out"
        )
    if reason is not None:
        raise PydanticCustomError("config", "{reason}", {"reason": reason})
    return key


PolicyKey = Annotated[str, AfterValidator(_policy_key)]
"""A variable name, dotted path or glob; each bad key is its own problem."""


Token = Annotated[str, Field(min_length=MIN_TOKEN_LENGTH)]
"""A bearer token: at least 16 characters."""


class Section(BaseModel):
    """A JSON object in a config file: unknown keys fail, values are never coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DialogSection(Section):
    """``dialog``: when dialogs and sessions end."""

    janitor_interval: Interval = Field(default=parse_interval("10s"), alias="janitorInterval")
    """Time between two sweeps for timed-out dialogs; default ``"10s"``."""
    timeout_interval: Interval = Field(
        default=parse_interval("5m"),
        validation_alias=AliasChoices("timeoutInterval", "intervalTimeout"),
    )
    """Silence that ends a dialog and its temp memory; default ``"5m"``."""
    session_timeout_interval: Interval = Field(
        default=parse_interval("30m"), alias="sessionTimeoutInterval"
    )
    """Silence that ends a session; default ``"30m"``."""
    error_reply: str = Field(default=DEFAULT_ERROR_REPLY, alias="errorReply", min_length=1)
    """What the bot answers when a turn fails; default a short apology."""
    max_steps: int = Field(default=100, alias="maxSteps", ge=1)
    """Nodes one turn may visit without waiting for the user; default 100."""


class SessionSection(Section):
    """``session``: what a session keeps."""

    last_messages: int = Field(default=5, alias="lastMessages", ge=0)
    """How many of the user's last messages a session keeps; default 5."""
    message_ids: int = Field(default=20, alias="messageIds", ge=0, le=1000)
    """How many message ids (with their replies) a session remembers, to answer a
    repeated message without running it again; default 20."""


class ConverseSection(Section):
    """``converse``: the HTTP converse route of a bot."""

    public: bool = False
    """Whether the converse route answers without a token (for a web chat); default false."""


class BotRetentionSection(Section):
    """``dataRetention`` as a bot's file may set it."""

    policies: dict[PolicyKey, Policy] = Field(default_factory=dict)
    """Variable name, dotted path or glob -> retention time (or ``"never"``); default none."""


class RetentionSection(BotRetentionSection):
    """``dataRetention`` in the global file."""

    janitor_interval: Interval = Field(default=parse_interval("10m"), alias="janitorInterval")
    """Time between two sweeps for expired data; default ``"10m"``."""


class DatabaseSection(Section):
    """``database``: where the memory is stored."""

    url: str | None = Field(default=None, min_length=1)
    """Storage URL; default ``sqlite:///<data folder>/memory.db``."""

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str | None) -> str | None:
        scheme, sep, _ = (url or "memory://").partition("://")
        if not sep or scheme.lower() not in URL_SCHEMES:
            shown = url if "@" not in (url or "") else f"{scheme}://***"
            known = ", ".join(f"{s}://" for s in URL_SCHEMES)
            reason = f"{shown!r} is not a supported storage URL: use {known}"
            raise PydanticCustomError("config", "{reason}", {"reason": reason})
        return url


class LimitsSection(Section):
    """``limits``: sizes botmemory refuses to exceed."""

    max_value_bytes: int = Field(default=1_048_576, alias="maxValueBytes", gt=0)
    """Largest serialized value in bytes; default 1048576 (1 MiB)."""
    max_message_bytes: int = Field(default=65_536, alias="maxMessageBytes", gt=0)
    """Largest user message (its text in UTF-8 plus its payload as JSON) in bytes; a larger
    one is refused before anything is stored; default 65536 (64 KiB)."""


class AuthSection(Section):
    """``auth``: bearer tokens of the HTTP API (global file only)."""

    admin_tokens: list[Token] = Field(default_factory=list, alias="adminTokens")
    """Tokens that may use every route of every bot; default none."""
    bot_tokens: dict[str, list[Token]] = Field(default_factory=dict, alias="botTokens")
    """Bot id -> tokens that may use that bot's routes only; default none."""


class ServerSection(Section):
    """``server``: the HTTP server (global file only)."""

    max_body_bytes: int = Field(default=2_097_152, alias="maxBodyBytes", gt=0)
    """Largest request body in bytes; default 2097152 (2 MiB)."""


class ConcurrencySection(Section):
    """``concurrency``: turns that conflict with concurrent turns (global file only)."""

    max_attempts: int = Field(default=10, alias="maxAttempts", ge=1, le=1000)
    """How many times a turn runs before ConflictError, counting the first; default 10."""


class BotFile(Section):
    """What ``bots/<botId>/bot.config.json`` may set."""

    dialog: DialogSection = Field(default_factory=DialogSection)
    session: SessionSection = Field(default_factory=SessionSection)
    converse: ConverseSection = Field(default_factory=ConverseSection)
    data_retention: BotRetentionSection = Field(
        default_factory=BotRetentionSection, alias="dataRetention"
    )
    session_interval_timeout: OptionalInterval = Field(default=None, alias="sessionIntervalTimeout")
    """Another name for ``dialog.sessionTimeoutInterval``; default unset."""

    @field_validator("session_interval_timeout")
    @classmethod
    def _one_spelling(cls, value: Seconds | None, info: ValidationInfo) -> Seconds | None:
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
    auth: AuthSection = Field(default_factory=AuthSection)
    server: ServerSection = Field(default_factory=ServerSection)
    concurrency: ConcurrencySection = Field(default_factory=ConcurrencySection)
