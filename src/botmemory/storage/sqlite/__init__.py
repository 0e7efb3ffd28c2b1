"""The SQLite backend (``sqlite:///path.db``), the default: :class:`SqliteStorage`.

:mod:`.storage` holds the backend, :mod:`.connection` where its calls run,
:mod:`.errors` the one translation of driver errors, :mod:`.schema` the migrations,
and :mod:`.sql` and :mod:`.janitor_sql` the statements.
"""

from botmemory.storage.sqlite.schema import MIGRATIONS
from botmemory.storage.sqlite.storage import SqliteStorage, sqlite_path

__all__ = ["MIGRATIONS", "SqliteStorage", "sqlite_path"]
