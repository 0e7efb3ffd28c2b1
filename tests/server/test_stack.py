"""The server stack: ``botmemory serve`` runs on uvloop and httptools when they are installed."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from botmemory.server.stack import ServerStack, server_stack
from tests.server.conftest import write_data_dir
from tests.server.live import free_port

PROBE_HOOK = '''
import asyncio
from pathlib import Path


def hook(event, state, kvs):
    """Note the event loop and the HTTP protocol that run this request."""
    task = asyncio.current_task()
    protocol = task.get_coro().cr_code.co_filename if task is not None else ""
    state.session["stack"] = {
        "loop": type(asyncio.get_running_loop()).__module__,
        "http": Path(protocol).stem,
    }
'''


def test_the_stack_is_uvloop_and_httptools_when_installed() -> None:
    pytest.importorskip("uvloop")
    pytest.importorskip("httptools")
    stack = server_stack()
    assert stack == ServerStack("uvloop", "httptools")
    loop = stack.loop_factory()()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_without_them_the_stack_is_asyncio_and_h11(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec

    def absent(name: str, *args: Any) -> Any:
        return None if name in ("uvloop", "httptools") else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", absent)
    stack = server_stack()
    assert stack == ServerStack("asyncio", "h11")
    loop = stack.loop_factory()()
    try:
        assert isinstance(loop, asyncio.BaseEventLoop)
    finally:
        loop.close()


def test_serve_answers_on_uvloop_and_httptools(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    pytest.importorskip("httptools")
    data = write_data_dir(tmp_path / "data")
    hooks = data / "bots" / "echo" / "hooks" / "before_incoming"
    hooks.mkdir(parents=True)
    (hooks / "probe.py").write_text(PROBE_HOOK)
    port = free_port()
    code = "from botmemory.cli.serve import serve; serve(prog_name='botmemory serve')"
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(data), "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "BOTMEMORY_DATABASE_URL": ""},
    )
    try:
        url = f"http://127.0.0.1:{port}/api/v1/bots/echo/converse/u1?include=state"
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.post(url, json={"text": "hi"})
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)  # waits for a real process to listen, not for a clock
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert response.status_code == 200, response.text
    assert response.json()["state"]["session"]["stack"] == {
        "loop": "uvloop",
        "http": "httptools_impl",
    }
    assert process.returncode == 0, output
