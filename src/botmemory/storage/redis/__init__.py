"""The Redis backend (``redis://``, ``redis+cluster://``, extra ``[redis]``): :class:`RedisStorage`.

:mod:`.storage` holds the backend, :mod:`.errors` the one translation of driver errors,
:mod:`.client` the client and its URL options, :mod:`.layout` what is stored where,
:mod:`.commit` a turn's commit, :mod:`.kvs` the key-value store, :mod:`.expiry` the
janitor's side, :mod:`.lease` the leases and :mod:`.scripts` the Lua scripts.
"""

from botmemory.storage.redis.client import RedisOptions
from botmemory.storage.redis.storage import RedisStorage

__all__ = ["RedisOptions", "RedisStorage"]
