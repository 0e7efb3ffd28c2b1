"""The PostgreSQL backend (``postgresql://...``, extra ``[postgres]``): :class:`PostgresStorage`.

:mod:`.storage` holds the backend, :mod:`.pool` its connections and advisory locks,
:mod:`.errors` the one translation of driver errors, :mod:`.url` its URL options,
:mod:`.sql` the schema and the janitor's statements, and :mod:`.turn` with
:mod:`.turn_sql` a turn's load and commit.
"""

from botmemory.storage.postgres.storage import PostgresStorage
from botmemory.storage.postgres.url import PostgresOptions, parse_postgres_url

__all__ = ["PostgresOptions", "PostgresStorage", "parse_postgres_url"]
