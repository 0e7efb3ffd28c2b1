"""Identities: validation and the storage keys that stored data is found by."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botmemory.errors import InvalidIdError
from botmemory.ids import Identity

ID_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x7f"),
    min_size=1,
    max_size=40,
).filter(lambda s: not any("\x80" <= c <= "\x9f" for c in s))


@given(ID_TEXT, ID_TEXT, st.none() | ID_TEXT)
def test_storage_keys_are_the_json_arrays_of_the_parts(
    user_id: str, channel: str, thread_id: str | None
) -> None:
    # stored rows are keyed by these exact texts: they must never change
    ident = Identity.of("bot", user_id, channel, thread_id)
    assert ident.user_key == json.dumps([channel, user_id], ensure_ascii=False)
    assert ident.session_key == json.dumps([channel, user_id, thread_id], ensure_ascii=False)


def test_a_cached_identity_equals_a_new_one() -> None:
    first = Identity.of("bot", "u::1", "web", "t")
    again = Identity.of("bot", "u::1", "web", "t")
    assert again == first
    assert (again.user_key, again.session_key) == (first.user_key, first.session_key)
    assert Identity.of("bot", "u::1", "web") != first


@pytest.mark.parametrize(
    ("user_id", "reason"),
    [
        ("a\x00b", "control character"),
        ("a\x9fb", "control character"),
        ("a\ud800b", "not valid Unicode"),
        ("", "1 to 255"),
        ("x" * 256, "1 to 255"),
        (5, "1 to 255"),
    ],
)
def test_invalid_user_ids_are_refused_every_time(user_id: object, reason: str) -> None:
    for _ in range(2):  # a refused id is never remembered as valid
        with pytest.raises(InvalidIdError, match=reason):
            Identity.of("bot", user_id, "web")  # type: ignore[arg-type]


@pytest.mark.parametrize("thread_id", [None, "t::1", 'q"uote'])
def test_an_identity_comes_back_from_its_session_key(thread_id: str | None) -> None:
    who = Identity.of("b", "u::1", "web chat", thread_id)
    assert Identity.from_key("b", who.session_key) == who


@pytest.mark.parametrize("key", ["not json", '["only two", "parts"]', '["c", "u\u0000", null]'])
def test_a_broken_session_key_is_an_invalid_id(key: str) -> None:
    with pytest.raises(InvalidIdError):
        Identity.from_key("b", key)


def test_an_unknown_bot_is_named_with_the_bots_there_are() -> None:
    from botmemory.ids import unknown_bot

    assert unknown_bot("x", ["welcome", "echo"]) == "no bot 'x': the bots are echo, welcome"
    assert unknown_bot("x", [], "here") == "no bot 'x' here: the bots are none"
