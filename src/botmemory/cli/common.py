"""What every command shares: opening a data folder, running async code, one-line errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from botmemory.durations import to_timedelta
from botmemory.errors import BotMemoryError
from botmemory.kvs import parse_expiry

__all__ = ["DATA_DIR", "EXPIRY", "run", "run_cli"]

T = TypeVar("T")

DATA_DIR = click.Path(file_okay=False, dir_okay=True, exists=False)
"""The type of every DATA_DIR argument."""


if TYPE_CHECKING:  # generic in recent click only
    _ParamType = click.ParamType[timedelta | None, Any]
else:
    _ParamType = click.ParamType


class _Expiry(_ParamType):
    """An expiry written on the command line (``30s``, ``1h``, ``never``), as a timedelta."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta | None:
        if isinstance(value, timedelta) or value is None:
            return value
        try:
            return to_timedelta(parse_expiry(str(value), "--expiry"))
        except BotMemoryError as exc:  # one line and exit 1, like every botmemory error
            raise click.ClickException(str(exc)) from None


EXPIRY = _Expiry()
"""The type of every ``--expiry`` option: parsed once, here."""


def run(
    coro: Coroutine[Any, Any, T],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Run a coroutine (on a loop of ``loop_factory``'s, by default asyncio's own); a
    botmemory error becomes a one-line message and exit code 1."""
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(coro)
    except BotMemoryError as exc:
        raise click.ClickException(str(exc)) from None


def run_cli(group: click.Group) -> None:
    """Run ``group``; any botmemory error left becomes one line on stderr and exit 1."""
    try:
        group.main(standalone_mode=True)
    except BotMemoryError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
