"""The server stack: uvloop's event loop and httptools' HTTP parser when installed.

The ``server`` extra installs both; without them the server runs on asyncio's own
loop and h11, the same answers a little slower. ``botmemory serve`` creates its event
loop before uvicorn starts, so it takes the loop from here rather than from uvicorn's
``loop="auto"`` (which only applies when uvicorn creates the loop itself).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["ServerStack", "server_stack"]


@dataclass(frozen=True)
class ServerStack:
    """Which event loop and which HTTP/1.1 implementation the server runs on."""

    loop: Literal["uvloop", "asyncio"]
    http: Literal["httptools", "h11"]

    def loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop]:
        """A function that creates this stack's event loop."""
        if self.loop == "uvloop":
            import uvloop

            return uvloop.new_event_loop
        return asyncio.new_event_loop

    def __str__(self) -> str:
        return f"{self.loop} + {self.http}"


def server_stack() -> ServerStack:
    """The fastest stack installed: uvloop and httptools if they can be imported."""
    return ServerStack(
        loop="uvloop" if _installed("uvloop") else "asyncio",
        http="httptools" if _installed("httptools") else "h11",
    )


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
