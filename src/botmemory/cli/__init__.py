"""The ``botmemory`` command: one group, one module per command or command group."""

from __future__ import annotations

import click

from botmemory import __version__
from botmemory.cli.admin import config_group, janitor_group, migrate
from botmemory.cli.chat import chat
from botmemory.cli.common import run_cli
from botmemory.cli.inspect import kvs_group, memory_group
from botmemory.cli.serve import init, serve

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="botmemory")
def cli() -> None:
    """Chatbot memory that behaves exactly as documented and forgets when it should."""


for command in (init, serve, chat, config_group, migrate, janitor_group, memory_group, kvs_group):
    cli.add_command(command)


def main() -> None:
    """Run the ``botmemory`` command."""
    run_cli(cli)
