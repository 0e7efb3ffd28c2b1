"""A real PgBouncer for the tests, in transaction mode, in front of the test PostgreSQL.

Started once per test run from Debian's ``pgbouncer``, stopped at the end. Each test
gets a PgBouncer database of its own (named after its schema) whose server connections
start with ``SET search_path`` to that schema, as an operator would configure it; a small
``default_pool_size`` makes the clients really share server connections.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["POOL_SIZE", "PgBouncer", "PgBouncerUnavailable"]

POOL_SIZE = 5
"""Server connections per PgBouncer database: fewer than the clients' connections."""
READY_WITHIN = 30.0
"""Seconds PgBouncer has to start before the tests give up on it."""


class PgBouncerUnavailable(Exception):
    """This machine cannot start PgBouncer (not installed, or it failed)."""


def _binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found is None and Path("/usr/sbin/pgbouncer").exists():
        return "/usr/sbin/pgbouncer"
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgBouncer:
    """One PgBouncer in front of ``server_url`` (a PostgreSQL URL with user and database)."""

    server_url: str
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bm-pgbouncer-")))
    port: int = 0
    schemas: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def url(self, schema: str) -> str:
        """botmemory's URL of ``schema`` through PgBouncer."""
        user = urlsplit(self.server_url).username or "postgres"
        return f"postgresql://{user}@127.0.0.1:{self.port}/{schema}?schema={schema}&pgbouncer=true"

    def start(self) -> None:
        binary = _binary()
        if binary is None:
            raise PgBouncerUnavailable("pgbouncer is not installed (Debian: pgbouncer)")
        self.folder.chmod(0o755)  # PgBouncer drops to another user, then rereads its config
        self.port = _free_port()
        self._write_config()
        log = (self.folder / "pgbouncer.log").open("wb")
        user = ["-u", "postgres"] if os.geteuid() == 0 else []  # it refuses to run as root
        self.process = subprocess.Popen(
            [binary, *user, str(self.folder / "pgbouncer.ini")], stdout=log, stderr=log
        )
        deadline = time.monotonic() + READY_WITHIN
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.folder / "pgbouncer.log").read_text()[-2000:]
                raise PgBouncerUnavailable(f"pgbouncer did not start: {tail}")
            time.sleep(0.05)

    def add_schema(self, schema: str) -> None:
        """Add database ``schema`` (whose connections use that schema) and reload."""
        self.schemas.append(schema)
        self._write_config()
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)

    def remove_schema(self, schema: str) -> None:
        """Remove database ``schema`` and reload."""
        self.schemas.remove(schema)
        self._write_config()
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def _write_config(self) -> None:
        server = urlsplit(self.server_url)
        target = (
            f"host={server.hostname or '127.0.0.1'} port={server.port or 5432} "
            f"dbname={server.path.lstrip('/') or 'postgres'} user={server.username or 'postgres'}"
        )
        databases = [
            f"{schema} = {target} connect_query='SET search_path = {schema}'"
            for schema in self.schemas
        ]
        ini = "\n".join(
            [
                "[databases]",
                *databases,
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                "auth_type = any",  # each database logs in as the server URL's user
                "pool_mode = transaction",
                "max_client_conn = 2000",
                f"default_pool_size = {POOL_SIZE}",
                "reserve_pool_size = 0",
                "server_idle_timeout = 1",  # the server is shared: give back what tests ended
                "ignore_startup_parameters = extra_float_digits",
                "",
            ]
        )
        path = self.folder / "pgbouncer.ini"
        path.write_text(ini)
        path.chmod(0o644)
