"""Live reload: a bot's new flows, actions, hooks or configuration, without a restart.

:class:`Reloader` watches the data folder's ``bots/`` and ``global/`` with ``watchfiles``.
When a bot's files change it loads that bot again; when a configuration file changes it
loads the configuration again. A load that fails changes nothing: the previous version
keeps running, and the problems (file, line, key) are logged and kept in
:attr:`Reloader.problems` for the page. Memory is untouched: the engine and its storage
stay open throughout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

from botmemory.config import load_data_dir
from botmemory.dialog.bots import load_bot, unload_bot
from botmemory.errors import ConfigError
from botmemory.server import heap

if TYPE_CHECKING:
    from botmemory.server.state import ServerState

__all__ = ["CONFIG_KEY", "Reloader", "changed_parts"]

log = logging.getLogger("botmemory.reload")

CONFIG_KEY: Final = "configuration"
"""The key of :attr:`Reloader.problems` for the configuration files."""
DEBOUNCE_MS: Final = 300
"""Changes closer than this are reloaded together (an editor saving several files)."""


def changed_parts(root: Path, paths: Iterable[Path]) -> tuple[set[str], bool]:
    """The bots whose folders changed, and whether a configuration file changed."""
    bots: set[str] = set()
    config = False
    for path in paths:
        if not path.is_relative_to(root):
            continue
        parts = path.relative_to(root).parts
        if len(parts) < 2 or parts[0] not in ("bots", "global"):
            continue
        config |= parts[-1].endswith(".config.json")
        if parts[0] == "bots":
            bots.add(parts[1])
    return bots, config


class Reloader:
    """Reload the bots of one server's data folder when their files change."""

    def __init__(self, state: ServerState, data_dir: Path) -> None:
        self.state = state
        self.root = data_dir.resolve()
        self.problems: dict[str, list[str]] = {}
        """What stopped the last reload of each bot (or of the configuration)."""
        self.generation = 0
        """How many reloads have been applied or refused: the page polls it."""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching."""
        self._stop.clear()
        self._task = asyncio.create_task(self._watch(), name="botmemory-reload")

    async def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _watch(self) -> None:
        from watchfiles import awatch

        log.info("reloading bots when the files of %s change", self.root)
        async for changes in awatch(self.root, stop_event=self._stop, debounce=DEBOUNCE_MS):
            try:
                await self.apply({Path(path) for _, path in changes})
            except Exception:  # a reload must never stop the watching
                log.exception("reload failed; the previous version keeps running")

    async def apply(self, paths: Iterable[Path]) -> None:
        """Reload what ``paths`` belong to: the configuration first, then each bot."""
        bots, config = changed_parts(self.root, paths)
        if not bots and not config:
            return
        if config:
            await self._reload_config()
        for bot_id in sorted(bots):
            self._reload_bot(bot_id)
        self.generation += 1
        heap.refreeze()

    async def _reload_config(self) -> None:
        try:
            fresh = await asyncio.to_thread(load_data_dir, self.root)
        except ConfigError as exc:
            self._refuse(CONFIG_KEY, exc.problems)
            return
        current = self.state.settings
        kept = replace(current, defaults=fresh.defaults, bots=fresh.bots)
        if replace(fresh, defaults=current.defaults, bots=current.bots) != current:
            log.warning(
                "reload: changes to global/botmemory.config.json outside the bots' settings "
                "(tokens, database, janitor, server) apply at the next start"
            )
        self.state.settings = kept
        await self.state.memory.apply_settings(kept)
        self._accept(CONFIG_KEY, "the configuration")

    def _reload_bot(self, bot_id: str) -> None:
        engine = self.state.engine
        folder = self.root / "bots" / bot_id
        if not (folder / "flows").is_dir():
            if (gone := engine.bots.pop(bot_id, None)) is not None:
                unload_bot(gone)
                log.info("reload: bot %s has no flows folder any more: it no longer runs", bot_id)
            self.problems.pop(bot_id, None)
            return
        try:
            bot = load_bot(folder, bot_id)
        except ConfigError as exc:
            self._refuse(bot_id, exc.problems)
            return
        replaced, engine.bots[bot_id] = engine.bots.get(bot_id), bot
        if replaced is not None:
            unload_bot(replaced)
        self._accept(bot_id, f"bot {bot_id}")

    def _refuse(self, key: str, problems: list[str]) -> None:
        self.problems[key] = list(problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        log.error("reload refused, the previous version keeps running:\n%s", lines)

    def _accept(self, key: str, what: str) -> None:
        self.problems.pop(key, None)
        log.info("reloaded %s", what)
