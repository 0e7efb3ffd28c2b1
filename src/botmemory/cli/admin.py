"""Administration commands: ``config check``, ``migrate`` and ``janitor run``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import click
from rich.console import Console
from rich.progress import BarColumn, SpinnerColumn, TaskID, TextColumn
from rich.progress import Progress as RichProgress

from botmemory.cli.checks import check_data_dir
from botmemory.cli.common import DATA_DIR, run
from botmemory.errors import ConfigError
from botmemory.janitor import Progress
from botmemory.memory import Memory
from botmemory.urls import mask_url

__all__ = ["JANITOR_SKIPPED", "config_group", "janitor_group", "migrate"]

JANITOR_SKIPPED: Final = 75
"""The exit status of ``janitor run --once`` when the run was skipped because another
process was running the janitor: EX_TEMPFAIL of sysexits.h, "try again later" (1 is
for errors, 2 for usage errors)."""


@click.group("config")
def config_group() -> None:
    """Inspect the configuration of a data folder."""


@config_group.command("check")
@click.argument("data_dir", type=DATA_DIR)
@click.option(
    "--allow-empty", is_flag=True, help="Accept a data folder that has no bot yet, as serve does."
)
def config_check(data_dir: str, allow_empty: bool) -> None:
    """Print the resolved settings of every bot, or every problem found.

    Checks all that ``serve`` checks before it starts: the config files, every bot's
    flows, actions and hooks, that there is a bot (unless --allow-empty), and the
    database URL with its parameters (without connecting). Every problem is printed
    at once, and the exit code is 1.

    Example: botmemory config check ./data
    """
    settings, problems = check_data_dir(data_dir, allow_empty=allow_empty)
    if settings is None or problems:
        click.echo(str(ConfigError(problems)), err=True)
        raise SystemExit(1)
    click.echo(json.dumps(settings.describe(), indent=2))


@click.command("migrate")
@click.argument("data_dir", type=DATA_DIR)
def migrate(data_dir: str) -> None:
    """Create or upgrade the database schema of a data folder.

    Example: botmemory migrate ./data
    """

    async def go() -> str:
        memory = await Memory.from_data_dir(data_dir)
        await memory.close()
        return memory.storage.url

    click.echo(f"the database schema is ready: {mask_url(run(go()))}")


@click.group("janitor")
def janitor_group() -> None:
    """Remove expired data."""


@janitor_group.command("run")
@click.argument("data_dir", type=DATA_DIR)
@click.option("--once", is_flag=True, help="Run one pass and exit (default: keep running).")
def janitor_run(data_dir: str, once: bool) -> None:
    """Remove expired data now, once or every dataRetention.janitorInterval.

    Like the janitor of ``serve``, it runs the bots' dialog timeouts (timeout flows,
    before_session_timeout hooks) and on_session_end hooks; their replies reach no one.

    With --once, the exit status is 0 when the run ran, 75 when it was skipped
    because another process (a server, another janitor run) was running the janitor
    on the same database: it removed nothing, try again later. It is 1 on an error.

    Example: botmemory janitor run ./data --once
    """

    async def go() -> bool:
        """Run; return whether a run --once was skipped."""
        from botmemory.dialog import DialogEngine

        engine = await DialogEngine.from_data_dir(data_dir)
        memory = engine.memory
        try:
            if once:
                with _janitor_progress() as progress:
                    report = await memory.janitor.run_once(progress=progress)
                click.echo(report.summary())
                return report.skipped
            click.echo(f"janitor running every {memory.janitor.interval:g}s; Ctrl-C stops it")
            await memory.janitor.start()
            await asyncio.Event().wait()  # until Ctrl-C
            return False
        finally:
            await engine.close()

    if run(go()):
        raise SystemExit(JANITOR_SKIPPED)


@contextmanager
def _janitor_progress() -> Iterator[Progress]:
    """A live line per kind of data, with a bar that pulses while a backlog drains."""
    with RichProgress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} removed"),
        transient=True,
        disable=not sys.stderr.isatty(),
        console=Console(stderr=True),
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(kind: str, removed: int) -> None:
            if kind not in tasks:
                tasks[kind] = bar.add_task(kind.replace("_", " "), total=None)
            bar.update(tasks[kind], completed=removed)

        yield advance
