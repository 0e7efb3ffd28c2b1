"""Database URLs as they may be shown: in errors, logs and the settings' description."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["mask_url"]

_PASSWORD_PARAM: Final = re.compile(r"([?&](?:password|passwd|pwd)=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """Return ``url`` with its password (in the credentials or a query) replaced by ``***``."""
    url = _PASSWORD_PARAM.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
