"""The JSON bodies of the HTTP API, as pydantic models (they are also its OpenAPI schema).

Attributes are snake_case in Python and camelCase on the wire. Every time is given as
epoch seconds (``expiresAt``), with an ISO 8601 UTC twin (``expiresAtIso``) for people.
The models of what :class:`~botmemory.memory.Memory` answers are built from its records
(:mod:`botmemory.views`) by their ``of`` class methods.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic.alias_generators import to_camel

from botmemory import views
from botmemory.clock import iso_or_none, iso_time
from botmemory.storage.base import SCOPES, Scope

__all__ = [
    "ApiModel",
    "BotDetails",
    "BotInfo",
    "BotList",
    "ConverseRequest",
    "ConverseResponse",
    "ErrorBody",
    "ForgetResult",
    "Health",
    "JanitorRun",
    "JanitorStatus",
    "KvsDeleted",
    "KvsEntry",
    "KvsKeys",
    "KvsPut",
    "MemoryPut",
    "MemoryView",
    "Reply",
    "Scopes",
    "SessionEnd",
    "SessionInfo",
    "UserExport",
    "Variable",
    "VariableRef",
    "iso_or_none",
]

"""The four memories."""


class ApiModel(BaseModel):
    """A JSON object of the API: camelCase keys on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ErrorBody(ApiModel):
    """Every error: a stable machine-readable code and a message for people."""

    error: str = Field(examples=["bad_request"])
    """``bad_request``, ``unauthorized``, ``forbidden``, ``not_found``, ``conflict``, ..."""
    message: str = Field(examples=["user id '' is invalid: use a string of 1 to 255 characters"])
    details: list[str] = Field(default_factory=list)
    """One line per invalid field, for a request that failed validation."""


# -- converse ------------------------------------------------------------------------------
class ConverseRequest(ApiModel):
    """A user's message: ``{"type": "text", "text": "hi"}``, or a payload."""

    model_config = ConfigDict(extra="forbid")  # merged with ApiModel's

    type: Literal["text", "quick_reply", "postback", "payload"] = Field(
        default="text", examples=["text"]
    )
    """``"text"`` needs ``text``; any other type needs ``payload`` or ``text``. Flows see
    it as ``event.type``, and ``session.lastMessages`` keeps it."""
    text: str | None = Field(default=None, examples=["hi"])
    payload: Any = None
    """Any JSON value, for buttons and quick replies."""
    channel: str = Field(default="api", min_length=1, max_length=255)
    """The channel the user writes from: user memory is per bot and channel."""
    thread_id: str | None = Field(default=None, min_length=1, max_length=255)
    """A thread of its own session, inside the user's conversation."""
    id: str | None = Field(default=None, min_length=1, max_length=255, examples=["m-42"])
    """The message's id: sent again (a retry after a timeout), the message is not run
    again and the replies of its first run come back. The session remembers the ids
    of its last ``session.messageIds`` messages."""

    @model_validator(mode="after")
    def _has_content(self) -> ConverseRequest:
        if self.type == "text" and self.text is None:
            raise ValueError("a message of type 'text' needs a 'text'")
        if self.text is None and self.payload is None:
            raise ValueError(f"a message of type {self.type!r} needs a 'payload' or a 'text'")
        return self


class Reply(ApiModel):
    """One message of the bot."""

    type: Literal["text"] = "text"
    text: str


class Scopes(ApiModel):
    """Something for each of the four memories."""

    user: dict[str, Any]
    session: dict[str, Any]
    temp: dict[str, Any]
    bot: dict[str, Any]

    @classmethod
    def plain(cls, view: views.MemoryView) -> Scopes:
        """The plain values of ``view``'s memories, as the converse API returns them."""
        return cls(
            **{
                scope: {name: var.value for name, var in view.scopes.get(scope, {}).items()}
                for scope in SCOPES
            }
        )


class ConverseResponse(ApiModel):
    """The bot's replies, and with ``?include=state`` the four memories after the turn."""

    responses: list[Reply]
    state: Scopes | None = None
    """Plain values of the four memories, present with ``?include=state``."""


# -- memory --------------------------------------------------------------------------------
class Variable(ApiModel):
    """A variable's value, and when it goes away if nothing changes."""

    value: Any
    expires_at: float | None
    """Epoch seconds; ``null`` when it never expires."""
    expires_at_iso: str | None


class SessionInfo(ApiModel):
    """Whether the session is alive and when it times out."""

    alive: bool
    expires_at: float | None
    expires_at_iso: str | None


class MemoryView(ApiModel):
    """The four memories of a user's session as the next message would see them."""

    bot_id: str
    user_id: str
    channel: str
    thread_id: str | None
    session_id: str
    now: float
    """The server clock, epoch seconds: count down from it, not from your own clock."""
    now_iso: str
    session: SessionInfo
    scopes: Scopes
    """Each scope maps a variable name to a :class:`Variable`."""

    @classmethod
    def of(cls, view: views.MemoryView) -> MemoryView:
        """Map :meth:`Memory.peek`'s view: its ``to_json()`` is this document."""
        return cls.model_validate(view.to_json())


class MemoryPut(ApiModel):
    """The new value of a variable. Any other field is refused (400)."""

    model_config = ConfigDict(extra="forbid")  # merged with ApiModel's

    value: Any = Field(examples=["Ada"])
    """Any JSON value (integers up to 64 bits, finite numbers)."""


class VariableRef(ApiModel):
    """Which variable a change touched, and what it now holds."""

    scope: Scope
    owner_id: str
    name: str
    value: Any = None
    expires_at: float | None = None
    expires_at_iso: str | None = None
    deleted: bool = False


class SessionEnd(ApiModel):
    """The result of ending a session."""

    ended: bool
    """False when there was no live session."""


class UserExport(ApiModel):
    """Everything still alive for one user (see docs/memory.md, Export and erasure)."""

    bot_id: str
    channel: str
    user_id: str
    exported_at: str
    user: dict[str, Any]
    sessions: list[dict[str, Any]]
    kvs: dict[str, Any]

    @classmethod
    def of(cls, export: views.UserExport) -> UserExport:
        """Map :meth:`Memory.export_user`'s record (its variables and sessions as in
        :meth:`~botmemory.views.UserExport.to_json`)."""
        return cls(
            bot_id=export.bot_id,
            channel=export.channel,
            user_id=export.user_id,
            exported_at=iso_time(export.exported_at),
            user={name: variable.to_json() for name, variable in export.user.items()},
            sessions=[session.to_json() for session in export.sessions],
            kvs=dict(export.kvs),
        )


class ForgetResult(ApiModel):
    """How many rows of each kind erasing a user removed."""

    deleted: dict[str, int]

    @classmethod
    def of(cls, counts: views.ErasureCounts) -> ForgetResult:
        """Map :meth:`Memory.forget_user`'s counts."""
        return cls(deleted=counts.to_json())


# -- key-value store -------------------------------------------------------------------------
class KvsEntry(ApiModel):
    """A key, its value and its expiry."""

    key: str
    value: Any
    expires_at: float | None
    expires_at_iso: str | None


class KvsPut(ApiModel):
    """A value to store, with an optional expiry. Any other field (``expires`` for
    ``expiry``, say) is refused (400): a misspelt expiry must not store a value for ever."""

    model_config = ConfigDict(extra="forbid")  # merged with ApiModel's

    value: Any = Field(examples=[{"text": "Welcome back"}])
    expiry: StrictStr | StrictInt | StrictFloat | None = Field(default=None, examples=["1h"])
    """A duration with a unit (``"1h"``, ``"30d"``), ``"never"`` or null (never expires).

    A bare number has no unit and is refused (400)."""


class KvsDeleted(ApiModel):
    """A key that was deleted."""

    key: str
    deleted: bool


class KvsKeys(ApiModel):
    """Live keys under a prefix, sorted."""

    keys: list[str]


# -- bots, janitor, health --------------------------------------------------------------------
class BotInfo(ApiModel):
    """A bot this server knows."""

    id: str
    has_flows: bool
    """Whether the dialog engine runs it (``bots/<id>/flows/main.flow.json``)."""
    converse_public: bool


class BotList(ApiModel):
    """The bots the caller may use, and how the caller got in."""

    bots: list[BotInfo]
    access: Literal["admin", "bot", "public", "local"]
    """``local``: no token is configured and the request came from this machine."""
    problems: list[str] = []
    """Why the last edits of the bots' files are not running (``serve --reload``): file,
    line, key. The previous version runs meanwhile. Empty without a valid token."""


class BotDetails(BotInfo):
    """A bot and its resolved settings (as ``botmemory config check`` prints them)."""

    settings: dict[str, Any]


class JanitorRun(ApiModel):
    """What one janitor run removed, by kind; or, with ``skipped: true``, that it was
    skipped, removing nothing, because another process was running the janitor."""

    started_at: float
    started_at_iso: str
    duration: float
    """Wall-clock seconds."""
    user_variables: int
    user_fields: int
    sessions: int
    temp: int
    kvs: int
    total: int
    error: str | None
    skipped: bool
    """``true`` when another process (another server worker, ``botmemory janitor run``)
    was running the janitor on the same database: this run removed nothing, that one
    removes what has expired."""


class JanitorStatus(ApiModel):
    """The janitor's loop and its recent runs, newest first."""

    running: bool
    interval: float
    """Seconds between full runs (``dataRetention.janitorInterval``), as a JSON number."""
    session_interval: float
    """Seconds between sweeps of timed-out dialogs and sessions, as a JSON number."""
    runs: list[JanitorRun]


class Health(ApiModel):
    """Whether the server and its storage answer."""

    status: Literal["ok", "unavailable"]
    message: str | None = None
