"""botmemory: chatbot memory that behaves exactly as documented and forgets when it should.

Four memories (user, session, temp, bot), per-variable retention policies enforced by
a janitor, and a key-value store with expiry, on embedded SQLite, PostgreSQL or Redis.
"""

from __future__ import annotations

from botmemory.clock import Clock, ManualClock, system_clock
from botmemory.config import BotSettings, Settings, load_data_dir, load_settings
from botmemory.durations import (
    DurationInput,
    Seconds,
    format_duration,
    parse_duration,
    parse_interval,
)
from botmemory.errors import (
    BackendError,
    BackendUnavailableError,
    BotMemoryError,
    ConfigError,
    ConflictError,
    DuplicateMessageError,
    ErasurePendingError,
    InvalidDurationError,
    InvalidIdError,
    InvalidValueError,
    LockTimeoutError,
    MessageTooLargeError,
    MissingDependencyError,
    SchemaVersionError,
    SessionNotAliveError,
    TurnAbandonedError,
    UserErasedError,
    ValueTooLargeError,
)
from botmemory.ids import Identity
from botmemory.janitor import Janitor, JanitorReport, JanitorTotals
from botmemory.kvs import KeyValueStore, KvsAccess, KvsEntry
from botmemory.memory import Memory
from botmemory.scopes import ScopeMemory
from botmemory.sync import SyncKeyValueStore, SyncMemory
from botmemory.turns import TurnState
from botmemory.views import (
    ErasureCounts,
    ExportedMessage,
    ExportedSession,
    ExportedVariable,
    MemoryView,
    SessionView,
    UserExport,
    VariableView,
)

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "BotMemoryError",
    "BotSettings",
    "Clock",
    "ConfigError",
    "ConflictError",
    "DuplicateMessageError",
    "DurationInput",
    "ErasureCounts",
    "ErasurePendingError",
    "ExportedMessage",
    "ExportedSession",
    "ExportedVariable",
    "Identity",
    "InvalidDurationError",
    "InvalidIdError",
    "InvalidValueError",
    "Janitor",
    "JanitorReport",
    "JanitorTotals",
    "KeyValueStore",
    "KvsAccess",
    "KvsEntry",
    "LockTimeoutError",
    "ManualClock",
    "Memory",
    "MemoryView",
    "MessageTooLargeError",
    "MissingDependencyError",
    "SchemaVersionError",
    "ScopeMemory",
    "Seconds",
    "SessionNotAliveError",
    "SessionView",
    "Settings",
    "SyncKeyValueStore",
    "SyncMemory",
    "TurnAbandonedError",
    "TurnState",
    "UserErasedError",
    "UserExport",
    "ValueTooLargeError",
    "VariableView",
    "__version__",
    "format_duration",
    "load_data_dir",
    "load_settings",
    "parse_duration",
    "parse_interval",
    "system_clock",
]
