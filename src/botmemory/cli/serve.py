"""``botmemory init`` and ``botmemory serve``: create a data folder, serve it over HTTP."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import click

from botmemory.cli.checks import check_data_dir
from botmemory.cli.common import DATA_DIR, run
from botmemory.cli.serve_workers import serve_workers
from botmemory.config import GLOBAL_FILE, Settings
from botmemory.durations import Seconds, parse_duration
from botmemory.errors import BotMemoryError, ConfigError, MissingDependencyError

if TYPE_CHECKING:
    pass

__all__ = ["init", "serve"]

LOG_LEVELS: Final = ("critical", "error", "warning", "info", "debug")
EXAMPLE_DIR: Final = Path(__file__).resolve().parents[1] / "example_data"
"""The example data folder, shipped with the package (``examples/data`` links to it)."""
GLOBAL_CONFIG: Final = """\
// Created by `botmemory init`. Every setting is described in docs/configuration.md.
{{
  auth: {{
    // Bearer tokens that may use every route of every bot: keep them secret.
    adminTokens: ["{token}"],
    // botTokens: {{ welcome: ["a token of 16 characters or more"] }},
  }},
  dialog: {{
    timeoutInterval: "5m", // silence that ends a dialog (temp memory and the flow position)
    sessionTimeoutInterval: "30m", // silence that ends a session
    janitorInterval: "10s", // how often timed-out dialogs and sessions are swept
  }},
  dataRetention: {{
    janitorInterval: "10m", // how often expired user variables and keys are swept
  }},
}}
"""


@click.command("init")
@click.argument("data_dir", type=DATA_DIR)
def init(data_dir: str) -> None:
    """Create a data folder with the example bot and a new admin token, printed once.

    The token is stored in DATA_DIR/global/botmemory.config.json (readable by you
    only); the folder must not exist yet, or be empty.

    Example: botmemory init ./data && botmemory serve ./data
    """
    target = Path(data_dir)
    if target.is_symlink() and not target.exists():
        raise click.ClickException(
            f"{data_dir!r} is a link to {os.readlink(target)!r}, which does not exist"
        )
    token = secrets.token_urlsafe(32)
    try:
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise click.ClickException(f"{data_dir!r} already exists and is not an empty folder")
        _create(target, token)
    except OSError as exc:
        raise click.ClickException(f"cannot create {data_dir!r}: {exc.strerror or exc}") from None
    bots = ", ".join(sorted(p.name for p in (target / "bots").iterdir() if p.is_dir()))
    click.echo(f"Created {data_dir} with the example bot ({bots}).")
    click.echo(f"Admin token (shown once; it is in {GLOBAL_FILE}):\n\n    {token}\n")
    click.echo(f"Next: botmemory serve {data_dir}   then open http://127.0.0.1:3000/")


def _create(target: Path, token: str) -> None:
    """Fill ``target`` (new or empty) with the example bot and a config holding ``token``."""
    target.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "memory.db*")
    shutil.copytree(EXAMPLE_DIR / "bots", target / "bots", ignore=ignore, dirs_exist_ok=True)
    config = target / GLOBAL_FILE
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(GLOBAL_CONFIG.format(token=token), encoding="utf-8")
    config.chmod(0o600)


@click.command("serve")
@click.argument("data_dir", type=DATA_DIR)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=3000, show_default=True, type=click.IntRange(0, 65535), help="TCP port."
)
@click.option("--log-level", default="info", show_default=True, type=click.Choice(LOG_LEVELS))
@click.option(
    "--reload",
    is_flag=True,
    help="Reload a bot when its flows, actions, hooks or configuration change.",
)
@click.option(
    "--allow-empty", is_flag=True, help="Serve a data folder that has no bot yet (else exit 1)."
)
@click.option(
    "--grace",
    default="30s",
    show_default=True,
    help="How long a stopping server lets requests in progress finish (new ones get 503).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes on the port, each with its own database connection.",
)
def serve(
    data_dir: str,
    host: str,
    port: int,
    log_level: str,
    reload: bool,
    allow_empty: bool,
    grace: str,
    workers: int,
) -> None:
    """Serve the bots of a data folder over HTTP; the janitor runs in the background.

    The web chat and memory inspector is at /, the API documentation at /docs.
    Without any token in the configuration (auth.adminTokens, auth.botTokens) the
    server answers this machine only, and refuses a --host that is not loopback.

    With --reload, editing a bot's files reloads that bot without a restart; a broken
    edit keeps the previous version running and its problems are logged and shown on /.

    With --workers N, N processes share the port (not with --reload).

    Example: botmemory serve ./data --port 3000 --reload
    """
    from botmemory.server.stack import server_stack

    if workers > 1 and reload:
        raise click.UsageError("--reload runs one process: use it without --workers")
    try:
        drain_grace = parse_duration(grace, where="--grace")
    except BotMemoryError as exc:
        reason = str(exc).removeprefix("--grace: ")
        raise click.BadParameter(reason, param_hint="--grace") from None
    settings, problems = check_data_dir(data_dir, allow_empty=allow_empty)
    if settings is None or problems:  # all of them, as `config check` reports them
        raise click.ClickException(str(ConfigError(problems)))
    check_host(host, settings)
    check_shared_database(workers, settings)
    listener = _listen(host, port)
    try:
        if workers > 1:
            if not serve_workers(data_dir, listener, workers, log_level, drain_grace):
                raise SystemExit(1)
            return
        loop_factory = server_stack().loop_factory()  # uvloop when installed
        bound = listener.getsockname()[1]  # the one the system chose for --port 0
        options = Options(host, bound, log_level, reload, drain_grace)
        run(_serve(data_dir, listener, options, settings), loop_factory)
    finally:
        listener.close()


def _listen(host: str, port: int) -> socket.socket:
    """Take the port before anything starts, so that a busy port is the only message."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and without it every answer on a kept-alive connection waits ~40 ms (Nagle).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host.strip("[]"), port))
    except OSError as exc:
        listener.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return listener


def check_shared_database(workers: int, settings: Settings) -> None:
    """Refuse several workers over a database that each process would keep on its own."""
    from botmemory.storage.sqlite import sqlite_path

    url = settings.database_url or ""
    scheme = url.partition("://")[0].lower()
    own = scheme == "memory" or (scheme == "sqlite" and sqlite_path(url) in ("", ":memory:"))
    if workers > 1 and own:
        raise click.UsageError(
            f"--workers {workers} needs a database the processes share, and {url} keeps "
            "one in each process: use SQLite in a file (the default), PostgreSQL or Redis"
        )


def check_host(host: str, settings: Settings) -> None:
    """Refuse a non-loopback ``host`` when no token is configured."""
    from botmemory.server.auth import is_loopback

    tokens = any(settings.bot_tokens.values())
    if settings.admin_tokens or tokens or is_loopback(host):
        return
    raise click.ClickException(
        f"refusing to listen on {host}: no token is configured, so anyone who can reach it "
        "could read and erase every user's memory; set auth.adminTokens in "
        f"{GLOBAL_FILE} (botmemory init creates one), or use --host 127.0.0.1"
    )


@dataclass(frozen=True)
class Options:
    """How ``serve`` was asked to run."""

    host: str
    port: int
    log_level: str
    reload: bool
    grace: Seconds


async def _serve(
    data_dir: str, listener: socket.socket, options: Options, settings: Settings
) -> None:
    try:
        import uvicorn

        from botmemory.server import create_app
        from botmemory.server.drain import server_class
        from botmemory.server.stack import server_stack
    except MissingDependencyError:
        raise
    except ImportError:
        raise MissingDependencyError(
            "the HTTP server needs its dependencies: pip install 'botmemory[server]'"
        ) from None
    from botmemory.dialog import DialogEngine

    _log_to_stderr(options.log_level)
    engine = await DialogEngine.from_data_dir(data_dir)
    try:
        app = create_app(engine, reload=options.reload)
        stack = server_stack()  # uvloop and httptools when installed
        config = uvicorn.Config(
            app,
            host=options.host,
            port=options.port,
            log_level=options.log_level,
            server_header=False,
            lifespan="on",
            loop=stack.loop,
            http=stack.http,
            timeout_graceful_shutdown=1,  # what the drain's grace left running
        )
        host = f"[{options.host}]" if ":" in options.host else options.host
        bots = ", ".join(sorted(engine.bots)) or "none"
        click.echo(f"botmemory: serving bots {bots} at http://{host}:{options.port}/ (API: /docs)")
        if not (settings.admin_tokens or any(settings.bot_tokens.values())):
            click.echo("botmemory: no token is configured: only this machine may connect")
        await server_class(uvicorn.Server, options.grace)(config).serve(sockets=[listener])
    finally:
        await engine.close()
    click.echo("botmemory: stopped")


def _log_to_stderr(level: str) -> None:
    """Show botmemory's own log lines (reloads, janitor, failed turns) at ``level``."""
    logger = logging.getLogger("botmemory")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     botmemory: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
