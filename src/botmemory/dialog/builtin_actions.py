"""The builtin actions: variables of the four memories, and storage in the key-value store.

Variables: ``base.setVariable`` (``type``, ``name``, ``value``; an empty value or ``"null"``
deletes) and ``base.removeVariable`` (``type``, ``name``); a dotted ``name`` reaches inside
an object (``profile.city``).

Storage (the key-value store of the bot, committed with the turn or not at all):
``builtin.set/getUserVariable`` (``storage/users/<userId>/<name>``),
``builtin.set/getConversationVariable`` (``storage/conversation/<sessionId>/<name>``),
``builtin.set/get/resetGlobalVariable`` (``storage/global/<name>``, in this bot's space).
Setters take ``name``, ``value``, optional ``expiry`` (a duration or ``"never"``) and
optional ``output`` (the value is also written into ``temp[output]``; ``""``: none);
getters take ``name`` and ``output`` and write the value into ``temp[output]``.

``builtin.resetSession`` empties session (keeping ``lastMessages``) and temp;
``builtin.incrementNumberOfConversations`` (optional ``output``) and
``builtin.getNumberOfConversations`` (``output``) count the user's conversations atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Final

from botmemory.dialog.actions import ActionFunction, ActionSpec, ArgsCheck
from botmemory.dialog.events import Event
from botmemory.durations import to_timedelta
from botmemory.errors import BotMemoryError, InvalidDurationError, InvalidValueError
from botmemory.ids import validate_id
from botmemory.kvs import (
    MAX_KEY_LENGTH,
    KeyValueStore,
    conversation_storage_key,
    global_storage_key,
    parse_expiry,
    user_storage_key,
)
from botmemory.scopes import ScopeMemory
from botmemory.storage.base import SCOPES
from botmemory.turns import LAST_MESSAGES, TurnState
from botmemory.values import MISSING, JsonValue, delete_path, parse_path, set_path

__all__ = ["BUILTIN_ACTIONS", "CONVERSATIONS_NAME"]

EMPTY: Final = (None, "", "null")
CONVERSATIONS_NAME: Final = "numberOfConversations"
"""The user storage variable that counts conversations."""

Args = dict[str, JsonValue]


# --- Checking arguments, at load (literal values) and at run time -------------------


def _is_template(value: object) -> bool:
    return isinstance(value, str) and "{{" in value


def _check_type(value: object) -> str | None:
    if value not in SCOPES:
        return f"type {value!r} is not a memory: use one of {', '.join(SCOPES)}"
    return None


def _check_name(value: object, what: str = "name") -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"{what} {value!r} must be a non-empty string"
    if value.startswith("_"):
        return f"{what} {value!r}: names starting with '_' are reserved"
    return None


def _check_path(value: object) -> str | None:
    """A variable of a memory, or a dotted path inside one (``base.setVariable``)."""
    try:
        parse_path(str(value))
    except BotMemoryError as exc:
        return str(exc)
    return None


def _check_variable(value: object) -> str | None:
    """A variable of a memory, not a path (``base.incrementVariable``)."""
    if "." in str(value) or "[" in str(value):
        return f"incrementVariable name {value!r}: give a variable, not a path"
    return None


def _check_stored_name(value: object) -> str | None:
    """The name of a stored variable, which ends its key-value store key (``builtin.*``)."""
    try:
        validate_id(global_storage_key(str(value)), "key", max_length=MAX_KEY_LENGTH)
    except BotMemoryError as exc:
        return str(exc)
    return None


def _check_expiry(value: object) -> str | None:
    try:
        _parse_expiry(value)
    except BotMemoryError as exc:
        return str(exc)
    return None


def _parse_expiry(value: object) -> timedelta | None:
    """Parse an ``expiry`` argument once, into the timedelta the key-value store takes."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidDurationError(
            f"expiry {value!r} is not a duration: write it with a unit ('30s', '1h', '60d') "
            "or 'never'"
        )
    return to_timedelta(parse_expiry(value, "expiry"))


def _check_by(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"by {value!r} must be a number"
    return None


_LITERAL_CHECKS: Final[dict[str, Callable[[object], str | None]]] = {
    "type": _check_type,
    "name": _check_name,
    "expiry": _check_expiry,
    "by": _check_by,
}


def _params(
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    name: Callable[[object], str | None] | None = None,
) -> ArgsCheck:
    """Check the arguments of an action; ``name`` checks a literal ``name`` further, as
    the action itself would refuse it on every run."""

    def check(args: Mapping[str, object]) -> list[str]:
        known = required + optional
        problems = [
            f"unknown argument {key!r}: the arguments are {', '.join(known)}"
            for key in args
            if key not in known
        ]
        problems += [f"argument {key!r} is missing" for key in required if key not in args]
        for key, value in args.items():
            if key == "output" and value == "" and key in optional:
                continue  # an optional output left empty (the Botpress editor's way): none
            literal = _LITERAL_CHECKS.get(key)
            problem = None
            if key == "output":
                problem = _check_name(value, "output") or (
                    "output names a temp variable: it cannot be a template"
                    if _is_template(value)
                    else None
                )
            elif literal is not None and not _is_template(value):
                problem = literal(value)
                if not problem and key == "name" and name is not None:
                    problem = name(value)
            if problem:
                problems.append(problem)
        return problems

    return check


def _need(problem: str | None) -> None:
    if problem:
        raise InvalidValueError(problem)


def _name(args: Args, what: str = "name") -> str:
    value = args.get(what)
    problem = _check_name(value, what)
    if problem or not isinstance(value, str):
        raise InvalidValueError(problem or f"{what} {value!r} must be a string")
    return value


def _scope(state: TurnState, args: Args) -> ScopeMemory:
    kind = args.get("type")
    _need(_check_type(kind))
    return {"user": state.user, "session": state.session, "temp": state.temp, "bot": state.bot}[
        str(kind)
    ]


def _expiry(args: Args) -> timedelta | None:
    return _parse_expiry(args.get("expiry"))


# --- base.*: variables of the four memories ------------------------------------------


def set_in_scope(scope: ScopeMemory, name: str, value: JsonValue) -> None:
    """Set ``name`` (a dotted path reaches inside objects) in ``scope``."""
    path = parse_path(name)
    head = str(path[0])
    current = scope.get(head, MISSING)
    scope[head] = set_path(current, path[1:], value)


def delete_in_scope(scope: ScopeMemory, name: str) -> None:
    """Delete ``name`` (a dotted path reaches inside objects) from ``scope``, if there."""
    path = parse_path(name)
    head = str(path[0])
    if head not in scope:
        return
    if len(path) == 1:
        del scope[head]
        return
    current = scope[head]
    if delete_path(current, path[1:]):
        scope[head] = current


def set_variable(event: Event, state: TurnState, args: Args, kvs: KeyValueStore) -> None:
    """``base.setVariable``: set ``name`` in memory ``type``; an empty value deletes it."""
    scope, name, value = _scope(state, args), _name(args), args.get("value")
    if value in EMPTY:
        delete_in_scope(scope, name)
    else:
        set_in_scope(scope, name, value)


def increment_variable(event: Event, state: TurnState, args: Args, kvs: KeyValueStore) -> None:
    """``base.incrementVariable``: add ``by`` (default 1) to the number ``name``.

    Commits an increment, not a value: turns of other users that increment the same
    bot variable at the same moment never conflict and none of their counts is lost.
    """
    name, by = _name(args), args.get("by", 1)
    _need(_check_variable(name))
    if isinstance(by, bool) or not isinstance(by, int | float):
        raise InvalidValueError(f"incrementVariable by {by!r}: give a number")
    _scope(state, args).incr(name, by)


def remove_variable(event: Event, state: TurnState, args: Args, kvs: KeyValueStore) -> None:
    """``base.removeVariable``: delete ``name`` from memory ``type``."""
    delete_in_scope(_scope(state, args), _name(args))


def reset_session(event: Event, state: TurnState, args: Args, kvs: KeyValueStore) -> None:
    """``builtin.resetSession``: empty session (keeping ``lastMessages``) and temp."""
    for name in [n for n in state.session if n != LAST_MESSAGES]:
        del state.session[name]
    state.temp.clear()


# --- builtin.*: storage in the key-value store ---------------------------------------

KeyOf = Callable[[TurnState, str], str]


def _user_key(state: TurnState, name: str) -> str:
    return user_storage_key(state.user_id, name)


def _optional_output(args: Args) -> str | None:
    """The temp variable an optional ``output`` names; ``None`` when it is absent or
    empty (the Botpress editor saves an optional field left empty as ``""``)."""
    if args.get("output") in (None, ""):
        return None
    return _name(args, "output")


def _conversation_key(state: TurnState, name: str) -> str:
    return conversation_storage_key(state.identity, name)


def _global_key(state: TurnState, name: str) -> str:
    return global_storage_key(name)


def _setter(key_of: KeyOf) -> ActionFunction:
    async def store(event: Event, state: TurnState, args: Args, kvs: KeyValueStore) -> None:
        key, value = key_of(state, _name(args)), args.get("value")
        output = _optional_output(args)
        if value in EMPTY:
            await kvs.delete(key)
            if output is not None:
                state.temp.pop(output, None)
            return
        await kvs.set(key, value, expiry=_expiry(args))
        if output is not None:
            state.temp[output] = value

    return store


def _getter(key_of: KeyOf) -> ActionFunction:
    async def fetch(event: Event, state: TurnState, args: Args, kvs: KeyValueStore) -> None:
        output = _name(args, "output")
        value = await kvs.get(key_of(state, _name(args)))
        if value is None:
            state.temp.pop(output, None)
        else:
            state.temp[output] = value

    return fetch


async def reset_global(event: Event, state: TurnState, args: Args, kvs: KeyValueStore) -> None:
    """``builtin.resetGlobalVariable``: delete ``storage/global/<name>`` of this bot."""
    await kvs.delete(_global_key(state, _name(args)))


async def increment_conversations(
    event: Event, state: TurnState, args: Args, kvs: KeyValueStore
) -> None:
    """``builtin.incrementNumberOfConversations``: add one, atomically; write to ``output``."""
    count = await kvs.incr(_user_key(state, CONVERSATIONS_NAME))
    output = _optional_output(args)
    if output is not None:
        state.temp[output] = count


async def get_conversations(event: Event, state: TurnState, args: Args, kvs: KeyValueStore) -> None:
    """``builtin.getNumberOfConversations``: write the count (0 if none) to ``output``."""
    count = await kvs.get(_user_key(state, CONVERSATIONS_NAME), default=0)
    state.temp[_name(args, "output")] = count


def _builtin(name: str, function: ActionFunction, check: ArgsCheck) -> tuple[str, ActionSpec]:
    return name, ActionSpec(name, function, "builtin", check)


_SET = _params(("name", "value"), ("expiry", "output"), _check_stored_name)
_GET = _params(("name", "output"), name=_check_stored_name)

BUILTIN_ACTIONS: Final[Mapping[str, ActionSpec]] = dict(
    [
        _builtin(
            "base.setVariable", set_variable, _params(("type", "name", "value"), name=_check_path)
        ),
        _builtin(
            "base.removeVariable", remove_variable, _params(("type", "name"), name=_check_path)
        ),
        _builtin(
            "base.incrementVariable",
            increment_variable,
            _params(("type", "name"), ("by",), _check_variable),
        ),
        _builtin("builtin.setUserVariable", _setter(_user_key), _SET),
        _builtin("builtin.getUserVariable", _getter(_user_key), _GET),
        _builtin("builtin.setConversationVariable", _setter(_conversation_key), _SET),
        _builtin("builtin.getConversationVariable", _getter(_conversation_key), _GET),
        _builtin("builtin.setGlobalVariable", _setter(_global_key), _SET),
        _builtin("builtin.getGlobalVariable", _getter(_global_key), _GET),
        _builtin(
            "builtin.resetGlobalVariable", reset_global, _params(("name",), name=_check_stored_name)
        ),
        _builtin("builtin.resetSession", reset_session, _params(())),
        _builtin(
            "builtin.incrementNumberOfConversations",
            increment_conversations,
            _params((), ("output",)),
        ),
        _builtin("builtin.getNumberOfConversations", get_conversations, _params(("output",))),
    ]
)
"""Every builtin action by name."""
