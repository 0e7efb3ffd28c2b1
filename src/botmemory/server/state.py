"""What the app holds: the dialog engine, the settings, the tokens and the counters.

One :class:`ServerState` per app, on ``app.state.botmemory``; routes reach it through
:func:`server_state`. It is the app's only mutable state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from botmemory.config import Settings
from botmemory.dialog import DialogEngine, UnknownBotError
from botmemory.ids import unknown_bot
from botmemory.memory import Memory
from botmemory.server.drain import Drain
from botmemory.server.events import EventHub
from botmemory.server.metrics import PrometheusExport

if TYPE_CHECKING:
    from botmemory.server.auth import Access, Grant
    from botmemory.server.reload import Reloader

__all__ = ["ServerState", "server_state"]


@dataclass
class ServerState:
    """The engine a server runs and what it counts."""

    engine: DialogEngine
    settings: Settings
    access: Access
    run_janitor: bool = True
    """Whether the app's lifespan starts and stops the janitor loop."""
    drain: Drain = field(default_factory=Drain)
    """Requests in progress, and whether a stopping server refuses new ones."""
    metrics: PrometheusExport = field(init=False)
    """What ``/metrics`` shows: the memory's and the janitor's counts, health checks."""

    def __post_init__(self) -> None:
        self.metrics = PrometheusExport(self.memory)

    events: EventHub = field(default_factory=EventHub)
    """The push channel's open streams."""
    reloader: Reloader | None = None
    """Reloads the bots when their files change (``serve --reload``), else None."""

    def reload_problems(self, grant: Grant) -> list[str]:
        """What keeps the last edits of the files from running (live reload), as far as
        ``grant`` may see: every problem for an admin, those of its bots' own files
        (``bots/<id>/...``) for a bot's token, which learns nothing of other bots or of
        the global configuration."""
        if self.reloader is None:
            return []
        problems = [
            p for key in sorted(self.reloader.problems) for p in self.reloader.problems[key]
        ]
        if grant.admin:
            return problems
        mine = tuple(f"bots/{bot}/" for bot in sorted(grant.bots))
        return [p for p in problems if mine and p.startswith(mine)]

    @property
    def memory(self) -> Memory:
        """The memory the engine runs on."""
        return self.engine.memory

    def bot_ids(self) -> list[str]:
        """Every bot: those with flows, and those with only a folder or a configuration."""
        return sorted(set(self.engine.bots) | set(self.settings.bots))

    def require_bot(self, bot_id: str) -> str:
        """Return ``bot_id`` if this server knows it, else raise :class:`UnknownBotError`."""
        if bot_id not in self.engine.bots and bot_id not in self.settings.bots:
            raise UnknownBotError(unknown_bot(bot_id, self.bot_ids(), "here"))
        return bot_id

    def converse_public(self, bot_id: str) -> bool:
        """Whether ``bot_id``'s converse route answers without a token: a bot this server
        knows, with ``converse.public`` (an unknown id is not public, whatever the global
        default says, so that it answers 401 or 403 as on the other routes)."""
        known = bot_id in self.engine.bots or bot_id in self.settings.bots
        return known and self.settings.for_bot(bot_id).converse_public


def server_state(request: Request) -> ServerState:
    """The state of the app serving ``request``."""
    state: ServerState = request.app.state.botmemory
    return state
