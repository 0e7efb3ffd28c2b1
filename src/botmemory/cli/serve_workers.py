"""``botmemory serve --workers N``: several server processes on one port.

uvicorn's process supervisor runs N workers of ``botmemory.server.asgi:app`` on the port
``serve`` took; each worker opens the data folder itself (its own database connection),
turns of all of them are as exact as one's, and one janitor runs at a time. The workers
count their metrics in one folder (``PROMETHEUS_MULTIPROC_DIR``, a temporary folder
unless you set one), so that ``/metrics`` answers for the whole server. SIGTERM or
Ctrl-C stops every worker: requests in progress finish first.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import click

__all__ = ["serve_workers"]


def serve_workers(data_dir: str, listener: socket.socket, workers: int, log_level: str) -> None:
    """Run ``workers`` processes serving ``data_dir`` on ``listener`` until stopped."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from botmemory.server.asgi import DATA_DIR_ENV
    from botmemory.server.metrics import MULTIPROCESS_ENV
    from botmemory.server.stack import server_stack

    os.environ[DATA_DIR_ENV] = str(Path(data_dir).resolve())
    own_metrics = not os.environ.get(MULTIPROCESS_ENV)
    if own_metrics:
        os.environ[MULTIPROCESS_ENV] = tempfile.mkdtemp(prefix="botmemory-metrics-")
    stack = server_stack()
    config = uvicorn.Config(
        "botmemory.server.asgi:app",
        workers=workers,
        log_level=log_level,
        server_header=False,
        lifespan="on",
        loop=stack.loop,
        http=stack.http,
    )
    host, port = listener.getsockname()[:2]
    click.echo(f"botmemory: serving with {workers} workers at http://{host}:{port}/ (API: /docs)")
    try:
        Multiprocess(config, sockets=[listener]).run()
    finally:
        if own_metrics:
            shutil.rmtree(os.environ.pop(MULTIPROCESS_ENV), ignore_errors=True)
    click.echo("botmemory: stopped")
