"""``botmemory chat``: talk to a bot of a data folder in the terminal."""

from __future__ import annotations

import asyncio
import sys
import threading

import click

from botmemory.cli.common import DATA_DIR, run
from botmemory.cli.memory_text import memory_lines
from botmemory.dialog import DialogEngine, Event, ReplySink
from botmemory.errors import InvalidIdError, InvalidValueError, MessageTooLargeError
from botmemory.ids import Identity

__all__ = ["chat"]

PROMPT = "you> "
HELP = "Commands: /memory shows the four memories with each variable's expiry, /quit leaves."


@click.command("chat")
@click.argument("data_dir", type=DATA_DIR)
@click.option("--bot", "bot_id", required=True, help="The bot to talk to (a folder in bots/).")
@click.option("--user", "user_id", default="me", show_default=True, help="Who you are.")
@click.option("--channel", default="cli", show_default=True, help="The channel of the chat.")
def chat(data_dir: str, bot_id: str, user_id: str, channel: str) -> None:
    """Chat with a bot in the terminal; /memory shows its memory, /quit leaves.

    The janitor runs meanwhile, so dialog timeouts and retention policies apply.

    Example: botmemory chat ./data --bot welcome
    """
    try:  # before anything starts, in the words of the library
        Identity.of(bot_id, user_id, channel)
    except InvalidIdError as exc:
        raise click.ClickException(str(exc)) from None
    run(_chat(data_dir, bot_id, user_id, channel))


async def _chat(data_dir: str, bot_id: str, user_id: str, channel: str) -> None:
    engine = await DialogEngine.from_data_dir(data_dir)
    try:
        engine.bot(bot_id)
        engine.on_timeout_replies = _timeout_printer(user_id, channel)
        await engine.memory.janitor.start()
        click.echo(f"Chatting with {bot_id} as {user_id}. {HELP}")
        while (line := await _read_line(PROMPT)) is not None:
            if not await _handle(engine, line.strip(), bot_id, user_id, channel):
                break
    finally:
        await engine.close()


async def _handle(engine: DialogEngine, line: str, bot_id: str, user_id: str, channel: str) -> bool:
    """Handle one line; return False to leave."""
    if not line:
        return True
    if line == "/quit":
        return False
    if line == "/memory":
        view = await engine.memory.peek(bot_id, user_id, channel)
        click.echo("\n".join(memory_lines(view)))
    elif line.startswith("/"):
        click.echo(f"Unknown command {line}. {HELP}")
    else:
        try:
            replies = await engine.process(bot_id, user_id, text=line, channel=channel)
        except (InvalidValueError, MessageTooLargeError) as exc:  # this line only: go on
            click.echo(f"(not sent: {exc})")
            return True
        for reply in replies:
            click.echo(f"{bot_id}> {reply}")
    return True


def _timeout_printer(user_id: str, channel: str) -> ReplySink:
    """Print the replies of this user's dialog timeouts as they come, then the prompt again."""

    async def show(event: Event, replies: list[str]) -> None:
        if event.user_id == user_id and event.channel == channel:
            click.echo("")  # the prompt waiting on its line
            for reply in replies:
                click.echo(f"{event.bot_id}> {reply}")
            click.echo(PROMPT, nl=False)

    return show


async def _read_line(prompt: str) -> str | None:
    """Read a line without blocking the event loop (the janitor keeps running); None at EOF."""
    click.echo(prompt, nl=False)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def deliver(line: str) -> None:
        if not future.done():
            future.set_result(line)

    def read() -> None:
        loop.call_soon_threadsafe(deliver, sys.stdin.readline())

    # a daemon thread, not the default executor: Ctrl-C must not wait for a pending read
    threading.Thread(target=read, daemon=True).start()
    line = await future
    return line if line else None
