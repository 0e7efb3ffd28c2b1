"""botmemory as a LangGraph store: ``pip install 'botmemory[langgraph]'``.

::

    from botmemory import SyncMemory
    from botmemory.integrations.langgraph import BotMemoryStore

    memory = SyncMemory.open("sqlite:///memory.db")
    store = BotMemoryStore(memory, retention={"users/*/mood": "1d"})
    store.put(("users", "u1"), "mood", {"value": "cheerful"})

See docs/langgraph.md.
"""

from __future__ import annotations

from botmemory.errors import MissingDependencyError

try:
    import langgraph.store.base  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise MissingDependencyError(
        "botmemory.integrations.langgraph needs LangGraph: pip install 'botmemory[langgraph]'"
    ) from exc

from botmemory.integrations.langgraph._ops import ForgetReport
from botmemory.integrations.langgraph._retention import StorePolicies
from botmemory.integrations.langgraph._store import BotMemoryStore

__all__ = ["BotMemoryStore", "ForgetReport", "StorePolicies"]
