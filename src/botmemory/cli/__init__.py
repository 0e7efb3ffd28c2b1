"""The ``botmemory`` command: one group, one module per command or command group."""

from __future__ import annotations

import click

from botmemory import __version__
from botmemory.cli.admin import config_group, janitor_group, migrate
from botmemory.cli.common import run_cli

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="botmemory")
def cli() -> None:
    """Chatbot memory that behaves exactly as documented and forgets when it should."""


cli.add_command(config_group)
cli.add_command(migrate)
cli.add_command(janitor_group)


def main() -> None:
    """Run the ``botmemory`` command."""
    run_cli(cli)
