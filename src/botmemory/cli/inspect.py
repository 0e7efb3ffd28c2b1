"""``botmemory memory show|export|forget`` and ``botmemory kvs list|get|set|delete``.

Every command takes the data folder first, like the other commands, then the bot.
They open the memory directly (no server needed) and never start the janitor.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import click
from rich.console import Console
from rich.table import Table

from botmemory.cli.common import DATA_DIR, EXPIRY, run
from botmemory.cli.memory_text import EXPIRY_RULES, dialog_position, shown_variables
from botmemory.clock import iso_time
from botmemory.config import load_data_dir
from botmemory.durations import Seconds, format_duration
from botmemory.ids import unknown_bot
from botmemory.memory import Memory
from botmemory.storage.base import SCOPES, Scope
from botmemory.values import MAX_DEPTH, JsonValue, dumps
from botmemory.views import MemoryView

__all__ = ["kvs_group", "memory_group"]

T = TypeVar("T")

CHANNEL = click.option(
    "--channel",
    default="api",
    show_default=True,
    help="The user's channel (user memory is per channel).",
)


def _with_memory(data_dir: str, bot_id: str, use: Callable[[Memory], Awaitable[T]]) -> T:
    """Check the bot exists, then open the data folder's memory, run ``use``, close
    (a mistyped folder or bot is not left with a new database)."""

    async def go() -> T:
        bots = load_data_dir(data_dir).bots
        if bot_id not in bots:
            raise click.ClickException(unknown_bot(bot_id, bots, f"in {data_dir}/bots"))
        memory = await Memory.from_data_dir(data_dir)
        try:
            return await use(memory)
        finally:
            await memory.close()

    return run(go())


def _print_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


# -- memory ------------------------------------------------------------------------------
@click.group("memory")
def memory_group() -> None:
    """Look at, export or erase a user's memory."""


@memory_group.command("show")
@click.argument("data_dir", type=DATA_DIR)
@click.argument("bot")
@click.argument("user")
@CHANNEL
@click.option("--thread", default=None, help="A thread id, for a thread's own session.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw view as JSON.")
def memory_show(
    data_dir: str, bot: str, user: str, channel: str, thread: str | None, as_json: bool
) -> None:
    """Show a user's four memories, each variable with when it expires; changes nothing.

    Example: botmemory memory show ./data welcome user-42
    """
    view = _with_memory(data_dir, bot, lambda m: m.peek(bot, user, channel, thread))
    if as_json:
        _print_json(view.to_json())
        return
    console = Console(highlight=False, soft_wrap=True)
    for scope in SCOPES:
        console.print(_scope_table(view, scope))
    position = dialog_position(view)
    if position is not None:
        console.print(f"dialog position: {dumps(position)}")


def _scope_table(view: MemoryView, scope: Scope) -> Table | str:
    variables = shown_variables(view, scope)
    if not variables:
        return f"[bold]{scope} memory[/bold]: (empty)\n"
    table = Table(title=f"{scope} memory", title_justify="left", show_lines=False)
    table.add_column("variable", style="bold")
    table.add_column("value", overflow="fold")
    table.add_column("expires")
    rule = EXPIRY_RULES[scope]
    for name, var in variables:
        table.add_row(name, dumps(var.value), _expiry(var.expires_at, view.now, rule))
    return table


def _expiry(expires_at: float | None, now: float, rule: str) -> str:
    if expires_at is None:
        return "never"
    left = int(expires_at - now)
    parts: list[str] = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    relative = "in " + " ".join(parts[:2]) if parts else "now"
    return f"{iso_time(expires_at)} ({relative}, {rule})"


@memory_group.command("export")
@click.argument("data_dir", type=DATA_DIR)
@click.argument("bot")
@click.argument("user")
@CHANNEL
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to a file."
)
def memory_export(data_dir: str, bot: str, user: str, channel: str, output: str | None) -> None:
    """Print everything stored for a user as JSON: user memory, sessions, KVS keys.

    Example: botmemory memory export ./data welcome user-42 -o user-42.json
    """
    exported = _with_memory(data_dir, bot, lambda m: m.export_user(bot, user, channel)).to_json()
    if output is None:
        _print_json(exported)
        return
    _write_private(output, json.dumps(exported, indent=2, ensure_ascii=False))
    click.echo(f"exported {user} to {output}", err=True)


def _write_private(path: str, text: str) -> None:
    """Write an export that only its owner may read (0600), or say why not."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if stat.S_ISREG(os.fstat(fd).st_mode):  # an export written over keeps no wider mode
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None


@memory_group.command("forget")
@click.argument("data_dir", type=DATA_DIR)
@click.argument("bot")
@click.argument("user")
@CHANNEL
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def memory_forget(data_dir: str, bot: str, user: str, channel: str, yes: bool) -> None:
    """Erase everything stored for a user, for good, and print what was removed.

    Example: botmemory memory forget ./data welcome user-42 --yes
    """
    if not yes:
        click.confirm(f"Erase everything {bot} stores for {user} ({channel})?", abort=True)
    counts = _with_memory(data_dir, bot, lambda m: m.forget_user(bot, user, channel))
    removed = ", ".join(f"{n} {kind}" for kind, n in counts.to_json().items()) or "nothing"
    click.echo(f"erased {user}: {removed}")


# -- key-value store ---------------------------------------------------------------------
@click.group("kvs")
def kvs_group() -> None:
    """Read and write a bot's key-value store."""


@kvs_group.command("list")
@click.argument("data_dir", type=DATA_DIR)
@click.argument("bot")
@click.option("--prefix", default="", help="Only keys starting with this (taken literally).")
def kvs_list(data_dir: str, bot: str, prefix: str) -> None:
    """List a bot's live keys, sorted.

    Example: botmemory kvs list ./data welcome --prefix storage/users/
    """
    for key in _with_memory(data_dir, bot, lambda m: m.kvs.for_bot(bot).keys(prefix)):
        click.echo(key)


@kvs_group.command("get")
@click.argument("data_dir", type=DATA_DIR)
@click.argument("bot")
@click.argument("key")
@click.option("--path", default=None, help="Read inside the value: a.b[0].c")
def kvs_get(data_dir: str, bot: str, key: str, path: str | None) -> None:
    """Print a key's value as JSON; exit 1 when there is no such key.

    Example: botmemory kvs get ./data welcome stats/messages
    """

    async def get(memory: Memory) -> tuple[bool, JsonValue]:
        kvs = memory.kvs.for_bot(bot)
        return await kvs.exists(key), await kvs.get(key, path=path)

    found, value = _with_memory(data_dir, bot, get)
    if not found:
        raise click.ClickException(f"no key {key!r} in the key-value store of {bot!r}")
    _print_json(value)


@kvs_group.command("set")
@click.argument("data_dir", type=DATA_DIR)
@click.argument("bot")
@click.argument("key")
@click.argument("value")
@click.option(
    "--expiry",
    type=EXPIRY,
    default=None,
    help="Expire after this long: 30s, 1h, 60d (a unit is required).",
)
@click.option("--string", "as_string", is_flag=True, help="Store VALUE as a string, not JSON.")
def kvs_set(
    data_dir: str, bot: str, key: str, value: str, expiry: timedelta | None, as_string: bool
) -> None:
    """Store a JSON value under a key (without --expiry it never expires).

    Example: botmemory kvs set ./data welcome storage/global/motd '"Welcome back"' --expiry 1h
    """
    parsed: JsonValue = value if as_string else _parse_json(value)
    _with_memory(data_dir, bot, lambda m: m.kvs.for_bot(bot).set(key, parsed, expiry=expiry))
    shown = None if expiry is None else format_duration(Seconds(expiry.total_seconds()))
    ttl = "" if shown is None else f" (expires in {shown})"
    click.echo(f"set {key}{ttl}")


def _parse_json(text: str) -> JsonValue:
    """Read VALUE as JSON; whatever it holds, a bad one is a one-line error."""
    try:
        parsed: JsonValue = json.loads(text, parse_int=_integer)
    except RecursionError:
        raise click.ClickException(
            f"VALUE nests lists and objects deeper than {MAX_DEPTH} levels"
        ) from None
    except json.JSONDecodeError:
        shown = text if len(text) <= 60 else f"{text[:57]}..."
        raise click.ClickException(
            f"VALUE {shown!r} is not JSON: quote a string ('\"{shown}\"') or pass --string"
        ) from None
    return parsed


def _integer(digits: str) -> int:
    try:
        return int(digits)
    except ValueError:  # more digits than Python reads, far over 64 bits
        count = len(digits.lstrip("-"))
        raise click.ClickException(
            f"VALUE has a number of {count} digits: integers must fit in 64 bits"
        ) from None


@kvs_group.command("delete")
@click.argument("data_dir", type=DATA_DIR)
@click.argument("bot")
@click.argument("key")
def kvs_delete(data_dir: str, bot: str, key: str) -> None:
    """Delete a key; exit 1 when there is no such key.

    Example: botmemory kvs delete ./data welcome storage/global/motd
    """
    if not _with_memory(data_dir, bot, lambda m: m.kvs.for_bot(bot).delete(key)):
        raise click.ClickException(f"no key {key!r} in the key-value store of {bot!r}")
    click.echo(f"deleted {key}")
