"""Where a LangGraph item lives in the key-value store, and namespace matching.

An item ``(namespace, key)`` is the KVS key ``label1/label2//key``: every label and the
key percent-encoded (so none holds ``/``, ``%`` or a control character), each label
followed by ``/``, then ``/`` and the key. Labels are never empty, so the first ``//``
ends the namespace, and the keys of every namespace under a prefix ``(a, b)`` are
exactly those starting with ``a/b/``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, unquote

from langgraph.store.base import MatchCondition

from botmemory.errors import InvalidIdError

__all__ = [
    "Namespace",
    "listing_prefix",
    "matches",
    "namespace_prefix",
    "split_key",
    "storage_key",
]

Namespace = tuple[str, ...]
WILDCARD = "*"


def _encode(part: str) -> str:
    try:
        return quote(part, safe="")
    except UnicodeEncodeError as exc:
        raise InvalidIdError(f"{part!r} is not valid Unicode text: {exc.reason}") from None


def namespace_prefix(namespace: Iterable[str]) -> str:
    """Return the start of the KVS key of every item at or under ``namespace``."""
    return "".join(_encode(label) + "/" for label in namespace)


def storage_key(namespace: Namespace, key: str) -> str:
    """Return the KVS key of the item ``key`` in ``namespace``."""
    return namespace_prefix(namespace) + "/" + _encode(key)


def split_key(stored: str) -> tuple[Namespace, str]:
    """Return the namespace and key of a KVS key made by :func:`storage_key`."""
    labels, _, key = stored.partition("//")
    return tuple(unquote(label) for label in labels.split("/")), unquote(key)


def listing_prefix(conditions: Iterable[MatchCondition]) -> str:
    """Return a KVS key prefix every namespace matching ``conditions`` starts with.

    The literal labels a prefix condition begins with, up to its first wildcard.
    """
    for condition in conditions:
        if condition.match_type == "prefix":
            literal = []
            for label in condition.path:
                if label == WILDCARD:
                    break
                literal.append(label)
            return namespace_prefix(literal)
    return ""


def matches(condition: MatchCondition, namespace: Namespace) -> bool:
    """Return whether ``namespace`` starts (prefix) or ends (suffix) with the path.

    ``*`` in the path stands for any one label.
    """
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        part = namespace[: len(path)]
    elif condition.match_type == "suffix":
        part = namespace[len(namespace) - len(path) :]
    else:
        raise InvalidIdError(
            f"match type {condition.match_type!r} is unknown: use 'prefix' or 'suffix'"
        )
    return all(p in (WILDCARD, label) for p, label in zip(path, part, strict=True))
