"""What every command shares: opening a data folder, running async code, one-line errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

from botmemory.errors import BotMemoryError

__all__ = ["DATA_DIR", "run", "run_cli"]

T = TypeVar("T")

DATA_DIR = click.Path(file_okay=False, dir_okay=True, exists=False)
"""The type of every DATA_DIR argument."""


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; a botmemory error becomes a one-line message and exit code 1."""
    try:
        return asyncio.run(coro)
    except BotMemoryError as exc:
        raise click.ClickException(str(exc)) from None


def run_cli(group: click.Group) -> None:
    """Run ``group``; any botmemory error left becomes one line on stderr and exit 1."""
    try:
        group.main(standalone_mode=True)
    except BotMemoryError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
